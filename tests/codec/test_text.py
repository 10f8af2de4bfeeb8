"""Text coding, splitting and UDH handling (smppgw.codec.text).

The GSM 03.38 expectations below are written out from 3GPP TS 23.038 section 6.2.1 (the 7-bit
default alphabet) and 6.2.1.1 (its extension table) as Unicode code points, independently of
how the implementation stores its tables.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.codec.constants import CommandStatus, DataCoding, EsmClass, Tag
from smppgw.codec.errors import EncodeError, SmppError
from smppgw.codec.split import (
    Part,
    SplitMethod,
    count_parts,
    payload_tlv,
    split_message,
    split_octets,
    split_sar,
    split_text,
)
from smppgw.codec.text import (
    Alphabet,
    MessageTooLongError,
    TextDecodeError,
    TextEncodeError,
    UdhError,
    UnsupportedCodingError,
    alphabet_for,
    choose_coding,
    decode_text,
    encode_text,
    gsm_septet_length,
    is_gsm,
)
from smppgw.codec.tlv import Tlv
from smppgw.codec.udh import Concat, InformationElement, Udh, build_udh, concat_udh, parse_udh

# 3GPP TS 23.038 section 6.2.1, GSM 7 bit default alphabet: septet -> Unicode code point.
# 0x1B is the escape to the extension table (no character of its own).
TS_23_038_DEFAULT: tuple[int | None, ...] = (
    # 0x00-0x0F: @ £ $ ¥ è é ù ì ò Ç LF Ø ø CR Å å
    0x0040, 0x00A3, 0x0024, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC,
    0x00F2, 0x00C7, 0x000A, 0x00D8, 0x00F8, 0x000D, 0x00C5, 0x00E5,
    # 0x10-0x1F: Δ _ Φ Γ Λ Ω Π Ψ Σ Θ Ξ ESC Æ æ ß É
    0x0394, 0x005F, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8,
    0x03A3, 0x0398, 0x039E, None,   0x00C6, 0x00E6, 0x00DF, 0x00C9,
    # 0x20-0x2F: SP ! " # ¤ % & ' ( ) * + , - . /
    0x0020, 0x0021, 0x0022, 0x0023, 0x00A4, 0x0025, 0x0026, 0x0027,
    0x0028, 0x0029, 0x002A, 0x002B, 0x002C, 0x002D, 0x002E, 0x002F,
    # 0x30-0x3F: 0-9 : ; < = > ?
    0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037,
    0x0038, 0x0039, 0x003A, 0x003B, 0x003C, 0x003D, 0x003E, 0x003F,
    # 0x40-0x4F: ¡ A-O
    0x00A1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047,
    0x0048, 0x0049, 0x004A, 0x004B, 0x004C, 0x004D, 0x004E, 0x004F,
    # 0x50-0x5F: P-Z Ä Ö Ñ Ü §
    0x0050, 0x0051, 0x0052, 0x0053, 0x0054, 0x0055, 0x0056, 0x0057,
    0x0058, 0x0059, 0x005A, 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7,
    # 0x60-0x6F: ¿ a-o
    0x00BF, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067,
    0x0068, 0x0069, 0x006A, 0x006B, 0x006C, 0x006D, 0x006E, 0x006F,
    # 0x70-0x7F: p-z ä ö ñ ü à
    0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077,
    0x0078, 0x0079, 0x007A, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0,
)  # fmt: skip

# 3GPP TS 23.038 section 6.2.1.1, extension table: code after 0x1B -> Unicode code point.
TS_23_038_EXTENSION: dict[int, int] = {
    0x0A: 0x000C,  # page break (form feed)
    0x14: 0x005E,  # ^
    0x28: 0x007B,  # {
    0x29: 0x007D,  # }
    0x2F: 0x005C,  # backslash
    0x3C: 0x005B,  # [
    0x3D: 0x007E,  # ~
    0x3E: 0x005D,  # ]
    0x40: 0x007C,  # |
    0x65: 0x20AC,  # €
}

ESC = 0x1B
GSM_TO_SEPTETS: dict[str, bytes] = {
    chr(cp): bytes((code,)) for code, cp in enumerate(TS_23_038_DEFAULT) if cp is not None
} | {chr(cp): bytes((ESC, code)) for code, cp in TS_23_038_EXTENSION.items()}
GSM_CHARS = sorted(GSM_TO_SEPTETS)
EXTENSION_CHARS = sorted(chr(cp) for cp in TS_23_038_EXTENSION.values())


def reference_septets(text: str) -> bytes:
    """Unpacked GSM encoding built from the spec table above."""
    return b"".join(GSM_TO_SEPTETS[char] for char in text)


def reference_pack(septets: bytes) -> bytes:
    """TS 23.038 6.1.2.1.1 packing, septet by septet, with the CR padding rules."""
    if len(septets) % 8 == 7 or (len(septets) % 8 == 0 and septets and septets[-1] == 0x0D):
        septets += b"\r"
    value = 0
    for index, septet in enumerate(septets):
        value |= septet << (7 * index)
    return value.to_bytes((7 * len(septets) + 7) // 8, "little")


gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=400)
# Few distinct characters, many of them two-septet or two-unit ones: stresses part boundaries.
gsm_boundary_text = st.text(alphabet=st.sampled_from(["a", "€", "{", "\\"]), max_size=1200)
ucs2_boundary_text = st.text(alphabet=st.sampled_from(["a", "あ", "😀", "𝄞"]), max_size=600)
latin1_text = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=600)


# ------------------------------------------------------------------------------ GSM tables


@pytest.mark.parametrize("code", [c for c in range(128) if c != ESC])
def test_default_alphabet_entry_matches_ts_23_038(code: int) -> None:
    cp = TS_23_038_DEFAULT[code]
    assert cp is not None
    assert decode_text(bytes((code,)), DataCoding.DEFAULT) == chr(cp)
    assert encode_text(chr(cp), DataCoding.DEFAULT) == bytes((code,))
    assert gsm_septet_length(chr(cp)) == 1


@pytest.mark.parametrize(("code", "cp"), sorted(TS_23_038_EXTENSION.items()))
def test_extension_table_entry_matches_ts_23_038(code: int, cp: int) -> None:
    assert decode_text(bytes((ESC, code)), DataCoding.DEFAULT) == chr(cp)
    assert encode_text(chr(cp), DataCoding.DEFAULT) == bytes((ESC, code))
    assert gsm_septet_length(chr(cp)) == 2


def test_the_gsm_characters_are_exactly_those_of_ts_23_038() -> None:
    reference = {chr(cp) for cp in TS_23_038_DEFAULT if cp is not None}
    reference |= {chr(cp) for cp in TS_23_038_EXTENSION.values()}
    accepted = {chr(cp) for cp in range(0x10000) if is_gsm(chr(cp))}
    assert accepted == reference
    assert set(GSM_CHARS) == reference
    assert not is_gsm("😀")


@pytest.mark.parametrize("char", ["`", "ç", "\x1b", "\t", "á", "😀", "\ufffe"])
def test_characters_outside_gsm_raise_typed_error_naming_them(char: str) -> None:
    text = "ok " + char + " tail"
    with pytest.raises(TextEncodeError) as info:
        encode_text(text, DataCoding.DEFAULT)
    assert info.value.character == char
    assert info.value.position == 3
    assert info.value.data_coding == 0
    assert f"U+{ord(char):04X}" in str(info.value)
    assert isinstance(info.value, EncodeError)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, SmppError)


def test_encode_error_message_names_character_position_and_alphabet() -> None:
    with pytest.raises(TextEncodeError) as info:
        encode_text("abç", DataCoding.GSM_FLASH)
    assert str(info.value) == (
        "character 'ç' (U+00E7) at position 2 cannot be encoded with data_coding 0x10 (GSM 03.38)"
    )
    assert str(TextEncodeError("x", 0, 0x05)).endswith("data_coding 0x05")


def test_position_counts_characters_not_septets() -> None:
    with pytest.raises(TextEncodeError) as info:
        encode_text("€€€ç", DataCoding.DEFAULT)
    assert info.value.position == 3


@pytest.mark.parametrize(
    "code", [c for c in range(128) if c not in TS_23_038_EXTENSION and c != ESC]
)
def test_undefined_extension_code_decodes_as_default_character(code: int) -> None:
    # TS 23.038 6.2.1.1: a code the extension table lacks shows the default-alphabet character.
    cp = TS_23_038_DEFAULT[code]
    assert cp is not None
    assert decode_text(bytes((0x41, ESC, code, 0x42)), DataCoding.DEFAULT) == f"A{chr(cp)}B"


def test_double_escape_decodes_as_space() -> None:
    # TS 23.038 6.2.1.1 note 1: 0x1B 0x1B shows a space until another table is defined.
    assert decode_text(b"A\x1b\x1bB", DataCoding.DEFAULT) == "A B"


def test_lone_trailing_escape_decodes_as_space() -> None:
    assert decode_text(b"AB\x1b", DataCoding.DEFAULT) == "AB "
    assert decode_text(b"\x1b", DataCoding.DEFAULT) == " "


def test_escape_then_escape_then_extension() -> None:
    assert decode_text(b"\x1b\x1b\x1b\x65\x1b\x28", DataCoding.DEFAULT) == " €{"


@pytest.mark.parametrize(
    ("data", "position"),
    [(b"\x80", 0), (b"abc\xff", 3), (b"ab\x1b\xe5", 3), (b"\x1b\x65xy\xc0", 4)],
)
def test_unpacked_octet_above_0x7f_raises_typed_error(data: bytes, position: int) -> None:
    with pytest.raises(TextDecodeError) as info:
        decode_text(data, DataCoding.DEFAULT)
    assert info.value.position == position
    assert info.value.data_coding == 0
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, SmppError)


def test_mixed_text_golden_septets() -> None:
    text = "@£$ΔΩ_ Hello {world} €5 [ok]|~^\\\x0c"
    expected = bytes.fromhex(
        "000102101511"  # @ £ $ Δ Ω _
        "2048656c6c6f20"  # " Hello "
        "1b28776f726c641b29"  # {world}
        "201b653520"  # " €5 "
        "1b3c6f6b1b3e1b401b3d1b141b2f1b0a"  # [ok]|~^\ FF
    )
    assert encode_text(text, DataCoding.DEFAULT) == expected
    assert decode_text(expected, DataCoding.DEFAULT) == text


@given(gsm_text)
def test_gsm_round_trip_and_matches_spec_table(text: str) -> None:
    encoded = encode_text(text, DataCoding.DEFAULT)
    assert encoded == reference_septets(text)
    assert decode_text(encoded, DataCoding.DEFAULT) == text
    assert gsm_septet_length(text) == len(encoded)
    assert is_gsm(text)


@given(st.binary(max_size=300))
def test_gsm_decode_of_any_octets_returns_text_or_typed_error(data: bytes) -> None:
    try:
        text = decode_text(data, DataCoding.DEFAULT)
    except TextDecodeError:
        assert any(octet > 0x7F for octet in data)
    else:
        assert all(octet <= 0x7F for octet in data)
        assert is_gsm(text)


# ------------------------------------------------------------------------------ packed septets


@pytest.mark.parametrize(
    ("text", "packed_hex"),
    [
        ("hellohello", "e8329bfd4697d9ec37"),  # the widely published TS 23.038 example
        ("Hello", "c8329bfd06"),
        ("Test", "d4f29c0e"),
        ("€", "9b32"),  # 1B 65
        ("", ""),
        ("@", "00"),
        # 7 septets: the 7 spare bits carry CR (0x0D), not zeros that would read as '@'.
        ("1234567", "31d98c56b3dd1a"),
        # 8 septets fill 7 octets exactly.
        ("12345678", "31d98c56b3dd70"),
    ],
)
def test_packed_golden_vectors(text: str, packed_hex: str) -> None:
    packed = bytes.fromhex(packed_hex)
    assert encode_text(text, DataCoding.DEFAULT, packed=True) == packed
    assert decode_text(packed, DataCoding.DEFAULT, packed=True) == text


def test_packed_wanted_final_cr_on_octet_boundary_gets_a_second_cr() -> None:
    # TS 23.038 6.1.2.1.1: the receiver would otherwise drop the wanted CR as padding; with
    # the extra CR it "performs the carriage return twice".
    packed = encode_text("abcdefg\r", DataCoding.DEFAULT, packed=True)
    assert len(packed) == 8
    assert packed == reference_pack(b"abcdefg\r")
    assert decode_text(packed, DataCoding.DEFAULT, packed=True) == "abcdefg\r\r"


def test_packed_zero_padding_of_eight_n_minus_one_reads_as_at_sign() -> None:
    # A sender that pads with zeros instead of CR: the spare septet is '@' (nothing to strip).
    assert decode_text(bytes.fromhex("31d98c56b3dd00"), 0, packed=True) == "1234567@"


@given(gsm_text)
def test_packed_matches_reference_packer_and_round_trips(text: str) -> None:
    packed = encode_text(text, DataCoding.DEFAULT, packed=True)
    septets = reference_septets(text)
    assert packed == reference_pack(septets)
    decoded = decode_text(packed, DataCoding.DEFAULT, packed=True)
    if len(septets) % 8 == 0 and text.endswith("\r"):
        assert decoded == text + "\r"
    else:
        assert decoded == text


@given(st.binary(max_size=300))
def test_packed_decode_of_any_octets_returns_text(data: bytes) -> None:
    text = decode_text(data, DataCoding.DEFAULT, packed=True)
    assert is_gsm(text)


# ------------------------------------------------------------------------------ other alphabets


def test_ucs2_keeps_surrogate_pairs() -> None:
    assert encode_text("a😀", DataCoding.UCS2) == bytes.fromhex("0061d83dde00")
    assert decode_text(bytes.fromhex("0061d83dde00"), DataCoding.UCS2) == "a😀"
    assert encode_text("€", DataCoding.UCS2_FLASH) == bytes.fromhex("20ac")


@given(st.text(max_size=300))
def test_ucs2_round_trip_of_any_text(text: str) -> None:
    encoded = encode_text(text, DataCoding.UCS2)
    assert encoded == text.encode("utf-16-be")
    assert decode_text(encoded, DataCoding.UCS2) == text


@given(latin1_text)
def test_latin1_round_trip(text: str) -> None:
    encoded = encode_text(text, DataCoding.LATIN_1)
    assert len(encoded) == len(text)
    assert decode_text(encoded, DataCoding.LATIN_1) == text


@pytest.mark.parametrize("data_coding", [0x02, 0x04, 0x14, 0xF4, 0xF7])
def test_8bit_data_is_exposed_as_latin1_both_ways(data_coding: int) -> None:
    data = bytes(range(256))
    assert decode_text(data, data_coding) == data.decode("latin-1")
    assert encode_text(data.decode("latin-1"), data_coding) == data
    assert alphabet_for(data_coding) is Alphabet.OCTET


def test_ucs2_odd_length_raises_typed_error() -> None:
    with pytest.raises(TextDecodeError) as info:
        decode_text(b"\x00a\x00", DataCoding.UCS2)
    assert info.value.position == 2
    assert info.value.data_coding == 8


def test_ucs2_lone_surrogate_octets_raise_typed_error() -> None:
    with pytest.raises(TextDecodeError):
        decode_text(bytes.fromhex("0061d83d0062"), DataCoding.UCS2)


def test_ucs2_lone_surrogate_character_raises_typed_error() -> None:
    with pytest.raises(TextEncodeError) as info:
        encode_text("ab\ud83d", DataCoding.UCS2)
    assert info.value.character == "\ud83d"
    assert info.value.position == 2


def test_latin1_unrepresentable_character_raises_typed_error() -> None:
    with pytest.raises(TextEncodeError) as info:
        encode_text("price: 5€", DataCoding.LATIN_1)
    assert (info.value.character, info.value.position, info.value.data_coding) == ("€", 8, 3)


@pytest.mark.parametrize(
    ("data_coding", "alphabet"),
    [
        (0x00, Alphabet.GSM7),
        (0x01, Alphabet.GSM7),  # the provider treats IA5 as GSM 03.38
        (0x10, Alphabet.GSM7),  # flash (class 0)
        (0x13, Alphabet.GSM7),
        (0xF0, Alphabet.GSM7),
        (0x03, Alphabet.LATIN_1),
        (0x08, Alphabet.UCS2),
        (0x18, Alphabet.UCS2),  # flash (class 0)
        (0x1B, Alphabet.UCS2),
    ],
)
def test_alphabet_of_data_coding(data_coding: int, alphabet: Alphabet) -> None:
    assert alphabet_for(data_coding) is alphabet
    text = "Ab{€"
    if alphabet is Alphabet.GSM7:
        assert encode_text(text, data_coding) == b"\x41\x62\x1b\x28\x1b\x65"
    elif alphabet is Alphabet.UCS2:
        assert encode_text(text, data_coding) == text.encode("utf-16-be")
    else:
        assert encode_text("Abé", data_coding) == b"Ab\xe9"


@pytest.mark.parametrize("data_coding", [0x05, 0x06, 0x07, 0x09, 0x0E, 0x1C, 0x20, 0xC0, 0xF8, 256])
def test_unsupported_data_coding_raises_typed_error(data_coding: int) -> None:
    for call in (
        lambda: encode_text("a", data_coding),
        lambda: decode_text(b"a", data_coding),
        lambda: split_text("a", data_coding),
        lambda: count_parts("a", data_coding),
        lambda: alphabet_for(data_coding),
    ):
        with pytest.raises(UnsupportedCodingError) as info:
            call()
        assert info.value.data_coding == data_coding
        assert info.value.status is CommandStatus.ESME_RINVDCS
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("data_coding", [0x03, 0x08, 0x04])
def test_packed_applies_to_gsm_only(data_coding: int) -> None:
    with pytest.raises(UnsupportedCodingError):
        encode_text("a", data_coding, packed=True)
    with pytest.raises(UnsupportedCodingError):
        decode_text(b"\x00a", data_coding, packed=True)


def test_choose_coding() -> None:
    assert choose_coding("") is DataCoding.DEFAULT
    assert choose_coding("Hello {world} €100 @ home") is DataCoding.DEFAULT
    assert choose_coding("Ça va?") is DataCoding.DEFAULT  # capital Ç is 0x09
    assert choose_coding("ça va?") is DataCoding.UCS2  # small ç is not GSM
    assert choose_coding("नमस्ते") is DataCoding.UCS2
    assert choose_coding("ok 😀") is DataCoding.UCS2


def test_gsm_septet_length_counts_extension_characters_twice() -> None:
    assert gsm_septet_length("") == 0
    assert gsm_septet_length("abc") == 3
    assert gsm_septet_length("a€{}[]~^|\\\x0c") == 1 + 10 * 2
    with pytest.raises(TextEncodeError):
        gsm_septet_length("naïve")


# ------------------------------------------------------------------------------ splitting


def test_160_gsm_septets_fit_one_message() -> None:
    text = "a" * 160
    assert split_text(text, DataCoding.DEFAULT) == [b"a" * 160]
    assert count_parts(text, DataCoding.DEFAULT) == 1


def test_161_gsm_septets_make_two_parts_of_153_and_8() -> None:
    text = "a" * 161
    parts = split_text(text, DataCoding.DEFAULT, reference=0x2A)
    assert parts == [
        bytes.fromhex("0500032a0201") + b"a" * 153,
        bytes.fromhex("0500032a0202") + b"a" * 8,
    ]
    assert count_parts(text, DataCoding.DEFAULT) == 2


def test_80_extension_characters_fit_one_message_81_do_not() -> None:
    assert split_text("€" * 80, 0) == [b"\x1b\x65" * 80]
    assert count_parts("€" * 81, 0) == 2


def test_escape_pair_straddling_the_part_boundary_moves_to_the_next_part() -> None:
    # Septets 152 and 153 (0-based) are the escape pair of '€': the first part ends at 152.
    text = "a" * 152 + "€" + "b" * 10
    parts = split_text(text, DataCoding.DEFAULT, reference=1)
    assert parts == [
        bytes.fromhex("050003010201") + b"a" * 152,
        bytes.fromhex("050003010202") + b"\x1b\x65" + b"b" * 10,
    ]


def test_escape_pair_ending_exactly_at_the_boundary_stays() -> None:
    text = "a" * 151 + "€" + "b" * 10
    parts = split_text(text, DataCoding.DEFAULT, reference=1)
    assert parts[0] == bytes.fromhex("050003010201") + b"a" * 151 + b"\x1b\x65"
    assert parts[1] == bytes.fromhex("050003010202") + b"b" * 10


def test_16bit_reference_udh_leaves_152_septets() -> None:
    text = "a" * 151 + "{" + "b" * 20
    parts = split_text(text, DataCoding.DEFAULT, reference=0xBEEF, udh16=True)
    assert parts == [
        bytes.fromhex("060804beef0201") + b"a" * 151,
        bytes.fromhex("060804beef0202") + b"\x1b\x28" + b"b" * 20,
    ]
    assert count_parts(text, DataCoding.DEFAULT, udh16=True) == 2


def test_70_ucs2_units_fit_one_message_71_make_67_and_4() -> None:
    assert split_text("あ" * 70, DataCoding.UCS2) == ["あ".encode("utf-16-be") * 70]
    parts = split_text("あ" * 71, DataCoding.UCS2, reference=7)
    assert parts == [
        bytes.fromhex("050003070201") + "あ".encode("utf-16-be") * 67,
        bytes.fromhex("050003070202") + "あ".encode("utf-16-be") * 4,
    ]


def test_35_astral_characters_fit_one_ucs2_message() -> None:
    assert count_parts("😀" * 35, DataCoding.UCS2) == 1
    assert count_parts("😀" * 35 + "a", DataCoding.UCS2) == 2


def test_surrogate_pair_straddling_the_part_boundary_moves_to_the_next_part() -> None:
    # Units 66 and 67 (0-based) are the surrogate pair: the first part holds 66 units.
    text = "a" * 66 + "😀" + "b" * 5
    parts = split_text(text, DataCoding.UCS2, reference=9)
    assert parts == [
        bytes.fromhex("050003090201") + ("a" * 66).encode("utf-16-be"),
        bytes.fromhex("050003090202") + ("😀" + "b" * 5).encode("utf-16-be"),
    ]


def test_ucs2_with_16bit_reference_leaves_66_units() -> None:
    text = "a" * 65 + "😀" + "b" * 5  # units 65 and 66 (0-based) are the surrogate pair
    parts = split_text(text, DataCoding.UCS2, reference=0x0102, udh16=True)
    assert parts == [
        bytes.fromhex("06080401020201") + ("a" * 65).encode("utf-16-be"),
        bytes.fromhex("06080401020202") + ("😀" + "b" * 5).encode("utf-16-be"),
    ]


def test_latin1_140_fit_one_message_141_make_134_and_7() -> None:
    assert split_text("é" * 140, DataCoding.LATIN_1) == [b"\xe9" * 140]
    parts = split_text("é" * 141, DataCoding.LATIN_1)
    assert parts == [
        bytes.fromhex("050003000201") + b"\xe9" * 134,
        bytes.fromhex("050003000202") + b"\xe9" * 7,
    ]
    assert len(split_text("é" * 141, DataCoding.LATIN_1, udh16=True)[0]) == 7 + 133


def test_255_parts_are_allowed_256_raise_with_the_count() -> None:
    assert count_parts("a" * 153 * 255, 0) == 255
    assert len(split_text("a" * 153 * 255, 0)) == 255
    with pytest.raises(MessageTooLongError) as info:
        split_text("a" * (153 * 255 + 1), 0)
    assert info.value.parts == 256
    assert info.value.max_parts == 255
    assert isinstance(info.value, EncodeError)
    assert count_parts("a" * (153 * 255 + 1), 0) == 256


def test_max_parts_limits_the_split() -> None:
    text = "a" * 400  # 3 parts of 153
    assert len(split_text(text, 0, max_parts=3)) == 3
    with pytest.raises(MessageTooLongError) as info:
        split_text(text, 0, max_parts=2)
    assert (info.value.parts, info.value.max_parts) == (3, 2)
    with pytest.raises(MessageTooLongError):
        split_sar(text, 0, reference=1, max_parts=1)
    assert split_text("short", 0, max_parts=1) == [b"short"]


def test_reference_must_fit_the_udh() -> None:
    with pytest.raises(EncodeError):
        split_text("a" * 200, 0, reference=256)
    with pytest.raises(EncodeError):
        split_text("a" * 200, 0, reference=-1)
    with pytest.raises(EncodeError):
        split_text("a" * 200, 0, reference=0x10000, udh16=True)
    assert split_text("a" * 200, 0, reference=0xFFFF, udh16=True)[0][:5] == b"\x06\x08\x04\xff\xff"


def test_split_message_parts_carry_udhi() -> None:
    parts = split_message("a" * 200, 0, reference=3)
    assert [p.esm_class for p in parts] == [EsmClass.UDHI, EsmClass.UDHI]
    assert all(p.tlvs == () for p in parts)
    assert split_message("hi", 0) == (Part(b"hi"),)


def test_sar_parts_carry_tlvs_and_no_udh() -> None:
    text = "a" * 152 + "€" + "b" * 10  # SAR parts hold 152 septets (16-bit reference)
    parts = split_sar(text, DataCoding.DEFAULT, reference=0x1234)
    assert parts == [
        (
            b"a" * 152,
            (
                Tlv(Tag.SAR_MSG_REF_NUM, b"\x12\x34"),
                Tlv(Tag.SAR_TOTAL_SEGMENTS, b"\x02"),
                Tlv(Tag.SAR_SEGMENT_SEQNUM, b"\x01"),
            ),
        ),
        (
            b"\x1b\x65" + b"b" * 10,
            (
                Tlv(Tag.SAR_MSG_REF_NUM, b"\x12\x34"),
                Tlv(Tag.SAR_TOTAL_SEGMENTS, b"\x02"),
                Tlv(Tag.SAR_SEGMENT_SEQNUM, b"\x02"),
            ),
        ),
    ]
    assert split_text(text, 0, reference=0x1234, method=SplitMethod.SAR) == [
        b"a" * 152,
        b"\x1b\x65" + b"b" * 10,
    ]
    assert count_parts(text, 0, method=SplitMethod.SAR) == 2
    assert all(
        p.esm_class is EsmClass.DEFAULT for p in split_message(text, 0, method=SplitMethod.SAR)
    )


def test_sar_single_part_has_no_tlvs() -> None:
    assert split_sar("hello", 0, reference=5) == [(b"hello", ())]


def test_sar_reference_must_fit_16_bits() -> None:
    with pytest.raises(EncodeError):
        split_sar("a" * 200, 0, reference=0x10000)


def test_payload_tlv_carries_the_whole_text() -> None:
    text = "a" * 500 + "€"
    assert payload_tlv(text, 0) == Tlv(Tag.MESSAGE_PAYLOAD, b"a" * 500 + b"\x1b\x65")
    assert payload_tlv("😀", 8) == Tlv(0x0424, bytes.fromhex("d83dde00"))
    assert split_text(text, 0, method=SplitMethod.PAYLOAD) == [b"a" * 500 + b"\x1b\x65"]
    assert count_parts(text, 0, method=SplitMethod.PAYLOAD) == 1
    assert split_message(text, 0, method=SplitMethod.PAYLOAD) == (
        Part(b"", (payload_tlv(text, 0),)),
    )
    with pytest.raises(EncodeError):
        payload_tlv("a" * 0x10000, 0)


def test_split_reports_unrepresentable_characters() -> None:
    with pytest.raises(TextEncodeError):
        split_text("a" * 200 + "ç", 0)
    with pytest.raises(TextEncodeError):
        count_parts("ç", 0)


def _reassemble(parts: list[bytes], data_coding: int) -> tuple[list[Concat], str]:
    concats: list[Concat] = []
    payload = b""
    for part in parts:
        udh, rest = parse_udh(part)
        concat = udh.concat
        assert concat is not None
        concats.append(concat)
        # Each part decodes on its own: no escape pair or surrogate pair was cut.
        decode_text(rest, data_coding)
        payload += rest
    return concats, decode_text(payload, data_coding)


@given(
    st.one_of(gsm_text, gsm_boundary_text),
    st.integers(0, 0xFFFF),
    st.booleans(),
)
def test_gsm_split_reassembles_to_the_input(text: str, reference: int, udh16: bool) -> None:
    reference = reference if udh16 else reference & 0xFF
    parts = split_text(text, 0, reference=reference, udh16=udh16)
    assert len(parts) == count_parts(text, 0, udh16=udh16)
    if len(parts) == 1:
        assert parts == [encode_text(text, 0)]
        assert gsm_septet_length(text) <= 160
        return
    header = 7 if udh16 else 6
    assert all(len(p) <= header + (152 if udh16 else 153) for p in parts)
    concats, joined = _reassemble(parts, 0)
    total = len(parts)
    assert concats == [Concat(reference, total, seq) for seq in range(1, total + 1)]
    assert joined == text


@given(ucs2_boundary_text, st.integers(0, 0xFF), st.booleans())
def test_ucs2_split_reassembles_to_the_input(text: str, reference: int, udh16: bool) -> None:
    parts = split_text(text, DataCoding.UCS2, reference=reference, udh16=udh16)
    assert len(parts) == count_parts(text, DataCoding.UCS2, udh16=udh16)
    if len(parts) == 1:
        assert len(parts[0]) <= 140
        assert decode_text(parts[0], DataCoding.UCS2) == text
        return
    header = 7 if udh16 else 6
    assert all(len(p) <= header + (132 if udh16 else 134) for p in parts)
    concats, joined = _reassemble(parts, DataCoding.UCS2)
    assert [c.seqnum for c in concats] == list(range(1, len(parts) + 1))
    assert {(c.reference, c.total) for c in concats} == {(reference, len(parts))}
    assert joined == text


@given(latin1_text, st.booleans())
def test_latin1_split_reassembles_to_the_input(text: str, udh16: bool) -> None:
    parts = split_text(text, DataCoding.LATIN_1, reference=200, udh16=udh16)
    assert len(parts) == count_parts(text, DataCoding.LATIN_1, udh16=udh16)
    if len(parts) == 1:
        assert parts == [encode_text(text, DataCoding.LATIN_1)]
        return
    _, joined = _reassemble(parts, DataCoding.LATIN_1)
    assert joined == text


@given(st.one_of(gsm_boundary_text, ucs2_boundary_text), st.sampled_from(list(SplitMethod)))
def test_count_parts_equals_len_split_text(text: str, method: SplitMethod) -> None:
    coding = choose_coding(text)
    parts = split_text(text, coding, reference=1, method=method)
    assert count_parts(text, coding, method=method) == len(parts)


@given(st.one_of(gsm_boundary_text, ucs2_boundary_text))
def test_sar_segments_join_to_the_input(text: str) -> None:
    coding = choose_coding(text)
    parts = split_sar(text, coding, reference=0xABCD)
    assert decode_text(b"".join(sm for sm, _ in parts), coding) == text
    if len(parts) > 1:
        for seqnum, (_, tlvs) in enumerate(parts, 1):
            assert tlvs == (
                Tlv(Tag.SAR_MSG_REF_NUM, b"\xab\xcd"),
                Tlv(Tag.SAR_TOTAL_SEGMENTS, bytes((len(parts),))),
                Tlv(Tag.SAR_SEGMENT_SEQNUM, bytes((seqnum,))),
            )


# ------------------------------------------------------------------------------ UDH


def test_parse_udh_of_8bit_concat() -> None:
    udh, rest = parse_udh(bytes.fromhex("0500032a0302") + b"text")
    assert udh == Udh((InformationElement(0x00, b"\x2a\x03\x02"),))
    assert udh.concat == Concat(reference=0x2A, total=3, seqnum=2)
    assert rest == b"text"


def test_parse_udh_of_16bit_concat_among_other_elements() -> None:
    # A port-addressing element (IEI 0x05) first, then the 16-bit concatenation element.
    data = bytes.fromhex("0c05040b8400000804beef0403") + b"\x00a"
    udh, rest = parse_udh(data)
    assert udh.elements == (
        InformationElement(0x05, bytes.fromhex("0b840000")),
        InformationElement(0x08, bytes.fromhex("beef0403")),
    )
    assert udh.concat == Concat(0xBEEF, 4, 3)
    assert rest == b"\x00a"
    assert udh.to_bytes() == data[:13]


def test_empty_udh_has_no_concat() -> None:
    udh, rest = parse_udh(b"\x00abc")
    assert udh == Udh(())
    assert udh.concat is None
    assert rest == b"abc"


@pytest.mark.parametrize(
    "udh_hex",
    [
        "0500030a0300",  # seqnum 0
        "0500030a0204",  # seqnum above total
        "0500030a0000",  # total 0
        "040002 0a02",  # 8-bit element with 2 octets instead of 3
        "0508030a0201",  # 16-bit element with 3 octets instead of 4
        "0424020000",  # no concatenation element at all
    ],
)
def test_invalid_concat_elements_are_ignored(udh_hex: str) -> None:
    # TS 23.040 9.2.3.24.1: such an element is ignored; the message is not concatenated.
    udh, _ = parse_udh(bytes.fromhex(udh_hex))
    assert udh.concat is None


def test_last_concat_element_wins() -> None:
    udh, _ = parse_udh(bytes.fromhex("0b00030102010804ffff0302"))
    assert udh.concat == Concat(0xFFFF, 3, 2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (bytes.fromhex("050003"), "runs past"),  # UDHL 5 with 2 octets after it
        (bytes.fromhex("03000301"), "overruns"),  # element of 3 in a header of 3
        (bytes.fromhex("0100"), "cut off"),  # IEI without its length octet
        (bytes.fromhex("050004010203"), "overruns"),  # element of 4 in a header of 5
    ],
)
def test_malformed_udh_raises_typed_error(data: bytes, message: str) -> None:
    with pytest.raises(UdhError, match=message) as info:
        parse_udh(data)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, SmppError)


@given(st.binary(max_size=64))
def test_parse_udh_of_any_octets_returns_or_raises_udh_error(data: bytes) -> None:
    try:
        udh, rest = parse_udh(data)
    except UdhError:
        return
    assert udh.to_bytes() + rest == data


def test_concat_udh_wire_format() -> None:
    assert concat_udh(0xAB, 3, 1) == bytes.fromhex("050003ab0301")
    assert concat_udh(0xABCD, 255, 255, udh16=True) == bytes.fromhex("060804abcdffff")


@pytest.mark.parametrize(
    ("reference", "total", "seqnum", "udh16"),
    [(0, 0, 0, False), (0, 2, 3, False), (0, 256, 1, False), (256, 2, 1, False),
     (0x10000, 2, 1, True), (0, 2, 0, True)],
)  # fmt: skip
def test_concat_udh_rejects_invalid_values(
    reference: int, total: int, seqnum: int, udh16: bool
) -> None:
    with pytest.raises(EncodeError):
        concat_udh(reference, total, seqnum, udh16=udh16)


def test_build_udh() -> None:
    elements = [InformationElement(0x00, b"\x01\x02\x01"), InformationElement(0x24, b"\x01")]
    assert build_udh(elements) == bytes.fromhex("080003010201240101")
    assert build_udh([]) == b"\x00"
    with pytest.raises(EncodeError):
        build_udh([InformationElement(0x100, b"")])
    with pytest.raises(EncodeError):
        build_udh([InformationElement(0x70, bytes(256))])
    with pytest.raises(EncodeError):
        build_udh([InformationElement(0x70, bytes(200)), InformationElement(0x71, bytes(60))])


@given(st.text(st.sampled_from("ab€{}[]~ü"), min_size=1, max_size=600))
def test_split_octets_of_encoded_text_equals_split_message(text: str) -> None:
    data = encode_text(text, DataCoding.DEFAULT)
    assert split_octets(data, DataCoding.DEFAULT, reference=9) == split_message(
        text, DataCoding.DEFAULT, reference=9
    )


def test_split_octets_cuts_binary_data_at_134_octets_with_a_udh() -> None:
    data = bytes(range(256)) + bytes(44)  # 300 octets of data_coding 4 (binary)
    parts = split_octets(data, 4, reference=7)
    assert [len(p.short_message) for p in parts] == [6 + 134, 6 + 134, 6 + 32]
    assert all(p.esm_class == EsmClass.UDHI for p in parts)
    assert b"".join(p.short_message[6:] for p in parts) == data


def test_split_octets_never_cuts_a_gsm_escape_pair() -> None:
    data = b"a" * 152 + b"\x1b\x65" + b"b" * 10  # the euro sign straddles the 153 boundary
    first, second = split_octets(data, DataCoding.DEFAULT)
    assert first.short_message[6:] == b"a" * 152
    assert second.short_message[6:].startswith(b"\x1b\x65")


def test_always_concatenate_marks_a_short_message_part_1_of_1() -> None:
    [part] = split_octets(b"hi", DataCoding.DEFAULT, reference=3, always_concatenate=True)
    assert part.short_message == bytes.fromhex("0500030301 01".replace(" ", "")) + b"hi"
    assert part.esm_class == EsmClass.UDHI


def test_split_octets_payload_method_and_its_limit() -> None:
    [part] = split_octets(b"x" * 1000, 4, method=SplitMethod.PAYLOAD)
    assert part.short_message == b""
    assert part.tlvs == (Tlv(0x0424, b"x" * 1000),)
    with pytest.raises(EncodeError, match="65535"):
        split_octets(b"x" * 65536, 4, method=SplitMethod.PAYLOAD)
