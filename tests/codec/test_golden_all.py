"""Golden vectors for every SMPP v3.4 PDU the codec knows, beyond those in test_codec_core.py.

Each vector is written by hand, one field per line, from the PDU layouts of SMPP v3.4 issue 1.2
section 4 (the section is named on each vector). For every vector: decoding the octets gives the
expected dataclass field for field, encoding the dataclass gives the octets exactly, and a
Framer fed the octets (whole, one octet at a time, or followed by the next PDU) hands them out.
A last test checks that the vectors here and in test_codec_core.py together cover every PDU
class in the codec's registry, so a new PDU class without a golden vector fails.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

import smppgw.codec
from smppgw.codec import (
    AlertNotification,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    CancelSmResp,
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    DistributionList,
    EnquireLink,
    EnquireLinkResp,
    Framer,
    GenericNack,
    MessageState,
    Outbind,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    ReplaceSmResp,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Tlv,
    Unbind,
    UnbindResp,
    UnsuccessSme,
    decode,
    encode,
)
from smppgw.codec.constants import EsmClass, Npi, RegisteredDelivery, Ton
from smppgw.codec.pdu import _BY_ID


def hexbytes(text: str) -> bytes:
    """Hex with comments (after '#') and whitespace ignored."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


@dataclass(frozen=True, slots=True)
class Golden:
    """One hand-built wire image and the PDU it must decode to and encode from."""

    name: str
    section: str  # SMPP v3.4 issue 1.2 section the layout is taken from
    wire: bytes
    pdu: Pdu
    xfail: str | None = None  # why the codec disagrees with the spec, if it does


# --- Session management: section 4.1 (bind, outbind), 4.2 (unbind), 4.3 (generic_nack) -------

BIND_TRANSMITTER = hexbytes("""
    00000029  # command_length 41
    00000002  # command_id bind_transmitter
    00000000  # command_status ESME_ROK
    00000101  # sequence_number 257
    736d7070677700  # system_id "smppgw" (C-octet string, max 16)
    73656372657400  # password "secret" (max 9)
    736d707000  # system_type "smpp" (max 13)
    34  # interface_version 0x34
    01  # addr_ton international
    01  # addr_npi ISDN
    393100  # address_range "91" (max 41)
""")

BIND_TRANSMITTER_RESP = hexbytes("""
    00000016  # command_length 22
    80000002  # command_id bind_transmitter_resp
    00000000  # command_status ESME_ROK
    00000101  # sequence_number 257
    534d53433100  # system_id "SMSC1"
""")

BIND_RECEIVER = hexbytes("""
    00000022  # command_length 34
    00000001  # command_id bind_receiver
    00000000  # command_status ESME_ROK
    00000102  # sequence_number 258
    61636d6500  # system_id "acme"
    707700  # password "pw"
    00  # system_type ""
    34  # interface_version 0x34
    02  # addr_ton national
    08  # addr_npi national
    5e39312e2a00  # address_range "^91.*" (a regular expression, section 5.2.7)
""")

BIND_RECEIVER_RESP = hexbytes("""
    00000016  # command_length 22
    80000001  # command_id bind_receiver_resp
    00000000  # command_status ESME_ROK
    00000102  # sequence_number 258
    534d53433200  # system_id "SMSC2"
""")

BIND_TRANSCEIVER_RESP = hexbytes("""
    0000001c  # command_length 28
    80000009  # command_id bind_transceiver_resp
    00000000  # command_status ESME_ROK
    00000103  # sequence_number 259
    545854534d5300  # system_id "TXTSMS"
    0210  # TLV tag sc_interface_version
    0001  # TLV length 1
    34  # TLV value: SMPP v3.4
""")

OUTBIND = hexbytes("""
    0000001e  # command_length 30
    0000000b  # command_id outbind
    00000000  # command_status ESME_ROK
    00000104  # sequence_number 260
    545854534d5300  # system_id "TXTSMS" (the SMSC's, max 16)
    73656372657400  # password "secret" (max 9)
""")

UNBIND = hexbytes("""
    00000010  # command_length 16: header only
    00000006  # command_id unbind
    00000000  # command_status ESME_ROK
    00000105  # sequence_number 261
""")

