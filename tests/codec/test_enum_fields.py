"""Decoded PDUs hold the codec's enums, not bare integers, in every field typed with one, by
the fast paths and by the reference codec alike; a value an enum does not name decodes to its
pseudo-member (the enums are open) and encodes back to the same octets."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from smppgw.codec import (
    CommandStatus,
    DataCoding,
    DeliverSm,
    EsmClass,
    MessageState,
    Npi,
    Pdu,
    QuerySmResp,
    RegisteredDelivery,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    Ton,
    decode,
    encode,
)
from smppgw.codec.pdu import _BY_ID, DistributionList, SmeAddress, UnsuccessSme

CLASSES = sorted(_BY_ID.values(), key=lambda c: c.__name__)
_ENUM_FIELDS = {
    "addr_ton": Ton,
    "addr_npi": Npi,
    "source_addr_ton": Ton,
    "source_addr_npi": Npi,
    "dest_addr_ton": Ton,
    "dest_addr_npi": Npi,
    "esme_addr_ton": Ton,
    "esme_addr_npi": Npi,
    "esm_class": EsmClass,
    "registered_delivery": RegisteredDelivery,
    "data_coding": DataCoding,
    "message_state": MessageState,
}


def _enum_fields(cls: type[Pdu]) -> dict[str, Any]:
    return {f.name: f.metadata["enum"] for f in dataclasses.fields(cls) if "enum" in f.metadata}


def test_every_field_named_for_an_enum_is_typed_with_it_and_no_other_is() -> None:
    found = {name: enum for cls in _BY_ID.values() for name, enum in _enum_fields(cls).items()}
    assert found == _ENUM_FIELDS


@pytest.mark.parametrize("octet", [0x01, 0x07, 0x3F, 0xFF])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_each_enum_field_decodes_to_a_member_of_its_enum(cls: type[Pdu], octet: int) -> None:
    fields = _enum_fields(cls)
    pdu = cls(**{name: enum(octet) for name, enum in fields.items()})
    wire = encode(pdu)
    decoded = decode(wire)
    assert decoded == pdu
    assert type(decoded.command_status) is CommandStatus
    for name, enum in fields.items():
        value = getattr(decoded, name)
        assert type(value) is enum, name
        assert value == octet
    assert encode(decoded) == wire


def test_a_vendor_ton_round_trips_as_a_pseudo_member() -> None:
    wire = encode(SubmitSm(source_addr_ton=Ton(0x07), data_coding=DataCoding(0xF5)))
    pdu = decode(wire)
    assert isinstance(pdu, SubmitSm)
    assert type(pdu.source_addr_ton) is Ton
    assert pdu.source_addr_ton.name == "UNKNOWN_0x00000007"
    assert type(pdu.data_coding) is DataCoding
    assert pdu.data_coding == 0xF5
    assert encode(pdu) == wire


def test_a_named_value_decodes_to_the_named_member_itself() -> None:
    pdu = decode(
        encode(
            DeliverSm(
                dest_addr_ton=Ton.INTERNATIONAL,
                esm_class=EsmClass.DELIVERY_RECEIPT,
                registered_delivery=RegisteredDelivery.FINAL,
            )
        )
    )
    assert isinstance(pdu, DeliverSm)
    assert pdu.dest_addr_ton is Ton.INTERNATIONAL
    assert pdu.esm_class is EsmClass.DELIVERY_RECEIPT
    assert pdu.registered_delivery is RegisteredDelivery.FINAL


def test_the_address_lists_of_submit_multi_hold_enums() -> None:
    multi = decode(
        encode(
            SubmitMulti(dest_address=(SmeAddress(Ton(9), Npi.ISDN, "91"), DistributionList("d")))
        )
    )
    assert isinstance(multi, SubmitMulti)
    sme = multi.dest_address[0]
    assert isinstance(sme, SmeAddress)
    assert (type(sme.dest_addr_ton), type(sme.dest_addr_npi)) == (Ton, Npi)
    resp = decode(
        encode(
            SubmitMultiResp(
                unsuccess_sme=(
                    UnsuccessSme(Ton.NATIONAL, Npi(0x0F), "91", CommandStatus.ESME_RINVDSTADR),
                    UnsuccessSme(Ton.NATIONAL, Npi.ISDN, "92", CommandStatus(0x1234)),
                )
            )
        )
    )
    assert isinstance(resp, SubmitMultiResp)
    first, second = resp.unsuccess_sme
    assert first.error_status_code is CommandStatus.ESME_RINVDSTADR
    assert (type(first.dest_addr_ton), type(first.dest_addr_npi)) == (Ton, Npi)
    assert type(second.error_status_code) is CommandStatus
    assert second.error_status_code == 0x1234


def test_query_sm_resp_gives_its_message_state_as_the_enum() -> None:
    resp = decode(encode(QuerySmResp(message_state=MessageState.DELIVERED)))
    assert isinstance(resp, QuerySmResp)
    assert resp.message_state is MessageState.DELIVERED
