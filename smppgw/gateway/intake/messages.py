"""The rules a message's fields are judged by, shared by ``submit`` and ``preview``.

Numbers (:mod:`smppgw.esme.numbers`), the DLT ids, validity and schedule times (seconds, SMPP
or ISO 8601), the coding a text goes in and the parts it takes, transliteration, and a
preview's split of a message into the parts the dispatcher will send.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Protocol

import msgspec

from smppgw.codec.constants import DataCoding, EsmClass
from smppgw.codec.smpp_time import SmppTimeError, format_absolute, parse_smpp_time
from smppgw.codec.split import count_parts, split_message, split_octets
from smppgw.codec.text import (
    Alphabet,
    MessageTooLongError,
    alphabet_for,
    choose_coding,
    decode_text,
)
from smppgw.codec.transliterate import transliterate
from smppgw.codec.udh import parse_udh
from smppgw.esme.numbers import NumberError, validate_msisdn, validate_sender
from smppgw.gateway.intake.backend import SubmitRequest
from smppgw.gateway.intake.protocol import ErrorCode, MessageFields, RequestError
from smppgw.gateway.intake.settings import IntakeDefaults

__all__ = [
    "MessageRules",
    "PartPreview",
    "TextCoder",
    "TransliteratedPreview",
    "coding_name",
    "default_coder",
    "preview_split",
    "relative_time",
]


class TextCoder(Protocol):
    """Text rules used to pick a coding and count parts (:mod:`smppgw.codec.text`)."""

    def choose_coding(self, text: str) -> DataCoding: ...

    def count_parts(self, text: str, data_coding: DataCoding) -> int:
        """Parts needed; raises ValueError (EncodeError) if not representable."""
        ...


class _CodecRules:
    """The codec's own rules (:mod:`smppgw.codec.text`, :mod:`smppgw.codec.split`)."""

    def choose_coding(self, text: str) -> DataCoding:
        return choose_coding(text)

    def count_parts(self, text: str, data_coding: DataCoding) -> int:
        return count_parts(text, data_coding)


def default_coder() -> TextCoder:
    """The codec's text rules."""
    return _CodecRules()


_DLT_ID = re.compile(r"[0-9]{1,64}")
_MAX_RELATIVE = 99 * 86400 + 23 * 3600 + 59 * 60 + 59
_CODINGS = {"gsm": DataCoding.DEFAULT, "latin1": DataCoding.LATIN_1, "ucs2": DataCoding.UCS2}
_CODING_NAMES = {v: k for k, v in _CODINGS.items()}


def relative_time(seconds: int) -> str:
    """An SMPP relative time (``YYMMDDhhmmss000R``, SMPP v3.4 section 7.1.1.2) of ``seconds``.

    Days go in the DD field (up to 99), so no month or year length is assumed.
    """
    if not 0 < seconds <= _MAX_RELATIVE:
        raise ValueError(f"must be 1..{_MAX_RELATIVE} seconds, got {seconds}")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


def _smpp_time(value: int | str, name: str, now: dt.datetime) -> str:
    """Seconds from now, an SMPP time string, or an ISO 8601 time with a zone -> SMPP time.

    Every form is checked by the codec's parser: an absolute time must be a real date in
    2000-2099 (the years ``YY`` can say) and after ``now``; a relative one must be positive.
    """
    if isinstance(value, int):
        try:
            return relative_time(value)
        except ValueError as exc:
            raise RequestError(ErrorCode.INVALID_REQUEST, f"{name}: {exc}") from None
    when: dt.datetime | dt.timedelta | None
    try:
        if len(value) == 16 and value[15] in "+-R":  # YYMMDDhhmmsstnnp (section 7.1.1)
            text, when = value, parse_smpp_time(value)
        else:
            when = _iso_time(value, name)
            text = format_absolute(when.astimezone(dt.UTC))
    except SmppTimeError as exc:
        raise RequestError(ErrorCode.INVALID_REQUEST, f"{name}: {exc}") from None
    if isinstance(when, dt.timedelta):
        if not when:
            raise RequestError(ErrorCode.INVALID_REQUEST, f"{name}: a relative time of zero")
    elif when is not None and when <= now:
        raise RequestError(
            ErrorCode.INVALID_REQUEST,
            f"{name}: {value!r} is in the past (now {now:%Y-%m-%dT%H:%M:%SZ})",
        )
    return text


