"""Long messages cut into parts: by UDH concatenation, by the SAR TLVs, or whole in the
message_payload TLV; how many parts a text takes.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from .constants import EsmClass, Tag
from .errors import EncodeError
from .text import _ALPHABETS, _ESC, Alphabet, MessageTooLongError, alphabet_for, encode_text
from .tlv import Tlv, u8_tlv, u16_tlv
from .udh import _MAX_PARTS, _check_reference, concat_udh

__all__ = [
    "Part",
    "SplitMethod",
    "concatenated_parts",
    "count_parts",
    "payload_tlv",
    "split_message",
    "split_octets",
    "split_sar",
    "split_text",
]

# --------------------------------------------------------------------------------------------
# Splitting long messages


class SplitMethod(enum.Enum):
    """How a text too long for one short_message travels.

    UDH: parts whose short_message starts with a concatenation UDH (esm_class UDHI).
    SAR: parts with sar_msg_ref_num / sar_total_segments / sar_segment_seqnum TLVs (SMPP 3.4
    5.3.2.22-24); the SMSC builds the UDH.
    PAYLOAD: the whole text in one message_payload TLV (SMPP 3.4 5.3.2.32); the SMSC splits.
    """

    UDH = "udh"
    SAR = "sar"
    PAYLOAD = "payload"


@dataclass(frozen=True, slots=True)
class Part:
    """One submit's worth of a message: what goes in short_message, the TLVs to add, and the
    esm_class bits to OR in (UDHI for a UDH part)."""

    short_message: bytes
    tlvs: tuple[Tlv, ...] = ()
    esm_class: EsmClass = EsmClass.DEFAULT


# Octets of encoded (unpacked) text: (single message, part with 8-bit ref UDH, with 16-bit).
# GSM: a 6-octet UDH takes 7 septets (48 bits + 1 fill bit), a 7-octet one takes 8 septets.
# UCS-2: parts hold whole code units, so 134 -> 67 units and 133 -> 66 units (132 octets).
_LIMITS: Final = MappingProxyType(
    {
        Alphabet.GSM7: (160, 153, 152),
        Alphabet.LATIN_1: (140, 134, 133),
        Alphabet.OCTET: (140, 134, 133),
        Alphabet.UCS2: (140, 134, 132),
    }
)

_MAX_TLV_VALUE: Final = 0xFFFF


def _part_ends(data: bytes, alphabet: Alphabet, udh16: bool, *, force: bool = False) -> list[int]:
    """The end offset of each part of the encoded text (one entry when it fits one message,
    unless ``force``: then sized for a header even when one part is enough)."""
    single, part8, part16 = _LIMITS[alphabet]
    size = len(data)
    if size <= single and not force:
        return [size]
    capacity = part16 if udh16 else part8
    ends: list[int] = []
    pos = 0
    while size - pos > capacity:
        end = pos + capacity
        if alphabet is Alphabet.GSM7:
            # Our encoder emits 0x1B only as the first octet of an escape pair: keep the pair.
            if data[end - 1] == _ESC:
                end -= 1
        elif alphabet is Alphabet.UCS2 and 0xD8 <= data[end - 2] <= 0xDB:
            end -= 2  # a high surrogate: keep its low surrogate with it
        ends.append(end)
        pos = end
    ends.append(size)
    return ends


def _checked_ends(
    data: bytes, alphabet: Alphabet, udh16: bool, max_parts: int | None, *, force: bool = False
) -> list[int]:
    ends = _part_ends(data, alphabet, udh16, force=force)
    limit = _MAX_PARTS if max_parts is None else min(max_parts, _MAX_PARTS)
    if len(ends) > limit:
        raise MessageTooLongError(len(ends), limit)
    return ends


def _chunks(data: bytes, ends: list[int]) -> list[bytes]:
    starts = [0, *ends[:-1]]
    return [data[start:end] for start, end in zip(starts, ends, strict=True)]


def payload_tlv(text: str, data_coding: int) -> Tlv:
    """The message_payload TLV (0x0424) carrying the whole encoded text.

    Raises:
        TextEncodeError, UnsupportedCodingError: as :func:`encode_text`.
        EncodeError: the encoded text exceeds the 65535 octets a TLV can hold.
    """
    data = encode_text(text, data_coding)
    if len(data) > _MAX_TLV_VALUE:
        raise EncodeError(f"encoded text of {len(data)} octets exceeds a TLV's 65535")
    return Tlv(Tag.MESSAGE_PAYLOAD, data)


def split_message(
    text: str,
    data_coding: int,
    *,
    method: SplitMethod = SplitMethod.UDH,
    reference: int = 0,
    udh16: bool = False,
    max_parts: int | None = None,
) -> tuple[Part, ...]:
    """Everything needed to submit text, one :class:`Part` per submit_sm.

    A text that fits one message is one Part with neither UDH nor SAR TLVs, whatever the
    method. SAR parts are sized as for a 16-bit reference UDH whatever ``udh16`` says, because
    the SMSC turns the 16-bit sar_msg_ref_num into that header.

    Args:
        text: the message text.
        data_coding: the PDU's data_coding.
        method: UDH, SAR or PAYLOAD (see :class:`SplitMethod`).
        reference: the concatenation reference shared by the parts (8 bits, or 16 bits with
            udh16 or SAR).
        udh16: use the 16-bit reference UDH (IEI 0x08).
        max_parts: refuse texts needing more parts (255 at most in any case).

    Raises:
        TextEncodeError, UnsupportedCodingError: as :func:`encode_text`.
        MessageTooLongError: more parts than max_parts (or 255).
        EncodeError: a reference out of range, a payload over 65535 octets.
    """
    if method is SplitMethod.PAYLOAD:
        return (Part(b"", (payload_tlv(text, data_coding),)),)
    alphabet_for(data_coding)  # UnsupportedCodingError before encoding
    return split_octets(
        encode_text(text, data_coding),
        data_coding,
        method=method,
        reference=reference,
        udh16=udh16,
        max_parts=max_parts,
    )


def split_octets(
    data: bytes,
    data_coding: int,
    *,
    method: SplitMethod = SplitMethod.UDH,
    reference: int = 0,
    udh16: bool = False,
    max_parts: int | None = None,
    always_concatenate: bool = False,
) -> tuple[Part, ...]:
    """:func:`split_message` for user data already encoded in ``data_coding`` (a binary
    payload, or text encoded elsewhere).

    Parts never end inside a GSM escape pair (0x1B and its code) or a UTF-16 surrogate pair;
    a data_coding without a character table (binary, or a vendor value) is cut as octets.
    ``always_concatenate`` marks even a message that fits one part as part 1 of 1 (test
    traffic for receivers' reassembly).

    Raises:
        MessageTooLongError: more parts than max_parts (or 255).
        EncodeError: a reference out of range, a payload over 65535 octets.
    """
    if method is SplitMethod.PAYLOAD:
        if len(data) > _MAX_TLV_VALUE:
            raise EncodeError(f"payload of {len(data)} octets exceeds a TLV's 65535")
        return (Part(b"", (Tlv(Tag.MESSAGE_PAYLOAD, data),)),)
    wide = udh16 or method is SplitMethod.SAR
    _check_reference(reference, wide)
    alphabet = _ALPHABETS.get(data_coding, Alphabet.OCTET)
    ends = _checked_ends(data, alphabet, wide, max_parts, force=always_concatenate)
    if len(ends) == 1 and not always_concatenate:
        return (Part(data),)
    return concatenated_parts(_chunks(data, ends), method=method, reference=reference, udh16=udh16)


def concatenated_parts(
    chunks: Sequence[bytes],
    *,
    method: SplitMethod = SplitMethod.UDH,
    reference: int = 0,
    udh16: bool = False,
) -> tuple[Part, ...]:
    """The parts of a concatenated message from its user data cut in ``chunks``: each with
    the concatenation UDH (and esm_class UDHI), or with the SAR TLVs.

    Raises:
        EncodeError: a reference out of range.
    """
    _check_reference(reference, udh16 or method is SplitMethod.SAR)
    total = len(chunks)
    if method is SplitMethod.SAR:
        return tuple(
            Part(
                chunk,
                (
                    u16_tlv(Tag.SAR_MSG_REF_NUM, reference),
                    u8_tlv(Tag.SAR_TOTAL_SEGMENTS, total),
                    u8_tlv(Tag.SAR_SEGMENT_SEQNUM, seqnum),
                ),
            )
            for seqnum, chunk in enumerate(chunks, 1)
        )
    return tuple(
        Part(concat_udh(reference, total, seqnum, udh16=udh16) + chunk, (), EsmClass.UDHI)
        for seqnum, chunk in enumerate(chunks, 1)
    )


def split_text(
    text: str,
    data_coding: int,
    *,
    max_parts: int | None = None,
    reference: int = 0,
    udh16: bool = False,
    method: SplitMethod = SplitMethod.UDH,
) -> list[bytes]:
    """The short_message of each part of text (see :func:`split_message` for the rules).

    With SplitMethod.UDH a multipart message's payloads start with the concatenation UDH (set
    esm_class UDHI); with SAR they carry the bare text (the TLVs come from :func:`split_sar`);
    with PAYLOAD the one entry is the whole encoded text for the message_payload TLV.

    Raises:
        TextEncodeError, UnsupportedCodingError, MessageTooLongError, EncodeError: as
        :func:`split_message`.
    """
    if method is SplitMethod.PAYLOAD:
        return [payload_tlv(text, data_coding).value]
    parts = split_message(
        text,
        data_coding,
        method=method,
        reference=reference,
        udh16=udh16,
        max_parts=max_parts,
    )
    return [part.short_message for part in parts]


def split_sar(
    text: str, data_coding: int, *, reference: int, max_parts: int | None = None
) -> list[tuple[bytes, tuple[Tlv, ...]]]:
    """Each part's short_message (no UDH) and its sar_msg_ref_num / sar_total_segments /
    sar_segment_seqnum TLVs; a text that fits one message has no TLVs.

    Raises:
        TextEncodeError, UnsupportedCodingError, MessageTooLongError, EncodeError: as
        :func:`split_message` (reference must fit 16 bits).
    """
    parts = split_message(
        text, data_coding, method=SplitMethod.SAR, reference=reference, max_parts=max_parts
    )
    return [(part.short_message, part.tlvs) for part in parts]


def count_parts(
    text: str, data_coding: int, *, udh16: bool = False, method: SplitMethod = SplitMethod.UDH
) -> int:
    """How many parts :func:`split_text` makes of text (no limit applied: may exceed 255).

    Raises:
        TextEncodeError, UnsupportedCodingError: as :func:`encode_text`.
    """
    if method is SplitMethod.PAYLOAD:
        return 1
    alphabet = alphabet_for(data_coding)
    data = encode_text(text, data_coding)
    return len(_part_ends(data, alphabet, udh16 or method is SplitMethod.SAR))
