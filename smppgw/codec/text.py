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
from types import MappingProxyType
from typing import Final

from .constants import CommandStatus, DataCoding
from .errors import EncodeError, SmppError

__all__ = [
    "Alphabet",
    "MessageTooLongError",
    "TextDecodeError",
    "TextEncodeError",
    "UdhError",
    "UnsupportedCodingError",
    "alphabet_for",
    "choose_coding",
    "decode_text",
    "encode_text",
    "gsm_septet_length",
    "is_gsm",
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
