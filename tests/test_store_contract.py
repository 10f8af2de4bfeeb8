"""The store contract (smppgw.gateway.store.interfaces): every backend must pass these.

Each test takes ``backend`` (a :class:`Backend`, parametrised): adding a backend is one entry in
``BACKENDS`` (a context manager giving its opener, so a backend can set up and tear down what it
needs: PostgreSQL a schema of its own). The tests use only the
:class:`~smppgw.gateway.store.interfaces.Store` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from postgres_helper import fresh_schema

from smppgw.codec.constants import DataCoding, MessageState
from smppgw.esme.numbers import validate_sender
from smppgw.gateway.correlate import Dlr, Outcome, PartEntry
from smppgw.gateway.events import (
    DeliveryState,
    PartPayload,
    StatusEvent,
    StatusPayload,
    decode_event,
)
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store import SqliteStore, Store, StoreClosedError, StoreSettings
from smppgw.gateway.store.postgres import PostgresSettings, PostgresStore

TIMEOUT = 10.0
RETENTION = 3600.0


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Opener = Callable[[Clock, bool], Awaitable[Store]]
"""Opens the backend's store (the same one on every call): (clock, webhook) -> store."""


@contextlib.asynccontextmanager
async def sqlite_opener(tmp_path: Path) -> AsyncIterator[Opener]:
    async def open_(clock: Clock, webhook: bool) -> Store:
        settings = StoreSettings(str(tmp_path / "s.db"), webhook=webhook, retention=RETENTION)
        return await SqliteStore.open(settings, clock=clock)

    yield open_


@contextlib.asynccontextmanager
async def postgres_opener(_tmp_path: Path) -> AsyncIterator[Opener]:
    """A schema of its own on the machine's PostgreSQL, dropped after the test (skipped with
    the reason when it is unreachable, failed under CI: see postgres_helper)."""
    async with fresh_schema() as db:

        async def open_(clock: Clock, webhook: bool) -> Store:
            settings = PostgresSettings(
                dsn=db.dsn,
                schema=db.schema,
                instance="contract",
                webhook=webhook,
                retention=RETENTION,
            )
            return await PostgresStore.open(settings, clock=clock)

        yield open_


BACKENDS: dict[str, Callable[[Path], contextlib.AbstractAsyncContextManager[Opener]]] = {
    "sqlite": sqlite_opener,
    "postgres": postgres_opener,
}


@dataclass(slots=True)
class Backend:
    """A store under test, its clock, and reopening it (a restart)."""

    opener: Opener
    clock: Clock = field(default_factory=Clock)
    webhook: bool = True
    store: Store | None = None

    @property
    def s(self) -> Store:
        assert self.store is not None
        return self.store

    async def open(self, *, webhook: bool = True) -> Store:
        self.webhook = webhook
        self.store = await self.opener(self.clock, webhook)
        return self.store

    async def reopen(self, *, webhook: bool | None = None) -> Store:
        await self.s.close()
        return await self.open(webhook=self.webhook if webhook is None else webhook)


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with BACKENDS[request.param](tmp_path) as opener:
        b = Backend(opener)
        await b.open()
        try:
            yield b
        finally:
            await b.s.close()


def req(
    n: int = 0,
    *,
    custom: str | None = None,
    priority: int = 0,
    parts: int = 1,
    receipt: bool = True,
) -> SubmitRequest:
    return SubmitRequest(
        to=f"9198{n:08d}",
        sender=validate_sender("ACME"),
        text=f"message {n}",
        payload=None,
        data_coding=DataCoding.DEFAULT,
        parts=parts,
        priority=priority,
        custom=custom,
        registered_delivery=receipt,
    )


def dlr(smsc_id: str, stat: str, state: MessageState, at: float = 0.0) -> Dlr:
    return Dlr(smsc_id=smsc_id, stat=stat, state=state, err="000", done_date=None, received_at=at)


