"""The daemon end to end over loopback: socket -> store -> binds -> simulator -> DLR -> event."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from smppgw.codec.constants import CommandStatus, DataCoding, EsmClass
from smppgw.codec.pdu import DeliverSm
from smppgw.codec.text import decode_text
from smppgw.codec.udh import concat_udh, parse_udh
from smppgw.esme.numbers import validate_sender
from smppgw.esme.observe import RecordingObserver
from smppgw.gateway import cli
from smppgw.gateway.config import Config, parse_config
from smppgw.gateway.daemon import Gateway, GatewayOptions, build_parts
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store import ClaimedMessage, StoreError
from smppgw.provider import dlt_ids
from smppgw.testing.simulator import FaultSettings, Simulator

TIMEOUT = 20.0


def gateway_config(
    tmp_path: Path, environ: dict[str, str] | None = None, **sections: dict[str, Any]
) -> Config:
    """Simulator mode on ephemeral ports, fast receipts, store and socket under tmp_path."""
    data: dict[str, Any] = {
        "gateway": {"enquire_link_interval": 30, "response_timeout": 5, "retry_delay": 0.2},
        "simulator": {
            "enabled": True,
            "servers": 2,
            "max_binds_per_server": 2,
            "rate_per_server": 500,
            "dlr_delay": [0.0, 0.05],
        },
        "store": {"path": str(tmp_path / "gw.db"), "synchronous": "normal"},
        "intake": {"path": str(tmp_path / "gw.sock")},
        "defaults": {"sender": "ACME"},
        "metrics": {"enabled": False},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_config(data, environ=environ or {})


class Client:
    """A newline-delimited JSON client of the intake socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path: str) -> Client:
        reader, writer = await asyncio.open_unix_connection(path)
        return cls(reader, writer)

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.writer.write(json.dumps(request).encode() + b"\n")
        await self.writer.drain()
        return await self.read()

    async def read(self) -> dict[str, Any]:
        line = await self.reader.readline()
        assert line, "the daemon closed the connection"
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = Gateway(
        gateway_config(tmp_path),
        GatewayOptions(wait_bound=5, housekeeping_interval=0.2),
        observer=RecordingObserver(),
    )
    async with asyncio.timeout(TIMEOUT):
        await gw.start()
    try:
        yield gw
    finally:
        async with asyncio.timeout(TIMEOUT):
            await gw.stop(5)


async def events_until_final(client: Client, ids: set[str]) -> dict[str, dict[str, Any]]:
    """Read subscribed events until every id in ``ids`` has a final status event."""
    finals: dict[str, dict[str, Any]] = {}
    while not ids <= finals.keys():
        event = await client.read()
        payload = event["payload"]
        if event["event"] == "sms:message:status" and payload["final"]:
            assert payload["id"] not in finals, "two final events for one message"
            finals[payload["id"]] = payload
    return finals


async def test_a_message_goes_from_the_socket_to_a_delivered_event(gateway: Gateway) -> None:
    async with asyncio.timeout(TIMEOUT):
        client = await Client.connect(gateway.config.intake.path)
        assert (await client.call({"op": "subscribe", "cursor": 0}))["ok"] is True
        sender = await Client.connect(gateway.config.intake.path)
        reply = await sender.call(
            {"op": "submit", "to": "919812345678", "text": "hello", "custom": "r-1", "req": 7}
        )
        assert reply["ok"] is True, reply
        assert reply["req"] == 7
        assert reply["parts"] == 1
        finals = await events_until_final(client, {reply["id"]})
        payload = finals[reply["id"]]
        assert payload["mobile"] == "919812345678"
        assert payload["custom"] == "r-1"
        assert payload["state"] in {"delivered", "failed", "expired", "rejected"}
        assert payload["parts"][0]["smsc_id"]
        status = await sender.call({"op": "status", "custom": "r-1"})
        assert status["ok"] is True
        assert status["status"]["id"] == reply["id"]
        assert status["status"]["final"] is True
        await client.close()
        await sender.close()


