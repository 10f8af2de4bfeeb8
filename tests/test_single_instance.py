"""One daemon per store: the second one stops before it changes anything.

Two daemons on one store each take the other's claimed messages for a crash's leftovers: the
second put them back in the queue, flagged ``possible_duplicate``, and could send them again
before it noticed that the socket or the metrics port was taken. Now the store's lock, the
socket and the metrics port are checked before any state changes and before any bind opens;
a database that is not a store of ours is refused before anything is written to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from smppgw.codec.constants import DataCoding
from smppgw.esme.numbers import validate_sender
from smppgw.gateway.config import Config, parse_config
from smppgw.gateway.daemon import Gateway, GatewayOptions, InstanceConflictError
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store import NotAStoreError, SqliteStore, StoreLockedError, StoreSettings

TIMEOUT = 20.0

# The schema of the stores written before the application id was set (schema 2).
SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    custom TEXT UNIQUE,
    mobile TEXT NOT NULL,
    request BLOB NOT NULL,
    parts INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL,
    err TEXT,
    reason TEXT,
    claims INTEGER NOT NULL DEFAULT 0,
    possible_duplicate INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    due_at REAL NOT NULL,
    sent_at REAL,
    deliv_at REAL,
    final_at REAL
);
CREATE INDEX IF NOT EXISTS messages_queue ON messages (state, priority DESC, seq);
CREATE INDEX IF NOT EXISTS messages_final ON messages (final_at) WHERE final_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS parts (
    message_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    smsc_id TEXT,
    smsc_key TEXT,
    registered_at REAL,
    expires_at REAL,
    dlr BLOB,
    dlr_final INTEGER NOT NULL DEFAULT 0,
    dlr_stat TEXT,
    dlr_err TEXT,
    PRIMARY KEY (message_id, part)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS parts_key ON parts (smsc_key);
CREATE TABLE IF NOT EXISTS unmatched (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    dlr BLOB NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS unmatched_key ON unmatched (key);
CREATE TABLE IF NOT EXISTS events (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    hook_state INTEGER NOT NULL,
    hook_attempts INTEGER NOT NULL DEFAULT 0,
    hook_due REAL,
    hook_error TEXT
);
CREATE INDEX IF NOT EXISTS events_hook ON events (hook_due) WHERE hook_state = 0;
CREATE TABLE IF NOT EXISTS inbound_parts (
    key TEXT NOT NULL,
    seqnum INTEGER NOT NULL,
    total INTEGER NOT NULL,
    data BLOB NOT NULL,
    received_at REAL NOT NULL,
    head BLOB,
    PRIMARY KEY (key, seqnum)
) WITHOUT ROWID;
"""


def request(n: int) -> SubmitRequest:
    return SubmitRequest(
        to=f"9198{n:08d}",
        sender=validate_sender("ACME"),
        text=f"message {n}",
        payload=None,
        data_coding=DataCoding.DEFAULT,
        parts=1,
    )


