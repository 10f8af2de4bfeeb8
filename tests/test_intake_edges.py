"""The intake under hostile input: every bad line gets a typed error, never ``internal``, never a
traceback in the log, and the connection goes on answering."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_intake import Client, FakeBackend, FakeCoder, connect, settings

from smppgw.codec.smpp_time import SmppTimeError, parse_smpp_time
from smppgw.gateway.intake import MAX_DEPTH, IntakeServer

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
ARABIC_ONES = "\u0661" * 15 + "R"  # str.isdigit() says yes, and int() reads 111111111111111


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
async def client(tmp_path: Path, backend: FakeBackend) -> AsyncIterator[Client]:
    async with IntakeServer(
        backend, settings(tmp_path / "s.sock"), coder=FakeCoder(), clock=NOW.timestamp
    ) as server:
        c = await connect(server)
        yield c
        await c.close()


async def raw_call(client: Client, line: bytes) -> tuple[bytes, dict[str, Any]]:
    """Send one raw line; the reply's bytes (which must be UTF-8) and its JSON."""
    await client.send_raw(line + b"\n")
    raw = await client.reader.readline()
    assert raw.endswith(b"\n"), f"connection closed: {raw!r}"
    reply: dict[str, Any] = json.loads(raw.decode("utf-8"))  # strict: raises on invalid UTF-8
    return raw, reply


async def call_raw(client: Client, line: bytes) -> dict[str, Any]:
    return (await raw_call(client, line))[1]


async def assert_still_answering(client: Client) -> None:
    reply = await client.call({"op": "ping", "req": "after"})
    assert (reply["ok"], reply["req"], reply["pong"]) == (True, "after", True)


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert bad == [], [r.getMessage() for r in bad]


# --- 1. invalid UTF-8 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "offset", "req"),
    [
        (b'{"op": "ping", "req": "\xff\xfe"}', 23, None),
        (b'{"op": "submit", "req": 4, "to": "14155550101", "text": "caf\xe9"}', 60, 4),
        (b'{"op": "submit", "to": "14155550101", "te\xc3xt": "x", "req": "a"}', 41, "a"),
        (b'{"op": "status", "id": "\xed\xa0\x80"}', 24, None),  # a UTF-8 encoded surrogate
        (b'{"op": "ping"}\xf0\x9f\x98', 14, None),  # a truncated 4-octet sequence at the end
    ],
)
async def test_invalid_utf8_anywhere_is_refused_with_its_byte_offset(
    client: Client,
    backend: FakeBackend,
    caplog: pytest.LogCaptureFixture,
    line: bytes,
    offset: int,
    req: object,
) -> None:
    """Raw octets in ``req`` used to be echoed back verbatim (a reply that is not UTF-8), and
    raw octets in ``text`` failed deep in the decoder and were answered ``internal`` with a
    traceback. The line is now refused where it breaks; ``req`` is echoed only when it is
    itself valid."""
    raw, reply = await raw_call(client, line)
    expected: dict[str, Any] = {
        "ok": False,
        "error": "invalid_request",
        "message": f"malformed JSON: invalid UTF-8 at byte {offset}",
    }
    if req is not None:
        expected["req"] = req
    assert reply == expected
    raw.decode("utf-8")
    assert backend.messages == {}
    await assert_still_answering(client)
    no_errors_logged(caplog)


async def test_valid_multibyte_text_is_still_accepted(client: Client, backend: FakeBackend) -> None:
    _, reply = await raw_call(
        client, '{"op": "submit", "to": "14155550101", "text": "Grüße 😀"}'.encode()
    )
    assert reply["ok"] is True, reply
    assert backend.messages["m1"].text == "Grüße 😀"


# --- 2. nesting -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"[" * 60_000,  # within max_line: refused for its depth, not its length
        b'{"a":' * 12_000,
        b'{"op": "ping", "req": ' + b"[" * 2000 + b"]" * 2000 + b"}",
        b'{"op": "submit", "messages": [' + b"[" * 40 + b"]" * 40 + b"]}",
    ],
    ids=["open-arrays", "open-objects", "deep-req", "deep-message"],
)
async def test_deeply_nested_json_is_refused_without_a_traceback(
    client: Client, caplog: pytest.LogCaptureFixture, line: bytes
) -> None:
    """Nesting a few thousand levels deep made the JSON decoder hit the recursion limit:
    ``internal`` and a RecursionError traceback per line. The depth is now bounded."""
    _, reply = await raw_call(client, line)
    assert reply == {
        "ok": False,
        "error": "invalid_request",
        "message": f"request: nested deeper than {MAX_DEPTH} levels",
    }
    await assert_still_answering(client)
    no_errors_logged(caplog)