UNBIND_RESP = hexbytes("""
    00000010  # command_length 16: header only
    80000006  # command_id unbind_resp
    00000000  # command_status ESME_ROK
    00000105  # sequence_number 261
""")

GENERIC_NACK = hexbytes("""
    00000010  # command_length 16: header only
    80000000  # command_id generic_nack
    00000003  # command_status ESME_RINVCMDID
    00000106  # sequence_number 262 (the offending PDU's)
""")

# --- Message submission: section 4.4 (submit_sm_resp), 4.5 (submit_multi) --------------------

SUBMIT_SM_RESP = hexbytes("""
    00000019  # command_length 25
    80000004  # command_id submit_sm_resp
    00000000  # command_status ESME_ROK
    00000107  # sequence_number 263
    356633613963303100  # message_id "5f3a9c01" (max 65)
""")

SUBMIT_MULTI = hexbytes("""
    00000044  # command_length 68
    00000021  # command_id submit_multi
    00000000  # command_status ESME_ROK
    00000108  # sequence_number 264
    00  # service_type ""
    05  # source_addr_ton alphanumeric
    00  # source_addr_npi unknown
    41434d45494e00  # source_addr "ACMEIN" (max 21)
    02  # number_of_dests 2
    01  # dest_flag 1: SME address (section 4.5.1.1)
    01  # dest_addr_ton international
    01  # dest_addr_npi ISDN
    39313938373635343332313000  # destination_addr "919876543210" (max 21)
    02  # dest_flag 2: distribution list name
    667269656e647300  # dl_name "friends" (max 21)
    00  # esm_class default
    00  # protocol_id
    00  # priority_flag
    00  # schedule_delivery_time "" (immediate)
    00  # validity_period "" (SMSC default)
    01  # registered_delivery: final receipt
    00  # replace_if_present_flag
    00  # data_coding default alphabet
    00  # sm_default_msg_id
    06  # sm_length 6
    686920616c6c  # short_message "hi all"
""")

SUBMIT_MULTI_RESP = hexbytes("""
    0000003b  # command_length 59
    80000021  # command_id submit_multi_resp
    00000000  # command_status ESME_ROK
    00000108  # sequence_number 264
    6d343200  # message_id "m42" (max 65)
    02  # no_unsuccess 2
    01  # unsuccess_sme[0] dest_addr_ton international (section 4.5.2.1)
    01  # unsuccess_sme[0] dest_addr_npi ISDN
    39313938303030303030303100  # unsuccess_sme[0] destination_addr "919800000001" (max 21)
    0000000b  # unsuccess_sme[0] error_status_code ESME_RINVDSTADR
    01  # unsuccess_sme[1] dest_addr_ton international
    01  # unsuccess_sme[1] dest_addr_npi ISDN
    39313938303030303030303200  # unsuccess_sme[1] destination_addr "919800000002"
    00000045  # unsuccess_sme[1] error_status_code ESME_RSUBMITFAIL
""")

# --- Message delivery: section 4.6 (deliver_sm), 4.7 (data_sm) -------------------------------

DELIVER_SM_MO = hexbytes("""
    00000036  # command_length 54
    00000005  # command_id deliver_sm
    00000000  # command_status ESME_ROK
    00000109  # sequence_number 265
    00  # service_type ""
    01  # source_addr_ton international
    01  # source_addr_npi ISDN
    39313938373635343332313000  # source_addr "919876543210" (the handset)
    03  # dest_addr_ton network specific
    00  # dest_addr_npi unknown
    313233343500  # destination_addr "12345" (the short code)
    00  # esm_class 0: a mobile-originated message, not a receipt
    00  # protocol_id
    00  # priority_flag
    00  # schedule_delivery_time "" (unused in deliver_sm)
    00  # validity_period "" (unused in deliver_sm)
    00  # registered_delivery
    00  # replace_if_present_flag (unused in deliver_sm)
    00  # data_coding default alphabet
    00  # sm_default_msg_id (unused in deliver_sm)
    04  # sm_length 4
    53544f50  # short_message "STOP"
""")

DELIVER_SM_RESP = hexbytes("""
    00000011  # command_length 17
    80000005  # command_id deliver_sm_resp
    00000000  # command_status ESME_ROK
    00000109  # sequence_number 265
    00  # message_id: unused, set to NULL
""")

