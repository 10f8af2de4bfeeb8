"""Delivery receipts as an ESME sees them, and the SMSC message ids they name.

A receipt (SMPP v3.4 Appendix B) comes back as a deliver_sm or data_sm, on any bind of the
account, naming the ``message_id`` its submit_sm_resp gave: in the receipted_message_id TLV
(section 5.3.2.12) or in the ``id:`` field of its text. :func:`dlr_from_pdu` reads one into a
:class:`Dlr` (the text parsed by :func:`smppgw.codec.receipt.receipt_info`).

SMSCs answer the resp with a decimal id and write the receipt in hex, or the other way round, or
pad with zeros, or change case: ids are compared in a normalised form
(:func:`normalize_message_id`), and :func:`id_candidates` lists the forms an id may take
elsewhere, the exact one first. :class:`smppgw.esme.tracker.ReceiptTracker` (in memory) and the
gateway's durable correlator both match receipts by these rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from smppgw.codec.constants import EsmClass, MessageState
from smppgw.codec.pdu import DataSm, DeliverSm
from smppgw.codec.receipt import ReceiptInfo, receipt_info
from smppgw.provider import is_rejection

__all__ = [
    "FINAL_STATES",
    "MAX_ID_LENGTH",
    "Dlr",
    "dlr_from_pdu",
    "id_candidates",
    "is_receipt",
    "normalize_message_id",
    "user_data",
]

MAX_ID_LENGTH: Final = 64
"""message_id is a C-Octet String of at most 65 octets with its NUL (SMPP v3.4 section 5.2.23).
Longer ids are not converted between bases (and cannot come from a conforming SMSC)."""

FINAL_STATES: Final = frozenset(
    {
        MessageState.DELIVERED,
        MessageState.EXPIRED,
        MessageState.DELETED,
        MessageState.UNDELIVERABLE,
        MessageState.REJECTED,
    }
)
"""The message states after which no further receipt is expected (SMPP v3.4 section 5.2.28).

ENROUTE and ACCEPTED are intermediate. UNKNOWN ("message is in invalid state") is *not* final:
the SMSC does not know the outcome yet, and a later receipt may still say it. Vendor values the
spec does not name are not final either; a part that never gets a final receipt stays SUBMITTED
until its entry expires.
"""

_DECIMAL: Final = frozenset("0123456789")
_HEX: Final = frozenset("0123456789abcdef")


# --- ids ---------------------------------------------------------------------------------------


def normalize_message_id(smsc_id: str) -> str:
    """The form in which SMSC message ids are compared.

    White space around the id is stripped, letters are lower-cased and leading zeros removed
    (an id of only zeros becomes ``"0"``); an empty id stays empty.

    Args:
        smsc_id: an id as an SMSC wrote it (submit_sm_resp or receipt).

    Returns:
        The normalised id.
    """
    text = smsc_id.strip().lower()
    if not text:
        return ""
    return text.lstrip("0") or "0"


def id_candidates(smsc_id: str) -> tuple[str, ...]:
    """The normalised forms under which an id may have been written elsewhere.

    The normalised id comes first (an exact match wins), then its alternative-base forms:

    * an id of decimal digits also gives the lower-case hex of its value;
    * an id of hex digits also gives the decimal of its value read as hex. This applies to
      all-decimal ids too: ``"1000"`` may be the hex of 4096 just as ``"6699"`` is the decimal
      of ``0x1a2b``. Without it, a resp id ``"4096"`` would not find its receipt written as
      ``"1000"`` (about one short hex id in forty has no letter in it).

    The relation is symmetric: ``b in id_candidates(a)`` exactly when
    ``normalize_message_id(a) in id_candidates(b)``, so matching does not depend on which side
    (resp or receipt) arrived first. Ids with other characters (a UUID with dashes) and ids
    longer than 64 characters give only their normalised form.

    Args:
        smsc_id: an id as an SMSC wrote it.

    Returns:
        The candidates, deduplicated, in preference order.
    """
    norm = normalize_message_id(smsc_id)
    if not norm or len(norm) > MAX_ID_LENGTH:
        return (norm,)
    chars = set(norm)
    out = [norm]
    if chars <= _DECIMAL:
        out.append(format(int(norm), "x"))
    if chars <= _HEX:
        out.append(str(int(norm, 16)))
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class Dlr:
    """One delivery receipt, as received."""

    smsc_id: str
    """The receipted id as received (the receipted_message_id TLV wins over the text)."""
    stat: str | None
    """The text's stat word in upper case (``DELIVRD``, ``UNDELIV``...), or None."""
    state: MessageState | None
    """The message_state TLV, else the state the stat word means, else None."""
    err: str | None
    """The text's err field, or None."""
    done_date: str | None
    """The text's ``done date`` field as written, or None."""
    received_at: float
    """Unix time of reception."""
    server: str | None = None
    """The server whose bind carried the receipt."""
    bind: str | None = None
    """The bind that carried the receipt."""
    via: str | None = None
    """None for a delivery receipt; ``"query_sm"`` for a state the SMSC gave in answer to a
    query_sm (the gateway's receipt recovery)."""

    @property
    def final(self) -> bool:
        """Whether the receipt reports a final state (see :data:`FINAL_STATES`)."""
        return self.state in FINAL_STATES


