"""The message queue on PostgreSQL (:class:`~smppgw.gateway.store.interfaces.MessageQueue`).

Claims are ``FOR UPDATE SKIP LOCKED``: instances claiming at the same time each take other
messages, none waits for another. A claimed message records its claimant (``claimed_by``); an
instance renews its lease in ``instances`` (see
:meth:`~smppgw.gateway.store.postgres.store.PostgresStore.heartbeat`), and the messages claimed
by an instance whose lease lapsed go back to the queue by the rule of a restart
(:meth:`QueueOps.requeue_claimed`). The writes of a claimant are fenced: once its messages were
taken back, its late ``release``, ``requeue``, ``mark_sending`` and ``finish_submit`` change
nothing of them (its accepted parts still count: they are in ``parts``).
"""

from __future__ import annotations

import asyncio
from typing import Final

import msgspec

from smppgw.gateway.correlate import Outcome
from smppgw.gateway.events import DeliveryState, PartPayload, StatusEvent, StatusPayload
from smppgw.gateway.events import encode_event as _encode_event
from smppgw.gateway.store.interfaces import ClaimedMessage
from smppgw.gateway.store.postgres.base import (
    PAYLOAD_COLUMNS,
    StoreBase,
    payload,
    request_decoder,
    status_payload,
    with_parts,
)
from smppgw.gateway.store.postgres.writer import Conn, Operation, Tx

__all__ = ["QueueOps", "all_accepted", "append_status"]

# A requeued message is flagged when a part of it may be on the wire unrecorded: marked
# sending, and fewer parts accepted than it has.
_FLAG: Final = (
    "possible_duplicate = possible_duplicate OR (sending AND (SELECT count(*) FROM parts"
    " WHERE message_id = messages.id AND smsc_id IS NOT NULL) < messages.parts)"
)
# Claimed by this instance ($2), or by one whose lease lapsed (or that left no lease).
_OURS_OR_LAPSED: Final = (
    "(claimed_by = $2 OR claimed_by IS NULL OR NOT EXISTS (SELECT 1 FROM instances i"
    " WHERE i.id = messages.claimed_by AND i.expires_at > $1))"
)
REQUEUE_LAPSED: Final = (
    f"UPDATE messages SET state = 'queued', due_at = $1, sending = false, claimed_by = NULL,"
    f" {_FLAG} WHERE state = 'submitting' AND claimed_by IS DISTINCT FROM $2 AND NOT EXISTS"
    " (SELECT 1 FROM instances i WHERE i.id = messages.claimed_by AND i.expires_at > $1)"
)
_CLAIM: Final = (
    "UPDATE messages m SET state = 'submitting', claims = m.claims + 1, claimed_by = $3,"
    " sending = false FROM (SELECT seq FROM messages WHERE state = 'queued' AND due_at <= $1"
    " ORDER BY priority DESC, seq LIMIT $2 FOR UPDATE SKIP LOCKED) c WHERE m.seq = c.seq"
    " RETURNING m.priority, m.seq, m.id, m.request, m.parts, m.claims, m.created_at"
)
_FINISH: Final = with_parts(
    "UPDATE messages SET state = $1, status = $2, err = $3, reason = $4, sent_at = $5,"
    " final_at = $6, possible_duplicate = possible_duplicate OR $7"
    f" WHERE id = $8 AND state = 'submitting' AND claimed_by = $9 RETURNING {PAYLOAD_COLUMNS}"
)
_APPLY_RECEIPT: Final = with_parts(
    "UPDATE messages SET state = $1, status = $2, err = $3, reason = $4, deliv_at = $5,"
    " final_at = $6 WHERE id = $7 AND state IN ('queued', 'submitting', 'submitted', 'unknown')"
    f" RETURNING {PAYLOAD_COLUMNS}"
)
_RESOLVE_UNKNOWN: Final = with_parts(
    "UPDATE messages SET state = $1, status = $2, err = NULL, reason = $3, final_at = $4"
    f" WHERE id = $5 AND state = 'unknown' RETURNING {PAYLOAD_COLUMNS}"
)


