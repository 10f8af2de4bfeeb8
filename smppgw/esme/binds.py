"""The bind manager: every configured bind kept up, and each submit sent within the rate limits.

The provider runs several servers, each allowing a few binds and N messages per second *per
server*, and guarantees only one server up during maintenance; a DLR may come back on any bind
of the account. So the manager:

* keeps ``binds`` sessions to every server; a dropped bind is re-established after a short random
  delay; a server whose binds cannot connect is marked DOWN and retried with exponential backoff
  and full jitter (no reconnect storms after an outage), probing with ONE bind before the others
  reconnect (a per-server circuit: UP -> DOWN -> PROBING -> UP);
* dispatches each part to a server whose token bucket has a token soonest and that has a bound
  bind with window room, which spreads load over all servers and keeps going at the surviving
  servers' rate when one is down. Every part of a long message takes its own token;
* reacts to the response status as classified by :mod:`smppgw.esme.retry_policy`:
  ESME_RTHROTTLED requeues the part first in line and slows *that* server down: to just under
  the rate the SMSC accepted in the last second, probing back up toward the configured rate
  afterwards (:class:`smppgw.esme.ratelimit.AdaptiveRate`); a server that accepted nothing in the
  last second is paused instead (exponential, from ``throttle_backoff``). Throttles are logged
  as one WARNING per server and ``throttle_report_interval`` with their count; transient
  statuses retry after ``retry_delay`` up to ``max_attempts``;
  permanent ones fail the part, and the message's remaining parts are not sent (a partial long
  message is useless to the reader and still costs money);
* treats a submit whose response never came (timeout, link lost) as UNKNOWN: the SMSC may have
  accepted it. By default (:attr:`UnknownPolicy.RESUBMIT_ONCE`) it is resubmitted once, never
  on the link that left it unanswered (unless that link is still up after it would have been
  found dead, 2 x ``response_timeout``), and the result flagged ``possible_duplicate``; the
  session always reports it (``observer.submit_unknown``, once per unanswered submit). A
  response that still comes after the timeout is handed to the caller through
  ``PartResult.late``. A submit the link closed before writing it to the socket
  (``NotSentError``) never reached the SMSC: it goes back first in line, uncounted, like one
  refused as closing.

Parts of one message go out one after another, each only after the previous one's response:
a throttled or retried part can never be overtaken by a later part of the same message. Waiting
parts form one queue served in order, and a requeued part goes to its head.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from smppgw.codec.constants import CommandStatus
from smppgw.codec.errors import EncodeError, SmppError
from smppgw.codec.pdu import (
    DataSm,
    DataSmResp,
    GenericNack,
    Pdu,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
)
from smppgw.esme.observe import NULL_OBSERVER, Observer
from smppgw.esme.ratelimit import AdaptiveRate, TokenBucket
from smppgw.esme.retry_policy import StatusClass, StatusPolicy, UnknownPolicy
from smppgw.esme.session import (
    BindType,
    InboundHandler,
    LinkLostError,
    ResponseTimeoutError,
    Session,
    SessionClosedError,
    SessionSettings,
    TlsSettings,
)
from smppgw.esme.slots import SlotSource

__all__ = [
    "BindManager",
    "BindManagerError",
    "BindManagerSettings",
    "BindSettingsError",
    "BindState",
    "BindStatus",
    "CircuitState",
    "ManagerStoppedError",
    "OnPart",
    "OnSend",
    "PartResult",
    "PartStatus",
    "QueryingSession",
    "ServerSettings",
    "SessionFactory",
    "SessionLike",
]

logger = logging.getLogger(__name__)

_RELEASE_TIMEOUT: Final = 1.0
"""Seconds a bind on a slot given up has to finish its submits and unbind before it is cut."""

_BIND_TYPE_NAMES: Final = {
    BindType.TRANSMITTER: "transmitter",
    BindType.RECEIVER: "receiver",
    BindType.TRANSCEIVER: "transceiver",
}


# --- errors ---------------------------------------------------------------------------------


class BindManagerError(SmppError):
    """Root of the bind manager's errors."""


class BindSettingsError(BindManagerError, ValueError):
    """Settings that cannot work (no servers, a negative rate...); the message names the key."""


