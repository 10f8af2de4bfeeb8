"""Accepting messages on PostgreSQL: every ``add_messages`` of one batch in one statement.

With PostgreSQL each statement is a round trip to the server, so a batch of 200 intake calls
would cost 200 round trips before its one commit. The calls that arrive before the writer's
next batch therefore share one operation (as ``mark_sending``'s do): one ``INSERT ... SELECT
FROM unnest(...)`` for all their messages, one look-up of the ``custom`` values already
stored, then each caller gets its own results.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from smppgw.gateway.intake import SubmitRequest, SubmitResult
from smppgw.gateway.store.postgres.base import StoreBase, msgpack
from smppgw.gateway.store.postgres.writer import Operation, Tx

__all__ = ["AcceptOps"]

_INSERT: Final = (
    "INSERT INTO messages (id, custom, mobile, request, parts, priority, state, status,"
    " created_at, due_at) SELECT i, c, m, r, p, pr, 'queued', 'QUEUED', t, t FROM"
    " unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::int[], $6::int[],"
    " $7::float8[]) AS u(i, c, m, r, p, pr, t) ON CONFLICT (custom) DO NOTHING RETURNING id"
)


@dataclass(slots=True)
class _Adding:
    """One caller's requests, their new ids, and (once committed) their results."""

    requests: Sequence[SubmitRequest]
    ids: list[str]
    now: float
    results: list[SubmitResult] = field(default_factory=list)


async def _insert(tx: Tx, callers: Sequence[_Adding]) -> None:
    """Store every caller's new messages; a ``custom`` stored before (by any instance) or
    repeated earlier in ``callers`` gets the first message's id and ``duplicate=True``."""
    first: dict[str, tuple[str, int]] = {}  # custom -> (id, parts) of its first request here
    rows: list[tuple[str, SubmitRequest, float]] = []
    for caller in callers:
        for message_id, request in zip(caller.ids, caller.requests, strict=True):
            if request.custom is not None:
                if request.custom in first:
                    continue
                first[request.custom] = (message_id, request.parts)
            rows.append((message_id, request, caller.now))
    inserted = {
        r[0]
        for r in await tx.conn.fetch(
            _INSERT,
            [i for i, _, _ in rows],
            [r.custom for _, r, _ in rows],
            [r.to for _, r, _ in rows],
            [msgpack.encode(r) for _, r, _ in rows],
            [r.parts for _, r, _ in rows],
            [r.priority for _, r, _ in rows],
            [t for _, _, t in rows],
        )
    }
    lost = [c for c, (i, _) in first.items() if i not in inserted]
    existing: dict[str, tuple[str, int]] = {}
    if lost:
        found = await tx.conn.fetch(
            "SELECT custom, id, parts FROM messages WHERE custom = ANY($1::text[])", lost
        )
        existing = {r[0]: (r[1], r[2]) for r in found}
    for caller in callers:
        caller.results = [
            _result(message_id, request, first, existing)
            for message_id, request in zip(caller.ids, caller.requests, strict=True)
        ]


def _result(
    message_id: str,
    request: SubmitRequest,
    first: dict[str, tuple[str, int]],
    existing: dict[str, tuple[str, int]],
) -> SubmitResult:
    custom = request.custom
    if custom is None:
        return SubmitResult(message_id, request.parts)
    if custom in existing:
        return SubmitResult(*existing[custom], duplicate=True)
    if first[custom][0] != message_id:
        return SubmitResult(*first[custom], duplicate=True)
    return SubmitResult(message_id, request.parts)


class AcceptOps(StoreBase):
    """``add_messages``."""

    _adding: list[_Adding]
    _adding_op: asyncio.Future[None] | None

    async def add_messages(self, requests: Sequence[SubmitRequest]) -> list[SubmitResult]:
        """Store new messages as ``queued`` in one transaction; ``custom`` is unique across
        every instance (a duplicate from any instance gets the first message's id)."""
        caller = _Adding(list(requests), [self._new_id() for _ in requests], self._clock())
        self._adding.append(caller)
        if self._adding_op is None:
            self._adding_op = asyncio.ensure_future(self._writer.call(self._adding_operation()))
            self._adding_op.add_done_callback(self._adding_done)
        await asyncio.shield(self._adding_op)
        return caller.results

    def _adding_done(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None and self._adding_op is future:
            self._adding_op = None  # never queued (the store closed): start afresh
            self._adding = []

    def _adding_operation(self) -> Operation[None]:
        taken: list[list[_Adding]] = []

        async def op(tx: Tx) -> None:
            if not taken:  # the first run takes the callers; a rerun serves the same
                taken.append(self._adding)
                self._adding = []
                self._adding_op = None  # later callers go in the next batch
            await _insert(tx, taken[0])

        return op