DELIVRD = Outcome("DELIVRD", "000", None)


def entry(message_id: str, part: int, parts: int, smsc_id: str, now: float) -> PartEntry:
    return PartEntry(message_id, part, parts, smsc_id, now, now + 100)


async def status_of(store: Store, message_id: str) -> StatusPayload:
    found = await store.status(message_id=message_id)
    assert found is not None
    return found


async def event_at(store: Store, cursor: int | None) -> StatusPayload:
    assert cursor is not None
    [stored] = await store.events_after(cursor - 1, 1)
    assert stored.cursor == cursor
    event = decode_event(stored.body)
    assert isinstance(event, StatusEvent)
    return event.payload


# --- MessageQueue ----------------------------------------------------------------------------


async def test_added_messages_get_unique_ids_in_request_order_and_survive_a_restart(
    backend: Backend,
) -> None:
    results = await backend.s.add_messages([req(1), req(2, parts=3)])
    assert len({r.id for r in results}) == 2
    assert [(r.parts, r.duplicate) for r in results] == [(1, False), (3, False)]
    await backend.reopen()
    claimed = await backend.s.claim(10)
    assert [(m.id, m.request, m.parts, m.claims) for m in claimed] == [
        (results[0].id, req(1), 1, 1),
        (results[1].id, req(2, parts=3), 3, 1),
    ]
    assert claimed[0].created_at == backend.clock.now


async def test_custom_is_an_idempotency_key_within_a_batch_and_across_batches(
    backend: Backend,
) -> None:
    first, again, other = await backend.s.add_messages(
        [req(1, custom="a", parts=2), req(2, custom="a"), req(3, custom="b")]
    )
    assert (again.id, again.parts, again.duplicate) == (first.id, 2, True)
    [later] = await backend.s.add_messages([req(4, custom="b")])
    assert (later.id, later.duplicate) == (other.id, True)
    assert len(await backend.s.claim(10)) == 2


async def test_claims_go_by_priority_then_age_up_to_the_limit_and_each_message_once(
    backend: Backend,
) -> None:
    low, high, low2, high2 = await backend.s.add_messages(
        [req(1), req(2, priority=1), req(3), req(4, priority=1)]
    )
    assert [m.id for m in await backend.s.claim(3)] == [high.id, high2.id, low.id]
    assert [m.id for m in await backend.s.claim(3)] == [low2.id]
    assert await backend.s.claim(3) == []
    assert (await backend.s.counts())["submitting"] == 4


async def test_next_due_is_the_earliest_queued_due_time(backend: Backend) -> None:
    assert await backend.s.next_due() is None
    a, _b = await backend.s.add_messages([req(1), req(2)])
    assert await backend.s.next_due() == backend.clock.now
    await backend.s.claim(2)
    assert await backend.s.next_due() is None
    await backend.s.release(a.id, delay=30)
    assert await backend.s.next_due() == backend.clock.now + 30


async def test_a_released_message_is_claimed_again_after_its_delay_unflagged(
    backend: Backend,
) -> None:
    [added] = await backend.s.add_messages([req(1)])
    [claimed] = await backend.s.claim(1)
    await backend.s.mark_sending(claimed.id)
    await backend.s.release(claimed.id, delay=30)
    assert await backend.s.claim(1) == []
    backend.clock.now += 30
    [again] = await backend.s.claim(1)
    assert (again.id, again.claims, again.accepted) == (added.id, 2, frozenset())
    assert not (await status_of(backend.s, added.id)).possible_duplicate


async def test_release_and_requeue_leave_a_message_that_is_not_claimed_alone(
    backend: Backend,
) -> None:
    [queued, done] = await backend.s.add_messages([req(1), req(2)])
    await backend.s.claim(2)
    await backend.s.release(queued.id, delay=1000)
    assert await backend.s.finish_submit(done.id, DeliveryState.FAILED) is not None
    await backend.s.release(done.id)
    await backend.s.requeue(done.id, 0)
    await backend.s.release(queued.id)  # queued, not claimed: its due time stays
    assert (await status_of(backend.s, done.id)).state is DeliveryState.FAILED
    assert await backend.s.next_due() == backend.clock.now + 1000


