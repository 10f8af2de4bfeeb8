"""Text coding for SMPP short messages: data_coding <-> str, long-message splitting, UDH.

Sources: 3GPP TS 23.038 (alphabets and the data coding scheme), 3GPP TS 23.040 section
9.2.3.24 (user data header information elements), SMPP v3.4 sections 5.2.19 (data_coding),
5.2.12 (esm_class UDHI) and 5.3.2.22-24 (sar_* TLVs), and the provider's "Character Sets, Class,
and Data Coding" section.

Alphabets, by data_coding (see :func:`alphabet_for`):

* GSM 03.38 7-bit default alphabet plus its extension table: 0 (the provider's default), 1
  (IA5 in SMPP, which the provider treats as GSM), and the TS 23.038 section 4 coding groups
  with a message class: 0x10-0x13 (0x10 is flash, class 0) and 0xF0-0xF3. SMPP carries
  septets *unpacked*, one per octet, unless the SMSC is configured otherwise; ``packed=True``
  selects the packed form of TS 23.038 section 6.1.2.1.1.
* Latin-1 (ISO-8859-1): 3.
* UCS-2: 8 and 0x18-0x1B (0x18 is flash). The provider expects UTF-16BE, so characters outside
  the BMP travel as surrogate pairs (emoji survive).
* 8-bit data: 2, 4, 0x14-0x17 and 0xF4-0xF7. Their octets are exposed as Latin-1 (one character
  per octet, U+0000..U+00FF), which is lossless in both directions, so binary payloads can be
  shown, logged and round-tripped as text. Callers sending real binary data should build the
  short_message bytes themselves.

Everything else raises :class:`UnsupportedCodingError`.

Decoding choices for GSM (TS 23.038 section 6.2.1.1):

* An escape (0x1B) followed by a code the extension table does not define decodes as the
  default-alphabet character of that code, as the note under the table requires.
* 0x1B 0x1B (reserved for a further extension table) decodes as one space, as the table's note
  1 requires ("display a space until another extension table is defined").
* A lone 0x1B at the very end decodes as a space too, for the same reason: it is an escape with
  nothing to extend, and refusing the whole message over it would lose the rest of the text.
* An unpacked octet with the high bit set is not a septet and raises :class:`TextDecodeError`.

Splitting (:func:`split_text`): the single-message limits are 160 septets, 140 octets of
Latin-1 / 8-bit data, and 70 UTF-16 code units; a longer text is cut into parts that leave room
for a concatenation UDH (153 / 134 / 67 with the 6-octet UDH, 152 / 133 / 66 with the 7-octet
16-bit-reference one). An escape pair or a surrogate pair is never cut. The short_message of a
part is the UDH followed by the encoded text; for GSM the text stays unpacked (one septet per
octet), so no fill bits are inserted: the SMSC adds them when it packs the user data for the air
interface (TS 23.040 section 9.2.3.24).
"""

from __future__ import annotations

import codecs
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from .constants import CommandStatus, DataCoding, EsmClass, Tag
from .errors import EncodeError, SmppError
from .tlv import Tlv, u8_tlv, u16_tlv

__all__ = [
    "Alphabet",
    "Concat",
    "InformationElement",
    "MessageTooLongError",
    "Part",
    "SplitMethod",
    "TextDecodeError",
    "TextEncodeError",
    "Udh",
    "UdhError",
    "UnsupportedCodingError",
    "alphabet_for",
    "build_udh",
    "choose_coding",
    "concat_udh",
    "concatenated_parts",
    "count_parts",
    "decode_text",
    "encode_text",
    "gsm_septet_length",
    "is_gsm",
    "parse_udh",
    "payload_tlv",
    "split_message",
    "split_octets",
    "split_sar",
    "split_text",
]


# --------------------------------------------------------------------------------------------
# Errors


class TextEncodeError(EncodeError):
    """A character the chosen data_coding cannot represent.

    Attributes:
        character: the offending character.
        position: its index in the text.
        data_coding: the data_coding asked for.
    """

    def __init__(self, character: str, position: int, data_coding: int) -> None:
        alphabet = _ALPHABETS.get(data_coding)
        name = f" ({alphabet.value})" if alphabet is not None else ""
        super().__init__(
            f"character {character!r} (U+{ord(character):04X}) at position {position} cannot "
            f"be encoded with data_coding 0x{data_coding:02X}{name}"
        )
        self.character = character
        self.position = position
        self.data_coding = data_coding


class TextDecodeError(SmppError, ValueError):
    """Octets that are not valid text in the given data_coding (e.g. odd-length UCS-2).

    Attributes:
        data_coding: the data_coding the octets were decoded with.
        position: offset of the first offending octet, or None when unknown.
    """

    def __init__(self, message: str, *, data_coding: int, position: int | None = None) -> None:
        super().__init__(message)
        self.data_coding = data_coding
        self.position = position


