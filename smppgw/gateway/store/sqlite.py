"""SQLite in WAL mode, with group commit: the daemon's durable store on one machine.

Every call is an *operation* queued for one writer. The writer takes every queued operation,
runs them in one transaction (each inside its own SAVEPOINT, so one failing operation does not
undo the others), commits once, and only then resolves the callers' futures. So an ``await``
on any method returns after its effect is durable (``synchronous = full``: fsynced; ``normal``:
durable against a process crash, not against power loss) and a burst of N callers costs one
fsync, not N.

The statements of a batch run on the event loop's thread (microseconds each: a worker thread
would contend with the loop for the GIL at every call); the COMMIT, which may wait for the disk
(fsync), runs on one dedicated thread (``smppgw-store``) while the loop goes on. The writer is
the connection's only user and never runs two batches at once.

Message life cycle (``messages.state``): ``queued`` -> ``submitting`` (claimed by the
dispatcher) -> ``submitted`` (every part accepted by an SMSC) -> a final state from the
receipts (``delivered``, ``failed``, ``expired``, ``rejected``), or straight to ``sent`` (every
part accepted, no receipt asked for), ``failed`` or ``unknown`` when the submit itself ended.
A crash leaves claimed messages in ``submitting``;
:meth:`SqliteStore.requeue_claimed` puts them back in the queue at start, and their parts
already accepted by an SMSC (a row in ``parts`` with an SMSC id) are not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec

from smppgw.codec.errors import SmppError
from smppgw.esme.observe import NULL_OBSERVER, Observer
from smppgw.esme.settings import setting
from smppgw.gateway.correlate import Dlr, Outcome, PartEntry, normalize_message_id
from smppgw.gateway.events import (
    DeliveryState,
    PartPayload,
    StatusEvent,
    StatusPayload,
    StoredEvent,
    encode_event,
    format_time,
)
from smppgw.gateway.intake import SubmitRequest, SubmitResult
from smppgw.gateway.store.health import (
    HEALTHY,
    LogLimiter,
    StorageFullError,
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreHealth,
    store_error,
)
from smppgw.gateway.store.interfaces import ClaimedMessage, InboundBuilder, WaitingPart
from smppgw.gateway.store.lock import InstanceLock
from smppgw.gateway.webhook import PendingDelivery

__all__ = [
    "ClaimedMessage",
    "InboundBuilder",
    "NotAStoreError",
    "SqliteStore",
    "StoreClosedError",
    "StoreError",
    "StoreSettings",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION: Final = 3
# PRAGMA application_id of a store ("smpg"): a database with another id, or one without an id
# holding tables that are not ours, is refused before anything is written to it.
APPLICATION_ID: Final = 0x736D7067
_RESTARTS: Final = 3  # of a batch whose transaction a full disk cancelled (see _run_slow)
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

# The statements returning a message's status payload columns (see _payload), in its order.
_SELECT_PAYLOAD: Final = (
    "SELECT id, mobile, state, status, parts, created_at, sent_at, deliv_at, custom, err,"
    " reason, possible_duplicate FROM messages WHERE id = ?"
)
_FINISH_SUBMIT: Final = (
    "UPDATE messages SET state = ?, status = ?, err = ?, reason = ?, sent_at = ?, final_at = ?,"
    " possible_duplicate = possible_duplicate OR ? WHERE id = ? AND state = 'submitting'"
    " RETURNING id, mobile, state, status, parts, created_at, sent_at, deliv_at, custom, err,"
    " reason, possible_duplicate"
)
_APPLY_RECEIPT: Final = (
    "UPDATE messages SET state = ?, status = ?, err = ?, reason = ?, deliv_at = ?, final_at = ?"
    " WHERE id = ? AND state IN ('queued', 'submitting', 'submitted', 'unknown')"
    " RETURNING id, mobile, state, status, parts, created_at, sent_at, deliv_at, custom, err,"
    " reason, possible_duplicate"
)

_RESOLVE_UNKNOWN: Final = (
    "UPDATE messages SET state = ?, status = ?, err = NULL, reason = ?, final_at = ?"
    " WHERE id = ? AND state = 'unknown'"
    " RETURNING id, mobile, state, status, parts, created_at, sent_at, deliv_at, custom, err,"
    " reason, possible_duplicate"
)

_REQUEUE_CLAIMED: Final = (
    "UPDATE messages SET state = 'queued', due_at = ?, sending = 0,"
    " possible_duplicate = possible_duplicate OR (sending AND (SELECT count(*) FROM parts"
    " WHERE message_id = messages.id AND smsc_id IS NOT NULL) < messages.parts)"
    " WHERE state = 'submitting'"
)

_INSERT_MESSAGE: Final = (
    "INSERT INTO messages (id, custom, mobile, request, parts, priority, state, status,"
    " created_at, due_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', 'QUEUED', ?, ?)"
)


def _message_row(
    message_id: str, request: SubmitRequest, blob: bytes, now: float
) -> tuple[object, ...]:
    return (
        message_id,
        request.custom,
        request.to,
        blob,
        request.parts,
        request.priority,
        now,
        now,
    )


_EXPIRE_WAITING: Final = (
    "UPDATE messages SET state = 'unknown', status = 'UNKNOWN', reason = ?, final_at = ?"
    " WHERE state = 'submitted' AND final_at IS NULL AND sent_at < ?"
    " RETURNING id, mobile, state, status, parts, created_at, sent_at, deliv_at, custom, err,"
    " reason, possible_duplicate"
)

# events.hook_state
_HOOK_PENDING: Final = 0
_HOOK_DONE: Final = 1
_HOOK_NONE: Final = 2  # no webhook configured when the event was written, or given up

_msgpack = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(SubmitRequest)
_dlr_decoder = msgspec.msgpack.Decoder(Dlr)


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


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


class SqliteStore:
    """The store. Create with :meth:`open`; every method may be awaited from any task.

    Args:
        settings: path and durability.
        observer: gets commit latency and batch sizes.
        clock: wall-clock time (Unix seconds) for timestamps.
    """

    def __init__(
        self,
        settings: StoreSettings,
        *,
        observer: Observer = NULL_OBSERVER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._observer = observer
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smppgw-store")
        self._conn: sqlite3.Connection | None = None
        self._queue: list[_Op] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()  # set when the queue is below max_queue
        self._room.set()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._lock: InstanceLock | None = None
        self._health = HEALTHY
        self._damaged = False
        self._batch_unwritable = False  # an operation of the running batch found no room
        self._shrink_wal = False  # a batch failed for a full disk: checkpoint and cut the WAL
        self._sending: list[str] = []  # ids waiting for mark_sending's next operation
        self._sending_op: asyncio.Future[None] | None = None
        self._failure_log = LogLimiter(logger)
        self._on_failure: list[Callable[[BaseException], None]] = []
        self._last_cursor = 0
        self._batch_cursor = 0  # the newest event written by the batch being run
        self._new_events = asyncio.Event()
        # Unmatched receipts in the table; read and written only by operations (on the store
        # thread). Lets register_part skip looking for parked receipts when there are none.
        self._unmatched_rows = 0
        # Message ids: 80 random bits drawn once per process, then a counter (32 hex digits,
        # like a UUID's, without a system call per message).
        self._id_prefix = os.urandom(10).hex()
        self._id_counter = itertools.count()

    # --- life cycle -------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        settings: StoreSettings,
        *,
        observer: Observer = NULL_OBSERVER,
        clock: Callable[[], float] = time.time,
    ) -> SqliteStore:
        """Take the store's lock, open (creating if needed) the database and start the writer.

        Nothing is written to the file before the lock is held and the file is known to be a
        store of ours (or empty).

        Raises:
            StoreLockedError: another process has the store open (its pid in the message).
            NotAStoreError: the file is a database of something else.
            StoreError: the file cannot be opened or is not a store of this version.
        """
        store = cls(settings, observer=observer, clock=clock)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(store._executor, store._connect)
        except (sqlite3.Error, OSError) as exc:
            store._executor.shutdown(wait=False)
            raise store_error(exc, f"cannot open the store at {settings.path}") from exc
        except SmppError:
            store._executor.shutdown(wait=False)
            raise
        store._writer = asyncio.create_task(store._write_loop(), name="smppgw-store-writer")
        store._writer.add_done_callback(store._writer_done)
        return store

    def _connect(self) -> None:
        if sqlite3.sqlite_version_info < (3, 35):  # UPDATE ... RETURNING
            raise StoreError(f"SQLite 3.35 or newer is needed, this is {sqlite3.sqlite_version}")
        path = self._settings.path
        sync = self._settings.synchronous.upper()
        if sync not in ("FULL", "NORMAL", "EXTRA"):
            raise StoreError(f"store.synchronous: must be full or normal, got {sync.lower()!r}")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._lock = InstanceLock.acquire(Path(f"{path}.lock"), f"the store {path}")
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                self._prepare(conn, path, sync)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        self._conn = conn

    def _prepare(self, conn: sqlite3.Connection, path: str, sync: str) -> None:
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
        if row is None:
            conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif version != SCHEMA_VERSION:
            raise StoreError(
                f"the store at {path} has schema {row[0]}, this version needs {SCHEMA_VERSION}"
            )
        elif int(row[0]) != version:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(version),))
        cursor_row = conn.execute("SELECT max(cursor) FROM events").fetchone()
        self._last_cursor = int(cursor_row[0] or 0)
        self._recount(conn)

    async def close(self) -> None:
        """Commit what is queued, then close the database."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
        self._new_events.set()  # wait_events callers learn that the store closed
        loop = asyncio.get_running_loop()
        if self._conn is not None:
            await loop.run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)
        if self._lock is not None:
            self._lock.release()

    @property
    def health(self) -> StoreHealth:
        """Whether the store can write now, and if not why.

        Unhealthy after a write failed for the disk's sake (full, I/O error) until a write
        succeeds again; for good once the file is found damaged, or the writer stopped.
        """
        return self._health

    async def probe(self) -> None:
        """A round trip through the writer (an empty transaction): returns once the writer
        took it; raises as any operation would."""
        await self._call(_nothing)

    def add_failure_callback(self, callback: Callable[[BaseException], None]) -> None:
        """Call ``callback(error)`` if the writer stops for any reason but :meth:`close` (the
        store is then unusable: the daemon must stop)."""
        self._on_failure.append(callback)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        if self._closed and not task.cancelled() and task.exception() is None:
            return
        error: BaseException = (
            StoreError("the store's writer was cancelled")
            if task.cancelled()
            else task.exception() or StoreError("the store's writer stopped")
        )
        self._health = StoreHealth(healthy=False, reason=f"the store's writer stopped: {error}")
        self._closed = True
        closed = StoreClosedError(f"the store's writer stopped: {error}")
        for op in self._queue:
            if not op.future.done():
                op.future.set_exception(closed)
        self._queue.clear()
        self._room.set()
        self._new_events.set()
        for callback in self._on_failure:
            callback(error)

    # --- the writer -------------------------------------------------------------------------

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        while len(self._queue) >= self._settings.max_queue and not self._closed:
            await self._room.wait()  # bounded: the writer sets it when it takes a batch
        if self._closed:
            raise StoreClosedError("the store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Op(fn, future))
        if len(self._queue) >= self._settings.max_queue:
            self._room.clear()
        self._wake.set()
        return await future

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self._settings.max_batch]
                del self._queue[: len(batch)]
                self._room.set()
                try:
                    await self._commit(batch)
                except Exception as exc:  # noqa: BLE001 - the writer outlives any one batch
                    self._fail_batch(batch, store_error(exc, "store commit failed"))
                if self._shrink_wal:
                    self._shrink_wal = False
                    await asyncio.get_running_loop().run_in_executor(
                        self._executor, self._checkpoint
                    )
            if self._closed and not self._queue:
                return

    def _fail_batch(self, batch: Sequence[_Op], error: StoreError) -> None:
        if isinstance(error, StorageFullError):
            self._shrink_wal = True
        self._mark_unhealthy(error)
        self._failure_log.error("%s (%d operations failed)", error, len(batch))
        for op in batch:
            if not op.future.done():
                op.future.set_exception(error)

    def _mark_unhealthy(self, error: StoreError) -> None:
        if isinstance(error, StoreCorruptError):
            self._damaged = True
        if self._damaged:
            reason = "the database is damaged (restore it from a backup or repair it)"
            self._health = StoreHealth(healthy=False, reason=reason)
        else:
            self._health = StoreHealth(healthy=False, reason=str(error))

    async def _commit(self, batch: list[_Op]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        conn = self._conn
        assert conn is not None
        changes = conn.total_changes
        self._batch_unwritable = False
        try:
            # The statements run here, on the loop's thread: each takes microseconds, and on a
            # worker thread they would contend with the loop for the GIL at every call. Only
            # COMMIT, which may wait for the disk, goes to the store thread.
            results = self._run_ops(batch)
            await loop.run_in_executor(self._executor, self._commit_now)
        except (sqlite3.Error, OSError) as exc:
            self._fail_batch(batch, store_error(exc, "store commit failed"))
            return
        try:
            self._observer.store_commit(time.perf_counter() - started, len(batch))
        except Exception:  # noqa: BLE001 - metrics must not undo a commit's answers
            self._failure_log.error("store: the observer failed", exc_info=True)
        if (
            not self._health.healthy
            and not self._damaged
            and not self._batch_unwritable
            and conn.total_changes != changes
        ):
            self._health = HEALTHY  # a write went through: the disk has room again
            self._failure_log.recovered("store: writes succeed again")
        for op, (ok, value) in zip(batch, results, strict=True):
            if op.future.done():  # the caller was cancelled; the effect stands
                continue
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(value)
        if self._batch_cursor > self._last_cursor:
            self._last_cursor = self._batch_cursor
            self._new_events.set()
            self._new_events = asyncio.Event()

    def _run_ops(self, batch: Sequence[_Op]) -> list[tuple[bool, Any]]:
        """Run ``batch`` in one open transaction, on the loop's thread; :meth:`_commit_now`
        commits it.

        Fast path: every operation straight in the transaction. If one raises, the whole
        transaction is rolled back and the batch runs again with each operation inside its
        own SAVEPOINT, so the failure is that operation's alone. Operations only touch the
        database (their inputs are computed before they are queued), so running one twice
        is safe.
        """
        conn = self._conn
        assert conn is not None
        self._batch_cursor = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            try:
                return [(True, op.fn(conn)) for op in batch]
            except Exception:  # noqa: BLE001 - the slow path finds which one and why
                if conn.in_transaction:  # SQLite may have rolled it back (a full disk)
                    conn.execute("ROLLBACK")
                self._batch_cursor = 0  # those events were rolled back
                results = self._run_slow(conn, batch)
                self._recount(conn)  # counts changed by operations that were rolled back
                self._batch_cursor = int(
                    conn.execute("SELECT max(cursor) FROM events").fetchone()[0] or 0
                )
                return results
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._recount(conn)
            self._batch_cursor = 0
            raise

    def _run_slow(self, conn: sqlite3.Connection, batch: Sequence[_Op]) -> list[tuple[bool, Any]]:
        """Each operation in its own SAVEPOINT. On a full disk SQLite may cancel the whole
        transaction, not just the statement: that operation fails and the batch starts over
        without it (at most ``_RESTARTS`` times; then the whole batch fails)."""
        failed: dict[int, tuple[bool, Any]] = {}
        for _ in range(_RESTARTS + 1):
            conn.execute("BEGIN IMMEDIATE")
            results: list[tuple[bool, Any]] = []
            for index, op in enumerate(batch):
                if index in failed:
                    results.append(failed[index])
                    continue
                outcome = self._run_isolated(conn, op)
                if not conn.in_transaction:
                    failed[index] = outcome  # it took the others down with it
                    break
                results.append(outcome)
            else:
                return results
        raise StorageFullError("store: the disk is full (every write of a batch failed)")

    def _commit_now(self) -> None:
        """Commit (on the store thread: it may fsync)."""
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
                self._recount(conn)
            self._batch_cursor = 0
            raise

    def _checkpoint(self) -> None:
        """After a full disk: copy the WAL into the database and cut the WAL file to nothing,
        so the space it held goes back to the disk (best effort: it may fail for want of
        room too, and is tried again after the next failure)."""
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            logger.debug("store: checkpoint after a full disk failed: %s", exc)

    def _recount(self, conn: sqlite3.Connection) -> None:
        self._unmatched_rows = int(conn.execute("SELECT count(*) FROM unmatched").fetchone()[0])

    def _run_isolated(self, conn: sqlite3.Connection, op: _Op) -> tuple[bool, Any]:
        conn.execute("SAVEPOINT op")
        try:
            value = op.fn(conn)
        except Exception as exc:  # noqa: BLE001 - handed to the caller, the batch goes on
            if conn.in_transaction:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            error = _as_store_error(exc)
            if isinstance(error, StorageFullError | StoreCorruptError):
                self._batch_unwritable = True
                self._shrink_wal = isinstance(error, StorageFullError)
                self._mark_unhealthy(error)
                self._failure_log.error("%s", error)
            return False, error
        conn.execute("RELEASE op")
        return True, value

    def _new_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):012x}"

    # --- intake -----------------------------------------------------------------------------

    async def add_messages(self, requests: Sequence[SubmitRequest]) -> list[SubmitResult]:
        """Store new messages as ``queued`` (one commit for all).

        A request whose ``custom`` is already stored (or repeated within ``requests``) is not
        stored again: its result carries the first message's id and ``duplicate=True``.
        """
        now = self._clock()
        rows = [(self._new_id(), r, _msgpack.encode(r)) for r in requests]

        def op(conn: sqlite3.Connection) -> list[SubmitResult]:
            if all(request.custom is None for _, request, _ in rows):
                conn.executemany(_INSERT_MESSAGE, [_message_row(*row, now) for row in rows])
                return [SubmitResult(message_id, request.parts) for message_id, request, _ in rows]
            results: list[SubmitResult] = []
            for message_id, request, blob in rows:
                if request.custom is not None:
                    found = conn.execute(
                        "SELECT id, parts FROM messages WHERE custom = ?", (request.custom,)
                    ).fetchone()
                    if found is not None:
                        results.append(SubmitResult(found[0], found[1], duplicate=True))
                        continue
                conn.execute(_INSERT_MESSAGE, _message_row(message_id, request, blob, now))
                results.append(SubmitResult(message_id, request.parts))
            return results

        return await self._call(op)

    # --- the queue --------------------------------------------------------------------------

    async def requeue_claimed(self) -> int:
        """Put every claimed (``submitting``) message back in the queue; at start only.

        Only those with a part that may have been written to an SMSC (marked by
        :meth:`mark_sending` before it left) whose acceptance was not recorded are flagged
        ``possible_duplicate``: that part is sent again. A message claimed but still waiting
        for a bind when the process died went nowhere and is not flagged.
        """

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(_REQUEUE_CLAIMED, (self._clock(),))
            return cur.rowcount

        return await self._call(op)

    async def claim(self, limit: int) -> list[ClaimedMessage]:
        """Take up to ``limit`` due queued messages, highest priority then oldest first."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> list[ClaimedMessage]:
            # One statement claims the batch; RETURNING gives no order, so sort after.
            rows = conn.execute(
                "UPDATE messages SET state = 'submitting', claims = claims + 1 WHERE seq IN"
                " (SELECT seq FROM messages WHERE state = 'queued' AND due_at <= ?"
                " ORDER BY priority DESC, seq LIMIT ?)"
                " RETURNING priority, seq, id, request, parts, claims, created_at",
                (now, limit),
            ).fetchall()
            rows.sort(key=lambda r: (-r[0], r[1]))
            claimed = []
            for _priority, _seq, message_id, blob, parts, claims, created_at in rows:
                accepted = (
                    frozenset(
                        r[0]
                        for r in conn.execute(
                            "SELECT part FROM parts WHERE message_id = ? AND smsc_id IS NOT NULL",
                            (message_id,),
                        )
                    )
                    if claims > 1  # claimed before: some parts may have been accepted already
                    else frozenset()
                )
                claimed.append(
                    ClaimedMessage(
                        id=message_id,
                        request=_request_decoder.decode(blob),
                        parts=parts,
                        accepted=accepted,
                        claims=claims,
                        created_at=created_at,
                    )
                )
            return claimed

        return await self._call(op)

    async def next_due(self) -> float | None:
        """The earliest ``due_at`` of a queued message, or None when the queue is empty."""

        def op(conn: sqlite3.Connection) -> float | None:
            row = conn.execute("SELECT min(due_at) FROM messages WHERE state = 'queued'").fetchone()
            return None if row[0] is None else float(row[0])

        return await self._call(op)

    async def release(self, message_id: str, delay: float = 0.0) -> None:
        """Give a claimed message back to the queue (the bind manager stopped before it was
        sent); it is due again after ``delay`` seconds."""
        due = self._clock() + delay

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE messages SET state = 'queued', due_at = ?, sending = 0 WHERE id = ?"
                " AND state = 'submitting'",
                (due, message_id),
            )

        await self._call(op)

    async def requeue(self, message_id: str, delay: float) -> None:
        """Give a claimed message whose sending failed unexpectedly back to the queue, due
        after ``delay`` seconds: flagged ``possible_duplicate`` as after a crash (only if a
        part may be on the wire unrecorded), its recorded parts not sent again."""
        due = self._clock() + delay

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(_REQUEUE_CLAIMED + " AND id = ?", (due, message_id))

        await self._call(op)

    async def mark_sending(self, message_id: str) -> None:
        """Record that a part of a claimed message is about to be written to an SMSC; returns
        once that is durable. After a crash only such messages are flagged
        ``possible_duplicate`` (see :meth:`requeue_claimed`).

        The marks of every message that asks before the writer's next batch go in one
        statement of that batch: a burst of sends costs one operation, not one each.
        """
        self._sending.append(message_id)
        if self._sending_op is None:
            self._sending_op = asyncio.ensure_future(self._call(self._mark_sending_op()))
            self._sending_op.add_done_callback(self._sending_done)
        await asyncio.shield(self._sending_op)

    def _sending_done(self, future: asyncio.Future[None]) -> None:
        if (
            not future.cancelled()
            and future.exception() is not None
            and (self._sending_op is future)
        ):
            # Never queued (the store closed): its callers have the error; start afresh.
            self._sending_op = None
            self._sending = []

    def _mark_sending_op(self) -> Callable[[sqlite3.Connection], None]:
        taken: list[list[tuple[str]]] = []

        def op(conn: sqlite3.Connection) -> None:
            if not taken:  # the first run takes the ids; a rerun (slow path) uses the same
                taken.append([(i,) for i in self._sending])
                self._sending = []
                self._sending_op = None  # later callers go in the next batch
            conn.executemany("UPDATE messages SET sending = 1 WHERE id = ?", taken[0])

        return op

    async def finish_submit(
        self,
        message_id: str,
        state: DeliveryState,
        *,
        err: str | None = None,
        reason: str | None = None,
        possible_duplicate: bool = False,
        accepted: tuple[DeliveryState, str | None] | None = None,
    ) -> int | None:
        """Record the outcome of submitting every part and write its event.

        ``state`` is SUBMITTED (every part accepted, receipts awaited), SENT (every part
        accepted, no receipt asked for: final), FAILED or UNKNOWN. Nothing changes if receipts
        already made the message final (a receipt may beat the last response). An UNKNOWN
        message whose parts all turn out accepted (a late response registered the one that
        timed out) takes the state and reason of ``accepted`` instead, when given.

        Returns:
            The event's cursor, or None when nothing changed.
        """
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int | None:
            final, why = state, reason
            if (
                state is DeliveryState.UNKNOWN
                and accepted is not None
                and _all_accepted(conn, message_id)
            ):
                final, why = accepted
            row = conn.execute(
                _FINISH_SUBMIT,
                (
                    final.value,
                    final.value.upper(),
                    err,
                    why,
                    now,
                    now if final.is_final else None,
                    possible_duplicate,
                    message_id,
                ),
            ).fetchone()
            if row is None:
                conn.execute(
                    "UPDATE messages SET sent_at = coalesce(sent_at, ?) WHERE id = ?",
                    (now, message_id),
                )
                return None
            return self._append_payload_event(conn, _payload(conn, row), now)

        return await self._call(op)

    async def resolve_unknown(
        self, message_id: str, state: DeliveryState, reason: str | None
    ) -> int | None:
        """An ``unknown`` message whose parts all turn out accepted (a late response registered
        the one that timed out) takes ``state`` and ``reason``, with its event.

        Returns:
            The event's cursor, or None when nothing changed (not unknown, or a part still
            without an SMSC id).
        """
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int | None:
            if not _all_accepted(conn, message_id):
                return None
            row = conn.execute(
                _RESOLVE_UNKNOWN, (state.value, state.value.upper(), reason, now, message_id)
            ).fetchone()
            if row is None:
                return None
            return self._append_payload_event(conn, _payload(conn, row), now)

        return await self._call(op)

    async def apply_receipt(
        self,
        message_id: str,
        state: DeliveryState,
        result: Outcome | None,
        parts: tuple[PartPayload, ...] | None = None,
        *,
        via: str | None = None,
    ) -> int | None:
        """Apply a message's aggregated state after a receipt (see :func:`correlate.aggregate`).

        A final state is recorded once (later receipts do not change a final message) with
        the status, err and reason of ``result`` (:func:`correlate.outcome`: the parts' roll-up);
        a non-final one changes nothing. ``parts``, when the caller knows them (a one-part
        message and its receipt), spares reading them back. ``via`` goes into the event as is
        (``"query_sm"`` when the state came from a query_sm answer, not a receipt).

        Returns:
            The event's cursor, or None when nothing changed.
        """
        if not state.is_final or result is None:
            return None
        now = self._clock()
        values = (state.value, result.status, result.err, result.reason, now, now, message_id)

        def op(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(_APPLY_RECEIPT, values).fetchone()
            if row is None:
                return None
            payload = _payload(conn, row, parts)
            if via is not None:
                payload = msgspec.structs.replace(payload, via=via)
            return self._append_payload_event(conn, payload, now)

        return await self._call(op)

    # --- correlation (smppgw.gateway.correlate.CorrelationStore) -----------------------------

    async def add_part(self, entry: PartEntry) -> None:
        """Record a part the SMSC accepted (no receipt matching: see :meth:`register_part`)."""
        row = _part_row(entry)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT_PART, row)

        await self._call(op)

    async def register_part(
        self, entry: PartEntry, keys: Sequence[str], *, keep_previous: bool = False
    ) -> list[tuple[Dlr, tuple[Dlr | None, ...]]]:
        """Record an accepted part and match the receipts that came before it (one step).

        With ``keep_previous`` an earlier id of the part stays matchable, in ``part_aliases``.
        """
        row = _part_row(entry)
        keys = tuple(dict.fromkeys(keys))
        key = normalize_message_id(entry.smsc_id)

        def op(conn: sqlite3.Connection) -> list[tuple[Dlr, tuple[Dlr | None, ...]]]:
            if keep_previous:
                _keep_previous_id(conn, entry, key)
            conn.execute(_UPSERT_PART, row)
            if not self._unmatched_rows:
                return []
            taken = _take_unmatched(conn, keys)
            self._unmatched_rows -= len(taken)
            return [(dlr, _record_dlr(conn, entry, dlr)) for dlr in taken]

        return await self._call(op)

    async def match_dlr(
        self, keys: Sequence[str], dlr: Dlr, now: float, unmatched_expires: float
    ) -> tuple[PartEntry, tuple[Dlr | None, ...]] | None:
        """Record a receipt for its part, or keep it as unmatched (one step)."""
        keys = tuple(keys)

        def op(conn: sqlite3.Connection) -> tuple[PartEntry, tuple[Dlr | None, ...]] | None:
            for key in keys:
                row = conn.execute(
                    "SELECT message_id, part, parts, smsc_id, registered_at, expires_at"
                    " FROM parts WHERE smsc_key = ? AND expires_at > ?"
                    " ORDER BY registered_at DESC LIMIT 1",
                    (key, now),
                ).fetchone()
                if row is not None:
                    entry = PartEntry(*row)
                    return entry, _record_dlr(conn, entry, dlr)
            for key in keys:  # an earlier accepted attempt of a part (see register_part)
                row = conn.execute(
                    "SELECT message_id, part, parts, smsc_id, registered_at, expires_at"
                    " FROM part_aliases WHERE smsc_key = ? AND expires_at > ?",
                    (key, now),
                ).fetchone()
                if row is not None:
                    entry = PartEntry(*row)
                    return entry, _record_dlr(conn, entry, dlr)
            conn.execute(
                "INSERT INTO unmatched (key, dlr, expires_at) VALUES (?, ?, ?)",
                (keys[0], _msgpack.encode(dlr), unmatched_expires),
            )
            self._unmatched_rows += 1
            return None

        return await self._call(op)

    async def unmatched(self, limit: int) -> list[Dlr]:
        """Up to ``limit`` unmatched receipts, oldest first (not removed)."""

        def op(conn: sqlite3.Connection) -> list[Dlr]:
            rows = conn.execute("SELECT dlr FROM unmatched ORDER BY id LIMIT ?", (limit,))
            return [_dlr_decoder.decode(r[0]) for r in rows]

        return await self._call(op)

    async def count_unmatched(self) -> int:
        """How many receipts are held unmatched."""

        def op(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM unmatched").fetchone()[0])

        return await self._call(op)

    async def expire(self, now: float) -> tuple[int, int]:
        """Forget correlation entries and unmatched receipts whose time is up.

        Returns:
            (parts forgotten, unmatched receipts removed). A part's row stays (it is the
            message's history); only its SMSC id stops matching.
        """

        def op(conn: sqlite3.Connection) -> tuple[int, int]:
            parts = conn.execute(
                "UPDATE parts SET smsc_key = NULL WHERE smsc_key IS NOT NULL AND expires_at <= ?",
                (now,),
            ).rowcount
            conn.execute("DELETE FROM part_aliases WHERE expires_at <= ?", (now,))
            unmatched = conn.execute("DELETE FROM unmatched WHERE expires_at <= ?", (now,)).rowcount
            self._unmatched_rows -= unmatched
            return parts, unmatched

        return await self._call(op)

    # --- inbound (MO) -----------------------------------------------------------------------

    async def add_inbound(
        self,
        key: str,
        seqnum: int,
        total: int,
        data: bytes,
        *,
        head: bytes,
        build: InboundBuilder,
    ) -> int | None:
        """Keep one part of an inbound message; when all ``total`` parts are here, write the
        event ``build(head, parts in order, ())`` returns and forget the parts, in the same
        commit. ``head`` is the caller's description of the message (addresses, coding),
        kept with the part for :meth:`expire_inbound`.

        A part received twice (the SMSC resent it) is kept once.

        Returns:
            The event's cursor once the message is complete, else None.
        """
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int | None:
            if total <= 1:
                return self._append_event(conn, build(head, [data], ()), now)
            conn.execute(
                "INSERT OR IGNORE INTO inbound_parts (key, seqnum, total, data, received_at, head)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key, seqnum, total, data, now, head),
            )
            rows = conn.execute(
                "SELECT seqnum, data FROM inbound_parts WHERE key = ? ORDER BY seqnum", (key,)
            ).fetchall()
            if [r[0] for r in rows] != list(range(1, total + 1)):
                return None
            conn.execute("DELETE FROM inbound_parts WHERE key = ?", (key,))
            body = build(head, [r[1] for r in rows], ())
            return self._append_event(conn, body, now)

        return await self._call(op)

    async def expire_inbound(self, older_than: float, build: InboundBuilder) -> int:
        """Give up waiting for the missing parts of inbound messages whose first part came
        before ``older_than``: write the event ``build(head, parts present, missing seqnums)``
        returns for each, and forget their parts.

        Returns:
            How many incomplete messages were written out.
        """
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int:
            keys = [
                r[0]
                for r in conn.execute(
                    "SELECT key FROM inbound_parts GROUP BY key HAVING min(received_at) < ?",
                    (older_than,),
                )
            ]
            for key in keys:
                rows = conn.execute(
                    "SELECT seqnum, total, data, head FROM inbound_parts WHERE key = ?"
                    " ORDER BY seqnum",
                    (key,),
                ).fetchall()
                present = {r[0] for r in rows}
                missing = tuple(n for n in range(1, rows[0][1] + 1) if n not in present)
                head = next((r[3] for r in rows if r[3] is not None), b"")
                body = build(head, [r[2] for r in rows], missing)
                self._append_event(conn, body, now)
                conn.execute("DELETE FROM inbound_parts WHERE key = ?", (key,))
            return len(keys)

        return await self._call(op)

    # --- status and events ------------------------------------------------------------------

    async def status(
        self, *, message_id: str | None = None, custom: str | None = None
    ) -> StatusPayload | None:
        """A message's status by our id or the client's reference."""

        def op(conn: sqlite3.Connection) -> StatusPayload | None:
            if message_id is not None:
                return _status_payload(conn, message_id)
            row = conn.execute("SELECT id FROM messages WHERE custom = ?", (custom,)).fetchone()
            return None if row is None else _status_payload(conn, row[0])

        return await self._call(op)

    async def events_after(self, cursor: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events after ``cursor``, oldest first."""

        def op(conn: sqlite3.Connection) -> list[StoredEvent]:
            rows = conn.execute(
                "SELECT cursor, body FROM events WHERE cursor > ? ORDER BY cursor LIMIT ?",
                (cursor, limit),
            )
            return [StoredEvent(r[0], bytes(r[1])) for r in rows]

        return await self._call(op)

    async def wait_events(self, cursor: int) -> None:
        """Return once an event after ``cursor`` is committed (at once if one is)."""
        while self._last_cursor <= cursor:
            if self._closed:
                raise StoreClosedError("the store is closed")
            await self._new_events.wait()

    async def last_cursor(self) -> int:
        """The cursor of the newest committed event (0 if none)."""
        return self._last_cursor

    # --- webhook (smppgw.gateway.webhook.WebhookStore) --------------------------------------

    async def pending(self, limit: int) -> list[PendingDelivery]:
        """Events awaiting a webhook delivery, earliest due first."""

        def op(conn: sqlite3.Connection) -> list[PendingDelivery]:
            rows = conn.execute(
                "SELECT cursor, body, hook_attempts, hook_due FROM events WHERE hook_state = ?"
                " ORDER BY hook_due, cursor LIMIT ?",
                (_HOOK_PENDING, limit),
            )
            return [PendingDelivery(r[0], bytes(r[1]), r[2], r[3]) for r in rows]

        return await self._call(op)

    async def webhook_backlog(self) -> int:
        """How many events await a webhook delivery (read through the partial index)."""

        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT count(*) FROM events WHERE hook_state = ?", (_HOOK_PENDING,)
            ).fetchone()
            return int(row[0])

        return await self._call(op)

    async def result(
        self,
        cursor: int,
        *,
        delivered: bool,
        attempts: int,
        next_attempt_at: float | None,
        error: str | None,
    ) -> None:
        """Record a webhook attempt's outcome."""
        if delivered:
            state = _HOOK_DONE
        elif next_attempt_at is None:
            state = _HOOK_NONE
        else:
            state = _HOOK_PENDING

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE events SET hook_state = ?, hook_attempts = ?, hook_due = ?,"
                " hook_error = ? WHERE cursor = ?",
                (state, attempts, next_attempt_at, error, cursor),
            )

        await self._call(op)

    # --- housekeeping -----------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        """Messages by state (every state present, zeros included)."""

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            counts = dict.fromkeys(
                ("queued", "submitting", *(s.value for s in DeliveryState if s.is_final)), 0
            )
            counts["submitted"] = 0
            for state, count in conn.execute("SELECT state, count(*) FROM messages GROUP BY state"):
                counts[state] = count
            return counts

        return await self._call(op)

    async def waiting_parts(self) -> list[WaitingPart]:
        """The parts still waiting for a receipt: accepted with an SMSC id still matchable, no
        final receipt, their message submitted with a receipt asked for and not final. Read
        once at start (receipt recovery, :mod:`smppgw.gateway.recovery`).

        Returns:
            (message id, part, SMSC id, registered_at, the message's request) of each.
        """

        def op(conn: sqlite3.Connection) -> list[WaitingPart]:
            rows = conn.execute(
                "SELECT p.message_id, p.part, p.smsc_id, p.registered_at, m.request"
                " FROM messages m JOIN parts p ON p.message_id = m.id"
                " WHERE m.state = 'submitted' AND m.final_at IS NULL AND p.dlr_final = 0"
                " AND p.smsc_key IS NOT NULL AND p.smsc_id != ''"
            )
            return [
                (mid, part, smsc_id, registered_at, _request_decoder.decode(blob))
                for mid, part, smsc_id, registered_at, blob in rows
            ]

        return await self._call(op)

    async def still_waiting(self, message_id: str, part: int) -> bool:
        """Whether a part is still waiting for its receipt (see :meth:`waiting_parts`)."""

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM parts p JOIN messages m ON m.id = p.message_id"
                " WHERE p.message_id = ? AND p.part = ? AND p.dlr_final = 0"
                " AND p.smsc_key IS NOT NULL AND m.state = 'submitted' AND m.final_at IS NULL",
                (message_id, part),
            ).fetchone()
            return row is not None

        return await self._call(op)

    async def expire_waiting(self, older_than: float, reason: str) -> int:
        """End the wait of messages submitted before ``older_than`` whose receipts never came:
        they become final UNKNOWN with ``reason``, each with its event.

        Returns:
            How many messages were ended.
        """
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int:
            rows = conn.execute(_EXPIRE_WAITING, (reason, now, older_than)).fetchall()
            for row in rows:
                self._append_payload_event(conn, _payload(conn, row), now)
            return len(rows)

        return await self._call(op)

    async def prune(self) -> int:
        """Delete final messages (with their parts) and settled events older than the
        retention; stale inbound parts too. Returns the messages deleted."""
        cutoff = self._clock() - self._settings.retention

        def op(conn: sqlite3.Connection) -> int:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM messages WHERE final_at IS NOT NULL AND final_at < ?",
                    (cutoff,),
                )
            ]
            conn.executemany("DELETE FROM parts WHERE message_id = ?", [(i,) for i in ids])
            conn.executemany("DELETE FROM part_aliases WHERE message_id = ?", [(i,) for i in ids])
            conn.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])
            conn.execute(
                "DELETE FROM events WHERE created_at < ? AND hook_state != ?",
                (cutoff, _HOOK_PENDING),
            )
            return len(ids)

        return await self._call(op)

    def _append_payload_event(
        self, conn: sqlite3.Connection, payload: StatusPayload, now: float
    ) -> int:
        return self._append_event(conn, encode_event(StatusEvent(payload)), now)

    def _append_event(self, conn: sqlite3.Connection, body: bytes, now: float) -> int:
        """Append an event (awaiting the webhook if one is configured); the batch remembers
        its cursor, so subscribers are woken after the commit."""
        webhook = self._settings.webhook
        cursor = conn.execute(
            "INSERT INTO events (body, created_at, hook_state, hook_due) VALUES (?, ?, ?, ?)",
            (body, now, _HOOK_PENDING if webhook else _HOOK_NONE, now if webhook else None),
        ).lastrowid
        assert cursor is not None
        self._batch_cursor = max(self._batch_cursor, cursor)
        return cursor


