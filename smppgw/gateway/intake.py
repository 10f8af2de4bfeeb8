"""The intake: a Unix-socket server speaking newline-delimited JSON.

Applications write one JSON object per line and read one JSON object per line back. Every
request has an ``op`` and may carry ``req``, any JSON value echoed verbatim in the reply so a
client can match replies to requests. Ops:

``submit``
    One message (fields at the top level) or a batch (``messages: [...]``). The reply comes
    only after the backend says the messages are durably stored: an ``ok`` reply means the
    gateway owns the message. ``custom`` is the client's reference and idempotency key: a
    resubmission with the same ``custom`` returns the first message's id with
    ``duplicate: true`` and sends nothing.
``status``
    A message's status by ``id`` or ``custom``, in the ``sms:message:status`` payload shape.
``subscribe``
    Turns the connection into an event stream as well: after the ``ok`` reply every event
    after ``cursor`` (or, without one, every new event) is written as a line
    ``{"cursor": n, "event": ..., "payload": {...}}``. A client that reconnects with the last
    cursor it saw misses nothing the store still holds.
``preview``
    What a ``submit`` of the same message (or ``messages`` batch) would cost, storing nothing:
    per message its coding, parts and the text of each part, and what it would cost
    transliterated (:mod:`smppgw.codec.transliterate`) when that changes the text. Judged as
    ``submit`` judges it, with the same errors.
``ping``
    ``{"ok": true, "pong": true, "healthy": true}``; ``healthy`` is false, with a ``reason``,
    when the gateway cannot take messages (its store cannot write).
``unmatched``
    The delivery receipts that matched no message (kept, never dropped): ``count`` and the
    oldest ``limit`` (default 100) as ``receipts``.
``stats``
    The daemon's live figures (binds, rates, latency, queue, receipts, intake, webhook) as one
    JSON object, for ``smppgw top`` (:mod:`smppgw.gateway.stats_reply`).

Errors are replies, never disconnections: ``{"ok": false, "error": <code>, "message": <text
naming the field>}`` with the codes of :class:`ErrorCode`. A line longer than ``max_line``
bytes is discarded up to its newline and answered ``line_too_long``; a line that is not UTF-8,
or nests deeper than :data:`MAX_DEPTH`, is ``invalid_request``. Blank lines are ignored.
A batch's messages are decoded and judged one by one: a bad message rejects only itself.
A connection may pipeline requests: up to ``pipeline`` are processed concurrently, and replies
are written in request order. Connections are bounded in number (``max_clients``), in the
bytes each holds (``max_connection_buffer``: beyond it the connection is not read) and in the
time a started line may take (``line_timeout``).

The intake knows nothing of the store or SMPP sessions: it calls a :class:`Backend`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import logging
import os
import re
import shutil
import socket
import stat
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, Self

import msgspec

from smppgw import __version__
from smppgw.codec.constants import DataCoding, EsmClass
from smppgw.codec.errors import SmppError
from smppgw.codec.smpp_time import SmppTimeError, format_absolute, parse_smpp_time
from smppgw.codec.text import (
    Alphabet,
    MessageTooLongError,
    alphabet_for,
    decode_text,
    parse_udh,
    split_message,
    split_octets,
)
from smppgw.codec.transliterate import transliterate
from smppgw.esme.numbers import NumberError, Sender, validate_msisdn, validate_sender
from smppgw.esme.observe import NULL_OBSERVER, Observer
from smppgw.esme.settings import setting
from smppgw.gateway.events import ReceiptPayload, StatusPayload, StoredEvent, stream_line

__all__ = [
    "Backend",
    "BackendOverloadedError",
    "ErrorCode",
    "IntakeDefaults",
    "IntakeError",
    "IntakeServer",
    "IntakeSettings",
    "PartPreview",
    "RequestError",
    "SubmitRequest",
    "SubmitResult",
    "TextCoder",
    "TransliteratedPreview",
    "parse_request",
    "relative_time",
]

logger = logging.getLogger(__name__)


# --- errors ---------------------------------------------------------------------------------


class ErrorCode(enum.StrEnum):
    """The ``error`` field of a failed reply."""

    INVALID_REQUEST = "invalid_request"  # malformed JSON, wrong type, bad value
    TOO_LONG = "too_long"  # the text needs more parts than max_parts
    UNKNOWN_FIELD = "unknown_field"  # a field this op does not have (typo protection)
    INVALID_NUMBER = "invalid_number"  # to/from not in the accepted format
    OVERLOADED = "overloaded"  # too many messages awaiting storage: retry later
    UNKNOWN_OP = "unknown_op"
    LINE_TOO_LONG = "line_too_long"
    LINE_TIMEOUT = "line_timeout"  # a line left unfinished for line_timeout: connection closed
    TOO_MANY_CLIENTS = "too_many_clients"  # max_clients are connected: connection closed
    NOT_FOUND = "not_found"  # status of an unknown id/custom
    STORAGE_FULL = "storage_full"  # the gateway's disk is full; nothing was accepted
    INTERNAL = "internal"  # the backend failed; nothing was accepted


class IntakeError(SmppError):
    """The intake cannot start (the socket is in use by a live daemon, or not a socket)."""


class RequestError(SmppError):
    """A request (or one message of a batch) that cannot be accepted; becomes an error reply."""

    def __init__(self, code: ErrorCode, message: str, **details: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details  # extra fields of the error reply (``last`` of subscribe)
        self.req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET  # the request's ``req``


class BackendOverloadedError(SmppError):
    """Raised by a backend that cannot take more messages now (answered ``overloaded``)."""


class BackendStorageFullError(SmppError):
    """Raised by a backend whose storage is full: nothing was stored (``storage_full``)."""


# --- what the backend receives and returns ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    """One validated message, ready to be stored.

    ``data_coding`` is the alphabet (DEFAULT = GSM 03.38, LATIN_1, UCS2, or
    OCTET_UNSPECIFIED_2 for binary ``hex`` payloads); :attr:`wire_coding` adds the flash
    class. Exactly one of ``text`` and ``payload`` is set. ``validity`` and ``schedule`` are
    SMPP time strings (section 7.1.1). ``parts`` is the number of SMS the message needs.
    """

    to: str
    sender: Sender
    text: str | None
    payload: bytes | None
    data_coding: DataCoding
    parts: int
    flash: bool = False
    registered_delivery: bool = True
    pe_id: str | None = None
    template_id: str | None = None
    tm_id: str | None = None
    validity: str | None = None
    schedule: str | None = None
    priority: int = 0
    custom: str | None = None

    @property
    def wire_coding(self) -> DataCoding:
        """The data_coding to send: message class 0 (0x10 / 0x18) when ``flash``."""
        if not self.flash:
            return self.data_coding
        return (
            DataCoding.UCS2_FLASH if self.data_coding == DataCoding.UCS2 else DataCoding.GSM_FLASH
        )


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What the backend did with one message: its id, part count, and whether it was a
    duplicate of an earlier message with the same ``custom`` (then ``id`` is that one's)."""

    id: str
    parts: int
    duplicate: bool = False


