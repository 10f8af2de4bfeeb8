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
from collections.abc import Callable, Sequence

from smppgw.codec.constants import CommandStatus
from smppgw.codec.errors import EncodeError
from smppgw.codec.pdu import (
    CancelSm,
    CancelSmResp,
    DataSm,
    DataSmResp,
    GenericNack,
    Pdu,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
)
from smppgw.esme._dispatch import Dispatcher, Grant, PartRun, ServerEntry
from smppgw.esme._keeper import BindKeeper
from smppgw.esme._reconfigure import plan_servers, rerate, server_entry
from smppgw.esme.bind_settings import (
    BindManagerError,
    BindManagerSettings,
    BindSettingsError,
    ManagerStoppedError,
    ServerSettings,
    UnknownServerError,
)
from smppgw.esme.bind_state import (
    BindState,
    BindStatus,
    CircuitState,
    OnPart,
    OnSend,
    PartResult,
    PartStatus,
    QueryingSession,
    RequestingSession,
    ServerRate,
    SessionFactory,
    SessionLike,
)
from smppgw.esme.observe import NULL_OBSERVER, Observer
from smppgw.esme.retry_policy import StatusClass, StatusPolicy, UnknownPolicy
from smppgw.esme.session import (
    InboundHandler,
    LinkLostError,
    ResponseTimeoutError,
    Session,
    SessionClosedError,
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
    "ServerRate",
    "ServerSettings",
    "SessionFactory",
    "SessionLike",
    "UnknownServerError",
]

logger = logging.getLogger(__name__)


