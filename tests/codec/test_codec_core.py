"""Wire-format locks and properties of the PDU codec and the framer.

Golden vectors are written field by field from the layouts of SMPP v3.4 issue 1.2, section 4.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.codec import (
    BindTransceiver,
    BindTransceiverResp,
    CommandStatus,
    DecodeError,
    DeliverSm,
    EncodeError,
    EnquireLink,
    Framer,
    FrameTooLargeError,
    GenericNack,
    InvalidCommandIdError,
    InvalidCommandLengthError,
    InvalidFieldError,
    InvalidTlvError,
    MessageState,
    NetworkErrorCode,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Tlv,
    decode,
    encode,
)
from smppgw.codec.constants import EsmClass, Npi, RegisteredDelivery, Ton
from smppgw.codec.pdu import _BY_ID


def hexbytes(text: str) -> bytes:
    """Hex with comments (after '#') and whitespace ignored."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


BIND_TRANSCEIVER = hexbytes("""
    00000027  # command_length 39
    00000009  # command_id bind_transceiver
    00000000  # command_status
    00000001  # sequence_number 1
    736d7070677700  # system_id "smppgw"
    73656372657400  # password "secret"
    736d707000  # system_type "smpp"
    34  # interface_version 0x34
    00  # addr_ton
    00  # addr_npi
    00  # address_range ""
""")

SUBMIT_SM_DLT = hexbytes("""
    0000004e  # command_length 78
    00000004  # command_id submit_sm
    00000000  # command_status
    00000007  # sequence_number 7
    00  # service_type ""
    05  # source_addr_ton alphanumeric
    00  # source_addr_npi
    41434d45494e00  # source_addr "ACMEIN"
    01  # dest_addr_ton international
    01  # dest_addr_npi ISDN
    39313938373635343332313000  # destination_addr "919876543210"
    00  # esm_class
    00  # protocol_id
    00  # priority_flag
    00  # schedule_delivery_time ""
    00  # validity_period ""
    01  # registered_delivery: final receipt
    00  # replace_if_present_flag
    00  # data_coding GSM 03.38
    00  # sm_default_msg_id
    05  # sm_length 5
    68656c6c6f  # short_message "hello"
    1400 0004 31323334  # TLV PE_ID "1234"
    1401 0004 35363738  # TLV Template_ID "5678"
    1402 0002 3930  # TLV TM_ID "90"
""")

DELIVER_SM_DLR = hexbytes("""
    0000004f  # command_length 79
    00000005  # command_id deliver_sm
    00000000  # command_status
    00000002  # sequence_number 2
    00  # service_type
    01 01 39313938373635343332313000  # source ton/npi/addr "919876543210"
    05 00 41434d45494e00  # dest ton/npi/addr "ACMEIN"
    04  # esm_class: SMSC delivery receipt
    00 00 00 00  # protocol_id, priority_flag, schedule, validity
    00 00 00 00  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
    07 69643a61626331  # sm_length 7, "id:abc1"
    001e 0005 6162633100  # receipted_message_id "abc1" NUL
    0427 0001 05  # message_state UNDELIVERABLE
    0423 0003 010022  # network_error_code GSM, 0x0022
""")

SUBMIT_SM_RESP_THROTTLED_NO_BODY = hexbytes("""
    00000010  # command_length 16: the body is omitted (section 4.4.2)
    80000004  # submit_sm_resp
    00000058  # ESME_RTHROTTLED
    0000000b  # sequence_number 11
""")


def test_bind_transceiver_golden_vector() -> None:
    pdu = BindTransceiver(
        sequence_number=1, system_id="smppgw", password="secret", system_type="smpp"
    )
    assert encode(pdu) == BIND_TRANSCEIVER
    assert decode(BIND_TRANSCEIVER) == pdu
    assert "secret" not in repr(pdu)


def test_submit_sm_with_dlt_tlvs_golden_vector() -> None:
    pdu = SubmitSm(
        sequence_number=7,
        source_addr_ton=Ton.ALPHANUMERIC,
        source_addr="ACMEIN",
        dest_addr_ton=Ton.INTERNATIONAL,
        dest_addr_npi=Npi.ISDN,
        destination_addr="919876543210",
        registered_delivery=RegisteredDelivery.FINAL,
        short_message=b"hello",
        tlvs=(Tlv(Tag.PE_ID, b"1234"), Tlv(Tag.TEMPLATE_ID, b"5678"), Tlv(Tag.TM_ID, b"90")),
    )
    assert encode(pdu) == SUBMIT_SM_DLT
    decoded = decode(SUBMIT_SM_DLT)
    assert decoded == pdu
    assert [Tag(t.tag).name for t in decoded.tlvs] == ["PE_ID", "TEMPLATE_ID", "TM_ID"]