def _iso_time(value: str, name: str) -> dt.datetime:
    """An ISO 8601 time with a zone, in 2000-2099 (checked before any conversion: years
    at the calendar's edges overflow when moved to UTC)."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise RequestError(
            ErrorCode.INVALID_REQUEST,
            f"{name}: expected seconds, an SMPP time (YYMMDDhhmmsstnnp) or an ISO 8601 time "
            f"with a zone, got {value!r}",
        )
    if not 2000 <= when.year <= 2099:
        raise SmppTimeError(f"SMPP absolute time: year {when.year} outside 2000-2099")
    return when


def _payload_parts(payload: bytes, coding: DataCoding) -> int:
    """Parts for a pre-encoded payload, cut exactly as it will be sent."""
    try:
        return len(split_octets(payload, coding))
    except MessageTooLongError as exc:
        return exc.parts


@dataclass(frozen=True, slots=True)
class MessageRules:
    """Judges a client's message with the configured defaults and text rules."""

    defaults: IntakeDefaults
    coder: TextCoder

    def message(self, m: MessageFields, where: str, now: dt.datetime) -> SubmitRequest:
        """Check one message's values; ``where`` prefixes field names (``messages[2].``);
        absolute times must be after ``now``."""
        try:
            to = validate_msisdn(m.to, field=f"{where}to")
            sender_value = m.from_ if m.from_ is not None else self.defaults.sender
            if sender_value is None:
                raise RequestError(
                    ErrorCode.INVALID_REQUEST, f"{where}from: required (no default sender)"
                )
            sender = validate_sender(sender_value, field=f"{where}from")
        except NumberError as exc:
            raise RequestError(ErrorCode.INVALID_NUMBER, str(exc)) from None
        text, payload, coding, parts = self._body(m, where)
        max_parts = m.max_parts if m.max_parts is not None else self.defaults.max_parts
        if parts > max_parts:
            body = "text" if text is not None else "hex"
            raise RequestError(
                ErrorCode.TOO_LONG,
                f"{where}{body}: needs {parts} parts as {coding_name(coding)}, "
                f"max_parts is {max_parts}",
            )
        if m.flash and coding not in (DataCoding.DEFAULT, DataCoding.UCS2):
            raise RequestError(
                ErrorCode.INVALID_REQUEST, f"{where}flash: only with gsm or ucs2 coding"
            )
        dlt = {}
        for key in ("pe_id", "template_id", "tm_id"):
            value = getattr(m, key)
            value = value if value is not None else getattr(self.defaults, key)
            if value is not None and _DLT_ID.fullmatch(value) is None:
                raise RequestError(
                    ErrorCode.INVALID_REQUEST, f"{where}{key}: must be 1..64 digits, got {value!r}"
                )
            dlt[key] = value
        return SubmitRequest(
            to=to,
            sender=sender,
            text=text,
            payload=payload,
            data_coding=coding,
            parts=parts,
            flash=m.flash,
            registered_delivery=(
                m.registered_delivery
                if m.registered_delivery is not None
                else self.defaults.registered_delivery
            ),
            pe_id=dlt["pe_id"],
            template_id=dlt["template_id"],
            tm_id=dlt["tm_id"],
            validity=(
                None if m.validity is None else _smpp_time(m.validity, f"{where}validity", now)
            ),
            schedule=(
                None if m.schedule is None else _smpp_time(m.schedule, f"{where}schedule", now)
            ),
            priority=m.priority,
            custom=m.custom,
        )

    def _body(
        self, m: MessageFields, where: str
    ) -> tuple[str | None, bytes | None, DataCoding, int]:
        if (m.text is None) == (m.hex is None):
            raise RequestError(
                ErrorCode.INVALID_REQUEST, f"{where}text: give exactly one of text, hex"
            )
        if m.hex is not None:
            try:
                payload = bytes.fromhex(m.hex)
            except ValueError:
                raise RequestError(
                    ErrorCode.INVALID_REQUEST, f"{where}hex: not a hexadecimal string"
                ) from None
            if not payload:
                raise RequestError(ErrorCode.INVALID_REQUEST, f"{where}hex: must not be empty")
            coding = _CODINGS.get(m.coding, DataCoding.OCTET_UNSPECIFIED_2)
            if coding == DataCoding.UCS2 and len(payload) % 2:
                raise RequestError(
                    ErrorCode.INVALID_REQUEST, f"{where}hex: UCS-2 needs an even number of octets"
                )
            return None, payload, coding, _payload_parts(payload, coding)
        text = m.text
        assert text is not None
        if not text:
            raise RequestError(ErrorCode.INVALID_REQUEST, f"{where}text: must not be empty")
        if self._transliterates(m):
            text = transliterate(text)
            if not text:
                raise RequestError(
                    ErrorCode.INVALID_REQUEST,
                    f"{where}text: nothing is left after transliteration",
                )
        coding, parts = self._text_cost(text, m.coding, where)
        return text, None, coding, parts

    def _transliterates(self, m: MessageFields) -> bool:
        return m.transliterate if m.transliterate is not None else self.defaults.transliterate

    def _text_cost(self, text: str, coding_name: str, where: str) -> tuple[DataCoding, int]:
        """The coding ``text`` goes in (``coding_name``: auto, gsm, latin1 or ucs2), and the
        number of parts it takes in it."""
        coding = self.coder.choose_coding(text) if coding_name == "auto" else _CODINGS[coding_name]
        try:
            parts = self.coder.count_parts(text, coding)
        except ValueError:
            raise RequestError(
                ErrorCode.INVALID_REQUEST,
                f"{where}text: not representable in {coding_name} (use coding auto or ucs2)",
            ) from None
        return coding, parts

    def transliterated(self, m: MessageFields, where: str) -> TransliteratedPreview | None:
        """What the message's text would cost transliterated: None for a ``hex`` payload, a
        message that asks for transliteration already, a text it would not change, or a
        transliterated text the message's ``coding`` still cannot carry."""
        if m.text is None or self._transliterates(m):
            return None
        text = transliterate(m.text)
        if text in ("", m.text):
            return None
        try:
            coding, parts = self._text_cost(text, m.coding, where)
        except RequestError:
            return None
        return TransliteratedPreview(coding=coding_name(coding), parts=parts, text=text)


