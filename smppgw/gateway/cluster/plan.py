"""The slot lease planner: pure decisions of one instance from the lease table it has just read.

Each server's ``binds`` slots are leased rows ``(server, slot) -> holder, expires_at``; an
instance's heartbeat row says it is alive until its ``expires_at``. Every heartbeat an instance
renews its own leases, reads the table and asks :func:`plan` what to take and what to give up.
Taking is a conditional write in the database (only a row that is absent or expired), so two
instances racing for one free slot cannot both win: the planner only chooses, the database
arbitrates.

Balance: with ``n`` live instances each aims at ``floor(binds / n)`` or ``ceil(binds / n)``
slots. An instance above the ceiling gives up the excess; while some other instance holds less
than the floor and no slot is free, each instance above the floor gives up one slot per
heartbeat (none while one it gave up is still being handed over); an instance takes free slots
up to the ceiling, or only up to the floor while another is below it (so the slots given up go
to the one short of them, not back to a peer).

Slots being handed over (given up locally, lease kept until the bind is closed and the rate
window has passed) count for no one: the planner neither gives them up again nor counts them
towards their holder's share.

Times are seconds on the database's clock (one clock for every instance's decisions).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Instance", "Lease", "Member", "Plan", "SlotKey", "members", "plan"]

SlotKey = tuple[str, int]
"""(server name, slot index)."""


@dataclass(frozen=True, slots=True)
class Instance:
    """A heartbeat row: ``name`` is alive until ``expires_at``."""

    name: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Lease:
    """A slot lease row: ``holder`` holds ``slot`` of ``server`` until ``expires_at``."""

    server: str
    slot: int
    holder: str
    expires_at: float

    @property
    def key(self) -> SlotKey:
        return (self.server, self.slot)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one instance does this heartbeat.

    Attributes:
        renew: its leases still valid (including those being handed over): extend them.
        take: free slots to try to lease (the database decides; some may be gone).
        release: slots to give up: stop using them, then delete the lease once unbound.
    """

    renew: tuple[SlotKey, ...]
    take: tuple[SlotKey, ...]
    release: tuple[SlotKey, ...]


def plan(
    me: str,
    servers: Mapping[str, int],
    instances: Sequence[Instance],
    leases: Sequence[Lease],
    now: float,
    *,
    handing_over: Collection[SlotKey] = (),
) -> Plan:
    """Decide which slots ``me`` renews, takes and gives up at ``now``.

    Args:
        me: this instance's name (counted live whatever its row says: it is heartbeating).
        servers: each server's slot count (the account's ``binds`` for it).
        instances: the heartbeat rows of the account.
        leases: the lease rows of the account.
        now: the database's time.
        handing_over: slots ``me`` has given up and not yet released.

    Returns:
        The :class:`Plan`; slots appear in ascending order per server.
    """
    live = {i.name for i in instances if i.expires_at > now} | {me}
    renew: list[SlotKey] = []
    take: list[SlotKey] = []
    release: list[SlotKey] = []
    for server, binds in sorted(servers.items()):
        valid = [
            lease
            for lease in leases
            if lease.server == server and 0 <= lease.slot < binds and lease.expires_at > now
        ]
        held = {lease.slot for lease in valid}
        renew.extend(
            (server, lease.slot)
            for lease in sorted(valid, key=lambda x: x.slot)
            if lease.holder == me
        )
        counts = Counter(
            lease.holder
            for lease in valid
            if lease.holder in live and (lease.holder != me or lease.key not in handing_over)
        )
        mine = sorted(
            lease.slot for lease in valid if lease.holder == me and lease.key not in handing_over
        )
        free = [slot for slot in range(binds) if slot not in held]
        low, high = divmod(binds, len(live))
        high = low + (1 if high else 0)
        starving = any(counts[name] < low for name in live if name != me)
        giving = any(name == server for name, _ in handing_over)
        if len(mine) > high:
            release.extend((server, slot) for slot in mine[high:])
        elif starving and not free and len(mine) > low and not giving:
            # One at a time, and none while a slot is on its way: it may be the one needed.
            release.append((server, mine[-1]))
        target = low if starving else high
        take.extend((server, slot) for slot in free[: max(0, target - len(mine))])
    return Plan(tuple(renew), tuple(take), tuple(release))


@dataclass(frozen=True, slots=True)
class Member:
    """A live instance as the lease table shows it: its slots of each server, and the rate
    those slots carry (what ``smppgw top`` shows of the cluster)."""

    instance: str
    slots: Mapping[str, tuple[int, ...]]
    rates: Mapping[str, float]


def members(
    instances: Sequence[Instance],
    leases: Sequence[Lease],
    now: float,
    rate: Callable[[str, tuple[int, ...]], float],
) -> tuple[Member, ...]:
    """The live instances at ``now``, by name, with their unexpired leases.

    Args:
        instances: the heartbeat rows of the account.
        leases: the lease rows of the account.
        now: the database's time.
        rate: the rate of some slots of a server (:func:`smppgw.esme.slots.rate_share`).
    """
    held: dict[str, dict[str, list[int]]] = {
        i.name: {} for i in sorted(instances, key=lambda i: i.name) if i.expires_at > now
    }
    for lease in sorted(leases, key=lambda x: (x.server, x.slot)):
        if lease.expires_at > now and lease.holder in held:
            held[lease.holder].setdefault(lease.server, []).append(lease.slot)
    return tuple(
        Member(
            name,
            {server: tuple(slots) for server, slots in servers.items()},
            {server: rate(server, tuple(slots)) for server, slots in servers.items()},
        )
        for name, servers in held.items()
    )