def test_deliver_sm_receipt_tlvs_golden_vector() -> None:
    pdu = decode(DELIVER_SM_DLR)
    assert isinstance(pdu, DeliverSm)
    assert pdu.esm_class == 0x04
    assert pdu.short_message == b"id:abc1"
    assert pdu.receipted_message_id == "abc1"
    assert pdu.message_state is MessageState.UNDELIVERABLE
    assert pdu.network_error_code == NetworkErrorCode(1, 0x22)
    assert encode(pdu) == DELIVER_SM_DLR


def test_error_response_without_body_round_trips() -> None:
    pdu = decode(SUBMIT_SM_RESP_THROTTLED_NO_BODY)
    assert pdu == SubmitSmResp(
        sequence_number=11, command_status=CommandStatus.ESME_RTHROTTLED, body_omitted=True
    )
    assert encode(pdu) == SUBMIT_SM_RESP_THROTTLED_NO_BODY


def test_unknown_vendor_status_and_unknown_tlv_survive() -> None:
    wire = encode(
        BindTransceiverResp(
            sequence_number=3,
            command_status=CommandStatus(0x00000401),
            system_id="SMSC",
            tlvs=(Tlv(0x7777, b"\x01\x02"),),
        )
    )
    pdu = decode(wire)
    assert pdu.command_status == 0x401
    assert pdu.tlvs == (Tlv(0x7777, b"\x01\x02"),)
    assert encode(pdu) == wire


def test_header_only_pdus() -> None:
    assert encode(EnquireLink(sequence_number=0x7FFFFFFF)) == hexbytes(
        "00000010 00000015 00000000 7fffffff"
    )
    nack = GenericNack(sequence_number=5, command_status=CommandStatus.ESME_RINVCMDID)
    assert decode(encode(nack)) == nack


@pytest.mark.parametrize(
    ("wire", "error", "status"),
    [
        (b"\x00" * 15, InvalidCommandLengthError, CommandStatus.ESME_RINVCMDLEN),
        (struct.pack("!IIII", 17, 0x15, 0, 1), InvalidCommandLengthError, None),
        (struct.pack("!IIII", 16, 0x99, 0, 9), InvalidCommandIdError, None),
        (
            struct.pack("!IIII", 16 + 5, 0x15, 0, 4) + b"\x12\x34\x00\x09\x01",
            InvalidTlvError,
            CommandStatus.ESME_RINVTLVSTREAM,
        ),
        (
            struct.pack("!IIII", 16 + 7, 0x80000004, 0, 4) + b"x" * 7,
            InvalidFieldError,
            None,
        ),
    ],
)
def test_malformed_pdus_raise_typed_errors_with_status(
    wire: bytes, error: type[DecodeError], status: CommandStatus | None
) -> None:
    with pytest.raises(error) as info:
        decode(wire)
    assert isinstance(info.value.status, CommandStatus)
    if status is not None:
        assert info.value.status is status


def test_unknown_command_id_error_carries_sequence_number() -> None:
    with pytest.raises(InvalidCommandIdError) as info:
        decode(struct.pack("!IIII", 16, 0x99, 0, 9))
    assert info.value.status is CommandStatus.ESME_RINVCMDID
    assert info.value.sequence_number == 9


def test_short_message_length_must_match_body() -> None:
    good = bytearray(SUBMIT_SM_DLT[:-22])  # without the TLVs (8 + 8 + 6 octets)
    good[0:4] = struct.pack("!I", len(good))
    decode(bytes(good))
    truncated = bytearray(good[:-1])
    truncated[0:4] = struct.pack("!I", len(truncated))
    with pytest.raises(InvalidCommandLengthError):
        decode(bytes(truncated))


@pytest.mark.parametrize(
    "pdu",
    [
        SubmitSm(source_addr="x" * 21),
        SubmitSm(destination_addr="€"),
        SubmitSm(esm_class=EsmClass(256)),
        SubmitSm(short_message=b"x" * 256),
        SubmitSm(sequence_number=2**32),
    ],
)
def test_unencodable_fields_raise_encode_error(pdu: Pdu) -> None:
    with pytest.raises(EncodeError):
        encode(pdu)


# --- properties -------------------------------------------------------------------------------

_LATIN1 = st.characters(min_codepoint=1, max_codepoint=255)