async def test_a_thousand_messages_each_get_exactly_one_final_event(gateway: Gateway) -> None:
    count = 1000
    async with asyncio.timeout(TIMEOUT * 3):
        events = await Client.connect(gateway.config.intake.path)
        assert (await events.call({"op": "subscribe", "cursor": 0}))["ok"] is True
        client = await Client.connect(gateway.config.intake.path)
        messages = [
            {"to": f"9198{i:08d}", "text": f"message {i}", "custom": f"c-{i}"} for i in range(count)
        ]
        ids: set[str] = set()
        for start in range(0, count, 250):
            reply = await client.call({"op": "submit", "messages": messages[start : start + 250]})
            assert reply["ok"] is True, reply
            ids.update(r["id"] for r in reply["results"])
        assert len(ids) == count
        finals = await events_until_final(events, ids)
        lost = ids - set(finals)
        assert not lost
        assert gateway.simulator is not None
        assert isinstance(gateway.simulator, Simulator)
        assert gateway.simulator.stats.throttled == 0
        await events.close()
        await client.close()


async def test_a_long_message_is_sent_as_parts_and_final_after_every_part(gateway: Gateway) -> None:
    text = "x" * 400  # 3 parts of 153 septets
    async with asyncio.timeout(TIMEOUT):
        events = await Client.connect(gateway.config.intake.path)
        await events.call({"op": "subscribe", "cursor": 0})
        client = await Client.connect(gateway.config.intake.path)
        reply = await client.call({"op": "submit", "to": "919812345678", "text": text})
        assert reply["parts"] == 3
        payload = (await events_until_final(events, {reply["id"]}))[reply["id"]]
        assert [p["part"] for p in payload["parts"]] == [0, 1, 2]
        assert all(p["status"] for p in payload["parts"])
        assert payload["units"] == 3
        await events.close()
        await client.close()


async def test_a_bad_line_gets_an_error_and_the_connection_keeps_working(gateway: Gateway) -> None:
    async with asyncio.timeout(TIMEOUT):
        client = await Client.connect(gateway.config.intake.path)
        client.writer.write(b"{not json\n")
        bad = await client.read()
        assert bad["ok"] is False
        assert bad["error"] == "invalid_request"
        reply = await client.call({"op": "submit", "to": "+9198", "text": "x"})
        assert reply["ok"] is False
        assert "to" in reply["message"]
        assert (await client.call({"op": "ping"}))["ok"] is True
        await client.close()


async def test_an_mo_message_split_in_parts_becomes_one_event(gateway: Gateway) -> None:
    simulator = gateway.simulator
    assert isinstance(simulator, Simulator)
    text = "Ответ " + "ж" * 150  # UCS-2: 156 characters, 3 parts of 67
    async with asyncio.timeout(TIMEOUT):
        events = await Client.connect(gateway.config.intake.path)
        reply = await events.call({"op": "subscribe", "cursor": 0, "events": ["sms:message:in"]})
        assert reply["ok"] is True, reply
        simulator.send_mo("smppgw", "919812345678", "12345", text)
        while True:
            event = await events.read()
            if event["event"] == "sms:message:in":
                break
        payload = event["payload"]
        assert payload["text"] == text
        assert payload["from"] == "919812345678"
        assert payload["to"] == "12345"
        assert payload["parts"] == 3
        assert payload["server"] in {"smpp1", "smpp2"}  # where its last part arrived
        await events.close()


