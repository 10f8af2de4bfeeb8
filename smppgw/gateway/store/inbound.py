"""SQLite store: inbound (MO) messages reassembled from their parts
(:class:`~smppgw.gateway.store.interfaces.InboundParts`)."""

from __future__ import annotations

import sqlite3

from smppgw.gateway.store.eventlog import SqliteEventLog
from smppgw.gateway.store.interfaces import InboundBuilder

__all__ = ["SqliteInbound"]


class SqliteInbound(SqliteEventLog):
    """Parts kept until their message is whole (or given up), then its event."""

    async def add_inbound(
        self,
        key: str,
        seqnum: int,
        total: int,
        data: bytes,
        *,
        head: bytes,
        build: InboundBuilder,
    ) -> int | None:
        """Keep one part of an inbound message; when all ``total`` parts are here, write the
        event ``build(head, parts in order, ())`` returns and forget the parts, in the same
        commit. ``head`` is the caller's description of the message (addresses, coding),
        kept with the part for :meth:`expire_inbound`.

        A part received twice (the SMSC resent it) is kept once.

        Returns:
            The event's cursor once the message is complete, else None.
        """
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int | None:
            if total <= 1:
                return self._append_event(conn, build(head, [data], ()), now)
            conn.execute(
                "INSERT OR IGNORE INTO inbound_parts (key, seqnum, total, data, received_at, head)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key, seqnum, total, data, now, head),
            )
            rows = conn.execute(
                "SELECT seqnum, data FROM inbound_parts WHERE key = ? ORDER BY seqnum", (key,)
            ).fetchall()
            if [r[0] for r in rows] != list(range(1, total + 1)):
                return None
            conn.execute("DELETE FROM inbound_parts WHERE key = ?", (key,))
            body = build(head, [r[1] for r in rows], ())
            return self._append_event(conn, body, now)

        return await self._call(op)

    async def expire_inbound(self, older_than: float, build: InboundBuilder) -> int:
        """Give up waiting for the missing parts of inbound messages whose first part came
        before ``older_than``: write the event ``build(head, parts present, missing seqnums)``
        returns for each, and forget their parts.

        Returns:
            How many incomplete messages were written out.
        """
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int:
            keys = [
                r[0]
                for r in conn.execute(
                    "SELECT key FROM inbound_parts GROUP BY key HAVING min(received_at) < ?",
                    (older_than,),
                )
            ]
            for key in keys:
                rows = conn.execute(
                    "SELECT seqnum, total, data, head FROM inbound_parts WHERE key = ?"
                    " ORDER BY seqnum",
                    (key,),
                ).fetchall()
                present = {r[0] for r in rows}
                missing = tuple(n for n in range(1, rows[0][1] + 1) if n not in present)
                head = next((r[3] for r in rows if r[3] is not None), b"")
                body = build(head, [r[2] for r in rows], missing)
                self._append_event(conn, body, now)
                conn.execute("DELETE FROM inbound_parts WHERE key = ?", (key,))
            return len(keys)

        return await self._call(op)
