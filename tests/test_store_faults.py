"""The store under faults: a full disk, a damaged file, a writer that hits the unexpected.

A full disk is simulated without root through SQLite's own error path: ``PRAGMA
max_page_count`` makes inserts fail with SQLITE_FULL ("database or disk is full"), and where
the failure must come at COMMIT, the commit raises the same ``sqlite3.OperationalError``
(SQLITE_FULL) after rolling back, as SQLite does when the WAL cannot grow.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from smppgw.codec.constants import DataCoding
from smppgw.esme.numbers import validate_sender
from smppgw.esme.observe import NULL_OBSERVER, RecordingObserver
from smppgw.gateway.config import Config, parse_config
from smppgw.gateway.correlate import PartEntry
from smppgw.gateway.daemon import Gateway, GatewayOptions
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store import LogLimiter, SqliteStore, StorageFullError, StoreSettings
from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

TIMEOUT = 30.0
PASSWORD = "fault-pw"


def request(n: int) -> SubmitRequest:
    return SubmitRequest(
        to=f"9198{n:08d}",
        sender=validate_sender("ACME"),
        text=f"message {n}",
        payload=None,
        data_coding=DataCoding.DEFAULT,
        parts=1,
    )


def full_error() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = sqlite3.SQLITE_FULL
    error.sqlite_errorname = "SQLITE_FULL"
    return error


class FullAtCommit:
    """While ``full``, every COMMIT fails as SQLite fails it on a full disk (rolled back)."""

    def __init__(self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        self.failures = 0
        self._store = store
        self._commit = store._commit_now
        monkeypatch.setattr(store, "_commit_now", self._commit_now)

    def _commit_now(self) -> None:
        if not self.full:
            self._commit()
            return
        conn = self._store._conn
        assert conn is not None
        conn.execute("ROLLBACK")
        self._store._recount(conn)
        self.failures += 1
        raise full_error()


async def limit_pages(store: SqliteStore, pages: int | None) -> None:
    """Cap the database at its current size plus ``pages`` (None: lift the cap)."""

    def op(conn: sqlite3.Connection) -> None:
        size = conn.execute("PRAGMA page_count").fetchone()[0]
        cap = 1 << 30 if pages is None else size + pages
        conn.execute(f"PRAGMA max_page_count = {cap}")

    await store._call(op)


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, path: str) -> Client:
        return cls(*await asyncio.open_unix_connection(path, limit=1 << 20))

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.writer.write(json.dumps(request).encode() + b"\n")
        await self.writer.drain()
        reply: dict[str, Any] = json.loads(await self.reader.readline())
        return reply

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def gateway_config(tmp_path: Path, servers: Sequence[tuple[str, int]] = ()) -> Config:
    """Against ``servers`` (name, port) on loopback, or the built-in simulator without any."""
    data: dict[str, Any] = {
        "gateway": {
            "system_id": "smppgw",
            "password_env": "PW",
            "response_timeout": 5,
            "retry_delay": 0.2,
            "reconnect_min": 0.2,
            "reconnect_max": 1,
        },
        "store": {"path": str(tmp_path / "gw.db"), "synchronous": "normal"},
        "intake": {"path": str(tmp_path / "gw.sock")},
        "defaults": {"sender": "ACME"},
        "metrics": {"enabled": False},
    }
    if servers:
        data["servers"] = [
            {"name": name, "host": "127.0.0.1", "port": port, "binds": 2, "rate": 250}
            for name, port in servers
        ]
    else:
        data["simulator"] = {"enabled": True, "servers": 1, "max_binds_per_server": 1}
    return parse_config(data, environ={"PW": PASSWORD})


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    settings = SimulatorSettings(
        servers=1,
        tls=False,
        accounts=(Account("smppgw", PASSWORD, max_binds_per_server=2, rate_per_server=250),),
        dlr_delay=(0.0, 0.05),
        record_destinations=True,
        seed=3,
    )
    async with Simulator(settings) as sim:
        yield sim


async def settled(gateway: Gateway) -> dict[str, int]:
    """Wait until nothing is queued and no send task runs; the message counts by state."""
    store = gateway.store
    assert store is not None
    while True:
        counts = await store.counts()
        if counts["queued"] == 0 and not gateway._in_flight:
            return counts
        await asyncio.sleep(0.05)


async def test_a_part_accepted_while_the_disk_is_full_is_kept_and_never_sent_again(
    tmp_path: Path, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full at 250 msg/s: when the store refused to record a part the SMSC had accepted,
    the send task died and the message stayed `submitting` until a restart, which sent it
    again (10 to 22 messages twice in a fault run). The SMSC's answer is now kept in memory
    and its write retried with back-off until the disk has room."""
    count = 300
    config = gateway_config(tmp_path, [(s.name, s.plain_port) for s in simulator.servers])
    options = GatewayOptions(wait_bound=5, housekeeping_interval=0.2, drain_timeout=2)
    gateway = Gateway(config, options, observer=RecordingObserver())
    async with asyncio.timeout(TIMEOUT):
        await gateway.start()
        store = gateway.store
        assert isinstance(store, SqliteStore)
        disk = FullAtCommit(store, monkeypatch)
        register = store.register_part

        async def register_on_a_full_disk(
            entry: PartEntry, keys: Sequence[str], **options: Any
        ) -> Any:
            if simulator.stats.accepted >= 50 and disk.failures == 0:
                disk.full = True  # the disk fills between the SMSC's answer and its record
            return await register(entry, keys, **options)

        monkeypatch.setattr(store, "register_part", register_on_a_full_disk)
        client = await Client.connect(config.intake.path)
        messages = [{"to": f"9198{n:08d}", "text": f"m {n}"} for n in range(count)]
        reply = await client.call({"op": "submit", "messages": messages})
        assert reply["ok"] is True, reply
        await client.close()
        while disk.failures < 10:  # noqa: ASYNC110 - a counter, no event
            await asyncio.sleep(0.01)
        accepted_while_full = simulator.stats.accepted
        disk.full = False
        await settled(gateway)
        await gateway.stop()

        again = Gateway(config, options, observer=RecordingObserver())  # the restart
        await again.start()
        counts = await settled(again)
        await again.stop()
    sent = simulator.stats.accepted_by_destination
    twice = sum(n - 1 for n in sent.values())
    print(
        f"\nfull disk after {accepted_while_full} accepted: {disk.failures} commits failed; "
        f"messages sent twice: {twice}"
    )
    assert disk.failures >= 10
    assert twice == 0
    assert len(sent) == count
    assert counts["submitting"] == 0
    assert counts["queued"] == 0