def config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {
        "simulator": {"enabled": True, "servers": 1, "max_binds_per_server": 1},
        "store": {"path": str(tmp_path / "gw.db"), "synchronous": "normal"},
        "intake": {"path": str(tmp_path / "gw.sock")},
        "defaults": {"sender": "ACME"},
        "metrics": {"enabled": False},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_config(data, environ={})


def states(path: Path) -> list[tuple[str, int]]:
    """(state, possible_duplicate) of every message, read beside the daemon (WAL readers)."""
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT state, possible_duplicate FROM messages ORDER BY seq"))


async def claimed_store(path: Path, count: int = 3) -> SqliteStore:
    """A store with ``count`` messages claimed, as a live daemon's would be."""
    store = await SqliteStore.open(StoreSettings(str(path), synchronous="normal"))
    await store.add_messages([request(n) for n in range(count)])
    assert len(await store.claim(count)) == count
    return store


async def test_a_second_store_on_the_same_file_is_refused_naming_the_holder(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gw.db"
    first = await SqliteStore.open(StoreSettings(str(path)))
    try:
        with pytest.raises(StoreLockedError, match=f"pid {os.getpid()}") as info:
            await SqliteStore.open(StoreSettings(str(path)))
        assert info.value.pid == os.getpid()
    finally:
        await first.close()
    again = await SqliteStore.open(StoreSettings(str(path)))  # closing let the lock go
    await again.close()


async def test_a_second_gateway_leaves_the_live_one_s_claims_alone(tmp_path: Path) -> None:
    """The second daemon used to requeue the first one's claimed messages, flag them
    possible_duplicate and send them again."""
    live = await claimed_store(tmp_path / "gw.db")
    try:
        second = Gateway(config(tmp_path), GatewayOptions(wait_bound=5))
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(StoreLockedError, match=f"pid {os.getpid()}"):
                await second.start()
            await second.stop(1.0)
        assert second.simulator is None  # no bind, no simulator: it stopped at the lock
        assert second.manager is None
        assert states(tmp_path / "gw.db") == [("submitting", 0)] * 3
    finally:
        await live.close()


async def test_a_socket_in_use_stops_the_start_before_any_state_changes(tmp_path: Path) -> None:
    store = await claimed_store(tmp_path / "gw.db")
    await store.close()  # a crash's leftovers: claimed, no daemon holding the store
    server = await asyncio.start_unix_server(
        lambda _r, w: w.close(), path=str(tmp_path / "gw.sock")
    )
    try:
        gateway = Gateway(config(tmp_path), GatewayOptions(wait_bound=5))
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(InstanceConflictError, match=f"in use .*pid {os.getpid()}"):
                await gateway.start()
            await gateway.stop(1.0)
        assert gateway.manager is None
    finally:
        server.close()
        await server.wait_closed()
    assert states(tmp_path / "gw.db") == [("submitting", 0)] * 3


async def test_a_metrics_port_in_use_stops_the_start_before_any_state_changes(
    tmp_path: Path,
) -> None:
    store = await claimed_store(tmp_path / "gw.db")
    await store.close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gateway = Gateway(
            config(tmp_path, metrics={"enabled": True, "address": f"127.0.0.1:{port}"}),
            GatewayOptions(wait_bound=5),
        )
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(InstanceConflictError, match=f"metrics port 127.0.0.1:{port}"):
                await gateway.start()
            await gateway.stop(1.0)
    assert gateway.manager is None
    assert states(tmp_path / "gw.db") == [("submitting", 0)] * 3


async def test_smppgw_run_on_a_store_in_use_exits_2_naming_the_other_pid(tmp_path: Path) -> None:
    live = await claimed_store(tmp_path / "gw.db")
    conf = tmp_path / "gw.toml"
    conf.write_text(
        f"""
[gateway]
system_id = "smppgw"
password_env = "SMPPGW_TEST_PASSWORD"

[[servers]]
name = "one"
host = "127.0.0.1"
port = 9

[store]
path = "{tmp_path / "gw.db"}"

[intake]
path = "{tmp_path / "gw.sock"}"

[metrics]
enabled = false
"""
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "smppgw",
                "run",
                "--config",
                str(conf),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "SMPPGW_TEST_PASSWORD": "pw"},
            )
            _, stderr = await process.communicate()
        assert f"in use by another smppgw (pid {os.getpid()};" in stderr.decode()
        assert process.returncode == 2
        assert states(tmp_path / "gw.db") == [("submitting", 0)] * 3
    finally:
        await live.close()


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "setup",
    [
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)",
        "PRAGMA application_id = 1234; CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",  # no schema row: not ours
    ],
)
async def test_another_program_s_database_is_refused_and_left_untouched(
    tmp_path: Path, setup: str
) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(setup)
    conn.close()
    before = digest(path)
    with pytest.raises(NotAStoreError, match="not an smppgw store"):
        await SqliteStore.open(StoreSettings(str(path)))
    assert digest(path) == before
    assert files(tmp_path) == ["other.db", "other.db.lock"]  # no -wal, no -shm


async def test_a_file_that_is_no_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are not the pages you are looking for\n" * 200)
    before = digest(path)
    with pytest.raises(NotAStoreError, match="is not a database"):
        await SqliteStore.open(StoreSettings(str(path)))
    assert digest(path) == before


OLD_REQUEST = SubmitRequest(
    to="919800000001",
    sender=validate_sender("ACME"),
    text="old",
    payload=None,
    data_coding=DataCoding.DEFAULT,
    parts=1,
)


async def test_a_store_written_before_the_application_id_opens_and_is_stamped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_2)
        conn.execute("INSERT INTO meta VALUES ('schema', '2')")
        conn.execute(
            "INSERT INTO messages (id, mobile, request, parts, priority, state, status,"
            " created_at, due_at) VALUES ('m1', '919800000001', ?, 1, 0, 'submitting',"
            " 'QUEUED', 1.0, 1.0)",
            # The request as schema 2 stores held it: the intake's class, msgspec-encoded.
            (msgspec.msgpack.encode(OLD_REQUEST),),
        )
    conn.close()
    store = await SqliteStore.open(StoreSettings(str(path)))
    try:
        assert await store.requeue_claimed() == 1
        status = await store.status(message_id="m1")
        assert status is not None
        assert status.state.value == "queued"
        [claimed] = await store.claim(1)
        assert claimed.request == OLD_REQUEST
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x736D7067
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("4",)
        assert conn.execute("SELECT sending FROM messages").fetchall() == [(0,)]
    conn.close()
    again = await SqliteStore.open(StoreSettings(str(path)))  # stamped: ours from now on
    await again.close()