class UnsupportedCodingError(SmppError, ValueError):
    """A data_coding this module does not encode or decode (or packed=True on a non-GSM one).

    Attributes:
        data_coding: the data_coding asked for.
        status: the command_status an SMSC answers such a submit with (ESME_RINVDCS).
    """

    status: Final = CommandStatus.ESME_RINVDCS

    def __init__(self, data_coding: int, reason: str = "is not supported") -> None:
        super().__init__(f"data_coding 0x{data_coding:02X} {reason}")
        self.data_coding = data_coding


class MessageTooLongError(EncodeError):
    """A text that needs more parts than allowed (max_parts, and never more than 255).

    Attributes:
        parts: the number of parts the text needs.
        max_parts: the limit that was exceeded.
    """

    def __init__(self, parts: int, max_parts: int) -> None:
        super().__init__(f"text needs {parts} parts, more than the limit of {max_parts}")
        self.parts = parts
        self.max_parts = max_parts


class UdhError(SmppError, ValueError):
    """A malformed user data header (length past the end, an element overrunning it)."""


# --------------------------------------------------------------------------------------------
# Alphabets and data_coding


class Alphabet(enum.Enum):
    """The character repertoire a data_coding selects."""

    GSM7 = "GSM 03.38"
    LATIN_1 = "Latin-1"
    UCS2 = "UCS-2/UTF-16BE"
    OCTET = "8-bit data as Latin-1"


def _alphabet_table() -> dict[int, Alphabet]:
    table = {
        0x00: Alphabet.GSM7,
        0x01: Alphabet.GSM7,  # IA5 in SMPP; the provider handles it as GSM 03.38
        0x02: Alphabet.OCTET,
        0x03: Alphabet.LATIN_1,
        0x04: Alphabet.OCTET,
        0x08: Alphabet.UCS2,
    }
    # TS 23.038 section 4, general data coding with a message class (bit 4 set, uncompressed):
    # bits 3-2 give the alphabet, bits 1-0 the class (0 = flash).
    for message_class in range(4):
        table[0x10 | message_class] = Alphabet.GSM7
        table[0x14 | message_class] = Alphabet.OCTET
        table[0x18 | message_class] = Alphabet.UCS2
        # Coding group 1111: bit 2 selects GSM 7-bit (0) or 8-bit data (1).
        table[0xF0 | message_class] = Alphabet.GSM7
        table[0xF4 | message_class] = Alphabet.OCTET
    return table


_ALPHABETS: Final = MappingProxyType(_alphabet_table())


def alphabet_for(data_coding: int) -> Alphabet:
    """The alphabet a data_coding value selects.

    Raises:
        UnsupportedCodingError: for any data_coding outside the table in the module docstring.
    """
    alphabet = _ALPHABETS.get(data_coding)
    if alphabet is None:
        raise UnsupportedCodingError(data_coding)
    return alphabet


# --------------------------------------------------------------------------------------------
# GSM 03.38 tables (3GPP TS 23.038 section 6.2.1 and 6.2.1.1)

_ESC: Final = 0x1B
_UNDEFINED: Final = "\ufffe"  # codecs.charmap_decode's marker for an unmapped octet

# The default alphabet, indexed by septet. 0x1B is the escape to the extension table and has
# no character of its own.
_GSM_DEFAULT: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00-0x0F
    "Δ_ΦΓΛΩΠΨΣΘΞ" + _UNDEFINED + "ÆæßÉ"  # 0x10-0x1F
    " !\"#¤%&'()*+,-./"  # 0x20-0x2F
    "0123456789:;<=>?"  # 0x30-0x3F
    "¡ABCDEFGHIJKLMNO"  # 0x40-0x4F
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50-0x5F
    "¿abcdefghijklmno"  # 0x60-0x6F
    "pqrstuvwxyzäöñüà"  # 0x70-0x7F
)
assert len(_GSM_DEFAULT) == 128

# The extension table: code after 0x1B -> character. 0x0A is the page break (form feed).
_GSM_EXTENSION: Final = MappingProxyType(
    {
        0x0A: "\x0c",
        0x14: "^",
        0x28: "{",
        0x29: "}",
        0x2F: "\\",
        0x3C: "[",
        0x3D: "~",
        0x3E: "]",
        0x40: "|",
        0x65: "€",
    }
)

# charmap_decode table: 128 septets, then 128 undefined octets (high bit set is not a septet).
_GSM_DECODE: Final = _GSM_DEFAULT + _UNDEFINED * 128