async def test_nesting_up_to_the_limit_and_brackets_inside_strings_are_fine(
    client: Client, backend: FakeBackend
) -> None:
    req = json.loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
    assert (await client.call({"op": "ping", "req": req}))["req"] == req
    text = "[{" * 100 + '\\"[' * 50
    reply = await client.call({"op": "submit", "to": "14155550101", "text": text, "req": [[1]]})
    assert reply["ok"] is True, reply
    assert backend.messages["m1"].text == text


# --- 3. times -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0001-01-01T00:00:00+01:00", "SMPP absolute time: year 1 outside 2000-2099"),
        ("9999-12-31T23:59:59-01:00", "SMPP absolute time: year 9999 outside 2000-2099"),
        ("2126-01-01T00:00:00+00:00", "SMPP absolute time: year 2126 outside 2000-2099"),
        ("1999-12-31T23:59:59+00:00", "SMPP absolute time: year 1999 outside 2000-2099"),
        ("991399996199000+", "SMPP time '991399996199000+': month must be in 1..12"),
        ("270230120000000+", "SMPP time '270230120000000+': day is out of range for month"),
        ("270101120000049+", "SMPP time '270101120000049+': offset of 49 quarter hours"),
        ("000000250000000R", "SMPP relative time '000000250000000R': hh:mm:ss out of range"),
        ("000000000000000R", "a relative time of zero"),
        (ARABIC_ONES, f"SMPP time {ARABIC_ONES!r}: expected 15 digits"),
        ("2026-11-28T11:59:59+00:00", "'2026-11-28T11:59:59+00:00' is in the past (now 2026-11"),
        ("261128115959000+", "'261128115959000+' is in the past (now 2026-11-28T12:00:00Z)"),
        ("2030-01-02T03:04", "expected seconds, an SMPP time (YYMMDDhhmmsstnnp) or an ISO"),
    ],
)
@pytest.mark.parametrize("field", ["validity", "schedule"])
async def test_bad_times_are_refused_naming_the_message_and_field(
    client: Client,
    backend: FakeBackend,
    caplog: pytest.LogCaptureFixture,
    field: str,
    value: str,
    message: str,
) -> None:
    """ISO dates at the calendar's edges overflowed when moved to UTC (``internal``, and the
    whole batch lost), years after 2099 were written with two digits (2126 stored as 2026),
    and month 13 passed a pattern check. Every time now goes through the codec's one SMPP
    time parser; out-of-range and past absolute times are refused, naming the field."""
    good = {"to": "14155550101", "text": "ok"}
    bad = {"to": "14155550101", "text": "bad", field: value}
    reply = await client.call({"op": "submit", "messages": [good, bad]})
    assert reply["accepted"] == 1
    assert reply["results"][0]["ok"] is True
    result = reply["results"][1]
    assert (result["ok"], result["error"]) == (False, "invalid_request")
    assert result["message"].startswith(f"messages[1].{field}: {message}"), result["message"]
    assert [m.text for m in backend.messages.values()] == ["ok"]
    single = await client.call({"op": "submit", **bad})
    assert single["message"].startswith(f"{field}: {message}"), single["message"]
    no_errors_logged(caplog)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("2099-12-31T23:59:59+00:00", "991231235959000+"),
        ("2026-11-28T13:00:00.25+01:00", "261128120000200+"),  # in UTC, tenths kept
        ("261128120001000+", "261128120001000+"),  # one second after now
        ("270101120000448-", "270101120000448-"),
        ("000000000001000R", "000000000001000R"),
        (60, "000000000100000R"),
    ],
)
async def test_good_times_are_stored_as_smpp_times(
    client: Client, backend: FakeBackend, value: object, stored: str
) -> None:
    reply = await client.call(
        {"op": "submit", "to": "14155550101", "text": "x", "validity": value, "schedule": value}
    )
    assert reply["ok"] is True, reply
    assert (backend.messages["m1"].validity, backend.messages["m1"].schedule) == (stored, stored)