DATA_SM = hexbytes("""
    0000003b  # command_length 59
    00000103  # command_id data_sm
    00000000  # command_status ESME_ROK
    0000010a  # sequence_number 266
    00  # service_type ""
    05  # source_addr_ton alphanumeric
    00  # source_addr_npi unknown
    41434d45494e00  # source_addr "ACMEIN" (max 65)
    01  # dest_addr_ton international
    01  # dest_addr_npi ISDN
    39313938373635343332313000  # destination_addr "919876543210" (max 65)
    00  # esm_class default
    01  # registered_delivery: final receipt
    00  # data_coding default alphabet
    0424  # TLV tag message_payload
    000b  # TLV length 11
    68656c6c6f20776f726c64  # TLV value "hello world"
""")

DATA_SM_RESP = hexbytes("""
    00000019  # command_length 25
    80000103  # command_id data_sm_resp
    00000000  # command_status ESME_ROK
    0000010a  # sequence_number 266
    356633613963303200  # message_id "5f3a9c02" (max 65)
""")

# --- Ancillary: section 4.8 (query), 4.9 (cancel), 4.10 (replace), 4.11, 4.12 ----------------

QUERY_SM = hexbytes("""
    00000022  # command_length 34
    00000003  # command_id query_sm
    00000000  # command_status ESME_ROK
    0000010b  # sequence_number 267
    356633613963303100  # message_id "5f3a9c01" (max 65)
    05  # source_addr_ton alphanumeric
    00  # source_addr_npi unknown
    41434d45494e00  # source_addr "ACMEIN" (max 21)
""")

QUERY_SM_RESP = hexbytes("""
    0000002c  # command_length 44
    80000003  # command_id query_sm_resp
    00000000  # command_status ESME_ROK
    0000010b  # sequence_number 267
    356633613963303100  # message_id "5f3a9c01" (max 65)
    3235303130323033303430353030302b00  # final_date "250102030405000+" (absolute; max 17)
    05  # message_state UNDELIVERABLE (section 5.2.28)
    22  # error_code 0x22 (network specific)
""")

CANCEL_SM = hexbytes("""
    00000032  # command_length 50
    00000008  # command_id cancel_sm
    00000000  # command_status ESME_ROK
    0000010c  # sequence_number 268
    00  # service_type ""
    356633613963303100  # message_id "5f3a9c01" (max 65)
    05  # source_addr_ton alphanumeric
    00  # source_addr_npi unknown
    41434d45494e00  # source_addr "ACMEIN" (max 21)
    01  # dest_addr_ton international
    01  # dest_addr_npi ISDN
    39313938373635343332313000  # destination_addr "919876543210" (max 21)
""")

CANCEL_SM_RESP = hexbytes("""
    00000010  # command_length 16: header only
    80000008  # command_id cancel_sm_resp
    00000000  # command_status ESME_ROK
    0000010c  # sequence_number 268
""")

REPLACE_SM = hexbytes("""
    0000003f  # command_length 63
    00000007  # command_id replace_sm
    00000000  # command_status ESME_ROK
    0000010d  # sequence_number 269
    356633613963303100  # message_id "5f3a9c01" (max 65)
    05  # source_addr_ton alphanumeric
    00  # source_addr_npi unknown
    41434d45494e00  # source_addr "ACMEIN" (max 21)
    00  # schedule_delivery_time "" (unchanged)
    30303030303130303030303030303052  # validity_period "000001000000000R" (relative: 1 day)
    00  # (its NUL; max 17)
    01  # registered_delivery: final receipt
    00  # sm_default_msg_id
    08  # sm_length 8
    6e65772074657874  # short_message "new text"
""")

REPLACE_SM_RESP = hexbytes("""
    00000010  # command_length 16: header only
    80000007  # command_id replace_sm_resp
    00000000  # command_status ESME_ROK
    0000010d  # sequence_number 269
""")

ENQUIRE_LINK = hexbytes("""
    00000010  # command_length 16: header only
    00000015  # command_id enquire_link
    00000000  # command_status ESME_ROK
    0000010e  # sequence_number 270
""")

ENQUIRE_LINK_RESP = hexbytes("""
    00000010  # command_length 16: header only
    80000015  # command_id enquire_link_resp
    00000000  # command_status ESME_ROK
    0000010e  # sequence_number 270
""")