async def test_requeue_claimed_flags_only_messages_that_may_be_on_the_wire(
    backend: Backend,
) -> None:
    sent, waiting, accepted = await backend.s.add_messages([req(1), req(2), req(3, parts=2)])
    await backend.s.claim(3)
    now = backend.clock.now
    await backend.s.mark_sending(sent.id)
    await backend.s.mark_sending(accepted.id)
    await backend.s.add_part(entry(accepted.id, 0, 2, "p0", now))
    await backend.s.add_part(entry(accepted.id, 1, 2, "p1", now))
    await backend.reopen()  # a crash: all three still claimed
    assert await backend.s.claim(3) == []
    assert await backend.s.requeue_claimed() == 3
    again = {m.id: m for m in await backend.s.claim(3)}
    assert again[accepted.id].accepted == frozenset({0, 1})
    assert again[sent.id].accepted == frozenset()
    assert all(m.claims == 2 for m in again.values())
    flags = {i: (await status_of(backend.s, i)).possible_duplicate for i in again}
    assert flags == {sent.id: True, waiting.id: False, accepted.id: False}


async def test_requeue_after_a_failed_send_flags_a_marked_message_and_delays_it(
    backend: Backend,
) -> None:
    marked, unmarked = await backend.s.add_messages([req(1), req(2)])
    await backend.s.claim(2)
    await backend.s.mark_sending(marked.id)
    await backend.s.requeue(marked.id, 5)
    await backend.s.requeue(unmarked.id, 5)
    assert await backend.s.claim(2) == []
    backend.clock.now += 5
    assert len(await backend.s.claim(2)) == 2
    assert (await status_of(backend.s, marked.id)).possible_duplicate
    assert not (await status_of(backend.s, unmarked.id)).possible_duplicate


async def test_concurrent_mark_sending_calls_all_become_durable(backend: Backend) -> None:
    added = await backend.s.add_messages([req(n) for n in range(5)])
    await backend.s.claim(5)
    await asyncio.gather(*(backend.s.mark_sending(r.id) for r in added))
    await backend.reopen()
    await backend.s.requeue_claimed()
    assert all([(await status_of(backend.s, r.id)).possible_duplicate for r in added])


async def test_finish_submit_records_the_outcome_with_its_event(backend: Backend) -> None:
    [added] = await backend.s.add_messages([req(7, custom="ref-7")])
    await backend.s.claim(1)
    backend.clock.now += 2
    cursor = await backend.s.finish_submit(added.id, DeliveryState.SUBMITTED)
    payload = await event_at(backend.s, cursor)
    assert payload == await status_of(backend.s, added.id)
    assert (payload.id, payload.mobile, payload.custom, payload.cid) == (
        added.id,
        "919800000007",
        "ref-7",
        "ref-7",
    )
    assert (payload.state, payload.status, payload.final) == (
        DeliveryState.SUBMITTED,
        "SUBMITTED",
        False,
    )
    assert payload.submit_time == "2023-11-14 22:13:20"
    assert payload.sent_time == "2023-11-14 22:13:22"
    assert await backend.s.last_cursor() == cursor


async def test_finish_submit_failed_is_final_with_err_reason_and_duplicate_flag(
    backend: Backend,
) -> None:
    [added] = await backend.s.add_messages([req(1)])
    await backend.s.claim(1)
    cursor = await backend.s.finish_submit(
        added.id, DeliveryState.FAILED, err="0x0B", reason="bad", possible_duplicate=True
    )
    payload = await event_at(backend.s, cursor)
    assert (payload.state, payload.status, payload.final) == (DeliveryState.FAILED, "FAILED", True)
    assert (payload.err, payload.reason, payload.possible_duplicate) == ("0x0B", "bad", True)
    assert (await backend.s.counts())["failed"] == 1