class ManagerStoppedError(BindManagerError):
    """The manager is stopping or stopped: a part was not sent (the caller keeps the message).

    Attributes:
        results: the results of the message's parts that finished before the stop (their
            ``on_part`` callbacks have run); the remaining parts were not sent.
    """

    def __init__(self, message: str, results: Sequence[PartResult] = ()) -> None:
        super().__init__(message)
        self.results = tuple(results)


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """One SMSC server and the binds to keep to it.

    ``rate`` is the account's limit for this server in messages per second (0 = unlimited) and
    ``burst`` the tokens an idle server may take at once; keep it 1 so that no 1-second window
    exceeds ``rate``. ``jitter_allowance`` (seconds) is the safety margin for the SMSC counting
    arrival times rather than our send times: the bucket runs at ``rate / (1 + allowance)`` and
    lets a late-woken sender take its token ``allowance / 4`` early, so any ``rate + 1``
    consecutive sends span at least ``1 + 0.75 * allowance`` seconds and an SMSC that sees them
    skewed by up to that much (15 ms by default) still counts at most ``rate`` per window.
    """

    name: str
    host: str
    port: int
    tls: TlsSettings | None = None
    binds: int = 3
    bind_type: BindType | tuple[BindType, ...] = BindType.TRANSCEIVER
    rate: float = 50.0
    burst: int = 1
    jitter_allowance: float = 0.02

    def __post_init__(self) -> None:
        where = f"server {self.name!r}"
        if self.binds < 0:
            raise BindSettingsError(f"{where}: binds must be >= 0, got {self.binds}")
        if isinstance(self.bind_type, tuple) and len(self.bind_type) != self.binds:
            raise BindSettingsError(
                f"{where}: bind_type lists {len(self.bind_type)} types for {self.binds} binds"
            )
        if not 0 <= self.rate < math.inf:
            raise BindSettingsError(f"{where}: rate must be >= 0 (0 = unlimited), got {self.rate}")
        if self.burst < 1:
            raise BindSettingsError(f"{where}: burst must be >= 1, got {self.burst}")
        if not 0 <= self.jitter_allowance < 1:
            raise BindSettingsError(
                f"{where}: jitter_allowance must be in [0, 1) s, got {self.jitter_allowance}"
            )

    @property
    def bind_types(self) -> tuple[BindType, ...]:
        """The type of each bind, in order."""
        if isinstance(self.bind_type, tuple):
            return self.bind_type
        return (self.bind_type,) * self.binds

    def adaptive_rate(self, bucket: TokenBucket) -> AdaptiveRate:
        """What learns the server's real limit, starting at (and never above) ``bucket``'s rate."""
        return AdaptiveRate(bucket.rate, floor=min(bucket.rate, 1.0))

    def token_bucket(self, clock: Callable[[], float] = time.monotonic) -> TokenBucket:
        """The server's bucket, with the jitter allowance applied (see the class docstring)."""
        if self.rate == 0:
            return TokenBucket(math.inf, 1, clock)
        return TokenBucket(
            self.rate / (1 + self.jitter_allowance),
            self.burst,
            clock,
            tolerance=self.jitter_allowance / 4,
        )


@dataclass(frozen=True, slots=True)
class BindManagerSettings:
    """The account and the policies shared by all servers.

    Times are in seconds. ``throttle_backoff`` is the first pause of a server that answered
    ESME_RTHROTTLED; each further throttle (on a submit sent after the pause) doubles it, up to
    ``throttle_backoff_max``. ``max_attempts`` bounds the sends of one part for transient
    statuses and unknown outcomes (throttling is not counted: it never fails a message).
    ``inbound_window`` bounds the deliver_sm of one bind being recorded at once (see
    :class:`smppgw.esme.session.Session`).
    A bind lost less than ``stable_after`` seconds after it bound counts as a failed connection
    attempt for the reconnect backoff (an SMSC that unbinds every bind at once must not get a
    reconnect storm).
    """

    servers: tuple[ServerSettings, ...]
    system_id: str
    password: str = field(repr=False)
    system_type: str = "smpp"
    window: int = 10
    response_timeout: float = 30.0
    enquire_link_interval: float = 60.0
    idle_timeout: float = 300.0
    connect_timeout: float = 10.0
    bind_timeout: float = 10.0
    inbound_window: int = 64
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    stable_after: float = 10.0
    throttle_backoff: float = 1.0
    throttle_backoff_max: float = 60.0
    throttle_report_interval: float = 10.0
    retry_delay: float = 5.0
    max_attempts: int = 10
    unknown_policy: UnknownPolicy = UnknownPolicy.RESUBMIT_ONCE
    status_overrides: Mapping[int, StatusClass] = field(default_factory=dict)
    unknown_status: StatusClass = StatusClass.TRANSIENT

    def __post_init__(self) -> None:
        if not self.servers:
            raise BindSettingsError("servers: at least one server is needed")
        names = [s.name for s in self.servers]
        if len(set(names)) != len(names):
            raise BindSettingsError(f"servers: names must be unique, got {names}")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise BindSettingsError(
                f"reconnect_min ({self.reconnect_min}) must be > 0 and <= reconnect_max "
                f"({self.reconnect_max})"
            )
        if not 0 < self.throttle_backoff <= self.throttle_backoff_max:
            raise BindSettingsError(
                f"throttle_backoff ({self.throttle_backoff}) must be > 0 and <= "
                f"throttle_backoff_max ({self.throttle_backoff_max})"
            )
        for key in ("window", "max_attempts", "inbound_window", "throttle_report_interval"):
            if not 0 < getattr(self, key) < math.inf:  # the counts are ints: >= 1
                raise BindSettingsError(f"{key} must be > 0, got {getattr(self, key)}")
        for key in (
            "response_timeout",
            "connect_timeout",
            "bind_timeout",
            "retry_delay",
            "stable_after",
        ):
            if not getattr(self, key) >= 0:
                raise BindSettingsError(f"{key} must be >= 0, got {getattr(self, key)}")


