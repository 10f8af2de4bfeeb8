"""The provider's DLT optional parameters (India's TRAI DLT scheme).

Three octet-string TLVs of digits, sent without a NUL: PE_ID 0x1400 (the principal entity),
Template_ID 0x1401 and TM_ID 0x1402 (the telemarketer). The provider's table prints 51212 as the
decimal of 0x1402; 0x1402 is 5122, and the hex is what goes on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass

from smppgw.codec.constants import Tag
from smppgw.codec.tlv import Tlv, find_tlv, octet_tlv

__all__ = ["DltIds", "dlt_ids", "dlt_tlvs"]


def dlt_tlvs(
    pe_id: str | None = None, template_id: str | None = None, tm_id: str | None = None
) -> tuple[Tlv, ...]:
    """The DLT TLVs for the ids given (an empty or None id is left out), in tag order."""
    out: list[Tlv] = []
    if pe_id:
        out.append(octet_tlv(Tag.PE_ID, pe_id))
    if template_id:
        out.append(octet_tlv(Tag.TEMPLATE_ID, template_id))
    if tm_id:
        out.append(octet_tlv(Tag.TM_ID, tm_id))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class DltIds:
    """The DLT ids a PDU carries; None for each one absent."""

    pe_id: str | None = None
    template_id: str | None = None
    tm_id: str | None = None


def _text(value: bytes | None) -> str | None:
    # Octet strings of digits: a sender may still terminate them with a NUL.
    return None if value is None else value.rstrip(b"\x00").decode("latin-1")


def dlt_ids(tlvs: tuple[Tlv, ...]) -> DltIds:
    """Read the DLT ids from a PDU's ``tlvs`` (the first of each tag)."""
    return DltIds(
        pe_id=_text(find_tlv(tlvs, Tag.PE_ID)),
        template_id=_text(find_tlv(tlvs, Tag.TEMPLATE_ID)),
        tm_id=_text(find_tlv(tlvs, Tag.TM_ID)),
    )