def test_the_codec_time_parser_refuses_non_ascii_digits() -> None:
    """``str.isdigit`` is true for Arabic-Indic digits and ``int`` reads them: the parser
    turned fifteen of them and ``R`` into a valid interval, and the intake would have sent
    that string to the SMSC."""
    with pytest.raises(SmppTimeError, match="expected 15 digits"):
        parse_smpp_time(ARABIC_ONES)
    with pytest.raises(SmppTimeError, match="expected 15 digits"):
        parse_smpp_time("27010112000000\u0660+")


# --- 4. batches are judged per message ------------------------------------------------------


async def test_a_wrong_type_in_one_message_rejects_only_that_message(
    client: Client, backend: FakeBackend
) -> None:
    """A type error in any message failed the whole batch (``messages[1].to: expected str``
    as the request's error), though the protocol promises each message is judged alone."""
    reply = await client.call(
        {
            "op": "submit",
            "req": "b",
            "messages": [
                {"to": "14155550101", "text": "one"},
                {"to": 14155550102, "text": "two"},
                {"to": "14155550103", "text": "three", "colour": "red"},
                7,
                {"text": "five"},
                {"to": "14155550106", "text": "six", "priority": 9},
                {"to": "14155550107", "text": "seven"},
            ],
        }
    )
    assert reply["ok"] is True
    assert reply["req"] == "b"
    assert (reply["accepted"], reply["rejected"]) == (2, 5)
    assert [(r["ok"], r.get("error"), r.get("message")) for r in reply["results"]] == [
        (True, None, None),
        (False, "invalid_request", "messages[1].to: expected `str`, got `int`"),
        (False, "unknown_field", "messages[2].colour: unknown field"),
        (False, "invalid_request", "messages[3]: expected `object`, got `int`"),
        (False, "invalid_request", "messages[4].to: required"),
        (False, "invalid_request", "messages[5].priority: expected `int` <= 3"),
        (True, None, None),
    ]
    assert [m.text for m in backend.messages.values()] == ["one", "seven"]
    assert backend.commits == [2]


# --- 5. subscribe cursors -------------------------------------------------------------------


@pytest.mark.parametrize("cursor", [2**63, 2**64 + 5, 10**30])
async def test_a_cursor_beyond_64_bits_is_refused_and_the_connection_goes_on(
    client: Client, cursor: int
) -> None:
    """A cursor of 2**63 or more reached the store, which cannot hold it in an INTEGER: the
    event stream failed and the connection was closed."""
    reply = await client.call({"op": "subscribe", "cursor": cursor, "req": 1})
    assert reply == {
        "ok": False,
        "req": 1,
        "error": "invalid_request",
        "message": "cursor: expected `int` <= 9223372036854775807",
    }
    await assert_still_answering(client)


async def test_a_cursor_beyond_the_newest_event_is_refused_with_the_newest_cursor(
    client: Client, backend: FakeBackend
) -> None:
    """A cursor past the newest event (a cursor kept from another, replaced store) was
    accepted and the stream stayed silent until the store caught up, skipping everything in
    between. The reply now says so and carries ``last``."""
    backend.append("m1")
    backend.append("m2")
    reply = await client.call({"op": "subscribe", "cursor": 3, "req": "s"})
    assert reply == {
        "ok": False,
        "req": "s",
        "error": "invalid_request",
        "message": "cursor: 3 is beyond the newest event (2); subscribe again with a cursor "
        "of at most 2",
        "last": 2,
    }
    assert await client.call({"op": "subscribe", "cursor": 2}) == {
        "ok": True,
        "cursor": 2,
        "last": 2,
    }
    backend.append("m3")
    assert (await client.read())["cursor"] == 3


# --- everything else a client can get wrong -------------------------------------------------

_TO = b'"to": "14155550101"'


