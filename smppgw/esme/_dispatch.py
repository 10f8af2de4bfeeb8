"""The bind manager's servers and binds, and the dispatcher handing out (token, window) grants.

Internal to :mod:`smppgw.esme.binds`.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from smppgw.codec.constants import CommandStatus
from smppgw.codec.pdu import Pdu
from smppgw.esme.bind_settings import ManagerStoppedError, ServerSettings
from smppgw.esme.bind_state import (
    BindState,
    CircuitState,
    OnSend,
    PartResult,
    PartStatus,
    SessionLike,
)
from smppgw.esme.observe import Observer
from smppgw.esme.ratelimit import AdaptiveRate, TokenBucket
from smppgw.esme.session import BindType

__all__ = ["BindEntry", "Dispatcher", "Grant", "PartRun", "ServerEntry"]


@dataclass(eq=False, slots=True)
class BindEntry:
    server: ServerEntry
    name: str
    bind_type: BindType
    session: SessionLike | None = None
    state: BindState = BindState.CONNECTING
    in_flight: int = 0  # parts handed to this bind and not yet answered
    last_error: str | None = None
    closing: bool = False  # the session refused a submit as closing: skip it until replaced
    bound_at: float = 0.0  # clock time the current session bound
    lost_at: float | None = None  # when it was last lost (None: never bound yet)
    dialing: bool = False  # a connect is in flight

    def has_room(self, window: int) -> bool:
        session = self.session
        return (
            session is not None
            and session.bound
            and not self.closing
            and self.bind_type.can_submit
            and self.in_flight < window
        )


@dataclass(eq=False, slots=True)
class ServerEntry:
    settings: ServerSettings
    bucket: TokenBucket
    adaptive: AdaptiveRate
    binds: list[BindEntry] = field(default_factory=list)
    state: CircuitState = CircuitState.UP
    failures: int = 0  # failed connects and short-lived binds since a bind last proved stable
    in_flight: int = 0
    throttle_level: int = 0
    pause_started: float = -math.inf
    throttles: int = 0  # ESME_RTHROTTLED answers not yet logged
    report: asyncio.TimerHandle | None = None  # ends the current throttle-report interval
    rotation: int = 0  # where free_bind starts looking
    dropped: asyncio.Event = field(default_factory=asyncio.Event)
    slots: frozenset[int] | None = None  # the bind indices held (None: all, no slot source)
    regranted: asyncio.Event = field(default_factory=asyncio.Event)
    held: bool = False  # an operator paused sending to this server (binds stay up)

    def holds(self, bind: BindEntry) -> bool:
        return self.slots is None or self.binds.index(bind) in self.slots

    @property
    def name(self) -> str:
        return self.settings.name

    def free_bind(self, window: int, avoid: tuple[SessionLike, ...] = ()) -> BindEntry | None:
        # The least loaded bind with room; ties rotate so that every bind carries traffic.
        # Sessions in ``avoid`` left a submit of this part unanswered: never again for it.
        best: BindEntry | None = None
        count = len(self.binds)
        for offset in range(count):
            bind = self.binds[(self.rotation + offset) % count]
            if (
                bind.has_room(window)
                and (best is None or bind.in_flight < best.in_flight)
                and not (avoid and bind.session in avoid)
            ):
                best = bind
        return best

    def any_bound(self) -> bool:
        return any(b.session is not None and b.session.bound for b in self.binds)

    def throttled(self, dispatched_at: float, now: float, first: float, cap: float) -> bool:
        """Slow down or pause after an ESME_RTHROTTLED; False if that submit is old news.

        A submit sent before the last change is no news (the window's worth of requests in
        flight when the server throttled all come back throttled). Otherwise the rate drops to
        what the server accepted in the last second and sending resumes when it has room; a
        server that accepted nothing in that second is paused, the pause doubling with each
        further throttle.
        """
        change = self.adaptive.throttled(dispatched_at, now)
        if change is None:
            return False
        self.pause_started = now
        if change.resume_at is None:
            self.throttle_level += 1
            pause = min(cap, first * 2 ** min(self.throttle_level - 1, 30))
            self.bucket.pause_until(now + pause)
            return True
        self.throttle_level = 0
        self.bucket.set_rate(change.rate, now)
        self.bucket.pause_until(change.resume_at)
        return True

    def accepted(self, dispatched_at: float, now: float) -> None:
        if dispatched_at >= self.pause_started:
            self.throttle_level = 0
        rate = self.adaptive.accepted(dispatched_at, now)
        if rate is not None:
            self.bucket.set_rate(rate, now)


@dataclass(frozen=True, slots=True)
class Grant:
    bind: BindEntry
    at: float  # clock time of the dispatch


@dataclass(eq=False, slots=True)
class _Waiter:
    future: asyncio.Future[Grant]
    since: float
    avoid: tuple[SessionLike, ...] = ()


class Dispatcher:
    """Hands out (server token, bind window slot) pairs to waiting parts in queue order.

    One queue for all parts, served in order (a requeued part enters at the head); no per-part
    polling or sleeping: the queue is pumped when a bind frees a window slot or comes up, and
    by one timer armed for the soonest token.
    """

    def __init__(
        self,
        servers: Sequence[ServerEntry],
        window: int,
        clock: Callable[[], float],
        observer: Observer,
    ) -> None:
        self._servers = servers
        self._window = window
        self._clock = clock
        self._observer = observer
        self._waiters: deque[_Waiter] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._closed: str | None = None  # why acquire now fails

    async def acquire(self, *, first: bool = False, avoid: tuple[SessionLike, ...] = ()) -> Grant:
        """Wait for a token and a bind with room; ``first`` puts the caller at the head.

        A bind whose session is in ``avoid`` is never granted; while only such binds have
        room, the caller waits and the parts behind it go first.
        """
        if self._closed is not None:
            raise ManagerStoppedError(self._closed)
        now = self._clock()
        if not self._waiters:
            grant = self._try_grant(now, avoid)
            if grant is not None:
                self._observer.token_wait(grant.bind.server.name, 0.0)
                return grant
        waiter = _Waiter(asyncio.get_running_loop().create_future(), now, avoid)
        if first:
            self._waiters.appendleft(waiter)
        else:
            self._waiters.append(waiter)
        self.pump()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                # Granted, but the caller went away before using it: free the window slot
                # (the token stays spent, which only errs on the slow side).
                self.release(waiter.future.result())
            raise

    def release(self, grant: Grant) -> None:
        """The part granted ``grant`` has its response (or will never get one)."""
        grant.bind.in_flight -= 1
        grant.bind.server.in_flight -= 1
        if self._waiters:
            self.pump()

    def pump(self) -> None:
        """Serve waiters while a token and a bind with room are available now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters = self._waiters
        while waiters:
            waiter = waiters[0]
            if waiter.future.done():  # cancelled while waiting
                waiters.popleft()
                continue
            now = self._clock()
            choice = self._choose(now, waiter.avoid)
            if choice is None and waiter.avoid:
                # Only binds this part must avoid have room: serve the next part that can go.
                waiter, choice = self._first_servable(now)
            if choice is None:
                return  # no bind with room: a release or a new bind pumps again
            bind, wait = choice
            if wait > 0 or bind.server.bucket.try_take(now) > 0:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(max(wait, 0.0), self.pump)
                return
            if waiter is waiters[0]:
                waiters.popleft()
            else:
                waiters.remove(waiter)
            self._observer.token_wait(bind.server.name, now - waiter.since)
            waiter.future.set_result(self._reserve(bind, now))

    def _first_servable(self, now: float) -> tuple[_Waiter, tuple[BindEntry, float] | None]:
        """The first waiting part that some bind with room may take, with that choice."""
        waiter = self._waiters[0]
        for candidate in self._waiters:
            if candidate.future.done():
                continue
            choice = self._choose(now, candidate.avoid)
            if choice is not None:
                return candidate, choice
            if not candidate.avoid:
                break  # no bind has room at all
        return waiter, None

    def close(self, reason: str) -> None:
        """Fail every waiter and every later acquire with :class:`ManagerStoppedError`."""
        self._closed = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:
            future = self._waiters.popleft().future
            if not future.done():
                future.set_exception(ManagerStoppedError(reason))

    def _choose(
        self, now: float, avoid: tuple[SessionLike, ...] = ()
    ) -> tuple[BindEntry, float] | None:
        # The server whose token comes soonest (the longest idle one among those with a token
        # now, which spreads load), then the least loaded bind with room on it.
        best: tuple[BindEntry, float] | None = None
        best_key = (math.inf, 0)
        servers = self._servers if not avoid else self._elsewhere(avoid)
        for server in servers:
            if server.held:
                continue
            bind = server.free_bind(self._window, avoid)
            if bind is None:
                continue
            key = (server.bucket.available_at(), server.in_flight)
            if best is None or key < best_key:
                best, best_key = (bind, max(0.0, key[0] - now)), key
        return best

    def _elsewhere(self, avoid: tuple[SessionLike, ...]) -> Sequence[ServerEntry]:
        """Where a resubmission may go: not to a server one of whose links left it unanswered
        while that link is up (a frozen SMSC freezes all its links at once). The part waits
        for another server, for that link to be replaced, or for the avoidance to lapse."""
        suspect = {b.server for s in self._servers for b in s.binds if b.session in avoid}
        return [s for s in self._servers if s not in suspect]

    def _try_grant(self, now: float, avoid: tuple[SessionLike, ...] = ()) -> Grant | None:
        choice = self._choose(now, avoid)
        if choice is None or choice[1] > 0 or choice[0].server.bucket.try_take(now) > 0:
            return None
        return self._reserve(choice[0], now)

    @staticmethod
    def _reserve(bind: BindEntry, now: float) -> Grant:
        server = bind.server
        bind.in_flight += 1
        server.in_flight += 1
        server.rotation = (server.binds.index(bind) + 1) % len(server.binds)
        return Grant(bind, now)


@dataclass(slots=True)
class PartRun:
    """One part's attempts so far."""

    sent: int = 0
    charged: int = 0  # attempts counted against max_attempts
    unknown: int = 0
    resent_after_unknown: bool = False
    avoid: tuple[SessionLike, ...] = ()  # sessions that left an attempt unanswered
    last: Grant | None = None
    status: CommandStatus | None = None
    late: list[asyncio.Future[Pdu]] = field(default_factory=list)
    on_send: OnSend | None = None

    def result(self, status: PartStatus, reason: str, message_id: str | None = None) -> PartResult:
        # An earlier attempt with an unknown outcome may have been accepted: unless this one
        # was, the part's outcome is unknown rather than failed.
        if status is PartStatus.FAILED and self.unknown:
            status = PartStatus.UNKNOWN
            reason = f"{reason}; an earlier attempt's outcome is unknown"
        return PartResult(
            status=status,
            smsc_message_id=message_id,
            command_status=self.status,
            server=self.last.bind.server.name if self.last else None,
            bind=self.last.bind.name if self.last else None,
            attempts=self.sent,
            possible_duplicate=self.resent_after_unknown,
            reason=reason,
            late=tuple(self.late),
        )
