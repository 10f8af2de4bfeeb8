"""SQLite store: the webhook's delivery state of each event
(:class:`~smppgw.gateway.store.interfaces.WebhookState`)."""

from __future__ import annotations

import sqlite3

from smppgw.gateway.store.engine import SqliteEngine
from smppgw.gateway.store.schema import HOOK_DONE, HOOK_NONE, HOOK_PENDING
from smppgw.gateway.webhook import PendingDelivery

__all__ = ["SqliteWebhookState"]


class SqliteWebhookState(SqliteEngine):
    """Pending deliveries, attempts and due times, in the events table."""

    async def pending(self, limit: int) -> list[PendingDelivery]:
        """Events awaiting a webhook delivery, earliest due first."""

        def op(conn: sqlite3.Connection) -> list[PendingDelivery]:
            rows = conn.execute(
                "SELECT cursor, body, hook_attempts, hook_due FROM events WHERE hook_state = ?"
                " ORDER BY hook_due, cursor LIMIT ?",
                (HOOK_PENDING, limit),
            )
            return [PendingDelivery(r[0], bytes(r[1]), r[2], r[3]) for r in rows]

        return await self._call(op)

    async def webhook_backlog(self) -> int:
        """How many events await a webhook delivery (read through the partial index)."""

        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT count(*) FROM events WHERE hook_state = ?", (HOOK_PENDING,)
            ).fetchone()
            return int(row[0])

        return await self._call(op)

    async def result(
        self,
        cursor: int,
        *,
        delivered: bool,
        attempts: int,
        next_attempt_at: float | None,
        error: str | None,
    ) -> None:
        """Record a webhook attempt's outcome."""
        if delivered:
            state = HOOK_DONE
        elif next_attempt_at is None:
            state = HOOK_NONE
        else:
            state = HOOK_PENDING

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE events SET hook_state = ?, hook_attempts = ?, hook_due = ?,"
                " hook_error = ? WHERE cursor = ?",
                (state, attempts, next_attempt_at, error, cursor),
            )

        await self._call(op)