def test_parts_carry_the_udh_dlt_tlvs_and_a_reference_stable_across_restarts() -> None:
    request = SubmitRequest(
        to="919812345678",
        sender=validate_sender("ACME"),
        text="é" * 100,  # UCS-2 (é is in GSM 03.38, but the request chose UCS-2): 2 parts
        payload=None,
        data_coding=DataCoding.UCS2,
        parts=2,
        pe_id="1201159100000000001",
        template_id="1207161234567890123",
    )
    first = build_parts("abc", request)
    again = build_parts("abc", request)
    assert first == again
    assert len(first) == 2
    texts = []
    for seq, pdu in enumerate(first, 1):
        assert pdu.esm_class & EsmClass.UDHI
        udh, body = parse_udh(pdu.short_message)
        assert udh.concat is not None
        assert (udh.concat.total, udh.concat.seqnum) == (2, seq)
        assert udh.concat.reference == first[0].short_message[3]
        assert dlt_ids(pdu.tlvs).pe_id == "1201159100000000001"
        assert dlt_ids(pdu.tlvs).template_id == "1207161234567890123"
        assert pdu.registered_delivery == 1
        texts.append(decode_text(body, DataCoding.UCS2))
    assert "".join(texts) == "é" * 100


async def test_a_receipt_the_store_cannot_record_is_answered_with_a_temporary_error(
    gateway: Gateway,
) -> None:
    assert gateway.store is not None
    await gateway.store.close()  # every write now fails
    receipt = DeliverSm(
        esm_class=EsmClass.DELIVERY_RECEIPT,
        short_message=b"id:123 sub:001 dlvrd:001 submit date:2501010000 done date:2501010001 "
        b"stat:DELIVRD err:000 text:",
    )
    status = await gateway._on_inbound(receipt)
    assert status == CommandStatus.ESME_RX_T_APPN


async def test_events_are_posted_to_the_webhook_signed_and_retried(tmp_path: Path) -> None:
    """The receiver fails the first POST; the event is retried and every event arrives signed."""
    bodies: list[tuple[bytes, str]] = []
    statuses = [503]
    got_final = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        signature = head.split("x-smppgw-signature:")[1].split("\r\n")[0].strip()
        body = await reader.readexactly(length)
        status = statuses.pop(0) if statuses else 200
        if status == 200:
            bodies.append((body, signature))
            if b'"final":true' in body:
                got_final.set()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = gateway_config(
        tmp_path,
        {"HOOK_SECRET": "hook-key"},
        webhook={"url": f"http://127.0.0.1:{port}/hook", "secret_env": "HOOK_SECRET"},
    )
    gw = Gateway(config, GatewayOptions(wait_bound=5), observer=RecordingObserver())
    try:
        async with asyncio.timeout(TIMEOUT):
            await gw.start()
            assert gw.webhook is not None
            client = await Client.connect(config.intake.path)
            reply = await client.call({"op": "submit", "to": "919812345678", "text": "hook"})
            assert reply["ok"] is True
            await client.close()
            while not got_final.is_set() or len(bodies) < 2:
                # The retry is due 10 s after the failure: step the sender instead of waiting.
                await asyncio.sleep(0.05)
                store = gw.store
                assert store is not None
                for pending in await store.pending(10):
                    if pending.attempts:
                        await store.result(
                            pending.cursor,
                            delivered=False,
                            attempts=pending.attempts,
                            next_attempt_at=0.0,
                            error=None,
                        )
                gw.webhook.wake()
    finally:
        async with asyncio.timeout(TIMEOUT):
            await gw.stop(5)
        server.close()
        await server.wait_closed()
    assert not statuses  # the failure happened
    events = [json.loads(body) for body, _ in bodies]
    assert {e["payload"]["id"] for e in events} == {reply["id"]}
    assert sorted(e["payload"]["final"] for e in events) == [False, True]
    for body, signature in bodies:
        assert signature == "sha256=" + hmac.new(b"hook-key", body, hashlib.sha256).hexdigest()


