"""SQLite store: the operators' queries (:class:`~smppgw.gateway.store.interfaces.OperatorStore`):
select messages by a :class:`MessageFilter`, cancel the queued ones, queue failed ones again,
and pages of messages (a message's history is the event log's, :mod:`.eventlog`).

Each function runs inside one store operation (one transaction) on the store's thread; the
caller hands it how a status payload is read and how a status event is appended.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Final

from smppgw.gateway.events import AdminEvent, AdminPayload, StatusPayload, encode_event
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.selection import AdminOutcome, ListPage, MessageFilter, MessageOutcome
from smppgw.gateway.store.eventlog import SqliteEventLog, payload_of
from smppgw.gateway.store.records import decode_request

__all__ = ["PAYLOAD_COLUMNS", "SqliteOperators"]

PAYLOAD_COLUMNS: Final = (
    "id, mobile, state, status, parts, created_at, sent_at, deliv_at, custom, err, reason,"
    " possible_duplicate, retried"
)
CANCEL_REASON: Final = "cancelled by an operator"
_RETRIABLE: Final = ("failed", "unknown")
_CANCEL: Final = (
    "UPDATE messages SET state = 'cancelled', status = 'CANCELLED', err = NULL, reason = ?,"  # noqa: S608 - placeholders only
    " final_at = ? WHERE id = ? AND state IN ({states}) RETURNING " + PAYLOAD_COLUMNS
)
_RETRY: Final = (
    "UPDATE messages SET state = 'queued', status = 'QUEUED', err = NULL, reason = NULL,"  # noqa: S608 - placeholders only
    " final_at = NULL, deliv_at = NULL, due_at = ?, sending = 0, retried = retried + 1,"
    " possible_duplicate = possible_duplicate OR state = 'unknown'"
    " WHERE id = ? RETURNING " + PAYLOAD_COLUMNS
)

ReadPayload = Callable[[sqlite3.Connection, tuple[Any, ...]], StatusPayload]
AppendStatus = Callable[[sqlite3.Connection, tuple[Any, ...], float], int]


def _where(selection: MessageFilter) -> tuple[str, list[object]]:
    clauses: list[str] = []
    args: list[object] = []
    if selection.ids:
        clauses.append(f"id IN ({', '.join('?' * len(selection.ids))})")
        args.extend(selection.ids)
    if selection.custom is not None:
        clauses.append("custom = ?")
        args.append(selection.custom)
    if selection.states:
        clauses.append(f"state IN ({', '.join('?' * len(selection.states))})")
        args.extend(selection.states)
    if selection.to is not None:
        clauses.append("mobile = ?")
        args.append(selection.to)
    if selection.custom_prefix is not None:
        # A range on the unique index of custom, not LIKE (whose wildcards the prefix may hold).
        clauses.append("custom >= ? AND custom < ?")
        args.extend((selection.custom_prefix, selection.custom_prefix + "\U0010ffff"))
    if selection.since is not None:
        clauses.append("created_at >= ?")
        args.append(selection.since)
    if selection.until is not None:
        clauses.append("created_at < ?")
        args.append(selection.until)
    return (" AND ".join(clauses) or "1"), args


def select(conn: sqlite3.Connection, selection: MessageFilter, limit: int) -> list[tuple[Any, ...]]:
    """Up to ``limit`` messages of the selection, oldest first: (id, state, schedule set)."""
    where, args = _where(selection)
    return conn.execute(
        f"SELECT id, state, request FROM messages WHERE {where} ORDER BY seq LIMIT ?",  # noqa: S608 - placeholders only
        (*args, limit),
    ).fetchall()


def _missing(selection: MessageFilter, found: Sequence[tuple[Any, ...]]) -> list[MessageOutcome]:
    seen = {row[0] for row in found}
    missing = [i for i in selection.ids if i not in seen]
    if selection.custom is not None and not found:
        missing.append(selection.custom)
    return [MessageOutcome(key, AdminOutcome.NOT_FOUND) for key in missing]


def mark_cancelled(
    conn: sqlite3.Connection,
    message_id: str,
    states: tuple[str, ...],
    *,
    now: float,
    append: AppendStatus,
) -> bool:
    """Make a message in one of ``states`` final ``cancelled`` with its event."""
    marks = ", ".join("?" * len(states))
    row = conn.execute(
        _CANCEL.format(states=marks), (CANCEL_REASON, now, message_id, *states)
    ).fetchone()
    if row is None:
        return False
    append(conn, row, now)
    return True


def cancel_queued(
    conn: sqlite3.Connection,
    selection: MessageFilter,
    limit: int,
    *,
    now: float,
    append: AppendStatus,
    scheduled: Callable[[bytes], bool],
) -> tuple[list[MessageOutcome], list[str]]:
    """Cancel the queued messages of the selection.

    Returns:
        Each message's outcome (the ones at the SMSC for a scheduled delivery left out), and
        the ids of those: ``cancel_sm`` may still withdraw them.
    """
    rows = select(conn, selection, limit)
    outcomes = _missing(selection, rows)
    at_smsc: list[str] = []
    for message_id, state, blob in rows:
        if state == "queued" and mark_cancelled(
            conn, message_id, ("queued",), now=now, append=append
        ):
            outcomes.append(MessageOutcome(message_id, AdminOutcome.CANCELLED, "cancelled"))
        elif state == "submitted" and scheduled(blob):
            at_smsc.append(message_id)
        else:
            outcomes.append(
                MessageOutcome(message_id, AdminOutcome.NOT_CANCELLABLE, state, _why_not(state))
            )
    return outcomes, at_smsc


def _why_not(state: str) -> str:
    if state == "submitting":
        return "being sent to the SMSC now"
    if state == "submitted":
        return "already sent to the SMSC for immediate delivery"
    return f"already final ({state})"


def retry_failed(
    conn: sqlite3.Connection,
    selection: MessageFilter,
    limit: int,
    *,
    now: float,
    append: AppendStatus,
) -> list[MessageOutcome]:
    """Queue the failed and unknown messages of the selection again under their own ids.

    The parts an SMSC accepted and whose receipt said delivered are kept (not sent again);
    the others are sent again. A message whose outcome was unknown is flagged
    ``possible_duplicate``: its first attempt may have been delivered.
    """
    rows = select(conn, selection, limit)
    outcomes = _missing(selection, rows)
    for message_id, state, _blob in rows:
        if state not in _RETRIABLE:
            outcomes.append(
                MessageOutcome(
                    message_id,
                    AdminOutcome.NOT_RETRIABLE,
                    state,
                    f"not failed or unknown ({state})",
                )
            )
            continue
        conn.execute(
            "DELETE FROM parts WHERE message_id = ?"
            " AND (dlr_stat IS NULL OR dlr_stat != 'DELIVRD')",
            (message_id,),
        )
        conn.execute("DELETE FROM part_aliases WHERE message_id = ?", (message_id,))
        row = conn.execute(_RETRY, (now, message_id)).fetchone()
        append(conn, row, now)
        outcomes.append(MessageOutcome(message_id, AdminOutcome.RETRIED, "queued"))
    return outcomes


def list_page(
    conn: sqlite3.Connection,
    selection: MessageFilter,
    limit: int,
    after: int | None,
    read: ReadPayload,
) -> ListPage:
    """Up to ``limit`` messages of the selection, newest first, older than key ``after``."""
    where, args = _where(selection)
    if after is not None:
        where += " AND seq < ?"
        args.append(after)
    rows = conn.execute(
        f"SELECT seq, {PAYLOAD_COLUMNS} FROM messages WHERE {where}"  # noqa: S608 - placeholders only
        " ORDER BY seq DESC LIMIT ?",
        (*args, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return ListPage(
        tuple(read(conn, tuple(r[1:])) for r in rows), rows[-1][0] if more and rows else None
    )


class SqliteOperators(SqliteEventLog):
    """The operators' ops on the SQLite store."""

    async def cancel_queued(
        self, selection: MessageFilter, limit: int
    ) -> tuple[list[MessageOutcome], list[str]]:
        """Make the queued messages of ``selection`` (at most ``limit`` looked at, oldest
        first) final ``cancelled``, each with its status event. The messages of the selection
        waiting at an SMSC for a scheduled delivery are left as they are: their ids are
        returned apart (``cancel_sm`` may withdraw them, then :meth:`cancelled_at_smsc`)."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> tuple[list[MessageOutcome], list[str]]:
            return cancel_queued(
                conn, selection, limit, now=now, append=self._append_status, scheduled=_scheduled
            )

        return await self._call(op)

    async def cancelled_at_smsc(self, message_id: str) -> bool:
        """The SMSC withdrew a scheduled message (cancel_sm answered ESME_ROK): final
        ``cancelled`` with its event. False when it is no longer ``submitted``."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> bool:
            return mark_cancelled(
                conn, message_id, ("submitted",), now=now, append=self._append_status
            )

        return await self._call(op)

    async def scheduled_parts(
        self, message_id: str
    ) -> tuple[SubmitRequest, list[tuple[int, str]]] | None:
        """A message waiting at the SMSC (``submitted``): its request and (part, SMSC id) of
        each accepted part; None when it is not waiting."""

        def op(conn: sqlite3.Connection) -> tuple[SubmitRequest, list[tuple[int, str]]] | None:
            row = conn.execute(
                "SELECT request FROM messages WHERE id = ? AND state = 'submitted'",
                (message_id,),
            ).fetchone()
            if row is None:
                return None
            parts = conn.execute(
                "SELECT part, smsc_id FROM parts WHERE message_id = ? AND smsc_id IS NOT NULL"
                " ORDER BY part",
                (message_id,),
            ).fetchall()
            return decode_request(row[0]), [(p, i) for p, i in parts]

        return await self._call(op)

    async def retry_failed(self, selection: MessageFilter, limit: int) -> list[MessageOutcome]:
        """Queue the failed and unknown messages of ``selection`` again under their own ids,
        each with its status event (see :func:`retry_failed`)."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> list[MessageOutcome]:
            return retry_failed(conn, selection, limit, now=now, append=self._append_status)

        return await self._call(op)

    async def list_messages(
        self, selection: MessageFilter, limit: int, after: int | None
    ) -> ListPage:
        """A page of messages, newest first (see :class:`ListPage`)."""
        return await self._call(lambda conn: list_page(conn, selection, limit, after, payload_of))

    async def add_admin_event(self, payload: AdminPayload) -> int:
        """Append an operator's action to the event log (``sms:admin``); returns its cursor."""
        body = encode_event(AdminEvent(payload))
        now = self._clock()
        return await self._call(lambda conn: self._append_event(conn, body, now))


def _scheduled(blob: bytes) -> bool:
    """Whether a stored request asked for a scheduled delivery."""
    return decode_request(blob).schedule is not None
