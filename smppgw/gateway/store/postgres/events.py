"""The event log, inbound (MO) reassembly and webhook delivery state on PostgreSQL.

Parts of one inbound message may arrive on binds of different instances: adding a part takes
the message's advisory lock, so exactly one instance sees it complete and writes its event.
Webhook deliveries are claimed like messages (``FOR UPDATE SKIP LOCKED``, leased to the
instance): each event is delivered by one instance at a time, and by another once the
claimant's lease lapses; attempts and due times are in the row, so they survive any instance.
"""

from __future__ import annotations

from smppgw.gateway.events import StoredEvent
from smppgw.gateway.store.interfaces import InboundBuilder
from smppgw.gateway.store.postgres.base import StoreBase
from smppgw.gateway.store.postgres.correlation import lock_keys
from smppgw.gateway.store.postgres.writer import HOOK_DONE, HOOK_NONE, HOOK_PENDING, Conn, Tx
from smppgw.gateway.webhook import PendingDelivery

__all__ = ["EventOps"]


class EventOps(StoreBase):
    """Reading the event log, inbound parts, webhook deliveries."""

    async def events_after(self, cursor: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events after ``cursor``, oldest first (every instance's)."""

        async def read(conn: Conn) -> list[StoredEvent]:
            rows = await conn.fetch(
                "SELECT cursor, body FROM events WHERE cursor > $1 ORDER BY cursor LIMIT $2",
                cursor,
                limit,
            )
            return [StoredEvent(r[0], bytes(r[1])) for r in rows]

        return await self._writer.read(read)

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
        """Keep one part of an inbound message; the part completing it writes the event."""
        now = self._clock()
        schema = self._settings.schema

        async def op(tx: Tx) -> int | None:
            if total <= 1:
                return await tx.append_event(build(head, [data], ()), now)
            await lock_keys(tx, schema, "inbound", (key,))
            await tx.conn.execute(
                "INSERT INTO inbound_parts (key, seqnum, total, data, received_at, head)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key, seqnum) DO NOTHING",
                key,
                seqnum,
                total,
                data,
                now,
                head,
            )
            rows = await tx.conn.fetch(
                "SELECT seqnum, data FROM inbound_parts WHERE key = $1 ORDER BY seqnum", key
            )
            if [r[0] for r in rows] != list(range(1, total + 1)):
                return None
            await tx.conn.execute("DELETE FROM inbound_parts WHERE key = $1", key)
            return await tx.append_event(build(head, [bytes(r[1]) for r in rows], ()), now)

        return await self._writer.call(op, events=True)

    async def expire_inbound(self, older_than: float, build: InboundBuilder) -> int:
        """Write out the inbound messages whose first part came before ``older_than`` with
        the parts present; an instance finding one already written out skips it."""
        now = self._clock()
        schema = self._settings.schema

        async def op(tx: Tx) -> int:
            keys = [
                r[0]
                for r in await tx.conn.fetch(
                    "SELECT key FROM inbound_parts GROUP BY key HAVING min(received_at) < $1"
                    " ORDER BY key",
                    older_than,
                )
            ]
            done = 0
            for key in keys:
                await lock_keys(tx, schema, "inbound", (key,))
                rows = await tx.conn.fetch(
                    "SELECT seqnum, total, data, head FROM inbound_parts WHERE key = $1"
                    " ORDER BY seqnum",
                    key,
                )
                if not rows:
                    continue  # another instance wrote it out meanwhile
                present = {r[0] for r in rows}
                missing = tuple(n for n in range(1, rows[0][1] + 1) if n not in present)
                head = next((bytes(r[3]) for r in rows if r[3] is not None), b"")
                await tx.append_event(build(head, [bytes(r[2]) for r in rows], missing), now)
                await tx.conn.execute("DELETE FROM inbound_parts WHERE key = $1", key)
                done += 1
            return done

        return await self._writer.call(op, events=True)

    async def pending(self, limit: int) -> list[PendingDelivery]:
        """Claim up to ``limit`` events awaiting a webhook delivery, earliest due first:
        those unclaimed, claimed by this instance, or whose claimant's lease lapsed."""
        now = self._clock()
        lease = now + self._settings.claim_lease

        async def op(tx: Tx) -> list[PendingDelivery]:
            rows = await tx.conn.fetch(
                "UPDATE events e SET hook_owner = $3, hook_lease = $4 FROM (SELECT cursor"
                " FROM events WHERE hook_state = $5 AND (hook_owner IS NULL OR hook_owner = $3"
                " OR hook_lease <= $2) ORDER BY hook_due, cursor LIMIT $1 FOR UPDATE SKIP LOCKED)"
                " AS c WHERE e.cursor = c.cursor"
                " RETURNING e.cursor, e.body, e.hook_attempts, e.hook_due",
                limit,
                now,
                self._instance,
                lease,
                HOOK_PENDING,
            )
            found = [PendingDelivery(r[0], bytes(r[1]), r[2], r[3]) for r in rows]
            found.sort(key=lambda p: (p.due_at, p.cursor))
            return found

        return await self._writer.call(op)

    async def webhook_backlog(self) -> int:
        """How many events await a webhook delivery (neither delivered nor given up)."""

        async def read(conn: Conn) -> int:
            count = await conn.fetchval(
                "SELECT count(*) FROM events WHERE hook_state = $1", HOOK_PENDING
            )
            return int(count)

        return await self._writer.read(read)

    async def result(
        self,
        cursor: int,
        *,
        delivered: bool,
        attempts: int,
        next_attempt_at: float | None,
        error: str | None,
    ) -> None:
        """Record a webhook attempt's outcome (the claim ends with it)."""
        if delivered:
            state = HOOK_DONE
        elif next_attempt_at is None:
            state = HOOK_NONE
        else:
            state = HOOK_PENDING

        async def op(tx: Tx) -> None:
            await tx.conn.execute(
                "UPDATE events SET hook_state = $1, hook_attempts = $2, hook_due = $3,"
                " hook_error = $4, hook_owner = NULL, hook_lease = NULL WHERE cursor = $5",
                state,
                attempts,
                next_attempt_at,
                error,
                cursor,
            )

        await self._writer.call(op)