@pytest.mark.parametrize(
    ("line", "error", "message"),
    [
        (b"[]", "invalid_request", "request: expected `object`, got `array`"),
        (b"42", "invalid_request", "request: expected `object`, got `int`"),
        (b'"ping"', "invalid_request", "request: expected `object`, got `str`"),
        (b"null", "invalid_request", "request: expected `object`, got `null`"),
        (b'{"op": ""}', "unknown_op", "op: unknown operation ''"),
        (b'{"op": null}', "invalid_request", "op: required"),
        (b'{"op": ["ping"]}', "invalid_request", "op: expected `str | null`, got `array`"),
        (b'{"op": "ping"} {"op": "ping"}', "invalid_request", "malformed JSON: JSON is malformed"),
        (b"\xef\xbb\xbf" + b'{"op": "ping"}', "invalid_request", "malformed JSON: JSON is"),
        (b'{"op": "submit", ' + _TO + b', "validity": NaN}', "invalid_request", "malformed JSON"),
        (b'{"op": "submit", ' + _TO + b', "validity": Infinity}', "invalid_request", "malformed"),
        (b'{"op": "submit", ' + _TO + b', "validity": 1e400}', "invalid_request", "validity: n"),
        (b'{"op": "submit", ' + _TO + b', "validity": 1.5}', "invalid_request", "validity: exp"),
        (
            b'{"op": "submit", ' + _TO + b', "text": "x", "validity": 1' + b"0" * 40 + b"}",
            "invalid_request",
            "validity: must be 1..8639999 seconds",
        ),
        (
            b'{"op": "submit", ' + _TO + b', "priority": 1' + b"0" * 40 + b"}",
            "invalid_request",
            "priority: expected `int` <= 3",
        ),
        (b'{"op": "submit", ' + _TO + b', "max_parts": -1}', "invalid_request", "max_parts: exp"),
        (b'{"op": "submit", ' + _TO + b', "flash": "yes"}', "invalid_request", "flash: expected"),
        (
            b'{"op": "submit", ' + _TO + b', "text": "\\ud800"}',
            "invalid_request",
            "malformed JSON: unpaired UTF-16 surrogate escape (byte 47)",
        ),
        (
            b'{"op": "submit", ' + _TO + b', "text": "\\udc00x"}',
            "invalid_request",
            "malformed JSON: JSON is malformed: invalid utf-16 surrogate",
        ),
        (
            b'{"op": "submit", ' + _TO + b', "text": "x", "custom": ""}',
            "invalid_request",
            "custom: expected `str` of length >= 1",
        ),
        (
            b'{"op": "submit", ' + _TO + b', "text": "x", "custom": "' + b"c" * 129 + b'"}',
            "invalid_request",
            "custom: expected `str` of length <= 128",
        ),
        (
            b'{"op": "submit", "to": "' + b"1" * 60000 + b'", "text": "x"}',
            "invalid_number",
            "to: must have 8..15 digits, got 60000",
        ),
        (
            b'{"op": "submit", ' + _TO + b', "text": "' + b"x" * 60000 + b'"}',
            "too_long",
            "text: needs 393 parts as gsm",
        ),
        (b'{"op": "submit", "messages": {}}', "invalid_request", "messages: expected `array`"),
        (b'{"op": "submit", "messages": []}', "invalid_request", "messages: must hold 1..1000"),
        (b'{"op": "status", "id": 5}', "invalid_request", "id: expected `str | null`, got `int`"),
        (b'{"op": "subscribe", "cursor": "5"}', "invalid_request", "cursor: expected `int | nu"),
        (b'{"op": "subscribe", "cursor": 5.0}', "invalid_request", "cursor: expected `int | nu"),
        (b'{"op": "subscribe", "events": [1]}', "invalid_request", "events[0]: expected `str`"),
        (b'{"op": "unmatched", "limit": 1e3}', "invalid_request", "limit: expected `int`"),
        (b'{"op": "unmatched", "limit": 0}', "invalid_request", "limit: expected `int` >= 1"),
    ],
)
async def test_hostile_lines_get_typed_errors_and_the_connection_goes_on(
    client: Client,
    backend: FakeBackend,
    caplog: pytest.LogCaptureFixture,
    line: bytes,
    error: str,
    message: str,
) -> None:
    _, reply = await raw_call(client, line)
    assert (reply["ok"], reply["error"]) == (False, error), reply
    assert reply["message"].startswith(message), reply["message"]
    assert backend.messages == {}
    await assert_still_answering(client)
    no_errors_logged(caplog)


async def test_duplicate_keys_take_the_last_value_throughout(
    client: Client, backend: FakeBackend
) -> None:
    """The op is read twice (once to choose the request type, once for its fields); both
    readings take the last of duplicate keys, so they can never disagree."""
    assert (await call_raw(client, b'{"op": "submit", "op": "ping"}'))["pong"] is True
    reply = await call_raw(client, b'{"op": "ping", "op": "submit", ' + _TO + b', "text": "a"}')
    assert reply["id"] == "m1"
    reply = await call_raw(
        client, b'{"op": "submit", ' + _TO + b', "text": "a", "text": "b", "req": 1, "req": 2}'
    )
    assert reply["req"] == 2
    assert backend.messages["m2"].text == "b"