async def test_metrics_are_served_with_the_daemon_s_counters(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, metrics={"enabled": True, "address": "127.0.0.1:0"})
    gw = Gateway(config, GatewayOptions(wait_bound=5, housekeeping_interval=0.05))
    try:
        async with asyncio.timeout(TIMEOUT):
            await gw.start()
            events = await Client.connect(config.intake.path)
            await events.call({"op": "subscribe", "cursor": 0})
            client = await Client.connect(config.intake.path)
            reply = await client.call({"op": "submit", "to": "919812345678", "text": "metrics"})
            await events_until_final(events, {reply["id"]})
            await asyncio.sleep(0.2)  # one housekeeping round: queue depth gauges
            assert gw.metrics is not None
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.metrics.port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            text = (await reader.read()).decode()
            writer.close()
            await events.close()
            await client.close()
    finally:
        async with asyncio.timeout(TIMEOUT):
            await gw.stop(5)
    assert "200 OK" in text.splitlines()[0]
    for name in (
        "smppgw_submits_total",
        "smppgw_dlrs_total",
        "smppgw_binds",
        "smppgw_queue_depth",
        "smppgw_store_commit_seconds",
        "smppgw_messages_final_total",
    ):
        assert name in text, name
    assert "localsim" not in text  # the simulator-mode password never shows


async def test_a_full_smsc_queue_never_fails_a_message(tmp_path: Path) -> None:
    """ESME_RMSGQFUL on every retry sends the message back to the queue, not to FAILED."""
    config = gateway_config(tmp_path, gateway={"max_attempts": 2, "retry_delay": 0.01})
    gw = Gateway(config, GatewayOptions(wait_bound=5, queue_full_delay=0.3))
    simulator = None
    try:
        async with asyncio.timeout(TIMEOUT):
            await gw.start()
            simulator = gw.simulator
            assert isinstance(simulator, Simulator)
            full = dataclasses.replace(simulator.settings, faults=FaultSettings(queue_full_ratio=1))
            normal, simulator.settings = simulator.settings, full
            events = await Client.connect(config.intake.path)
            await events.call({"op": "subscribe", "cursor": 0})
            client = await Client.connect(config.intake.path)
            reply = await client.call({"op": "submit", "to": "919812345678", "text": "full"})
            while simulator.stats.queue_full < 2:  # noqa: ASYNC110 - a counter, no event
                await asyncio.sleep(0.01)
            status = await client.call({"op": "status", "id": reply["id"]})
            assert status["status"]["state"] == "queued"
            simulator.settings = normal
            payload = (await events_until_final(events, {reply["id"]}))[reply["id"]]
            assert payload["status"] != "FAILED"  # a receipt made it final, not the submit
            assert payload["parts"][0]["smsc_id"]
            await events.close()
            await client.close()
    finally:
        async with asyncio.timeout(TIMEOUT):
            await gw.stop(5)