class Backend(Protocol):
    """What the intake needs from the daemon (a store-backed implementation, or a fake)."""

    async def submit(self, requests: Sequence[SubmitRequest]) -> Sequence[SubmitResult]:
        """Store the messages durably (one commit for all) and return a result for each,
        in order. Raise :class:`BackendOverloadedError` to refuse them all for now."""
        ...

    async def status(
        self, *, message_id: str | None = None, custom: str | None = None
    ) -> StatusPayload | None:
        """A message's current status, or None if unknown."""
        ...

    async def events_after(self, cursor: int, limit: int) -> Sequence[StoredEvent]:
        """Up to ``limit`` events with a cursor greater than ``cursor``, oldest first."""
        ...

    async def wait_events(self, cursor: int) -> None:
        """Return once an event after ``cursor`` may exist (at once if one does)."""
        ...

    async def last_cursor(self) -> int:
        """The cursor of the newest event (0 if there is none)."""
        ...

    async def unmatched(self, limit: int) -> tuple[int, Sequence[ReceiptPayload]]:
        """How many delivery receipts matched no message, and the oldest ``limit`` of them."""
        ...


class TextCoder(Protocol):
    """Text rules used to pick a coding and count parts (:mod:`smppgw.codec.text`)."""

    def choose_coding(self, text: str) -> DataCoding: ...

    def count_parts(self, text: str, data_coding: DataCoding) -> int:
        """Parts needed; raises ValueError (EncodeError) if not representable."""
        ...


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntakeDefaults:
    """Values a message takes when the request leaves them out (from ``[defaults]``)."""

    sender: str | None = None
    pe_id: str | None = None
    template_id: str | None = None
    tm_id: str | None = None
    registered_delivery: bool = True
    max_parts: int = setting(10, low=1, high=255)
    transliterate: bool = False

    @classmethod
    def problems(cls, values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Every problem of defaults made of ``values`` (field: value), as (field, problem)."""
        found = [
            (name, f"must be digits only, got {value!r}")
            for name in ("pe_id", "template_id", "tm_id")
            if (value := values.get(name)) is not None and not value.isdigit()
        ]
        sender = values.get("sender")
        if sender is not None:
            try:
                validate_sender(sender, field="sender")
            except NumberError as exc:
                found.append(("sender", exc.problem))
        return found


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    """The socket and its limits.

    ``max_line`` bounds one request line in bytes (newline excluded); ``max_pending`` bounds
    the messages awaiting storage over all connections (beyond it: ``overloaded``);
    ``pipeline`` bounds the requests of one connection processed at once, and
    ``max_connection_buffer`` the bytes of its requests not yet answered plus its replies not
    yet written (beyond either the connection is not read: back-pressure). ``max_clients``
    bounds the connections (one more is told ``too_many_clients`` and closed);
    ``line_timeout`` is how long a line may stay unfinished (seconds from its first byte).
    """

    path: str = setting("/run/smppgw/smppgw.sock", path=True)
    mode: int = setting(0o660, low=0, high=0o777)
    group: str | None = None
    max_line: int = setting(65536, low=1024, high=16 * 1024 * 1024)
    max_batch: int = setting(1000, low=1, high=100_000)
    max_pending: int = setting(10000, low=1, high=10_000_000)
    pipeline: int = setting(64, configurable=False)
    max_clients: int = setting(256, low=1, high=100_000)
    line_timeout: float = setting(30.0, low=0.1, high=86400)
    max_connection_buffer: int = setting(1024 * 1024, low=64 * 1024, high=1024 * 1024 * 1024)
    event_batch: int = setting(500, configurable=False)
    defaults: IntakeDefaults = field(default_factory=IntakeDefaults)  # the [defaults] table

    @classmethod
    def problems(cls, values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Every problem of settings made of ``values`` (field: value), as (field, problem)."""
        path = str(values.get("path", ""))
        # sockaddr_un.sun_path holds 108 bytes including the NUL (unix(7)).
        if len(os.fsencode(path)) > 107:
            return [("path", f"a Unix socket path has at most 107 bytes, got {len(path)}")]
        return []


# --- request models -------------------------------------------------------------------------

_Priority = Annotated[int, msgspec.Meta(ge=0, le=3)]
_MaxParts = Annotated[int, msgspec.Meta(ge=1, le=255)]
_Custom = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# Cursors are SQLite INTEGERs: signed 64 bits.
_Cursor = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class _Envelope(msgspec.Struct):
    """The fields every request line is first read for (unknown fields ignored here)."""

    op: str | None = None
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    messages: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class MessageFields(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, rename={"from_": "from"}
):
    """One message as a client writes it."""

    to: str
    from_: str | None = None
    text: str | None = None
    hex: str | None = None
    coding: Literal["auto", "gsm", "latin1", "ucs2"] = "auto"
    pe_id: str | None = None
    template_id: str | None = None
    tm_id: str | None = None
    flash: bool = False
    registered_delivery: bool | None = None
    validity: int | str | None = None
    schedule: int | str | None = None
    max_parts: _MaxParts | None = None
    custom: _Custom | None = None
    priority: _Priority = 0
    transliterate: bool | None = None


class _SubmitOne(MessageFields, kw_only=True):
    """One message of ``submit`` or ``preview`` (``op`` says which)."""

    op: str
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _SubmitBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A ``messages`` batch of ``submit`` or ``preview`` (``op`` says which)."""

    op: str
    messages: list[msgspec.Raw]  # each decoded on its own: one bad message rejects only itself
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _Status(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    id: str | None = None
    custom: str | None = None
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _Subscribe(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    cursor: _Cursor | None = None
    events: list[str] | None = None
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _Ping(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _Unmatched(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _Stats(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_Request = _SubmitOne | _SubmitBatch | _Status | _Subscribe | _Ping | _Unmatched | _Stats
_MESSAGE_OPS = frozenset({"submit", "preview"})  # one message, or a batch in ``messages``
_OPS: dict[str, type[_Request]] = {
    "status": _Status,
    "subscribe": _Subscribe,
    "ping": _Ping,
    "unmatched": _Unmatched,
    "stats": _Stats,
}
_ENVELOPE = msgspec.json.Decoder(_Envelope)
_DECODERS: dict[type[_Request], msgspec.json.Decoder[_Request]] = {
    t: msgspec.json.Decoder(t)
    for t in (_SubmitOne, _SubmitBatch, _Status, _Subscribe, _Ping, _Unmatched, _Stats)
}
_MESSAGE = msgspec.json.Decoder(MessageFields)
_ENCODER = msgspec.json.Encoder()

MAX_DEPTH = 32
"""Arrays and objects nest at most this deep in a request line (``req`` included). The JSON
decoder recurses on nesting; a line of ten thousand ``[`` must be a clear error, not a stack
overflow."""
# A JSON string, escapes included (the unrolled form: no backtracking on long strings).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# A high surrogate escape not followed by a low one (the decoder reports it as truncation).
_LONE_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")

_AT = re.compile(r"^(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")


def _validation_error(exc: msgspec.ValidationError, where: str = "") -> RequestError:
    """Turn msgspec's message into ours, naming the field (``messages[1].to: ...``).

    ``where`` is the path of the decoded value within the request (``messages[1]``).
    """
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any string
    text = match["text"]
    path = (match["path"] or "").lstrip(".")
    if where:
        path = f"{where}.{path}" if path else where
    if unknown := _UNKNOWN.match(text):
        name = f"{path}.{unknown['name']}" if path else unknown["name"]
        return RequestError(ErrorCode.UNKNOWN_FIELD, f"{name}: unknown field")
    if missing := _MISSING.match(text):
        name = f"{path}.{missing['name']}" if path else missing["name"]
        return RequestError(ErrorCode.INVALID_REQUEST, f"{name}: required")
    if not path:
        return RequestError(ErrorCode.INVALID_REQUEST, f"request: {text[:1].lower()}{text[1:]}")
    return RequestError(ErrorCode.INVALID_REQUEST, f"{path}: {text[:1].lower()}{text[1:]}")


def parse_request(line: bytes) -> tuple[_Request, msgspec.Raw | msgspec.UnsetType]:
    """Decode one request line into its typed request.

    Returns:
        The request and its ``req`` value (UNSET when absent).

    Raises:
        RequestError: with the ``req`` value (when readable) in its ``req`` attribute.
    """
    _check_depth(line)
    if not line.isascii():  # the common all-ASCII line costs one scan in C
        try:
            line.decode()
        except UnicodeDecodeError as exc:
            error = RequestError(
                ErrorCode.INVALID_REQUEST, f"malformed JSON: invalid UTF-8 at byte {exc.start}"
            )
            error.req = _readable_req(line)
            raise error from None
    try:
        envelope = _ENVELOPE.decode(line)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from exc
    except msgspec.DecodeError as exc:
        raise RequestError(
            ErrorCode.INVALID_REQUEST, f"malformed JSON: {_decode_problem(exc, line)}"
        ) from exc
    try:
        kind = _request_kind(envelope)
        try:
            return _DECODERS[kind].decode(line), envelope.req
        except msgspec.ValidationError as exc:
            raise _validation_error(exc) from exc
    except RequestError as exc:
        exc.req = envelope.req
        raise


def _check_depth(line: bytes) -> None:
    """Refuse a line nesting arrays/objects deeper than :data:`MAX_DEPTH`."""
    if line.count(b"[") + line.count(b"{") <= MAX_DEPTH:
        return  # cannot nest deeper: the usual case, two scans in C
    depth = 0
    for bracket in _JSON_STRING.sub(b"", line).translate(None, _NOT_BRACKETS):
        if bracket in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise RequestError(
                    ErrorCode.INVALID_REQUEST, f"request: nested deeper than {MAX_DEPTH} levels"
                )
        else:
            depth -= 1


def _decode_problem(exc: msgspec.DecodeError, line: bytes) -> str:
    """The decoder's complaint, except that it calls a lone high surrogate escape truncation."""
    problem = str(exc)
    if problem == "Input data was truncated" and (lone := _LONE_SURROGATE.search(line)):
        return f"unpaired UTF-16 surrogate escape (byte {lone.start()})"
    return problem


def _readable_req(line: bytes) -> msgspec.Raw | msgspec.UnsetType:
    """The ``req`` of a line that is not valid UTF-8, if ``req`` itself is (else UNSET)."""
    try:
        req = _ENVELOPE.decode(line).req
    except (msgspec.DecodeError, UnicodeDecodeError):
        return msgspec.UNSET
    if isinstance(req, msgspec.Raw):
        try:
            bytes(req).decode()
        except UnicodeDecodeError:
            return msgspec.UNSET
    return req


def _request_kind(envelope: _Envelope) -> type[_Request]:
    if envelope.op is None:
        raise RequestError(ErrorCode.INVALID_REQUEST, "op: required")
    if envelope.op in _MESSAGE_OPS:
        if isinstance(envelope.messages, msgspec.UnsetType):
            return _SubmitOne
        return _SubmitBatch
    if envelope.op in _OPS:
        return _OPS[envelope.op]
    raise RequestError(
        ErrorCode.UNKNOWN_OP,
        f"op: unknown operation {envelope.op!r} "
        "(submit, preview, status, subscribe, ping, unmatched, stats)",
    )


# --- message validation ---------------------------------------------------------------------

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
class _Validator:
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
                f"{where}{body}: needs {parts} parts as {_coding_name(coding)}, "
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
        return TransliteratedPreview(coding=_coding_name(coding), parts=parts, text=text)


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


def _coding_name(coding: DataCoding) -> str:
    return _CODING_NAMES.get(coding, "binary")


def _preview_split(request: SubmitRequest) -> list[PartPreview]:
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


# --- the server -----------------------------------------------------------------------------


def _existing_socket(path: Path) -> bool:
    """Whether ``path`` is a socket; creates the parent directory when missing.

    Raises:
        IntakeError: something that is not a socket is at ``path`` (never removed).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        raise IntakeError(f"intake socket {path} exists and is not a socket; not removing it")
    return True


async def _accepts_connections(path: Path) -> bool:
    """Whether a live server holds the socket (a stale one refuses connections)."""
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Return once ``sock`` is readable (a listening socket: a client waits to be accepted)."""
    ready = loop.create_future()
    loop.add_reader(sock.fileno(), _set_once, ready)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


def _remove_stale(path: Path) -> None:
    if path.is_socket():
        logger.debug("intake: removing socket %s", path)
        path.unlink(missing_ok=True)


def _set_permissions(path: Path, mode: int, group: str | None) -> None:
    # The socket exists with umask permissions for the moment between bind() and chmod(); the
    # socket's directory (systemd RuntimeDirectory, mode 0750) is what closes that window.
    path.chmod(mode)
    if group is not None:
        shutil.chown(path, group=group)


def _default_coder() -> TextCoder:
    from smppgw.codec import text  # noqa: PLC0415 - the codec's text rules, loaded on use

    coder: TextCoder = text
    return coder


def _reply(req: msgspec.Raw | msgspec.UnsetType, **fields: object) -> bytes:
    body: dict[str, object] = {"ok": fields.pop("ok", True)}
    if not isinstance(req, msgspec.UnsetType):
        body["req"] = req
    body.update(fields)
    return _ENCODER.encode(body) + b"\n"


def _error(
    req: msgspec.Raw | msgspec.UnsetType, code: ErrorCode, message: str, **details: object
) -> bytes:
    return _reply(req, ok=False, error=code, message=message, **details)


def _result_fields(result: SubmitResult) -> dict[str, object]:
    return {"id": result.id, "parts": result.parts, "duplicate": result.duplicate}


class _EventHead(msgspec.Struct):
    event: str = ""


_EVENT_HEAD = msgspec.json.Decoder(_EventHead)


class _Read(enum.Enum):
    LINE_TOO_LONG = "line_too_long"  # a line over max_line was read and discarded
    LINE_TIMEOUT = "line_timeout"  # a line stayed unfinished for line_timeout seconds


_BACKLOG = 100  # the listen queue
_CHUNK = 65536  # bytes read from a client at a time
_ACCEPT_RETRY = 0.1  # seconds between accepts while file descriptors are exhausted
_REPORT_EVERY = 60.0  # seconds between two warnings about the same condition


@dataclass(slots=True)
class _Reported:
    """A warning logged at most once per :data:`_REPORT_EVERY`, counting the times between."""

    what: str
    total: int = 0
    _unreported: int = 0
    _last: float | None = None

    def add(self, now: float, detail: str) -> None:
        self.total += 1
        self._unreported += 1
        if self._last is None:
            logger.warning("%s: %s", self.what, detail)
        elif now - self._last >= _REPORT_EVERY:
            logger.warning(
                "%s: %s (%d times since the last warning)", self.what, detail, self._unreported
            )
        else:
            return
        self._last = now
        self._unreported = 0


@dataclass(slots=True)
class _Reply:
    op: str
    data: bytes
    ok: bool
    after: Callable[[], None] | None = None  # run once the reply is written (start a stream)


class IntakeServer:
    """The Unix-socket NDJSON server (see the module docstring for the protocol).

    Args:
        backend: stores messages and serves status and events.
        settings: socket path, permissions and limits.
        observer: told of every answered request (``intake_request``).
        coder: text rules; :mod:`smppgw.codec.text` by default.
        clock: the time now in seconds since the epoch (absolute times must be later).
        health: what ``ping`` reports: None when the gateway can take messages, else the
            reason it cannot (a full disk, a damaged store).
        stats: the fields of a ``stats`` reply (None: the op is refused as unknown).
    """

    def __init__(
        self,
        backend: Backend,
        settings: IntakeSettings,
        *,
        observer: Observer = NULL_OBSERVER,
        coder: TextCoder | None = None,
        clock: Callable[[], float] = time.time,
        health: Callable[[], str | None] = lambda: None,
        stats: Callable[[], Awaitable[dict[str, object]]] | None = None,
    ) -> None:
        self._backend = backend
        self._stats = stats
        self._clock = clock
        self._health = health
        self._settings = settings
        self._observer = observer
        self._validator = _Validator(settings.defaults, coder or _default_coder())
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._pending = 0
        self._refused = _Reported("intake: refused clients over max_clients")
        self._accept_failed = _Reported("intake: cannot accept clients")

    @property
    def accept_errors(self) -> int:
        """How many accepts failed (out of file descriptors, most likely) since start."""
        return self._accept_failed.total

    @property
    def path(self) -> str:
        """The socket path."""
        return self._settings.path

    @property
    def connections(self) -> int:
        """The number of open client connections."""
        return len(self._connections)

    async def start(self) -> None:
        """Create the socket (removing a stale one), set its mode and group, and listen.

        Raises:
            IntakeError: the path is held by a live server or is not a socket.
            OSError: the directory is not writable, the group does not exist...
        """
        path = Path(self._settings.path)
        if _existing_socket(path) and await _accepts_connections(path):
            raise IntakeError(f"intake socket {path} is in use by a running server")
        _remove_stale(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            listener.listen(_BACKLOG)
            listener.setblocking(False)  # noqa: FBT003 - the socket API
            _set_permissions(path, self._settings.mode, self._settings.group)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._accepting = asyncio.create_task(self._accept_loop(listener))
        logger.info("intake: listening on %s (mode %04o)", path, self._settings.mode)

    async def stop(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - bounds a drain
        """Stop listening, close every connection, and remove the socket file.

        Connections are closed for reading at once; submits already handed to the backend
        finish (they are committed either way) for up to ``timeout`` seconds, then the rest
        is cancelled.
        """
        if self._listener is None or self._accepting is None:
            return
        self._accepting.cancel()
        await asyncio.gather(self._accepting, return_exceptions=True)
        self._listener.close()  # clients still in the listen queue see the connection reset
        self._listener = self._accepting = None
        for writer in self._connections.values():
            writer.transport.abort()
        tasks = list(self._connections)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await asyncio.sleep(0)  # aborted transports close in a callback: let it run
        _remove_stale(Path(self._settings.path))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _accept_loop(self, listener: socket.socket) -> None:
        """Accept clients until cancelled.

        Our own loop rather than the event loop's server: when file descriptors run out, the
        asyncio loop logs a traceback a second and uvloop closes the clients unseen; here the
        client waits in the listen queue and one warning a minute says why.
        """
        loop = asyncio.get_running_loop()
        while True:
            # Wait for a client, then accept it without yielding: a cancellation (stop())
            # can only come while nothing is accepted. With ``loop.sock_accept`` a stop that
            # came just after the kernel handed over a client dropped that client's socket
            # unclosed.
            await _readable(loop, listener)
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                continue  # another wake-up took the client, or it went away
            except OSError as exc:
                self._accept_failed.add(
                    loop.time(),
                    f"{exc.strerror or exc} ({len(self._connections)} clients connected); "
                    f"raise the file limit (LimitNOFILE) or lower [intake] max_clients",
                )
                await asyncio.sleep(_ACCEPT_RETRY)
                continue
            if len(self._connections) >= self._settings.max_clients:
                self._refuse(conn, loop.time())
                continue
            try:
                await self._connect(loop, conn)
            except OSError:
                conn.close()

    async def _connect(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        conn.setblocking(False)  # noqa: FBT003 - the socket API
        # The stream buffers at most 2 * _CHUNK before it stops reading the socket.
        protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader(limit=_CHUNK), self._accept)
        await loop.connect_accepted_socket(lambda: protocol, sock=conn)

    def _refuse(self, conn: socket.socket, now: float) -> None:
        limit = self._settings.max_clients
        line = _error(
            msgspec.UNSET,
            ErrorCode.TOO_MANY_CLIENTS,
            f"{limit} clients are connected, the most this gateway serves; retry later",
        )
        with contextlib.suppress(OSError):
            conn.send(line)  # a new socket's buffer has room for one line: never blocks
        conn.close()
        self._refused.add(now, f"{limit} clients are connected")

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain (not async) callback: the stream protocol calls it from connection_made, so
        # each connection is registered the moment it is accepted and stop() can close it
        # even before its task first runs.
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._connections[task] = writer
        task.add_done_callback(self._connections.pop)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _Connection(self, reader, writer).run()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # --- request handling ------------------------------------------------------------------

    async def answer(self, line: bytes, stream: Callable[[int, frozenset[str]], None]) -> _Reply:
        """The reply to one line. ``stream(cursor, types)`` starts an event subscription."""
        req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
        op = "invalid"
        try:
            request, req = parse_request(line)
            op = request.op
            return await self._dispatch(request, req, stream)
        except RequestError as exc:
            if isinstance(req, msgspec.UnsetType):
                req = exc.req  # the line failed to parse: its req, if readable, is here
            return _Reply(op, _error(req, exc.code, exc.message, **exc.details), ok=False)
        except BackendOverloadedError as exc:
            return _Reply(op, _error(req, ErrorCode.OVERLOADED, str(exc) or "overloaded"), ok=False)
        except BackendStorageFullError as exc:
            return _Reply(op, _error(req, ErrorCode.STORAGE_FULL, str(exc)), ok=False)
        except Exception:
            logger.exception("intake: %s request failed", op)
            return _Reply(
                op, _error(req, ErrorCode.INTERNAL, "internal error; see the gateway log"), ok=False
            )

    async def _dispatch(
        self,
        request: _Request,
        req: msgspec.Raw | msgspec.UnsetType,
        stream: Callable[[int, frozenset[str]], None],
    ) -> _Reply:
        if isinstance(request, _SubmitOne):
            return await self._one_message(request, req)
        if isinstance(request, _SubmitBatch):
            return await self._submit_batch(request, req)
        if isinstance(request, _Status):
            if (request.id is None) == (request.custom is None):
                raise RequestError(ErrorCode.INVALID_REQUEST, "id: give exactly one of id, custom")
            found = await self._backend.status(message_id=request.id, custom=request.custom)
            if found is None:
                key = (
                    f"id {request.id!r}" if request.id is not None else f"custom {request.custom!r}"
                )
                raise RequestError(ErrorCode.NOT_FOUND, f"no message with {key}")
            return _Reply("status", _reply(req, status=found), ok=True)
        if isinstance(request, _Subscribe):
            last = await self._backend.last_cursor()
            start = last if request.cursor is None else request.cursor
            if start > last:
                # Cursors only grow, so the client's cursor comes from another store (a
                # restored or replaced database): waiting would skip events silently.
                raise RequestError(
                    ErrorCode.INVALID_REQUEST,
                    f"cursor: {start} is beyond the newest event ({last}); subscribe again "
                    f"with a cursor of at most {last}",
                    last=last,
                )
            types = frozenset(request.events or ())
            return _Reply(
                "subscribe",
                _reply(req, cursor=start, last=last),
                ok=True,
                after=lambda: stream(start, types),
            )
        return await self._inspect(request, req)

    async def _inspect(
        self, request: _Unmatched | _Stats | _Ping, req: msgspec.Raw | msgspec.UnsetType
    ) -> _Reply:
        """The ops that look at the gateway rather than at messages."""
        if isinstance(request, _Unmatched):
            count, receipts = await self._backend.unmatched(request.limit)
            return _Reply("unmatched", _reply(req, count=count, receipts=receipts), ok=True)
        if isinstance(request, _Stats):
            if self._stats is None:
                raise RequestError(ErrorCode.UNKNOWN_OP, "op: stats: this server keeps no figures")
            return _Reply("stats", _reply(req, **await self._stats()), ok=True)
        return self._ping(req)

    def _ping(self, req: msgspec.Raw | msgspec.UnsetType) -> _Reply:
        unhealthy = self._health()
        health: dict[str, object] = (
            {"healthy": True} if unhealthy is None else {"healthy": False, "reason": unhealthy}
        )
        return _Reply("ping", _reply(req, pong=True, version=__version__, **health), ok=True)

    async def _one_message(
        self, request: _SubmitOne, req: msgspec.Raw | msgspec.UnsetType
    ) -> _Reply:
        if request.op == "preview":
            return _Reply(
                "preview", _reply(req, **self._preview(request, "", self._now())), ok=True
            )
        submit = self._validator.message(request, "", self._now())
        (result,) = await self._submit([submit])
        return _Reply("submit", _reply(req, **_result_fields(result)), ok=True)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    def _preview(self, m: MessageFields, where: str, now: dt.datetime) -> dict[str, object]:
        """The fields of a preview's reply: the message judged as a submit, then cut as the
        dispatcher will cut it. A ``too_long`` error carries the transliterated cost too."""
        transliterated = self._validator.transliterated(m, where)
        try:
            request = self._validator.message(m, where, now)
        except RequestError as exc:
            if exc.code is ErrorCode.TOO_LONG and transliterated is not None:
                exc.details["transliterated"] = transliterated
            raise
        fields: dict[str, object] = {
            "coding": _coding_name(request.data_coding),
            "parts": request.parts,
            "split": _preview_split(request),
        }
        if transliterated is not None:
            fields["transliterated"] = transliterated
        return fields

    async def _submit(self, requests: list[SubmitRequest]) -> Sequence[SubmitResult]:
        if self._pending + len(requests) > self._settings.max_pending:
            raise BackendOverloadedError(
                f"{self._pending} messages are awaiting storage (limit "
                f"{self._settings.max_pending}); retry later"
            )
        self._pending += len(requests)
        try:
            results = await self._backend.submit(requests)
        finally:
            self._pending -= len(requests)
        if len(results) != len(requests):
            raise RuntimeError(f"backend returned {len(results)} results for {len(requests)}")
        return results

    async def _submit_batch(
        self, request: _SubmitBatch, req: msgspec.Raw | msgspec.UnsetType
    ) -> _Reply:
        count = len(request.messages)
        if not 1 <= count <= self._settings.max_batch:
            raise RequestError(
                ErrorCode.INVALID_REQUEST,
                f"messages: must hold 1..{self._settings.max_batch} messages, got {count}",
            )
        results: list[dict[str, object] | None] = [None] * count
        valid: list[tuple[int, SubmitRequest]] = []
        previewed = 0
        now = self._now()
        for index, raw in enumerate(request.messages):
            where = f"messages[{index}]"
            try:
                try:
                    message = _MESSAGE.decode(raw)
                except msgspec.ValidationError as exc:
                    raise _validation_error(exc, where) from exc
                if request.op == "preview":
                    results[index] = {"ok": True, **self._preview(message, f"{where}.", now)}
                    previewed += 1
                else:
                    valid.append((index, self._validator.message(message, f"{where}.", now)))
            except RequestError as exc:
                results[index] = {
                    "ok": False,
                    "error": exc.code,
                    "message": exc.message,
                    **exc.details,
                }
        if request.op == "preview":
            return _Reply(
                "preview",
                _reply(req, accepted=previewed, rejected=count - previewed, results=results),
                ok=True,
            )
        if valid:
            stored = await self._submit([m for _, m in valid])
            for (index, _), result in zip(valid, stored, strict=True):
                results[index] = {"ok": True, **_result_fields(result)}
        rejected = count - len(valid)
        return _Reply(
            "submit",
            _reply(req, accepted=len(valid), rejected=rejected, results=results),
            ok=True,
        )

    async def stream_events(
        self, writer: asyncio.StreamWriter, cursor: int, types: frozenset[str]
    ) -> None:
        """Write every event after ``cursor`` (of ``types``, if any) to ``writer``, forever."""
        backend = self._backend
        while True:
            batch = await backend.events_after(cursor, self._settings.event_batch)
            if not batch:
                await backend.wait_events(cursor)
                continue
            lines = []
            for event in batch:
                cursor = event.cursor
                if types and _EVENT_HEAD.decode(event.body).event not in types:
                    continue
                lines.append(stream_line(event.cursor, event.body))
            writer.write(b"".join(lines))  # one write (one system call) per batch
            await writer.drain()


class _Connection:
    """One client: reads lines, answers them in order, streams events once subscribed.

    Memory is bounded per connection: at most ``pipeline`` requests in flight, and reading
    pauses while the bytes of unanswered requests plus unwritten replies exceed
    ``max_connection_buffer`` (a client that pipelines without reading its replies is simply
    not read any more; the kernel's socket buffers then stop it).
    """

    def __init__(
        self, server: IntakeServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._server = server
        self._writer = writer
        self._settings = settings = server._settings  # noqa: SLF001 - part of the server
        self._lines = _LineReader(reader, settings.max_line, settings.line_timeout)
        self._stream: asyncio.Task[None] | None = None
        self._held = 0  # bytes of requests read and not answered, and of replies not written
        self._room = asyncio.Event()
        self._room.set()

    async def run(self) -> None:
        replies: asyncio.Queue[asyncio.Task[_Reply] | None] = asyncio.Queue(self._settings.pipeline)
        writer_task = asyncio.create_task(self._write_replies(replies))
        in_flight: set[asyncio.Task[_Reply]] = set()
        try:
            while True:
                await self._room.wait()
                line = await self._lines.next_line()
                if line is None:
                    break
                if isinstance(line, _Read):
                    task = asyncio.create_task(self._refuse(line))
                else:
                    if not line.strip():
                        continue
                    self._hold(len(line))  # released once answered
                    task = asyncio.create_task(self._answer(line))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                await replies.put(task)
                if line is _Read.LINE_TIMEOUT:
                    break  # what comes next is the rest of a line, or nothing: stop reading
            await replies.put(None)
            await writer_task
        finally:
            writer_task.cancel()
            for task in in_flight:
                task.cancel()
            if self._stream is not None:
                self._stream.cancel()
            await asyncio.gather(writer_task, *in_flight, return_exceptions=True)
            if self._stream is not None:
                await asyncio.gather(self._stream, return_exceptions=True)

    def _hold(self, size: int) -> None:
        self._held += size
        if self._held > self._settings.max_connection_buffer:
            self._room.clear()
        elif not self._room.is_set():
            self._room.set()

    async def _answer(self, line: bytes) -> _Reply:
        try:
            reply = await self._server.answer(line, self._start_stream)
        finally:
            self._hold(-len(line))
        self._hold(len(reply.data))  # released once written
        return reply

    async def _refuse(self, problem: _Read) -> _Reply:
        if problem is _Read.LINE_TOO_LONG:
            code = ErrorCode.LINE_TOO_LONG
            message = f"line longer than {self._settings.max_line} bytes; discarded"
        else:
            code = ErrorCode.LINE_TIMEOUT
            message = (
                f"no end of line {self._settings.line_timeout:g} s after the line began; "
                "closing the connection"
            )
        data = _error(msgspec.UNSET, code, message)
        self._hold(len(data))
        return _Reply("invalid", data, ok=False)

    async def _write_replies(self, replies: asyncio.Queue[asyncio.Task[_Reply] | None]) -> None:
        observer = self._server._observer  # noqa: SLF001
        broken = False
        while (task := await replies.get()) is not None:
            reply = await task
            observer.intake_request(reply.op, reply.ok)
            if broken:
                self._hold(-len(reply.data))
                continue  # keep consuming, so the reading side never blocks on a full queue
            try:
                self._writer.write(reply.data)
                await self._writer.drain()
            except ConnectionError:
                # The peer is gone: what it sent is still answered (a submit stays committed),
                # and aborting makes the reading side see EOF.
                broken = True
                self._writer.transport.abort()
                continue
            finally:
                self._hold(-len(reply.data))
            if reply.after is not None:
                reply.after()

    def _start_stream(self, cursor: int, types: frozenset[str]) -> None:
        if self._stream is not None:
            self._stream.cancel()  # a second subscribe replaces the first
        self._stream = asyncio.create_task(self._run_stream(cursor, types))

    async def _run_stream(self, cursor: int, types: frozenset[str]) -> None:
        try:
            await self._server.stream_events(self._writer, cursor, types)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            logger.exception("intake: event stream failed")
            self._writer.write(
                _error(msgspec.UNSET, ErrorCode.INTERNAL, "event stream failed; reconnect")
            )
            self._writer.close()


class _LineReader:
    """Newline-delimited lines from a stream, with a bound on their length and on the time a
    line may stay unfinished (an idle connection between lines has no deadline)."""

    def __init__(self, reader: asyncio.StreamReader, max_line: int, timeout: float) -> None:
        self._reader = reader
        self._max_line = max_line
        self._timeout = timeout
        self._buffer = bytearray()
        self._discarding = False  # inside a line over max_line: dropping it up to its newline
        self._began = 0.0  # loop time the unfinished line's first byte was read
        self._last_read = 0.0
        self._eof = False

    async def next_line(self) -> bytes | _Read | None:
        """The next line without its newline; LINE_TOO_LONG after discarding one;
        LINE_TIMEOUT when a line stayed unfinished too long; None at EOF."""
        buffer = self._buffer
        while True:
            if (line := self._take_line()) is not None:
                return line
            if len(buffer) > self._max_line:
                self._discarding = True  # never buffer more than a line's worth
                buffer.clear()
            if self._eof:
                return self._at_eof()
            unfinished = bool(buffer) or self._discarding
            try:
                if unfinished:
                    async with asyncio.timeout_at(self._began + self._timeout):
                        chunk = await self._reader.read(_CHUNK)
                else:
                    chunk = await self._reader.read(_CHUNK)
            except TimeoutError:
                buffer.clear()
                self._discarding = False
                self._eof = True  # the stream is out of step: read no more
                return _Read.LINE_TIMEOUT
            self._last_read = asyncio.get_running_loop().time()
            if not chunk:
                self._eof = True
                continue
            if not unfinished:
                self._began = self._last_read
            buffer += chunk

    def _take_line(self) -> bytes | _Read | None:
        buffer = self._buffer
        end = buffer.find(b"\n")
        if end < 0:
            return None
        line = bytes(buffer[:end])
        del buffer[: end + 1]
        if buffer:
            self._began = self._last_read  # the next line began in the last read
        if self._discarding or end > self._max_line:
            self._discarding = False
            return _Read.LINE_TOO_LONG
        return line

    def _at_eof(self) -> bytes | _Read | None:
        if self._discarding:
            self._discarding = False
            return _Read.LINE_TOO_LONG  # EOF inside the long line: still answer it
        if self._buffer:
            line = bytes(self._buffer)  # a last line without newline still counts
            self._buffer.clear()
            return line
        return None
