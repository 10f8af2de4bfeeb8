"""The store's database file: where and how durably, the schema and its upgrades, and refusing
a file that is not a store of ours before anything is written to it.

Schema versions: 2 keeps whether a part's receipt is final, its stat and err next to it, and
what an inbound message's event needs next to each of its parts; 3 marks a claimed message once
a part of it may be on the wire; 4 stores requests and receipts as the store's own versioned
records (:mod:`.records`) instead of the daemon's classes as they were.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from smppgw.codec.errors import SmppError
from smppgw.esme.settings import setting
from smppgw.gateway.store.health import StoreError
from smppgw.gateway.store.lock import InstanceLock
from smppgw.gateway.store.records import upgrade_dlr, upgrade_request

__all__ = [
    "APPLICATION_ID",
    "HOOK_DONE",
    "HOOK_NONE",
    "HOOK_PENDING",
    "SCHEMA_VERSION",
    "NotAStoreError",
    "StoreSettings",
    "open_database",
]

SCHEMA_VERSION: Final = 4
# PRAGMA application_id of a store ("smpg"): a database with another id, or one without an id
# holding tables that are not ours, is refused before anything is written to it.
APPLICATION_ID: Final = 0x736D7067
# events.hook_state
HOOK_PENDING: Final = 0
HOOK_DONE: Final = 1
HOOK_NONE: Final = 2  # no webhook configured when the event was written, or given up
_TABLES: Final = frozenset({"meta", "messages", "parts", "unmatched", "events", "inbound_parts"})

_SCHEMA: Final = """
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
    retried INTEGER NOT NULL DEFAULT 0,
    sending INTEGER NOT NULL DEFAULT 0,
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
CREATE TABLE IF NOT EXISTS part_aliases (
    smsc_key TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    smsc_id TEXT NOT NULL,
    registered_at REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS part_aliases_message ON part_aliases (message_id);
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
    hook_error TEXT,
    message_id TEXT
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


class NotAStoreError(StoreError):
    """The file is a database, but not a store of smppgw's: it is left untouched."""


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where and how durably to store.

    ``synchronous`` is SQLite's: ``full`` fsyncs every commit (survives power loss), ``normal``
    survives a process crash. ``retention`` (seconds) is how long final messages, their events
    and delivered webhook events are kept. ``webhook`` tells whether new events await a
    webhook delivery. ``max_batch`` bounds the operations of one commit, ``max_queue`` the
    operations waiting for the writer (a caller beyond it waits for room).
    """

    path: str = setting("var/smppgw.db", path=True)
    synchronous: str = setting("full", choices=("full", "normal"))
    retention: float = setting(7 * 86400.0, positive=True, key="retention_days", scale=86400.0)
    webhook: bool = setting(default=False, configurable=False)
    max_batch: int = setting(2000, configurable=False)
    max_queue: int = setting(20000, configurable=False)


def open_database(settings: StoreSettings) -> tuple[sqlite3.Connection, InstanceLock | None]:
    """Take the store's lock and open (creating or upgrading if needed) its database.

    Raises:
        StoreLockedError: another process has the store open (its pid in the message).
        NotAStoreError: the file is a database of something else.
        StoreError: the file is not a store of this version, or SQLite is too old.
    """
    if sqlite3.sqlite_version_info < (3, 35):  # UPDATE ... RETURNING
        raise StoreError(f"SQLite 3.35 or newer is needed, this is {sqlite3.sqlite_version}")
    path = settings.path
    sync = settings.synchronous.upper()
    if sync not in ("FULL", "NORMAL", "EXTRA"):
        raise StoreError(f"store.synchronous: must be full or normal, got {sync.lower()!r}")
    lock = None
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        lock = InstanceLock.acquire(Path(f"{path}.lock"), f"the store {path}")
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            _prepare(conn, path, sync)
        except BaseException:
            conn.close()
            raise
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return conn, lock


def _prepare(conn: sqlite3.Connection, path: str, sync: str) -> None:
    _check_ours(conn, path)  # reads only: a file that is not ours is left as it was
    conn.execute("PRAGMA busy_timeout=5000")
    # After a checkpoint the WAL file is cut back to this size: on a small volume the space
    # it held goes back to the disk instead of staying reserved.
    conn.execute("PRAGMA journal_size_limit=67108864")
    # Each of these writes only when the file is not already so: a store opened on a full
    # disk starts (and answers storage_full) instead of failing to start.
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.executescript(_SCHEMA)  # IF NOT EXISTS: no write when the store has them all
    if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    version = SCHEMA_VERSION if row is None else int(row[0])
    if version == 1:
        # Version 2 keeps whether a part's receipt is final, its stat and err next to it,
        # and what an inbound message's event needs next to each of its parts.
        _add_column(conn, "parts", "dlr_final", "INTEGER NOT NULL DEFAULT 0")
        _add_column(conn, "parts", "dlr_stat", "TEXT")
        _add_column(conn, "parts", "dlr_err", "TEXT")
        _add_column(conn, "inbound_parts", "head", "BLOB")
        version = 2
    if version == 2:
        # Version 3 marks a claimed message once a part of it may be on the wire.
        _add_column(conn, "messages", "sending", "INTEGER NOT NULL DEFAULT 0")
        version = 3
    if version == 3:
        _upgrade_records(conn)
        version = 4
    _operator_columns(conn)
    if row is None:
        conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    elif version != SCHEMA_VERSION:
        raise StoreError(
            f"the store at {path} has schema {row[0]}, this version needs {SCHEMA_VERSION}"
        )
    elif int(row[0]) != version:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(version),))


def _upgrade_records(conn: sqlite3.Connection) -> None:
    """Schema 4: rewrite every stored request and receipt in the store's record format, and
    the schema version with them, in one transaction (a store left half upgraded by a crash
    is still schema 3 and is upgraded again)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        try:
            conn.executemany(
                "UPDATE messages SET request = ? WHERE seq = ?",
                [
                    (upgrade_request(r[1]), r[0])
                    for r in conn.execute("SELECT seq, request FROM messages")
                ],
            )
            conn.executemany(
                "UPDATE parts SET dlr = ? WHERE message_id = ? AND part = ?",
                [
                    (upgrade_dlr(r[2]), r[0], r[1])
                    for r in conn.execute(
                        "SELECT message_id, part, dlr FROM parts WHERE dlr IS NOT NULL"
                    )
                ],
            )
            conn.executemany(
                "UPDATE unmatched SET dlr = ? WHERE id = ?",
                [(upgrade_dlr(r[1]), r[0]) for r in conn.execute("SELECT id, dlr FROM unmatched")],
            )
        except (ValueError, SmppError) as exc:  # msgspec.DecodeError is a ValueError
            raise StoreError(f"cannot upgrade the store's records to schema 4: {exc}") from exc
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _add_column(conn: sqlite3.Connection, table: str, column: str, declaration: str) -> bool:
    """Add a column unless the table has it (the schema script may have just created it);
    True when it was added."""
    if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        return True
    return False


def _operator_columns(conn: sqlite3.Connection) -> None:
    """The columns the operators' ops need, added to a store of any schema version (an older
    version reading the file ignores them): how often a message was retried, and the message
    each event is about, indexed for ``history`` (filled in once from the status events
    already kept)."""
    _add_column(conn, "messages", "retried", "INTEGER NOT NULL DEFAULT 0")
    if _add_column(conn, "events", "message_id", "TEXT"):
        conn.execute(
            "UPDATE events SET message_id = json_extract(CAST(body AS TEXT), '$.payload.id')"
            ' WHERE CAST(body AS TEXT) LIKE \'{"event":"sms:message:status"%\''
        )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS events_message ON events (message_id, cursor)"
        " WHERE message_id IS NOT NULL"
    )


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }


def _check_ours(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a database that is not a store of ours, before anything is written to it.

    Ours: our application id; or (a store written before the id was set) no id, our tables
    only, and our schema row; or empty (a new store).

    Raises:
        NotAStoreError: another program's database, or not a database.
    """
    try:
        app = conn.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_NOTADB:
            raise
        raise NotAStoreError(f"{path} is not a database; left untouched") from exc
    if app == APPLICATION_ID:
        return
    if app != 0:
        raise NotAStoreError(
            f"{path} is not an smppgw store (application_id {app:#010x}); left untouched"
        )
    tables = _tables(conn)
    if not tables:
        return
    foreign = sorted(tables - _TABLES)
    if foreign:
        raise NotAStoreError(
            f"{path} is not an smppgw store (it has tables {', '.join(foreign)}); left untouched"
        )
    if "meta" not in tables or (
        conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() is None
    ):
        raise NotAStoreError(f"{path} is not an smppgw store (no schema version); left untouched")