# --- results and status ---------------------------------------------------------------------


class PartStatus(enum.Enum):
    """The outcome of one part."""

    ACCEPTED = "accepted"
    """The SMSC answered ESME_ROK; ``smsc_message_id`` identifies the part."""
    FAILED = "failed"
    """Not accepted: a permanent status, transient retries exhausted, or not sent because an
    earlier part of the message failed (then ``attempts`` is 0)."""
    UNKNOWN = "unknown"
    """Sent, but no response came and the policy allowed no (further) resubmission: the SMSC
    may or may not have the message."""


@dataclass(frozen=True, slots=True)
class PartResult:
    """What happened to one part (the last attempt's server, bind and status)."""

    status: PartStatus
    smsc_message_id: str | None = None
    command_status: CommandStatus | None = None
    server: str | None = None
    bind: str | None = None
    attempts: int = 0
    possible_duplicate: bool = False
    reason: str = ""
    late: tuple[asyncio.Future[Pdu], ...] = ()
    """One future per attempt that timed out: it gets the response if it still comes (the
    SMSC decided that attempt after all), and is cancelled if its link closes first."""


OnPart = Callable[[int, PartResult], Awaitable[None]]
OnSend = Callable[[], Awaitable[None]]
"""Awaited with a bind's slot held, right before a part is written (see :meth:`submit`)."""
"""Called with (part index, result) right after each part's outcome is known."""


class BindState(enum.Enum):
    """Where one configured bind is."""

    CONNECTING = "connecting"
    BOUND = "bound"
    BACKOFF = "backoff"  # waiting to reconnect
    CLOSED = "closed"  # the manager stopped, or another instance holds the bind's slot


class CircuitState(enum.Enum):
    """How the manager treats a server's connection attempts."""

    UP = "up"  # every missing bind connects
    DOWN = "down"  # the last attempt failed: wait the backoff
    PROBING = "probing"  # one bind tries; the others follow when it binds


@dataclass(frozen=True, slots=True)
class BindStatus:
    """A snapshot of one configured bind."""

    server: str
    name: str
    bind_type: BindType
    state: BindState
    in_flight: int
    server_state: CircuitState
    last_error: str | None = None


# --- the session seam -----------------------------------------------------------------------