ALERT_NOTIFICATION = hexbytes("""
    0000002c  # command_length 44
    00000102  # command_id alert_notification
    00000000  # command_status ESME_ROK
    0000010f  # sequence_number 271
    01  # source_addr_ton international
    01  # source_addr_npi ISDN
    39313938373635343332313000  # source_addr "919876543210" (the handset, max 65)
    03  # esme_addr_ton network specific
    00  # esme_addr_npi unknown
    313233343500  # esme_addr "12345" (max 65)
    0422  # TLV tag ms_availability_status
    0001  # TLV length 1
    00  # TLV value 0: available
""")


VECTORS: tuple[Golden, ...] = (
    Golden(
        "bind_transmitter",
        "4.1.1",
        BIND_TRANSMITTER,
        BindTransmitter(
            sequence_number=257,
            system_id="smppgw",
            password="secret",
            system_type="smpp",
            interface_version=0x34,
            addr_ton=Ton.INTERNATIONAL,
            addr_npi=Npi.ISDN,
            address_range="91",
        ),
    ),
    Golden(
        "bind_transmitter_resp",
        "4.1.2",
        BIND_TRANSMITTER_RESP,
        BindTransmitterResp(sequence_number=257, system_id="SMSC1"),
    ),
    Golden(
        "bind_receiver",
        "4.1.3",
        BIND_RECEIVER,
        BindReceiver(
            sequence_number=258,
            system_id="acme",
            password="pw",
            system_type="",
            interface_version=0x34,
            addr_ton=Ton.NATIONAL,
            addr_npi=Npi.NATIONAL,
            address_range="^91.*",
        ),
    ),
    Golden(
        "bind_receiver_resp",
        "4.1.4",
        BIND_RECEIVER_RESP,
        BindReceiverResp(sequence_number=258, system_id="SMSC2"),
    ),
    Golden(
        "bind_transceiver_resp",
        "4.1.6",
        BIND_TRANSCEIVER_RESP,
        BindTransceiverResp(
            sequence_number=259,
            system_id="TXTSMS",
            tlvs=(Tlv(Tag.SC_INTERFACE_VERSION, b"\x34"),),
        ),
    ),
    Golden(
        "outbind",
        "4.1.7",
        OUTBIND,
        Outbind(sequence_number=260, system_id="TXTSMS", password="secret"),
    ),
    Golden("unbind", "4.2.1", UNBIND, Unbind(sequence_number=261)),
    Golden("unbind_resp", "4.2.2", UNBIND_RESP, UnbindResp(sequence_number=261)),
    Golden(
        "generic_nack",
        "4.3.1",
        GENERIC_NACK,
        GenericNack(sequence_number=262, command_status=CommandStatus.ESME_RINVCMDID),
    ),
    Golden(
        "submit_sm_resp",
        "4.4.2",
        SUBMIT_SM_RESP,
        SubmitSmResp(sequence_number=263, message_id="5f3a9c01"),
    ),
    Golden(
        "submit_multi",
        "4.5.1",
        SUBMIT_MULTI,
        SubmitMulti(
            sequence_number=264,
            source_addr_ton=Ton.ALPHANUMERIC,
            source_addr_npi=Npi.UNKNOWN,
            source_addr="ACMEIN",
            dest_address=(
                SmeAddress(Ton.INTERNATIONAL, Npi.ISDN, "919876543210"),
                DistributionList("friends"),
            ),
            registered_delivery=RegisteredDelivery.FINAL,
            short_message=b"hi all",
        ),
    ),
    Golden(
        "submit_multi_resp",
        "4.5.2",
        SUBMIT_MULTI_RESP,
        SubmitMultiResp(
            sequence_number=264,
            message_id="m42",
            unsuccess_sme=(
                UnsuccessSme(
                    Ton.INTERNATIONAL, Npi.ISDN, "919800000001", CommandStatus.ESME_RINVDSTADR
                ),
                UnsuccessSme(
                    Ton.INTERNATIONAL, Npi.ISDN, "919800000002", CommandStatus.ESME_RSUBMITFAIL
                ),
            ),
        ),
    ),
    Golden(
        "deliver_sm_mo",
        "4.6.1",
        DELIVER_SM_MO,
        DeliverSm(
            sequence_number=265,
            source_addr_ton=Ton.INTERNATIONAL,
            source_addr_npi=Npi.ISDN,
            source_addr="919876543210",
            dest_addr_ton=Ton.NETWORK_SPECIFIC,
            dest_addr_npi=Npi.UNKNOWN,
            destination_addr="12345",
            esm_class=EsmClass.DEFAULT,
            short_message=b"STOP",
        ),
    ),
    Golden("deliver_sm_resp", "4.6.2", DELIVER_SM_RESP, DeliverSmResp(sequence_number=265)),
    Golden(
        "data_sm",
        "4.7.1",
        DATA_SM,
        DataSm(
            sequence_number=266,
            source_addr_ton=Ton.ALPHANUMERIC,
            source_addr_npi=Npi.UNKNOWN,
            source_addr="ACMEIN",
            dest_addr_ton=Ton.INTERNATIONAL,
            dest_addr_npi=Npi.ISDN,
            destination_addr="919876543210",
            registered_delivery=RegisteredDelivery.FINAL,
            tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, b"hello world"),),
        ),
    ),
    Golden(
        "data_sm_resp",
        "4.7.2",
        DATA_SM_RESP,
        DataSmResp(sequence_number=266, message_id="5f3a9c02"),
    ),
    Golden(
        "query_sm",
        "4.8.1",
        QUERY_SM,
        QuerySm(
            sequence_number=267,
            message_id="5f3a9c01",
            source_addr_ton=Ton.ALPHANUMERIC,
            source_addr_npi=Npi.UNKNOWN,
            source_addr="ACMEIN",
        ),
    ),
    Golden(
        "query_sm_resp",
        "4.8.2",
        QUERY_SM_RESP,
        QuerySmResp(
            sequence_number=267,
            message_id="5f3a9c01",
            final_date="250102030405000+",
            message_state=MessageState.UNDELIVERABLE,
            error_code=0x22,
        ),
    ),
    Golden(
        "cancel_sm",
        "4.9.1",
        CANCEL_SM,
        CancelSm(
            sequence_number=268,
            message_id="5f3a9c01",
            source_addr_ton=Ton.ALPHANUMERIC,
            source_addr_npi=Npi.UNKNOWN,
            source_addr="ACMEIN",
            dest_addr_ton=Ton.INTERNATIONAL,
            dest_addr_npi=Npi.ISDN,
            destination_addr="919876543210",
        ),
    ),
    Golden("cancel_sm_resp", "4.9.2", CANCEL_SM_RESP, CancelSmResp(sequence_number=268)),
    Golden(
        "replace_sm",
        "4.10.1",
        REPLACE_SM,
        ReplaceSm(
            sequence_number=269,
            message_id="5f3a9c01",
            source_addr_ton=Ton.ALPHANUMERIC,
            source_addr_npi=Npi.UNKNOWN,
            source_addr="ACMEIN",
            schedule_delivery_time="",
            validity_period="000001000000000R",
            registered_delivery=RegisteredDelivery.FINAL,
            short_message=b"new text",
        ),
    ),
    Golden("replace_sm_resp", "4.10.2", REPLACE_SM_RESP, ReplaceSmResp(sequence_number=269)),
    Golden("enquire_link", "4.11.1", ENQUIRE_LINK, EnquireLink(sequence_number=270)),
    Golden("enquire_link_resp", "4.11.2", ENQUIRE_LINK_RESP, EnquireLinkResp(sequence_number=270)),
    Golden(
        "alert_notification",
        "4.12.1",
        ALERT_NOTIFICATION,
        AlertNotification(
            sequence_number=271,
            source_addr_ton=Ton.INTERNATIONAL,
            source_addr_npi=Npi.ISDN,
            source_addr="919876543210",
            esme_addr_ton=Ton.NETWORK_SPECIFIC,
            esme_addr_npi=Npi.UNKNOWN,
            esme_addr="12345",
            tlvs=(Tlv(Tag.MS_AVAILABILITY_STATUS, b"\x00"),),
        ),
    ),
)

