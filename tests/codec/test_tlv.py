"""Optional parameters (SMPP v3.4 section 5.3): building them octet for octet, and reading the
common ones through the typed accessors of every PDU."""

from __future__ import annotations

import pytest

from smppgw.codec import (
    DeliverSm,
    EnquireLink,
    MessageState,
    NetworkErrorCode,
    Tag,
    Tlv,
    c_string_tlv,
    find_tlv,
    octet_tlv,
    u8_tlv,
    u16_tlv,
)


def test_builders_write_the_octets_of_each_kind_of_tlv() -> None:
    assert u8_tlv(Tag.MESSAGE_STATE, 2) == Tlv(0x0427, b"\x02")
    assert u16_tlv(Tag.SAR_MSG_REF_NUM, 0x1234) == Tlv(0x020C, b"\x12\x34")
    assert c_string_tlv(Tag.RECEIPTED_MESSAGE_ID, "ab") == Tlv(0x001E, b"ab\x00")
    assert octet_tlv(Tag.PE_ID, "12") == Tlv(0x1400, b"12")
    assert octet_tlv(Tag.PE_ID, b"\x01\x02") == Tlv(0x1400, b"\x01\x02")
    assert NetworkErrorCode(1, 0x0022).to_bytes() == b"\x01\x00\x22"


def test_find_tlv_returns_the_first_of_a_repeated_tag_or_none() -> None:
    tlvs = (Tlv(1, b"a"), Tlv(2, b"b"), Tlv(1, b"c"))
    assert find_tlv(tlvs, 1) == b"a"
    assert find_tlv(tlvs, 3) is None


def test_the_accessors_read_each_common_tlv() -> None:
    pdu = DeliverSm(
        tlvs=(
            Tlv(Tag.MESSAGE_PAYLOAD, b"payload"),
            Tlv(Tag.RECEIPTED_MESSAGE_ID, b"7f3a\x00"),
            Tlv(Tag.MESSAGE_STATE, b"\x05"),
            Tlv(Tag.NETWORK_ERROR_CODE, b"\x03\x01\x02"),
            Tlv(Tag.SAR_MSG_REF_NUM, b"\x01\x02"),
            Tlv(Tag.SAR_TOTAL_SEGMENTS, b"\x03"),
            Tlv(Tag.SAR_SEGMENT_SEQNUM, b"\x02"),
            Tlv(Tag.USER_MESSAGE_REFERENCE, b"\xff\xfe"),
            Tlv(Tag.SC_INTERFACE_VERSION, b"\x34"),
            Tlv(Tag.PE_ID, b"1201"),
            Tlv(Tag.TEMPLATE_ID, b"1207\x00"),
            Tlv(Tag.TM_ID, b"1702"),
            Tlv(0x7777, b"vendor"),
        )
    )
    assert pdu.message_payload == b"payload"
    assert pdu.receipted_message_id == "7f3a"
    assert pdu.message_state is MessageState.UNDELIVERABLE
    assert pdu.network_error_code == NetworkErrorCode(3, 0x0102)
    assert (pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum) == (258, 3, 2)
    assert pdu.user_message_reference == 0xFFFE
    assert pdu.sc_interface_version == 0x34
    assert pdu.tlv(0x7777) == b"vendor"


ACCESSORS = (
    "message_payload",
    "receipted_message_id",
    "message_state",
    "network_error_code",
    "sar_msg_ref_num",
    "sar_total_segments",
    "sar_segment_seqnum",
    "user_message_reference",
    "sc_interface_version",
)


@pytest.mark.parametrize("name", ACCESSORS)
def test_an_absent_tlv_reads_as_none(name: str) -> None:
    assert getattr(EnquireLink(tlvs=(Tlv(0x7777, b"x"),)), name) is None


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        (Tag.MESSAGE_STATE, "message_state"),
        (Tag.NETWORK_ERROR_CODE, "network_error_code"),
        (Tag.SAR_MSG_REF_NUM, "sar_msg_ref_num"),
        (Tag.SAR_TOTAL_SEGMENTS, "sar_total_segments"),
        (Tag.SAR_SEGMENT_SEQNUM, "sar_segment_seqnum"),
        (Tag.USER_MESSAGE_REFERENCE, "user_message_reference"),
        (Tag.SC_INTERFACE_VERSION, "sc_interface_version"),
    ],
)
def test_an_integer_tlv_of_the_wrong_size_reads_as_none(tag: Tag, name: str) -> None:
    for value in (b"", b"\x01\x02\x03\x04"):
        assert getattr(DeliverSm(tlvs=(Tlv(tag, value),)), name) is None