_UPSERT_PART: Final = (
    "INSERT INTO parts (message_id, part, parts, smsc_id, smsc_key, registered_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id, part) DO UPDATE SET"
    " smsc_id = excluded.smsc_id, smsc_key = excluded.smsc_key,"
    " registered_at = excluded.registered_at, expires_at = excluded.expires_at"
)


def _add_column(conn: sqlite3.Connection, table: str, column: str, declaration: str) -> None:
    """Add a column unless the table has it (the schema script may have just created it)."""
    if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _part_row(entry: PartEntry) -> tuple[object, ...]:
    return (
        entry.message_id,
        entry.part,
        entry.parts,
        entry.smsc_id,
        normalize_message_id(entry.smsc_id),
        entry.registered_at,
        entry.expires_at,
    )


def _all_accepted(conn: sqlite3.Connection, message_id: str) -> bool:
    """Whether every part of a message was accepted by an SMSC (has a row with an id)."""
    row = conn.execute(
        "SELECT m.parts, (SELECT count(*) FROM parts p WHERE p.message_id = m.id"
        " AND p.smsc_id IS NOT NULL) FROM messages m WHERE m.id = ?",
        (message_id,),
    ).fetchone()
    return row is not None and row[1] >= row[0]


def _keep_previous_id(conn: sqlite3.Connection, entry: PartEntry, key: str) -> None:
    """Before a part is registered under ``key``: keep the id it was registered under before
    (another accepted attempt) matchable as an alias, and flag the message."""
    prev = conn.execute(
        "SELECT smsc_id, smsc_key, registered_at, expires_at FROM parts"
        " WHERE message_id = ? AND part = ?",
        (entry.message_id, entry.part),
    ).fetchone()
    if prev is None or not prev[1] or prev[1] == key:
        return
    conn.execute(
        "INSERT OR REPLACE INTO part_aliases (smsc_key, message_id, part, parts, smsc_id,"
        " registered_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (prev[1], entry.message_id, entry.part, entry.parts, prev[0], prev[2], prev[3]),
    )
    conn.execute("UPDATE messages SET possible_duplicate = 1 WHERE id = ?", (entry.message_id,))


