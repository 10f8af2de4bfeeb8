"""What ``mypy --strict`` sees of the codec's PDU fields (``make test`` runs mypy on this file):
a field whose values are one of the codec's open enums is typed with that enum, decoded PDUs
hold its members, and a bare ``int`` where an enum is expected is a type error (each
``# type: ignore[arg-type]`` must still be needed: ``warn_unused_ignores``). A value an enum
does not name is passed as ``Ton(0x07)``: the enums are open, so that is a member too."""

from __future__ import annotations

from typing import assert_type

from smppgw.codec import (
    CommandStatus,
    DataCoding,
    DataSm,
    DeliverSm,
    EsmClass,
    MessageState,
    Npi,
    QuerySmResp,
    RegisteredDelivery,
    SubmitSm,
    SubmitSmResp,
    Ton,
    decode,
    encode,
)
from smppgw.codec.pdu import SmeAddress, UnsuccessSme


def test_short_message_fields_are_typed_with_the_enums() -> None:
    pdu = SubmitSm(
        source_addr_ton=Ton.ALPHANUMERIC,
        dest_addr_ton=Ton.INTERNATIONAL,
        dest_addr_npi=Npi.ISDN,
        registered_delivery=RegisteredDelivery.FINAL,
        data_coding=DataCoding.UCS2,
    )
    assert_type(pdu.source_addr_ton, Ton)
    assert_type(pdu.source_addr_npi, Npi)
    assert_type(pdu.dest_addr_ton, Ton)
    assert_type(pdu.dest_addr_npi, Npi)
    assert_type(pdu.esm_class, EsmClass)
    assert_type(pdu.registered_delivery, RegisteredDelivery)
    assert_type(pdu.data_coding, DataCoding)
    assert_type(pdu.priority_flag, int)
    assert_type(pdu.command_status, CommandStatus)
    decoded = decode(encode(pdu))
    assert isinstance(decoded, SubmitSm)
    assert decoded.dest_addr_ton is Ton.INTERNATIONAL
    assert decoded.registered_delivery is RegisteredDelivery.FINAL


def test_responses_and_the_other_pdus_are_typed_too() -> None:
    resp = decode(encode(SubmitSmResp(command_status=CommandStatus.ESME_RTHROTTLED)))
    assert_type(resp.command_status, CommandStatus)
    assert resp.command_status is CommandStatus.ESME_RTHROTTLED
    assert_type(DeliverSm().esm_class, EsmClass)
    assert_type(DataSm().registered_delivery, RegisteredDelivery)
    assert_type(QuerySmResp().message_state, MessageState)
    assert_type(SmeAddress(Ton.INTERNATIONAL, Npi.ISDN, "91").dest_addr_npi, Npi)
    sme = UnsuccessSme(Ton.NATIONAL, Npi.ISDN, "91", CommandStatus.ESME_RINVDSTADR)
    assert_type(sme.error_status_code, CommandStatus)


def test_a_vendor_value_is_passed_as_a_member_of_the_open_enum() -> None:
    pdu = SubmitSm(source_addr_ton=Ton(0x07), data_coding=DataCoding(0xF5))
    assert_type(pdu.source_addr_ton, Ton)
    decoded = decode(encode(pdu))
    assert isinstance(decoded, SubmitSm)
    assert type(decoded.source_addr_ton) is Ton
    assert decoded.source_addr_ton == 0x07


def test_a_bare_int_where_an_enum_is_expected_is_a_type_error() -> None:
    pdu = SubmitSm(dest_addr_ton=1, registered_delivery=1)  # type: ignore[arg-type]
    # At run time the integer is kept as given and encodes the same octets.
    assert encode(pdu) == encode(
        SubmitSm(dest_addr_ton=Ton.INTERNATIONAL, registered_delivery=RegisteredDelivery.FINAL)
    )
