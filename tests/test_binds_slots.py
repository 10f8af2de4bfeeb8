"""The bind manager with a slot source: binds only on held slots, at their share of the rate.

Against the fake SMSC and the virtual clock of test_binds.py; the slot source is scripted.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from test_binds import FakeSmsc, no_inbound, part, settings, vclock
from virtual_time import VirtualClock

from smppgw.esme.binds import BindManager, BindState, ServerSettings
from smppgw.esme.slots import SlotGrant

__all__ = ["vclock"]  # the fixture, used by name


class ScriptedSlots:
    """A slot source whose grants the test sets; records each unbound report."""

    def __init__(self, smsc: FakeSmsc) -> None:
        self.smsc = smsc
        self.grants: dict[str, SlotGrant] = {}
        self.listeners: list[Callable[[], None]] = []
        self.unbound_reports: list[tuple[str, int, bool]] = []  # server, slot, bind closed then
        self.reported = asyncio.Event()

    def grant(self, server: str) -> SlotGrant:
        return self.grants.get(server, SlotGrant(frozenset(), 0.0))

    def subscribe(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)

    def unbound(self, server: str, slot: int) -> None:
        name = f"{server}/trx-{slot}"
        closed = all(s.closed for s in self.smsc.sessions if s.name == name)
        self.unbound_reports.append((server, slot, closed))
        self.reported.set()

    def set(self, server: str, slots: set[int], rate: float) -> None:
        self.grants[server] = SlotGrant(frozenset(slots), rate)
        for listener in self.listeners:
            listener()


async def test_binds_follow_the_slots_held_and_sends_their_share_of_the_rate(
    vclock: VirtualClock,
) -> None:
    smsc = FakeSmsc(vclock)
    servers = (
        ServerSettings("smpp1", "127.0.0.1", 3634, binds=3, rate=30),
        ServerSettings("smpp2", "127.0.0.2", 3634, binds=3, rate=30),
    )
    slots = ScriptedSlots(smsc)
    slots.grants["smpp1"] = SlotGrant(frozenset({0}), 10.0)
    manager = BindManager(
        settings(servers=servers),
        on_inbound=no_inbound,
        session_factory=smsc.connect,
        clock=vclock.time,
        rng=random.Random(7),
        slots=slots,
    )
    async with asyncio.timeout(60):
        await manager.start()
        try:
            await manager.wait_bound(1)
            await asyncio.sleep(5)  # the other binds stay down: their slots are not ours
            assert [s.name for s in smsc.live()] == ["smpp1/trx-0"]
            await asyncio.gather(*(manager.submit([part(f"a{i}")]) for i in range(30)))
            assert {s.server for s in smsc.sent} == {"smpp1"}
            assert smsc.per_second("smpp1") <= 10

            # A slot granted binds at once (no reconnect pause), the rate follows.
            connects = len(smsc.connects)
            granted_at = vclock.now
            slots.set("smpp1", {0, 2}, 20.0)
            await manager.wait_bound(2)
            assert vclock.now - granted_at < 0.1
            assert [name for _, name in smsc.connects[connects:]] == ["smpp1"]
            assert sorted(s.name for s in smsc.live()) == ["smpp1/trx-0", "smpp1/trx-2"]

            # A slot given up: its bind unbinds first, then it is reported unbound.
            slots.set("smpp1", {2}, 10.0)
            async with asyncio.timeout(5):
                while ("smpp1", 0, True) not in slots.unbound_reports:
                    slots.reported.clear()
                    await slots.reported.wait()
            assert ("smpp1", 0, False) not in slots.unbound_reports
            assert [s.name for s in smsc.live()] == ["smpp1/trx-2"]
            states = {s.name: s.state for s in manager.status()}
            assert states["smpp1/trx-0"] is BindState.CLOSED
            assert states["smpp1/trx-2"] is BindState.BOUND
            smsc.sent.clear()
            await asyncio.gather(*(manager.submit([part(f"b{i}")]) for i in range(30)))
            assert {s.bind for s in smsc.sent} == {"smpp1/trx-2"}
            assert smsc.per_second("smpp1") <= 10
        finally:
            await manager.stop(1)


async def test_without_a_slot_source_every_bind_is_kept_at_the_full_rate(
    vclock: VirtualClock,
) -> None:
    smsc = FakeSmsc(vclock)
    servers = (ServerSettings("smpp1", "127.0.0.1", 3634, binds=3, rate=30),)
    manager = BindManager(
        settings(servers=servers),
        on_inbound=no_inbound,
        session_factory=smsc.connect,
        clock=vclock.time,
        rng=random.Random(7),
    )
    async with asyncio.timeout(60):
        await manager.start()
        try:
            await manager.wait_bound(3)
            await asyncio.gather(*(manager.submit([part(f"a{i}")]) for i in range(90)))
            assert 28 <= smsc.per_second("smpp1") <= 30
        finally:
            await manager.stop(1)