async def test_finish_submit_after_a_final_receipt_changes_nothing_but_the_sent_time(
    backend: Backend,
) -> None:
    [added] = await backend.s.add_messages([req(1)])
    await backend.s.claim(1)
    assert await backend.s.apply_receipt(added.id, DeliveryState.DELIVERED, DELIVRD) is not None
    cursor = await backend.s.last_cursor()
    assert await backend.s.finish_submit(added.id, DeliveryState.SUBMITTED) is None
    status = await status_of(backend.s, added.id)
    assert (status.state, status.status, status.final) == (DeliveryState.DELIVERED, "DELIVRD", True)
    assert status.sent_time is not None
    assert await backend.s.last_cursor() == cursor


async def test_an_unknown_outcome_with_every_part_accepted_takes_the_accepted_state(
    backend: Backend,
) -> None:
    [added] = await backend.s.add_messages([req(1, receipt=False)])
    await backend.s.claim(1)
    await backend.s.add_part(entry(added.id, 0, 1, "x", backend.clock.now))
    cursor = await backend.s.finish_submit(
        added.id, DeliveryState.UNKNOWN, reason="timeout", accepted=(DeliveryState.SENT, "late")
    )
    payload = await event_at(backend.s, cursor)
    assert (payload.state, payload.reason, payload.final) == (DeliveryState.SENT, "late", True)


async def test_resolve_unknown_needs_an_unknown_message_with_every_part_accepted(
    backend: Backend,
) -> None:
    [added] = await backend.s.add_messages([req(1, parts=2)])
    await backend.s.claim(1)
    now = backend.clock.now
    await backend.s.add_part(entry(added.id, 0, 2, "a", now))
    assert await backend.s.resolve_unknown(added.id, DeliveryState.SENT, "late") is None
    await backend.s.finish_submit(added.id, DeliveryState.UNKNOWN, reason="timeout")
    assert await backend.s.resolve_unknown(added.id, DeliveryState.SENT, "late") is None
    await backend.s.add_part(entry(added.id, 1, 2, "b", now))
    cursor = await backend.s.resolve_unknown(added.id, DeliveryState.SENT, "late")
    payload = await event_at(backend.s, cursor)
    assert (payload.state, payload.status, payload.reason, payload.err) == (
        DeliveryState.SENT,
        "SENT",
        "late",
        None,
    )
    assert await backend.s.resolve_unknown(added.id, DeliveryState.SENT, "late") is None


async def test_a_final_receipt_is_recorded_once_and_a_non_final_one_changes_nothing(
    backend: Backend,
) -> None:
    [added] = await backend.s.add_messages([req(1)])
    await backend.s.claim(1)
    await backend.s.finish_submit(added.id, DeliveryState.SUBMITTED)
    enroute = Outcome("ENROUTE", None, None)
    assert await backend.s.apply_receipt(added.id, DeliveryState.SUBMITTED, enroute) is None
    assert await backend.s.apply_receipt(added.id, DeliveryState.DELIVERED, None) is None
    parts = (PartPayload(part=0, smsc_id="x", status="DELIVRD", err="000"),)
    cursor = await backend.s.apply_receipt(
        added.id, DeliveryState.DELIVERED, DELIVRD, parts, via="query_sm"
    )
    payload = await event_at(backend.s, cursor)
    assert (payload.state, payload.status, payload.err, payload.via) == (
        DeliveryState.DELIVERED,
        "DELIVRD",
        "000",
        "query_sm",
    )
    assert payload.parts == parts
    assert payload.deliv_time is not None
    failed = Outcome("UNDELIV", "034", "why")
    assert await backend.s.apply_receipt(added.id, DeliveryState.FAILED, failed) is None


