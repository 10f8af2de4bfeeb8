"""SQLite store: counts, receipt recovery at start, and retention
(:class:`~smppgw.gateway.store.interfaces.Housekeeping`)."""

from __future__ import annotations

import sqlite3
from typing import Final

from smppgw.gateway.events import DeliveryState
from smppgw.gateway.store.eventlog import SqliteEventLog
from smppgw.gateway.store.interfaces import WaitingPart
from smppgw.gateway.store.records import decode_request
from smppgw.gateway.store.schema import HOOK_PENDING

__all__ = ["SqliteHousekeeping"]

_EXPIRE_WAITING: Final = (
    "UPDATE messages SET state = 'unknown', status = 'UNKNOWN', reason = ?, final_at = ?"
    " WHERE state = 'submitted' AND final_at IS NULL AND sent_at < ?"
    " RETURNING id, mobile, state, status, parts, created_at, sent_at, deliv_at, custom, err,"
    " reason, possible_duplicate, retried"
)


class SqliteHousekeeping(SqliteEventLog):
    """What the daemon's timers and its start need."""

    async def counts(self) -> dict[str, int]:
        """Messages by state (every state present, zeros included)."""

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            counts = dict.fromkeys(
                ("queued", "submitting", *(s.value for s in DeliveryState if s.is_final)), 0
            )
            counts["submitted"] = 0
            for state, count in conn.execute("SELECT state, count(*) FROM messages GROUP BY state"):
                counts[state] = count
            return counts

        return await self._call(op)

    async def waiting_parts(self) -> list[WaitingPart]:
        """The parts still waiting for a receipt: accepted with an SMSC id still matchable, no
        final receipt, their message submitted with a receipt asked for and not final. Read
        once at start (receipt recovery, :mod:`smppgw.gateway.recovery`).

        Returns:
            (message id, part, SMSC id, registered_at, the message's request) of each.
        """

        def op(conn: sqlite3.Connection) -> list[WaitingPart]:
            rows = conn.execute(
                "SELECT p.message_id, p.part, p.smsc_id, p.registered_at, m.request"
                " FROM messages m JOIN parts p ON p.message_id = m.id"
                " WHERE m.state = 'submitted' AND m.final_at IS NULL AND p.dlr_final = 0"
                " AND p.smsc_key IS NOT NULL AND p.smsc_id != ''"
            )
            return [
                (mid, part, smsc_id, registered_at, decode_request(blob))
                for mid, part, smsc_id, registered_at, blob in rows
            ]

        return await self._call(op)

    async def still_waiting(self, message_id: str, part: int) -> bool:
        """Whether a part is still waiting for its receipt (see :meth:`waiting_parts`)."""

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM parts p JOIN messages m ON m.id = p.message_id"
                " WHERE p.message_id = ? AND p.part = ? AND p.dlr_final = 0"
                " AND p.smsc_key IS NOT NULL AND m.state = 'submitted' AND m.final_at IS NULL",
                (message_id, part),
            ).fetchone()
            return row is not None

        return await self._call(op)

    async def expire_waiting(self, older_than: float, reason: str) -> int:
        """End the wait of messages submitted before ``older_than`` whose receipts never came:
        they become final UNKNOWN with ``reason``, each with its event.

        Returns:
            How many messages were ended.
        """
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int:
            rows = conn.execute(_EXPIRE_WAITING, (reason, now, older_than)).fetchall()
            for row in rows:
                self._append_status(conn, row, now)
            return len(rows)

        return await self._call(op)

    async def prune(self) -> int:
        """Delete final messages (with their parts) and settled events older than the
        retention; stale inbound parts too. Returns the messages deleted."""
        cutoff = self._clock() - self._settings.retention

        def op(conn: sqlite3.Connection) -> int:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM messages WHERE final_at IS NOT NULL AND final_at < ?",
                    (cutoff,),
                )
            ]
            conn.executemany("DELETE FROM parts WHERE message_id = ?", [(i,) for i in ids])
            conn.executemany("DELETE FROM part_aliases WHERE message_id = ?", [(i,) for i in ids])
            conn.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])
            conn.execute(
                "DELETE FROM events WHERE created_at < ? AND hook_state != ?",
                (cutoff, HOOK_PENDING),
            )
            return len(ids)

        return await self._call(op)