async def all_accepted(tx: Tx, message_id: str) -> bool:
    """Whether every part of a message was accepted by an SMSC (has a row with an id)."""
    row = await tx.conn.fetchrow(
        "SELECT m.parts, (SELECT count(*) FROM parts p WHERE p.message_id = m.id"
        " AND p.smsc_id IS NOT NULL) FROM messages m WHERE m.id = $1",
        message_id,
    )
    return row is not None and row[1] >= row[0]


async def append_status(tx: Tx, status: StatusPayload, now: float) -> int:
    return await tx.append_event(_encode_event(StatusEvent(status)), now)


class QueueOps(StoreBase):
    """Messages from acceptance to their final state."""

    _sending: list[str]
    _sending_op: asyncio.Future[None] | None

    async def requeue_claimed(self) -> int:
        """Put back in the queue the messages this instance claimed (a restart under the same
        ``instance``) and those of instances whose lease lapsed, flagging by the rule of a
        crash. Messages other live instances are submitting are left to them."""
        now = self._clock()

        async def op(tx: Tx) -> int:
            status = await tx.conn.execute(
                "UPDATE messages SET state = 'queued', due_at = $1, sending = false,"
                f" claimed_by = NULL, {_FLAG} WHERE state = 'submitting' AND {_OURS_OR_LAPSED}",
                now,
                self._instance,
            )
            return int(status.rpartition(" ")[2])

        return await self._writer.call(op)

    async def claim(self, limit: int) -> list[ClaimedMessage]:
        """Take up to ``limit`` due queued messages, highest priority then oldest first;
        instances claiming together skip each other's rows."""
        now = self._clock()

        async def op(tx: Tx) -> list[ClaimedMessage]:
            rows = await tx.conn.fetch(_CLAIM, now, limit, self._instance)
            rows.sort(key=lambda r: (-r[0], r[1]))
            again = [r[2] for r in rows if r[5] > 1]  # claimed before: parts may be accepted
            accepted: dict[str, set[int]] = {}
            if again:
                for mid, part in await tx.conn.fetch(
                    "SELECT message_id, part FROM parts WHERE message_id = ANY($1::text[])"
                    " AND smsc_id IS NOT NULL",
                    again,
                ):
                    accepted.setdefault(mid, set()).add(part)
            return [
                ClaimedMessage(
                    id=mid,
                    request=request_decoder.decode(blob),
                    parts=parts,
                    accepted=frozenset(accepted.get(mid, ())),
                    claims=claims,
                    created_at=created_at,
                )
                for _priority, _seq, mid, blob, parts, claims, created_at in rows
            ]

        return await self._writer.call(op)

    async def next_due(self) -> float | None:
        """The earliest ``due_at`` of a queued message, or None when the queue is empty."""

        async def read(conn: Conn) -> float | None:
            value = await conn.fetchval("SELECT min(due_at) FROM messages WHERE state = 'queued'")
            return None if value is None else float(value)

        return await self._writer.read(read)

    async def release(self, message_id: str, delay: float = 0.0) -> None:
        """Give a message this instance claimed back to the queue, due after ``delay``."""
        due = self._clock() + delay

        async def op(tx: Tx) -> None:
            await tx.conn.execute(
                "UPDATE messages SET state = 'queued', due_at = $1, sending = false,"
                " claimed_by = NULL WHERE id = $2 AND state = 'submitting' AND claimed_by = $3",
                due,
                message_id,
                self._instance,
            )

        await self._writer.call(op)

    async def requeue(self, message_id: str, delay: float) -> None:
        """Give a message whose sending failed back to the queue, flagged as after a crash."""
        due = self._clock() + delay

        async def op(tx: Tx) -> None:
            await tx.conn.execute(
                "UPDATE messages SET state = 'queued', due_at = $1, sending = false,"
                f" claimed_by = NULL, {_FLAG} WHERE id = $3 AND state = 'submitting'"
                " AND claimed_by = $2",
                due,
                self._instance,
                message_id,
            )

        await self._writer.call(op)

    async def mark_sending(self, message_id: str) -> None:
        """Record durably that a part of a claimed message is about to be written; the marks
        asked for before the writer's next batch go in one statement of it."""
        self._sending.append(message_id)
        if self._sending_op is None:
            self._sending_op = asyncio.ensure_future(self._writer.call(self._mark_sending_op()))
            self._sending_op.add_done_callback(self._sending_done)
        await asyncio.shield(self._sending_op)

    def _sending_done(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None and self._sending_op is future:
            self._sending_op = None  # never queued (the store closed): start afresh
            self._sending = []

    def _mark_sending_op(self) -> Operation[None]:
        taken: list[list[str]] = []

        async def op(tx: Tx) -> None:
            if not taken:  # the first run takes the ids; a rerun uses the same
                taken.append(self._sending)
                self._sending = []
                self._sending_op = None  # later callers go in the next batch
            await tx.conn.execute(
                "UPDATE messages SET sending = true WHERE id = ANY($1::text[])"
                " AND state = 'submitting' AND claimed_by = $2",
                taken[0],
                self._instance,
            )

        return op

    async def finish_submit(
        self,
        message_id: str,
        state: DeliveryState,
        *,
        err: str | None = None,
        reason: str | None = None,
        possible_duplicate: bool = False,
        accepted: tuple[DeliveryState, str | None] | None = None,
    ) -> int | None:
        """Record the outcome of submitting every part, with its event (see the protocol)."""
        now = self._clock()

        async def op(tx: Tx) -> int | None:
            final, why = state, reason
            if (
                state is DeliveryState.UNKNOWN
                and accepted is not None
                and await all_accepted(tx, message_id)
            ):
                final, why = accepted
            row = await tx.conn.fetchrow(
                _FINISH,
                final.value,
                final.value.upper(),
                err,
                why,
                now,
                now if final.is_final else None,
                possible_duplicate,
                message_id,
                self._instance,
            )
            if row is None:
                await tx.conn.execute(
                    "UPDATE messages SET sent_at = coalesce(sent_at, $1) WHERE id = $2",
                    now,
                    message_id,
                )
                return None
            return await append_status(tx, await payload(tx.conn, row), now)

        return await self._writer.call(op, events=True)

    async def resolve_unknown(
        self, message_id: str, state: DeliveryState, reason: str | None
    ) -> int | None:
        """An ``unknown`` message whose parts all turn out accepted takes ``state``."""
        now = self._clock()

        async def op(tx: Tx) -> int | None:
            if not await all_accepted(tx, message_id):
                return None
            row = await tx.conn.fetchrow(
                _RESOLVE_UNKNOWN, state.value, state.value.upper(), reason, now, message_id
            )
            if row is None:
                return None
            return await append_status(tx, await payload(tx.conn, row), now)

        return await self._writer.call(op, events=True)

    async def apply_receipt(
        self,
        message_id: str,
        state: DeliveryState,
        result: Outcome | None,
        parts: tuple[PartPayload, ...] | None = None,
        *,
        via: str | None = None,
    ) -> int | None:
        """Record a message's final state from its receipts, once, with its event."""
        if not state.is_final or result is None:
            return None
        now = self._clock()
        values = (state.value, result.status, result.err, result.reason, now, now, message_id)

        async def op(tx: Tx) -> int | None:
            row = await tx.conn.fetchrow(_APPLY_RECEIPT, *values)
            if row is None:
                return None
            status = await payload(tx.conn, row, parts)
            if via is not None:
                status = msgspec.structs.replace(status, via=via)
            return await append_status(tx, status, now)

        return await self._writer.call(op, events=True)

    async def status(
        self, *, message_id: str | None = None, custom: str | None = None
    ) -> StatusPayload | None:
        """A message's status by our id or the client's reference."""

        async def read(conn: Conn) -> StatusPayload | None:
            found: str | None = message_id
            if found is None:
                found = await conn.fetchval("SELECT id FROM messages WHERE custom = $1", custom)
                if found is None:
                    return None
            return await status_payload(conn, found)

        return await self._writer.read(read)
