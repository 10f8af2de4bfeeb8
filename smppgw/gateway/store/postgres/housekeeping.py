"""Counts, receipt recovery and retention on PostgreSQL."""

from __future__ import annotations

from smppgw.gateway.events import DeliveryState
from smppgw.gateway.store.interfaces import WaitingPart
from smppgw.gateway.store.postgres.base import (
    PAYLOAD_COLUMNS,
    StoreBase,
    payload,
    request_decoder,
    with_parts,
)
from smppgw.gateway.store.postgres.queue import append_status
from smppgw.gateway.store.postgres.writer import HOOK_PENDING, Conn, Tx

__all__ = ["HousekeepingOps"]


class HousekeepingOps(StoreBase):
    """What the daemon's housekeeping asks of the store."""

    async def counts(self) -> dict[str, int]:
        """Messages by state (every state present, zeros included)."""

        async def read(conn: Conn) -> dict[str, int]:
            counts = dict.fromkeys(
                ("queued", "submitting", *(s.value for s in DeliveryState if s.is_final)), 0
            )
            counts["submitted"] = 0
            for state, count in await conn.fetch(
                "SELECT state, count(*) FROM messages GROUP BY state"
            ):
                counts[state] = count
            return counts

        return await self._writer.read(read)

    async def waiting_parts(self) -> list[WaitingPart]:
        """The parts still waiting for a receipt (whichever instance submitted them)."""

        async def read(conn: Conn) -> list[WaitingPart]:
            rows = await conn.fetch(
                "SELECT p.message_id, p.part, p.smsc_id, p.registered_at, m.request"
                " FROM messages m JOIN parts p ON p.message_id = m.id"
                " WHERE m.state = 'submitted' AND m.final_at IS NULL AND NOT p.dlr_final"
                " AND p.smsc_key IS NOT NULL AND p.smsc_id != '' ORDER BY p.message_id, p.part"
            )
            return [
                (mid, part, smsc_id, registered_at, request_decoder.decode(blob))
                for mid, part, smsc_id, registered_at, blob in rows
            ]

        return await self._writer.read(read)

    async def still_waiting(self, message_id: str, part: int) -> bool:
        """Whether a part is still waiting for its receipt (see :meth:`waiting_parts`)."""

        async def read(conn: Conn) -> bool:
            row = await conn.fetchrow(
                "SELECT 1 FROM parts p JOIN messages m ON m.id = p.message_id"
                " WHERE p.message_id = $1 AND p.part = $2 AND NOT p.dlr_final"
                " AND p.smsc_key IS NOT NULL AND m.state = 'submitted' AND m.final_at IS NULL",
                message_id,
                part,
            )
            return row is not None

        return await self._writer.read(read)

    async def expire_waiting(self, older_than: float, reason: str) -> int:
        """End as final ``unknown`` the messages submitted before ``older_than`` whose
        receipts never came, each with its event (once, whichever instances run it)."""
        now = self._clock()

        async def op(tx: Tx) -> int:
            rows = await tx.conn.fetch(
                with_parts(
                    "UPDATE messages SET state = 'unknown', status = 'UNKNOWN', reason = $1,"
                    " final_at = $2 WHERE state = 'submitted' AND final_at IS NULL"
                    f" AND sent_at < $3 RETURNING {PAYLOAD_COLUMNS}"
                ),
                reason,
                now,
                older_than,
            )
            for row in sorted(rows, key=lambda r: r[0]):
                await append_status(tx, await payload(tx.conn, row), now)
            return len(rows)

        return await self._writer.call(op, events=True)

    async def prune(self) -> int:
        """Delete final messages (with their parts) and settled events older than the
        retention. Returns the messages deleted."""
        cutoff = self._clock() - self._settings.retention

        async def op(tx: Tx) -> int:
            ids = [
                r[0]
                for r in await tx.conn.fetch(
                    "DELETE FROM messages WHERE final_at IS NOT NULL AND final_at < $1"
                    " RETURNING id",
                    cutoff,
                )
            ]
            if ids:
                await tx.conn.execute("DELETE FROM parts WHERE message_id = ANY($1::text[])", ids)
                await tx.conn.execute(
                    "DELETE FROM part_aliases WHERE message_id = ANY($1::text[])", ids
                )
            await tx.conn.execute(
                "DELETE FROM events WHERE created_at < $1 AND hook_state != $2",
                cutoff,
                HOOK_PENDING,
            )
            await tx.conn.execute(
                "DELETE FROM instances WHERE expires_at < $1", cutoff
            )  # instances gone for longer than the retention
            return len(ids)

        return await self._writer.call(op)
