"""The codec's two tiers agree: the fast pair (one regular expression to decode, one joined
``str`` to encode) and the exact pair (field by field, with typed errors).

The fast pair may give up (return None) on anything unusual, and the exact pair then decides;
so the contract checked here, on generated PDUs, out-of-range values and mutated wire bytes, is:
whenever the fast pair gives an answer it is exactly the exact pair's answer, and whenever it
gives up the exact pair raises the codec's typed error (the fast pair never refuses what the
exact pair accepts, which would silently slow the hot path down).
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from smppgw.codec import CommandStatus, DecodeError, EncodeError, Pdu, SubmitSm, Tlv, encode
from smppgw.codec._fields import Field, _fast_layout
from smppgw.codec.pdu import _BY_ID

_HEADER = struct.Struct("!IIII")


def _has_fast_pair(cls: type[Pdu]) -> bool:
    layout = tuple(
        Field(f.name, *f.metadata["wire"]) for f in dataclasses.fields(cls) if "wire" in f.metadata
    )
    return _fast_layout(layout)


# Every class whose fast pair is real (submit_multi's address lists only take the exact path).
_FAST = sorted((cls for cls in _BY_ID.values() if _has_fast_pair(cls)), key=lambda c: c.__name__)


def _wire_fields(cls: type[Pdu]) -> list[tuple[str, object, int]]:
    return [
        (f.name, f.default, f.metadata["wire"][1] or 256)
        for f in dataclasses.fields(cls)
        if "wire" in f.metadata
    ]


def _value(default: object, size: int, *, valid: bool) -> st.SearchStrategy[object]:
    """A field value: within the field's range, or (``valid`` False) sometimes just outside."""
    if isinstance(default, bytes):
        return st.binary(max_size=254 if valid else 300)
    if isinstance(default, str):
        if valid:
            return st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=size - 1)
        return st.one_of(
            st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=size - 1),
            st.text(st.characters(min_codepoint=0, max_codepoint=0x10FF), max_size=size + 2),
        )
    if isinstance(default, int):
        return st.integers(0, 0xFF) if valid else st.integers(-2, 0x101)
    return st.just(default)


@st.composite
def pdus(draw: st.DrawFn, *, valid: bool = True) -> Pdu:
    cls = draw(st.sampled_from(_FAST))
    kwargs: dict[str, Any] = {
        name: draw(_value(default, size, valid=valid)) for name, default, size in _wire_fields(cls)
    }
    tlv_size = 40 if valid else 0x10010
    tlvs = draw(
        st.lists(
            st.builds(
                Tlv,
                st.integers(0, 0xFFFF),
                st.binary(max_size=40) | st.just(b"\0" * tlv_size),
            ),
            max_size=3,
        )
    )
    return cls(
        sequence_number=draw(st.integers(0, 0x7FFFFFFF)),
        command_status=CommandStatus(draw(st.integers(0, 0x500))),
        tlvs=tuple(tlvs),
        **kwargs,
    )


def exact_encode(pdu: Pdu) -> bytes:
    body = type(pdu)._encode_body(pdu)
    return _HEADER.pack(16 + len(body), pdu.command_id, pdu.command_status, pdu.sequence_number) + (
        body
    )


@given(pdus(valid=False))
@settings(max_examples=600)
@example(SubmitSm(short_message=b"x" * 256))
@example(SubmitSm(source_addr="\0"))
@example(SubmitSm(source_addr="\u0100"))
@example(SubmitSm(esm_class=256))
def test_the_fast_encoder_writes_what_the_exact_one_writes_or_leaves_it_the_error(
    pdu: Pdu,
) -> None:
    fast = type(pdu)._encode_fast(pdu)
    if fast is not None:
        assert fast == exact_encode(pdu)
        return
    try:
        exact_encode(pdu)
    except EncodeError:
        return
    raise AssertionError(f"the fast encoder gave up on {pdu!r}, which the exact one encodes")


def mutate(wire: bytes, data: st.DataObject) -> bytes:
    """Overwrite, insert or cut a few octets of the body; the header keeps its id and length."""
    body = bytearray(wire[16:])
    for _ in range(data.draw(st.integers(0, 4))):
        action = data.draw(st.sampled_from(("set", "insert", "delete")))
        index = data.draw(st.integers(0, len(body)))
        octet = data.draw(st.sampled_from((0, 1, 0x7F, 0x80, 0xFF)) | st.integers(0, 255))
        if action == "insert":
            body.insert(index, octet)
        elif index < len(body):
            if action == "set":
                body[index] = octet
            else:
                del body[index]
    body = body[: data.draw(st.integers(0, len(body)))] if data.draw(st.booleans()) else body
    return struct.pack("!I", 16 + len(body)) + wire[4:16] + bytes(body)


@given(pdus(), st.data())
@settings(max_examples=800)
def test_the_fast_decoder_reads_what_the_exact_one_reads_or_leaves_it_the_error(
    pdu: Pdu, data: st.DataObject
) -> None:
    cls = type(pdu)
    wire = mutate(encode(pdu), data)
    if len(wire) == 16 and cls.is_response and cls._wire_names:
        return  # a response without a body is decoded before either tier runs
    fast = cls._decode_fast(wire, pdu.command_status, pdu.sequence_number)
    try:
        exact = cls._decode_body(wire, pdu.command_status, pdu.sequence_number)
    except DecodeError:
        assert fast is None, f"the fast decoder accepted {wire.hex()}, which the exact one refuses"
        return
    assert fast is not None, f"the fast decoder gave up on {wire.hex()}, which the exact one reads"
    assert type(fast) is cls
    assert type(exact) is cls
    assert fast == exact
    assert encode(fast) == encode(exact)
