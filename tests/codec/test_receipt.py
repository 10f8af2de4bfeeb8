"""Delivery receipt parsing (SMPP v3.4 Appendix B and real-world variants) and TLV merging."""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.codec import MessageState, NetworkErrorCode, Tag, Tlv, c_string_tlv
from smppgw.codec.receipt import (
    ReceiptParseError,
    _parse_general,
    format_receipt,
    parse_receipt,
    receipt_info,
    stat_to_message_state,
)

APPENDIX_B = (
    b"id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm "
    b"stat:DDDDDDD err:E text:..........."
)


def test_appendix_b_layout() -> None:
    r = parse_receipt(APPENDIX_B)
    assert (r.id, r.sub, r.dlvrd, r.stat, r.err, r.text) == (
        "IIIIIIIIII",
        "SSS",
        "DDD",
        "DDDDDDD",
        "E",
        "...........",
    )
    assert (r.submit_date, r.done_date) == ("YYMMDDhhmm", "YYMMDDhhmm")
    assert r.submit_datetime is None  # not digits


def test_typical_receipt_with_dates() -> None:
    r = parse_receipt(
        b"id:0123456789 sub:001 dlvrd:001 submit date:2611241530 done date:261124153107 "
        b"stat:DELIVRD err:000 text:Your code is 4711"
    )
    assert r.id == "0123456789"
    assert r.submit_datetime == datetime(2026, 11, 24, 15, 30)
    assert r.done_datetime == datetime(2026, 11, 24, 15, 31, 7)
    assert (r.stat, r.err, r.text) == ("DELIVRD", "000", "Your code is 4711")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"Id:ABC Sub:1 Dlvrd:0 STAT:UNDELIV ERR:034 Text:hi", ("ABC", "UNDELIV", "034", "hi")),
        (b"id:abc stat:EXPIRED err:021", ("abc", "EXPIRED", "021", None)),
        (b"id:x1 submit_date:2611241530 stat:DELIVRD", ("x1", "DELIVRD", None, None)),
        (
            b"  id:9f1c2a7e-0b8e-4c5d-9b0f-1c2d3e4f5a6b stat:REJECTD err:453  ",
            ("9f1c2a7e-0b8e-4c5d-9b0f-1c2d3e4f5a6b", "REJECTD", "453", None),
        ),
        (b"id:1 stat:DELIVRD err:000 text:a: b: c", ("1", "DELIVRD", "000", "a: b: c")),
    ],
)
def test_real_world_variants(text: bytes, expected: tuple[str | None, ...]) -> None:
    r = parse_receipt(text)
    assert (r.id, r.stat, r.err, r.text) == expected


def test_vendor_fields_are_kept() -> None:
    r = parse_receipt(b"id:5 stat:DELIVRD err:000 mcc:404 mnc:45 network:Jio")
    assert r.extra == (("mcc", "404"), ("mnc", "45"), ("network", "Jio"))


@pytest.mark.parametrize("text", [b"", b"hello there", b"stat:DELIVRD err:000", b"id:5 text:x"])
def test_non_receipts_are_refused(text: bytes) -> None:
    with pytest.raises(ReceiptParseError):
        parse_receipt(text)


_ID = st.text("0123456789abcdefABCDEF-", min_size=1, max_size=40)


@given(
    _ID,
    st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD"]),
    st.integers(0, 999),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
)
def test_format_then_parse_round_trip(message_id: str, stat: str, err: int, text: str) -> None:
    when = datetime(2026, 11, 24, 15, 30)
    r = parse_receipt(
        format_receipt(message_id, stat=stat, err=err, submit_date=when, done_date=when, text=text)
    )
    assert (r.id, r.stat, r.err, r.text) == (message_id, stat, f"{err:03d}", text)
    assert r.done_datetime == when


@given(st.binary(max_size=200))
def test_random_text_raises_only_receipt_errors(data: bytes) -> None:
    with contextlib.suppress(ReceiptParseError):
        parse_receipt(data)


def test_tlvs_win_over_text() -> None:
    info = receipt_info(
        b"id:00ff stat:DELIVRD err:000",
        (
            c_string_tlv(Tag.RECEIPTED_MESSAGE_ID, "ff"),
            Tlv(Tag.MESSAGE_STATE, b"\x05"),
            Tlv(Tag.NETWORK_ERROR_CODE, b"\x01\x00\x22"),
        ),
    )
    assert info.message_id == "ff"
    assert info.state is MessageState.UNDELIVERABLE
    assert info.stat == "DELIVRD"
    assert info.network_error == NetworkErrorCode(1, 0x22)


