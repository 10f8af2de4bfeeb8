"""Bind slots leased in PostgreSQL: each live instance holds its fair share of every server's binds.

Two tables in the schema ``smppgw_cluster`` (configurable) hold the state:

* ``instances (account, instance, expires_at)``: a heartbeat row per live instance;
* ``slot_leases (account, server, slot, holder, expires_at)``: who holds which bind slot.

Every ``heartbeat`` seconds an instance, in one transaction, extends its heartbeat and its
unexpired leases to ``now() + ttl``, deletes the leases it has finished handing over, reads the
tables and takes the slots :func:`smppgw.gateway.cluster.plan.plan` chooses (an upsert that succeeds
only on an absent or expired row). Expiry is judged on the database's clock only.

Rows rather than advisory locks: a lock held by a connection lapses only when the server notices
the connection dead, which without keepalives can take minutes; a lease lapses at its expiry,
so a dead instance's slots are taken over within ``ttl + heartbeat``.

Self-fencing: an instance that cannot renew gives every slot up locally at ``ttl - margin`` after
it sent its last successful renewal; the lease was written with the database's ``now()``, which
is later than that send, so no other instance can take the slot before the binds are closed and
the last second of sends has left the provider's rate window (``margin`` > ``rate_window``).

Hand-over: a slot given up (to balance, or at stop) leaves the grant first (the bind manager
closes the bind and lowers the rate), and its lease is deleted only after the manager reports it
unbound and ``rate_window`` has passed; the taker raises its rate only after it has the lease.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import asyncpg

from smppgw.codec.errors import SmppError
from smppgw.esme.slots import SlotGrant, rate_share
from smppgw.gateway.cluster.plan import Instance, Lease, Member, SlotKey, members, plan

__all__ = [
    "SCHEMA_VERSION",
    "ClusterError",
    "ClusterSchemaError",
    "ClusterUnavailableError",
    "LeaserSettings",
    "LeaserSettingsError",
    "ServerLimits",
    "SlotLeaser",
    "ensure_schema",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
_IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_DATABASE_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class ClusterError(SmppError):
    """Root of the cluster errors."""


class LeaserSettingsError(ClusterError, ValueError):
    """Lease settings that cannot work; the message names the key."""


class ClusterSchemaError(ClusterError):
    """The database holds a cluster schema of another version than this release's."""


class ClusterUnavailableError(ClusterError):
    """The database could not be reached or answered with an error (the message says which)."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """A server's limits for the account: its bind slots and msg/s (0 = unlimited)."""

    binds: int
    rate: float


def _default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class LeaserSettings:
    """How one instance leases slots.

    Times are seconds. The worst take-over of a dead instance's slots is ``ttl + heartbeat``
    plus one transaction; an instance that cannot renew gives its slots up locally
    ``ttl - margin`` after its last renewal, so ``margin`` must cover the rate window and closing
    the binds (the bind manager closes a bind within a second, then aborts it).
    """

    dsn: str = field(repr=False)
    account: str
    servers: Mapping[str, ServerLimits]
    instance: str = field(default_factory=_default_instance)
    schema: str = "smppgw_cluster"
    ttl: float = 10.0
    heartbeat: float = 2.0
    margin: float = 3.0
    rate_window: float = 1.0
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if not _IDENTIFIER.fullmatch(self.schema):
            raise LeaserSettingsError(
                f"schema must be a lower-case SQL identifier, got {self.schema!r}"
            )
        if not self.account or not self.instance:
            raise LeaserSettingsError("account and instance must not be empty")
        for key in ("ttl", "heartbeat", "margin", "rate_window", "timeout"):
            if not 0 < getattr(self, key) < math.inf:
                raise LeaserSettingsError(f"{key} must be > 0, got {getattr(self, key)}")
        if not self.rate_window < self.margin:
            raise LeaserSettingsError(
                f"margin ({self.margin}) must be more than rate_window ({self.rate_window})"
            )
        if not self.heartbeat < self.ttl - self.margin:
            raise LeaserSettingsError(
                f"heartbeat ({self.heartbeat}) must be less than ttl - margin "
                f"({self.ttl} - {self.margin}): a renewal must come before the local give-up"
            )
        for name, limits in self.servers.items():
            if limits.binds < 0 or not 0 <= limits.rate < math.inf:
                raise LeaserSettingsError(f"server {name!r}: binds and rate must be >= 0")