# PDU classes whose golden vectors live in test_codec_core.py (BIND_TRANSCEIVER,
# SUBMIT_SM_DLT, DELIVER_SM_DLR, SUBMIT_SM_RESP_THROTTLED_NO_BODY).
CORE_GOLDEN_CLASSES: frozenset[type[Pdu]] = frozenset(
    {BindTransceiver, SubmitSm, DeliverSm, SubmitSmResp}
)


def _params() -> list[object]:
    return [
        pytest.param(
            g,
            id=g.name,
            marks=[pytest.mark.xfail(strict=True, reason=g.xfail)] if g.xfail else [],
        )
        for g in VECTORS
    ]


def _fields(pdu: Pdu) -> dict[str, object]:
    return {f.name: getattr(pdu, f.name) for f in dataclasses.fields(pdu)}


@pytest.mark.parametrize("golden", _params())
def test_decoding_the_octets_gives_the_expected_pdu_field_for_field(golden: Golden) -> None:
    decoded = decode(golden.wire)
    assert type(decoded) is type(golden.pdu)
    assert _fields(decoded) == _fields(golden.pdu)
    assert decoded == golden.pdu


@pytest.mark.parametrize("golden", _params())
def test_encoding_the_pdu_gives_the_octets_exactly(golden: Golden) -> None:
    assert encode(golden.pdu).hex() == golden.wire.hex()


