"""The PostgreSQL store's schema: created and migrated by the store, versioned in ``meta``.

Every start runs :func:`ensure_schema` in one transaction under a transaction-level advisory
lock, so instances starting together create or migrate the schema once and the others find it
done (PostgreSQL's DDL is transactional: a migration is whole or absent). ``smppgw migrate``
runs it ahead of a rollout (:func:`migrate`).
"""

from __future__ import annotations

import zlib
from typing import Final, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from smppgw.gateway.store.health import StoreError
from smppgw.gateway.store.postgres.errors import DATABASE_ERRORS, unavailable

__all__ = ["SCHEMA_VERSION", "Conn", "StoreSchemaError", "ensure_schema", "lock_key", "migrate"]

SCHEMA_VERSION: Final = 1

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""A connection of the pool, or one of its own."""
_TABLES: Final = frozenset(
    {
        "meta",
        "instances",
        "messages",
        "parts",
        "part_aliases",
        "unmatched",
        "events",
        "inbound_parts",
    }
)

# Times are Unix seconds from the store's clock (double precision), as in the SQLite store.
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.instances (
    id text PRIMARY KEY,
    expires_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.messages (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    custom text UNIQUE,
    mobile text NOT NULL,
    request bytea NOT NULL,
    parts integer NOT NULL,
    priority integer NOT NULL,
    state text NOT NULL,
    status text NOT NULL,
    err text,
    reason text,
    claims integer NOT NULL DEFAULT 0,
    claimed_by text,
    possible_duplicate boolean NOT NULL DEFAULT false,
    sending boolean NOT NULL DEFAULT false,
    created_at double precision NOT NULL,
    due_at double precision NOT NULL,
    sent_at double precision,
    deliv_at double precision,
    final_at double precision
);
CREATE INDEX IF NOT EXISTS messages_queue ON {s}.messages (priority DESC, seq)
    WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS messages_claimed ON {s}.messages (claimed_by)
    WHERE state = 'submitting';
CREATE INDEX IF NOT EXISTS messages_submitted ON {s}.messages (sent_at)
    WHERE state = 'submitted';
CREATE INDEX IF NOT EXISTS messages_final ON {s}.messages (final_at)
    WHERE final_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.parts (
    message_id text NOT NULL,
    part integer NOT NULL,
    parts integer NOT NULL,
    smsc_id text,
    smsc_key text,
    registered_at double precision,
    expires_at double precision,
    dlr bytea,
    dlr_final boolean NOT NULL DEFAULT false,
    dlr_stat text,
    dlr_err text,
    PRIMARY KEY (message_id, part)
);
CREATE INDEX IF NOT EXISTS parts_key ON {s}.parts (smsc_key) WHERE smsc_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.part_aliases (
    smsc_key text PRIMARY KEY,
    message_id text NOT NULL,
    part integer NOT NULL,
    parts integer NOT NULL,
    smsc_id text NOT NULL,
    registered_at double precision NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS part_aliases_message ON {s}.part_aliases (message_id);
CREATE TABLE IF NOT EXISTS {s}.unmatched (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key text NOT NULL,
    dlr bytea NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS unmatched_key ON {s}.unmatched (key);
CREATE TABLE IF NOT EXISTS {s}.events (
    cursor bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body bytea NOT NULL,
    created_at double precision NOT NULL,
    hook_state smallint NOT NULL,
    hook_attempts integer NOT NULL DEFAULT 0,
    hook_due double precision,
    hook_error text,
    hook_owner text,
    hook_lease double precision
);
CREATE INDEX IF NOT EXISTS events_hook ON {s}.events (hook_due, cursor) WHERE hook_state = 0;
CREATE TABLE IF NOT EXISTS {s}.inbound_parts (
    key text NOT NULL,
    seqnum integer NOT NULL,
    total integer NOT NULL,
    data bytea NOT NULL,
    received_at double precision NOT NULL,
    head bytea,
    PRIMARY KEY (key, seqnum)
);
"""


class StoreSchemaError(StoreError):
    """The schema holds something this release cannot use: another program's tables, or a
    store of a newer schema version (the message says which; nothing was changed)."""


def lock_key(schema: str, what: str) -> int:
    """A 64-bit advisory lock key for ``what`` in ``schema`` (stores in other schemas of the
    same database do not contend)."""
    value = zlib.crc32(f"{schema}\0{what}".encode()) << 32 | zlib.crc32(f"smppgw\0{what}".encode())
    return value - (1 << 64) if value >= 1 << 63 else value


async def ensure_schema(conn: Conn, schema: str) -> int:
    """Create or migrate the store's schema (idempotent, serialised across instances).

    Returns:
        The schema version now in place.

    Raises:
        StoreSchemaError: another program's tables in the schema, or a newer version.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(schema, "schema"))
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        tables = {r["table_name"] for r in rows}
        foreign = sorted(tables - _TABLES)
        if foreign:
            raise StoreSchemaError(
                f"the schema {schema} holds tables that are not a store's ({', '.join(foreign)});"
                " left untouched: choose another store.schema"
            )
        version: int | None = None
        if "meta" in tables:
            value = await conn.fetchval(f"SELECT value FROM {schema}.meta WHERE key = 'schema'")
            version = None if value is None else int(value)
        elif tables:
            raise StoreSchemaError(
                f"the schema {schema} has store tables but no schema version; left untouched"
            )
        if version is not None and version > SCHEMA_VERSION:
            raise StoreSchemaError(
                f"the store in schema {schema} has schema version {version}, newer than this"
                f" release's {SCHEMA_VERSION}: upgrade smppgw"
            )
        if version == SCHEMA_VERSION:
            return version
        # Version 1 is the first: later versions add their steps here, each from the last.
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(_SCHEMA.format(s=schema))
        await conn.execute(
            f"INSERT INTO {schema}.meta VALUES ('schema', $1)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            str(SCHEMA_VERSION),
        )
        return SCHEMA_VERSION


async def migrate(dsn: str, schema: str = "smppgw", *, connect_timeout: float = 10.0) -> int:
    """Create or migrate the store's schema at ``dsn`` (``smppgw migrate``).

    Returns:
        The schema version now in place.

    Raises:
        StoreSchemaError: see :func:`ensure_schema`.
        StoreUnavailableError: the database cannot be reached.
    """
    try:
        conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    except DATABASE_ERRORS as exc:
        raise unavailable(exc, "cannot connect to PostgreSQL") from exc
    try:
        return await ensure_schema(conn, schema)
    finally:
        await conn.close()
