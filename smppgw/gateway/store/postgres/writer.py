"""Group commit on PostgreSQL: every write of the store is an operation queued for one writer.

The writer takes every queued operation, runs them in one transaction on one pooled
connection and commits once; only then are the callers' futures resolved, so an awaited write
is committed (an acknowledged commit survives, as PostgreSQL's ``synchronous_commit`` says) and
a burst of N callers costs one commit, not N. Reads do not queue: they go straight to the pool.

Failures:

- An operation that raises an ordinary database error fails alone: the batch runs again with
  each operation inside its own savepoint (operations only touch the database, so running one
  twice is safe).
- A deadlock or serialization failure (two instances writing the same rows) runs the whole
  batch again, a few times.
- A connection lost before COMMIT was sent runs the batch again once on a fresh connection
  (nothing was committed); if the database stays away every caller gets
  :class:`~smppgw.gateway.store.postgres.errors.StoreUnavailableError` and the store is
  unhealthy until a batch commits again. A connection lost *during* COMMIT leaves the outcome
  unknown: the callers get the error saying so (a client retrying with its ``custom`` finds
  its message if it was stored).

Events: a batch that may append events takes the schema's event lock first (a
transaction-level advisory lock), so event-writing transactions of every instance commit one
at a time and cursors, drawn from one sequence, grow in commit order; the batch then notifies
``<schema>_events`` with its newest cursor, delivered to every listener on commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import asyncpg

from smppgw.codec.errors import SmppError
from smppgw.esme.observe import Observer
from smppgw.gateway.store import StoreClosedError, StoreError, StoreHealth
from smppgw.gateway.store.health import HEALTHY, LogLimiter
from smppgw.gateway.store.postgres.errors import (
    DATABASE_ERRORS,
    StoreUnavailableError,
    is_connection_error,
    is_retryable,
    store_error,
    unavailable,
)
from smppgw.gateway.store.postgres.schema import Conn, lock_key

__all__ = ["Conn", "Tx", "Writer"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_RETRIES: Final = 4  # runs of a batch that met a deadlock or a lost connection

# events.hook_state
HOOK_PENDING: Final = 0
HOOK_DONE: Final = 1
HOOK_NONE: Final = 2


@dataclass(slots=True)
class Tx:
    """What an operation gets: the batch's connection, and the batch's newest event."""

    conn: Conn
    webhook: bool
    cursor: int = 0

    async def append_event(self, body: bytes, now: float) -> int:
        """Append an event (awaiting the webhook if one is configured); only in an operation
        queued with ``events=True`` (the batch holds the event lock)."""
        webhook = self.webhook
        cursor: int = await self.conn.fetchval(
            "INSERT INTO events (body, created_at, hook_state, hook_due) VALUES ($1, $2, $3, $4)"
            " RETURNING cursor",
            body,
            now,
            HOOK_PENDING if webhook else HOOK_NONE,
            now if webhook else None,
        )
        self.cursor = max(self.cursor, cursor)
        return cursor


Operation = Callable[[Tx], Awaitable[T]]


@dataclass(slots=True)
class _Op:
    fn: Operation[Any]
    future: asyncio.Future[Any]
    events: bool


@dataclass(slots=True)
class _Outcome:
    ok: bool
    value: Any = None


@dataclass(slots=True)
class Writer:
    """The queue of operations and the task committing them in batches.

    ``on_cursor`` is told the newest cursor each committed batch appended.
    """

    pool: asyncpg.Pool
    schema: str
    webhook: bool
    max_batch: int
    max_queue: int
    observer: Observer
    on_cursor: Callable[[int], None]
    health: StoreHealth = HEALTHY
    closed: bool = False
    _queue: list[_Op] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _room: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _log: LogLimiter = field(default_factory=lambda: LogLimiter(logger))

    def start(self) -> asyncio.Task[None]:
        self._room.set()
        self._task = asyncio.create_task(self._loop(), name="smppgw-store-writer")
        return self._task

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self.closed = True
        self._wake.set()
        if self._task is not None:
            await self._task

    def abandon(self, error: StoreError) -> None:
        """The writer stopped for good: fail whatever still waits."""
        self.closed = True
        for op in self._queue:
            if not op.future.done():
                op.future.set_exception(error)
        self._queue.clear()
        self._room.set()

    async def call(self, fn: Operation[T], *, events: bool = False) -> T:
        """Queue ``fn`` for the next batch; returns its result once committed."""
        while len(self._queue) >= self.max_queue and not self.closed:
            await self._room.wait()  # bounded: the writer sets it when it takes a batch
        if self.closed:
            raise StoreClosedError("the store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Op(fn, future, events))
        if len(self._queue) >= self.max_queue:
            self._room.clear()
        self._wake.set()
        return await future

    async def read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` on a pooled connection outside the writer (a read)."""
        if self.closed:
            raise StoreClosedError("the store is closed")
        try:
            async with self._connection() as conn:
                value = await fn(conn)
        except DATABASE_ERRORS as exc:
            error = store_error(exc, "store read failed")
            if isinstance(error, StoreUnavailableError):
                self._unhealthy(error)
            raise error from exc
        self._healthy()
        return value

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        """A pooled connection. Giving it back cannot fail the work done on it: once a batch
        committed, a connection lost while the pool resets it must not run the batch again."""
        conn = await self.pool.acquire()
        try:
            yield conn
        finally:
            try:
                await self.pool.release(conn)
            except DATABASE_ERRORS as exc:  # the pool drops a broken connection itself
                logger.debug("store: a connection failed as it went back to the pool: %s", exc)

    # --- the loop ---------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: len(batch)]
                self._room.set()
                try:
                    await self._commit(batch)
                except Exception as exc:  # noqa: BLE001 - the writer outlives any one batch
                    self._fail(batch, store_error(exc, "store commit failed"))
            if self.closed and not self._queue:
                return

    def _fail(self, batch: Sequence[_Op], error: StoreError) -> None:
        if isinstance(error, StoreUnavailableError):
            self._unhealthy(error)
        self._log.error("%s (%d operations failed)", error, len(batch))
        for op in batch:
            if not op.future.done():
                op.future.set_exception(error)

    def _unhealthy(self, error: StoreError) -> None:
        self.health = StoreHealth(healthy=False, reason=str(error))

    def _healthy(self) -> None:
        if not self.health.healthy:
            self.health = HEALTHY
            self._log.recovered("store: PostgreSQL answers again")

    async def _commit(self, batch: list[_Op]) -> None:
        started = time.perf_counter()
        try:
            results, cursor = await self._run_again(batch)
        except StoreError as exc:
            self._fail(batch, exc)
            return
        self._healthy()
        try:
            self.observer.store_commit(time.perf_counter() - started, len(batch))
        except Exception:  # noqa: BLE001 - metrics must not undo a commit's answers
            self._log.error("store: the observer failed", exc_info=True)
        for op, outcome in zip(batch, results, strict=True):
            if op.future.done():  # the caller was cancelled; the effect stands
                continue
            if outcome.ok:
                op.future.set_result(outcome.value)
            else:
                op.future.set_exception(outcome.value)
        if cursor:
            self.on_cursor(cursor)

    async def _run_again(self, batch: list[_Op]) -> tuple[list[_Outcome], int]:
        """:meth:`_run` until it commits, again after a deadlock or a connection lost before
        the commit (a few times); raises the typed error of the last failure."""
        last: BaseException | None = None
        for _ in range(_RETRIES):
            try:
                return await self._run(batch)
            except _CommitUnknownError as exc:
                raise unavailable(exc.__cause__ or exc, exc.what) from exc
            except DATABASE_ERRORS as exc:
                if not (is_retryable(exc) or is_connection_error(exc)):
                    raise store_error(exc, "store commit failed") from exc
                last = exc
        assert last is not None
        raise store_error(last, "store commit failed") from last

    async def _run(self, batch: Sequence[_Op]) -> tuple[list[_Outcome], int]:
        """One run of ``batch`` in one transaction: (each operation's outcome, the newest
        event cursor appended). Raises what should make the whole batch run again."""
        async with self._connection() as conn:
            tx = Tx(conn, self.webhook)
            transaction = conn.transaction()
            await transaction.start()
            try:
                await self._lock_events(tx, batch)
                try:
                    results = [_Outcome(ok=True, value=await op.fn(tx)) for op in batch]
                except (asyncpg.PostgresError, SmppError) as exc:
                    if is_retryable(exc) or is_connection_error(exc):
                        raise
                    await transaction.rollback()
                    transaction = conn.transaction()
                    await transaction.start()
                    tx.cursor = 0  # those events were rolled back
                    await self._lock_events(tx, batch)
                    results = [await self._isolated(tx, op) for op in batch]
                if tx.cursor:
                    await conn.execute(
                        "SELECT pg_notify($1, $2)", f"{self.schema}_events", str(tx.cursor)
                    )
            except BaseException:
                with contextlib.suppress(Exception):
                    await transaction.rollback()
                raise
            try:
                await transaction.commit()
            except DATABASE_ERRORS as exc:
                if is_retryable(exc):
                    raise
                what = "store commit: the connection was lost while committing, the outcome is"
                raise _CommitUnknownError(what + " unknown") from exc
            return results, tx.cursor

    async def _lock_events(self, tx: Tx, batch: Sequence[_Op]) -> None:
        if any(op.events for op in batch):
            await tx.conn.execute(
                "SELECT pg_advisory_xact_lock($1)", lock_key(self.schema, "events")
            )

    async def _isolated(self, tx: Tx, op: _Op) -> _Outcome:
        cursor = tx.cursor
        try:
            async with tx.conn.transaction():  # a savepoint
                return _Outcome(ok=True, value=await op.fn(tx))
        except asyncpg.PostgresError as exc:
            if is_retryable(exc) or is_connection_error(exc):
                raise
            tx.cursor = cursor
            return _Outcome(ok=False, value=store_error(exc, "store"))
        except SmppError as exc:
            tx.cursor = cursor
            return _Outcome(ok=False, value=exc)


class _CommitUnknownError(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what
