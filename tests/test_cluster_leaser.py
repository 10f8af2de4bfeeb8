"""SlotLeaser on the real PostgreSQL: slots shared by live instances, taken over from dead ones.

Every grant change of every leaser is checked as it happens (all leasers share one event loop,
so a check sees one consistent moment): no slot granted to two instances, never more slots than
``binds`` per server, rate shares summing to at most the server's rate. Timings are short (TTL
3 s, heartbeat 0.2 s); every wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import asyncpg
import pytest
from postgres_helper import Database, FreezableProxy, fresh_schema, target

from smppgw.gateway.cluster.leaser import (
    SCHEMA_VERSION,
    ClusterSchemaError,
    ClusterUnavailableError,
    LeaserSettings,
    LeaserSettingsError,
    ServerLimits,
    SlotLeaser,
    ensure_schema,
)

TTL = 3.0
HEARTBEAT = 0.2
RATE_WINDOW = 0.5
SERVERS = {"smpp1": ServerLimits(binds=3, rate=50), "smpp2": ServerLimits(binds=3, rate=50)}


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with fresh_schema() as database:
        yield database


def settings(db: Database, name: str, dsn: str | None = None) -> LeaserSettings:
    return LeaserSettings(
        dsn=dsn or db.dsn,
        account="acme",
        servers=SERVERS,
        instance=name,
        schema=db.schema,
        ttl=TTL,
        heartbeat=HEARTBEAT,
        margin=1.0,
        rate_window=RATE_WINDOW,
        timeout=1.0,
    )


class Watch:
    """Checks the account's limits at every grant change of any leaser; wakes waiters.

    It stands in for each leaser's bind manager: a slot that leaves a grant is reported unbound
    at once, unless ``slow_unbind`` holds it back.
    """

    def __init__(self) -> None:
        self.leasers: list[SlotLeaser] = []
        self.seen: dict[str, frozenset[tuple[str, int]]] = {}
        self.slow_unbind = False
        self.changed = asyncio.Event()
        self.checks = 0
        self.violations: list[str] = []
        self.left_at: dict[tuple[str, int], float] = {}  # when a slot last left a grant
        self.gaps: list[float] = []  # from a slot leaving one grant to entering another

    def add(self, leaser: SlotLeaser) -> SlotLeaser:
        self.leasers.append(leaser)
        leaser.subscribe(self.check)
        return leaser

    def check(self) -> None:
        self.checks += 1
        now = asyncio.get_running_loop().time()
        for leaser in self.leasers:
            before = self.seen.get(leaser.instance, frozenset())
            gone = before - leaser.held
            for key in gone:
                self.left_at[key] = now
            for key in leaser.held - before:
                if key in self.left_at:
                    self.gaps.append(now - self.left_at[key])
            self.seen[leaser.instance] = leaser.held
            for server, slot in gone if not self.slow_unbind else ():
                leaser.unbound(server, slot)
        owners: dict[tuple[str, int], str] = {}
        for leaser in self.leasers:
            for key in leaser.held:
                if key in owners:
                    self.violations.append(f"{key} held by {owners[key]} and {leaser.instance}")
                owners[key] = leaser.instance
        for server, limits in SERVERS.items():
            held = sum(1 for name, _ in owners if name == server)
            total = sum(leaser.grant(server).rate for leaser in self.leasers)
            if held > limits.binds or total > limits.rate:
                self.violations.append(f"{server}: {held} slots held, {total} msg/s")
        self.changed.set()

    async def until(self, condition: Callable[[], bool], timeout: float = 4 * TTL) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()
        assert self.violations == []


def balanced(leasers: Sequence[SlotLeaser]) -> bool:
    for server, limits in SERVERS.items():
        counts = [len(leaser.grant(server).slots) for leaser in leasers]
        low = limits.binds // len(leasers)
        if sum(counts) != limits.binds or not all(
            low <= c <= -(-limits.binds // len(leasers)) for c in counts
        ):
            return False
    return True


async def test_two_then_three_leasers_share_every_servers_slots_fairly(db: Database) -> None:
    watch = Watch()
    first = watch.add(SlotLeaser(settings(db, "a")))
    await first.start()
    try:
        assert len(first.held) == 6
        assert first.grant("smpp1").rate == 50
        second = watch.add(SlotLeaser(settings(db, "b")))
        await second.start()
        await watch.until(lambda: balanced([first, second]))
        for server in SERVERS:
            rates = sorted(leaser.grant(server).rate for leaser in (first, second))
            assert rates in ([16, 34], [17, 33])
        third = watch.add(SlotLeaser(settings(db, "c")))
        await third.start()
        await watch.until(lambda: balanced([first, second, third]))
        for server in SERVERS:
            assert sorted(leaser.grant(server).rate for leaser in watch.leasers) == [16, 17, 17]
        await third.stop()
        await watch.until(lambda: balanced([first, second]))
    finally:
        for leaser in watch.leasers:
            await leaser.stop()
    assert watch.checks >= 6
    # Every hand-over: the giver's rate was down a whole rate window before the taker's rose.
    assert len(watch.gaps) >= 6
    assert min(watch.gaps) >= RATE_WINDOW


async def test_a_dead_leasers_slots_are_taken_over_after_its_leases_lapse(db: Database) -> None:
    watch = Watch()
    first = watch.add(SlotLeaser(settings(db, "a")))
    second = watch.add(SlotLeaser(settings(db, "b")))
    await first.start()
    await second.start()
    try:
        await watch.until(lambda: balanced([first, second]))
        admin = await asyncpg.connect(db.dsn)
        try:
            first.abort()  # heartbeats stop, the connection is cut, nothing is released
            loop = asyncio.get_running_loop()
            killed = loop.time()
            lapse = await admin.fetchval(
                f"SELECT max(expires_at) FROM {db.schema}.slot_leases WHERE holder = 'a'"
            )
            await watch.until(lambda: len(second.held) == 6)
            took_over = loop.time() - killed
            taken = await admin.fetchval(
                f"SELECT min(expires_at) - make_interval(secs => $1)"
                f" FROM {db.schema}.slot_leases WHERE holder = 'b'",
                TTL,
            )
        finally:
            await admin.close()
        # Taken (on the database's clock) only once the dead holder's leases had lapsed, and
        # within TTL + heartbeat of its last renewal (plus a transaction; the slack is generous
        # so that a loaded machine does not fail it: advisory locks would take minutes).
        assert taken >= lapse
        assert took_over <= TTL + HEARTBEAT + 5.0  # slack for a loaded machine
    finally:
        await second.stop()


async def test_a_leaser_that_loses_the_database_gives_its_slots_up_before_they_lapse(
    db: Database,
) -> None:
    proxy = FreezableProxy(target())
    await proxy.start()
    watch = Watch()
    events: list[str] = []
    lost = watch.add(SlotLeaser(settings(db, "a", dsn=proxy.dsn(db.dsn))))
    other = watch.add(SlotLeaser(settings(db, "b")))

    def record() -> None:
        if not lost.held and "a gave up" not in events:
            events.append("a gave up")
        if len(other.held) > 3 and "b took over" not in events:
            events.append("b took over")

    lost.subscribe(record)
    other.subscribe(record)
    try:
        await lost.start()
        await other.start()
        await watch.until(lambda: balanced([lost, other]))
        events.clear()
        proxy.frozen = True
        await watch.until(lambda: len(other.held) == 6)
        assert events == ["a gave up", "b took over"]
        assert lost.held == frozenset()
        assert lost.grant("smpp1").slots == frozenset()
    finally:
        lost.abort()
        await other.stop()
        await proxy.close()


async def test_a_leaser_that_stops_hands_its_slots_over_without_waiting_for_the_ttl(
    db: Database,
) -> None:
    watch = Watch()
    first = watch.add(SlotLeaser(settings(db, "a")))
    second = watch.add(SlotLeaser(settings(db, "b")))
    await first.start()
    await second.start()
    try:
        await watch.until(lambda: balanced([first, second]))
        await first.stop()
        loop = asyncio.get_running_loop()
        stopped = loop.time()
        await watch.until(lambda: len(second.held) == 6)
        assert loop.time() - stopped < TTL
        admin = await asyncpg.connect(db.dsn)
        try:
            rows = await admin.fetch(
                f"SELECT holder FROM {db.schema}.slot_leases UNION ALL"
                f" SELECT instance FROM {db.schema}.instances"
            )
        finally:
            await admin.close()
        assert "a" not in {row[0] for row in rows}
    finally:
        await second.stop()


async def test_a_slot_being_handed_over_is_released_only_after_the_manager_unbinds_it(
    db: Database,
) -> None:
    """The giver keeps the lease until the bind on the slot is closed: otherwise the taker
    would bind while the giver's bind is still up, one more than the account allows."""
    watch = Watch()
    watch.slow_unbind = True
    first = watch.add(SlotLeaser(settings(db, "a")))
    await first.start()
    try:
        await watch.until(lambda: len(first.held) == 6)
        second = watch.add(SlotLeaser(settings(db, "b")))
        await second.start()
        await watch.until(lambda: len(first.held) < 6)
        given = first._awaiting_unbind.copy()
        assert given, "a slot given up by a manager's source waits for its unbind"
        for _ in range(10):  # many heartbeats: still not released
            await asyncio.sleep(HEARTBEAT)
        assert not second.held & given
        watch.slow_unbind = False
        for server, slot in given:
            first.unbound(server, slot)
        await watch.until(lambda: balanced([first, second]))
        assert second.held >= given
    finally:
        for leaser in watch.leasers:
            await leaser.stop()


