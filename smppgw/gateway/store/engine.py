"""The store's group-commit engine: one writer for one SQLite connection.

Every call is an *operation* queued for the writer. The writer takes every queued operation,
runs them in one transaction (each inside its own SAVEPOINT when one of them fails, so one
failing operation does not undo the others), commits once, and only then resolves the callers'
futures. So an ``await`` on any operation returns after its effect is durable (``synchronous =
full``: fsynced; ``normal``: durable against a process crash, not against power loss) and a
burst of N callers costs one fsync, not N.

The statements of a batch run on the event loop's thread (microseconds each: a worker thread
would contend with the loop for the GIL at every call); the COMMIT, which may wait for the disk
(fsync), runs on one dedicated thread (``smppgw-store``) while the loop goes on. The writer is
the connection's only user and never runs two batches at once. The queue of operations is
bounded (``max_queue``); a batch holds at most ``max_batch`` of them. A full disk fails the
operations that found no room, cuts the WAL back, and the store works again in place once
space returns.

The schema and the queries live elsewhere (:mod:`.schema`, and a module per interface).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Self, TypeVar

from smppgw.codec.errors import SmppError
from smppgw.esme.observe import NULL_OBSERVER, Observer
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
from smppgw.gateway.store.lock import InstanceLock
from smppgw.gateway.store.schema import StoreSettings, open_database

__all__ = ["SqliteEngine"]

logger = logging.getLogger("smppgw.gateway.store.sqlite")

T = TypeVar("T")

_RESTARTS: Final = 3  # of a batch whose transaction a full disk cancelled (see _run_slow)


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


class SqliteEngine:
    """The writer and the state every part of the store shares. Create with :meth:`open`.

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
    ) -> Self:
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
        conn, self._lock = open_database(self._settings)
        cursor_row = conn.execute("SELECT max(cursor) FROM events").fetchone()
        self._last_cursor = int(cursor_row[0] or 0)
        self._recount(conn)
        self._conn = conn

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


def _as_store_error(exc: Exception) -> Exception:
    if isinstance(exc, SmppError):
        return exc
    return store_error(exc, "store")


def _nothing(_conn: sqlite3.Connection) -> None:
    return None
