"""Optional parameters (TLVs, SMPP v3.4 section 3.2.4.1 and 5.3).

A :class:`Tlv` is the raw (tag, value) pair as it stood on the wire: unknown tags survive a
decode/encode round trip unchanged. Typed views of the common tags are functions here and
properties on every PDU (see :class:`TlvAccessors`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .constants import MessageState, Tag

__all__ = [
    "NetworkErrorCode",
    "Tlv",
    "TlvAccessors",
    "c_string_tlv",
    "find_tlv",
    "octet_tlv",
    "u8_tlv",
    "u16_tlv",
]

_U16 = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class Tlv:
    """One optional parameter: a 16-bit tag and its raw value octets."""

    tag: int
    value: bytes


@dataclass(frozen=True, slots=True)
class NetworkErrorCode:
    """network_error_code (0x0423): network type (1 GSM, 2 ANSI-136, 3 IS-95...) and its code."""

    network_type: int
    error_code: int

    def to_bytes(self) -> bytes:
        return bytes((self.network_type,)) + _U16.pack(self.error_code)


def u8_tlv(tag: int, value: int) -> Tlv:
    return Tlv(tag, bytes((value,)))


def u16_tlv(tag: int, value: int) -> Tlv:
    return Tlv(tag, _U16.pack(value))


def c_string_tlv(tag: int, value: str) -> Tlv:
    """A C-octet string TLV (value plus its terminating NUL), e.g. receipted_message_id."""
    return Tlv(tag, value.encode("latin-1") + b"\x00")


def octet_tlv(tag: int, value: str | bytes) -> Tlv:
    """An octet-string TLV without a terminator (e.g. :mod:`smppgw.provider.dlt`'s ids)."""
    return Tlv(tag, value.encode("latin-1") if isinstance(value, str) else value)


def find_tlv(tlvs: tuple[Tlv, ...], tag: int) -> bytes | None:
    """The value of the first TLV with this tag, or None."""
    for tlv in tlvs:
        if tlv.tag == tag:
            return tlv.value
    return None


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    # C-octet string TLVs carry their NUL.
    return value.rstrip(b"\x00").decode("latin-1")


def _uint(value: bytes | None, size: int) -> int | None:
    if value is None or len(value) != size:
        return None
    return int.from_bytes(value, "big")


class TlvAccessors:
    """Typed read access to the common TLVs of a PDU's ``tlvs`` tuple.

    Each property returns None when the TLV is absent (or, for integers, has the wrong size).
    """

    __slots__ = ()
    tlvs: tuple[Tlv, ...]

    def tlv(self, tag: int) -> bytes | None:
        """The raw value of the first TLV with this tag, or None."""
        return find_tlv(self.tlvs, tag)

    @property
    def message_payload(self) -> bytes | None:
        return find_tlv(self.tlvs, Tag.MESSAGE_PAYLOAD)

    @property
    def receipted_message_id(self) -> str | None:
        return _text(find_tlv(self.tlvs, Tag.RECEIPTED_MESSAGE_ID))

    @property
    def message_state(self) -> MessageState | None:
        value = _uint(find_tlv(self.tlvs, Tag.MESSAGE_STATE), 1)
        return None if value is None else MessageState(value)

    @property
    def network_error_code(self) -> NetworkErrorCode | None:
        value = find_tlv(self.tlvs, Tag.NETWORK_ERROR_CODE)
        if value is None or len(value) != 3:
            return None
        return NetworkErrorCode(value[0], _U16.unpack_from(value, 1)[0])

    @property
    def sar_msg_ref_num(self) -> int | None:
        return _uint(find_tlv(self.tlvs, Tag.SAR_MSG_REF_NUM), 2)

    @property
    def sar_total_segments(self) -> int | None:
        return _uint(find_tlv(self.tlvs, Tag.SAR_TOTAL_SEGMENTS), 1)

    @property
    def sar_segment_seqnum(self) -> int | None:
        return _uint(find_tlv(self.tlvs, Tag.SAR_SEGMENT_SEQNUM), 1)

    @property
    def user_message_reference(self) -> int | None:
        return _uint(find_tlv(self.tlvs, Tag.USER_MESSAGE_REFERENCE), 2)

    @property
    def sc_interface_version(self) -> int | None:
        return _uint(find_tlv(self.tlvs, Tag.SC_INTERFACE_VERSION), 1)
