"""The reference codec's errors, octet for octet: each malformation of a mandatory field gives
its typed error with the command_status to answer, the sequence_number and the command_id, and
each unencodable value an EncodeError that names the field (never its value).

The PDUs here are those without a fast path (submit_multi and its response carry address
lists; bind, query_sm and the others are rare), so everything goes through smppgw.codec._fields.
"""

from __future__ import annotations

import pytest

from smppgw.codec import (
    BindTransmitter,
    CommandStatus,
    DataSm,
    DecodeError,
    DistributionList,
    EncodeError,
    InvalidCommandLengthError,
    InvalidFieldError,
    InvalidTlvError,
    QuerySm,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSmResp,
    UnsuccessSme,
    decode,
    encode,
)
from smppgw.codec._fast import (
    data_sm_codec,
    header_only_codec,
    message_id_codec,
    short_message_codec,
)
from smppgw.codec.constants import Npi, Ton


def hexbytes(text: str) -> bytes:
    """Hex with comments (after '#') and whitespace ignored."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


def pdu(command_id: int, body: str, *, sequence_number: int = 0x2A) -> bytes:
    """A PDU with this command_id, ESME_ROK and a command_length that fits ``body``."""
    octets = hexbytes(body)
    return (
        (16 + len(octets)).to_bytes(4, "big")
        + command_id.to_bytes(4, "big")
        + bytes(4)
        + sequence_number.to_bytes(4, "big")
        + octets
    )


SUBMIT_MULTI_HEAD = """
    00  # service_type ""
    05 00 41434d4500  # source ton 5, npi 0, source_addr "ACME"
"""
SUBMIT_MULTI_TAIL = """
    00 00 00  # esm_class, protocol_id, priority_flag
    00 00  # schedule_delivery_time, validity_period
    00 00 00 00  # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id
    02 6869  # sm_length 2, "hi"
