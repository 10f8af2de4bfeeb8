"""SQLite store: the event log (:class:`~smppgw.gateway.store.interfaces.EventLog`), and
appending events for the other parts of the store (status events rendered by
:mod:`smppgw.gateway.events`)."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any, Final

import msgspec

from smppgw.gateway.events import (
    MessageRecord,
    PartPayload,
    StatusPayload,
    StoredEvent,
    status_event,
    status_payload,
)
from smppgw.gateway.store.engine import SqliteEngine
from smppgw.gateway.store.health import StoreClosedError
from smppgw.gateway.store.schema import HOOK_NONE, HOOK_PENDING

__all__ = ["SqliteEventLog", "payload_of", "status_of"]

# Every statement returning a message row returns the columns of
# :class:`~smppgw.gateway.events.MessageRecord`, in its order.

_SELECT_MESSAGE: Final = (
    "SELECT id, mobile, state, status, parts, created_at, sent_at, deliv_at, custom, err, reason,"
    " possible_duplicate, retried FROM messages WHERE id = ?"
)


class SqliteEventLog(SqliteEngine):
    """Events by cursor; the batch remembers the newest, waking waiters after its commit."""

    async def events_after(self, cursor: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events after ``cursor``, oldest first."""

        def op(conn: sqlite3.Connection) -> list[StoredEvent]:
            rows = conn.execute(
                "SELECT cursor, body FROM events WHERE cursor > ? ORDER BY cursor LIMIT ?",
                (cursor, limit),
            )
            return [StoredEvent(r[0], bytes(r[1])) for r in rows]

        return await self._call(op)

    async def wait_events(self, cursor: int) -> None:
        """Return once an event after ``cursor`` is committed (at once if one is)."""
        while self._last_cursor <= cursor:
            if self._closed:
                raise StoreClosedError("the store is closed")
            await self._new_events.wait()

    async def last_cursor(self) -> int:
        """The cursor of the newest committed event (0 if none)."""
        return self._last_cursor

    def set_webhook(self, enabled: bool) -> None:
        """Whether events appended from now on await a webhook delivery."""
        self._settings = dataclasses.replace(self._settings, webhook=enabled)

    async def history(self, message_id: str, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events of one message, oldest first (the events_message index)."""

        def op(conn: sqlite3.Connection) -> list[StoredEvent]:
            rows = conn.execute(
                "SELECT cursor, body FROM events WHERE message_id = ? ORDER BY cursor LIMIT ?",
                (message_id, limit),
            )
            return [StoredEvent(r[0], bytes(r[1])) for r in rows]

        return await self._call(op)

    def _append_event(
        self, conn: sqlite3.Connection, body: bytes, now: float, message_id: str | None = None
    ) -> int:
        """Append an event (awaiting the webhook if one is configured), the message it is
        about kept for :meth:`history`; the batch remembers its cursor, so subscribers are
        woken after the commit."""
        webhook = self._settings.webhook
        cursor = conn.execute(
            "INSERT INTO events (body, created_at, hook_state, hook_due, message_id)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                body,
                now,
                HOOK_PENDING if webhook else HOOK_NONE,
                now if webhook else None,
                message_id,
            ),
        ).lastrowid
        assert cursor is not None
        self._batch_cursor = max(self._batch_cursor, cursor)
        return cursor

    def _append_status(
        self,
        conn: sqlite3.Connection,
        row: tuple[Any, ...],
        now: float,
        parts: tuple[PartPayload, ...] | None = None,
        via: str | msgspec.UnsetType = msgspec.UNSET,
    ) -> int:
        """Append the status event of a message row (the columns of ``MessageRecord``)."""
        payload = _payload(conn, row, parts, via)
        return self._append_event(conn, status_event(payload), now, payload.id)


def status_of(conn: sqlite3.Connection, message_id: str) -> StatusPayload | None:
    """A message's status payload, None when no such message is kept."""
    row = conn.execute(_SELECT_MESSAGE, (message_id,)).fetchone()
    return None if row is None else _payload(conn, row)


def payload_of(conn: sqlite3.Connection, row: tuple[Any, ...]) -> StatusPayload:
    """The status payload of a message row (the columns of ``MessageRecord``)."""
    return _payload(conn, row)


def _payload(
    conn: sqlite3.Connection,
    row: tuple[Any, ...],
    parts: tuple[PartPayload, ...] | None = None,
    via: str | msgspec.UnsetType = msgspec.UNSET,
) -> StatusPayload:
    """The status payload of a message row; its parts are read unless given."""
    message = MessageRecord(*row)
    if parts is None:
        parts = tuple(
            PartPayload(part=part, smsc_id=smsc_id, status=stat, err=err)
            for part, smsc_id, stat, err in conn.execute(
                "SELECT part, smsc_id, dlr_stat, dlr_err FROM parts WHERE message_id = ?"
                " ORDER BY part",
                (message.id,),
            )
        )
    return status_payload(message, parts, via=via)