def _value_for(name: str, default: object, size: int) -> st.SearchStrategy[object]:
    if isinstance(default, bytes):
        return st.binary(max_size=254)
    if isinstance(default, str):
        return st.text(_LATIN1, max_size=size - 1)
    if isinstance(default, int):
        return st.integers(0, 0xFFFFFFFF if name == "error_status_code" else 0xFF)
    return st.just(default)


@st.composite
def pdus(draw: st.DrawFn) -> Pdu:
    import dataclasses  # noqa: PLC0415

    cls = draw(st.sampled_from(sorted(_BY_ID.values(), key=lambda c: c.__name__)))
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if "wire" not in f.metadata:
            continue
        _, size = f.metadata["wire"]
        kwargs[f.name] = draw(_value_for(f.name, f.default, size or 256))
    tlvs = draw(
        st.lists(st.builds(Tlv, st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=4)
    )
    return cls(
        sequence_number=draw(st.integers(0, 0x7FFFFFFF)),
        command_status=CommandStatus(draw(st.integers(0, 0x500))),
        tlvs=tuple(tlvs),
        **kwargs,
    )


@given(pdus())
@settings(max_examples=400)
def test_decode_encode_round_trip_is_byte_exact(pdu: Pdu) -> None:
    wire = encode(pdu)
    assert decode(wire) == pdu
    assert encode(decode(wire)) == wire


@given(st.binary(min_size=0, max_size=300))
@settings(max_examples=500)
def test_random_bytes_raise_only_decode_errors(data: bytes) -> None:
    try:
        decode(data)
    except DecodeError as exc:
        assert isinstance(exc.status, CommandStatus)  # noqa: PT017 - only some inputs raise


@given(pdus(), st.data())
@settings(max_examples=400)
def test_mutated_pdus_raise_only_decode_errors(pdu: Pdu, data: st.DataObject) -> None:
    wire = bytearray(encode(pdu))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(wire) - 1))
        wire[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(16, len(wire)))
    mutated = bytes(wire[:cut])
    mutated = struct.pack("!I", len(mutated)) + mutated[4:]
    try:
        decode(mutated)
    except DecodeError as exc:
        assert isinstance(exc.status, CommandStatus)  # noqa: PT017 - only some inputs raise


# --- framer -----------------------------------------------------------------------------------

STREAM = BIND_TRANSCEIVER + SUBMIT_SM_DLT + DELIVER_SM_DLR


def test_framer_whole_stream() -> None:
    assert Framer().feed(STREAM) == [BIND_TRANSCEIVER, SUBMIT_SM_DLT, DELIVER_SM_DLR]


def test_framer_byte_by_byte() -> None:
    framer = Framer()
    frames = [frame for i in range(len(STREAM)) for frame in framer.feed(STREAM[i : i + 1])]
    assert frames == [BIND_TRANSCEIVER, SUBMIT_SM_DLT, DELIVER_SM_DLR]
    assert framer.buffered == 0


def test_framer_keeps_trailing_bytes() -> None:
    framer = Framer()
    assert framer.feed(BIND_TRANSCEIVER + SUBMIT_SM_DLT[:10]) == [BIND_TRANSCEIVER]
    assert framer.buffered == 10
    assert framer.feed(SUBMIT_SM_DLT[10:]) == [SUBMIT_SM_DLT]


@given(st.lists(st.integers(1, 40), min_size=1, max_size=60))
def test_framer_any_chunking(sizes: list[int]) -> None:
    framer = Framer()
    frames: list[bytes] = []
    pos = 0
    for size in sizes:
        frames += framer.feed(STREAM[pos : pos + size])
        pos += size
    frames += framer.feed(STREAM[pos:])
    assert frames == [BIND_TRANSCEIVER, SUBMIT_SM_DLT, DELIVER_SM_DLR]


def test_framer_refuses_oversized_length_before_the_body() -> None:
    framer = Framer(max_length=1024)
    with pytest.raises(FrameTooLargeError) as info:
        framer.feed(struct.pack("!I", 1025))
    assert info.value.status is CommandStatus.ESME_RINVCMDLEN
    with pytest.raises(FrameTooLargeError):
        framer.feed(b"more")


def test_a_framer_cannot_be_made_with_a_maximum_below_the_header() -> None:
    with pytest.raises(ValueError, match="max_length 15 is below the 16-octet header"):
        Framer(max_length=15)
    assert Framer(max_length=16).feed(struct.pack("!IIII", 16, 0x15, 0, 1)) == [
        struct.pack("!IIII", 16, 0x15, 0, 1)
    ]


def test_framer_refuses_length_below_header() -> None:
    with pytest.raises(InvalidCommandLengthError):
        Framer().feed(struct.pack("!I", 15))
