"""SQLite store: the message queue (:class:`~smppgw.gateway.store.interfaces.MessageQueue`)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from smppgw.gateway.correlate import Outcome
from smppgw.gateway.events import DeliveryState, PartPayload, StatusPayload
from smppgw.gateway.intake import SubmitRequest, SubmitResult
from smppgw.gateway.store.eventlog import SqliteEventLog, status_of
from smppgw.gateway.store.interfaces import ClaimedMessage
from smppgw.gateway.store.records import decode_request, encode_request

__all__ = ["SqliteQueue", "all_accepted"]

_FINISH_SUBMIT: Final = (
    "UPDATE messages SET state = ?, status = ?, err = ?, reason = ?, sent_at = ?, final_at = ?,"
    " possible_duplicate = possible_duplicate OR ? WHERE id = ? AND state = 'submitting'"
    " RETURNING id, mobile, state, status, parts, created_at, sent_at, deliv_at, custom, err,"
    " reason, possible_duplicate, retried"
)
_APPLY_RECEIPT: Final = (
    "UPDATE messages SET state = ?, status = ?, err = ?, reason = ?, deliv_at = ?, final_at = ?"
    " WHERE id = ? AND state IN ('queued', 'submitting', 'submitted', 'unknown')"
    " RETURNING id, mobile, state, status, parts, created_at, sent_at, deliv_at, custom, err,"
    " reason, possible_duplicate, retried"
)

_RESOLVE_UNKNOWN: Final = (
    "UPDATE messages SET state = ?, status = ?, err = NULL, reason = ?, final_at = ?"
    " WHERE id = ? AND state = 'unknown'"
    " RETURNING id, mobile, state, status, parts, created_at, sent_at, deliv_at, custom, err,"
    " reason, possible_duplicate, retried"
)

_REQUEUE_CLAIMED: Final = (
    "UPDATE messages SET state = 'queued', due_at = ?, sending = 0,"
    " possible_duplicate = possible_duplicate OR (sending AND (SELECT count(*) FROM parts"
    " WHERE message_id = messages.id AND smsc_id IS NOT NULL) < messages.parts)"
    " WHERE state = 'submitting'"
)

_INSERT_MESSAGE: Final = (
    "INSERT INTO messages (id, custom, mobile, request, parts, priority, state, status,"
    " created_at, due_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', 'QUEUED', ?, ?)"
)


def _message_row(
    message_id: str, request: SubmitRequest, blob: bytes, now: float
) -> tuple[object, ...]:
    return (
        message_id,
        request.custom,
        request.to,
        blob,
        request.parts,
        request.priority,
        now,
        now,
    )


class SqliteQueue(SqliteEventLog):
    """Messages from acceptance to their final state."""

    async def add_messages(self, requests: Sequence[SubmitRequest]) -> list[SubmitResult]:
        """Store new messages as ``queued`` (one commit for all).

        A request whose ``custom`` is already stored (or repeated within ``requests``) is not
        stored again: its result carries the first message's id and ``duplicate=True``.
        """
        now = self._clock()
        rows = [(self._new_id(), r, encode_request(r)) for r in requests]

        def op(conn: sqlite3.Connection) -> list[SubmitResult]:
            if all(request.custom is None for _, request, _ in rows):
                conn.executemany(_INSERT_MESSAGE, [_message_row(*row, now) for row in rows])
                return [SubmitResult(message_id, request.parts) for message_id, request, _ in rows]
            results: list[SubmitResult] = []
            for message_id, request, blob in rows:
                if request.custom is not None:
                    found = conn.execute(
                        "SELECT id, parts FROM messages WHERE custom = ?", (request.custom,)
                    ).fetchone()
                    if found is not None:
                        results.append(SubmitResult(found[0], found[1], duplicate=True))
                        continue
                conn.execute(_INSERT_MESSAGE, _message_row(message_id, request, blob, now))
                results.append(SubmitResult(message_id, request.parts))
            return results

        return await self._call(op)

    # --- the queue --------------------------------------------------------------------------

    async def requeue_claimed(self) -> int:
        """Put every claimed (``submitting``) message back in the queue; at start only.

        Only those with a part that may have been written to an SMSC (marked by
        :meth:`mark_sending` before it left) whose acceptance was not recorded are flagged
        ``possible_duplicate``: that part is sent again. A message claimed but still waiting
        for a bind when the process died went nowhere and is not flagged.
        """

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(_REQUEUE_CLAIMED, (self._clock(),))
            return cur.rowcount

        return await self._call(op)

    async def claim(self, limit: int) -> list[ClaimedMessage]:
        """Take up to ``limit`` due queued messages, highest priority then oldest first."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> list[ClaimedMessage]:
            # One statement claims the batch; RETURNING gives no order, so sort after.
            rows = conn.execute(
                "UPDATE messages SET state = 'submitting', claims = claims + 1 WHERE seq IN"
                " (SELECT seq FROM messages WHERE state = 'queued' AND due_at <= ?"
                " ORDER BY priority DESC, seq LIMIT ?)"
                " RETURNING priority, seq, id, request, parts, claims, created_at",
                (now, limit),
            ).fetchall()
            rows.sort(key=lambda r: (-r[0], r[1]))
            claimed = []
            for _priority, _seq, message_id, blob, parts, claims, created_at in rows:
                accepted = (
                    frozenset(
                        r[0]
                        for r in conn.execute(
                            "SELECT part FROM parts WHERE message_id = ? AND smsc_id IS NOT NULL",
                            (message_id,),
                        )
                    )
                    if claims > 1  # claimed before: some parts may have been accepted already
                    else frozenset()
                )
                claimed.append(
                    ClaimedMessage(
                        id=message_id,
                        request=decode_request(blob),
                        parts=parts,
                        accepted=accepted,
                        claims=claims,
                        created_at=created_at,
                    )
                )
            return claimed

        return await self._call(op)

    async def next_due(self) -> float | None:
        """The earliest ``due_at`` of a queued message, or None when the queue is empty."""

        def op(conn: sqlite3.Connection) -> float | None:
            row = conn.execute("SELECT min(due_at) FROM messages WHERE state = 'queued'").fetchone()
            return None if row[0] is None else float(row[0])

        return await self._call(op)

    async def release(self, message_id: str, delay: float = 0.0) -> None:
        """Give a claimed message back to the queue (the bind manager stopped before it was
        sent); it is due again after ``delay`` seconds."""
        due = self._clock() + delay

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE messages SET state = 'queued', due_at = ?, sending = 0 WHERE id = ?"
                " AND state = 'submitting'",
                (due, message_id),
            )

        await self._call(op)

    async def requeue(self, message_id: str, delay: float) -> None:
        """Give a claimed message whose sending failed unexpectedly back to the queue, due
        after ``delay`` seconds: flagged ``possible_duplicate`` as after a crash (only if a
        part may be on the wire unrecorded), its recorded parts not sent again."""
        due = self._clock() + delay

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(_REQUEUE_CLAIMED + " AND id = ?", (due, message_id))

        await self._call(op)

    async def mark_sending(self, message_id: str) -> None:
        """Record that a part of a claimed message is about to be written to an SMSC; returns
        once that is durable. After a crash only such messages are flagged
        ``possible_duplicate`` (see :meth:`requeue_claimed`).

        The marks of every message that asks before the writer's next batch go in one
        statement of that batch: a burst of sends costs one operation, not one each.
        """
        self._sending.append(message_id)
        if self._sending_op is None:
            self._sending_op = asyncio.ensure_future(self._call(self._mark_sending_op()))
            self._sending_op.add_done_callback(self._sending_done)
        await asyncio.shield(self._sending_op)

    def _sending_done(self, future: asyncio.Future[None]) -> None:
        if (
            not future.cancelled()
            and future.exception() is not None
            and (self._sending_op is future)
        ):
            # Never queued (the store closed): its callers have the error; start afresh.
            self._sending_op = None
            self._sending = []

    def _mark_sending_op(self) -> Callable[[sqlite3.Connection], None]:
        taken: list[list[tuple[str]]] = []

        def op(conn: sqlite3.Connection) -> None:
            if not taken:  # the first run takes the ids; a rerun (slow path) uses the same
                taken.append([(i,) for i in self._sending])
                self._sending = []
                self._sending_op = None  # later callers go in the next batch
            conn.executemany("UPDATE messages SET sending = 1 WHERE id = ?", taken[0])

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
        """Record the outcome of submitting every part and write its event.

        ``state`` is SUBMITTED (every part accepted, receipts awaited), SENT (every part
        accepted, no receipt asked for: final), FAILED or UNKNOWN. Nothing changes if receipts
        already made the message final (a receipt may beat the last response). An UNKNOWN
        message whose parts all turn out accepted (a late response registered the one that
        timed out) takes the state and reason of ``accepted`` instead, when given.

        Returns:
            The event's cursor, or None when nothing changed.
        """
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int | None:
            final, why = state, reason
            if (
                state is DeliveryState.UNKNOWN
                and accepted is not None
                and all_accepted(conn, message_id)
            ):
                final, why = accepted
            row = conn.execute(
                _FINISH_SUBMIT,
                (
                    final.value,
                    final.value.upper(),
                    err,
                    why,
                    now,
                    now if final.is_final else None,
                    possible_duplicate,
                    message_id,
                ),
            ).fetchone()
            if row is None:
                conn.execute(
                    "UPDATE messages SET sent_at = coalesce(sent_at, ?) WHERE id = ?",
                    (now, message_id),
                )
                return None
            return self._append_status(conn, row, now)

        return await self._call(op)

    async def resolve_unknown(
        self, message_id: str, state: DeliveryState, reason: str | None
    ) -> int | None:
        """An ``unknown`` message whose parts all turn out accepted (a late response registered
        the one that timed out) takes ``state`` and ``reason``, with its event.

        Returns:
            The event's cursor, or None when nothing changed (not unknown, or a part still
            without an SMSC id).
        """
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int | None:
            if not all_accepted(conn, message_id):
                return None
            row = conn.execute(
                _RESOLVE_UNKNOWN, (state.value, state.value.upper(), reason, now, message_id)
            ).fetchone()
            if row is None:
                return None
            return self._append_status(conn, row, now)

        return await self._call(op)

    async def apply_receipt(
        self,
        message_id: str,
        state: DeliveryState,
        result: Outcome | None,
        parts: tuple[PartPayload, ...] | None = None,
        *,
        via: str | None = None,
    ) -> int | None:
        """Apply a message's aggregated state after a receipt (see :func:`correlate.aggregate`).

        A final state is recorded once (later receipts do not change a final message) with
        the status, err and reason of ``result`` (:func:`correlate.outcome`: the parts' roll-up);
        a non-final one changes nothing. ``parts``, when the caller knows them (a one-part
        message and its receipt), spares reading them back. ``via`` goes into the event as is
        (``"query_sm"`` when the state came from a query_sm answer, not a receipt).

        Returns:
            The event's cursor, or None when nothing changed.
        """
        if not state.is_final or result is None:
            return None
        now = self._clock()
        values = (state.value, result.status, result.err, result.reason, now, now, message_id)

        def op(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(_APPLY_RECEIPT, values).fetchone()
            if row is None:
                return None
            return self._append_status(conn, row, now, parts, msgspec.UNSET if via is None else via)

        return await self._call(op)

    async def status(
        self, *, message_id: str | None = None, custom: str | None = None
    ) -> StatusPayload | None:
        """A message's status by our id or the client's reference."""

        def op(conn: sqlite3.Connection) -> StatusPayload | None:
            if message_id is not None:
                return status_of(conn, message_id)
            row = conn.execute("SELECT id FROM messages WHERE custom = ?", (custom,)).fetchone()
            return None if row is None else status_of(conn, row[0])

        return await self._call(op)


def all_accepted(conn: sqlite3.Connection, message_id: str) -> bool:
    """Whether every part of a message was accepted by an SMSC (has a row with an id)."""
    row = conn.execute(
        "SELECT m.parts, (SELECT count(*) FROM parts p WHERE p.message_id = m.id"
        " AND p.smsc_id IS NOT NULL) FROM messages m WHERE m.id = ?",
        (message_id,),
    ).fetchone()
    return row is not None and row[1] >= row[0]
