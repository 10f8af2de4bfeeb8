"""The wire trace's lines: decoded PDUs, numbers and text masked unless revealed, one trace id
from a submit to its response and its receipt on whichever bind."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace

import pytest

from smppgw.codec import (
    CommandStatus,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    SubmitSm,
    SubmitSmResp,
    encode,
)
from smppgw.codec.constants import EsmClass, RegisteredDelivery
from smppgw.codec.receipt import format_receipt
from smppgw.esme.trace import TRACE_LABEL, Direction, WireTap
from smppgw.gateway.trace import TRACE_LOGGER, WireTrace, mask_number, pdu_line

WHEN = dt.datetime(2026, 11, 28, 18, 0)
SUBMIT = SubmitSm(
    source_addr="ACMEIN",
    destination_addr="919876543278",
    registered_delivery=RegisteredDelivery.FINAL,
    short_message=b"Your code is 4242",
    sequence_number=7,
)


def receipt(smsc_id: str, seq: int = 3) -> DeliverSm:
    text = format_receipt(
        smsc_id, stat="DELIVRD", submit_date=WHEN, done_date=WHEN, text="Your code is 4242"
    )
    return DeliverSm(
        source_addr="919876543278",
        destination_addr="ACMEIN",
        esm_class=EsmClass.DELIVERY_RECEIPT,
        short_message=text,
        sequence_number=seq,
    )


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == TRACE_LOGGER]


def test_a_number_keeps_its_country_code_and_last_two_digits() -> None:
    assert mask_number("919876543278") == "91********78"
    assert mask_number("+447700900123") == "+44********23"
    assert mask_number("ACMEIN") == "ACMEIN"  # an alphanumeric sender is no subscriber
    assert mask_number("12345") == "12345"  # nor is a short code


def test_a_submit_line_shows_length_and_coding_but_not_the_number_or_text() -> None:
    line = pdu_line(SUBMIT, reveal=False)
    assert line == (
        "submit_sm seq=7 status=ESME_ROK from=ACMEIN to=91********78 esm_class=0x00 dlr=1 "
        "coding=0 length=17 tlvs=0"
    )
    assert "4242" not in line


def test_reveal_shows_the_number_and_the_text() -> None:
    line = pdu_line(SUBMIT, reveal=True)
    assert "to=919876543278" in line
    assert "text='Your code is 4242'" in line


def test_responses_nacks_and_link_checks_have_their_own_lines() -> None:
    resp = SubmitSmResp(message_id="ab12", sequence_number=7)
    nack = GenericNack(command_status=CommandStatus.ESME_RINVCMDLEN, sequence_number=9)
    assert pdu_line(resp, reveal=False) == "submit_sm_resp seq=7 status=ESME_ROK smsc_id=ab12"
    assert pdu_line(nack, reveal=False) == "generic_nack seq=9 status=ESME_RINVCMDLEN (refused)"
    assert pdu_line(EnquireLink(sequence_number=4), reveal=False) == (
        "enquire_link seq=4 status=ESME_ROK"
    )


def test_a_receipt_line_names_the_smsc_id_and_stat_but_not_the_text_it_quotes() -> None:
    line = pdu_line(receipt("ab12"), reveal=False)
    assert line == (
        "deliver_sm seq=3 status=ESME_ROK receipt from=91********78 to=ACMEIN esm_class=0x04 "
        "dlr=0 smsc_id=ab12 stat=DELIVRD err=000"
    )
    assert "4242" not in line


async def test_one_trace_id_follows_submit_resp_and_a_receipt_on_another_servers_bind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Traced for server smpp1 only: the receipt comes on smpp2's bind and still carries the
    message's id; smpp2's own traffic stays out of the log."""
    caplog.set_level(logging.INFO, logger=TRACE_LOGGER)
    trace = WireTrace()
    trace.switch(on=True, server="smpp1")
    one = WireTap(trace, "smpp1", "trx-0")
    two = WireTap(trace, "smpp2", "trx-0")
    write: list[bytes] = []
    token = TRACE_LABEL.set("m-1/0")
    try:
        one.sending(write.append)(encode(SUBMIT))
    finally:
        TRACE_LABEL.reset(token)
    assert write == [encode(SUBMIT)]  # the octets still go out, unchanged
    resp = encode(SubmitSmResp(message_id="ab12", sequence_number=7))
    one.received(resp[:5])  # a PDU spanning two reads
    one.received(resp[5:])
    two.received(encode(EnquireLink(sequence_number=1)))
    two.received(encode(receipt("ab12")))
    got = lines(caplog)
    assert got[1:] == [
        (
            "sent smpp1/trx-0 submit_sm seq=7 status=ESME_ROK from=ACMEIN to=91********78 "
            "esm_class=0x00 dlr=1 coding=0 length=17 tlvs=0 trace=m-1/0"
        ),
        "received smpp1/trx-0 submit_sm_resp seq=7 status=ESME_ROK smsc_id=ab12 trace=m-1/0",
        (
            "received smpp2/trx-0 deliver_sm seq=3 status=ESME_ROK receipt from=91********78 "
            "to=ACMEIN esm_class=0x04 dlr=0 smsc_id=ab12 stat=DELIVRD err=000 trace=m-1/0"
        ),
    ]
    assert got[0] == "wire trace on for smpp1"