async def test_the_schema_is_created_once_and_a_newer_version_is_refused(db: Database) -> None:
    connections = [await asyncpg.connect(db.dsn) for _ in range(3)]
    try:
        await asyncio.gather(*(ensure_schema(c, db.schema) for c in connections))
        await ensure_schema(connections[0], db.schema)
        version = await connections[0].fetchval(
            f"SELECT value FROM {db.schema}.cluster_meta WHERE key = 'schema_version'"
        )
        assert version == str(SCHEMA_VERSION)
        await connections[0].execute(
            f"UPDATE {db.schema}.cluster_meta SET value = '99' WHERE key = 'schema_version'"
        )
        with pytest.raises(ClusterSchemaError, match="version 99"):
            await ensure_schema(connections[1], db.schema)
    finally:
        for connection in connections:
            await connection.close()


async def test_start_names_the_database_it_cannot_reach(db: Database) -> None:
    proxy = FreezableProxy(target())
    await proxy.start()
    proxy.frozen = True
    leaser = SlotLeaser(settings(db, "a", dsn=proxy.dsn(db.dsn)))
    try:
        with pytest.raises(ClusterUnavailableError, match="cluster database: no answer in time"):
            await leaser.start()
        assert leaser.held == frozenset()
    finally:
        await proxy.close()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema": "Bad-Name"}, "schema must be a lower-case SQL identifier"),
        ({"margin": 0.5, "rate_window": 1.0}, "margin"),
        ({"heartbeat": 2.5, "ttl": 5.0, "margin": 3.0}, "heartbeat"),
        ({"ttl": 0}, "ttl must be > 0"),
    ],
)
def test_settings_that_cannot_fence_in_time_are_refused(
    changes: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {"dsn": "postgresql://x", "account": "acme", "servers": SERVERS}
    with pytest.raises(LeaserSettingsError, match=message):
        LeaserSettings(**{**base, **changes})  # type: ignore[arg-type]


async def test_a_failing_listener_neither_fails_the_start_nor_stops_the_heartbeat(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raised used to end the heartbeat task (or the start): the leases then
    lapsed while the instance still granted its slots to the bind manager."""

    def broken() -> None:
        raise RuntimeError("listener bug")

    watch = Watch()
    first = SlotLeaser(settings(db, "a"))
    first.subscribe(broken)
    watch.add(first)
    await first.start()
    try:
        second = watch.add(SlotLeaser(settings(db, "b")))
        await second.start()
        await watch.until(lambda: balanced([first, second]))
    finally:
        for leaser in watch.leasers:
            await leaser.stop()
    assert "listener bug" in caplog.text