def _extension_decode_table() -> str:
    # An undefined extension code shows the default-alphabet character of that code (note
    # under TS 23.038 table 6.2.1.1); 0x1B 0x1B shows a space (note 1 of the same table).
    chars = list(_GSM_DEFAULT)
    chars[_ESC] = " "
    for code, char in _GSM_EXTENSION.items():
        chars[code] = char
    return "".join(chars)


_GSM_EXTENSION_DECODE: Final = _extension_decode_table()

# The marker for an ASCII character the alphabet lacks (` for instance): any non-ASCII
# character makes the final .encode("ascii") fail, and the slow path then finds the culprit.
_NOT_GSM: Final = "\x80"


def _encode_table() -> dict[int, str]:
    # str.translate table: character -> septet(s) as code points < 0x80. Mapping every ASCII
    # character to exactly one ASCII character keeps CPython's ASCII fast path for translate.
    table = dict.fromkeys(range(128), _NOT_GSM)
    for septet, char in enumerate(_GSM_DEFAULT):
        if char != _UNDEFINED:
            table[ord(char)] = chr(septet)
    for code, char in _GSM_EXTENSION.items():
        table[ord(char)] = chr(_ESC) + chr(code)
    return table


_GSM_ENCODE: Final = MappingProxyType(_encode_table())
_GSM_CHARS: Final = frozenset(chr(c) for c, s in _GSM_ENCODE.items() if s != _NOT_GSM)


def _gsm_encode(text: str, data_coding: int) -> bytes:
    try:
        return text.translate(_GSM_ENCODE).encode("ascii")
    except UnicodeEncodeError:
        position = next(i for i, char in enumerate(text) if char not in _GSM_CHARS)
        raise TextEncodeError(text[position], position, data_coding) from None


def _gsm_decode_run(data: bytes, start: int, stop: int, data_coding: int) -> str:
    try:
        return codecs.charmap_decode(data[start:stop], "strict", _GSM_DECODE)[0]
    except UnicodeDecodeError as exc:
        position = start + exc.start
        raise _not_a_septet(data[position], position, data_coding) from None


def _not_a_septet(octet: int, position: int, data_coding: int) -> TextDecodeError:
    return TextDecodeError(
        f"octet 0x{octet:02X} at offset {position} is not a GSM 03.38 septet",
        data_coding=data_coding,
        position=position,
    )


def _gsm_decode(data: bytes, data_coding: int) -> str:
    if _ESC not in data:
        return _gsm_decode_run(data, 0, len(data), data_coding)
    pieces: list[str] = []
    pos = 0
    size = len(data)
    while (esc := data.find(_ESC, pos)) >= 0:
        pieces.append(_gsm_decode_run(data, pos, esc, data_coding))
        if esc + 1 == size:
            pieces.append(" ")  # a lone trailing escape: see the module docstring
            pos = size
            break
        code = data[esc + 1]
        if code > 0x7F:
            raise _not_a_septet(code, esc + 1, data_coding)
        pieces.append(_GSM_EXTENSION_DECODE[code])
        pos = esc + 2
    pieces.append(_gsm_decode_run(data, pos, size, data_coding))
    return "".join(pieces)


# --------------------------------------------------------------------------------------------
# Packed septets (TS 23.038 section 6.1.2.1.1)
#
# Septet i occupies bits 7i..7i+6 of the octet string read as a little-endian integer. Rather
# than shifting septet by septet, the whole string is one Python integer and three mask-and-shift
# steps squeeze each 8-octet group (8 septets, one per octet) into 56 contiguous bits; then the
# empty eighth octet of every group is dropped. Unpacking runs the same steps backwards.

_CR: Final = 0x0D


