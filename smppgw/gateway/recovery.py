"""Receipt recovery: a part whose delivery receipt is overdue is asked about with query_sm.

SMSCs lose receipts (a link cut while one was in flight and never resent, a fault on their
side). A part that has waited ``query_after`` seconds for its receipt is queried (SMPP v3.4
section 4.8: ``query_sm`` with the SMSC's message_id and the source address it was submitted
with); a final ``message_state`` in the answer (DELIVERED, EXPIRED, DELETED, UNDELIVERABLE,
REJECTED) finalises the part as a receipt would, marked ``via = "query_sm"``. An answer that is
not final (ENROUTE, ACCEPTED, UNKNOWN) or an error (ESME_RQUERYFAIL, ESME_RINVMSGID, an SMSC
without query_sm) counts as one query; after ``max_queries`` the part is left to the existing
end of the wait (UNKNOWN once the correlation TTL runs out).

:class:`ReceiptWatch` keeps the parts waiting in due order. It is pure (time is passed in) and
in memory: the daemon fills it as parts are accepted and, at start, from the store; a restart
only starts the query counts again.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Final

from smppgw.codec.constants import CommandStatus, MessageState, Npi, Ton
from smppgw.codec.errors import SmppError
from smppgw.codec.pdu import QuerySm, QuerySmResp
from smppgw.esme.settings import setting
from smppgw.gateway.correlate import FINAL_STATES, Dlr

__all__ = [
    "QUERY_SM",
    "ReceiptWatch",
    "RecoverySettings",
    "RecoverySettingsError",
    "Waiting",
    "dlr_from_query",
]

QUERY_SM: Final = "query_sm"
"""The ``via`` of a state learnt from a query_sm answer (in
:class:`~smppgw.gateway.correlate.Dlr` and
the ``sms:message:status`` event)."""

# The stat word a receipt would have carried for each final state (Appendix B).
_STATS: Final[dict[MessageState, str]] = {
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.REJECTED: "REJECTD",
}


class RecoverySettingsError(SmppError, ValueError):
    """Recovery settings that cannot work; the message names the key."""


@dataclass(frozen=True, slots=True)
class RecoverySettings:
    """When and how often overdue receipts are asked for (times in seconds).

    ``query_after``: a part's wait for its receipt before the first query (0 = never query).
    ``query_interval``: between two queries of one part. ``max_queries``: queries per part.
    ``query_rate``: query_sm per second over all servers (each also takes a token of the server
    it goes to, so queries and submits together stay within the server's rate).
    """

    query_after: float = setting(1800.0, low=0)
    query_interval: float = setting(3600.0, positive=True)
    max_queries: int = setting(3, low=1, high=100)
    query_rate: float = setting(1.0, positive=True)

    def __post_init__(self) -> None:
        if not 0 <= self.query_after < float("inf"):
            raise RecoverySettingsError(f"query_after must be >= 0, got {self.query_after}")
        if not 0 < self.query_interval < float("inf"):
            raise RecoverySettingsError(f"query_interval must be > 0, got {self.query_interval}")
        if not 1 <= self.max_queries <= 100:
            raise RecoverySettingsError(f"max_queries must be in 1..100, got {self.max_queries}")
        if not 0 < self.query_rate < float("inf"):
            raise RecoverySettingsError(f"query_rate must be > 0, got {self.query_rate}")

    @property
    def enabled(self) -> bool:
        return self.query_after > 0


@dataclass(frozen=True, slots=True)
class Waiting:
    """A part waiting for its receipt, and what a query_sm about it needs."""

    message_id: str
    part: int
    smsc_id: str
    source_ton: int
    source_npi: int
    source: str
    queries: int = 0
    """Queries answered so far."""

    def query(self) -> QuerySm:
        """The query_sm asking about this part (section 4.8.1)."""
        return QuerySm(
            message_id=self.smsc_id,
            source_addr_ton=Ton(self.source_ton),
            source_addr_npi=Npi(self.source_npi),
            source_addr=self.source,
        )


@dataclass(slots=True)
class ReceiptWatch:
    """The parts waiting for receipts, each with the time of its next query.

    Parts not yet queried wait in arrival order (a dict: they were accepted in time order, so
    the first is the next due) and leave it when their receipt comes (:meth:`done`), so what
    is held is about ``accept rate x receipt delay`` parts, not every part of the last
    ``query_after`` seconds. Parts queried before, or to be tried again, wait in a heap.
    """

    settings: RecoverySettings
    _first: dict[tuple[str, int], tuple[float, Waiting]] = field(default_factory=dict)
    _heap: list[tuple[float, int, Waiting]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def __len__(self) -> int:
        return len(self._first) + len(self._heap)

    def watch(self, part: Waiting, registered_at: float) -> None:
        """Start watching a part the SMSC accepted at ``registered_at``."""
        if self.settings.enabled:
            key = (part.message_id, part.part)
            self._first.pop(key, None)  # accepted again: the newest registration counts
            self._first[key] = (registered_at + self.settings.query_after, part)

    def done(self, message_id: str, part: int) -> None:
        """The part's final receipt came: no query about it is needed."""
        self._first.pop((message_id, part), None)

    def due(self, now: float, limit: int) -> list[Waiting]:
        """Take up to ``limit`` parts whose query is due at ``now``."""
        out: list[Waiting] = []
        first = self._first
        while first and len(out) < limit:
            key = next(iter(first))
            due, part = first[key]
            if due > now:
                break
            del first[key]
            out.append(part)
        heap = self._heap
        while heap and len(out) < limit and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[2])
        return out

    def next_due(self) -> float | None:
        """When the next query is due (None: nothing is watched)."""
        dues = []
        if self._first:
            dues.append(self._first[next(iter(self._first))][0])
        if self._heap:
            dues.append(self._heap[0][0])
        return min(dues, default=None)

    def answered(self, part: Waiting, now: float) -> None:
        """A query about ``part`` was answered without a final state: ask again after
        ``query_interval``, unless that was its last query."""
        queries = part.queries + 1
        if queries < self.settings.max_queries:
            self._push(now + self.settings.query_interval, _with_queries(part, queries))

    def retry(self, part: Waiting, at: float) -> None:
        """The query could not be sent or got no answer (no bind, throttled, timeout): try
        again at ``at``, without counting it."""
        self._push(at, part)

    def _push(self, due: float, part: Waiting) -> None:
        heapq.heappush(self._heap, (due, next(self._order), part))