@pytest.mark.parametrize("golden", _params())
def test_framer_hands_out_the_pdu_whole_byte_by_byte_and_before_trailing_bytes(
    golden: Golden,
) -> None:
    wire = golden.wire
    assert Framer().feed(wire) == [wire]

    framer = Framer()
    frames = [frame for i in range(len(wire)) for frame in framer.feed(wire[i : i + 1])]
    assert frames == [wire]
    assert framer.buffered == 0

    framer = Framer()
    assert framer.feed(wire + ENQUIRE_LINK[:5]) == [wire]
    assert framer.buffered == 5
    assert [decode(frame) for frame in framer.feed(ENQUIRE_LINK[5:])] == [decode(ENQUIRE_LINK)]
    assert decode(Framer().feed(wire)[0]) == golden.pdu


def test_framer_splits_a_stream_of_every_vector_in_order() -> None:
    stream = b"".join(g.wire for g in VECTORS)
    framer = Framer()
    frames = [frame for i in range(0, len(stream), 7) for frame in framer.feed(stream[i : i + 7])]
    assert frames == [g.wire for g in VECTORS]
    assert framer.buffered == 0


def test_each_vector_states_its_own_length_and_command_id() -> None:
    for golden in VECTORS:
        assert int.from_bytes(golden.wire[0:4], "big") == len(golden.wire), golden.name
        assert int.from_bytes(golden.wire[4:8], "big") == type(golden.pdu).command_id


def test_tlvs_of_the_vectors_read_through_the_typed_accessors() -> None:
    assert decode(BIND_TRANSCEIVER_RESP).sc_interface_version == 0x34
    assert decode(DATA_SM).message_payload == b"hello world"
    assert decode(ALERT_NOTIFICATION).tlv(Tag.MS_AVAILABILITY_STATUS) == b"\x00"
    query = decode(QUERY_SM_RESP)
    assert isinstance(query, QuerySmResp)
    assert query.message_state == MessageState.UNDELIVERABLE
    assert MessageState(query.message_state).is_final


def test_submit_multi_keeps_the_order_and_kind_of_its_destinations() -> None:
    pdu = decode(SUBMIT_MULTI)
    assert isinstance(pdu, SubmitMulti)
    assert [type(d) for d in pdu.dest_address] == [SmeAddress, DistributionList]
    resp = decode(SUBMIT_MULTI_RESP)
    assert isinstance(resp, SubmitMultiResp)
    assert [s.error_status_code for s in resp.unsuccess_sme] == [0x0B, 0x45]


def test_every_registered_pdu_class_has_a_golden_vector() -> None:
    registry = set(_BY_ID.values())
    covered = {type(g.pdu) for g in VECTORS} | CORE_GOLDEN_CLASSES
    missing = sorted(cls.__name__ for cls in registry - covered)
    assert not missing, f"PDU classes without a golden vector: {missing}"
    assert covered <= registry


def test_every_exported_pdu_class_is_registered() -> None:
    exported = {
        obj
        for name in smppgw.codec.__all__
        if isinstance(obj := getattr(smppgw.codec, name), type)
        and issubclass(obj, Pdu)
        and obj is not Pdu
    }
    assert exported == set(_BY_ID.values())
