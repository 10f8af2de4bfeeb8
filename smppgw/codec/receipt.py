"""Delivery receipts: the Appendix B text of SMPP v3.4 and the receipt TLVs.

Real SMSCs vary the text: key case (``Id:``, ``STAT:``), missing fields, 10- or 12-digit dates,
``submit_date`` for ``submit date``, ``Text:``, extra vendor fields (``mcc:``, ``network:``).
:func:`parse_receipt` takes all of these: a key is a word (or ``submit date`` / ``done date``)
followed by a colon at the start of the text or after white space; its value runs to the next
key, except ``text``, whose value is the rest of the message (it may itself contain colons).

A text is a receipt when it has an ``id`` and a ``stat`` or an ``err``; anything else raises
:class:`ReceiptParseError`. :func:`receipt_info` combines the text with the
receipted_message_id / message_state / network_error_code TLVs, the TLVs winning.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from .constants import MessageState, Tag
from .errors import SmppError
from .tlv import NetworkErrorCode, Tlv, find_tlv

__all__ = [
    "STAT_STATES",
    "DeliveryReceipt",
    "ReceiptInfo",
    "ReceiptParseError",
    "format_receipt",
    "parse_receipt",
    "receipt_info",
    "stat_to_message_state",
]


class ReceiptParseError(SmppError, ValueError):
    """A short_message (and TLVs) that do not make a delivery receipt."""


_KEY = re.compile(r"(?:^|(?<=\s))(submit[ _]date|done[ _]date|[A-Za-z][A-Za-z0-9_-]*)[ \t]*:")
_KNOWN = {"id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text"}
# The text as SMPP v3.4 Appendix B writes it (and most SMSCs send it): one regular expression
# reads it; anything else takes the general, tolerant parser.
_CANONICAL = re.compile(
    r"id:(\S+) sub:(\S*) dlvrd:(\S*) submit date:(\S*) done date:(\S*) stat:(\S*)"
    r" err:(\S*)(?: text:(.*))?",
    re.DOTALL,
)


def _receipt_date(value: str | None) -> datetime | None:
    if value is None or not value.isdigit() or len(value) not in (10, 12):
        return None
    try:
        # The receipt carries the SMSC's local time without a zone: naive on purpose.
        return datetime.strptime(value, "%y%m%d%H%M%S" if len(value) == 12 else "%y%m%d%H%M")  # noqa: DTZ007
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """The fields of a receipt text, as written (None where absent)."""

    id: str | None = None
    sub: str | None = None
    dlvrd: str | None = None
    submit_date: str | None = None
    done_date: str | None = None
    stat: str | None = None
    err: str | None = None
    text: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def submit_datetime(self) -> datetime | None:
        """``submit date`` as a naive datetime (the SMSC's local time), or None."""
        return _receipt_date(self.submit_date)

    @property
    def done_datetime(self) -> datetime | None:
        """``done date`` as a naive datetime (the SMSC's local time), or None."""
        return _receipt_date(self.done_date)


def parse_receipt(short_message: bytes | str) -> DeliveryReceipt:
    """Parse a receipt text.

    Raises:
        ReceiptParseError: no ``id``, or neither ``stat`` nor ``err``.
    """
    text = short_message.decode("latin-1") if isinstance(short_message, bytes) else short_message
    canonical = _CANONICAL.fullmatch(text)
    if canonical is not None:
        rid, sub, dlvrd, submit_date, done_date, stat, err, body = canonical.groups()
        return DeliveryReceipt(rid, sub, dlvrd, submit_date, done_date, stat, err, body)
    return _parse_general(text)


def _parse_general(text: str) -> DeliveryReceipt:
    fields: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    matches = list(_KEY.finditer(text))
    for index, match in enumerate(matches):
        key = match.group(1).lower().replace("_", " ")
        if key == "text":
            fields.setdefault("text", text[match.end() :])
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        value = text[match.end() : end].strip()
        if key in _KNOWN:
            fields.setdefault(key, value)
        else:
            extra.append((match.group(1), value))
    if "id" not in fields or not ("stat" in fields or "err" in fields):
        raise ReceiptParseError(f"not a delivery receipt: {text[:80]!r}")
    return DeliveryReceipt(
        id=fields["id"],
        sub=fields.get("sub"),
        dlvrd=fields.get("dlvrd"),
        submit_date=fields.get("submit date"),
        done_date=fields.get("done date"),
        stat=fields.get("stat"),
        err=fields.get("err"),
        text=fields.get("text"),
        extra=tuple(extra),
    )


def format_receipt(
    message_id: str,
    *,
    stat: str,
    err: str | int = 0,
    submit_date: datetime,
    done_date: datetime,
    text: str = "",
    sub: int = 1,
    dlvrd: int | None = None,
) -> bytes:
    """The Appendix B receipt text (``text`` is cut to its first 20 characters)."""
    if dlvrd is None:
        dlvrd = 1 if stat == "DELIVRD" else 0
    err_text = f"{err:03d}" if isinstance(err, int) else err
    return (
        f"id:{message_id} sub:{sub:03d} dlvrd:{dlvrd:03d} "
        f"submit date:{submit_date:%y%m%d%H%M} done date:{done_date:%y%m%d%H%M} "
        f"stat:{stat} err:{err_text} text:{text[:20]}"
    ).encode("latin-1", "replace")


# Receipt stat words (SMPP v3.4 Appendix B, and their long spellings) to message states.
STAT_STATES: Final[dict[str, MessageState]] = {
    "DELIVRD": MessageState.DELIVERED,
    "DELIVERED": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED,
    "DELETED": MessageState.DELETED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "UNDELIVERABLE": MessageState.UNDELIVERABLE,
    "ACCEPTD": MessageState.ACCEPTED,
    "ACCEPTED": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
    "REJECTD": MessageState.REJECTED,
    "REJECTED": MessageState.REJECTED,
    "ENROUTE": MessageState.ENROUTE,
}


def stat_to_message_state(
    stat: str | None, *, rejection: Callable[[str], bool] | None = None
) -> MessageState | None:
    """The message state a receipt's stat word means.

    Appendix B words map directly; other words (an SMSC's own: ``ABSENT-SUB``, ``NET-ERR``...)
    are UNDELIVERABLE, except those ``rejection`` says name a refusal (it gets the word in upper
    case; :func:`smppgw.provider.is_rejection` knows the provider's), which are REJECTED. None
    for an empty stat.
    """
    if not stat:
        return None
    word = stat.strip().upper()
    state = STAT_STATES.get(word)
    if state is not None:
        return state
    if rejection is not None and rejection(word):
        return MessageState.REJECTED
    return MessageState.UNDELIVERABLE


@dataclass(frozen=True, slots=True)
class ReceiptInfo:
    """What a receipt says, from its TLVs where present, else from its text."""

    message_id: str
    state: MessageState | None
    stat: str | None
    err: str | None
    network_error: NetworkErrorCode | None
    receipt: DeliveryReceipt | None


def receipt_info(
    short_message: bytes,
    tlvs: tuple[Tlv, ...],
    *,
    rejection: Callable[[str], bool] | None = None,
) -> ReceiptInfo:
    """Combine a receipt's text with its TLVs; the TLVs win where both say something.

    ``rejection`` is passed to :func:`stat_to_message_state` for the state of a receipt
    without a message_state TLV.

    Raises:
        ReceiptParseError: neither the TLVs nor the text give a message id.
    """
    try:
        receipt: DeliveryReceipt | None = parse_receipt(short_message)
    except ReceiptParseError:
        receipt = None
    raw_id = find_tlv(tlvs, Tag.RECEIPTED_MESSAGE_ID)
    message_id = raw_id.rstrip(b"\x00").decode("latin-1") if raw_id else None
    if not message_id:
        message_id = receipt.id if receipt is not None else None
    if not message_id:
        raise ReceiptParseError("delivery receipt without a message id (text or TLV)")
    stat = receipt.stat if receipt is not None else None
    raw_state = find_tlv(tlvs, Tag.MESSAGE_STATE)
    state = (
        MessageState(raw_state[0])
        if raw_state is not None and len(raw_state) == 1
        else stat_to_message_state(stat, rejection=rejection)
    )
    raw_error = find_tlv(tlvs, Tag.NETWORK_ERROR_CODE)
    network_error = (
        NetworkErrorCode(raw_error[0], int.from_bytes(raw_error[1:3], "big"))
        if raw_error is not None and len(raw_error) == 3
        else None
    )
    return ReceiptInfo(
        message_id=message_id,
        state=state,
        stat=stat,
        err=receipt.err if receipt is not None else None,
        network_error=network_error,
        receipt=receipt,
    )
