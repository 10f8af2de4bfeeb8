"""The ``stats`` socket op's reply: the live figures of :class:`~smppgw.gateway.stats.StatsObserver`
joined with what the bind manager, the store and the cluster know now.

:class:`StatsSource` is what the daemon hands the intake. It reads the store (queue depth by
state, webhook backlog) at most once per :data:`STORE_EVERY` seconds however many clients ask,
so that several ``smppgw top`` windows cost the store one small query a second.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from smppgw import __version__
from smppgw.esme.binds import BindStatus, ServerRate
from smppgw.gateway.cluster.plan import Member as ClusterMember
from smppgw.gateway.events import format_time
from smppgw.gateway.stats import StatsObserver, StatsSnapshot

__all__ = ["STORE_EVERY", "ClusterMember", "StatsSource", "stats_fields"]

STORE_EVERY: Final = 1.0
"""Seconds a reading of the store is reused for by the next ``stats`` requests."""


class BindsView(Protocol):
    """What the reply needs of the bind manager (:class:`smppgw.esme.binds.BindManager`)."""

    def status(self) -> list[BindStatus]: ...

    def rates(self) -> list[ServerRate]: ...


@dataclass(frozen=True, slots=True)
class StoreFigures:
    """A reading of the store: messages by state, and events awaiting the webhook (None: no
    webhook)."""

    queue: Mapping[str, int]
    webhook_backlog: int | None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _rate(value: float) -> float:
    return round(value, 2)


def stats_fields(
    figures: StatsSnapshot,
    binds: Sequence[BindStatus],
    rates: Sequence[ServerRate],
    store: StoreFigures,
    *,
    wall: float,
    healthy: str | None,
    cluster: tuple[str, Sequence[ClusterMember]] | None = None,
) -> dict[str, object]:
    """The fields of a ``stats`` reply (see README, "stats").

    Args:
        figures: the observer's snapshot.
        binds: every configured bind (the manager's status).
        rates: every server's rates.
        store: the store's reading.
        wall: the time now (seconds since the epoch).
        healthy: None when the daemon is healthy, else why not.
        cluster: this instance's name and the live instances, when slots are leased.
    """
    servers: list[dict[str, object]] = []
    by_server: dict[str, list[dict[str, object]]] = {}
    in_flight: dict[str, int] = {}
    bound: dict[str, int] = {}
    for bind in binds:
        in_flight[bind.server] = in_flight.get(bind.server, 0) + bind.in_flight
        bound[bind.server] = bound.get(bind.server, 0) + (bind.state.value == "bound")
        seen = figures.binds.get(bind.name)
        seconds = seen.seconds if seen is not None and seen.state == bind.state.value else None
        by_server.setdefault(bind.server, []).append(
            {
                "name": bind.name,
                "type": bind.bind_type.value,
                "state": bind.state.value,
                "since": None if seconds is None else format_time(wall - seconds),
                "seconds": None if seconds is None else round(seconds, 1),
                "in_flight": bind.in_flight,
                "last_error": bind.last_error,
            }
        )
    for rate in rates:
        traffic = figures.servers.get(rate.server)
        server_binds = by_server.get(rate.server, [])
        servers.append(
            {
                "name": rate.server,
                "rate": rate.rate,
                "current_rate": _rate(rate.current),
                "paused": rate.paused,
                "slots": None if rate.slots is None else sorted(rate.slots),
                "bound": bound.get(rate.server, 0),
                "in_flight": in_flight.get(rate.server, 0),
                "submits_per_s": _rate(traffic.submits_per_s) if traffic else 0.0,
                "submits": traffic.submits if traffic else 0,
                "unknown": traffic.unknown if traffic else 0,
                "throttles": traffic.throttles if traffic else 0,
                "throttles_last_minute": traffic.throttles_last_minute if traffic else 0,
                "latency_p50_ms": _ms(traffic.latency_p50) if traffic else None,
                "latency_p99_ms": _ms(traffic.latency_p99) if traffic else None,
                "binds": server_binds,
            }
        )
    reply: dict[str, object] = {
        "time": format_time(wall),
        "version": __version__,
        "uptime": round(figures.uptime, 1),
        "healthy": healthy is None,
        "servers": servers,
        "queue": dict(store.queue),
        "receipts": {
            "per_s": _rate(figures.receipts_per_s),
            "total": figures.receipts,
            "latency_p50_ms": _ms(figures.receipt_latency_p50),
            "latency_p99_ms": _ms(figures.receipt_latency_p99),
            "parked": figures.parked,
            "unmatched": figures.unmatched,
        },
        "intake": {
            "requests_per_s": _rate(figures.intake_per_s),
            "rejections_per_s": _rate(figures.rejections_per_s),
        },
        "webhook": None
        if store.webhook_backlog is None
        else {
            "backlog": store.webhook_backlog,
            "attempts_per_s": _rate(figures.webhook_per_s),
            "failures_per_s": _rate(figures.webhook_failed_per_s),
        },
        "cluster": None,
    }
    if healthy is not None:
        reply["reason"] = healthy
    if cluster is not None:
        me, members = cluster
        reply["cluster"] = {
            "instance": me,
            "instances": [
                {
                    "instance": m.instance,
                    "slots": {k: list(v) for k, v in m.slots.items()},
                    "rates": dict(m.rates),
                }
                for m in members
            ],
        }
    return reply


class StatsSource:
    """Answers ``stats`` for the daemon: the observer's figures and the parts' state now.

    Args:
        observer: the live figures.
        binds: the bind manager.
        read_store: reads the queue by state and the webhook backlog (None: no webhook).
        health: None when healthy, else why not.
        cluster: this instance and the live instances when slots are leased, else None.
        clock: a monotonic clock (paces the store readings).
        wall: the time of day.
    """

    def __init__(
        self,
        observer: StatsObserver,
        binds: BindsView,
        read_store: Callable[[], Awaitable[StoreFigures]],
        *,
        health: Callable[[], str | None],
        cluster: Callable[[], tuple[str, Sequence[ClusterMember]] | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._observer = observer
        self._binds = binds
        self._read_store = read_store
        self._health = health
        self._cluster = cluster
        self._clock = clock
        self._wall = wall
        self._store: StoreFigures | None = None
        self._read_at = -float("inf")

    async def store(self) -> StoreFigures:
        """The store's figures, read again when the last reading is :data:`STORE_EVERY` old."""
        now = self._clock()
        if self._store is None or now - self._read_at >= STORE_EVERY:
            self._store = await self._read_store()
            self._read_at = now
        return self._store

    async def __call__(self) -> dict[str, object]:
        """The fields of a ``stats`` reply."""
        store = await self.store()
        return stats_fields(
            self._observer.snapshot(),
            self._binds.status(),
            self._binds.rates(),
            store,
            wall=self._wall(),
            healthy=self._health(),
            cluster=self._cluster(),
        )
