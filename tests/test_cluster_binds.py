"""Two bind managers sharing one account through slot leasers, against the simulator.

The simulator enforces the account as the provider does: 3 binds per server (a fourth is
refused with ESME_RBINDFAIL and counted) and 50 submits per second per server, here checked
over any 1-second window (``rate_window="sliding"``). Each manager binds only on the slots its
leaser holds and sends at their share of the rate, so the account's limits hold in total.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from postgres_helper import Database, fresh_schema
from test_binds_simulator import (
    SERVERS,
    Inbox,
    SteppedClock,
    drive,
    manager_settings,
    sim_settings,
    submit_all,
    until,
)

from smppgw.esme.binds import BindManager, BindState, PartStatus
from smppgw.esme.observe import RecordingObserver
from smppgw.gateway.cluster.leaser import LeaserSettings, ServerLimits, SlotLeaser
from smppgw.testing.simulator import Simulator

RATE = 50
BINDS = 3


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with fresh_schema() as database:
        yield database


def leaser(db: Database, name: str) -> SlotLeaser:
    return SlotLeaser(
        LeaserSettings(
            dsn=db.dsn,
            account="acme",
            servers={server: ServerLimits(BINDS, RATE) for server in SERVERS},
            instance=name,
            schema=db.schema,
            ttl=6.0,
            heartbeat=0.3,
            margin=2.0,
            rate_window=1.0,
            timeout=2.0,
        )
    )


def bound(manager: BindManager, server: str) -> int:
    return sum(1 for s in manager.status() if s.server == server and s.state is BindState.BOUND)


async def test_two_managers_on_one_account_stay_within_its_binds_and_rate(db: Database) -> None:
    count = 150  # per manager: about three seconds at the account's rate
    clock = SteppedClock()
    observer = RecordingObserver()
    most_bound = Counter[str]()
    async with (
        asyncio.timeout(120),
        Simulator(sim_settings(RATE, rate_window="sliding"), clock=clock) as sim,
    ):
        leasers = [leaser(db, "a"), leaser(db, "b")]
        managers = [
            BindManager(
                manager_settings(sim, RATE),
                on_inbound=Inbox().on_inbound,
                observer=observer,
                session_factory=Inbox().connect,
                clock=clock,
                slots=source,
            )
            for source in leasers
        ]

        async def watch_binds() -> None:
            while True:
                for index, server in enumerate(SERVERS):
                    most_bound[server] = max(most_bound[server], sim.bound(index))
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch_binds())
        try:
            await leasers[0].start()
            await managers[0].start()
            await managers[0].wait_bound(2 * BINDS, timeout=10)
            # The second instance joins: the first hands a slot of each server over.
            await leasers[1].start()
            await managers[1].start()
            await until(
                lambda: all(
                    bound(managers[1], server) >= 1
                    and bound(managers[0], server) + bound(managers[1], server) == BINDS
                    for server in SERVERS
                ),
                timeout=30,
            )
            for server in SERVERS:
                shares = sorted(source.grant(server).rate for source in leasers)
                assert shares in ([16, 34], [17, 33])
            sending = asyncio.ensure_future(
                asyncio.gather(*(submit_all(manager, count) for manager in managers))
            )
            await drive(
                clock,
                sending.done,
                lambda: observer.total("token_wait") > sim.stats.received_submits,
            )
            results = await sending
        finally:
            watcher.cancel()
            for manager, source in zip(managers, leasers, strict=True):
                await manager.stop(2)
                await source.stop()
    assert sim.stats.binds_refused == 0
    assert all(most_bound[server] <= BINDS for server in SERVERS), most_bound
    assert [r.status for batch in results for r in batch] == [PartStatus.ACCEPTED] * 2 * count
    assert sim.stats.throttled == 0
    assert observer.total("throttled") == 0
    for server in SERVERS:
        windows = sim.submits_per_second(server)
        assert max(windows) <= RATE, (server, windows)
    # Both instances sent on both servers.
    by_manager = [Counter(r.server for r in batch) for batch in results]
    assert all(counts[server] > 0 for counts in by_manager for server in SERVERS)
