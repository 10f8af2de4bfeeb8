"""Differential tests against aiosmpplib: its submit_sm/deliver_sm bytes decoded by our codec and
ours by its decoder, field for field. aiosmpplib is a dev dependency used only as an oracle."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.codec import DeliverSm, SubmitSm, SubmitSmResp, Tlv, decode, encode
from smppgw.codec.constants import Npi, RegisteredDelivery, Ton
from smppgw.codec.text import decode_text, encode_text

try:
    from aiosmpplib.protocol import DeliverSm as ADeliverSm
    from aiosmpplib.protocol import SmppMessage
    from aiosmpplib.protocol import SubmitSm as ASubmitSm
    from aiosmpplib.protocol import SubmitSmResp as ASubmitSmResp
    from aiosmpplib.state import NPI, TON, OptionalParam, PhoneNumber
except ImportError:  # pragma: no cover - CI installs the dev extras
    if os.environ.get("CI"):
        raise
    pytest.skip("aiosmpplib is not installed", allow_module_level=True)

ADDRESS = st.text("0123456789", min_size=1, max_size=15)
GSM_TEXT = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?", min_size=1, max_size=140
)
DLT = st.text("0123456789", min_size=1, max_size=19)
CLASSES: list[tuple[Any, type[SubmitSm | DeliverSm]]] = [
    (ASubmitSm, SubmitSm),
    (ADeliverSm, DeliverSm),
]


def _theirs(cls: Any, seq: int, src: str, dst: str, text: str, reg: int, pe_id: str) -> Any:
    return cls(
        sequence_num=seq,
        short_message=text,
        source=PhoneNumber(src, TON.INTERNATIONAL, NPI.ISDN),
        destination=PhoneNumber(dst, TON.NATIONAL, NPI.ISDN),
        registered_delivery=reg,
        optional_params=[OptionalParam(0x1400, pe_id)],
    )


@pytest.mark.parametrize(("their_cls", "our_cls"), CLASSES)
@given(st.integers(1, 0x7FFFFFFF), ADDRESS, ADDRESS, GSM_TEXT, st.integers(0, 1), DLT)
@settings(max_examples=60)
def test_their_bytes_decode_field_for_field(
    their_cls: Any,
    our_cls: type[SubmitSm],
    seq: int,
    src: str,
    dst: str,
    text: str,
    reg: int,
    pe_id: str,
) -> None:
    wire = _theirs(their_cls, seq, src, dst, text, reg, pe_id).pdu()
    pdu = decode(wire)
    assert type(pdu) is our_cls
    assert pdu.sequence_number == seq
    assert (pdu.source_addr, pdu.source_addr_ton, pdu.source_addr_npi) == (src, 1, 1)
    assert (pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi) == (dst, 2, 1)
    assert pdu.registered_delivery == reg
    assert decode_text(pdu.short_message, pdu.data_coding) == text
    assert pdu.tlv(0x1400) == pe_id.encode()
    assert encode(pdu) == wire


@pytest.mark.parametrize(("their_cls", "our_cls"), CLASSES)
@given(st.integers(1, 0x7FFFFFFF), ADDRESS, ADDRESS, GSM_TEXT, st.integers(0, 1), DLT)
@settings(max_examples=60)
def test_our_bytes_decode_in_aiosmpplib(
    their_cls: Any,
    our_cls: type[SubmitSm],
    seq: int,
    src: str,
    dst: str,
    text: str,
    reg: int,
    pe_id: str,
) -> None:
    wire = encode(
        our_cls(
            sequence_number=seq,
            source_addr_ton=Ton.INTERNATIONAL,
            source_addr_npi=Npi.ISDN,
            source_addr=src,
            dest_addr_ton=Ton.NATIONAL,
            dest_addr_npi=Npi.ISDN,
            destination_addr=dst,
            registered_delivery=RegisteredDelivery(reg),
            short_message=encode_text(text, 0),
            tlvs=(Tlv(0x1400, pe_id.encode()),),
        )
    )
    theirs = their_cls.from_pdu(wire, SmppMessage.parse_header(wire))
    assert theirs.sequence_num == seq
    assert (theirs.source.number, theirs.destination.number) == (src, dst)
    assert (int(theirs.source.ton), int(theirs.destination.ton)) == (1, 2)
    assert theirs.registered_delivery == reg
    assert theirs.short_message == text
    assert [(p.tag, p.value) for p in theirs.optional_params] == [(0x1400, pe_id)]
    # And both encoders agree to the byte.
    assert _theirs(their_cls, seq, src, dst, text, reg, pe_id).pdu() == wire


def test_submit_sm_resp_both_ways() -> None:
    theirs = ASubmitSmResp(sequence_num=9, message_id="a1b2c3")
    ours = decode(theirs.pdu())
    assert ours == SubmitSmResp(sequence_number=9, message_id="a1b2c3")
    back = ASubmitSmResp.from_pdu(encode(ours), SmppMessage.parse_header(encode(ours)))
    assert back.message_id == "a1b2c3"
