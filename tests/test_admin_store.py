"""The store's side of the operators' ops: a message's history is an indexed lookup, and a
store written before the history index gets it, filled from the events it already holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from test_store import Clock, request

from smppgw.gateway.events import DeliveryState
from smppgw.gateway.selection import MessageFilter
from smppgw.gateway.store import SqliteStore, StoreSettings


async def _failed_message(store: SqliteStore, custom: str) -> str:
    (result,) = await store.add_messages([request(custom=custom)])
    (claimed,) = await store.claim(1)
    assert claimed.id == result.id
    await store.finish_submit(result.id, DeliveryState.FAILED, err="ESME_RINVDSTADR", reason="no")
    return result.id


async def test_history_is_read_through_the_index_of_events_by_message(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await SqliteStore.open(StoreSettings(str(path)), clock=Clock())
    message_id = await _failed_message(store, "a")
    other = await _failed_message(store, "b")
    history = await store.history(message_id, 100)
    await store.close()
    assert len(history) == 1
    assert b'"state":"failed"' in history[0].body
    assert other.encode() not in history[0].body
    with sqlite3.connect(path) as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT cursor, body FROM events WHERE message_id = ?"
                " ORDER BY cursor LIMIT 10",
                (message_id,),
            )
        )
    assert "USING INDEX events_message" in plan or "USING COVERING INDEX" in plan, plan


async def test_a_store_from_before_the_history_index_gets_it_filled_from_its_events(
    tmp_path: Path,
) -> None:
    """A store written by the previous version has no events.message_id: opening it adds the
    column, fills it from the status events it holds, and history finds them."""
    path = tmp_path / "s.db"
    store = await SqliteStore.open(StoreSettings(str(path)), clock=Clock())
    message_id = await _failed_message(store, "a")
    await store.close()
    with sqlite3.connect(path) as conn:  # as the previous version left it
        conn.execute("DROP INDEX events_message")
        conn.execute("ALTER TABLE events DROP COLUMN message_id")
        conn.execute("ALTER TABLE messages DROP COLUMN retried")
    store = await SqliteStore.open(StoreSettings(str(path)), clock=Clock())
    try:
        history = await store.history(message_id, 100)
        assert [e.cursor for e in history] == [1]
        outcomes = await store.retry_failed(MessageFilter(ids=(message_id,)), 10)
        assert [o.outcome.value for o in outcomes] == ["retried"]
        status = await store.status(message_id=message_id)
        assert status is not None
        assert status.retried == 1
        assert status.state is DeliveryState.QUEUED
    finally:
        await store.close()
