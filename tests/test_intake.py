"""The intake socket: NDJSON requests on a real Unix socket against an in-memory backend."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw import __version__
from smppgw.codec.constants import DataCoding, Npi, Ton
from smppgw.esme.numbers import SenderKind
from smppgw.esme.observe import RecordingObserver
from smppgw.gateway.events import (
    DeliveryState,
    ReceiptPayload,
    StatusEvent,
    StatusPayload,
    StoredEvent,
    encode_event,
)
from smppgw.gateway.intake import (
    BackendOverloadedError,
    IntakeDefaults,
    IntakeError,
    IntakeServer,
    IntakeSettings,
    SubmitRequest,
    SubmitResult,
    relative_time,
)

TIMEOUT = 5.0


class FakeCoder:
    """GSM for ASCII, UCS-2 otherwise; 160/153, 70/67 and 140/134 per part."""

    def choose_coding(self, text: str) -> DataCoding:
        return DataCoding.DEFAULT if text.isascii() else DataCoding.UCS2

    def count_parts(self, text: str, data_coding: DataCoding) -> int:
        if data_coding == DataCoding.DEFAULT:
            if not text.isascii():
                raise ValueError("not GSM")
            single, each, size = 160, 153, len(text)
        elif data_coding == DataCoding.LATIN_1:
            size = len(text.encode("latin-1"))  # raises UnicodeEncodeError, a ValueError
            single, each = 140, 134
        else:
            single, each, size = 70, 67, len(text.encode("utf-16-be")) // 2
        return 1 if size <= single else -(-size // each)


class FakeBackend:
    """Stores messages in dicts; events in a list with cursors 1, 2, 3..."""

    def __init__(self) -> None:
        self.messages: dict[str, SubmitRequest] = {}
        self.by_custom: dict[str, str] = {}
        self.commits: list[int] = []
        self.events: list[StoredEvent] = []
        self.receipts: list[ReceiptPayload] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.fail: BaseException | None = None
        self._new = asyncio.Event()

    async def submit(self, requests: Sequence[SubmitRequest]) -> Sequence[SubmitResult]:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.commits.append(len(requests))
        results = []
        for request in requests:
            if request.custom is not None and request.custom in self.by_custom:
                results.append(
                    SubmitResult(self.by_custom[request.custom], request.parts, duplicate=True)
                )
                continue
            message_id = f"m{len(self.messages) + 1}"
            self.messages[message_id] = request
            if request.custom is not None:
                self.by_custom[request.custom] = message_id
            results.append(SubmitResult(message_id, request.parts))
        return results

    async def status(
        self, *, message_id: str | None = None, custom: str | None = None
    ) -> StatusPayload | None:
        if custom is not None:
            message_id = self.by_custom.get(custom)
        request = self.messages.get(message_id or "")
        if message_id is None or request is None:
            return None
        return StatusPayload(
            id=message_id,
            mobile=request.to,
            status="QUEUED",
            state=DeliveryState.QUEUED,
            final=False,
            units=request.parts,
            custom=request.custom,
            cid=request.custom,
        )

    def append(self, message_id: str, status: str = "DELIVRD") -> int:
        cursor = len(self.events) + 1
        payload = StatusPayload(
            id=message_id,
            mobile="14155550101",
            status=status,
            state=DeliveryState.DELIVERED,
            final=True,
            units=1,
        )
        self.events.append(StoredEvent(cursor, encode_event(StatusEvent(payload))))
        self._new.set()
        return cursor

    async def events_after(self, cursor: int, limit: int) -> Sequence[StoredEvent]:
        return [e for e in self.events if e.cursor > cursor][:limit]

    async def wait_events(self, cursor: int) -> None:
        while len(self.events) <= cursor:
            self._new.clear()
            await self._new.wait()

    async def last_cursor(self) -> int:
        return len(self.events)

    async def unmatched(self, limit: int) -> tuple[int, Sequence[ReceiptPayload]]:
        return len(self.receipts), self.receipts[:limit]


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, request: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(request).encode() + b"\n")

    async def read(self) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            line = await self.reader.readline()
        assert line.endswith(b"\n"), f"connection closed: {line!r}"
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.send(request)
        return await self.read()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def settings(path: Path, **overrides: Any) -> IntakeSettings:
    values: dict[str, Any] = {
        "path": str(path),
        "defaults": IntakeDefaults(sender="ACME", pe_id="1101"),
    }
    values.update(overrides)
    return IntakeSettings(**values)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


@pytest.fixture
async def server(
    tmp_path: Path, backend: FakeBackend, observer: RecordingObserver
) -> AsyncIterator[IntakeServer]:
    async with IntakeServer(
        backend, settings(tmp_path / "s.sock"), observer=observer, coder=FakeCoder()
    ) as srv:
        yield srv


async def connect(server: IntakeServer) -> Client:
    reader, writer = await asyncio.open_unix_connection(server.path)
    return Client(reader, writer)


@pytest.fixture
async def client(server: IntakeServer) -> AsyncIterator[Client]:
    c = await connect(server)
    yield c
    await c.close()


# --- submit ---------------------------------------------------------------------------------


async def test_submit_one_message_is_stored_with_defaults_and_acknowledged(
    client: Client, backend: FakeBackend
) -> None:
    reply = await client.call(
        {"op": "submit", "req": 7, "to": "14155550101", "text": "hello", "validity": 3600}
    )
    assert reply == {"ok": True, "req": 7, "id": "m1", "parts": 1, "duplicate": False}
    stored = backend.messages["m1"]
    assert stored.to == "14155550101"
    assert stored.sender.value == "ACME"
    assert stored.sender.kind is SenderKind.ALPHANUMERIC
    assert (stored.sender.ton, stored.sender.npi) == (Ton.ALPHANUMERIC, Npi.UNKNOWN)
    assert stored.text == "hello"
    assert stored.payload is None
    assert stored.data_coding == DataCoding.DEFAULT
    assert stored.pe_id == "1101"  # from the defaults
    assert stored.template_id is None
    assert stored.registered_delivery is True
    assert stored.validity == "000000010000000R"
    assert stored.priority == 0


async def test_the_reply_waits_for_the_backend_commit(client: Client, backend: FakeBackend) -> None:
    backend.gate = asyncio.Event()
    await client.send({"op": "submit", "to": "14155550101", "text": "x"})
    read = asyncio.create_task(client.read())
    await backend.entered.wait()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not read.done()
    assert backend.commits == []
    backend.gate.set()
    assert (await read)["id"] == "m1"
    assert backend.commits == [1]


async def test_unicode_text_is_counted_in_ucs2_parts(client: Client, backend: FakeBackend) -> None:
    reply = await client.call({"op": "submit", "to": "447700900123", "text": "Ж" * 71})
    assert reply["parts"] == 2
    assert backend.messages["m1"].data_coding == DataCoding.UCS2


async def test_hex_payload_counts_octets_and_defaults_to_binary_coding(
    client: Client, backend: FakeBackend
) -> None:
    reply = await client.call({"op": "submit", "to": "447700900123", "hex": "00" * 141})
    assert reply["parts"] == 2
    stored = backend.messages["m1"]
    assert stored.payload == bytes(141)
    assert stored.text is None
    assert stored.data_coding == DataCoding.OCTET_UNSPECIFIED_2


async def test_flash_gsm_message_goes_out_as_message_class_0(
    client: Client, backend: FakeBackend
) -> None:
    await client.call({"op": "submit", "to": "447700900123", "text": "hi", "flash": True})
    assert backend.messages["m1"].wire_coding == DataCoding.GSM_FLASH


async def test_numeric_sender_and_iso_schedule_are_converted(
    client: Client, backend: FakeBackend
) -> None:
    await client.call(
        {
            "op": "submit",
            "to": "447700900123",
            "from": "14155550101",
            "text": "hi",
            "schedule": "2030-01-02T03:04:05+05:30",
            "registered_delivery": False,
            "priority": 3,
        }
    )
    stored = backend.messages["m1"]
    assert stored.sender.kind is SenderKind.INTERNATIONAL
    assert (stored.sender.ton, stored.sender.npi) == (Ton.INTERNATIONAL, Npi.ISDN)
    assert stored.schedule == "300101213405000+"  # converted to UTC
    assert stored.registered_delivery is False
    assert stored.priority == 3


async def test_duplicate_custom_returns_the_first_id_and_stores_nothing_new(
    client: Client, backend: FakeBackend
) -> None:
    first = await client.call(
        {"op": "submit", "to": "14155550101", "text": "a", "custom": "order-1"}
    )
    second = await client.call(
        {"op": "submit", "to": "14155550101", "text": "a", "custom": "order-1"}
    )
    assert first["duplicate"] is False
    assert second == {"ok": True, "id": first["id"], "parts": 1, "duplicate": True}
    assert list(backend.messages) == ["m1"]


async def test_batch_gives_a_result_per_message_and_commits_the_valid_ones_once(
    client: Client, backend: FakeBackend
) -> None:
    reply = await client.call(
        {
            "op": "submit",
            "req": "b1",
            "messages": [
                {"to": "14155550101", "text": "one"},
                {"to": "+14155550101", "text": "two"},
                {"to": "447700900123", "text": "three", "custom": "c3"},
            ],
        }
    )
    assert reply["ok"] is True
    assert reply["req"] == "b1"
    assert (reply["accepted"], reply["rejected"]) == (2, 1)
    ok1, bad, ok3 = reply["results"]
    assert ok1 == {"ok": True, "id": "m1", "parts": 1, "duplicate": False}
    assert bad["ok"] is False
    assert bad["error"] == "invalid_number"
    assert bad["message"].startswith("messages[1].to: must not start with '+'")
    assert ok3 == {"ok": True, "id": "m2", "parts": 1, "duplicate": False}
    assert backend.commits == [2]


async def test_empty_and_oversized_batches_are_refused(
    tmp_path: Path, backend: FakeBackend
) -> None:
    config = settings(tmp_path / "s.sock", max_batch=2)
    async with IntakeServer(backend, config, coder=FakeCoder()) as srv:
        c = await connect(srv)
        empty = await c.call({"op": "submit", "messages": []})
        message = {"to": "14155550101", "text": "x"}
        big = await c.call({"op": "submit", "messages": [message] * 3})
        await c.close()
    assert empty["error"] == big["error"] == "invalid_request"
    assert big["message"] == "messages: must hold 1..2 messages, got 3"
    assert backend.commits == []


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_line", "error", "message"),
    [
        (b'{"op": "submit", "to": ', "invalid_request", "malformed JSON: "),
        (b"\xff\xfe{}", "invalid_request", "malformed JSON: "),
        (b"[1, 2]", "invalid_request", "request: expected `object`, got `array`"),
        (b'{"to": "14155550101"}', "invalid_request", "op: required"),
        (b'{"op": 5}', "invalid_request", "op: expected `str | null`, got `int`"),
        (b'{"op": "launch"}', "unknown_op", "op: unknown operation 'launch'"),
        (
            b'{"op": "submit", "to": "14155550101", "text": "x", "colour": "red"}',
            "unknown_field",
            "colour: unknown field",
        ),
        (b'{"op": "submit", "text": "x"}', "invalid_request", "to: required"),
        (
            b'{"op": "submit", "to": "14155550101", "text": "x", "priority": 7}',
            "invalid_request",
            "priority: expected `int` <= 3",
        ),
        (
            b'{"op": "submit", "to": "14155550101", "text": "x", "coding": "utf8"}',
            "invalid_request",
            "coding: invalid enum value 'utf8'",
        ),
        (
            b'{"op": "submit", "to": "0044770090012", "text": "x"}',
            "invalid_number",
            "to: must start with the country code, not 0 or 00",
        ),
        (
            b'{"op": "submit", "to": "1415 555 0101", "text": "x"}',
            "invalid_number",
            "to: must contain digits only",
        ),
        (
            b'{"op": "submit", "to": "14155550101", "from": "ACME-LIMITED-CO", "text": "x"}',
            "invalid_number",
            "from: an alphanumeric sender has at most 11 characters, got 15",
        ),
        (
            b'{"op": "submit", "to": "14155550101"}',
            "invalid_request",
            "text: give exactly one of text, hex",
        ),
        (
            b'{"op": "submit", "to": "14155550101", "text": ""}',
            "invalid_request",
            "text: must not be empty",
        ),
        (
            b'{"op": "submit", "to": "14155550101", "hex": "0g"}',
            "invalid_request",
            "hex: not a hexadecimal string",
        ),
        (
            b'{"op": "submit", "to": "14155550101", "hex": "000", "coding": "ucs2"}',
            "invalid_request",
            "hex: not a hexadecimal string",
        ),
        (
            b'{"op": "submit", "to": "14155550101", "hex": "000000", "coding": "ucs2"}',
            "invalid_request",
            "hex: UCS-2 needs an even number of octets",
        ),
        (
            b'{"op": "submit", "to": "14155550101", "text": "\xc3\xa9", "coding": "gsm"}',
            "invalid_request",
            "text: not representable in gsm",
        ),
        (
            b'{"op":"submit","to":"14155550101","text":"x","coding":"latin1","flash":true}',
            "invalid_request",
            "flash: only with gsm or ucs2 coding",
        ),
        (
            b'{"op": "submit", "to": "14155550101", "text": "x", "tm_id": "12a"}',
            "invalid_request",
            "tm_id: must be 1..64 digits, got '12a'",
        ),
        (
            b'{"op": "submit", "to": "14155550101", "text": "x", "validity": 0}',
            "invalid_request",
            "validity: must be 1..8639999 seconds, got 0",
        ),
        (
            b'{"op": "submit", "to": "14155550101", "text": "x", "schedule": "tomorrow"}',
            "invalid_request",
            "schedule: expected seconds, an SMPP time",
        ),
        (
            b'{"op": "submit", "to": "14155550101", "text": "x", "schedule": "2030-01-02T03:04"}',
            "invalid_request",
            "schedule: expected seconds",
        ),
        (
            b'{"op": "submit", "to": "14155550101", "text": "' + b"x" * 161 + b'", "max_parts": 1}',
            "too_long",
            "text: needs 2 parts as gsm, max_parts is 1",
        ),
        (b'{"op": "status"}', "invalid_request", "id: give exactly one of id, custom"),
        (b'{"op": "status", "id": "nope"}', "not_found", "no message with id 'nope'"),
        (b'{"op": "subscribe", "cursor": -1}', "invalid_request", "cursor: expected `int` >= 0"),
    ],
)
async def test_bad_requests_get_typed_errors_naming_the_field(
    client: Client, backend: FakeBackend, request_line: bytes, error: str, message: str
) -> None:
    await client.send_raw(request_line + b"\n")
    reply = await client.read()
    assert reply["ok"] is False
    assert reply["error"] == error
    assert reply["message"].startswith(message), reply["message"]
    assert backend.messages == {}
    # The connection survives every bad line.
    assert (await client.call({"op": "ping"}))["pong"] is True


async def test_errors_found_after_parsing_echo_the_req_too(client: Client) -> None:
    assert await client.call({"op": "status", "id": "x", "req": 5}) == {
        "ok": False,
        "req": 5,
        "error": "not_found",
        "message": "no message with id 'x'",
    }
    reply = await client.call({"op": "submit", "req": [1], "to": "1", "text": "x"})
    assert (reply["req"], reply["error"]) == ([1], "invalid_number")
    reply = await client.call({"op": "submit", "req": "b", "messages": []})
    assert (reply["req"], reply["error"]) == ("b", "invalid_request")


async def test_a_bad_line_then_a_good_one_on_the_same_connection(
    client: Client, backend: FakeBackend
) -> None:
    await client.send_raw(
        b'{"op":"submit",,}\n{"op":"submit","req":2,"to":"14155550101","text":"ok"}\n'
    )
    bad = await client.read()
    good = await client.read()
    assert bad["error"] == "invalid_request"
    assert "req" not in bad  # unreadable line: nothing to echo
    assert good == {"ok": True, "req": 2, "id": "m1", "parts": 1, "duplicate": False}


async def test_errors_echo_the_req_value_verbatim(client: Client) -> None:
    reply = await client.call({"op": "nope", "req": {"batch": [1, "a"]}})
    assert reply == {
        "ok": False,
        "req": {"batch": [1, "a"]},
        "error": "unknown_op",
        "message": (
            "op: unknown operation 'nope' "
            "(submit, preview, status, subscribe, ping, unmatched, stats, trace, cluster, pause,"
            " resume, cancel, retry, history, list, reload)"
        ),
    }


async def test_over_long_line_is_discarded_and_answered_then_the_next_line_works(
    tmp_path: Path, backend: FakeBackend
) -> None:
    config = settings(tmp_path / "s.sock", max_line=1024)
    async with IntakeServer(backend, config, coder=FakeCoder()) as srv:
        c = await connect(srv)
        # A line of exactly max_line bytes is accepted; one byte more is not.
        head = b'{"op":"submit","to":"14155550101","text":"'
        exact = head + b"y" * (1024 - len(head) - 2) + b'"}'
        assert len(exact) == 1024
        await c.send_raw(exact + b"\n")
        accepted = await c.read()
        await c.send_raw(head + b"y" * 70_000 + b'"}\n{"op":"ping","req":1}\n')
        too_long = await c.read()
        pong = await c.read()
        await c.close()
    assert accepted["ok"] is True
    assert accepted["parts"] == 7  # 981 GSM characters
    assert too_long == {
        "ok": False,
        "error": "line_too_long",
        "message": "line longer than 1024 bytes; discarded",
    }
    assert pong["req"] == 1
    assert pong["pong"] is True
    assert len(backend.messages) == 1


async def test_blank_lines_are_ignored(client: Client) -> None:
    await client.send_raw(b'\n  \r\n{"op":"ping","req":"p"}\n')
    assert (await client.read())["req"] == "p"


async def test_backend_overload_is_reported_and_nothing_is_stored(
    client: Client, backend: FakeBackend
) -> None:
    backend.fail = BackendOverloadedError("store queue full")
    reply = await client.call({"op": "submit", "to": "14155550101", "text": "x"})
    assert reply == {"ok": False, "error": "overloaded", "message": "store queue full"}


async def test_too_many_pending_messages_are_refused_without_calling_the_backend(
    tmp_path: Path, backend: FakeBackend
) -> None:
    backend.gate = asyncio.Event()
    config = settings(tmp_path / "s.sock", max_pending=1)
    async with IntakeServer(backend, config, coder=FakeCoder()) as srv:
        a, b = await connect(srv), await connect(srv)
        await a.send({"op": "submit", "to": "14155550101", "text": "first"})
        await backend.entered.wait()
        refused = await b.call({"op": "submit", "to": "14155550101", "text": "second"})
        backend.gate.set()
        accepted = await a.read()
        await a.close()
        await b.close()
    assert refused["error"] == "overloaded"
    assert accepted["ok"] is True
    assert backend.commits == [1]


async def test_a_backend_failure_is_internal_and_the_connection_survives(
    client: Client, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    backend.fail = RuntimeError("disk on fire")
    reply = await client.call({"op": "submit", "to": "14155550101", "text": "x"})
    assert reply == {
        "ok": False,
        "error": "internal",
        "message": "internal error; see the gateway log",
    }
    assert "disk on fire" in caplog.text
    backend.fail = None
    assert (await client.call({"op": "submit", "to": "14155550101", "text": "x"}))["ok"]


# --- concurrency and ordering -------------------------------------------------------------


async def test_two_clients_concurrently_get_their_own_replies(
    server: IntakeServer, backend: FakeBackend
) -> None:
    backend.gate = asyncio.Event()
    a, b = await connect(server), await connect(server)
    await a.send({"op": "submit", "req": "a", "to": "14155550101", "text": "from a"})
    await b.send_raw(b"garbage\n")
    await b.send({"op": "submit", "req": "b", "to": "447700900123", "text": "from b"})
    bad = await b.read()  # b's bad line is answered while a's submit is still pending
    backend.gate.set()
    reply_a, reply_b = await a.read(), await b.read()
    await a.close()
    await b.close()
    assert bad["error"] == "invalid_request"
    assert reply_a["req"] == "a"
    assert reply_b["req"] == "b"
    assert backend.messages[reply_a["id"]].text == "from a"
    assert backend.messages[reply_b["id"]].text == "from b"


async def test_pipelined_replies_come_in_request_order(
    client: Client, backend: FakeBackend
) -> None:
    backend.gate = asyncio.Event()
    await client.send_raw(
        b'{"op":"submit","req":1,"to":"14155550101","text":"x"}\n{"op":"ping","req":2}\n'
    )
    first = asyncio.create_task(client.read())
    await backend.entered.wait()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not first.done()  # the ping is answered, but after the submit
    backend.gate.set()
    assert (await first)["req"] == 1
    assert (await client.read())["req"] == 2


# --- status, ping, subscribe ----------------------------------------------------------------


async def test_status_by_id_and_by_custom(client: Client) -> None:
    sent = await client.call({"op": "submit", "to": "14155550101", "text": "x", "custom": "ref-9"})
    by_id = await client.call({"op": "status", "id": sent["id"]})
    by_custom = await client.call({"op": "status", "custom": "ref-9", "req": 3})
    assert by_id["status"] == by_custom["status"]
    assert by_custom["req"] == 3
    assert by_id["status"] == {
        "id": "m1",
        "mobile": "14155550101",
        "status": "QUEUED",
        "state": "queued",
        "final": False,
        "units": 1,
        "submit_time": None,
        "sent_time": None,
        "deliv_time": None,
        "custom": "ref-9",
        "cid": "ref-9",
        "err": None,
        "reason": None,
        "possible_duplicate": False,
        "parts": [],
    }


async def test_ping_answers_pong_with_the_version(client: Client) -> None:
    assert await client.call({"op": "ping", "req": None}) == {
        "ok": True,
        "req": None,
        "pong": True,
        "version": __version__,
        "healthy": True,
    }


async def test_subscribe_resumes_from_the_cursor_and_streams_new_events(
    server: IntakeServer, backend: FakeBackend
) -> None:
    for n in (1, 2, 3):
        backend.append(f"m{n}")
    c = await connect(server)
    ack = await c.call({"op": "subscribe", "cursor": 1, "req": "s"})
    assert ack == {"ok": True, "req": "s", "cursor": 1, "last": 3}
    second, third = await c.read(), await c.read()
    assert (second["cursor"], second["payload"]["id"]) == (2, "m2")
    assert (third["cursor"], third["payload"]["id"]) == (3, "m3")
    assert third["event"] == "sms:message:status"
    backend.append("m4")
    live = await c.read()
    assert (live["cursor"], live["payload"]["id"]) == (4, "m4")
    await c.close()

    # A reconnecting client resumes after the last cursor it saw and misses nothing.
    backend.append("m5")
    again = await connect(server)
    await again.call({"op": "subscribe", "cursor": live["cursor"]})
    resumed = await again.read()
    assert (resumed["cursor"], resumed["payload"]["id"]) == (5, "m5")
    await again.close()


async def test_subscribe_without_cursor_gets_only_new_events(
    server: IntakeServer, backend: FakeBackend
) -> None:
    backend.append("old")
    c = await connect(server)
    ack = await c.call({"op": "subscribe"})
    assert (ack["cursor"], ack["last"]) == (1, 1)
    backend.append("new")
    event = await c.read()
    assert (event["cursor"], event["payload"]["id"]) == (2, "new")
    # Requests still work on a subscribed connection; replies and events are told apart
    # by their keys.
    assert (await c.call({"op": "ping"}))["pong"] is True
    await c.close()


async def test_subscribe_filters_by_event_type(server: IntakeServer, backend: FakeBackend) -> None:
    backend.append("m1")
    c = await connect(server)
    await c.call({"op": "subscribe", "cursor": 0, "events": ["sms:message:in"]})
    await c.send({"op": "ping", "req": "after"})
    # The status event is skipped: the next line is the ping's reply.
    assert (await c.read())["req"] == "after"
    await c.close()


# --- socket file ----------------------------------------------------------------------------


async def test_socket_gets_the_configured_mode_and_is_removed_on_stop(
    tmp_path: Path, backend: FakeBackend
) -> None:
    path = tmp_path / "run" / "gw.sock"
    srv = IntakeServer(backend, settings(path, mode=0o600), coder=FakeCoder())
    await srv.start()
    info = path.stat()
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    await srv.stop()
    assert not path.exists()


async def test_a_stale_socket_file_is_replaced(tmp_path: Path, backend: FakeBackend) -> None:
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays behind, nobody listens: a crashed daemon's leftover
    assert path.exists()
    async with IntakeServer(backend, settings(path), coder=FakeCoder()) as srv:
        c = await connect(srv)
        assert (await c.call({"op": "ping"}))["ok"] is True
        await c.close()


async def test_a_live_socket_is_not_taken_over(server: IntakeServer, backend: FakeBackend) -> None:
    second = IntakeServer(backend, settings(Path(server.path)), coder=FakeCoder())
    with pytest.raises(IntakeError, match="in use by a running server"):
        await second.start()
    c = await connect(server)  # the first server still serves
    assert (await c.call({"op": "ping"}))["ok"] is True
    await c.close()


async def test_a_regular_file_at_the_socket_path_is_never_removed(
    tmp_path: Path, backend: FakeBackend
) -> None:
    path = tmp_path / "s.sock"
    path.write_text("precious")
    with pytest.raises(IntakeError, match="not a socket"):
        await IntakeServer(backend, settings(path), coder=FakeCoder()).start()
    assert path.read_text() == "precious"


async def test_stop_closes_subscribed_connections(tmp_path: Path, backend: FakeBackend) -> None:
    srv = IntakeServer(backend, settings(tmp_path / "s.sock"), coder=FakeCoder())
    await srv.start()
    c = await connect(srv)
    await c.call({"op": "subscribe"})
    assert srv.connections == 1
    await srv.stop()
    async with asyncio.timeout(TIMEOUT):
        assert await c.reader.read() == b""
    assert srv.connections == 0
    await c.close()


async def test_stop_lets_a_submit_already_handed_to_the_backend_commit(
    tmp_path: Path, backend: FakeBackend
) -> None:
    backend.gate = asyncio.Event()
    srv = IntakeServer(backend, settings(tmp_path / "s.sock"), coder=FakeCoder())
    await srv.start()
    c = await connect(srv)
    await c.send({"op": "submit", "to": "14155550101", "text": "in flight"})
    await backend.entered.wait()
    stopping = asyncio.create_task(srv.stop())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not stopping.done()
    backend.gate.set()
    await stopping
    assert backend.commits == [1]
    assert not Path(srv.path).exists()  # noqa: ASYNC240
    await c.close()


async def test_a_client_leaving_before_its_reply_still_has_its_message_stored(
    server: IntakeServer, backend: FakeBackend
) -> None:
    backend.gate = asyncio.Event()
    c = await connect(server)
    await c.send({"op": "submit", "to": "14155550101", "text": "x", "custom": "retry-me"})
    await backend.entered.wait()
    await c.close()
    backend.gate.set()
    async with asyncio.timeout(TIMEOUT):
        while server.connections:  # noqa: ASYNC110 - the server exposes a count, no event
            await asyncio.sleep(0)
    assert backend.commits == [1]
    # The client reconnects and resubmits with the same custom: a duplicate, not a second SMS.
    again = await connect(server)
    reply = await again.call(
        {"op": "submit", "to": "14155550101", "text": "x", "custom": "retry-me"}
    )
    await again.close()
    assert reply == {"ok": True, "id": "m1", "parts": 1, "duplicate": True}


async def test_the_observer_counts_requests_by_op_and_result(
    client: Client, observer: RecordingObserver
) -> None:
    await client.call({"op": "ping"})
    await client.call({"op": "submit", "to": "14155550101", "text": "x"})
    await client.call({"op": "submit", "to": "1", "text": "x"})
    await client.send_raw(b"nonsense\n")
    await client.read()
    assert observer.counts[("intake_request", ("ping", True))] == 1
    assert observer.counts[("intake_request", ("submit", True))] == 1
    assert observer.counts[("intake_request", ("invalid", False))] == 1
    assert observer.total("intake_request") == 4


@pytest.mark.parametrize(
    ("text", "coding", "parts"),
    [
        ("x" * 160, DataCoding.DEFAULT, 1),
        ("x" * 161, DataCoding.DEFAULT, 2),
        ("€" * 80, DataCoding.DEFAULT, 1),  # an extension character takes two septets
        ("€" * 81, DataCoding.DEFAULT, 2),
        ("😀" * 35, DataCoding.UCS2, 1),  # a surrogate pair takes two UCS-2 units
        ("😀" * 36, DataCoding.UCS2, 2),
    ],
)
async def test_the_default_coder_counts_parts_with_the_codec_rules(
    tmp_path: Path, backend: FakeBackend, text: str, coding: DataCoding, parts: int
) -> None:
    async with IntakeServer(backend, settings(tmp_path / "s.sock")) as srv:
        c = await connect(srv)
        reply = await c.call({"op": "submit", "to": "14155550101", "text": text})
        await c.close()
    assert reply["parts"] == parts
    assert backend.messages[reply["id"]].data_coding == coding


# --- SMPP relative time -------------------------------------------------------------------


@given(st.integers(1, 99 * 86400 + 86399))
def test_relative_time_encodes_the_seconds_exactly(seconds: int) -> None:
    value = relative_time(seconds)
    assert len(value) == 16
    assert value.endswith("000R")
    years, months, days, hours, minutes, secs = (int(value[i : i + 2]) for i in range(0, 12, 2))
    assert (years, months) == (0, 0)
    assert hours < 24
    assert minutes < 60
    assert secs < 60
    assert days * 86400 + hours * 3600 + minutes * 60 + secs == seconds


def test_relative_time_refuses_out_of_range_values() -> None:
    for bad in (0, -1, 100 * 86400):
        with pytest.raises(ValueError, match="seconds"):
            relative_time(bad)


def test_socket_path_in_tmp_is_short_enough(tmp_path: Path) -> None:
    # Guards the other tests: sun_path holds 107 bytes.
    assert len(os.fsencode(tmp_path / "run" / "gw.sock")) < 107


async def test_unmatched_lists_the_receipts_no_message_claimed(
    backend: FakeBackend, client: Client
) -> None:
    backend.receipts = [
        ReceiptPayload(smsc_id=f"x{i}", stat="DELIVRD", err="000", server="smpp1") for i in range(3)
    ]
    reply = await client.call({"op": "unmatched", "limit": 2, "req": 5})
    assert reply == {
        "ok": True,
        "req": 5,
        "count": 3,
        "receipts": [
            {
                "smsc_id": f"x{i}",
                "stat": "DELIVRD",
                "err": "000",
                "done_date": None,
                "received_time": None,
                "server": "smpp1",
                "bind": None,
            }
            for i in range(2)
        ],
    }
    bad = await client.call({"op": "unmatched", "limit": 0})
    assert bad["error"] == "invalid_request"
    assert "limit" in bad["message"]