async def test_a_full_store_answers_storage_full_keeps_its_messages_and_recovers_in_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = Gateway(
        gateway_config(tmp_path), GatewayOptions(wait_bound=5), observer=RecordingObserver()
    )
    async with asyncio.timeout(TIMEOUT):
        await gateway.start()
        try:
            assert isinstance(gateway.store, SqliteStore)
            client = await Client.connect(gateway.config.intake.path)
            await limit_pages(gateway.store, 30)
            accepted: list[str] = []
            replies: list[dict[str, Any]] = []
            with caplog.at_level(logging.ERROR):
                for n in range(400):
                    batch = [{"to": f"9198{n:04d}{i:04d}", "text": "x" * 150} for i in range(20)]
                    reply = await client.call({"op": "submit", "messages": batch})
                    replies.append(reply)
                    if reply["ok"]:
                        accepted.extend(r["id"] for r in reply["results"])
            refused = [r for r in replies if not r["ok"]]
            assert accepted, "some messages fit before the disk filled"
            assert len(refused) >= 300
            assert {r["error"] for r in refused} == {"storage_full"}
            assert "disk is full" in refused[0]["message"]
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) <= 4, [r.getMessage() for r in errors]  # not one per request
            for message_id in accepted[:: max(1, len(accepted) // 10)]:
                status = await client.call({"op": "status", "id": message_id})
                assert status["ok"] is True, status  # what it has, it keeps and serves

            await limit_pages(gateway.store, None)  # space returns: no restart needed
            reply = await client.call({"op": "submit", "to": "919800000001", "text": "back"})
            assert reply["ok"] is True, reply
            assert (await client.call({"op": "ping"}))["healthy"] is True
            await client.close()
        finally:
            await gateway.stop(2)


async def test_ping_says_the_store_is_unhealthy_while_the_disk_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = Gateway(gateway_config(tmp_path), GatewayOptions(wait_bound=5))
    async with asyncio.timeout(TIMEOUT):
        await gateway.start()
        try:
            assert isinstance(gateway.store, SqliteStore)
            disk = FullAtCommit(gateway.store, monkeypatch)
            client = await Client.connect(gateway.config.intake.path)
            assert (await client.call({"op": "ping"}))["healthy"] is True
            disk.full = True
            reply = await client.call({"op": "submit", "to": "919800000001", "text": "full"})
            assert (reply["ok"], reply["error"]) == (False, "storage_full")
            ping = await client.call({"op": "ping"})
            assert (ping["ok"], ping["pong"], ping["healthy"]) == (True, True, False)
            assert ping["reason"].startswith("store: store commit failed: the disk is full")
            disk.full = False
            reply = await client.call({"op": "submit", "to": "919800000001", "text": "room"})
            assert reply["ok"] is True
            assert (await client.call({"op": "ping"}))["healthy"] is True
            await client.close()
        finally:
            await gateway.stop(2)


async def test_a_daemon_restarted_on_a_full_disk_starts_and_resumes_once_there_is_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up had to write (the claimed messages go back to the queue), so a daemon
    restarted on a full disk failed to start at all."""
    store = await SqliteStore.open(StoreSettings(str(tmp_path / "gw.db")))
    await store.add_messages([request(n) for n in range(3)])
    await store.claim(3)  # a crash's leftovers
    await store.close()
    refusals = 3
    requeue = SqliteStore.requeue_claimed

    async def requeue_on_a_full_disk(self: SqliteStore) -> int:
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise StorageFullError("resuming: the disk is full (database or disk is full)")
        return await requeue(self)

    monkeypatch.setattr(SqliteStore, "requeue_claimed", requeue_on_a_full_disk)
    gateway = Gateway(gateway_config(tmp_path), GatewayOptions(wait_bound=5))
    async with asyncio.timeout(TIMEOUT):
        await gateway.start()
        try:
            client = await Client.connect(gateway.config.intake.path)
            assert (await client.call({"op": "ping"}))["pong"] is True
            await client.close()
            counts = await settled(gateway)
            while counts["submitting"]:
                await asyncio.sleep(0.05)
                counts = await settled(gateway)
        finally:
            await gateway.stop(2)
    assert refusals == 0
    assert counts["queued"] == counts["submitting"] == 0


def test_repeated_failures_are_logged_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full disk for 2.5 minutes at 125 requests/s used to log 19,000 ERROR lines."""
    now = [0.0]
    limiter = LogLimiter(logging.getLogger("test.faults"), interval=30.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.faults"):
        for i in range(19_000):
            now[0] = i * (150.0 / 19_000)
            limiter.error("store commit failed: %s", "database or disk is full")
        limiter.recovered("store: writes succeed again")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 6  # at 0, 30, 60, 90 and 120 s, and one on recovery
    assert lines[0] == "store commit failed: database or disk is full"
    assert "(and 3799 more like it in the last 30 s)" in lines[1]
    assert lines[-1] == "store: writes succeed again (after 3799 more failures)"


def damage_messages_table(path: Path) -> None:
    """Overwrite the root page of the messages table with garbage (the rest stays sound)."""
    with sqlite3.connect(path) as conn:
        root = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'messages'"
        ).fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with path.open("r+b") as file:
        file.seek((root - 1) * size)
        file.write(b"\xa5" * size)


async def test_a_damaged_store_is_reported_unhealthy_by_ping(tmp_path: Path) -> None:
    """A corrupt store answered ping as if all was well, and `internal` to everything else."""
    store = await SqliteStore.open(StoreSettings(str(tmp_path / "gw.db")))
    await store.add_messages([request(n) for n in range(300)])
    await store.close()
    damage_messages_table(tmp_path / "gw.db")
    gateway = Gateway(gateway_config(tmp_path), GatewayOptions(wait_bound=5))
    async with asyncio.timeout(TIMEOUT):
        await gateway.start()
        try:
            client = await Client.connect(gateway.config.intake.path)
            ping = await client.call({"op": "ping"})
            while ping["healthy"]:  # the resume of claimed messages finds the damage
                await asyncio.sleep(0.05)
                ping = await client.call({"op": "ping"})
            assert ping["pong"] is True
            assert "damaged" in ping["reason"]
            await client.close()
        finally:
            await gateway.stop(2)


class FailingObserver(RecordingObserver):
    """An observer whose commit hook fails once (a bug at the edge, not in the store)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def store_commit(self, seconds: float, records: int) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("observer bug")


async def test_the_writer_outlives_an_unexpected_exception(tmp_path: Path) -> None:
    """An exception the writer did not expect ended its task: every later operation waited
    forever on a future nobody would resolve."""
    observer = FailingObserver()
    store = await SqliteStore.open(StoreSettings(str(tmp_path / "s.db")), observer=observer)
    try:
        async with asyncio.timeout(TIMEOUT):
            [first] = await store.add_messages([request(1)])
            [second] = await store.add_messages([request(2)])
            assert await store.status(message_id=first.id) is not None
            assert await store.status(message_id=second.id) is not None
        assert observer.failures == 0
    finally:
        await store.close()


async def test_a_writer_that_stops_for_good_stops_the_daemon(tmp_path: Path) -> None:
    gateway = Gateway(gateway_config(tmp_path), GatewayOptions(wait_bound=5))
    async with asyncio.timeout(TIMEOUT):
        await gateway.start()
        try:
            assert isinstance(gateway.store, SqliteStore)
            writer = gateway.store._writer
            assert writer is not None
            writer.cancel()
            await gateway.failed.wait()
            assert gateway.failure is not None
            assert "store" in gateway.failure
            assert gateway.health() is not None
        finally:
            await gateway.stop(2)


async def test_the_writer_s_queue_is_bounded(tmp_path: Path) -> None:
    store = await SqliteStore.open(
        StoreSettings(str(tmp_path / "s.db"), max_batch=5, max_queue=10),
        observer=NULL_OBSERVER,
    )
    longest = 0

    def watch() -> None:
        nonlocal longest
        longest = max(longest, len(store._queue))

    try:
        async with asyncio.timeout(TIMEOUT):
            tasks = [asyncio.create_task(store.add_messages([request(n)])) for n in range(100)]
            while not all(t.done() for t in tasks):
                watch()
                await asyncio.sleep(0)
            results = [t.result() for t in tasks]
    finally:
        await store.close()
    assert longest <= 10
    assert len({r[0].id for r in results}) == 100