def _take_unmatched(conn: sqlite3.Connection, keys: Sequence[str]) -> list[Dlr]:
    rows: list[tuple[int, bytes]] = []
    for key in keys:  # one cached statement per key, not a new IN (...) each time
        rows.extend(conn.execute("SELECT id, dlr FROM unmatched WHERE key = ?", (key,)))
    if not rows:
        return []
    rows.sort()
    conn.executemany("DELETE FROM unmatched WHERE id = ?", [(r[0],) for r in rows])
    return [_dlr_decoder.decode(r[1]) for r in rows]


def _record_dlr(conn: sqlite3.Connection, entry: PartEntry, dlr: Dlr) -> tuple[Dlr | None, ...]:
    """Keep ``dlr`` as the part's latest receipt, unless the part already has a final one and
    ``dlr`` is not final (SMSCs reorder receipts); return every part's latest."""
    final = dlr.final
    updated = conn.execute(
        "UPDATE parts SET dlr = ?, dlr_final = ?, dlr_stat = ?, dlr_err = ?"
        " WHERE message_id = ? AND part = ? AND (? OR NOT dlr_final)",
        (
            _msgpack.encode(dlr),
            final,
            dlr.stat,
            dlr.err,
            entry.message_id,
            entry.part,
            final,
        ),
    ).rowcount
    if entry.parts == 1 and updated:
        return (dlr,)
    latest: list[Dlr | None] = [None] * entry.parts
    for part, stored in conn.execute(
        "SELECT part, dlr FROM parts WHERE message_id = ?", (entry.message_id,)
    ):
        if stored is not None and 0 <= part < entry.parts:
            latest[part] = _dlr_decoder.decode(stored)
    return tuple(latest)