async def test_the_command_line_sends_a_csv_file_and_reads_status_and_events(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``smppgw send --file``, ``status`` and ``events`` against the running daemon."""
    rows = tmp_path / "messages.csv"
    rows.write_text(
        "to,text,custom\n"
        + "".join(f"9198765432{i:02d},csv message {i},csv-{i}\n" for i in range(25))
        + "+123,bad number,csv-bad\n"
    )
    socket_path = gateway.config.intake.path
    async with asyncio.timeout(TIMEOUT):
        code = await asyncio.to_thread(
            cli.main, ["send", "--socket", socket_path, "--file", str(rows), "--quiet"]
        )
        out, err = capsys.readouterr()
        assert code == 1  # one row was rejected
        assert "26 messages" in out
        assert "25 accepted" in out
        assert "1 rejected" in out
        assert "to" in err  # the rejection names the field
        client = await Client.connect(socket_path)
        status = await client.call({"op": "status", "custom": "csv-3"})
        await client.close()
        message_id = status["status"]["id"]
        events = await Client.connect(socket_path)
        await events.call({"op": "subscribe", "cursor": 0})
        await events_until_final(events, {message_id})
        await events.close()
        code = await asyncio.to_thread(cli.main, ["status", "--socket", socket_path, message_id])
        out, _ = capsys.readouterr()
        assert code == 0
        assert message_id in out
        code = await asyncio.to_thread(
            cli.main, ["events", "--socket", socket_path, "--cursor", "0"]
        )
        out, _ = capsys.readouterr()
        assert code == 0
        assert out.count(message_id) >= 2  # SUBMITTED, then the final status


async def test_a_message_whose_receipt_never_comes_ends_unknown(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, simulator={"dlr_delay": [60, 60]})  # never, in this test
    gw = Gateway(
        config,
        GatewayOptions(wait_bound=5, housekeeping_interval=0.05, correlation_ttl=0.3),
        observer=RecordingObserver(),
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            await gw.start()
            events = await Client.connect(config.intake.path)
            await events.call({"op": "subscribe", "cursor": 0})
            client = await Client.connect(config.intake.path)
            reply = await client.call({"op": "submit", "to": "919812345678", "text": "lost"})
            payload = (await events_until_final(events, {reply["id"]}))[reply["id"]]
            await events.close()
            await client.close()
    finally:
        async with asyncio.timeout(TIMEOUT):
            await gw.stop(5)
    assert payload["state"] == "unknown"
    assert payload["reason"] == "no delivery receipt within 0.3 s"
    assert payload["parts"][0]["smsc_id"]


async def test_the_dispatcher_survives_a_failing_store(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = gateway.store
    assert store is not None
    claim = store.claim
    failures = [StoreError("disk I/O error")]

    async def flaky_claim(limit: int) -> list[ClaimedMessage]:
        if failures:
            raise failures.pop()
        return await claim(limit)

    monkeypatch.setattr(store, "claim", flaky_claim)
    async with asyncio.timeout(TIMEOUT):
        events = await Client.connect(gateway.config.intake.path)
        await events.call({"op": "subscribe", "cursor": 0})
        client = await Client.connect(gateway.config.intake.path)
        reply = await client.call({"op": "submit", "to": "919812345678", "text": "again"})
        await events_until_final(events, {reply["id"]})
        await events.close()
        await client.close()
    assert not failures


async def test_a_long_mo_missing_a_part_is_written_out_incomplete(tmp_path: Path) -> None:
    config = gateway_config(tmp_path)
    gw = Gateway(
        config, GatewayOptions(wait_bound=5, housekeeping_interval=0.05, mo_parts_wait=0.2)
    )
    parts = [
        DeliverSm(
            source_addr="919812345678",
            destination_addr="12345",
            esm_class=EsmClass.UDHI,
            short_message=concat_udh(42, 3, seqnum) + text.encode(),
        )
        for seqnum, text in ((1, "Hello "), (3, "world"))
    ]
    try:
        async with asyncio.timeout(TIMEOUT):
            await gw.start()
            events = await Client.connect(config.intake.path)
            await events.call({"op": "subscribe", "cursor": 0, "events": ["sms:message:in"]})
            for pdu in parts:
                assert await gw._on_inbound(pdu) == CommandStatus.ESME_ROK
            event = await events.read()
            await events.close()
    finally:
        async with asyncio.timeout(TIMEOUT):
            await gw.stop(5)
    payload = event["payload"]
    assert (payload["complete"], payload["missing"], payload["parts"]) == (False, [2], 2)
    assert payload["text"] == "Hello world"


async def test_a_receipt_for_no_known_message_is_kept_and_listed(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    stray = DeliverSm(
        esm_class=EsmClass.DELIVERY_RECEIPT,
        short_message=b"id:DEADBEEF sub:001 dlvrd:001 submit date:2501010000 "
        b"done date:2501010001 stat:DELIVRD err:000 text:",
    )
    async with asyncio.timeout(TIMEOUT):
        assert await gateway._on_inbound(stray) == CommandStatus.ESME_ROK
        client = await Client.connect(gateway.config.intake.path)
        reply = await client.call({"op": "unmatched"})
        await client.close()
        code = await asyncio.to_thread(
            cli.main, ["status", "--socket", gateway.config.intake.path, "--unmatched"]
        )
    assert reply["count"] == 1
    assert reply["receipts"][0]["smsc_id"] == "DEADBEEF"
    assert reply["receipts"][0]["stat"] == "DELIVRD"
    out, _ = capsys.readouterr()
    assert code == 0
    assert "1 delivery receipts matched no message" in out
    assert "smsc_id=DEADBEEF stat=DELIVRD" in out