def _mask(pattern: bytes, size: int) -> int:
    return int.from_bytes(pattern * (size // len(pattern)), "little")


def _pack(septets: bytes) -> bytes:
    count = len(septets)
    if count % 8 == 7 or (count % 8 == 0 and count and septets[-1] == _CR):
        # 7 spare bits at the end would read as '@', so the spec pads with CR; a wanted final
        # CR on an octet boundary gets a second CR so the receiver does not drop it as padding.
        septets += b"\r"
        count += 1
    size = count + (-count % 8)
    value = int.from_bytes(septets, "little")
    low = value & _mask(b"\x7f\x00", size)
    value = low | ((value ^ low) >> 1)  # 2 septets -> 14 bits in each 16
    low = value & _mask(b"\xff\x3f\x00\x00", size)
    value = low | ((value ^ low) >> 2)  # 4 septets -> 28 bits in each 32
    low = value & _mask(b"\xff\xff\xff\x0f\x00\x00\x00\x00", size)
    value = low | ((value ^ low) >> 4)  # 8 septets -> 56 bits in each 64
    octets = bytearray(value.to_bytes(size, "little"))
    del octets[7::8]
    return bytes(octets[: (7 * count + 7) // 8])


def _unpack(octets: bytes) -> bytes:
    count = len(octets) * 8 // 7
    groups = -(-len(octets) // 7)
    padded = octets + bytes(groups * 7 - len(octets))
    spread = bytearray(groups * 8)
    for index in range(7):
        spread[index::8] = padded[index::7]
    size = len(spread)
    value = int.from_bytes(spread, "little")
    value = (value & _mask(b"\xff\xff\xff\x0f\x00\x00\x00\x00", size)) | (
        (value << 4) & _mask(b"\x00\x00\x00\x00\xff\xff\xff\x0f", size)
    )
    value = (value & _mask(b"\xff\x3f\x00\x00", size)) | (
        (value << 2) & _mask(b"\x00\x00\xff\x3f", size)
    )
    value = (value & _mask(b"\x7f\x00", size)) | ((value << 1) & _mask(b"\x00\x7f", size))
    septets = value.to_bytes(size, "little")[:count]
    if count % 8 == 0 and count and septets[-1] == _CR:
        septets = septets[:-1]  # the CR padding of a text of 8n-1 septets (see _pack)
    return septets


# --------------------------------------------------------------------------------------------
# Public encode / decode


def encode_text(text: str, data_coding: int, *, packed: bool = False) -> bytes:
    """Encode text for the short_message (or message_payload) of the given data_coding.

    Args:
        text: the message text.
        data_coding: the PDU's data_coding (see the module docstring for the supported values).
        packed: for GSM 03.38, pack the septets (TS 23.038 6.1.2.1.1) instead of one per octet.

    Returns:
        The encoded octets.

    Raises:
        TextEncodeError: a character the alphabet cannot represent (a lone surrogate in UCS-2).
        UnsupportedCodingError: an unsupported data_coding, or packed=True for a non-GSM one.
    """
    alphabet = _ALPHABETS.get(data_coding)
    if alphabet is Alphabet.GSM7:
        septets = _gsm_encode(text, data_coding)
        return _pack(septets) if packed else septets
    if alphabet is None:
        raise UnsupportedCodingError(data_coding)
    if packed:
        raise UnsupportedCodingError(data_coding, "cannot be packed: only GSM 7-bit packs")
    try:
        return text.encode("utf-16-be" if alphabet is Alphabet.UCS2 else "latin-1")
    except UnicodeEncodeError as exc:
        raise TextEncodeError(text[exc.start], exc.start, data_coding) from None


def decode_text(data: bytes, data_coding: int, *, packed: bool = False) -> str:
    """Decode a short_message (without its UDH) or message_payload to text.

    Decode a concatenated message after joining the parts' octets: a UTF-16 surrogate pair
    split by a careless sender is then whole again.

    Args:
        data: the octets.
        data_coding: the PDU's data_coding.
        packed: for GSM 03.38, the octets hold packed septets.

    Returns:
        The text.

    Raises:
        TextDecodeError: invalid octets (an odd-length or lone-surrogate UCS-2 string, an
            unpacked GSM octet above 0x7F).
        UnsupportedCodingError: an unsupported data_coding, or packed=True for a non-GSM one.
    """
    alphabet = _ALPHABETS.get(data_coding)
    if alphabet is Alphabet.GSM7:
        return _gsm_decode(_unpack(data) if packed else data, data_coding)
    if alphabet is None:
        raise UnsupportedCodingError(data_coding)
    if packed:
        raise UnsupportedCodingError(data_coding, "cannot be packed: only GSM 7-bit packs")
    if alphabet is not Alphabet.UCS2:
        return data.decode("latin-1")
    try:
        return data.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise TextDecodeError(
            f"invalid UTF-16BE at offset {exc.start}: {exc.reason}",
            data_coding=data_coding,
            position=exc.start,
        ) from None


def is_gsm(text: str) -> bool:
    """True when every character is in the GSM 03.38 default alphabet or its extension table."""
    return _GSM_CHARS.issuperset(text)


def gsm_septet_length(text: str) -> int:
    """The number of septets text takes in GSM 03.38 (an extension character counts 2).

    Raises:
        TextEncodeError: a character outside GSM 03.38.
    """
    return len(_gsm_encode(text, DataCoding.DEFAULT))


def choose_coding(text: str) -> DataCoding:
    """DataCoding.DEFAULT (GSM 03.38) when the text fits the GSM alphabet, else DataCoding.UCS2."""
    return DataCoding.DEFAULT if _GSM_CHARS.issuperset(text) else DataCoding.UCS2


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