async def ensure_schema(connection: asyncpg.Connection, schema: str = "smppgw_cluster") -> None:
    """Create the cluster tables if absent (idempotent, safe to race) and check their version.

    Raises:
        LeaserSettingsError: ``schema`` is not a plain lower-case identifier.
        ClusterSchemaError: the schema was written by a release with another version.
    """
    if not _IDENTIFIER.fullmatch(schema):
        raise LeaserSettingsError(f"schema must be a lower-case SQL identifier, got {schema!r}")
    async with connection.transaction():
        # Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog: serialize.
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{schema}.ddl")
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.cluster_meta "
            "(key text PRIMARY KEY, value text NOT NULL)"
        )
        await connection.execute(
            f"INSERT INTO {schema}.cluster_meta VALUES ('schema_version', $1) "
            "ON CONFLICT (key) DO NOTHING",
            str(SCHEMA_VERSION),
        )
        version = await connection.fetchval(
            f"SELECT value FROM {schema}.cluster_meta WHERE key = 'schema_version'"
        )
        if version != str(SCHEMA_VERSION):
            raise ClusterSchemaError(
                f"schema {schema} is at version {version}; this release uses {SCHEMA_VERSION}"
            )
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.instances ("
            " account text NOT NULL, instance text NOT NULL,"
            " expires_at timestamptz NOT NULL, PRIMARY KEY (account, instance))"
        )
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.slot_leases ("
            " account text NOT NULL, server text NOT NULL, slot integer NOT NULL,"
            " holder text NOT NULL, expires_at timestamptz NOT NULL,"
            " PRIMARY KEY (account, server, slot))"
        )


