"""The slot lease planner and the per-slot rate split, driven against an in-memory lease table.

The table below has the database's semantics: a take succeeds only on an absent or expired row,
a renewal only on one's own unexpired row. Hypothesis runs instances that heartbeat, stall, die
and join in any order, and checks after every step that no slot is used by two instances and no
server has more slots in use than binds; then, once every live instance heartbeats regularly,
that the slots end up balanced (each live instance holds the floor or the ceiling of its share).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.esme.slots import rate_share, slot_rates
from smppgw.gateway.cluster.plan import Instance, Lease, SlotKey, plan

TTL = 10.0


@dataclass
class Table:
    """The lease and heartbeat rows of one account, with the database's conditional writes."""

    servers: dict[str, int]
    leases: dict[SlotKey, Lease] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    now: float = 0.0

    def heartbeat(self, name: str) -> None:
        self.instances[name] = Instance(name, self.now + TTL)
        for key, lease in list(self.leases.items()):
            if lease.holder == name and lease.expires_at > self.now:
                self.leases[key] = Lease(*key, name, self.now + TTL)

    def take(self, name: str, key: SlotKey) -> bool:
        lease = self.leases.get(key)
        if lease is not None and lease.expires_at > self.now:
            return False
        self.leases[key] = Lease(*key, name, self.now + TTL)
        return True

    def release(self, name: str, key: SlotKey) -> None:
        lease = self.leases.get(key)
        if lease is not None and lease.holder == name:
            del self.leases[key]


@dataclass
class Member:
    """One instance's local view: the slots it uses and those it is handing over."""

    name: str
    using: set[SlotKey] = field(default_factory=set)
    handing_over: set[SlotKey] = field(default_factory=set)
    alive: bool = True

    def settle(self, table: Table) -> None:
        """The slots given up are unbound and out of the rate window: release them."""
        for key in self.handing_over:
            table.release(self.name, key)
        self.handing_over.clear()

    def tick(self, table: Table) -> None:
        table.heartbeat(self.name)
        decided = plan(
            self.name,
            table.servers,
            list(table.instances.values()),
            list(table.leases.values()),
            table.now,
            handing_over=self.handing_over,
        )
        valid = {
            key
            for key, lease in table.leases.items()
            if lease.expires_at > table.now and lease.holder != self.name
        }
        assert not set(decided.take) & valid, "planned to take a slot another holds"
        assert set(decided.renew) >= set(decided.release)
        assert not set(decided.release) & self.handing_over
        self.handing_over = {key for key in self.handing_over if key in decided.renew}
        self.handing_over |= set(decided.release)
        self.using = set(decided.renew) - self.handing_over
        self.using |= {key for key in decided.take if table.take(self.name, key)}

    def fence(self, table: Table) -> None:
        """What the leaser does before its leases can expire: stop using anything not renewed."""
        self.using = {
            key
            for key in self.using
            if (lease := table.leases.get(key)) is not None
            and lease.holder == self.name
            and lease.expires_at > table.now
        }


def check_safe(table: Table, members: list[Member]) -> None:
    users: dict[SlotKey, str] = {}
    for member in members:
        member.fence(table)
        for key in member.using:
            assert key not in users, f"{key} used by {users[key]} and {member.name}"
            users[key] = member.name
    for server, binds in table.servers.items():
        assert sum(1 for key in users if key[0] == server) <= binds


def check_balanced(table: Table, members: list[Member]) -> None:
    live = [m for m in members if m.alive]
    for server, binds in table.servers.items():
        low, rest = divmod(binds, len(live))
        high = low + (1 if rest else 0)
        counts = [sum(1 for key in m.using if key[0] == server) for m in live]
        assert all(low <= count <= high for count in counts), (server, counts)
        assert sum(counts) == binds


step = st.one_of(
    st.tuples(st.just("tick"), st.integers(0, 4)),
    st.tuples(st.just("advance"), st.floats(0.1, 12.0)),
    st.tuples(st.just("kill"), st.integers(0, 4)),
    st.tuples(st.just("join"), st.integers(0, 4)),
    st.tuples(st.just("settle"), st.integers(0, 4)),
)


