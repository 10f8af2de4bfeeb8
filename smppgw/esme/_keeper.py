"""Keeping the bind manager's binds up: connect, watch, reconnect with backoff, probe a server
that is down, follow the slot source, and report throttles. Internal to :mod:`smppgw.esme.binds`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final

from smppgw.codec.errors import SmppError
from smppgw.esme._dispatch import BindEntry, Dispatcher, Grant, ServerEntry
from smppgw.esme.bind_settings import BindManagerSettings
from smppgw.esme.bind_state import BindState, CircuitState, SessionFactory, SessionLike
from smppgw.esme.observe import Observer
from smppgw.esme.ratelimit import AdaptiveRate
from smppgw.esme.session import BindType, InboundHandler, SessionSettings
from smppgw.esme.slots import SlotSource

__all__ = ["BindKeeper"]

logger = logging.getLogger("smppgw.esme.binds")

_RELEASE_TIMEOUT: Final = 1.0
"""Seconds a bind on a slot given up has to finish its submits and unbind before it is cut."""

_BIND_TYPE_NAMES: Final = {
    BindType.TRANSMITTER: "transmitter",
    BindType.RECEIVER: "receiver",
    BindType.TRANSCEIVER: "transceiver",
}


class BindKeeper:
    """Keeps every held bind of every server up and reports what happens to them.

    Shares the servers and the dispatcher with its :class:`~smppgw.esme.binds.BindManager`;
    ``stopping`` is set by the manager once it has stopped (no reconnects, no reports after).
    """

    def __init__(
        self,
        settings: BindManagerSettings,
        servers: Sequence[ServerEntry],
        dispatcher: Dispatcher,
        *,
        on_inbound: InboundHandler,
        observer: Observer,
        session_factory: SessionFactory,
        clock: Callable[[], float],
        rng: random.Random,
        slots: SlotSource | None,
        stopping: asyncio.Event,
    ) -> None:
        self.settings = settings
        self._servers = servers
        self._dispatcher = dispatcher
        self._on_inbound = on_inbound
        self._observer = observer
        self._factory = session_factory
        self._clock = clock
        self._rng = rng
        self._slots = slots
        self._stopping = stopping
        self._supervisors: dict[ServerEntry, asyncio.Task[None]] = {}
        self._retiring: set[ServerEntry] = set()  # removed by new settings, still closing
        self._watchers: set[asyncio.Task[None]] = set()
        self.none_bound = asyncio.Event()  # set while no bind is up
        self.none_bound.set()
        self._bound_waiters: list[tuple[int, asyncio.Future[None]]] = []

    def start(self) -> None:
        """Report every configured bind and start a supervisor per server."""
        for server in self._servers:
            for bind in server.binds:
                # Every configured bind is reported from the start, not from its first bind.
                self._observer.bind_state(server.name, bind.name, bind.state.value)
        if self._slots is not None:
            self._slots.subscribe(self._regrant)
            self._regrant()
        for server in self._servers:
            self._start_supervisor(server)

    def _start_supervisor(self, server: ServerEntry) -> None:
        self._supervisors[server] = asyncio.create_task(
            self._supervise(server), name=f"smppgw-binds-{server.name}"
        )

    def add(self, server: ServerEntry) -> None:
        """Start keeping the binds of a server the settings gained (the manager lists it)."""
        for bind in server.binds:
            self._observer.bind_state(server.name, bind.name, bind.state.value)
        self._start_supervisor(server)
        if self._slots is not None:
            self._regrant()

    def retire(self, server: ServerEntry, timeout: float) -> None:
        """Unbind a server the settings lost (the manager no longer lists it): no new submit
        goes to it, the ones in flight get ``timeout`` seconds for their responses, then each
        bind unbinds; its binds are not reconnected and their closing is not a loss."""
        task = self._supervisors.pop(server, None)
        if task is not None:
            task.cancel()
        server.slots = frozenset()  # holds no bind: the watchers see the closes as releases
        if server.report is not None:
            server.report.cancel()
            self.report_throttles(server)
        self._retiring.add(server)
        self._spawn_watcher(self._unbind(server, timeout))

    async def _unbind(self, server: ServerEntry, timeout: float) -> None:  # noqa: ASYNC109
        sessions = [b.session for b in server.binds if b.session is not None]
        for bind in server.binds:
            bind.closing = True
        logger.info("server %s removed: unbinding its %d binds", server.name, len(sessions))
        await asyncio.gather(*(s.close(timeout) for s in sessions), return_exceptions=True)
        for bind in server.binds:
            bind.state = BindState.CLOSED
            self._observer.bind_state(server.name, bind.name, BindState.CLOSED.value)
        self._retiring.discard(server)
        if not self.bound_count():
            self.none_bound.set()

    async def close(self, timeout: float) -> None:  # noqa: ASYNC109 - what is left of stop()'s
        """Stop reconnecting, then close every session gracefully within ``timeout``."""
        for task in self._supervisors.values():
            task.cancel()
        await asyncio.gather(*self._supervisors.values(), return_exceptions=True)
        for server in self._servers:
            if server.report is not None:
                server.report.cancel()
                self.report_throttles(server)  # the last interval's count, if any
        servers = [*self._servers, *self._retiring]
        sessions = [b.session for s in servers for b in s.binds if b.session is not None]
        await asyncio.gather(*(s.close(timeout) for s in sessions), return_exceptions=True)
        for server in self._servers:
            for bind in server.binds:
                bind.state = BindState.CLOSED
                self._observer.bind_state(server.name, bind.name, BindState.CLOSED.value)
        for task in list(self._watchers):
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)

    async def wait_bound(self, target: int, timeout: float) -> None:  # noqa: ASYNC109
        """See :meth:`smppgw.esme.binds.BindManager.wait_bound`."""
        if self.bound_count() >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (target, future)
        self._bound_waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise TimeoutError(
                f"{self.bound_count()} of {target} binds bound after {timeout} s"
            ) from None
        finally:
            self._bound_waiters.remove(entry)

    def throttled(self, grant: Grant) -> None:
        server = grant.bind.server
        self._observer.throttled(server.name)
        settings = self.settings
        server.throttled(
            grant.at, self._clock(), settings.throttle_backoff, settings.throttle_backoff_max
        )
        server.throttles += 1
        if server.report is None:
            self.report_throttles(server)

    def report_throttles(self, server: ServerEntry) -> None:
        """One WARNING for the throttles since the last one, then a quiet interval: a server
        below its configured rate answers ESME_RTHROTTLED many times a minute, and a line for
        each would drown the log."""
        server.report = None
        if not server.throttles:
            return
        rate = server.adaptive.rate
        configured = server.settings.rate
        logger.warning(
            "server %s answered ESME_RTHROTTLED to %d submit%s since the last report; "
            "sending at %s msg/s (configured: %s)",
            server.name,
            server.throttles,
            "" if server.throttles == 1 else "s",
            f"{rate * (1 + server.settings.jitter_allowance):.1f}"
            if math.isfinite(rate)
            else "unlimited",
            f"{configured:g}" if configured else "unlimited",
        )
        server.throttles = 0
        interval = self.settings.throttle_report_interval
        if not self._stopping.is_set():
            server.report = asyncio.get_running_loop().call_later(
                interval, self.report_throttles, server
            )

    # --- keeping binds up -----------------------------------------------------------------

    async def _supervise(self, server: ServerEntry) -> None:
        """Keep ``server``'s binds up: reconnect drops, back off and probe when it is down.

        A failed connect and a bind lost within ``stable_after`` of binding both count as
        failures; while there are failures and nothing is bound, one bind probes alone.
        """
        while True:
            missing = [b for b in server.binds if b.session is None and server.holds(b)]
            if not missing:
                server.state = CircuitState.UP
                await _first_of(server.dropped, server.regranted)
                server.regranted.clear()
            if server.dropped.is_set():
                # A bind was lost (perhaps while the others were connecting). A jittered pause
                # even for the first reconnect: when a server restarts, every client's binds
                # drop at the same instant. Binds that died right after binding wait the full
                # backoff, as failed connects do.
                server.dropped.clear()
                await self._backoff(server, self._rng.uniform(0, self._ceiling(server)))
                continue
            if not missing:
                continue  # slots granted or taken away: look again
            if server.failures and not server.any_bound():
                server.state = CircuitState.PROBING
                missing = missing[:1]
            ok = await asyncio.gather(*(self._connect(bind) for bind in missing))
            if all(ok):
                server.state = CircuitState.UP
                continue
            server.failures += 1
            if not server.any_bound():
                server.state = CircuitState.DOWN
            # Exponential backoff with full jitter.
            await self._backoff(server, self._rng.uniform(0, self._ceiling(server)))

    def _ceiling(self, server: ServerEntry) -> float:
        """The longest backoff after ``server.failures`` failures (reconnect_min with none)."""
        settings = self.settings
        exponent = min(max(server.failures - 1, 0), 30)
        return min(settings.reconnect_max, settings.reconnect_min * 2.0**exponent)

    async def _backoff(self, server: ServerEntry, delay: float) -> None:
        for bind in server.binds:
            if bind.session is None:
                bind.state = BindState.BACKOFF
                self._observer.bind_state(server.name, bind.name, BindState.BACKOFF.value)
                self._observer.reconnect(server.name, bind.name, delay)
        await asyncio.sleep(delay)

    async def _connect(self, bind: BindEntry) -> bool:
        bind.state = BindState.CONNECTING
        bind.dialing = True
        try:
            session = await self._factory(
                self._session_settings(bind),
                on_inbound=self._on_inbound,
                observer=self._observer,
                clock=self._clock,
            )
        except (SmppError, OSError) as exc:
            bind.dialing = False
            bind.state = BindState.BACKOFF
            bind.last_error = str(exc)
            logger.warning("bind %s: %s", bind.name, exc, extra=self._log_fields(bind))
            self._unbound_if_released(bind)
            return False
        except Exception as exc:
            # Not a link failure but a fault of ours: the reconnect loop must outlive it, or
            # the server would never be bound again. Counted as a failed connect.
            bind.dialing = False
            bind.state = BindState.BACKOFF
            bind.last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("bind %s: connecting failed unexpectedly", bind.name)
            self._unbound_if_released(bind)
            return False
        finally:
            bind.dialing = False
        bind.session = session
        bind.closing = False
        bind.bound_at = self._clock()
        bind.state = BindState.BOUND
        bind.last_error = None
        self.none_bound.clear()
        peer = self._peer(bind)
        if bind.lost_at is None:
            logger.info("bind %s up: %s", bind.name, peer, extra=self._log_fields(bind))
        else:
            logger.info(
                "bind %s back up after %.0f s: %s",
                bind.name,
                self._clock() - bind.lost_at,
                peer,
                extra=self._log_fields(bind),
            )
        self._spawn_watcher(self._watch(bind, session))
        if not bind.server.holds(bind):  # the slot went elsewhere while this bound
            self._release(bind)
            return True
        self._notify_bound()
        self._dispatcher.pump()
        return True

    # --- bind slots (several processes sharing the account) -------------------------------

    def _regrant(self) -> None:
        """The slot source changed: keep binds only on held slots, at the slots' rate.

        Called at start and by the slot source on every change. A slot given up loses its
        bind (gracefully, within ``_RELEASE_TIMEOUT``) before the source is told it is
        unbound; the rate follows the grant at once, down before a slot goes and up only
        once the source holds it.
        """
        assert self._slots is not None
        now = self._clock()
        for server in self._servers:
            grant = self._slots.grant(server.name)
            server.slots = grant.slots
            if grant.slots and server.settings.rate > 0 and grant.rate > 0:
                rate = grant.rate / (1 + server.settings.jitter_allowance)
                if rate != server.bucket.rate:
                    server.bucket.set_rate(rate, now)
                    server.adaptive = AdaptiveRate(rate, floor=min(rate, 1.0))
            for bind in server.binds:
                if not server.holds(bind):
                    self._release(bind)
            server.regranted.set()
        self._dispatcher.pump()

    def _release(self, bind: BindEntry) -> None:
        """Close the bind on a slot no longer held; its watcher reports it unbound."""
        session = bind.session
        if session is None or self._stopping.is_set():
            self._unbound_if_released(bind)
        elif not bind.closing:
            bind.closing = True  # no more submits on it
            logger.info(
                "bind %s: its slot is given up, unbinding", bind.name, extra=self._log_fields(bind)
            )
            self._spawn_watcher(session.close(_RELEASE_TIMEOUT))

    def _unbound_if_released(self, bind: BindEntry) -> None:
        server = bind.server
        if self._slots is not None and not server.holds(bind) and not bind.dialing:
            bind.state = BindState.CLOSED
            self._observer.bind_state(server.name, bind.name, BindState.CLOSED.value)
            self._slots.unbound(server.name, server.binds.index(bind))

    def _spawn_watcher(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, bind: BindEntry, session: SessionLike) -> None:
        cause = await session.wait_closed()
        bind.session = None
        if self._stopping.is_set():
            bind.state = BindState.CLOSED
            self._unbound_if_released(bind)
            return
        if not bind.server.holds(bind):
            if not self.bound_count():
                self.none_bound.set()
            self._unbound_if_released(bind)
            return
        bind.state = BindState.BACKOFF
        bind.last_error = str(cause) if cause is not None else "closed by the SMSC"
        bind.lost_at = self._clock()
        if not self.bound_count():
            self.none_bound.set()
        logger.warning(
            "bind %s lost: %s (%s)",
            bind.name,
            bind.last_error,
            self._peer(bind),
            extra=self._log_fields(bind),
        )
        server = bind.server
        lived = self._clock() - bind.bound_at
        if lived < self.settings.stable_after:
            server.failures += 1
            logger.warning(
                "bind %s lived %.1f s (< %g s): counted as failure %d of server %s",
                bind.name,
                lived,
                self.settings.stable_after,
                server.failures,
                server.name,
            )
        else:
            server.failures = 0
        server.dropped.set()

    @staticmethod
    def _peer(bind: BindEntry) -> str:
        """``transceiver to host:port (TLS), server NAME``, for log lines."""
        server = bind.server.settings
        tls = " (TLS)" if server.tls is not None else ""
        return (
            f"{_BIND_TYPE_NAMES[bind.bind_type]} to {server.host}:{server.port}{tls}, "
            f"server {server.name}"
        )

    @staticmethod
    def _log_fields(bind: BindEntry) -> dict[str, object]:
        """The ``extra`` fields of a bind's log lines (JSON logs carry them as keys)."""
        server = bind.server.settings
        return {
            "server": server.name,
            "bind": bind.name,
            "bind_type": bind.bind_type.value,
            "peer": f"{server.host}:{server.port}",
        }

    def _session_settings(self, bind: BindEntry) -> SessionSettings:
        settings, server = self.settings, bind.server.settings
        return SessionSettings(
            host=server.host,
            port=server.port,
            system_id=settings.system_id,
            password=settings.password,
            system_type=settings.system_type,
            bind_type=bind.bind_type,
            tls=server.tls,
            window=settings.window,
            response_timeout=settings.response_timeout,
            enquire_link_interval=settings.enquire_link_interval,
            idle_timeout=settings.idle_timeout,
            connect_timeout=settings.connect_timeout,
            bind_timeout=settings.bind_timeout,
            inbound_window=settings.inbound_window,
            server=server.name,
            name=bind.name,
        )

    def bound_count(self) -> int:
        return sum(
            1
            for server in self._servers
            for bind in server.binds
            if bind.session is not None and bind.session.bound
        )

    def _notify_bound(self) -> None:
        count = self.bound_count()
        for target, future in self._bound_waiters:
            if count >= target and not future.done():
                future.set_result(None)


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    if any(event.is_set() for event in events):
        return
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
