"""PostgreSQL as the store shared by several daemons (cluster mode): :class:`PostgresStore`.

Why asyncpg: it speaks PostgreSQL's binary protocol natively on asyncio (no thread per
connection, no text round trip of every value), prepares and caches statements, ships a
connection pool that replaces broken connections on its own, and exposes LISTEN/NOTIFY as
callbacks; asyncpg-stubs types it for mypy. It is also what the cluster's slot leaser uses.

The store keeps the SQLite store's contracts (:mod:`smppgw.gateway.store.interfaces`) across
instances; what the sharing adds is said where it happens: group commit and the event lock in
:mod:`~smppgw.gateway.store.postgres.writer`, claims and their leases in
:mod:`~smppgw.gateway.store.postgres.queue`, receipts racing their parts on other instances in
:mod:`~smppgw.gateway.store.postgres.correlation`, inbound parts and webhook claims in
:mod:`~smppgw.gateway.store.postgres.events`. Subscribers on every instance are woken by
``NOTIFY <schema>_events`` and, should a notification be lost to a reconnect, by re-reading the
newest cursor every ``poll`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Final

import asyncpg

from smppgw.esme.observe import NULL_OBSERVER, Observer
from smppgw.gateway.store import StoreClosedError, StoreError, StoreHealth
from smppgw.gateway.store.postgres.accept import AcceptOps
from smppgw.gateway.store.postgres.correlation import CorrelationOps
from smppgw.gateway.store.postgres.errors import DATABASE_ERRORS, store_error, unavailable
from smppgw.gateway.store.postgres.events import EventOps
from smppgw.gateway.store.postgres.housekeeping import HousekeepingOps
from smppgw.gateway.store.postgres.queue import REQUEUE_LAPSED, QueueOps
from smppgw.gateway.store.postgres.schema import ensure_schema
from smppgw.gateway.store.postgres.settings import PostgresSettings
from smppgw.gateway.store.postgres.writer import Conn, Tx, Writer

__all__ = ["PostgresStore"]

logger = logging.getLogger(__name__)

_RECONNECT_MAX: Final = 5.0  # seconds between two attempts of the listener to reconnect


class PostgresStore(AcceptOps, QueueOps, CorrelationOps, EventOps, HousekeepingOps):
    """The store on PostgreSQL. Create with :meth:`open`; every method may be awaited from any
    task; several instances (processes, hosts) may open the same schema at once.

    Args:
        settings: where the database is and how to share it.
        observer: gets commit latency and batch sizes.
        clock: wall-clock time (Unix seconds) for timestamps and leases (instances sharing a
            schema need clocks within a small part of ``claim_lease`` of each other: NTP).
    """

    def __init__(
        self,
        settings: PostgresSettings,
        pool: asyncpg.Pool,
        dsn: str,
        *,
        observer: Observer = NULL_OBSERVER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._clock = clock
        self._pool = pool
        self._dsn = dsn
        self._writer = Writer(
            pool=pool,
            schema=settings.schema,
            webhook=settings.webhook,
            max_batch=settings.max_batch,
            max_queue=settings.max_queue,
            observer=observer,
            on_cursor=self._advance,
        )
        self._sending = []
        self._sending_op = None
        self._adding = []
        self._adding_op = None
        self._last_cursor = 0
        self._new_events = asyncio.Event()
        self._on_failure: list[Callable[[BaseException], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._failed: StoreHealth | None = None

    @classmethod
    async def open(
        cls,
        settings: PostgresSettings,
        *,
        observer: Observer = NULL_OBSERVER,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] = os.environ,
    ) -> PostgresStore:
        """Create or migrate the schema, open the pool and start the writer, the heartbeat
        and the listener.

        Raises:
            PostgresSettingsError: the DSN cannot be read from where the settings say.
            StoreUnavailableError: PostgreSQL cannot be reached.
            StoreSchemaError: the schema holds something else, or a newer store.
        """
        dsn = settings.resolve_dsn(environ)
        try:
            conn = await asyncpg.connect(dsn, timeout=settings.timeout)
        except DATABASE_ERRORS as exc:
            raise unavailable(exc, "cannot open the store") from exc
        try:
            await ensure_schema(conn, settings.schema)
            last = int(
                await conn.fetchval(
                    f"SELECT coalesce(max(cursor), 0) FROM {settings.schema}.events"
                )
            )
        except DATABASE_ERRORS as exc:
            raise store_error(exc, "cannot open the store") from exc
        finally:
            with contextlib.suppress(*DATABASE_ERRORS):
                await conn.close()
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=settings.pool_size,
                timeout=settings.timeout,
                command_timeout=settings.timeout,
                server_settings={
                    "search_path": settings.schema,
                    "application_name": settings.application_name,
                },
            )
        except DATABASE_ERRORS as exc:
            raise unavailable(exc, "cannot open the store") from exc
        store = cls(settings, pool, dsn, observer=observer, clock=clock)
        store._last_cursor = last
        writer = store._writer.start()
        writer.add_done_callback(store._writer_done)
        try:
            await store.heartbeat()
        except BaseException:
            await store.close()
            raise
        store._tasks = [
            asyncio.create_task(store._heartbeat_loop(), name="smppgw-store-heartbeat"),
            asyncio.create_task(store._listen_loop(), name="smppgw-store-listener"),
        ]
        return store

    # --- life cycle -------------------------------------------------------------------------

    @property
    def health(self) -> StoreHealth:
        """Whether the store can write now: unhealthy while PostgreSQL cannot be reached
        (healthy again once a write or read goes through), for good if the writer stopped."""
        return self._failed or self._writer.health

    async def probe(self) -> None:
        """A round trip through the writer; raises as any operation would."""

        async def op(tx: Tx) -> None:
            await tx.conn.execute("SELECT 1")

        await self._writer.call(op)

    def add_failure_callback(self, callback: Callable[[BaseException], None]) -> None:
        """Call ``callback(error)`` if the writer stops for any reason but :meth:`close`
        (PostgreSQL being away is no such reason: the store waits for it)."""
        self._on_failure.append(callback)

    async def close(self) -> None:
        """Commit what is queued, give up this instance's lease (its claims left go to the
        others at once), then close the connections."""
        if self._closed:
            return
        self._closed = True
        await self._writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._wake_subscribers()
        with contextlib.suppress(*DATABASE_ERRORS):
            await self._pool.execute(
                "UPDATE instances SET expires_at = 0 WHERE id = $1", self._instance
            )
        try:
            await asyncio.wait_for(self._pool.close(), self._settings.timeout)
        except TimeoutError:
            self._pool.terminate()

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        if self._closed and not task.cancelled() and task.exception() is None:
            return
        error: BaseException = (
            StoreError("the store's writer was cancelled")
            if task.cancelled()
            else task.exception() or StoreError("the store's writer stopped")
        )
        self._failed = StoreHealth(healthy=False, reason=f"the store's writer stopped: {error}")
        self._closed = True
        self._writer.abandon(StoreClosedError(f"the store's writer stopped: {error}"))
        self._wake_subscribers()
        for callback in self._on_failure:
            callback(error)

    # --- the instance's lease ---------------------------------------------------------------

    async def heartbeat(self) -> int:
        """Renew this instance's lease (``claim_lease`` from now) and put back in the queue
        the messages claimed by instances whose lease lapsed (see
        :meth:`~smppgw.gateway.store.postgres.queue.QueueOps.requeue_claimed`). Runs every
        third of the lease by itself.

        Returns:
            How many messages of lapsed instances went back to the queue.
        """
        now = self._clock()
        expires = now + self._settings.claim_lease

        async def op(tx: Tx) -> int:
            await tx.conn.execute(
                "INSERT INTO instances (id, expires_at) VALUES ($1, $2)"
                " ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at",
                self._instance,
                expires,
            )
            status = await tx.conn.execute(REQUEUE_LAPSED, now, self._instance)
            return int(status.rpartition(" ")[2])

        taken = await self._writer.call(op)
        if taken:
            logger.warning(
                "store: %d messages of instances whose lease lapsed went back to the queue", taken
            )
        return taken

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat)
            try:
                await self.heartbeat()
            except StoreClosedError:
                return
            except StoreError as exc:
                logger.debug("store: heartbeat failed: %s", exc)

    # --- events -----------------------------------------------------------------------------

    async def wait_events(self, cursor: int) -> None:
        """Return once an event after ``cursor`` is committed by any instance."""
        while self._last_cursor <= cursor:
            if self._closed:
                raise StoreClosedError("the store is closed")
            await self._new_events.wait()

    async def last_cursor(self) -> int:
        """The cursor of the newest committed event of any instance (0 if none)."""

        async def read(conn: Conn) -> int:
            return int(await conn.fetchval("SELECT coalesce(max(cursor), 0) FROM events"))

        last = await self._writer.read(read)
        self._advance(last)
        return last

    def set_webhook(self, enabled: bool) -> None:
        """Whether events appended from now on await a webhook delivery."""
        self._writer.webhook = enabled

    def _advance(self, cursor: int) -> None:
        if cursor > self._last_cursor:
            self._last_cursor = cursor
            self._wake_subscribers()

    def _wake_subscribers(self) -> None:
        self._new_events.set()
        self._new_events = asyncio.Event()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        with contextlib.suppress(ValueError):
            self._advance(int(str(payload)))

    async def _listen_loop(self) -> None:
        """LISTEN on a connection of its own, reconnecting whenever it is lost; every ``poll``
        seconds the newest cursor is read too (what a lost notification would have said)."""
        delay = 0.1
        schema = self._settings.schema
        while True:
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=self._settings.timeout,
                    server_settings={"application_name": self._settings.application_name},
                )
            except DATABASE_ERRORS as exc:
                logger.debug("store: the listener cannot connect: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX)
                continue
            delay = 0.1
            try:
                await conn.add_listener(f"{schema}_events", self._notified)
                while True:
                    self._advance(
                        int(
                            await conn.fetchval(
                                f"SELECT coalesce(max(cursor), 0) FROM {schema}.events"
                            )
                        )
                    )
                    await asyncio.sleep(self._settings.poll)
            except DATABASE_ERRORS as exc:
                logger.debug("store: the listener lost its connection: %s", exc)
            finally:
                conn.terminate()
