"""User data headers (3GPP TS 23.040 section 9.2.3.24): information elements and the
concatenation header of long messages, built and parsed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from .errors import EncodeError
from .text import UdhError

__all__ = ["Concat", "InformationElement", "Udh", "build_udh", "concat_udh", "parse_udh"]

# --------------------------------------------------------------------------------------------
# User data header (TS 23.040 section 9.2.3.24)

_IEI_CONCAT_8: Final = 0x00
_IEI_CONCAT_16: Final = 0x08
_MAX_PARTS: Final = 255  # the total-parts field of the concatenation IE is one octet


@dataclass(frozen=True, slots=True)
class InformationElement:
    """One UDH information element: its identifier (IEI) and data."""

    iei: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Concat:
    """A concatenated-message element: reference, total parts and this part's number (1-based)."""

    reference: int
    total: int
    seqnum: int


@dataclass(frozen=True, slots=True)
class Udh:
    """A parsed user data header."""

    elements: tuple[InformationElement, ...]

    @property
    def concat(self) -> Concat | None:
        """The concatenation element (IEI 0x00 8-bit or 0x08 16-bit reference), or None.

        Per TS 23.040 9.2.3.24: the last occurrence counts; an element with the wrong length, a
        zero total, or a sequence number of zero or above the total is ignored (None).
        """
        for element in reversed(self.elements):
            if element.iei == _IEI_CONCAT_8:
                if len(element.data) != 3:
                    return None
                reference = element.data[0]
            elif element.iei == _IEI_CONCAT_16:
                if len(element.data) != 4:
                    return None
                reference = int.from_bytes(element.data[:2], "big")
            else:
                continue
            total, seqnum = element.data[-2], element.data[-1]
            if total == 0 or not 1 <= seqnum <= total:
                return None
            return Concat(reference, total, seqnum)
        return None

    def to_bytes(self) -> bytes:
        """The header on the wire, length octet (UDHL) first."""
        return build_udh(self.elements)


def build_udh(elements: Iterable[InformationElement]) -> bytes:
    """A user data header (UDHL followed by each IEI, IEDL, data) from its elements.

    Raises:
        EncodeError: an IEI above 255, an element's data or the whole header over 255 octets.
    """
    body = bytearray()
    for element in elements:
        if not 0 <= element.iei <= 0xFF or len(element.data) > 0xFF:
            raise EncodeError(
                f"UDH element 0x{element.iei:X} with {len(element.data)} octets does not fit"
            )
        body += bytes((element.iei, len(element.data)))
        body += element.data
    if len(body) > 0xFF:
        raise EncodeError(f"UDH of {len(body)} octets exceeds the 255 its length octet allows")
    return bytes((len(body),)) + body


def _check_reference(reference: int, udh16: bool) -> None:
    limit = 0xFFFF if udh16 else 0xFF
    if not 0 <= reference <= limit:
        bits = 16 if udh16 else 8
        raise EncodeError(f"concatenation reference {reference} does not fit {bits} bits")


def concat_udh(reference: int, total: int, seqnum: int, *, udh16: bool = False) -> bytes:
    """The concatenation UDH ``05 00 03 ref total seq`` or ``06 08 04 refhi reflo total seq``.

    Raises:
        EncodeError: reference out of range, total not 1..255, seqnum not 1..total.
    """
    _check_reference(reference, udh16)
    if not 1 <= total <= _MAX_PARTS or not 1 <= seqnum <= total:
        raise EncodeError(f"part {seqnum} of {total} is not a valid concatenation position")
    if udh16:
        return bytes((6, _IEI_CONCAT_16, 4, reference >> 8, reference & 0xFF, total, seqnum))
    return bytes((5, _IEI_CONCAT_8, 3, reference, total, seqnum))


def parse_udh(short_message: bytes) -> tuple[Udh, bytes]:
    """Split a short_message whose esm_class has UDHI set into its UDH and the user data.

    Returns:
        The parsed header and the octets after it (still encoded; see :func:`decode_text`).

    Raises:
        UdhError: no length octet, a length past the end, an element overrunning the header.
    """
    if not short_message:
        raise UdhError("UDH missing: the short_message is empty")
    end = 1 + short_message[0]
    if end > len(short_message):
        raise UdhError(
            f"UDH length {short_message[0]} runs past the short_message "
            f"({len(short_message) - 1} octets follow)"
        )
    elements: list[InformationElement] = []
    pos = 1
    while pos < end:
        if pos + 2 > end:
            raise UdhError(f"UDH element header at offset {pos} is cut off by the UDH length")
        stop = pos + 2 + short_message[pos + 1]
        if stop > end:
            raise UdhError(
                f"UDH element 0x{short_message[pos]:02X} at offset {pos} overruns the header "
                f"by {stop - end} octets"
            )
        elements.append(InformationElement(short_message[pos], short_message[pos + 2 : stop]))
        pos = stop
    return Udh(tuple(elements)), short_message[end:]