_RECEIPT_TYPES: Final = (EsmClass.DELIVERY_RECEIPT, EsmClass.INTERMEDIATE_NOTIFICATION)


def user_data(pdu: DeliverSm | DataSm) -> bytes:
    """The user data of an inbound PDU: short_message, else the message_payload TLV.

    data_sm has no short_message: its text travels in message_payload (section 4.7.1); a
    deliver_sm may use message_payload too, with sm_length 0 (section 5.3.2.32).
    """
    if isinstance(pdu, DeliverSm) and pdu.short_message:
        return pdu.short_message
    return pdu.message_payload or b""


def is_receipt(pdu: DeliverSm | DataSm) -> bool:
    """Whether the esm_class message type (section 5.2.12) says *SMSC delivery receipt*
    (0x04) or *intermediate delivery notification* (0x20): anything else is a message."""
    return (pdu.esm_class & EsmClass.TYPE_MASK) in _RECEIPT_TYPES


def dlr_from_pdu(
    pdu: DeliverSm | DataSm,
    *,
    received_at: float,
    server: str | None = None,
    bind: str | None = None,
) -> Dlr | None:
    """The receipt a deliver_sm or data_sm carries, or None when it carries none.

    A PDU is a receipt when the message type bits of its esm_class (section 5.2.12) say
    *SMSC delivery receipt* (0x04) or *intermediate delivery notification* (0x20); the latter
    reports a non-final state of the same message. SME delivery and user acknowledgements
    (0x08, 0x10) come from the recipient, not the SMSC, and mobile-originated messages (0x00)
    are not receipts, even when their text looks like one. The id comes from the
    receipted_message_id TLV, else the text's ``id:``; the state from the message_state TLV,
    else the stat word. Malformed text never raises: the TLVs alone make a receipt when they
    name an id, and None is returned otherwise.

    Args:
        pdu: the decoded deliver_sm or data_sm.
        received_at: Unix time of reception.
        server: the server the PDU arrived from, for reporting.
        bind: the bind the PDU arrived on, for reporting.

    Returns:
        The receipt, or None.
    """
    if not is_receipt(pdu):
        return None
    try:
        info: ReceiptInfo = receipt_info(user_data(pdu), pdu.tlvs, rejection=is_rejection)
    except ValueError:  # ReceiptParseError: neither the TLVs nor the text give an id
        return None
    if not info.message_id.strip():
        return None
    stat = info.stat.strip().upper() if info.stat else None
    return Dlr(
        smsc_id=info.message_id,
        stat=stat or None,
        state=info.state,
        err=info.err,
        done_date=info.receipt.done_date if info.receipt is not None else None,
        received_at=received_at,
        server=server,
        bind=bind,
    )