class SessionLike(Protocol):
    """What the manager needs of a :class:`smppgw.esme.session.Session` (tests pass fakes).

    A session reports each submit whose response never came to its observer
    (``submit_unknown``) before raising ResponseTimeoutError or LinkLostError; the manager
    does not report it again.
    """

    @property
    def bound(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    async def submit(self, pdu: SubmitSm | DataSm) -> SubmitSmResp | DataSmResp: ...

    async def close(self, timeout: float | None = None) -> None: ...  # noqa: ASYNC109

    def abort(self) -> None: ...

    async def wait_closed(self) -> BaseException | None: ...


@runtime_checkable
class QueryingSession(Protocol):
    """A session that can send query_sm (:meth:`smppgw.esme.session.Session.query`)."""

    async def query(self, pdu: QuerySm) -> QuerySmResp | GenericNack: ...


class SessionFactory(Protocol):
    """Opens and binds one session (:meth:`smppgw.esme.session.Session.connect`)."""

    def __call__(
        self,
        settings: SessionSettings,
        *,
        on_inbound: InboundHandler | None = ...,
        observer: Observer = ...,
        clock: Callable[[], float] = ...,
    ) -> Awaitable[SessionLike]: ...


# --- internal state ---------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Bind:
    server: _Server
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
class _Server:
    settings: ServerSettings
    bucket: TokenBucket
    adaptive: AdaptiveRate
    binds: list[_Bind] = field(default_factory=list)
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

    def holds(self, bind: _Bind) -> bool:
        return self.slots is None or self.binds.index(bind) in self.slots

    @property
    def name(self) -> str:
        return self.settings.name

    def free_bind(self, window: int, avoid: tuple[SessionLike, ...] = ()) -> _Bind | None:
        # The least loaded bind with room; ties rotate so that every bind carries traffic.
        # Sessions in ``avoid`` left a submit of this part unanswered: never again for it.
        best: _Bind | None = None
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
class _Grant:
    bind: _Bind
    at: float  # clock time of the dispatch


@dataclass(eq=False, slots=True)
class _Waiter:
    future: asyncio.Future[_Grant]
    since: float
    avoid: tuple[SessionLike, ...] = ()


class _Dispatcher:
    """Hands out (server token, bind window slot) pairs to waiting parts in queue order.

    One queue for all parts, served in order (a requeued part enters at the head); no per-part
    polling or sleeping: the queue is pumped when a bind frees a window slot or comes up, and
    by one timer armed for the soonest token.
    """

    def __init__(
        self,
        servers: Sequence[_Server],
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

    async def acquire(self, *, first: bool = False, avoid: tuple[SessionLike, ...] = ()) -> _Grant:
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

    def release(self, grant: _Grant) -> None:
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

    def _first_servable(self, now: float) -> tuple[_Waiter, tuple[_Bind, float] | None]:
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
    ) -> tuple[_Bind, float] | None:
        # The server whose token comes soonest (the longest idle one among those with a token
        # now, which spreads load), then the least loaded bind with room on it.
        best: tuple[_Bind, float] | None = None
        best_key = (math.inf, 0)
        servers = self._servers if not avoid else self._elsewhere(avoid)
        for server in servers:
            bind = server.free_bind(self._window, avoid)
            if bind is None:
                continue
            key = (server.bucket.available_at(), server.in_flight)
            if best is None or key < best_key:
                best, best_key = (bind, max(0.0, key[0] - now)), key
        return best

    def _elsewhere(self, avoid: tuple[SessionLike, ...]) -> Sequence[_Server]:
        """Where a resubmission may go: not to a server one of whose links left it unanswered
        while that link is up (a frozen SMSC freezes all its links at once). The part waits
        for another server, for that link to be replaced, or for the avoidance to lapse."""
        suspect = {b.server for s in self._servers for b in s.binds if b.session in avoid}
        return [s for s in self._servers if s not in suspect]

    def _try_grant(self, now: float, avoid: tuple[SessionLike, ...] = ()) -> _Grant | None:
        choice = self._choose(now, avoid)
        if choice is None or choice[1] > 0 or choice[0].server.bucket.try_take(now) > 0:
            return None
        return self._reserve(choice[0], now)

    @staticmethod
    def _reserve(bind: _Bind, now: float) -> _Grant:
        server = bind.server
        bind.in_flight += 1
        server.in_flight += 1
        server.rotation = (server.binds.index(bind) + 1) % len(server.binds)
        return _Grant(bind, now)


class _Lifecycle(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


@dataclass(slots=True)
class _Run:
    """One part's attempts so far."""

    sent: int = 0
    charged: int = 0  # attempts counted against max_attempts
    unknown: int = 0
    resent_after_unknown: bool = False
    avoid: tuple[SessionLike, ...] = ()  # sessions that left an attempt unanswered
    last: _Grant | None = None
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


# --- the manager ----------------------------------------------------------------------------


class BindManager:
    """Keeps the configured binds up and sends parts through them within each server's rate.

    Args:
        settings: servers, account and policies.
        on_inbound: the single handler for deliver_sm / data_sm arriving on any bind.
        observer: receives bind, token, throttle and reconnect facts.
        session_factory: opens one bound session (default :meth:`Session.connect`).
        clock: the monotonic clock for token buckets (asyncio timers use the loop's clock,
            which is the same monotonic clock by default).
        rng: randomness for reconnect jitter (tests pass a seeded one).
        slots: which binds of each server this process may hold and at what rate, when
            several processes share the account (:mod:`smppgw.esme.slots`); None: every bind, at
            the configured rate.
    """

    def __init__(
        self,
        settings: BindManagerSettings,
        *,
        on_inbound: InboundHandler,
        observer: Observer = NULL_OBSERVER,
        session_factory: SessionFactory = Session.connect,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        slots: SlotSource | None = None,
    ) -> None:
        self._settings = settings
        self._slots = slots
        self._on_inbound = on_inbound
        self._observer = observer
        self._factory = session_factory
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._policy = StatusPolicy(settings.status_overrides, settings.unknown_status)
        self._servers: list[_Server] = []
        for server_settings in settings.servers:
            bucket = server_settings.token_bucket(clock)
            server = _Server(server_settings, bucket, server_settings.adaptive_rate(bucket))
            server.binds = [
                _Bind(server, f"{server_settings.name}/{bind_type.value}-{i}", bind_type)
                for i, bind_type in enumerate(server_settings.bind_types)
            ]
            self._servers.append(server)
        self._dispatcher = _Dispatcher(self._servers, settings.window, clock, observer)
        self._lifecycle = _Lifecycle.NEW
        self._supervisors: list[asyncio.Task[None]] = []
        self._watchers: set[asyncio.Task[None]] = set()
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = asyncio.Event()
        self._none_bound = asyncio.Event()  # set while no bind is up
        self._none_bound.set()
        self._bound_waiters: list[tuple[int, asyncio.Future[None]]] = []

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting every bind of every server; returns at once (see :meth:`wait_bound`).

        Raises:
            BindManagerError: the manager was already started.
        """
        if self._lifecycle is not _Lifecycle.NEW:
            raise BindManagerError("bind manager already started")
        self._lifecycle = _Lifecycle.RUNNING
        for server in self._servers:
            for bind in server.binds:
                # Every configured bind is reported from the start, not from its first bind.
                self._observer.bind_state(server.name, bind.name, bind.state.value)
        if self._slots is not None:
            self._slots.subscribe(self._regrant)
            self._regrant()
        self._supervisors = [
            asyncio.create_task(self._supervise(server), name=f"smppgw-binds-{server.name}")
            for server in self._servers
        ]

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - bounds a multi-step shutdown
        """Stop accepting submits, let those in progress finish, then unbind everything.

        Submits in progress (including parts waiting for a token) get up to ``timeout``
        seconds; after that, parts not yet sent raise :class:`ManagerStoppedError` from
        :meth:`submit`. Sessions then close gracefully within what is left of ``timeout``
        (a response still outstanding after that is reported UNKNOWN).
        """
        if self._lifecycle in (_Lifecycle.DRAINING, _Lifecycle.STOPPED):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._lifecycle = _Lifecycle.DRAINING
        try:
            async with asyncio.timeout(timeout):
                await self._drained()
        except TimeoutError:
            logger.warning("stop: %d submits still in progress after %.1f s", self._active, timeout)
        if self._active and self._none_bound.is_set():
            logger.info("stop: no bind is up; %d submits waiting for one go back", self._active)
        self._lifecycle = _Lifecycle.STOPPED
        self._stopping.set()
        self._dispatcher.close("bind manager stopped")
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        for server in self._servers:
            if server.report is not None:
                server.report.cancel()
                self._report_throttles(server)  # the last interval's count, if any
        sessions = [b.session for s in self._servers for b in s.binds if b.session is not None]
        remaining = max(0.0, deadline - loop.time())
        await asyncio.gather(*(s.close(remaining) for s in sessions), return_exceptions=True)
        for server in self._servers:
            for bind in server.binds:
                bind.state = BindState.CLOSED
                self._observer.bind_state(server.name, bind.name, BindState.CLOSED.value)
        for task in list(self._watchers):
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)

    async def _drained(self) -> None:
        """Until no submit is in progress, or no bind is up: then nothing in progress can be
        answered, and waiting the whole drain time would only delay the stop."""
        if self._idle.is_set() or self._none_bound.is_set():
            return
        waits = [asyncio.ensure_future(e.wait()) for e in (self._idle, self._none_bound)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def wait_bound(
        self,
        count: int | None = None,
        timeout: float = 10,  # noqa: ASYNC109 - the TimeoutError names the bound/target counts
    ) -> None:
        """Wait until ``count`` binds (default: every configured bind) are bound.

        Raises:
            TimeoutError: fewer were bound after ``timeout`` seconds.
        """
        target = sum(len(s.binds) for s in self._servers) if count is None else count
        if self._bound_count() >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (target, future)
        self._bound_waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise TimeoutError(
                f"{self._bound_count()} of {target} binds bound after {timeout} s"
            ) from None
        finally:
            self._bound_waiters.remove(entry)

    def status(self) -> list[BindStatus]:
        """A snapshot of every configured bind, server by server."""
        return [
            BindStatus(
                server=server.name,
                name=bind.name,
                bind_type=bind.bind_type,
                state=bind.state,
                in_flight=bind.in_flight,
                server_state=server.state,
                last_error=bind.last_error,
            )
            for server in self._servers
            for bind in server.binds
        ]

    # --- submitting -----------------------------------------------------------------------

    async def submit(
        self,
        parts: Sequence[SubmitSm | DataSm],
        *,
        on_part: OnPart | None = None,
        on_send: OnSend | None = None,
    ) -> list[PartResult]:
        """Send the parts of ONE message, in order, and return each part's result.

        Each part takes a token of the server it goes to and is sent only after the previous
        part's outcome is known. ``on_part`` is awaited right after each outcome (so the caller
        can record the SMSC message id before that part's DLR is processed). After a FAILED
        part the remaining parts are not sent and are reported FAILED with ``attempts == 0``.
        ``on_send`` is awaited before each write of a part, once a bind has room for it (so
        the caller can record durably that the part may be on the wire); if it raises, the
        part is not written and the error propagates.

        Raises:
            ManagerStoppedError: the manager is not running, or stopped before every part was
                sent (``error.results`` holds the parts that finished).
        """
        if self._lifecycle is not _Lifecycle.RUNNING:
            raise ManagerStoppedError(f"bind manager is {self._lifecycle.value}, not running")
        self._active += 1
        self._idle.clear()
        results: list[PartResult] = []
        try:
            for index, pdu in enumerate(parts):
                if results and results[-1].status is PartStatus.FAILED:
                    result = PartResult(PartStatus.FAILED, reason=f"not sent: part {index} failed")
                else:
                    try:
                        result = await self._submit_part(pdu, on_send)
                    except ManagerStoppedError as exc:
                        raise ManagerStoppedError(str(exc), results) from None
                results.append(result)
                if on_part is not None:
                    await on_part(index, result)
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()
        return results

    async def query(self, pdu: QuerySm) -> QuerySmResp | GenericNack | None:
        """Send a query_sm on a bind with room, within the server's rate like a submit.

        The query waits its turn behind the parts already waiting and takes a token of the
        server it goes to, so queries and submits together never exceed a server's rate; an
        ESME_RTHROTTLED answer slows the server down as a submit's would.

        Returns:
            The answer, whatever its status; None when it could not be sent (the manager is
            stopping, the bind closed) or no answer came.
        """
        if self._lifecycle is not _Lifecycle.RUNNING:
            return None
        try:
            grant = await self._dispatcher.acquire()
        except ManagerStoppedError:
            return None
        session = grant.bind.session
        try:
            if not isinstance(session, QueryingSession):
                return None
            resp = await session.query(pdu)
        except (SessionClosedError, ResponseTimeoutError, LinkLostError, EncodeError) as exc:
            logger.info("query_sm for %s on %s: %s", pdu.message_id, grant.bind.name, exc)
            return None
        finally:
            self._dispatcher.release(grant)
        if resp.command_status == CommandStatus.ESME_RTHROTTLED:
            self._throttled(grant)
        return resp

    async def _submit_part(self, pdu: SubmitSm | DataSm, on_send: OnSend | None) -> PartResult:
        run = _Run(on_send=on_send)
        while True:
            try:
                grant = await self._acquire(run)
            except ManagerStoppedError:
                if run.unknown:
                    return run.result(PartStatus.UNKNOWN, "stopped before a resubmission")
                raise
            if grant is None:
                continue
            outcome = await self._attempt(run, grant, pdu)
            if isinstance(outcome, PartResult):
                return outcome
            if outcome > 0:
                await self._sleep_unless_stopping(outcome)

    async def _acquire(self, run: _Run) -> _Grant | None:
        """A grant for the part's next attempt, on a link that has not failed it; None when
        those links outlived the wait (then any link may take it: try again)."""
        first = run.sent > 0
        if not run.avoid:
            return await self._dispatcher.acquire(first=first)
        # A frozen link is declared dead (and replaced) within 2 x response_timeout of the
        # timeout (see smppgw.codec.connection); one still up after that answered its probe.
        try:
            async with asyncio.timeout(max(2 * self._settings.response_timeout, 1.0)):
                return await self._dispatcher.acquire(first=first, avoid=run.avoid)
        except TimeoutError:
            run.avoid = ()
            return None

    async def _attempt(
        self, run: _Run, grant: _Grant, pdu: SubmitSm | DataSm
    ) -> PartResult | float:
        """Send once on ``grant``; return the part's result or the delay before trying again."""
        if run.on_send is not None:
            try:
                await run.on_send()
            except BaseException:
                self._dispatcher.release(grant)
                raise
        run.sent += 1
        run.last = grant
        resent_before = run.resent_after_unknown
        run.resent_after_unknown = resent_before or run.unknown > 0
        session = grant.bind.session
        try:
            response = await self._send(grant, pdu)
        except SessionClosedError:
            # Never left us: go again, first in line, on another bind.
            run.sent -= 1
            run.resent_after_unknown = resent_before
            grant.bind.closing = True
            await asyncio.sleep(0)
            return 0.0
        except (ResponseTimeoutError, LinkLostError) as exc:
            run.unknown += 1
            run.charged += 1
            if isinstance(exc, ResponseTimeoutError) and exc.late is not None:
                run.late.append(exc.late)
            if session is not None:
                # Never resubmitted on the link that did not answer: it may be frozen, and a
                # second copy there would share the first one's fate.
                run.avoid = (*run.avoid, session)
            # The session has reported it (observer.submit_unknown): not again here, or every
            # unanswered submit would be counted twice.
            reason = "timeout" if isinstance(exc, ResponseTimeoutError) else "link_lost"
            if self._may_resubmit(run):
                return 0.0
            return run.result(PartStatus.UNKNOWN, f"no response ({reason})")
        except EncodeError as exc:
            return run.result(PartStatus.FAILED, f"cannot encode: {exc}")
        return self._judge(run, grant, response)

    def _judge(
        self, run: _Run, grant: _Grant, response: SubmitSmResp | DataSmResp
    ) -> PartResult | float:
        run.status = response.command_status
        verdict = self._policy.classify(response.command_status)
        if verdict is StatusClass.OK:
            grant.bind.server.accepted(grant.at, self._clock())
            return run.result(PartStatus.ACCEPTED, "", response.message_id or None)
        if verdict is StatusClass.THROTTLED:
            self._throttled(grant)
            return 0.0  # the server's pause holds it back; other servers may take it now
        run.charged += 1
        if verdict is StatusClass.PERMANENT:
            return run.result(PartStatus.FAILED, response.command_status.name)
        if run.charged >= self._settings.max_attempts:
            return run.result(
                PartStatus.FAILED,
                f"{response.command_status.name} after {run.charged} attempts",
            )
        return self._settings.retry_delay

    async def _send(self, grant: _Grant, pdu: SubmitSm | DataSm) -> SubmitSmResp | DataSmResp:
        session = grant.bind.session
        try:
            if session is None:
                raise SessionClosedError(f"bind {grant.bind.name} is not bound")
            return await session.submit(pdu)
        finally:
            self._dispatcher.release(grant)

    def _may_resubmit(self, run: _Run) -> bool:
        policy = self._settings.unknown_policy
        if policy is UnknownPolicy.NEVER:
            return False
        if policy is UnknownPolicy.RESUBMIT_ONCE and run.unknown > 1:
            return False
        return run.charged < self._settings.max_attempts

    def _throttled(self, grant: _Grant) -> None:
        server = grant.bind.server
        self._observer.throttled(server.name)
        settings = self._settings
        server.throttled(
            grant.at, self._clock(), settings.throttle_backoff, settings.throttle_backoff_max
        )
        server.throttles += 1
        if server.report is None:
            self._report_throttles(server)

    def _report_throttles(self, server: _Server) -> None:
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
        interval = self._settings.throttle_report_interval
        if self._lifecycle is not _Lifecycle.STOPPED:
            server.report = asyncio.get_running_loop().call_later(
                interval, self._report_throttles, server
            )

    async def _sleep_unless_stopping(self, delay: float) -> None:
        try:
            async with asyncio.timeout(delay):
                await self._stopping.wait()
        except TimeoutError:
            pass

    # --- keeping binds up -----------------------------------------------------------------

    async def _supervise(self, server: _Server) -> None:
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

    def _ceiling(self, server: _Server) -> float:
        """The longest backoff after ``server.failures`` failures (reconnect_min with none)."""
        settings = self._settings
        exponent = min(max(server.failures - 1, 0), 30)
        return min(settings.reconnect_max, settings.reconnect_min * 2.0**exponent)

    async def _backoff(self, server: _Server, delay: float) -> None:
        for bind in server.binds:
            if bind.session is None:
                bind.state = BindState.BACKOFF
                self._observer.bind_state(server.name, bind.name, BindState.BACKOFF.value)
                self._observer.reconnect(server.name, bind.name, delay)
        await asyncio.sleep(delay)

    async def _connect(self, bind: _Bind) -> bool:
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
        self._none_bound.clear()
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

    def _release(self, bind: _Bind) -> None:
        """Close the bind on a slot no longer held; its watcher reports it unbound."""
        session = bind.session
        if session is None or self._lifecycle is _Lifecycle.STOPPED:
            self._unbound_if_released(bind)
        elif not bind.closing:
            bind.closing = True  # no more submits on it
            logger.info(
                "bind %s: its slot is given up, unbinding", bind.name, extra=self._log_fields(bind)
            )
            self._spawn_watcher(session.close(_RELEASE_TIMEOUT))

    def _unbound_if_released(self, bind: _Bind) -> None:
        server = bind.server
        if self._slots is not None and not server.holds(bind) and not bind.dialing:
            bind.state = BindState.CLOSED
            self._observer.bind_state(server.name, bind.name, BindState.CLOSED.value)
            self._slots.unbound(server.name, server.binds.index(bind))

    def _spawn_watcher(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, bind: _Bind, session: SessionLike) -> None:
        cause = await session.wait_closed()
        bind.session = None
        if self._lifecycle is _Lifecycle.STOPPED:
            bind.state = BindState.CLOSED
            self._unbound_if_released(bind)
            return
        if not bind.server.holds(bind):
            if not self._bound_count():
                self._none_bound.set()
            self._unbound_if_released(bind)
            return
        bind.state = BindState.BACKOFF
        bind.last_error = str(cause) if cause is not None else "closed by the SMSC"
        bind.lost_at = self._clock()
        if not self._bound_count():
            self._none_bound.set()
        logger.warning(
            "bind %s lost: %s (%s)",
            bind.name,
            bind.last_error,
            self._peer(bind),
            extra=self._log_fields(bind),
        )
        server = bind.server
        lived = self._clock() - bind.bound_at
        if lived < self._settings.stable_after:
            server.failures += 1
            logger.warning(
                "bind %s lived %.1f s (< %g s): counted as failure %d of server %s",
                bind.name,
                lived,
                self._settings.stable_after,
                server.failures,
                server.name,
            )
        else:
            server.failures = 0
        server.dropped.set()

    @staticmethod
    def _peer(bind: _Bind) -> str:
        """``transceiver to host:port (TLS), server NAME``, for log lines."""
        server = bind.server.settings
        tls = " (TLS)" if server.tls is not None else ""
        return (
            f"{_BIND_TYPE_NAMES[bind.bind_type]} to {server.host}:{server.port}{tls}, "
            f"server {server.name}"
        )

    @staticmethod
    def _log_fields(bind: _Bind) -> dict[str, object]:
        """The ``extra`` fields of a bind's log lines (JSON logs carry them as keys)."""
        server = bind.server.settings
        return {
            "server": server.name,
            "bind": bind.name,
            "bind_type": bind.bind_type.value,
            "peer": f"{server.host}:{server.port}",
        }

    def _session_settings(self, bind: _Bind) -> SessionSettings:
        settings, server = self._settings, bind.server.settings
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

    def _bound_count(self) -> int:
        return sum(
            1
            for server in self._servers
            for bind in server.binds
            if bind.session is not None and bind.session.bound
        )

    def _notify_bound(self) -> None:
        count = self._bound_count()
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