"""


def test_submit_multi_with_an_sme_and_a_distribution_list_decodes_and_encodes_back() -> None:
    wire = pdu(
        0x21,
        SUBMIT_MULTI_HEAD
        + """
        02  # number_of_dests
        01 01 01 393100  # dest_flag 1 (SME), ton 1, npi 1, "91"
        02 667200  # dest_flag 2 (distribution list), "fr"
        """
        + SUBMIT_MULTI_TAIL,
    )
    expected = SubmitMulti(
        sequence_number=0x2A,
        source_addr_ton=Ton.ALPHANUMERIC,
        source_addr="ACME",
        dest_address=(SmeAddress(Ton.INTERNATIONAL, Npi.ISDN, "91"), DistributionList("fr")),
        short_message=b"hi",
    )
    assert decode(wire) == expected
    assert encode(expected) == wire


@pytest.mark.parametrize(
    ("command_id", "body", "error", "message"),
    [
        pytest.param(
            0x21,
            SUBMIT_MULTI_HEAD + "01 03 00" + SUBMIT_MULTI_TAIL,
            InvalidFieldError,
            "dest_flag 3 is neither 1 (SME) nor 2 (distribution list)",
            id="submit_multi dest_flag 3",
        ),
        pytest.param(
            0x21,
            SUBMIT_MULTI_HEAD + "01 02" + "66" * 21 + "00" + SUBMIT_MULTI_TAIL,
            InvalidFieldError,
            "dl_name: C-octet string unterminated within its 21-octet maximum",
            id="submit_multi dl_name of 21 octets",
        ),
        pytest.param(
            0x21,
            SUBMIT_MULTI_HEAD + "01 01 01 01" + "39" * 21 + "00" + SUBMIT_MULTI_TAIL,
            InvalidFieldError,
            "destination_addr: C-octet string unterminated within its 21-octet maximum",
            id="submit_multi destination_addr of 21 octets",
        ),
        pytest.param(
            0x21,
            SUBMIT_MULTI_HEAD + "02 01 01 01 393100",
            InvalidCommandLengthError,
            "PDU body ends inside a mandatory field",
            id="submit_multi ends after the first of two destinations",
        ),
        pytest.param(
            0x80000021,
            "61626300 01 01 01 393100 0000",
            InvalidCommandLengthError,
            "PDU body ends inside a mandatory field",
            id="submit_multi_resp error_status_code cut to 2 octets",
        ),
        pytest.param(
            0x80000021,
            "61626300 01 01 01" + "39" * 21 + "00 00000000",
            InvalidFieldError,
            "destination_addr: C-octet string unterminated within its 21-octet maximum",
            id="submit_multi_resp destination_addr of 21 octets",
        ),
        pytest.param(
            0x00000007,
            "616200 00 00 00 00 00 00 00 05 6869",
            InvalidCommandLengthError,
            "PDU body ends inside a mandatory field",
            id="replace_sm sm_length 5 with 2 octets left",
        ),
        pytest.param(
            0x00000003,
            "616200 01 01" + "39" * 21,
            InvalidFieldError,
            "source_addr: C-octet string unterminated within its 21-octet maximum",
            id="query_sm source_addr without its NUL",
        ),
        pytest.param(
            0x00000003,
            "616200 01",
            InvalidCommandLengthError,
            "PDU body ends inside a mandatory field",
            id="query_sm ends before source_addr_npi",
        ),
        pytest.param(
            0x00000103,
            "00 01 01 3100 01 01 3200 00 00 00 1234 0002 00",
            InvalidTlvError,
            "TLV 0x1234 declares 2 octets, 1 remain",
            id="data_sm TLV longer than the PDU",
        ),
        pytest.param(
            0x00000103,
            "00 01 01 3100 01 01 3200 00 00 00 1234 00",
            InvalidTlvError,
            "truncated TLV header at offset 28",
            id="data_sm TLV header of 3 octets",
        ),
    ],
)
def test_malformed_bodies_raise_the_typed_error_with_status_sequence_and_command_id(
    command_id: int, body: str, error: type[DecodeError], message: str
) -> None:
    with pytest.raises(error) as info:
        decode(pdu(command_id, body))
    assert type(info.value) is error
    assert str(info.value) == message
    assert info.value.status is error.default_status
    assert info.value.sequence_number == 0x2A
    assert info.value.command_id == command_id


def test_the_statuses_of_body_errors_are_those_smpp_answers_with() -> None:
    assert InvalidFieldError.default_status is CommandStatus.ESME_RINVCMDLEN
    assert InvalidCommandLengthError.default_status is CommandStatus.ESME_RINVCMDLEN
    assert InvalidTlvError.default_status is CommandStatus.ESME_RINVTLVSTREAM


def test_decode_takes_a_bytearray_or_a_memoryview_as_it_takes_bytes() -> None:
    wire = encode(DataSm(sequence_number=3, source_addr="1", destination_addr="2"))
    assert decode(bytearray(wire)) == decode(memoryview(wire)) == decode(wire)


@pytest.mark.parametrize(
    ("pdu_", "message"),
    [
        pytest.param(
            SubmitMulti(dest_address=(DistributionList("x"),) * 255),
            "dest_address: 255 destinations, at most 254 allowed",
            id="255 destinations",
        ),
        pytest.param(
            SubmitMulti(dest_address=("919876543210",)),  # type: ignore[arg-type]
            "SubmitMulti.dest_address must be a sequence of SmeAddress and DistributionList "
            "(got tuple)",
            id="a destination that is a str",
        ),
        pytest.param(
            SubmitMulti(dest_address=(SmeAddress(Ton.INTERNATIONAL, Npi(256), "91"),)),
            "SubmitMulti.dest_address must be a sequence of SmeAddress and DistributionList "
            "(got tuple)",
            id="an npi of 256",
        ),
        pytest.param(
            SubmitMultiResp(
                unsuccess_sme=(
                    UnsuccessSme(Ton.INTERNATIONAL, Npi.ISDN, "91", CommandStatus.ESME_RSYSERR),
                )
                * 256
            ),
            "unsuccess_sme: 256 entries, at most 255 allowed",
            id="256 unsuccessful destinations",
        ),
        pytest.param(
            SubmitMultiResp(
                unsuccess_sme=(
                    UnsuccessSme(Ton.INTERNATIONAL, Npi.ISDN, "91", CommandStatus(2**32)),
                )
            ),
            "SubmitMultiResp.unsuccess_sme must be a sequence of UnsuccessSme (got tuple)",
            id="an error_status_code of 2^32",
        ),
        pytest.param(
            QuerySm(message_id="x" * 65),
            "QuerySm.message_id must be a Latin-1 string of at most 64 characters, no NUL "
            "(got str)",
            id="a message_id of 65 characters",
        ),
        pytest.param(
            ReplaceSm(sm_default_msg_id=-1),
            "ReplaceSm.sm_default_msg_id must be an integer in 0..255 (got int)",
            id="an integer field of -1",
        ),
        pytest.param(
            ReplaceSm(short_message="hi"),  # type: ignore[arg-type]
            "ReplaceSm.short_message must be bytes of at most 255 octets (got str)",
            id="a short_message that is a str",
        ),
        pytest.param(
            SubmitSmResp(message_id="x", body_omitted=True),
            "SubmitSmResp: body_omitted with non-default fields or TLVs",
            id="a body left off a response with a message_id",
        ),
    ],
)
def test_unencodable_pdus_raise_an_encode_error_naming_the_field(
    pdu_: object, message: str
) -> None:
    with pytest.raises(EncodeError) as info:
        encode(pdu_)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_an_unencodable_password_is_named_but_never_shown() -> None:
    with pytest.raises(EncodeError) as info:
        encode(BindTransmitter(system_id="acme", password="pässwörd€"))
    assert str(info.value) == (
        "BindTransmitter.password must be a Latin-1 string of at most 8 characters, no NUL "
        "(got str)"
    )
    assert "pässwörd" not in str(info.value)


@pytest.mark.parametrize(
    "codec", [short_message_codec, data_sm_codec, message_id_codec, header_only_codec]
)
def test_a_fast_path_refuses_a_class_whose_layout_it_was_not_written_for(codec: object) -> None:
    with pytest.raises(TypeError, match="QuerySm: its layout is not the one"):
        codec(QuerySm, QuerySm._layout)  # type: ignore[operator]
