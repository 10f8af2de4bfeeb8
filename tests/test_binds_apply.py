"""BindManager.apply: new settings taken while running, against the simulator over loopback.

A rate change keeps every bind (same sessions, no reconnect) and the simulator sees the new
rate; a server added binds, a server removed unbinds gracefully once its submits in flight are
answered, and no message is lost on the way.
"""

from __future__ import annotations

import asyncio
import dataclasses

from test_binds_simulator import (
    BINDS,
    Inbox,
    manager_settings,
    message,
    running,
    sim_settings,
    submit_all,
    until,
)

from smppgw.esme.binds import BindManager, BindManagerSettings, BindState, PartStatus
from smppgw.esme.observe import RecordingObserver
from smppgw.testing.simulator import Simulator


def with_rate(settings: BindManagerSettings, rate: float) -> BindManagerSettings:
    servers = tuple(dataclasses.replace(s, rate=rate) for s in settings.servers)
    return dataclasses.replace(settings, servers=servers)


def sessions(manager: BindManager) -> list[object]:
    keeper = manager._keeper
    return [b.session for s in keeper._servers for b in s.binds]


async def test_a_lowered_rate_holds_at_the_simulator_without_a_bind_dropping() -> None:
    """The simulator allows 4 submits a second per server; the manager starts at 100/s. After
    apply() lowers it to 4/s, 24 messages go out without one ESME_RTHROTTLED, on the binds
    that were already up (the same sessions, no reconnect, no new bind at the simulator)."""
    async with Simulator(sim_settings(rate=4)) as sim:
        observer = RecordingObserver()
        settings = manager_settings(sim, rate=100)
        async with running(sim, settings, observer=observer) as manager:
            before = sessions(manager)
            binds_accepted = sim.stats.binds_accepted
            manager.apply(with_rate(settings, 4))
            results = await submit_all(manager, 24)
            assert [r.status for r in results] == [PartStatus.ACCEPTED] * 24
            assert sim.stats.throttled == 0
            assert sessions(manager) == before
            assert sim.stats.binds_accepted == binds_accepted
            assert observer.total("reconnect") == 0
            assert [r.rate for r in manager.rates()] == [4, 4]


async def test_a_raised_rate_is_used_at_once_without_a_bind_dropping() -> None:
    """Started at 1/s per server, raised to 200/s: 40 messages no longer take 20 s; the
    simulator sees more than one a second from a server, on the same binds."""
    async with Simulator(sim_settings()) as sim:
        observer = RecordingObserver()
        settings = manager_settings(sim, rate=1)
        async with running(sim, settings, observer=observer) as manager:
            before = sessions(manager)
            await submit_all(manager, 2)  # each bucket has a schedule to keep
            manager.apply(with_rate(settings, 200))
            async with asyncio.timeout(15):
                results = await submit_all(manager, 40)
            assert all(r.status is PartStatus.ACCEPTED for r in results)
            busiest = max(max(c.values()) for c in sim.stats.per_second.values())
            assert busiest > 2
            assert sessions(manager) == before
            assert observer.total("reconnect") == 0


async def test_a_server_added_binds_and_takes_traffic() -> None:
    async with Simulator(sim_settings()) as sim:
        settings = manager_settings(sim)
        first = dataclasses.replace(settings, servers=settings.servers[:1])
        async with running(sim, first) as manager:
            before = sessions(manager)
            manager.apply(settings)
            await manager.wait_bound(2 * BINDS, timeout=5)
            assert sessions(manager)[:BINDS] == before
            results = await submit_all(manager, 30)
            assert all(r.status is PartStatus.ACCEPTED for r in results)
            assert {r.server for r in results} == {"smpp1", "smpp2"}


async def test_a_server_removed_unbinds_after_its_submits_in_flight_are_answered() -> None:
    """smpp2 is removed while 30 messages are being sent at 10/s per server: each of them is
    answered (none lost, none failed), smpp2's binds unbind (unbinding, then closed; never
    backoff, no reconnect), and what follows goes to smpp1 only."""
    async with Simulator(sim_settings()) as sim:
        observer = RecordingObserver()
        inbox = Inbox()
        settings = manager_settings(sim, rate=10)
        async with running(sim, settings, observer=observer, inbox=inbox) as manager:
            sending = asyncio.ensure_future(submit_all(manager, 30))
            await until(lambda: sim.stats.received_submits >= 6)
            manager.apply(dataclasses.replace(settings, servers=settings.servers[:1]))
            results = await sending
            assert [r.status for r in results] == [PartStatus.ACCEPTED] * 30
            assert len({r.smsc_message_id for r in results}) == 30
            assert sim.stats.accepted == 30
            gone = [f"smpp2/trx-{i}" for i in range(BINDS)]
            await until(lambda: all(observer.bind_states.get(b) == "closed" for b in gone))
            for bind in gone:
                assert observer.counts[("bind_state", ("smpp2", bind, "unbinding"))] == 1
                assert observer.counts[("bind_state", ("smpp2", bind, "backoff"))] == 0
            assert observer.total("reconnect") == 0
            assert [s.server for s in manager.status()] == ["smpp1"] * BINDS
            assert all(s.state is BindState.BOUND for s in manager.status())
            after = await asyncio.gather(*(manager.submit([message(n)]) for n in range(10)))
            assert {r[0].server for r in after} == {"smpp1"}


async def test_a_paused_server_relinked_by_new_settings_stays_paused() -> None:
    """An operator paused smpp1; new settings give it one bind fewer, so its binds are
    replaced: the new ones send nothing either until it is resumed."""
    async with Simulator(sim_settings()) as sim:
        settings = manager_settings(sim)
        async with running(sim, settings) as manager:
            assert manager.pause_sending("smpp1") == ("smpp1",)
            first, second = settings.servers
            fewer = dataclasses.replace(first, binds=first.binds - 1)
            manager.apply(dataclasses.replace(settings, servers=(fewer, second)))
            assert manager.paused_servers() == ("smpp1",)
            results = await submit_all(manager, 10)
            assert {r.server for r in results} == {"smpp2"}