async def test_status_is_found_by_id_or_custom_and_none_for_an_unknown_message(
    backend: Backend,
) -> None:
    [added] = await backend.s.add_messages([req(1, custom="c1")])
    by_id = await backend.s.status(message_id=added.id)
    assert by_id is not None
    assert (by_id.state, by_id.status, by_id.final) == (DeliveryState.QUEUED, "QUEUED", False)
    await backend.s.claim(1)
    claimed = await backend.s.status(custom="c1")
    assert claimed is not None
    assert claimed.state is DeliveryState.QUEUED  # claimed is not a state clients see
    assert await backend.s.status(message_id="nope") is None
    assert await backend.s.status(custom="nope") is None


# --- Correlation -----------------------------------------------------------------------------


async def test_a_receipt_before_its_part_is_parked_then_taken_by_the_registration(
    backend: Backend,
) -> None:
    now = backend.clock.now
    receipt = dlr("00ff", "DELIVRD", MessageState.DELIVERED)
    assert await backend.s.match_dlr(["00ff", "255"], receipt, now, now + 50) is None
    assert await backend.s.count_unmatched() == 1
    assert await backend.s.unmatched(10) == [receipt]
    taken = await backend.s.register_part(entry("m1", 0, 2, "255", now), ["255", "00ff"])
    assert taken == [(receipt, (receipt, None))]
    assert await backend.s.count_unmatched() == 0


async def test_add_part_takes_no_parked_receipt(backend: Backend) -> None:
    now = backend.clock.now
    receipt = dlr("a", "DELIVRD", MessageState.DELIVERED)
    await backend.s.match_dlr(["a"], receipt, now, now + 50)
    await backend.s.add_part(entry("m1", 0, 1, "a", now))
    assert await backend.s.count_unmatched() == 1
    assert await backend.s.match_dlr(["a"], receipt, now, now + 50) == (
        entry("m1", 0, 1, "a", now),
        (receipt,),
    )


async def test_a_final_receipt_is_not_replaced_by_a_later_non_final_one(backend: Backend) -> None:
    now = backend.clock.now
    part = entry("m1", 0, 2, "a", now)
    assert await backend.s.register_part(part, ["a"]) == []
    final = dlr("a", "DELIVRD", MessageState.DELIVERED)
    enroute = dlr("a", "ENROUTE", MessageState.ENROUTE)
    assert await backend.s.match_dlr(["a"], final, now, now + 50) == (part, (final, None))
    assert await backend.s.match_dlr(["a"], enroute, now, now + 50) == (part, (final, None))


async def test_unmatched_receipts_come_oldest_first_up_to_the_limit(backend: Backend) -> None:
    now = backend.clock.now
    receipts = [dlr(f"r{n}", "DELIVRD", MessageState.DELIVERED, at=n) for n in range(3)]
    for r in receipts:
        await backend.s.match_dlr([r.smsc_id], r, now, now + 50)
    assert await backend.s.unmatched(2) == receipts[:2]
    assert await backend.s.count_unmatched() == 3


async def test_an_earlier_accepted_id_of_a_part_stays_matchable_and_flags_the_message(
    backend: Backend,
) -> None:
    [added] = await backend.s.add_messages([req(1)])
    await backend.s.claim(1)
    now = backend.clock.now
    await backend.s.add_part(entry(added.id, 0, 1, "old", now))
    await backend.s.register_part(entry(added.id, 0, 1, "new", now), ["new"], keep_previous=True)
    receipt = dlr("old", "DELIVRD", MessageState.DELIVERED)
    found = await backend.s.match_dlr(["old"], receipt, now, now + 50)
    assert found is not None
    assert (found[0].message_id, found[0].part, found[0].smsc_id) == (added.id, 0, "old")
    assert (await status_of(backend.s, added.id)).possible_duplicate