def test_tlvs_alone_and_text_alone() -> None:
    only_tlvs = receipt_info(
        b"", (c_string_tlv(Tag.RECEIPTED_MESSAGE_ID, "42"), Tlv(Tag.MESSAGE_STATE, b"\x02"))
    )
    assert (only_tlvs.message_id, only_tlvs.state, only_tlvs.receipt) == (
        "42",
        MessageState.DELIVERED,
        None,
    )
    only_text = receipt_info(b"id:42 stat:EXPIRED err:021", ())
    assert (only_text.message_id, only_text.state, only_text.err) == (
        "42",
        MessageState.EXPIRED,
        "021",
    )
    with pytest.raises(ReceiptParseError):
        receipt_info(b"no receipt here", (Tlv(Tag.MESSAGE_STATE, b"\x02"),))


@pytest.mark.parametrize(
    ("stat", "state"),
    [
        ("DELIVRD", MessageState.DELIVERED),
        ("undeliv", MessageState.UNDELIVERABLE),
        ("ABSENT-SUB", MessageState.UNDELIVERABLE),
        ("DLT-REJECTED", MessageState.UNDELIVERABLE),
        ("ACCEPTD", MessageState.ACCEPTED),
        ("ENROUTE", MessageState.ENROUTE),
        ("", None),
    ],
)
def test_stat_words_map_to_states(stat: str, state: MessageState | None) -> None:
    assert stat_to_message_state(stat) is state


def test_a_word_the_rejection_test_names_is_rejected_and_only_then() -> None:
    asked: list[str] = []

    def refusal(word: str) -> bool:
        asked.append(word)
        return word == "NOPE"

    assert stat_to_message_state("nope", rejection=refusal) is MessageState.REJECTED
    assert stat_to_message_state("NET-ERR", rejection=refusal) is MessageState.UNDELIVERABLE
    assert stat_to_message_state("DELIVRD", rejection=refusal) is MessageState.DELIVERED
    assert asked == ["NOPE", "NET-ERR"]  # the spec's words never reach it
    info = receipt_info(b"id:1 stat:nope err:000", (), rejection=refusal)
    assert info.state is MessageState.REJECTED


_word = st.text(
    st.characters(codec="latin-1", exclude_characters=" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"),
    max_size=12,
)


@given(
    rid=_word.filter(bool),
    fields=st.lists(_word, min_size=6, max_size=6),
    body=st.none() | st.text(st.characters(codec="latin-1"), max_size=30),
)
def test_the_canonical_fast_path_reads_what_the_general_parser_reads(
    rid: str, fields: list[str], body: str | None
) -> None:
    sub, dlvrd, submit, done, stat, err = fields
    text = (
        f"id:{rid} sub:{sub} dlvrd:{dlvrd} submit date:{submit} done date:{done} "
        f"stat:{stat} err:{err}"
    )
    if body is not None:
        text += f" text:{body}"
    general = None
    with contextlib.suppress(ReceiptParseError):
        general = _parse_general(text)
    if general is not None:
        assert parse_receipt(text) == general


def test_receipt_dates_that_are_not_dates_read_as_none() -> None:
    r = parse_receipt(
        b"id:1 sub:001 dlvrd:001 submit date:2613241530 done date:261124153099 "
        b"stat:DELIVRD err:000 text:x"
    )
    assert (r.submit_date, r.done_date) == ("2613241530", "261124153099")
    assert r.submit_datetime is None  # month 13
    assert r.done_datetime is None  # second 99
    assert parse_receipt(b"id:1 stat:DELIVRD submit date:26112415").submit_datetime is None


def test_format_receipt_writes_the_delivered_count_given() -> None:
    when = datetime(2026, 11, 24, 15, 30)
    assert format_receipt(
        "ab", stat="ENROUTE", err="0x1f", submit_date=when, done_date=when, sub=3, dlvrd=2
    ) == (
        b"id:ab sub:003 dlvrd:002 submit date:2611241530 done date:2611241530 "
        b"stat:ENROUTE err:0x1f text:"
    )