def _status_payload(conn: sqlite3.Connection, message_id: str) -> StatusPayload | None:
    row = conn.execute(_SELECT_PAYLOAD, (message_id,)).fetchone()
    return None if row is None else _payload(conn, row)


def _payload(
    conn: sqlite3.Connection,
    row: tuple[Any, ...],
    parts: tuple[PartPayload, ...] | None = None,
) -> StatusPayload:
    """The status payload of a message row (the columns of ``_SELECT_PAYLOAD``); its parts
    are read unless given."""
    mid, mobile, state, status, units, created_at, sent_at, deliv_at, custom, err, reason, dup = row
    delivery = DeliveryState(state) if state != "submitting" else DeliveryState.QUEUED
    return StatusPayload(
        id=mid,
        mobile=mobile,
        status=status,
        state=delivery,
        final=delivery.is_final,
        units=units,
        submit_time=format_time(created_at),
        sent_time=format_time(sent_at),
        deliv_time=format_time(deliv_at),
        custom=custom,
        cid=custom,
        err=err,
        reason=reason,
        possible_duplicate=bool(dup),
        parts=tuple(_part_payloads(conn, mid)) if parts is None else parts,
    )


def _part_payloads(conn: sqlite3.Connection, message_id: str) -> Iterable[PartPayload]:
    for part, smsc_id, stat, err in conn.execute(
        "SELECT part, smsc_id, dlr_stat, dlr_err FROM parts WHERE message_id = ? ORDER BY part",
        (message_id,),
    ):
        yield PartPayload(part=part, smsc_id=smsc_id, status=stat, err=err)


def _as_store_error(exc: Exception) -> Exception:
    if isinstance(exc, SmppError):
        return exc
    return store_error(exc, "store")


def _nothing(_conn: sqlite3.Connection) -> None:
    return None


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
