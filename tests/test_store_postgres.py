"""The PostgreSQL store on its own: settings, schema migration, and database trouble.

The cluster behaviour (two instances on one schema) is in test_store_postgres_cluster.py; the
contracts every store keeps are in test_store_contract.py. PostgreSQL is the machine's (see
postgres_helper); its loss is played by a proxy that refuses and drops connections, and by
pg_terminate_backend on the store's own connections (never by restarting the server, which
other suites on the machine share).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from postgres_helper import Database, fresh_schema, target

from smppgw.codec.constants import DataCoding
from smppgw.esme.numbers import validate_sender
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store.postgres import (
    SCHEMA_VERSION,
    PostgresSettings,
    PostgresSettingsError,
    PostgresStore,
    StoreSchemaError,
    StoreUnavailableError,
    migrate,
)

TIMEOUT = 30.0
SECRET = "s3cr3t-pw"


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with fresh_schema() as database, asyncio.timeout(TIMEOUT):
        yield database


def req(n: int) -> SubmitRequest:
    return SubmitRequest(
        to=f"9198{n:08d}",
        sender=validate_sender("ACME"),
        text=f"message {n}",
        payload=None,
        data_coding=DataCoding.DEFAULT,
        parts=1,
        priority=0,
        custom=None,
        registered_delivery=True,
    )


@dataclass(eq=False)
class SwitchProxy:
    """A TCP relay to PostgreSQL that can go down as a stopped server does: its connections
    are cut and new ones refused (accepted and closed at once) until it comes back."""

    up: bool = True
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    def dsn(self, db: Database) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        user = db.dsn.split("://", 1)[1].split("@", 1)[0]
        return f"postgresql://{user}@127.0.0.1:{port}/postgres"

    def down(self) -> None:
        self.up = False
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.down()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*target())
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()


# --- settings --------------------------------------------------------------------------------


def test_the_dsn_comes_from_exactly_one_place() -> None:
    with pytest.raises(PostgresSettingsError, match="exactly one of dsn, dsn_env or dsn_file"):
        PostgresSettings()
    with pytest.raises(PostgresSettingsError, match=r"\(got dsn, dsn_env\)"):
        PostgresSettings(dsn="postgresql://h/db", dsn_env="PG")


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://smppgw:{SECRET}@db.example/smppgw",
        f"postgresql://smppgw@db.example/smppgw?password={SECRET}",
        f"host=db.example user=smppgw password={SECRET}",
    ],
)
def test_a_dsn_with_a_password_is_refused_in_the_config_without_showing_it(dsn: str) -> None:
    with pytest.raises(PostgresSettingsError, match="must not hold a password") as caught:
        PostgresSettings(dsn=dsn)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(PostgresSettings(dsn="postgresql://db.example/smppgw"))


def test_the_dsn_is_read_from_an_environment_variable_or_a_file(tmp_path: Path) -> None:
    dsn = f"postgresql://smppgw:{SECRET}@db.example/smppgw"
    assert PostgresSettings(dsn_env="PG_DSN").resolve_dsn({"PG_DSN": f" {dsn}\n"}) == dsn
    with pytest.raises(PostgresSettingsError, match="PG_DSN is unset or empty"):
        PostgresSettings(dsn_env="PG_DSN").resolve_dsn({})
    secret = tmp_path / "dsn"
    secret.write_text(dsn + "\n")
    assert PostgresSettings(dsn_file=str(secret)).resolve_dsn({}) == dsn
    with pytest.raises(PostgresSettingsError, match="cannot read") as caught:
        PostgresSettings(dsn_file=str(tmp_path / "absent")).resolve_dsn({})
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("schema", "Bad-Name", "lower-case SQL identifier"),
        ("pool_size", 1, "pool_size must be at least 2"),
        ("claim_lease", 0.0, "claim_lease must be positive"),
        ("instance", "", "instance must be 1 to 200 characters"),
        ("max_batch", 0, "max_batch <= max_queue"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_key(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(PostgresSettingsError, match=message):
        PostgresSettings(dsn="postgresql://db.example/smppgw", **{key: value})  # type: ignore[arg-type]


# --- schema ----------------------------------------------------------------------------------


async def test_migrate_creates_the_schema_once_even_when_instances_start_together(
    db: Database,
) -> None:
    versions = await asyncio.gather(*(migrate(db.dsn, db.schema) for _ in range(4)))
    assert versions == [SCHEMA_VERSION] * 4
    assert await migrate(db.dsn, db.schema) == SCHEMA_VERSION
    conn = await asyncpg.connect(db.dsn)
    try:
        rows = await conn.fetch(f"SELECT key, value FROM {db.schema}.meta")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("schema", str(SCHEMA_VERSION))]


async def test_a_schema_holding_other_tables_or_a_newer_store_is_left_untouched(
    db: Database,
) -> None:
    conn = await asyncpg.connect(db.dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {db.schema}; CREATE TABLE {db.schema}.orders (n int)")
        with pytest.raises(StoreSchemaError, match=r"tables that are not a store's \(orders\)"):
            await migrate(db.dsn, db.schema)
        await conn.execute(f"DROP TABLE {db.schema}.orders")
        assert await migrate(db.dsn, db.schema) == SCHEMA_VERSION
        await conn.execute(f"UPDATE {db.schema}.meta SET value = '99'")
        with pytest.raises(StoreSchemaError, match="schema version 99, newer than"):
            await migrate(db.dsn, db.schema)
        assert await conn.fetchval(f"SELECT value FROM {db.schema}.meta") == "99"
    finally:
        await conn.close()


async def test_an_unreachable_database_is_a_typed_error_at_open_and_migrate() -> None:
    proxy = SwitchProxy(up=False)
    await proxy.start()
    try:
        dsn = proxy.dsn(Database("postgresql://postgres@x/postgres", "unused"))
        with pytest.raises(StoreUnavailableError, match="PostgreSQL unavailable"):
            await migrate(dsn)
        with pytest.raises(StoreUnavailableError, match="cannot open the store"):
            await PostgresStore.open(PostgresSettings(dsn=dsn, timeout=5))
    finally:
        await proxy.close()


# --- database trouble ------------------------------------------------------------------------


async def test_while_postgres_is_away_calls_raise_unavailable_and_the_store_recovers_by_itself(
    db: Database,
) -> None:
    proxy = SwitchProxy()
    await proxy.start()
    settings = PostgresSettings(dsn=proxy.dsn(db), schema=db.schema, instance="a", timeout=5)
    store = await PostgresStore.open(settings)
    try:
        [before] = await store.add_messages([req(1)])
        proxy.down()
        with pytest.raises(StoreUnavailableError, match="PostgreSQL unavailable"):
            await store.add_messages([req(2)])  # not committed: not acknowledged
        assert not store.health.healthy
        assert "PostgreSQL unavailable" in (store.health.reason or "")
        with pytest.raises(StoreUnavailableError):
            await store.status(message_id=before.id)
        proxy.up = True
        [after] = await store.add_messages([req(3)])  # the pool connects again by itself
        assert store.health.healthy
        assert [m.id for m in await store.claim(10)] == [before.id, after.id]
    finally:
        await store.close()
        await proxy.close()


async def test_connections_dropped_mid_run_lose_no_acknowledged_message(db: Database) -> None:
    """The server drops every connection of the store (pg_terminate_backend, as a restart or
    a failover does) three times while messages are being accepted: each accept either returns
    (then its message is stored) or raises StoreUnavailableError; afterwards the store writes
    again and its subscribers are still woken by the events of another instance."""
    settings = PostgresSettings(dsn=db.dsn, schema=db.schema, instance="a", timeout=5)
    store = await PostgresStore.open(settings)
    other = await PostgresStore.open(
        PostgresSettings(dsn=db.dsn, schema=db.schema, instance="b", timeout=5)
    )
    admin = await asyncpg.connect(db.dsn)
    acknowledged: list[str] = []
    refused = 0
    try:

        async def accept() -> None:
            nonlocal refused
            for n in range(40):
                try:
                    results = await store.add_messages([req(n * 10 + k) for k in range(10)])
                except StoreUnavailableError:
                    refused += 1
                else:
                    acknowledged.extend(r.id for r in results)
                await asyncio.sleep(0.005)

        async def drop() -> None:
            for _ in range(3):
                await asyncio.sleep(0.03)
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = $1",
                    settings.application_name,
                )

        await asyncio.gather(accept(), drop())
        stored = {m.id for m in await other.claim(1000)}
        assert set(acknowledged) <= stored  # nothing acknowledged is lost
        assert len(acknowledged) + 10 * refused == 400
        [last] = await store.add_messages([req(999)])
        assert store.health.healthy
        cursor = await store.last_cursor()
        waiter = asyncio.create_task(store.wait_events(cursor))  # its listener reconnected
        await other.add_inbound("k", 1, 1, b"", head=b"", build=lambda *_: b"e")
        await asyncio.wait_for(waiter, 10)
        assert (await other.status(message_id=last.id)) is not None
    finally:
        await admin.close()
        await other.close()
        await store.close()