async def test_expire_forgets_parts_and_unmatched_receipts_whose_time_is_up(
    backend: Backend,
) -> None:
    now = backend.clock.now
    await backend.s.register_part(entry("m1", 0, 1, "a", now), ["a"])
    await backend.s.match_dlr(["z"], dlr("z", "DELIVRD", MessageState.DELIVERED), now, now + 50)
    assert await backend.s.expire(now + 49) == (0, 0)
    assert await backend.s.expire(now + 100) == (1, 1)
    receipt = dlr("a", "DELIVRD", MessageState.DELIVERED)
    assert await backend.s.match_dlr(["a"], receipt, now + 100, now + 150) is None
    assert await backend.s.count_unmatched() == 1


async def test_a_part_past_its_expiry_is_not_found(backend: Backend) -> None:
    now = backend.clock.now
    await backend.s.add_part(entry("m1", 0, 1, "a", now))
    receipt = dlr("a", "DELIVRD", MessageState.DELIVERED)
    assert await backend.s.match_dlr(["a"], receipt, now + 100, now + 150) is None


# --- EventLog --------------------------------------------------------------------------------


def body(text: bytes) -> Callable[[bytes, list[bytes], tuple[int, ...]], bytes]:
    def build(_head: bytes, _parts: list[bytes], _missing: tuple[int, ...]) -> bytes:
        return text

    return build


async def test_events_come_after_a_cursor_in_order_up_to_the_limit(backend: Backend) -> None:
    assert await backend.s.last_cursor() == 0
    assert await backend.s.events_after(0, 10) == []
    cursors: list[int] = []
    for n in range(4):
        cursor = await backend.s.add_inbound(f"k{n}", 1, 1, b"", head=b"", build=body(b"e%d" % n))
        assert cursor is not None
        cursors.append(cursor)
    assert cursors == sorted(set(cursors))  # strictly growing
    events = await backend.s.events_after(0, 3)
    assert [(e.cursor, e.body) for e in events] == [(cursors[n], b"e%d" % n) for n in range(3)]
    assert [e.cursor for e in await backend.s.events_after(cursors[0], 10)] == cursors[1:]
    assert await backend.s.last_cursor() == cursors[-1]
    await backend.reopen()
    assert await backend.s.last_cursor() == cursors[-1]


async def test_wait_events_returns_at_once_or_after_the_next_commit(backend: Backend) -> None:
    await backend.s.add_inbound("a", 1, 1, b"", head=b"", build=body(b"a"))
    await backend.s.wait_events(0)  # one is there already
    waiter = asyncio.create_task(backend.s.wait_events(await backend.s.last_cursor()))
    await asyncio.sleep(0)
    assert not waiter.done()
    await backend.s.add_inbound("b", 1, 1, b"", head=b"", build=body(b"b"))
    async with asyncio.timeout(TIMEOUT):
        await waiter


async def test_wait_events_raises_when_the_store_closes(backend: Backend) -> None:
    waiter = asyncio.create_task(backend.s.wait_events(await backend.s.last_cursor()))
    await asyncio.sleep(0)
    await backend.s.close()
    with pytest.raises(StoreClosedError):
        async with asyncio.timeout(TIMEOUT):
            await waiter


# --- InboundParts ----------------------------------------------------------------------------


def joined(head: bytes, parts: list[bytes], missing: tuple[int, ...]) -> bytes:
    return b"%s|%s|%s" % (head, b"".join(parts), ",".join(map(str, missing)).encode())


async def test_inbound_parts_are_reassembled_once_in_order(backend: Backend) -> None:
    def add(seqnum: int, data: bytes) -> Awaitable[int | None]:
        return backend.s.add_inbound("k", seqnum, 3, data, head=b"H", build=joined)

    assert await add(3, b"C") is None
    assert await add(3, b"C") is None  # resent
    await backend.reopen()
    assert await add(1, b"A") is None
    cursor = await add(2, b"B")
    assert cursor is not None
    assert [e.body for e in await backend.s.events_after(cursor - 1, 10)] == [b"H|ABC|"]
    assert await backend.s.add_inbound("k", 1, 3, b"A", head=b"H", build=joined) is None
    single = await backend.s.add_inbound("one", 1, 1, b"X", head=b"h", build=joined)
    assert single is not None
    assert [e.body for e in await backend.s.events_after(cursor, 10)] == [b"h|X|"]


