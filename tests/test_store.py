"""The SQLite store: durability, the queue, correlation rows, inbound parts, events, webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest

from smppgw.codec.constants import DataCoding, MessageState
from smppgw.esme.numbers import validate_sender
from smppgw.esme.observe import RecordingObserver
from smppgw.gateway.correlate import Correlator, Dlr, Outcome, PartEntry
from smppgw.gateway.events import DeliveryState, StatusEvent, decode_event
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store import InboundBuilder, SqliteStore, StoreError, StoreSettings
from smppgw.gateway.webhook import WebhookSender, WebhookSettings

TIMEOUT = 10.0


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def request(n: int = 0, *, custom: str | None = None, priority: int = 0) -> SubmitRequest:
    return SubmitRequest(
        to=f"9198{n:08d}",
        sender=validate_sender("ACME"),
        text=f"message {n}",
        payload=None,
        data_coding=DataCoding.DEFAULT,
        parts=1,
        priority=priority,
        custom=custom,
    )


def dlr(smsc_id: str, stat: str, state: MessageState, at: float = 0.0) -> Dlr:
    return Dlr(smsc_id=smsc_id, stat=stat, state=state, err="000", done_date=None, received_at=at)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(StoreSettings(str(tmp_path / "s.db"), webhook=True), clock=clock)
    yield s
    await s.close()


async def reopen(store: SqliteStore, tmp_path: Path, clock: Clock) -> SqliteStore:
    await store.close()
    return await SqliteStore.open(StoreSettings(str(tmp_path / "s.db"), webhook=True), clock=clock)


async def test_a_stored_message_survives_a_reopen_and_is_claimed_once(
    store: SqliteStore, tmp_path: Path, clock: Clock
) -> None:
    [result] = await store.add_messages([request(1, custom="a")])
    store = await reopen(store, tmp_path, clock)
    try:
        [claimed] = await store.claim(10)
        assert claimed.id == result.id
        assert claimed.request == request(1, custom="a")
        assert claimed.accepted == frozenset()
        assert await store.claim(10) == []
    finally:
        await store.close()


async def test_custom_is_an_idempotency_key_within_and_across_batches(store: SqliteStore) -> None:
    first, again, other = await store.add_messages(
        [request(1, custom="k"), request(2, custom="k"), request(3)]
    )
    assert again.id == first.id
    assert again.duplicate
    assert not first.duplicate
    assert not other.duplicate
    [later] = await store.add_messages([request(4, custom="k")])
    assert later.id == first.id
    assert later.duplicate
    assert len(await store.claim(10)) == 2


async def test_claims_go_by_priority_then_age(store: SqliteStore) -> None:
    results = await store.add_messages(
        [request(0), request(1, priority=3), request(2), request(3, priority=3)]
    )
    order = [m.id for m in await store.claim(10)]
    assert order == [results[1].id, results[3].id, results[0].id, results[2].id]


async def test_claimed_messages_are_requeued_after_a_crash_without_their_accepted_parts(
    store: SqliteStore, tmp_path: Path, clock: Clock
) -> None:
    [result] = await store.add_messages([request(1)])
    [claimed] = await store.claim(1)
    await store.add_part(PartEntry(claimed.id, 0, 2, "abc", clock.now, clock.now + 100))
    store = await reopen(store, tmp_path, clock)
    try:
        assert await store.claim(1) == []  # still claimed by the dead process
        assert await store.requeue_claimed() == 1
        [again] = await store.claim(1)
        assert again.id == result.id
        assert again.accepted == frozenset({0})
        assert again.claims == 2
    finally:
        await store.close()


async def test_a_released_message_is_due_again_after_its_delay(
    store: SqliteStore, clock: Clock
) -> None:
    await store.add_messages([request(1)])
    [claimed] = await store.claim(1)
    await store.release(claimed.id, delay=30)
    assert await store.claim(1) == []
    assert await store.next_due() == clock.now + 30
    clock.now += 30
    assert [m.id for m in await store.claim(1)] == [claimed.id]


async def test_a_receipt_beating_the_last_response_is_not_overwritten_by_submitted(
    store: SqliteStore, clock: Clock
) -> None:
    [result] = await store.add_messages([request(1)])
    await store.claim(1)
    delivered = Outcome("DELIVRD", "000", None)
    assert await store.apply_receipt(result.id, DeliveryState.DELIVERED, delivered) is not None
    assert await store.finish_submit(result.id, DeliveryState.SUBMITTED) is None
    status = await store.status(message_id=result.id)
    assert status is not None
    assert status.state is DeliveryState.DELIVERED
    assert status.status == "DELIVRD"
    assert status.final
    # A second final receipt does not write a second final event.
    failed = Outcome("UNDELIV", "034", "Unknown Error (err 034 UNDELIV)")
    assert await store.apply_receipt(result.id, DeliveryState.FAILED, failed) is None


async def test_status_events_carry_the_provider_payload(store: SqliteStore, clock: Clock) -> None:
    [result] = await store.add_messages([request(7, custom="ref-7")])
    await store.claim(1)
    cursor = await store.finish_submit(result.id, DeliveryState.SUBMITTED)
    assert cursor is not None
    [stored] = await store.events_after(0, 10)
    event = decode_event(stored.body)
    assert isinstance(event, StatusEvent)
    payload = event.payload
    assert payload.id == result.id
    assert payload.mobile == "919800000007"
    assert payload.custom == payload.cid == "ref-7"
    assert payload.status == "SUBMITTED"
    assert payload.submit_time == "2023-11-14 22:13:20"
    assert not payload.final


async def test_correlation_through_the_store_keeps_a_final_receipt(
    store: SqliteStore, clock: Clock
) -> None:
    correlator = Correlator(store, clock=clock)
    assert await correlator.on_dlr(dlr("00FF", "DELIVRD", MessageState.DELIVERED)) is None
    assert await correlator.count_unmatched() == 1
    [match] = await correlator.register("m1", 0, 2, "255")  # decimal of 0xFF
    assert match.entry.message_id == "m1"
    assert not match.final  # part 1 has no receipt yet
    late = await correlator.on_dlr(dlr("ff", "ENROUTE", MessageState.ENROUTE))
    assert late is not None
    assert late.parts[0] is not None
    assert late.parts[0].stat == "DELIVRD"  # the final receipt stays
    await correlator.register("m1", 1, 2, "100")
    done = await correlator.on_dlr(dlr("100", "UNDELIV", MessageState.UNDELIVERABLE))
    assert done is not None
    assert done.final
    assert done.state is DeliveryState.FAILED
    assert await correlator.count_unmatched() == 0


async def test_expired_parts_stop_matching_and_unmatched_receipts_expire(
    store: SqliteStore, clock: Clock
) -> None:
    correlator = Correlator(store, ttl=100, unmatched_ttl=50, clock=clock)
    await correlator.register("m1", 0, 1, "abc")
    await correlator.on_dlr(dlr("zzz", "DELIVRD", MessageState.DELIVERED))
    clock.now += 101
    assert await correlator.expire() == (1, 1)
    assert await correlator.on_dlr(dlr("abc", "DELIVRD", MessageState.DELIVERED)) is None


def joined(head: bytes, parts: list[bytes], missing: tuple[int, ...]) -> bytes:
    return b'{"event":"sms:message:in","payload":{"head":"%s","joined":"%s","missing":"%s"}}' % (
        head,
        b"".join(parts),
        ",".join(map(str, missing)).encode(),
    )


def const(body: bytes) -> InboundBuilder:
    def build(_head: bytes, _parts: list[bytes], _missing: tuple[int, ...]) -> bytes:
        return body

    return build


async def test_inbound_parts_are_reassembled_once_in_order(store: SqliteStore) -> None:
    def add(seqnum: int, data: bytes) -> Awaitable[int | None]:
        return store.add_inbound("k", seqnum, 3, data, head=b"H", build=joined)

    assert await add(2, b"B") is None
    assert await add(2, b"B") is None  # resent by the SMSC
    assert await add(3, b"C") is None
    cursor = await add(1, b"A")
    assert cursor is not None
    [event] = await store.events_after(cursor - 1, 10)
    assert b'"head":"H","joined":"ABC","missing":""' in event.body
    single = await store.add_inbound("one", 1, 1, b"X", head=b"", build=joined)
    assert single == cursor + 1


async def test_a_long_inbound_message_missing_parts_is_written_out_after_a_while(
    store: SqliteStore, clock: Clock
) -> None:
    assert await store.add_inbound("k", 1, 4, b"A", head=b"H", build=joined) is None
    clock.now += 10
    assert await store.add_inbound("k", 3, 4, b"C", head=b"H", build=joined) is None
    assert await store.add_inbound("new", 1, 2, b"N", head=b"", build=joined) is None
    cursor = await store.last_cursor()
    assert await store.expire_inbound(clock.now - 5, joined) == 1  # "new" is still awaited
    [event] = await store.events_after(cursor, 10)
    assert b'"joined":"AC","missing":"2,4"' in event.body
    assert await store.expire_inbound(clock.now - 5, joined) == 0


async def test_wait_events_returns_when_an_event_is_committed(store: SqliteStore) -> None:
    async with asyncio.timeout(TIMEOUT):
        waiter = asyncio.create_task(store.wait_events(await store.last_cursor()))
        await asyncio.sleep(0)
        assert not waiter.done()
        await store.add_inbound("k", 1, 1, b"{}", head=b"", build=const(b'{"event":"x"}'))
        await waiter


async def test_webhook_attempts_persist_across_a_restart(
    store: SqliteStore, tmp_path: Path, clock: Clock
) -> None:
    posted: list[tuple[bytes, dict[str, str]]] = []
    answers = [500, 200]

    async def poster(_url: str, body: bytes, headers: object) -> int:
        assert isinstance(headers, dict)
        posted.append((body, headers))
        return answers.pop(0)

    settings = WebhookSettings(url="http://127.0.0.1:9/hook", secret="k3y")
    cursor = await store.add_inbound("k", 1, 1, b"", head=b"", build=const(b'{"event":"e"}'))
    assert cursor is not None
    await WebhookSender(settings, store, clock=clock, poster=poster).deliver_due()
    [pending] = await store.pending(10)
    assert pending.attempts == 1
    assert pending.due_at == clock.now + 10  # the provider's first retry delay
    store = await reopen(store, tmp_path, clock)
    try:
        clock.now += 10
        await WebhookSender(settings, store, clock=clock, poster=poster).deliver_due()
        assert await store.pending(10) == []
    finally:
        await store.close()
    body, headers = posted[-1]
    expected = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert f"sha256={expected}" in headers.values()


async def test_prune_deletes_final_messages_past_retention_only(
    tmp_path: Path, clock: Clock
) -> None:
    store = await SqliteStore.open(StoreSettings(str(tmp_path / "p.db"), retention=60), clock=clock)
    try:
        done, pending = await store.add_messages([request(1), request(2)])
        await store.claim(2)
        await store.finish_submit(done.id, DeliveryState.FAILED, err="ESME_RINVDSTADR")
        await store.finish_submit(pending.id, DeliveryState.SUBMITTED)
        clock.now += 61
        assert await store.prune() == 1
        assert await store.status(message_id=done.id) is None
        assert await store.status(message_id=pending.id) is not None
    finally:
        await store.close()


async def test_commits_are_grouped(tmp_path: Path, clock: Clock) -> None:
    observer = RecordingObserver()
    store = await SqliteStore.open(
        StoreSettings(str(tmp_path / "g.db")), observer=observer, clock=clock
    )
    try:
        await asyncio.gather(*(store.add_messages([request(i)]) for i in range(200)))
        commits = observer.total("store_commit")
        assert 1 <= commits < 200
    finally:
        await store.close()


async def test_a_failing_operation_does_not_undo_the_others_in_its_commit(
    store: SqliteStore,
) -> None:
    def boom(_head: bytes, _parts: list[bytes], _missing: tuple[int, ...]) -> bytes:
        raise ValueError("cannot build")

    ok, bad = await asyncio.gather(
        store.add_messages([request(1)]),
        store.add_inbound("k", 1, 1, b"", head=b"", build=boom),
        return_exceptions=True,
    )
    assert isinstance(bad, StoreError)
    assert not isinstance(ok, BaseException)
    assert len(await store.claim(10)) == 1


async def test_a_closed_store_refuses_calls(store: SqliteStore) -> None:
    await store.close()
    with pytest.raises(StoreError):
        await store.add_messages([request(1)])


async def test_an_unusable_path_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open the store"):
        await SqliteStore.open(StoreSettings(str(blocker / "s.db")))


async def test_a_version_1_store_is_upgraded_in_place(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO meta VALUES ('schema', '1');"
            "CREATE TABLE parts (message_id TEXT NOT NULL, part INTEGER NOT NULL,"
            " parts INTEGER NOT NULL, smsc_id TEXT, smsc_key TEXT, registered_at REAL,"
            " expires_at REAL, dlr BLOB, PRIMARY KEY (message_id, part)) WITHOUT ROWID;"
        )
    conn.close()
    store = await SqliteStore.open(StoreSettings(str(path)), clock=clock)
    try:
        correlator = Correlator(store, clock=clock)
        await correlator.register("m1", 0, 1, "abc")
        match = await correlator.on_dlr(dlr("abc", "DELIVRD", MessageState.DELIVERED))
        assert match is not None
        assert match.final
    finally:
        await store.close()


async def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO meta VALUES ('schema', '99');"
        )
    conn.close()
    with pytest.raises(StoreError, match="schema 99"):
        await SqliteStore.open(StoreSettings(str(path)))


async def test_a_message_sent_without_a_receipt_request_is_pruned_after_retention(
    tmp_path: Path, clock: Clock
) -> None:
    store = await SqliteStore.open(StoreSettings(str(tmp_path / "n.db"), retention=60), clock=clock)
    try:
        silent, waiting = await store.add_messages([request(1), request(2)])
        await store.claim(2)
        await store.finish_submit(silent.id, DeliveryState.SENT)
        await store.finish_submit(waiting.id, DeliveryState.SUBMITTED)
        clock.now += 61
        assert await store.prune() == 1
        assert await store.status(message_id=silent.id) is None
        assert await store.status(message_id=waiting.id) is not None
    finally:
        await store.close()


async def test_a_message_whose_receipt_never_came_ends_unknown(
    store: SqliteStore, clock: Clock
) -> None:
    late, recent = await store.add_messages([request(1), request(2)])
    await store.claim(2)
    await store.finish_submit(late.id, DeliveryState.SUBMITTED)
    clock.now += 100
    await store.finish_submit(recent.id, DeliveryState.SUBMITTED)
    cursor = await store.last_cursor()
    assert await store.expire_waiting(clock.now - 50, "no delivery receipt within 1 hours") == 1
    status = await store.status(message_id=late.id)
    assert status is not None
    assert (status.state, status.final, status.reason) == (
        DeliveryState.UNKNOWN,
        True,
        "no delivery receipt within 1 hours",
    )
    [event] = await store.events_after(cursor, 10)
    assert late.id.encode() in event.body
    recent_status = await store.status(message_id=recent.id)
    assert recent_status is not None
    assert recent_status.state is DeliveryState.SUBMITTED