# --- preview --------------------------------------------------------------------------------


class PartPreview(msgspec.Struct, frozen=True, omit_defaults=True):
    """One part of a previewed message: its user data as it will be sent, the UDH aside.

    A text's part has its ``text`` and length in ``chars`` (Unicode characters: an emoji is
    one, though it takes two UTF-16 code units); a ``hex`` payload's part has its ``hex``.
    Either has its length on the wire: ``septets`` for GSM 03.38 (an extension character
    counts two), ``octets`` for the others.
    """

    text: str | None = None
    hex: str | None = None
    chars: int | None = None
    septets: int | None = None
    octets: int | None = None


class TransliteratedPreview(msgspec.Struct, frozen=True):
    """What a text would cost after :func:`~smppgw.codec.transliterate.transliterate`."""

    coding: str
    parts: int
    text: str


def coding_name(coding: DataCoding) -> str:
    """The client's name of ``coding`` (gsm, latin1, ucs2), or ``binary``."""
    return _CODING_NAMES.get(coding, "binary")


def preview_split(request: SubmitRequest) -> list[PartPreview]:
    """Each part of ``request`` as the dispatcher will cut it (by the same codec functions)."""
    coding = request.data_coding
    if request.text is not None:
        parts = split_message(request.text, coding)
    else:
        parts = split_octets(request.payload or b"", coding)
    gsm = alphabet_for(coding) is Alphabet.GSM7
    previews = []
    for part in parts:
        data = part.short_message
        if part.esm_class & EsmClass.UDHI:
            _, data = parse_udh(data)
        septets, octets = (len(data), None) if gsm else (None, len(data))
        if request.text is None:
            previews.append(PartPreview(hex=data.hex(), septets=septets, octets=octets))
        else:
            text = decode_text(data, coding)
            previews.append(PartPreview(text=text, chars=len(text), septets=septets, octets=octets))
    return previews
