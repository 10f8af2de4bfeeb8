"""Several PostgreSQL stores on one schema, as several daemons on one account share it.

Each test opens two (or more) stores on a fresh schema of the machine's PostgreSQL (see
postgres_helper: skipped with the reason when it is unreachable, failed under CI). Stores share
a fake clock, so leases lapse when a test says so; every wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest
from postgres_helper import Database, fresh_schema

from smppgw.codec.constants import DataCoding, MessageState
from smppgw.esme.numbers import validate_sender
from smppgw.gateway.correlate import Dlr, PartEntry
from smppgw.gateway.events import DeliveryState
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store.postgres import PostgresSettings, PostgresStore

TIMEOUT = 20.0
LEASE = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Cluster:
    db: Database
    clock: Clock = field(default_factory=Clock)
    stores: list[PostgresStore] = field(default_factory=list)

    async def open(self, name: str, *, poll: float = 1.0) -> PostgresStore:
        settings = PostgresSettings(
            dsn=self.db.dsn, schema=self.db.schema, instance=name, claim_lease=LEASE, poll=poll
        )
        store = await PostgresStore.open(settings, clock=self.clock)
        self.stores.append(store)
        return store


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with fresh_schema() as db:
        c = Cluster(db)
        try:
            async with asyncio.timeout(TIMEOUT):
                yield c
        finally:
            for store in c.stores:
                await store.close()


def req(n: int, *, parts: int = 1, custom: str | None = None) -> SubmitRequest:
    return SubmitRequest(
        to=f"9198{n:08d}",
        sender=validate_sender("ACME"),
        text=f"message {n}",
        payload=None,
        data_coding=DataCoding.DEFAULT,
        parts=parts,
        priority=0,
        custom=custom,
        registered_delivery=True,
    )


def receipt(smsc_id: str) -> Dlr:
    return Dlr(
        smsc_id=smsc_id,
        stat="DELIVRD",
        state=MessageState.DELIVERED,
        err="000",
        done_date=None,
        received_at=0.0,
    )


def event_body(head: bytes, parts: list[bytes], _missing: tuple[int, ...]) -> bytes:
    return head + b"".join(parts)


async def flagged(store: PostgresStore, message_id: str) -> bool:
    status = await store.status(message_id=message_id)
    assert status is not None
    return status.possible_duplicate


async def kill(db: Database, store: PostgresStore) -> None:
    """The instance dies: its connections dropped by the server, its tasks gone, no close."""
    admin = await asyncpg.connect(db.dsn)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            f"smppgw {store._settings.instance}",
        )
    finally:
        await admin.close()
    store._pool.terminate()
    for task in (*store._tasks, store._writer._task):
        if task is not None:
            task.cancel()


async def test_messages_accepted_by_one_instance_are_claimed_once_across_two(
    cluster: Cluster,
) -> None:
    a = await cluster.open("a")
    b = await cluster.open("b")
    added = await a.add_messages([req(n) for n in range(200)])
    claimed: dict[str, list[str]] = {"a": [], "b": []}

    async def drain(name: str, store: PostgresStore) -> None:
        for _ in range(200):  # bounded: each round claims at least one until none is left
            got = await store.claim(7)
            if not got:
                return
            claimed[name] += [m.id for m in got]

    await asyncio.gather(drain("a", a), drain("b", b), drain("a", a), drain("b", b))
    everything = claimed["a"] + claimed["b"]
    assert sorted(everything) == sorted(r.id for r in added)  # each once, none left
    assert (await b.counts())["submitting"] == 200


async def test_a_custom_accepted_by_one_instance_is_a_duplicate_on_the_other(
    cluster: Cluster,
) -> None:
    a = await cluster.open("a")
    b = await cluster.open("b")
    results = await asyncio.gather(
        *(s.add_messages([req(n, custom=f"c{n}")]) for n in range(20) for s in (a, b))
    )
    ids = {r.id for [r] in results}
    assert len(ids) == 20  # each custom stored once, the other instance got its id
    assert sum(r.duplicate for [r] in results) == 20
    assert len(await a.claim(100)) == 20


async def test_a_receipt_on_one_instance_matches_the_part_the_other_submitted(
    cluster: Cluster,
) -> None:
    a = await cluster.open("a")
    b = await cluster.open("b")
    now = cluster.clock.now
    [added] = await a.add_messages([req(1)])
    await a.claim(1)
    entry = PartEntry(added.id, 0, 1, "abc", now, now + 100)
    assert await a.register_part(entry, ["abc"]) == []
    found = await b.match_dlr(["abc"], receipt("abc"), now, now + 50)
    assert found == (entry, (receipt("abc"),))


async def test_receipts_racing_their_parts_on_two_instances_are_each_matched_exactly_once(
    cluster: Cluster,
) -> None:
    """A receipt arrives on instance b while instance a registers its part: whichever commits
    first, the receipt is matched once (by the registration or by the receipt), never left
    parked beside its part."""
    a = await cluster.open("a")
    b = await cluster.open("b")
    now = cluster.clock.now
    rounds = 60

    async def register(n: int) -> int:
        entry = PartEntry(f"m{n}", 0, 1, f"id{n}", now, now + 100)
        return len(await a.register_part(entry, [f"id{n}"]))

    async def arrive(n: int) -> int:
        found = await b.match_dlr([f"id{n}"], receipt(f"id{n}"), now, now + 50)
        return 0 if found is None else 1

    counts = await asyncio.gather(*(f(n) for n in range(rounds) for f in (register, arrive)))
    assert sum(counts) == rounds
    assert await a.count_unmatched() == 0


async def test_a_subscriber_on_one_instance_is_woken_by_the_others_event(
    cluster: Cluster,
) -> None:
    a = await cluster.open("a")
    b = await cluster.open("b", poll=3600.0)  # woken by NOTIFY, not by its poll
    cursor = await b.last_cursor()
    waiter = asyncio.create_task(b.wait_events(cursor))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    written = await a.add_inbound("k", 1, 1, b"event", head=b"", build=event_body)
    await asyncio.wait_for(waiter, 10)
    [event] = await b.events_after(cursor, 10)
    assert (event.cursor, event.body) == (written, b"event")


async def test_the_claims_of_a_dead_instance_go_back_to_the_queue_once_its_lease_lapses(
    cluster: Cluster,
) -> None:
    a = await cluster.open("a")
    b = await cluster.open("b")
    now = cluster.clock.now
    waiting, on_wire, half, idle = await a.add_messages(
        [req(1, parts=2), req(2), req(3, parts=2), req(4)]
    )
    assert len(await a.claim(10)) == 4
    for message in (waiting, on_wire, half):
        await a.mark_sending(message.id)
    await a.register_part(PartEntry(waiting.id, 0, 2, "w0", now, now + 1000), ["w0"])
    await a.register_part(PartEntry(waiting.id, 1, 2, "w1", now, now + 1000), ["w1"])
    await a.finish_submit(waiting.id, DeliveryState.SUBMITTED)
    await a.register_part(PartEntry(half.id, 0, 2, "h0", now, now + 1000), ["h0"])
    await kill(cluster.db, a)

    assert await b.heartbeat() == 0  # a's lease still runs: its claims are its own
    assert await b.claim(10) == []
    cluster.clock.now += LEASE + 1
    assert await b.heartbeat() == 3
    again = {m.id: m for m in await b.claim(10)}
    assert set(again) == {on_wire.id, half.id, idle.id}
    assert again[half.id].accepted == frozenset({0})  # not sent again
    assert all(m.claims == 2 for m in again.values())
    flags = {i: await flagged(b, i) for i in again}
    assert flags == {on_wire.id: True, half.id: True, idle.id: False}
    # The parts a submitted still wait for their receipts, which any instance matches.
    assert {(p[0], p[1]) for p in await b.waiting_parts()} == {(waiting.id, 0), (waiting.id, 1)}
    later = cluster.clock.now
    assert await b.match_dlr(["w1"], receipt("w1"), later, later + 50) is not None


async def test_a_lapsed_instance_that_comes_back_changes_nothing_of_the_claims_taken_over(
    cluster: Cluster,
) -> None:
    """An instance cut off from the database for longer than its lease finds, when it comes
    back, that its messages went to another instance: its late outcome is not recorded (the
    other's is), so one message does not end twice."""
    a = await cluster.open("a")
    b = await cluster.open("b")
    [added] = await a.add_messages([req(1)])
    await a.claim(1)
    cluster.clock.now += LEASE + 1
    assert await b.heartbeat() == 1
    [taken] = await b.claim(1)
    assert await a.finish_submit(added.id, DeliveryState.FAILED, reason="late") is None
    await a.release(added.id)
    assert await b.finish_submit(taken.id, DeliveryState.SENT) is not None
    status = await a.status(message_id=added.id)
    assert status is not None
    assert status.state is DeliveryState.SENT


async def test_webhook_deliveries_are_claimed_by_one_instance_until_its_lease_lapses(
    cluster: Cluster,
) -> None:
    settings = PostgresSettings(
        dsn=cluster.db.dsn, schema=cluster.db.schema, instance="a", webhook=True
    )
    a = await PostgresStore.open(settings, clock=cluster.clock)
    cluster.stores.append(a)
    b = await cluster.open("b")
    cursors = [
        await a.add_inbound(f"k{n}", 1, 1, b"", head=b"", build=event_body) for n in range(4)
    ]
    first = await a.pending(2)
    second = await b.pending(10)
    assert sorted(p.cursor for p in (*first, *second)) == cursors  # each to one instance
    mine = [p.cursor for p in first]
    assert [p.cursor for p in await a.pending(10)] == mine  # still a's, none of b's
    later = cluster.clock.now + 5
    await a.result(mine[0], delivered=False, attempts=1, next_attempt_at=later, error="503")
    assert mine[1] not in {p.cursor for p in await b.pending(10)}  # a's claim holds
    cluster.clock.now += settings.claim_lease + 1  # a is gone
    taken = {p.cursor: p for p in await b.pending(10)}
    assert set(taken) == set(cursors)
    assert (taken[mine[0]].attempts, taken[mine[0]].due_at) == (1, later)  # retries persist