class SlotLeaser:
    """Leases this instance's share of every server's bind slots; a :class:`SlotSource`.

    Args:
        settings: the account, servers and timings.
    """

    def __init__(self, settings: LeaserSettings) -> None:
        self._settings = settings
        self._connection: asyncpg.Connection | None = None
        self._held: frozenset[SlotKey] = frozenset()
        self._handing_over: dict[SlotKey, float] = {}  # slot -> loop time it left the grant
        self._awaiting_unbind: set[SlotKey] = set()
        self._listeners: list[Callable[[], None]] = []
        self._fence: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing_since: float | None = None
        self._fenced = False
        self._members: tuple[Member, ...] = ()

    @property
    def instance(self) -> str:
        """This instance's name in the tables."""
        return self._settings.instance

    @property
    def members(self) -> tuple[Member, ...]:
        """The live instances and their slots as the last heartbeat read them."""
        return self._members

    @property
    def held(self) -> frozenset[SlotKey]:
        """The (server, slot) pairs granted now."""
        return self._held

    @property
    def settings(self) -> LeaserSettings:
        """The account, servers and timings this leaser works with."""
        return self._settings

    # --- SlotSource ---------------------------------------------------------------------------

    def grant(self, server: str) -> SlotGrant:
        """The slots held of ``server`` and their share of its rate."""
        slots = frozenset(slot for name, slot in self._held if name == server)
        limits = self._settings.servers.get(server)
        if limits is None:
            return SlotGrant(frozenset(), 0.0)
        return SlotGrant(slots, rate_share(limits.rate, limits.binds, slots))

    def _rate_of(self, server: str, slots: tuple[int, ...]) -> float:
        limits = self._settings.servers.get(server)
        return 0.0 if limits is None else rate_share(limits.rate, limits.binds, slots)

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a grant changes."""
        self._listeners.append(listener)

    def unbound(self, server: str, slot: int) -> None:
        """The bind on ``(server, slot)`` is closed: its hand-over may complete."""
        self._awaiting_unbind.discard((server, slot))

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the schema if needed, take a first share of slots and heartbeat from then on.

        Raises:
            ClusterUnavailableError: the database cannot be reached or refused a statement.
            ClusterSchemaError: the tables belong to another release.
        """
        try:
            connection = await self._open()
            await ensure_schema(connection, self._settings.schema)
            await self._tick()
        except _DATABASE_ERRORS as exc:
            await self._drop_connection()
            raise ClusterUnavailableError(f"cluster database: {_describe(exc)}") from exc
        self._task = asyncio.create_task(self._run(), name="smppgw-slot-leaser")

    async def stop(self) -> None:
        """Hand every slot over: leave the grants, wait for the unbinds and the rate window
        (bounded by ``timeout``), then delete this instance's leases and heartbeat row."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            await self._drop_connection()  # it may be mid-transaction: a fresh one releases
        loop = asyncio.get_running_loop()
        settings = self._settings
        for key in self._held:
            self._give_up(key, loop.time())
        self._set_held(frozenset())
        deadline = loop.time() + settings.timeout
        while self._awaiting_unbind and loop.time() < deadline:  # noqa: ASYNC110 - bounded
            await asyncio.sleep(0.05)
        if self._handing_over:
            # The last second of sends on those slots leaves the rate window before they go.
            last = max(self._handing_over.values())
            await asyncio.sleep(max(0.0, last + settings.rate_window - loop.time()))
        try:
            connection = await self._open()
            async with asyncio.timeout(settings.timeout), connection.transaction():
                await connection.execute(
                    f"DELETE FROM {settings.schema}.slot_leases WHERE account = $1 AND holder = $2",
                    settings.account,
                    settings.instance,
                )
                await connection.execute(
                    f"DELETE FROM {settings.schema}.instances WHERE account = $1 AND instance = $2",
                    settings.account,
                    settings.instance,
                )
        except _DATABASE_ERRORS as exc:
            logger.warning(
                "slot leases not released (%s): they lapse in %g s", _describe(exc), settings.ttl
            )
        self._handing_over.clear()
        self._cancel_fence()
        await self._drop_connection()

    def abort(self) -> None:
        """Stop at once without releasing anything: the leases lapse at their expiry, as a
        crashed instance's do. The grants empty (nothing here may bind any more)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._cancel_fence()
        if self._connection is not None:
            self._connection.terminate()
            self._connection = None
        self._set_held(frozenset())

    # --- the heartbeat ------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self._tick()
            except _DATABASE_ERRORS as exc:
                await self._drop_connection()
                if self._failing_since is None:
                    self._failing_since = started
                    logger.warning(
                        "cluster database: %s; slots held until %.1f s from now",
                        _describe(exc),
                        max(0.0, self._fence.when() - loop.time()) if self._fence else 0.0,
                    )
            else:
                if self._failing_since is not None:
                    logger.info(
                        "cluster database back after %.1f s", loop.time() - self._failing_since
                    )
                    self._failing_since = None
            await asyncio.sleep(max(0.0, started + self._settings.heartbeat - loop.time()))

    async def _open(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            timeout = self._settings.timeout
            async with asyncio.timeout(timeout):
                self._connection = await asyncpg.connect(
                    self._settings.dsn, timeout=timeout, command_timeout=timeout
                )
        return self._connection

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()

    async def _tick(self) -> None:
        settings = self._settings
        schema, account, me = settings.schema, settings.account, settings.instance
        loop = asyncio.get_running_loop()
        connection = await self._open()
        sent = loop.time()
        done = [
            key
            for key, since in self._handing_over.items()
            if key not in self._awaiting_unbind and sent - since >= settings.rate_window
        ]
        ttl = settings.ttl
        async with asyncio.timeout(settings.timeout), connection.transaction():
            await connection.execute(
                f"INSERT INTO {schema}.instances AS i VALUES ($1, $2, now() + make_interval("
                "secs => $3)) ON CONFLICT (account, instance) DO UPDATE"
                " SET expires_at = excluded.expires_at",
                account,
                me,
                ttl,
            )
            if done:
                await connection.execute(
                    f"DELETE FROM {schema}.slot_leases WHERE account = $1 AND holder = $2"
                    " AND (server, slot) IN (SELECT * FROM unnest($3::text[], $4::int[]))",
                    account,
                    me,
                    [server for server, _ in done],
                    [slot for _, slot in done],
                )
            renewed = await connection.fetch(
                f"UPDATE {schema}.slot_leases SET expires_at = now() + make_interval(secs => $3)"
                " WHERE account = $1 AND holder = $2 AND expires_at > now()"
                " RETURNING server, slot",
                account,
                me,
                ttl,
            )
            now = await connection.fetchval("SELECT extract(epoch FROM now())::float8")
            instances = await connection.fetch(
                "SELECT instance, extract(epoch FROM expires_at)::float8 AS expires_at"
                f" FROM {schema}.instances WHERE account = $1",
                account,
            )
            leases = await connection.fetch(
                "SELECT server, slot, holder, extract(epoch FROM expires_at)::float8 AS expires_at"
                f" FROM {schema}.slot_leases WHERE account = $1",
                account,
            )
            read_instances = [Instance(row["instance"], row["expires_at"]) for row in instances]
            read_leases = [
                Lease(row["server"], row["slot"], row["holder"], row["expires_at"])
                for row in leases
            ]
            decided = plan(
                me,
                {name: limits.binds for name, limits in settings.servers.items()},
                read_instances,
                read_leases,
                now,
                handing_over=self._handing_over.keys(),
            )
            self._members = members(read_instances, read_leases, now, self._rate_of)
            taken: list[SlotKey] = []
            for server, slot in decided.take:
                row = await connection.fetchrow(
                    f"INSERT INTO {schema}.slot_leases AS l VALUES ($1, $2, $3, $4,"
                    " now() + make_interval(secs => $5))"
                    " ON CONFLICT (account, server, slot) DO UPDATE"
                    " SET holder = excluded.holder, expires_at = excluded.expires_at"
                    " WHERE l.expires_at <= now() RETURNING slot",
                    account,
                    server,
                    slot,
                    me,
                    ttl,
                )
                if row is not None:
                    taken.append((server, slot))
            # Heartbeats of instances long gone: kept a while for the record, then dropped.
            await connection.execute(
                f"DELETE FROM {schema}.instances WHERE account = $1"
                " AND expires_at < now() - make_interval(secs => $2)",
                account,
                60 * ttl,
            )
        for key in done:
            self._handing_over.pop(key, None)
        valid = {(row["server"], row["slot"]) for row in renewed} | set(taken)
        for key in list(self._handing_over):
            if key not in valid:  # lapsed meanwhile: nothing left to hand over
                self._handing_over.pop(key)
                self._awaiting_unbind.discard(key)
        now_local = loop.time()
        for key in decided.release:
            if key in valid:
                self._give_up(key, now_local)
        if not self._arm_fence(sent + ttl - settings.margin):
            return
        self._set_held(frozenset(valid - self._handing_over.keys()))

    def _give_up(self, key: SlotKey, now: float) -> None:
        self._handing_over.setdefault(key, now)
        if self._listeners and key in self._held:
            self._awaiting_unbind.add(key)

    def _arm_fence(self, deadline: float) -> bool:
        """Give every slot up locally at ``deadline``; False (and given up now) if it is past."""
        self._cancel_fence()
        loop = asyncio.get_running_loop()
        if deadline <= loop.time():
            self._fence_now()
            return False
        self._fence = loop.call_at(deadline, self._fence_now)
        if self._fenced:
            self._fenced = False
            logger.info("slot leases renewed: binding on held slots again")
        return True

    def _cancel_fence(self) -> None:
        if self._fence is not None:
            self._fence.cancel()
            self._fence = None

    def _fence_now(self) -> None:
        self._fence = None
        if self._held and not self._fenced:
            logger.warning(
                "slot leases not renewed for %g s: giving up every slot before they lapse",
                self._settings.ttl - self._settings.margin,
            )
        self._fenced = True
        self._set_held(frozenset())

    def _set_held(self, held: frozenset[SlotKey]) -> None:
        if held == self._held:
            return
        before = self._held
        self._held = held
        for server in sorted({name for name, _ in before ^ held}):
            grant = self.grant(server)
            if not grant.slots:
                logger.info("slots of server %s: none", server)
                continue
            logger.info(
                "slots of server %s: %s, %s msg/s",
                server,
                sorted(grant.slots),
                f"{grant.rate:g}" if grant.rate else "unlimited",
            )
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                # One listener's fault must not stop the heartbeat (nor the other listeners):
                # the leases would lapse while this instance still believed it held them.
                logger.exception("slot grant listener %r failed", listener)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