def _with_queries(part: Waiting, queries: int) -> Waiting:
    return Waiting(
        part.message_id,
        part.part,
        part.smsc_id,
        part.source_ton,
        part.source_npi,
        part.source,
        queries,
    )


def dlr_from_query(
    part: Waiting,
    resp: QuerySmResp,
    *,
    received_at: float,
    server: str | None = None,
    bind: str | None = None,
) -> Dlr | None:
    """The receipt a query_sm answer stands for, or None when it tells no final state.

    Only an ESME_ROK answer with a final message_state counts (section 5.2.28: ENROUTE,
    ACCEPTED and UNKNOWN are not final, nor is a value the specification does not name). The
    stat word is the one a receipt would carry, err the one-octet error_code in three digits,
    and the done date the final_date's first twelve digits (YYMMDDhhmmss).
    """
    if resp.command_status != CommandStatus.ESME_ROK:
        return None
    try:
        state = MessageState(resp.message_state)
    except ValueError:
        return None
    if state not in FINAL_STATES:
        return None
    return Dlr(
        smsc_id=part.smsc_id,
        stat=_STATS[state],
        state=state,
        err=f"{resp.error_code:03d}",
        done_date=resp.final_date[:12] or None,
        received_at=received_at,
        server=server,
        bind=bind,
        via=QUERY_SM,
    )