async def test_incomplete_inbound_messages_are_written_out_with_their_missing_parts(
    backend: Backend,
) -> None:
    assert await backend.s.add_inbound("old", 1, 4, b"A", head=b"H", build=joined) is None
    backend.clock.now += 10
    assert await backend.s.add_inbound("old", 3, 4, b"C", head=b"H", build=joined) is None
    assert await backend.s.add_inbound("new", 1, 2, b"N", head=b"n", build=joined) is None
    cursor = await backend.s.last_cursor()
    assert await backend.s.expire_inbound(backend.clock.now - 5, joined) == 1
    assert [e.body for e in await backend.s.events_after(cursor, 10)] == [b"H|AC|2,4"]
    assert await backend.s.expire_inbound(backend.clock.now - 5, joined) == 0
    last = await backend.s.add_inbound("new", 2, 2, b"M", head=b"n", build=joined)
    assert last is not None
    assert [e.body for e in await backend.s.events_after(last - 1, 10)] == [b"n|NM|"]


# --- WebhookState ----------------------------------------------------------------------------


async def test_new_events_await_the_webhook_and_attempts_persist(backend: Backend) -> None:
    first = await backend.s.add_inbound("a", 1, 1, b"", head=b"", build=body(b"a"))
    backend.clock.now += 1
    second = await backend.s.add_inbound("b", 1, 1, b"", head=b"", build=body(b"b"))
    assert first is not None
    assert second is not None
    assert await backend.s.webhook_backlog() == 2
    pending = await backend.s.pending(10)
    assert [(p.cursor, p.body, p.attempts) for p in pending] == [
        (first, b"a", 0),
        (second, b"b", 0),
    ]
    assert pending[0].due_at == backend.clock.now - 1
    later = backend.clock.now + 10
    await backend.s.result(first, delivered=False, attempts=1, next_attempt_at=later, error="500")
    await backend.reopen()
    assert [(p.cursor, p.attempts, p.due_at) for p in await backend.s.pending(10)] == [
        (second, 0, backend.clock.now),
        (first, 1, later),
    ]
    assert [p.cursor for p in await backend.s.pending(1)] == [second]
    await backend.s.result(second, delivered=True, attempts=0, next_attempt_at=None, error=None)
    await backend.s.result(first, delivered=False, attempts=9, next_attempt_at=None, error="gone")
    assert await backend.s.pending(10) == []
    assert await backend.s.webhook_backlog() == 0


async def test_events_written_without_a_webhook_await_no_delivery(backend: Backend) -> None:
    await backend.reopen(webhook=False)
    assert await backend.s.add_inbound("a", 1, 1, b"", head=b"", build=body(b"a")) is not None
    assert await backend.s.pending(10) == []
    assert await backend.s.webhook_backlog() == 0


# --- Housekeeping ----------------------------------------------------------------------------


async def test_counts_have_every_state(backend: Backend) -> None:
    states = {"queued", "submitting", "submitted", *(s.value for s in DeliveryState if s.is_final)}
    assert await backend.s.counts() == dict.fromkeys(states, 0)
    a, _b = await backend.s.add_messages([req(1), req(2)])
    await backend.s.claim(1)
    await backend.s.finish_submit(a.id, DeliveryState.SUBMITTED)
    counts = await backend.s.counts()
    assert (counts["queued"], counts["submitted"], sum(counts.values())) == (1, 0 + 1, 2)