@settings(max_examples=300, deadline=None)
@given(
    binds=st.lists(st.integers(0, 7), min_size=1, max_size=3),
    steps=st.lists(step, max_size=60),
)
def test_leases_are_never_shared_or_over_binds_and_converge_to_balance(
    binds: list[int], steps: list[tuple[str, float]]
) -> None:
    table = Table({f"smpp{i}": n for i, n in enumerate(binds)})
    members = [Member(f"i{i}", alive=i < 2) for i in range(5)]
    for action, value in steps:
        if action == "advance":
            table.now += value
        else:
            member = members[int(value)]
            if action == "tick" and member.alive:
                member.tick(table)
            elif action == "kill":
                member.alive = False
                member.using.clear()
            elif action == "join":
                member.alive = True
            elif action == "settle" and member.alive:
                member.settle(table)
        check_safe(table, members)
    if not any(m.alive for m in members):
        members[0].alive = True
    # The dead expire; then the live heartbeat every 2 s: balance within a few rounds.
    table.now += TTL
    for _ in range(3 * sum(binds) + 6):
        for member in members:
            if member.alive:
                member.settle(table)
                member.tick(table)
                check_safe(table, members)
        table.now += 2.0
    check_balanced(table, members)


def test_a_newcomer_gets_its_share_from_the_one_holding_every_slot() -> None:
    table = Table({"smpp1": 3})
    first, second = Member("a"), Member("b")
    first.tick(table)
    assert first.using == {("smpp1", 0), ("smpp1", 1), ("smpp1", 2)}
    second.tick(table)
    assert second.using == set()
    first.tick(table)
    assert first.handing_over == {("smpp1", 2)}
    assert first.using == {("smpp1", 0), ("smpp1", 1)}
    second.tick(table)
    assert second.using == set(), "taken before the holder released it"
    first.tick(table)
    assert first.handing_over == {("smpp1", 2)}, "gave up another while one was on its way"
    first.settle(table)
    second.tick(table)
    assert second.using == {("smpp1", 2)}
    first.tick(table)
    assert first.using == {("smpp1", 0), ("smpp1", 1)}


def test_an_expired_lease_is_free_and_a_dead_holder_does_not_count() -> None:
    table = Table({"smpp1": 2})
    table.leases[("smpp1", 0)] = Lease("smpp1", 0, "dead", 5.0)
    table.leases[("smpp1", 1)] = Lease("smpp1", 1, "dead", 5.0)
    table.instances["dead"] = Instance("dead", 5.0)
    table.now = 4.0
    assert (
        plan(
            "b",
            table.servers,
            list(table.instances.values()),
            list(table.leases.values()),
            table.now,
        ).take
        == ()
    )
    table.now = 5.0
    decided = plan(
        "b", table.servers, list(table.instances.values()), list(table.leases.values()), table.now
    )
    assert decided.take == (("smpp1", 0), ("smpp1", 1))


@pytest.mark.parametrize(
    ("rate", "binds", "expected"),
    [
        (50, 3, (17.0, 17.0, 16.0)),
        (50.5, 2, (25.0, 25.0)),
        (0, 2, (0.0, 0.0)),
        (2, 4, (0.5, 0.5, 0.5, 0.5)),
        (10, 0, ()),
    ],
)
def test_slot_rates_are_whole_and_sum_to_at_most_the_rate(
    rate: float, binds: int, expected: tuple[float, ...]
) -> None:
    assert slot_rates(rate, binds) == expected


@given(
    rate=st.floats(0, 500, allow_nan=False),
    binds=st.integers(1, 10),
    slots=st.sets(st.integers(0, 9)),
)
def test_the_shares_of_disjoint_holders_sum_to_at_most_the_rate(
    rate: float, binds: int, slots: set[int]
) -> None:
    ours = {s for s in slots if s < binds}
    theirs = set(range(binds)) - ours
    total = rate_share(rate, binds, ours) + rate_share(rate, binds, theirs)
    assert total <= rate + 1e-9
    if rate >= binds:
        assert total == math.floor(rate)
        assert rate_share(rate, binds, ours).is_integer()
