"""The codec's two tiers agree: the hand-written fast paths (smppgw/codec/_fast.py: one
regular expression to decode a submit_sm, one joined ``str`` to encode it) and the reference
codec (smppgw/codec/_fields.py: field by field, with typed errors).

The fast paths handle the PDUs of the hot path and may give up (return None) on anything
unusual; the reference codec then decides. So the contract checked here, on generated PDUs
(valid, or with one value out of range or of the wrong type), on each boundary value of each
field, and on mutated and one-octet-edited wire bytes, is: whenever a fast path gives an answer
it is exactly the reference codec's answer, and whenever it gives up the reference codec raises
the typed error, which :func:`decode` and :func:`encode` then raise unchanged. A fast path
never refuses what the reference codec accepts, which would silently slow the hot path down.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smppgw.codec import (
    CommandStatus,
    DecodeError,
    EncodeError,
    EnquireLink,
    Pdu,
    SubmitSm,
    Tlv,
    decode,
    encode,
)
from smppgw.codec._fields import decode_body
from smppgw.codec.constants import EsmClass
from smppgw.codec.pdu import _BY_ID, encode_reference

_HEADER = struct.Struct("!IIII")

FAST = sorted(
    (cls for cls in _BY_ID.values() if cls._decode_fast is not None), key=lambda c: c.__name__
)


def test_the_hot_path_pdus_have_a_fast_path_and_only_they() -> None:
    assert {cls.__name__ for cls in FAST} == {
        "CancelSmResp",
        "DataSm",
        "DataSmResp",
        "DeliverSm",
        "DeliverSmResp",
        "EnquireLink",
        "EnquireLinkResp",
        "GenericNack",
        "ReplaceSmResp",
        "SubmitSm",
        "SubmitSmResp",
        "Unbind",
        "UnbindResp",
    }
    assert all(cls._encode_fast is not None for cls in FAST)
    assert all(cls._encode_fast is None for cls in _BY_ID.values() if cls not in FAST)


# --- strategies --------------------------------------------------------------------------------

_LATIN1 = st.characters(min_codepoint=0, max_codepoint=255)


def _good_value(field: dataclasses.Field[Any]) -> st.SearchStrategy[Any]:
    kind, size = field.metadata["wire"]
    if kind.name == "U8":
        return st.integers(0, 0xFF)
    if kind.name == "CSTRING":
        return st.text(_LATIN1.filter(lambda c: c != "\0"), max_size=size - 1)
    return st.binary(max_size=255)  # the short_message


def _bad_value(field: dataclasses.Field[Any]) -> st.SearchStrategy[Any]:
    kind, size = field.metadata["wire"]
    if kind.name == "U8":
        return st.sampled_from([-1, 256, 2**64, "1", None, 1.0, b"\x01"])
    if kind.name == "CSTRING":
        return st.sampled_from(["x" * size, "a\0b", "\0", "€", b"abc", 5, None])
    return st.sampled_from([b"x" * 256, "text", 5, None, [1, 2]])


BAD_TLVS: list[Any] = [
    Tlv(0x10000, b""),
    Tlv(-1, b""),
    Tlv(0x1E, b"x" * 0x10000),
    Tlv(0x1E, "text"),  # type: ignore[arg-type]
    Tlv(0x1E, None),  # type: ignore[arg-type]
    "tlv",
    None,
]
_BAD_HEADER_INTS = st.sampled_from([-1, 2**32, "7", None])


@st.composite
def pdus(draw: st.DrawFn, *, bad: bool = False) -> Pdu:
    """A valid PDU of a class with a fast path; with ``bad``, one value is out of range or of
    the wrong type (one only: a second would hide the first from the fast path's checks)."""
    cls = draw(st.sampled_from(FAST))
    wire_fields = [f for f in dataclasses.fields(cls) if "wire" in f.metadata]
    kwargs: dict[str, Any] = {f.name: draw(_good_value(f)) for f in wire_fields}
    kwargs["tlvs"] = tuple(
        draw(st.lists(st.builds(Tlv, st.integers(0, 0xFFFF), st.binary(max_size=20)), max_size=3))
    )
    kwargs["sequence_number"] = draw(st.integers(0, 0xFFFFFFFF))
    kwargs["command_status"] = draw(st.integers(0, 0xFFFFFFFF))
    if bad:
        targets = [f.name for f in wire_fields] + ["tlvs", "sequence_number", "command_status"]
        target = draw(st.sampled_from(targets))
        if target == "tlvs":
            kwargs["tlvs"] += (draw(st.sampled_from(BAD_TLVS)),)
        elif target in {"sequence_number", "command_status"}:
            kwargs[target] = draw(_BAD_HEADER_INTS)
        else:
            kwargs[target] = draw(_bad_value(next(f for f in wire_fields if f.name == target)))
    return cls(**kwargs)


def _mutate(wire: bytes, data: st.DataObject) -> bytes:
    """Change, insert, remove or cut octets of the body, then fix command_length."""
    body = bytearray(wire[16:])
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        op = data.draw(st.sampled_from(["set", "insert", "delete", "cut"]), label="op")
        at = data.draw(st.integers(0, len(body)), label="at")
        if op == "set" and at < len(body):
            body[at] = data.draw(st.sampled_from([0, 1, 0xFF]) | st.integers(0, 255))
        elif op == "insert":
            body[at:at] = data.draw(st.binary(min_size=1, max_size=4), label="inserted")
        elif op == "delete":
            del body[at : at + data.draw(st.integers(1, 4), label="deleted")]
        else:
            del body[at:]
    header = bytearray(wire[:16])
    header[0:4] = struct.pack("!I", 16 + len(body))
    return bytes(header + body)


# --- the oracle --------------------------------------------------------------------------------


def _reference_decode(wire: bytes) -> Pdu | DecodeError:
    _, command_id, status, sequence_number = _HEADER.unpack_from(wire)
    cls = _BY_ID[command_id]
    try:
        return decode_body(cls, cls._layout, wire, CommandStatus(status), sequence_number)
    except DecodeError as exc:
        return exc


def _assert_enum_fields(pdu: Pdu) -> None:
    """Every field typed with an open enum holds a member of it, a value it does not name
    included (its pseudo-member), as the annotations promise."""
    assert type(pdu.command_status) is CommandStatus
    for field in dataclasses.fields(pdu):
        enum = field.metadata.get("enum")
        if enum is not None:
            assert type(getattr(pdu, field.name)) is enum, field.name


def _assert_decoders_agree(wire: bytes) -> None:
    cls = _BY_ID[_HEADER.unpack_from(wire)[1]]
    assert cls._decode_fast is not None
    _, _, status, sequence_number = _HEADER.unpack_from(wire)
    fast = cls._decode_fast(wire, CommandStatus(status), sequence_number)
    reference = _reference_decode(wire)
    if isinstance(reference, DecodeError):
        assert fast is None
    else:
        assert fast is not None, "the fast path gave up on a PDU the reference codec reads"
        assert type(fast) is type(reference)
        assert fast == reference
        assert [type(tlv) for tlv in fast.tlvs] == [Tlv] * len(fast.tlvs)
        _assert_enum_fields(fast)
        _assert_enum_fields(reference)
    if len(wire) == 16 and cls.is_response and cls._layout:
        return  # a response without its body: decode() reads it before any codec
    try:
        decoded: Pdu | DecodeError = decode(wire)
    except DecodeError as exc:
        decoded = exc
    if isinstance(reference, DecodeError):
        assert type(decoded) is type(reference)
        assert isinstance(decoded, DecodeError)
        assert (decoded.status, decoded.sequence_number, decoded.command_id) == (
            reference.status,
            reference.sequence_number,
            reference.command_id,
        )
        assert str(decoded) == str(reference)
    else:
        assert decoded == reference
        _assert_enum_fields(decoded)


def _assert_encoders_agree(pdu: Pdu) -> None:
    cls = type(pdu)
    assert cls._encode_fast is not None
    fast = cls._encode_fast(pdu)
    try:
        reference: bytes | EncodeError = encode_reference(pdu)
    except EncodeError as exc:
        reference = exc
    if isinstance(reference, EncodeError):
        assert fast is None
        with pytest.raises(EncodeError, match=re.escape(str(reference))):
            encode(pdu)
    else:
        assert fast == reference
        assert encode(pdu) == reference


# --- the properties ----------------------------------------------------------------------------


@given(pdus())
@settings(max_examples=300)
def test_the_fast_encoder_writes_what_the_reference_one_writes(pdu: Pdu) -> None:
    _assert_encoders_agree(pdu)


@given(pdus(bad=True))
@settings(max_examples=600)
@example(SubmitSm(short_message=b"x" * 256))
@example(SubmitSm(source_addr="\0"))
@example(SubmitSm(source_addr="\u0100"))
@example(SubmitSm(esm_class=EsmClass(256)))
@example(SubmitSm(short_message="text"))  # type: ignore[arg-type]
@example(EnquireLink(sequence_number=2**32))
@example(EnquireLink(tlvs=(Tlv(0x1E, "text"),)))  # type: ignore[arg-type]
def test_the_fast_encoder_leaves_every_out_of_range_value_to_the_reference_error(
    pdu: Pdu,
) -> None:
    _assert_encoders_agree(pdu)


@given(pdus())
@settings(max_examples=300)
def test_the_fast_decoder_reads_valid_pdus_as_the_reference_one_does(pdu: Pdu) -> None:
    _assert_decoders_agree(encode(pdu))


@given(pdus(), st.data())
@settings(max_examples=800)
def test_the_fast_decoder_reads_what_the_reference_one_reads_or_leaves_it_the_error(
    pdu: Pdu, data: st.DataObject
) -> None:
    _assert_decoders_agree(_mutate(encode(pdu), data))


def _full(cls: type[Pdu]) -> Pdu:
    """A PDU with every string at its maximum length, integers at 255 and two TLVs."""
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if "wire" in field.metadata:
            kind, size = field.metadata["wire"]
            value = {"U8": 0xFF, "CSTRING": "s" * (size - 1), "SHORT_MESSAGE": b"m" * 255}
            kwargs[field.name] = value[kind.name]
    return cls(sequence_number=9, tlvs=(Tlv(1, b"ab"), Tlv(2, b"")), **kwargs)


@pytest.mark.parametrize("cls", FAST, ids=lambda cls: cls.__name__)
def test_fast_and_reference_decoders_agree_on_every_one_octet_edit_of_a_full_pdu(
    cls: type[Pdu],
) -> None:
    """Each octet of the body of a full PDU set to NUL, to "x" and to 0xFF, removed, and
    preceded by an extra "x" (a string one over its maximum, an unterminated one, a short or a
    long short_message, a TLV header cut or overlong), and every cut of the PDU."""
    wire = encode(_full(cls))
    edits: list[bytes] = []
    for at in range(16, len(wire) + 1):
        edits.append(wire[:at])
        edits.append(wire[:at] + b"x" + wire[at:])
        if at < len(wire):
            edits += [wire[:at] + octet + wire[at + 1 :] for octet in (b"\0", b"x", b"\xff")]
            edits.append(wire[:at] + wire[at + 1 :])
    for edited in edits:
        _assert_decoders_agree(struct.pack("!I", len(edited)) + edited[4:])


def _boundary_values(kind: str, size: int) -> list[Any]:
    """Values on either side of a field's limits, and values of the wrong type."""
    if kind == "U8":
        return [0, 255, True, -1, 256, 2**64, "1", None, 1.0, b"\x01"]
    if kind == "CSTRING":
        top = "\xff" * (size - 1)
        return ["", top, "x" * size, top + "\xff", "a\0b", "\0", "€", b"abc", 5, None]
    return [b"", b"m" * 255, bytearray(b"ba"), b"m" * 256, "text", 5, None, [1, 2]]


@pytest.mark.parametrize("cls", FAST, ids=lambda cls: cls.__name__)
def test_fast_and_reference_encoders_agree_on_each_boundary_value_of_each_field(
    cls: type[Pdu],
) -> None:
    full = _full(cls)
    cases: list[dict[str, Any]] = []
    for field in dataclasses.fields(cls):
        if "wire" in field.metadata:
            kind, size = field.metadata["wire"]
            cases += [{field.name: v} for v in _boundary_values(kind.name, size)]
    for name in ("sequence_number", "command_status"):
        cases += [{name: v} for v in (0, 0xFFFFFFFF, -1, 2**32, "7", None)]
    cases += [{"tlvs": v} for v in ((), None, 5, "ab", (Tlv(0xFFFF, b"v" * 0xFFFF),))]
    cases += [{"tlvs": (Tlv(1, b""), bad)} for bad in BAD_TLVS]
    for case in cases:
        _assert_encoders_agree(dataclasses.replace(full, **case))


def test_a_fast_decoded_pdu_is_frozen_and_of_the_registered_class() -> None:
    pdu = decode(encode(SubmitSm(sequence_number=5, tlvs=(Tlv(0x1E, b"x"),))))
    assert type(pdu) is SubmitSm
    assert type(pdu.tlvs[0]) is Tlv
    with pytest.raises(dataclasses.FrozenInstanceError):
        pdu.sequence_number = 6  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        pdu.tlvs[0].tag = 1  # type: ignore[misc]
