"""Live figures for ``smppgw top``: an :class:`~smppgw.esme.observe.Observer` that keeps the
recent past in fixed-size memory, and the ``stats`` reply built from it.

Rates are counted in one-second slots of a ring (:class:`RateRing`): each fact adds one to the
current slot, so a fact costs a dict lookup, a clock read and an addition, and the ring of a
60-second window holds 60 integers whatever the traffic. Latency percentiles come from the
last :data:`RESERVOIR` answers (:class:`Reservoir`, a preallocated ring of floats): sorted only
when a snapshot is asked for (at most once a second per ``smppgw top``), never on the hot path.

Per-server and per-bind records are created the first time a server or bind reports, so the
memory follows the configured binds, not the traffic. Nothing here locks: the observer runs in
the daemon's event loop like everything that calls it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "RATE_WINDOW",
    "RESERVOIR",
    "THROTTLE_WINDOW",
    "RateRing",
    "Reservoir",
    "StatsObserver",
]

RATE_WINDOW: Final = 10
"""Seconds over which submits, receipts and intake requests per second are averaged."""
THROTTLE_WINDOW: Final = 60
"""Seconds over which throttles are counted (``throttles_last_minute``)."""
RESERVOIR: Final = 1024
"""Latencies kept per server (and for receipts): the percentiles are over the last this many."""


class RateRing:
    """Counts of events in one-second slots over the last ``span`` seconds (fixed memory).

    Args:
        span: the window in seconds (the number of slots).
        now: the clock time the count starts at (a window younger than ``span`` seconds is
            averaged over its own age, not over ``span``).
    """

    __slots__ = ("_counts", "_second", "_span", "_start", "total")

    def __init__(self, span: int, now: float) -> None:
        if span < 1:
            raise ValueError(f"span must be >= 1, got {span}")
        self._span = span
        self._counts = [0] * span
        self._second = math.floor(now)
        self._start = now
        self.total = 0
        """Every event counted since the start."""

    def add(self, now: float, count: int = 1) -> None:
        """Count ``count`` events at ``now`` (O(1); an idle gap clears at most ``span`` slots)."""
        second = math.floor(now)
        if second != self._second:
            self._advance(second)
        self._counts[second % self._span] += count
        self.total += count

    def _advance(self, second: int) -> None:
        if second < self._second:
            return  # the clock went back (a test's fake clock): count in the current slot
        gap = min(second - self._second, self._span)
        for offset in range(1, gap + 1):
            self._counts[(self._second + offset) % self._span] = 0
        self._second = second

    def count(self, now: float) -> int:
        """Events in the window ending at ``now`` (the current second counted so far)."""
        second = math.floor(now)
        if second > self._second:
            self._advance(second)
        return sum(self._counts)

    def per_second(self, now: float) -> float:
        """The mean rate over the window ending at ``now``: the events of the last ``span - 1``
        whole seconds and of the current one so far, over the time they cover."""
        events = self.count(now)
        covered = min(self._span - 1 + (now - math.floor(now)), now - self._start)
        if covered <= 0:
            return 0.0
        return events / covered


class Reservoir:
    """The last ``size`` values seen, for percentiles (fixed memory, O(1) to add).

    Args:
        size: how many values are kept.
    """

    __slots__ = ("_filled", "_next", "_size", "_values")

    def __init__(self, size: int = RESERVOIR) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._size = size
        self._values = [0.0] * size
        self._next = 0
        self._filled = 0

    def __len__(self) -> int:
        return self._filled

    def add(self, value: float) -> None:
        """Keep ``value``, forgetting the oldest once ``size`` are kept."""
        self._values[self._next] = value
        self._next = (self._next + 1) % self._size
        if self._filled < self._size:
            self._filled += 1

    def percentile(self, share: float) -> float | None:
        """The ``share`` (0..1) quantile of the values kept (nearest rank); None when empty."""
        if not self._filled:
            return None
        ordered = sorted(self._values[: self._filled])
        rank = max(1, math.ceil(share * len(ordered)))
        return ordered[rank - 1]


@dataclass(slots=True)
class _Bind:
    server: str
    state: str
    since: float  # clock time of the last state change
    in_flight: int = 0


@dataclass(slots=True)
class _Server:
    submits: RateRing
    throttles: RateRing
    latency: Reservoir = field(default_factory=Reservoir)
    unknown: int = 0


class StatsObserver:
    """An Observer that keeps what ``smppgw top`` shows (see the module docstring).

    Args:
        clock: a monotonic clock in seconds (tests pass a fake one).
    """

    __slots__ = (
        "_binds",
        "_clock",
        "_intake",
        "_parked",
        "_receipt_latency",
        "_receipts",
        "_rejections",
        "_servers",
        "_started",
        "_unmatched",
        "_unmatched_total",
        "_webhook",
        "_webhook_failed",
    )

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        now = clock()
        self._started = now
        self._servers: dict[str, _Server] = {}
        self._binds: dict[str, _Bind] = {}
        self._receipts = RateRing(RATE_WINDOW, now)
        self._receipt_latency = Reservoir()
        self._unmatched_total = 0
        self._parked = 0
        self._unmatched = 0
        self._intake = RateRing(RATE_WINDOW, now)
        self._rejections = RateRing(RATE_WINDOW, now)
        self._webhook = RateRing(RATE_WINDOW, now)
        self._webhook_failed = RateRing(RATE_WINDOW, now)

    def _server(self, name: str) -> _Server:
        server = self._servers.get(name)
        if server is None:
            now = self._clock()
            server = self._servers[name] = _Server(
                RateRing(RATE_WINDOW, now), RateRing(THROTTLE_WINDOW, now)
            )
        return server

    # --- sessions and the bind manager ------------------------------------------------------
    def bind_state(self, server: str, bind: str, state: str) -> None:
        self._server(server)
        record = self._binds.get(bind)
        if record is None:
            self._binds[bind] = _Bind(server, state, self._clock())
        elif record.state != state:
            record.state = state
            record.since = self._clock()
            if state != "bound":
                record.in_flight = 0

    def window(self, server: str, bind: str, in_flight: int) -> None:
        record = self._binds.get(bind)
        if record is not None:
            record.in_flight = in_flight

    def submit_result(self, server: str, bind: str, status: str, latency: float) -> None:
        record = self._server(server)
        record.submits.add(self._clock())
        record.latency.add(latency)

    def submit_unknown(self, server: str, bind: str, reason: str) -> None:
        record = self._server(server)
        record.submits.add(self._clock())
        record.unknown += 1

    def token_wait(self, server: str, seconds: float) -> None:
        pass

    def throttled(self, server: str) -> None:
        self._server(server).throttles.add(self._clock())

    def reconnect(self, server: str, bind: str, delay: float) -> None:
        pass

    # --- receipts and MO --------------------------------------------------------------------
    def dlr_received(self, stat: str, matched: bool) -> None:
        self._receipts.add(self._clock())
        if not matched:
            self._unmatched_total += 1

    def dlr_parked(self) -> None:
        pass

    def parked_dlrs(self, count: int) -> None:
        self._parked = count

    def dlr_latency(self, seconds: float) -> None:
        self._receipt_latency.add(seconds)

    def unmatched_dlrs(self, count: int) -> None:
        self._unmatched = count

    def mo_received(self) -> None:
        pass

    # --- store, queue, events ---------------------------------------------------------------
    def store_commit(self, seconds: float, records: int) -> None:
        pass

    def queue_depth(self, state: str, count: int) -> None:
        pass  # read from the store when a snapshot is taken: fresher than housekeeping's

    def message_final(self, status: str) -> None:
        pass

    def webhook_delivery(self, ok: bool) -> None:
        now = self._clock()
        self._webhook.add(now)
        if not ok:
            self._webhook_failed.add(now)

    def intake_request(self, op: str, ok: bool) -> None:
        if op == "stats":
            return  # the figures' own readers are not traffic
        now = self._clock()
        self._intake.add(now)
        if not ok:
            self._rejections.add(now)

    # --- the snapshot -----------------------------------------------------------------------
    def snapshot(self) -> StatsSnapshot:
        """The figures now (sorts the latency reservoirs: call it at most every second)."""
        now = self._clock()
        servers: dict[str, ServerFigures] = {}
        for name, record in self._servers.items():
            servers[name] = ServerFigures(
                submits_per_s=record.submits.per_second(now),
                submits=record.submits.total,
                unknown=record.unknown,
                throttles=record.throttles.total,
                throttles_last_minute=record.throttles.count(now),
                latency_p50=record.latency.percentile(0.5),
                latency_p99=record.latency.percentile(0.99),
            )
        binds = {
            name: BindFigures(b.server, b.state, max(0.0, now - b.since), b.in_flight)
            for name, b in self._binds.items()
        }
        return StatsSnapshot(
            uptime=now - self._started,
            servers=servers,
            binds=binds,
            receipts_per_s=self._receipts.per_second(now),
            receipts=self._receipts.total,
            receipt_latency_p50=self._receipt_latency.percentile(0.5),
            receipt_latency_p99=self._receipt_latency.percentile(0.99),
            unmatched_total=self._unmatched_total,
            parked=self._parked,
            unmatched=self._unmatched,
            intake_per_s=self._intake.per_second(now),
            rejections_per_s=self._rejections.per_second(now),
            webhook_per_s=self._webhook.per_second(now),
            webhook_failed_per_s=self._webhook_failed.per_second(now),
        )


@dataclass(frozen=True, slots=True)
class ServerFigures:
    """One server's recent traffic (rates over :data:`RATE_WINDOW` seconds)."""

    submits_per_s: float
    submits: int  # answered or timed out, since the start
    unknown: int  # submits whose response never came
    throttles: int  # ESME_RTHROTTLED answers since the start
    throttles_last_minute: int
    latency_p50: float | None  # response latency over the last RESERVOIR answers (seconds)
    latency_p99: float | None


@dataclass(frozen=True, slots=True)
class BindFigures:
    """One bind as the observer last heard of it."""

    server: str
    state: str
    seconds: float  # in this state
    in_flight: int


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """What :meth:`StatsObserver.snapshot` returns."""

    uptime: float
    servers: Mapping[str, ServerFigures]
    binds: Mapping[str, BindFigures]
    receipts_per_s: float
    receipts: int
    receipt_latency_p50: float | None
    receipt_latency_p99: float | None
    unmatched_total: int
    parked: int
    unmatched: int
    intake_per_s: float
    rejections_per_s: float
    webhook_per_s: float
    webhook_failed_per_s: float