async def test_a_bind_scope_logs_that_bind_only_and_off_forgets_the_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=TRACE_LOGGER)
    trace = WireTrace()
    trace.switch(on=True, bind="smpp1/trx-1")
    trace(Direction.RECEIVED, "smpp1", "trx-0", EnquireLink(sequence_number=1), None)
    trace(Direction.SENT, "smpp1", "trx-1", EnquireLinkResp(sequence_number=1), None)
    trace(Direction.SENT, "smpp1", "trx-1", SUBMIT, "m-2/0")
    trace.switch(on=False)
    resp = SubmitSmResp(message_id="cd34", sequence_number=7)
    trace(Direction.RECEIVED, "smpp1", "trx-1", resp, None)
    assert lines(caplog)[1:] == [
        "sent smpp1/trx-1 enquire_link_resp seq=1 status=ESME_ROK",
        (
            "sent smpp1/trx-1 submit_sm seq=7 status=ESME_ROK from=ACMEIN to=91********78 "
            "esm_class=0x00 dlr=1 coding=0 length=17 tlvs=0 trace=m-2/0"
        ),
        "wire trace off",
    ]


async def test_reveal_is_an_audited_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=TRACE_LOGGER)
    state = WireTrace().switch(on=True, reveal=True)
    assert state.reply() == {"on": True, "scope": "all", "reveal": True, "until": None}
    (record,) = [r for r in caplog.records if r.name == TRACE_LOGGER]
    assert record.levelno == logging.WARNING
    assert "REVEALING" in record.getMessage()


async def test_octets_that_are_no_pdu_are_said_once_and_the_link_is_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=TRACE_LOGGER)
    trace = WireTrace()
    trace.switch(on=True)
    tap = WireTap(trace, "smpp1", "trx-0")
    tap.received(b"\x00\x00\x00\x03" + bytes(12))  # command_length 3
    tap.received(encode(EnquireLink(sequence_number=2)))  # that direction is not read again
    (line,) = lines(caplog)[1:]
    assert line.startswith("received smpp1/trx-0 undecodable: ")


def test_a_duplicate_sequence_on_another_bind_is_another_story() -> None:
    trace = WireTrace()
    trace.state = replace(trace.state, on=True)
    trace(Direction.SENT, "smpp1", "trx-0", SUBMIT, "m-3/0")
    other = SubmitSmResp(message_id="zz", sequence_number=7)
    trace(Direction.RECEIVED, "smpp1", "trx-1", other, None)
    receipt_line = receipt("zz")
    assert trace._trace_id(Direction.RECEIVED, "smpp1", "trx-1", receipt_line, None) is None