class _Lifecycle(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


# --- the manager ----------------------------------------------------------------------------


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
        self._observer = observer
        self._clock = clock
        self._policy = StatusPolicy(settings.status_overrides, settings.unknown_status)
        self._servers = [server_entry(s, clock) for s in settings.servers]
        self._dispatcher = Dispatcher(self._servers, settings.window, clock, observer)
        self._lifecycle = _Lifecycle.NEW
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = asyncio.Event()
        self._keeper = BindKeeper(
            settings,
            self._servers,
            self._dispatcher,
            on_inbound=on_inbound,
            observer=observer,
            session_factory=session_factory,
            clock=clock,
            rng=rng if rng is not None else random.Random(),  # noqa: S311 - jitter, not crypto
            slots=slots,
            stopping=self._stopping,
        )

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting every bind of every server; returns at once (see :meth:`wait_bound`).

        Raises:
            BindManagerError: the manager was already started.
        """
        if self._lifecycle is not _Lifecycle.NEW:
            raise BindManagerError("bind manager already started")
        self._lifecycle = _Lifecycle.RUNNING
        self._keeper.start()

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
        if self._active and self._keeper.none_bound.is_set():
            logger.info("stop: no bind is up; %d submits waiting for one go back", self._active)
        self._lifecycle = _Lifecycle.STOPPED
        self._stopping.set()
        self._dispatcher.close("bind manager stopped")
        await self._keeper.close(max(0.0, deadline - loop.time()))

    def apply(self, settings: BindManagerSettings, *, unbind_timeout: float = 10.0) -> None:
        """Take new settings while running, keeping every bind that can stay (see
        :mod:`smppgw.esme._reconfigure`): a rate or burst changes the server's bucket from now
        on; a server removed or relinked unbinds once its submits in flight are answered
        (within ``unbind_timeout`` s); the account and session values reach new binds only.

        Raises:
            BindManagerError: the manager is not running.
        """
        if self._lifecycle is not _Lifecycle.RUNNING:
            raise BindManagerError(f"bind manager is {self._lifecycle.value}, not running")
        plan = plan_servers(self._servers, settings.servers)
        now = self._clock()
        for server, server_settings in plan.rerate:
            rerate(server, server_settings, now)
        self._settings = settings
        self._policy = StatusPolicy(settings.status_overrides, settings.unknown_status)
        self._keeper.settings = settings
        paused = {server.name for server in plan.retire if server.held}
        for server in plan.retire:
            self._servers.remove(server)
            self._keeper.retire(server, unbind_timeout)
        for server_settings in plan.add:
            server = server_entry(server_settings, self._clock)
            server.held = server.name in paused  # relinked, still paused by its operator
            self._servers.append(server)
            self._keeper.add(server)
        self._dispatcher.pump()

    async def _drained(self) -> None:
        """Until no submit is in progress, or no bind is up: then nothing in progress can be
        answered, and waiting the whole drain time would only delay the stop."""
        none_bound = self._keeper.none_bound
        if self._idle.is_set() or none_bound.is_set():
            return
        waits = [asyncio.ensure_future(e.wait()) for e in (self._idle, none_bound)]
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
        await self._keeper.wait_bound(target, timeout)

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

    def pause_sending(self, server: str | None = None) -> tuple[str, ...]:
        """Send nothing more to ``server`` (every server when None) until resumed: parts
        waiting for it wait (or go to a server not paused); its binds stay up, answer
        enquire_link and take receipts and MO. Returns the servers paused now.

        Raises:
            UnknownServerError: no server has that name.
        """
        for entry in self._pick(server):
            entry.held = True
        return self.paused_servers()

    def resume_sending(self, server: str | None = None) -> tuple[str, ...]:
        """Send to ``server`` (every server when None) again; returns those still paused."""
        for entry in self._pick(server):
            entry.held = False
        self._dispatcher.pump()
        return self.paused_servers()

    def paused_servers(self) -> tuple[str, ...]:
        """The servers an operator paused, in configured order."""
        return tuple(s.name for s in self._servers if s.held)

    def server_names(self) -> tuple[str, ...]:
        """Every configured server, in order."""
        return tuple(s.name for s in self._servers)

    def _pick(self, server: str | None) -> list[ServerEntry]:
        if server is None:
            return self._servers
        found = [s for s in self._servers if s.name == server]
        if not found:
            names = ", ".join(s.name for s in self._servers)
            raise UnknownServerError(f"server: no server named {server!r} (servers: {names})")
        return found

    def rates(self) -> list[ServerRate]:
        """Each server's configured rate and the rate it is sent at now, server by server."""
        now = self._clock()
        return [
            ServerRate(
                server=server.name,
                rate=server.settings.rate,
                current=0.0
                if math.isinf(server.bucket.rate)
                else server.bucket.rate * (1 + server.settings.jitter_allowance),
                paused=server.bucket.paused_until > now,
                slots=server.slots,
            )
            for server in self._servers
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
        resp = await self._ancillary(pdu)
        return resp if isinstance(resp, QuerySmResp | GenericNack) else None

    async def cancel(self, pdu: CancelSm) -> CancelSmResp | GenericNack | None:
        """Send a cancel_sm (SMPP v3.4 section 4.9) as :meth:`query` sends a query_sm.

        Returns:
            The answer, whatever its status (ESME_ROK: the SMSC withdrew the message;
            ESME_RCANCELFAIL: it could not); None when it could not be sent or no answer came.
        """
        resp = await self._ancillary(pdu)
        return resp if isinstance(resp, CancelSmResp | GenericNack) else None

    async def _ancillary(self, pdu: QuerySm | CancelSm) -> Pdu | None:
        if self._lifecycle is not _Lifecycle.RUNNING:
            return None
        try:
            grant = await self._dispatcher.acquire()
        except ManagerStoppedError:
            return None
        session = grant.bind.session
        try:
            if isinstance(pdu, QuerySm):
                if not isinstance(session, QueryingSession):
                    return None
                resp: Pdu = await session.query(pdu)
            else:
                if not isinstance(session, RequestingSession):
                    return None
                resp = await session.request(pdu)
        except (SessionClosedError, ResponseTimeoutError, LinkLostError, EncodeError) as exc:
            name = pdu.command_id.name.lower()
            logger.info("%s for %s on %s: %s", name, pdu.message_id, grant.bind.name, exc)
            return None
        finally:
            self._dispatcher.release(grant)
        if resp.command_status == CommandStatus.ESME_RTHROTTLED:
            self._keeper.throttled(grant)
        return resp

    async def _submit_part(self, pdu: SubmitSm | DataSm, on_send: OnSend | None) -> PartResult:
        run = PartRun(on_send=on_send)
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

    async def _acquire(self, run: PartRun) -> Grant | None:
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
        self, run: PartRun, grant: Grant, pdu: SubmitSm | DataSm
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
        self, run: PartRun, grant: Grant, response: SubmitSmResp | DataSmResp
    ) -> PartResult | float:
        run.status = response.command_status
        verdict = self._policy.classify(response.command_status)
        if verdict is StatusClass.OK:
            grant.bind.server.accepted(grant.at, self._clock())
            return run.result(PartStatus.ACCEPTED, "", response.message_id or None)
        if verdict is StatusClass.THROTTLED:
            self._keeper.throttled(grant)
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

    async def _send(self, grant: Grant, pdu: SubmitSm | DataSm) -> SubmitSmResp | DataSmResp:
        session = grant.bind.session
        try:
            if session is None:
                raise SessionClosedError(f"bind {grant.bind.name} is not bound")
            return await session.submit(pdu)
        finally:
            self._dispatcher.release(grant)

    def _may_resubmit(self, run: PartRun) -> bool:
        policy = self._settings.unknown_policy
        if policy is UnknownPolicy.NEVER:
            return False
        if policy is UnknownPolicy.RESUBMIT_ONCE and run.unknown > 1:
            return False
        return run.charged < self._settings.max_attempts

    async def _sleep_unless_stopping(self, delay: float) -> None:
        try:
            async with asyncio.timeout(delay):
                await self._stopping.wait()
        except TimeoutError:
            pass
