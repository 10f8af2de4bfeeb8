"""Prometheus metrics: an :class:`~smppgw.esme.observe.Observer` backed by prometheus-client.

Every metric lives in the observer's own :class:`CollectorRegistry` (never the library's global
one), so two daemons or two tests in one process never share counters. The exposition is
served by a small asyncio HTTP server (:class:`MetricsServer`) on the configured address,
inside the daemon's event loop: no extra thread, and it stops with the loop.

The registry also carries prometheus-client's :class:`ProcessCollector` (``process_*``:
resident memory, open file descriptors, CPU seconds, start time), which reads ``/proc`` and so
exports nothing on systems without it.

This is the only module that imports prometheus_client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Self, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import MetricWrapperBase

from smppgw import __version__

__all__ = ["BIND_STATES", "MetricsServer", "PrometheusObserver"]

_M = TypeVar("_M", bound=MetricWrapperBase)

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DLR_BUCKETS = (
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    14400.0,
    86400.0,
)
BIND_STATES = ("connecting", "bound", "backoff", "unbinding", "closed")
"""Every state ``smppgw_binds`` exports for each server, at 0 when no bind is in it, so that an
alert on ``smppgw_binds{state="bound"} == 0`` sees a server that never bound."""

_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class PrometheusObserver:
    """An Observer that updates Prometheus metrics (all named ``smppgw_*``).

    Args:
        registry: where the metrics are registered; a new private registry by default.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._info = Gauge("smppgw_info", "Build information.", ["version"], registry=r)
        self._info.labels(__version__).set(1)
        ProcessCollector(registry=r)
        self._submits = Counter(
            "smppgw_submits",
            "submit_sm responses by command_status name.",
            ["server", "bind", "status"],
            registry=r,
        )
        self._submit_unknown = Counter(
            "smppgw_submit_unknown",
            "Submits whose response never came (timeout or link_lost): outcome unknown.",
            ["server", "reason"],
            registry=r,
        )
        self._submit_response = Histogram(
            "smppgw_submit_response_seconds",
            "Time from sending a submit_sm to its response.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._dlrs = Counter(
            "smppgw_dlrs",
            "Delivery receipts by stat and fate: matched a message, or not (no id, or none "
            "after the grace).",
            ["stat", "matched"],
            registry=r,
        )
        self._dlr_latency = Histogram(
            "smppgw_dlr_latency_seconds",
            "Time from submit to a message's final delivery receipt.",
            buckets=_DLR_BUCKETS,
            registry=r,
        )
        self._unmatched = Gauge(
            "smppgw_unmatched_dlrs",
            "Receipts held without a matching message past their grace.",
            registry=r,
        )
        self._parked_total = Counter(
            "smppgw_dlrs_parked",
            "Receipts that found no message at arrival and were parked for their resp.",
            registry=r,
        )
        self._parked = Gauge(
            "smppgw_parked_dlrs",
            "Receipts parked for their submit_sm_resp, still within their grace.",
            registry=r,
        )
        self._binds = Gauge(
            "smppgw_binds",
            "Configured binds by server and state (every state exported, 0 when empty).",
            ["server", "state"],
            registry=r,
        )
        self._window = Gauge(
            "smppgw_window_in_flight",
            "Requests awaiting a response on a bind.",
            ["server", "bind"],
            registry=r,
        )
        self._token_wait = Histogram(
            "smppgw_token_wait_seconds",
            "Time a submit waited for its server's throughput token.",
            ["server"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self._throttled = Counter(
            "smppgw_throttled", "ESME_RTHROTTLED responses by server.", ["server"], registry=r
        )
        self._reconnects = Counter(
            "smppgw_reconnects", "Bind re-establishments scheduled.", ["server"], registry=r
        )
        self._mo = Counter("smppgw_mo_messages", "Mobile-originated messages received.", registry=r)
        self._queue_depth = Gauge(
            "smppgw_queue_depth", "Messages in the store by state.", ["state"], registry=r
        )
        self._paused = Gauge(
            "smppgw_paused",
            "1 while an operator has paused sending to the server (binds stay up), else 0.",
            ["server"],
            registry=r,
        )
        self._store_commit = Histogram(
            "smppgw_store_commit_seconds",
            "Duration of one store group commit.",
            buckets=_COMMIT_BUCKETS,
            registry=r,
        )
        self._store_available = Gauge(
            "smppgw_store_available",
            "1 while the store takes and keeps messages, 0 while it cannot (database away, "
            "disk full, damaged).",
            registry=r,
        )
        self._store_available.set(1)
        self._cluster_slots = Gauge(
            "smppgw_cluster_slots",
            "Bind slots of each server this instance holds (instances sharing the account).",
            ["server"],
            registry=r,
        )
        self._cluster_rate = Gauge(
            "smppgw_cluster_rate_share",
            "This instance's share of each server's rate, msg/s (0: none, or unlimited).",
            ["server"],
            registry=r,
        )
        self._store_records = Counter(
            "smppgw_store_commit_records", "Writes committed by group commits.", registry=r
        )
        self._final = Counter(
            "smppgw_messages_final", "Messages that reached a final status.", ["status"], registry=r
        )
        self._webhook = Counter(
            "smppgw_webhook_deliveries", "Webhook POST attempts by result.", ["result"], registry=r
        )
        self._intake = Counter(
            "smppgw_intake_requests",
            "Intake socket requests by op and result.",
            ["op", "result"],
            registry=r,
        )
        # Which state each bind is counted in, so a transition moves one bind between states.
        self._bind_state: dict[str, tuple[str, str]] = {}
        self._bind_servers: set[str] = set()
        # Labelled children by (metric, labels): labels() costs microseconds on the hot path.
        self._children: dict[tuple[object, tuple[str, ...]], MetricWrapperBase] = {}

    def watch_store(self, available: Callable[[], bool]) -> None:
        """``smppgw_store_available`` reads ``available()`` at each scrape (1 while the store
        takes and keeps messages, 0 while it cannot: a database away, a full disk)."""
        self._store_available.set_function(lambda: 1.0 if available() else 0.0)

    def cluster_grant(self, server: str, slots: int, rate: float) -> None:
        """This instance now holds ``slots`` of ``server``'s bind slots, at ``rate`` msg/s."""
        self._cluster_slots.labels(server).set(slots)
        self._cluster_rate.labels(server).set(rate)

    def _child(self, metric: _M, *labels: str) -> _M:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return cast("_M", child)

    # --- sessions ---------------------------------------------------------------------------
    def bind_state(self, server: str, bind: str, state: str) -> None:
        previous = self._bind_state.get(bind)
        if previous == (server, state):
            return
        if server not in self._bind_servers:
            # A server seen for the first time: every state exists from now on, at 0 if empty.
            self._bind_servers.add(server)
            for each in BIND_STATES:
                self._child(self._binds, server, each)
        if previous is not None:
            self._child(self._binds, *previous).dec()
        self._child(self._binds, server, state).inc()
        self._bind_state[bind] = (server, state)

    def window(self, server: str, bind: str, in_flight: int) -> None:
        self._child(self._window, server, bind).set(in_flight)

    def submit_result(self, server: str, bind: str, status: str, latency: float) -> None:
        self._child(self._submits, server, bind, status).inc()
        self._submit_response.observe(latency)

    def submit_unknown(self, server: str, bind: str, reason: str) -> None:
        self._child(self._submit_unknown, server, reason).inc()

    # --- bind manager -----------------------------------------------------------------------
    def token_wait(self, server: str, seconds: float) -> None:
        self._child(self._token_wait, server).observe(seconds)

    def throttled(self, server: str) -> None:
        self._child(self._throttled, server).inc()

    def reconnect(self, server: str, bind: str, delay: float) -> None:
        self._child(self._reconnects, server).inc()

    # --- delivery receipts and MO -------------------------------------------------------------
    def dlr_received(self, stat: str, matched: bool) -> None:
        self._child(self._dlrs, stat, "true" if matched else "false").inc()

    def dlr_parked(self) -> None:
        self._parked_total.inc()

    def parked_dlrs(self, count: int) -> None:
        self._parked.set(count)

    def dlr_latency(self, seconds: float) -> None:
        self._dlr_latency.observe(seconds)

    def unmatched_dlrs(self, count: int) -> None:
        self._unmatched.set(count)

    def mo_received(self) -> None:
        self._mo.inc()

    # --- store, queue, events ---------------------------------------------------------------
    def store_commit(self, seconds: float, records: int) -> None:
        self._store_commit.observe(seconds)
        self._store_records.inc(records)

    def server_paused(self, server: str, paused: bool) -> None:
        """Whether sending to ``server`` is paused by an operator (``pause`` op)."""
        self._child(self._paused, server).set(1 if paused else 0)

    def queue_depth(self, state: str, count: int) -> None:
        self._child(self._queue_depth, state).set(count)

    def message_final(self, status: str) -> None:
        self._child(self._final, status).inc()

    def webhook_delivery(self, ok: bool) -> None:
        self._child(self._webhook, "ok" if ok else "failed").inc()

    def intake_request(self, op: str, ok: bool) -> None:
        self._child(self._intake, op, "ok" if ok else "error").inc()


@dataclass(frozen=True, slots=True)
class _Response:
    status: str
    content_type: str
    body: bytes


_MAX_REQUEST_HEAD = 16384
_REQUEST_TIMEOUT = 10.0


class MetricsServer:
    """Serves ``GET /metrics`` (text or OpenMetrics, by Accept header) from a registry.

    Args:
        registry: the registry to expose (a :class:`PrometheusObserver`'s ``registry``).
        host: the address to listen on (``[metrics] address``, local by default: see
            :class:`smppgw.gateway.config.MetricsSettings`).
        port: the TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    """

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the chosen one when configured as 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen; returns once the port accepts connections.

        Raises:
            OSError: the address is in use or cannot be bound.
        """
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port, limit=_MAX_REQUEST_HEAD
        )
        logger.info("metrics: serving http://%s:%d/metrics", self._host, self.port)

    async def stop(self) -> None:
        """Stop listening and close the server."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def render(self, method: str, path: str, accept: str) -> _Response:
        """The response to one request (pure: no IO)."""
        if path.split("?", 1)[0] not in ("/metrics", "/metrics/"):
            return _Response("404 Not Found", "text/plain; charset=utf-8", b"not found\n")
        if method not in ("GET", "HEAD"):
            return _Response("405 Method Not Allowed", "text/plain; charset=utf-8", b"use GET\n")
        encoder, content_type = choose_encoder(accept)
        return _Response("200 OK", content_type, encoder(self._registry))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _version = lines[0].split(" ", 2)
            accept = ""
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "accept":
                    accept = value.strip()
            response = self.render(method, path, accept)
            body = b"" if method == "HEAD" else response.body
            writer.write(
                (
                    f"HTTP/1.1 {response.status}\r\nContent-Type: {response.content_type}\r\n"
                    f"Content-Length: {len(response.body)}\r\nConnection: close\r\n\r\n"
                ).encode("latin-1")
                + body
            )
            await writer.drain()
        except (
            TimeoutError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
        ):
            pass  # a broken or slow scraper: nothing to answer
        finally:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