async def test_waiting_parts_are_the_accepted_parts_of_submitted_messages_without_final_receipt(
    backend: Backend,
) -> None:
    waiting, finished, queued = await backend.s.add_messages([req(1, parts=2), req(2), req(3)])
    await backend.s.claim(2)
    now = backend.clock.now
    await backend.s.add_part(entry(waiting.id, 0, 2, "w0", now))
    await backend.s.add_part(entry(waiting.id, 1, 2, "w1", now))
    await backend.s.add_part(entry(finished.id, 0, 1, "f0", now))
    await backend.s.finish_submit(waiting.id, DeliveryState.SUBMITTED)
    await backend.s.finish_submit(finished.id, DeliveryState.SUBMITTED)
    await backend.s.apply_receipt(finished.id, DeliveryState.DELIVERED, DELIVRD)
    final = dlr("w1", "DELIVRD", MessageState.DELIVERED)
    await backend.s.match_dlr(["w1"], final, now, now + 50)
    assert await backend.s.waiting_parts() == [(waiting.id, 0, "w0", now, req(1, parts=2))]
    assert await backend.s.still_waiting(waiting.id, 0)
    assert not await backend.s.still_waiting(waiting.id, 1)
    assert not await backend.s.still_waiting(finished.id, 0)
    assert not await backend.s.still_waiting(queued.id, 0)


async def test_expire_waiting_ends_submitted_messages_sent_too_long_ago_as_unknown(
    backend: Backend,
) -> None:
    old, new = await backend.s.add_messages([req(1), req(2)])
    await backend.s.claim(2)
    await backend.s.finish_submit(old.id, DeliveryState.SUBMITTED)
    backend.clock.now += 100
    await backend.s.finish_submit(new.id, DeliveryState.SUBMITTED)
    assert await backend.s.expire_waiting(backend.clock.now - 50, "no receipt") == 1
    payload = await event_at(backend.s, await backend.s.last_cursor())
    assert (payload.id, payload.state, payload.reason, payload.final) == (
        old.id,
        DeliveryState.UNKNOWN,
        "no receipt",
        True,
    )
    assert (await status_of(backend.s, new.id)).state is DeliveryState.SUBMITTED
    assert await backend.s.expire_waiting(backend.clock.now - 50, "no receipt") == 0


async def test_prune_deletes_only_what_is_final_or_settled_past_the_retention(
    backend: Backend,
) -> None:
    done, pending = await backend.s.add_messages([req(1), req(2)])
    await backend.s.claim(2)
    await backend.s.add_part(entry(done.id, 0, 1, "d", backend.clock.now))
    delivered = await backend.s.finish_submit(done.id, DeliveryState.FAILED)
    undelivered = await backend.s.finish_submit(pending.id, DeliveryState.SUBMITTED)
    assert delivered is not None
    assert undelivered is not None
    await backend.s.result(delivered, delivered=True, attempts=0, next_attempt_at=None, error=None)
    backend.clock.now += RETENTION - 1
    assert await backend.s.prune() == 0
    backend.clock.now += 2
    assert await backend.s.prune() == 1
    assert await backend.s.status(message_id=done.id) is None
    assert await backend.s.status(message_id=pending.id) is not None
    assert [e.cursor for e in await backend.s.events_after(0, 10)] == [undelivered]


# --- StoreLifecycle --------------------------------------------------------------------------


async def test_a_healthy_store_answers_a_probe_and_refuses_calls_once_closed(
    backend: Backend,
) -> None:
    assert backend.s.health.healthy
    await backend.s.probe()
    failures: list[BaseException] = []
    backend.s.add_failure_callback(failures.append)
    await backend.s.close()
    await backend.s.close()  # twice is harmless
    with pytest.raises(StoreClosedError):
        await backend.s.add_messages([req(1)])
    with pytest.raises(StoreClosedError):
        await backend.s.probe()
    assert failures == []  # closing is no failure
    await backend.open()
