"""One SMPP session (one bind) over asyncio: plain TCP or TLS.

A :class:`Session` is a thin :class:`asyncio.Protocol` over the sans-IO
:class:`~smppgw.codec.SmppConnection`, which frames, decodes, matches responses to requests,
answers enquire_link and bad frames, and keeps the window and the timers. The session writes,
resolves one future per request, arms one loop timer at the connection's next deadline, and
keeps what only IO knows: a request the link closed before writing it wholly to the socket
fails with :class:`NotSentError`; while the link is in doubt (a response timed out, the probe
after it unanswered) new submits wait for the verdict. Requests from the SMSC go to the
``on_inbound`` handler (:mod:`smppgw.esme.inbound`). A non-OK response is returned, not
raised; a request whose response never came raises :class:`ResponseTimeoutError` (its ``late``
future gets the response should it still come) or :class:`LinkLostError`. No reconnect: that
is the bind manager's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import cast

from smppgw.codec import (
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    GenericNack,
    Pdu,
    QuerySm,
    QuerySmResp,
    RequestRejected,
    ResponseReceived,
    State,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    engine,
)
from smppgw.esme._transport import LateResponses, Writer, open_transport
from smppgw.esme.inbound import InboundHandler, InboundWindow, Origin, inbound_origin
from smppgw.esme.observe import NULL_OBSERVER, Observer
from smppgw.esme.session_types import (
    MAX_LATE,
    BindError,
    BindType,
    ConnectError,
    LinkLostError,
    NotSentError,
    ResponseTimeoutError,
    SessionClosedError,
    SessionError,
    SessionSettings,
    refusal,
)
from smppgw.esme.tls import TlsSettings
from smppgw.esme.trace import WireTap

__all__ = [
    "MAX_LATE",
    "BindError",
    "BindType",
    "ConnectError",
    "InboundHandler",
    "LinkLostError",
    "NotSentError",
    "Origin",
    "ResponseTimeoutError",
    "Session",
    "SessionClosedError",
    "SessionError",
    "SessionSettings",
    "TlsSettings",
    "inbound_origin",
]

log = logging.getLogger(__name__)

# Hot-path constants: a tuple for isinstance (a union would be built on every call) and the
# status names by value (Enum.name is a descriptor, slower than a dict lookup).
_SUBMIT_RESPONSES = (SubmitSmResp, DataSmResp)
_STATUS_NAMES: dict[int, str] = {status: status.name for status in CommandStatus}


class Session(asyncio.Protocol):
    """One bound SMPP session over one transport. Create it with :meth:`connect`."""

    def __init__(
        self,
        settings: SessionSettings,
        on_inbound: InboundHandler | None,
        observer: Observer,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self._observer = observer
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._writer = Writer(self._loop)
        self._queue_bytes: Callable[[bytes], None] = self._writer.write
        self._tap: WireTap | None = None  # the wire trace (smppgw.esme.trace), off by default
        self._conn = settings.connection(clock())
        # sequence_number -> (its future, when it was sent, the end of its octets in our stream)
        self._pending: dict[int, tuple[asyncio.Future[Pdu], float, int]] = {}
        self._late = LateResponses(self._loop)  # timed out; their response may still come
        # Set while a response timed out and the probe after it is unanswered (see submit).
        self._doubt: asyncio.Future[None] | None = None
        self._server, self._name = settings.server, settings.name
        self._observe_window = observer.window
        self._observe_result = observer.submit_result
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed: asyncio.Future[BaseException | None] = self._loop.create_future()
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._inbound = InboundWindow(
            on_inbound,
            Origin(settings.server, settings.name),
            window=settings.inbound_window,
            answer=self._answer,
            reading=self._reading,
        )

    @classmethod
    async def connect(
        cls,
        settings: SessionSettings,
        *,
        on_inbound: InboundHandler | None = None,
        observer: Observer = NULL_OBSERVER,
        clock: Callable[[], float] = time.monotonic,
    ) -> Session:
        """Open the connection and bind.

        Raises:
            ConnectError: the connection could not be opened in ``connect_timeout`` (a TLS
                handshake failure says why).
            BindError: the SMSC answered the bind with an error, or not in ``bind_timeout``.
        """
        session = cls(settings, on_inbound, observer, clock)
        observer.bind_state(settings.server, settings.name, "connecting")
        await open_transport(settings, session, observer)
        s = settings
        what = f"bind_{s.bind_type.name.lower()} to {s.endpoint}"
        try:
            resp = await session._start_request(s.bind_pdu(), s.bind_timeout)
        except SessionError as exc:
            session.abort()
            raise BindError(f"{what}: {exc}", CommandStatus.ESME_RBINDFAIL) from exc
        if resp.command_status != CommandStatus.ESME_ROK:
            session.abort()
            status = resp.command_status
            raise BindError(f"{what} refused: {status.name} ({status.description})", status)
        observer.bind_state(s.server, s.name, "bound")
        session._arm_timer()
        return session

    # --- public API ---------------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        return not self._closing and self._conn.bound

    @property
    def closed(self) -> bool:
        return self._closed.done()

    @property
    def state(self) -> State:
        """The bind state (SMPP v3.4 section 2.3)."""
        return self._conn.state

    @property
    def in_flight(self) -> int:
        """Requests awaiting their response (our own enquire_link probes not counted)."""
        return len(self._pending)

    @property
    def window_free(self) -> int:
        return self._conn.window_free

    @property
    def bind_type(self) -> BindType:
        return self.settings.bind_type

    @property
    def server(self) -> str:
        return self.settings.server

    @property
    def name(self) -> str:
        return self.settings.name

    def trace(self, tap: WireTap | None) -> None:
        """Show every PDU written and read from now on to ``tap`` (None: stop)."""
        self._tap = tap
        self._queue_bytes = self._writer.write if tap is None else tap.sending(self._writer.write)

    def send_nowait_possible(self) -> bool:
        """True when a request can be sent at once (bound and the window has room)."""
        conn = self._conn
        return not self._closing and conn.bound and not conn.window_full and not self._waiters

    async def submit(self, pdu: SubmitSm | DataSm) -> SubmitSmResp | DataSmResp:
        """Send a submit_sm or data_sm and return its response, whatever its status (a
        generic_nack comes back as a response of the submit's type: see ``refusal``). While the
        link is in doubt the submit waits for the verdict: on a frozen link it would only join
        the unknown outcomes.

        Raises:
            SessionClosedError: not bound (nothing sent); NotSentError: the link was found
                dead while the submit waited.
            ResponseTimeoutError, LinkLostError: sent, but no response: outcome unknown.
        """
        if self._closing or not self._conn.bound:
            raise SessionClosedError(f"session to {self.settings.endpoint} is not bound")
        if self._doubt is not None:
            await asyncio.shield(self._doubt)
            if self._closing or not self._conn.bound:
                raise NotSentError(f"link to {self.settings.endpoint} closed before the request")
        waiters = self._waiters  # request() inlined: one coroutine less per submit
        if self._conn.window_full or (waiters and waiters[0].done()):
            await self._wait_for_room()
        resp = await self._start_request(pdu, self.settings.response_timeout)
        if isinstance(resp, _SUBMIT_RESPONSES):
            return resp
        return refusal(pdu, resp, self.settings.endpoint)

    async def query(self, pdu: QuerySm) -> QuerySmResp | GenericNack:
        """Send a query_sm (section 4.8); return its answer, whatever its status (an SMSC
        without query_sm answers generic_nack ESME_RINVCMDID). Raises as :meth:`request`."""
        resp = await self.request(pdu)
        if not isinstance(resp, QuerySmResp | GenericNack):
            raise LinkLostError(f"{self.settings.endpoint} answered query_sm with {resp!r}")
        return resp

    async def request(self, pdu: Pdu) -> Pdu:
        """Send any request and return its response (a generic_nack included).

        Raises:
            SessionClosedError: not bound (nothing sent).
            ResponseTimeoutError, LinkLostError: sent, but no answer: outcome unknown.
        """
        if self._closing or not self._conn.bound:
            raise SessionClosedError(f"session to {self.settings.endpoint} is not bound")
        waiters = self._waiters
        if self._conn.window_full or (waiters and waiters[0].done()):
            await self._wait_for_room()
        return await self._start_request(pdu, self.settings.response_timeout)

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Stop taking requests, wait for outstanding responses, unbind and close."""
        if self.closed:
            return
        deadline = self.settings.close_timeout if timeout is None else timeout
        was_bound = self._conn.bound
        self._closing = True
        self._observer.bind_state(self.settings.server, self.settings.name, "unbinding")
        # An SMSC may close the link on our unbind before its unbind_resp reaches us: the link
        # is closed either way, which is all close() promises.
        with contextlib.suppress(TimeoutError, LinkLostError, SessionClosedError):
            async with asyncio.timeout(deadline):
                while self._pending and not self.closed:
                    futures = [entry[0] for entry in self._pending.values()]
                    await asyncio.gather(*futures, return_exceptions=True)
                if was_bound and not self.closed:
                    await self._start_request(Unbind(), deadline)
        self.abort()
        await asyncio.shield(self._closed)

    def abort(self) -> None:
        """Close at once; outstanding requests fail with LinkLostError (or NotSentError)."""
        self._finish(None, self._writer.abort())

    async def wait_closed(self) -> BaseException | None:
        """Wait until the session is closed; return why (None for a local close)."""
        return await asyncio.shield(self._closed)

    # --- sending: the connection encodes, stamps and books; this writes and waits --------------

    async def _wait_for_room(self) -> None:
        waiters = self._waiters
        while self._conn.window_full or (waiters and waiters[0].done()):
            waiter = self._loop.create_future()  # first come, first served
            waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)
            if self._closing:
                raise SessionClosedError(f"session to {self.settings.endpoint} closed")

    def _start_request(self, pdu: Pdu, timeout: float) -> asyncio.Future[Pdu]:
        conn = self._conn
        if self._transport is None or self._closed.done() or not conn.can_send(pdu.command_id):
            raise SessionClosedError(
                f"{type(pdu).__name__} to {self.settings.endpoint} not allowed in state "
                f"{conn.state.value}"
            )
        now = self._clock()
        self._queue_bytes(conn.send(pdu, now, timeout))
        future: asyncio.Future[Pdu] = self._loop.create_future()
        pending = self._pending
        pending[conn.last_sequence] = (future, now, self._writer.queued)
        self._observe_window(self._server, self._name, len(pending))
        timer = self._timer
        if timer is None or timer.when() > self._loop.time() + timeout:
            self._arm_timer()
        return future

    def _wake_waiter(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # --- receiving: the connection frames, decodes, matches and answers; this dispatches --------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = self._writer.transport = cast("asyncio.Transport", transport)
        self._conn.heard(self._clock())

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(LinkLostError(f"link to {self.settings.endpoint} lost: {exc or 'closed'}"))

    def data_received(self, data: bytes) -> None:
        if self._tap is not None:
            self._tap.received(data)
        conn = self._conn
        events = conn.receive_data(data, self._clock())
        out = conn.data_to_send()
        if out:
            self._queue_bytes(out)
        for event in events:
            if type(event) is ResponseReceived:
                self._answered(event.response)
            elif type(event) is RequestRejected:
                self._answered(event.nack)
            else:
                self._other(event)

    def _answered(self, pdu: Pdu) -> None:
        entry = self._pending.pop(pdu.sequence_number, None)
        if entry is None:  # our enquire_link answered: the link is alive
            if self._doubt is not None and not self._conn.probing:
                self._end_doubt()
            return
        future, sent_at, _ = entry
        if not future.done():
            future.set_result(pdu)
        self._observe_window(self._server, self._name, len(self._pending))
        if isinstance(pdu, _SUBMIT_RESPONSES):
            status = pdu.command_status
            name = _STATUS_NAMES.get(status) or status.name  # an unknown status has its own
            self._observe_result(self._server, self._name, name, self._clock() - sent_at)
        if self._waiters:
            self._wake_waiter()

    def _other(self, event: engine.Event) -> None:
        endpoint = self.settings.endpoint
        if isinstance(event, engine.PduReceived):
            if isinstance(event.pdu, DeliverSm | DataSm):
                self._inbound.received(event.pdu)
            else:  # alert_notification: nothing to answer (section 4.12)
                log.info("%s: %s ignored", endpoint, type(event.pdu).__name__)
        elif isinstance(event, engine.LateResponse):
            self._late.take(event.response, endpoint)
        elif isinstance(event, engine.UnbindReceived):
            self._closing = True
            self._fail(LinkLostError(f"{endpoint} unbound"))
        elif isinstance(event, engine.LinkDead):
            self._fail(LinkLostError(f"{endpoint} {event.reason}"))
        elif isinstance(event, engine.BadPdu | engine.RequestRefused):
            log.warning("%s: %s", endpoint, event)

    def _answer(self, pdu: Pdu) -> None:
        if not self.closed and self._conn.state is not State.CLOSED:
            self._queue_bytes(self._conn.send(pdu, self._clock()))

    def _reading(self, *, on: bool) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading() if on else transport.pause_reading()

    # --- timers: the connection keeps the deadlines; this arms one loop timer at the next -------

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._conn.next_deadline()
        if deadline is not None and not self.closed:
            # The loop's clock and ours are both monotonic seconds; convert by the current skew.
            when = deadline - self._clock() + self._loop.time()
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = self._clock()
        if self._inbound.paused:
            # We hold reading back (inbound flow control): the silence is ours, and responses
            # may be waiting unread. Judge the link again once we read.
            self._conn.heard(now)
            self._timer = self._loop.call_at(self._loop.time() + 1.0, self._on_timer)
            return
        s = self.settings
        timed_out = False
        for event in self._conn.handle_timer(now):
            if isinstance(event, engine.ResponseTimedOut):
                if not self._timed_out(event.sequence_number):
                    return
                timed_out = True
            elif isinstance(event, engine.EnquireLinkSent):
                self._queue_bytes(self._conn.data_to_send())
                if event.after_timeout:
                    log.info(
                        "%s (bind %s): a response timed out; probing the link with enquire_link",
                        s.endpoint,
                        s.name,
                    )
            elif isinstance(event, engine.LinkDead):
                self._link_dead(event)
                return
        if timed_out and self._doubt is None and self._conn.probing:
            self._doubt = self._loop.create_future()
        self._arm_timer()

    def _link_dead(self, event: engine.LinkDead) -> None:
        s = self.settings
        if event.frozen:
            log.warning(
                "%s (bind %s): %s in %g s: the SMSC looks frozen (TCP open, nothing answered); "
                "dropping the link",
                *(s.endpoint, s.name, event.reason, s.response_timeout),
            )
        else:
            log.warning("%s (bind %s): %s; dropping the link", s.endpoint, s.name, event.reason)
        self._fail(LinkLostError(f"{s.endpoint}: {event.reason}"))

    def _timed_out(self, seq: int) -> bool:
        """Fail the request ``seq`` with ResponseTimeoutError; False if the link went instead."""
        s = self.settings
        entry = self._pending.pop(seq, None)
        if entry is None:
            return True
        self._observe_window(s.server, s.name, len(self._pending))
        future, _, end = entry
        if end > self._writer.written():
            # Still in our write buffer after a whole response_timeout: the peer has read
            # nothing for that long. Drop the link: its octets are discarded unsent, so it
            # goes back to the queue instead of ending unknown.
            self._pending[seq] = entry
            log.warning(
                "%s (bind %s): request %d not yet written to the socket after %g s: the SMSC "
                "reads nothing (frozen?); dropping the link",
                *(s.endpoint, s.name, seq, s.response_timeout),
            )
            self._fail(LinkLostError(f"{s.endpoint} read nothing for {s.response_timeout:g} s"))
            return False
        if not future.done():
            late = self._late.expect(seq)
            message = f"no response from {s.endpoint} in {s.response_timeout:g} s"
            future.set_exception(ResponseTimeoutError(message, late))
            self._observer.submit_unknown(s.server, s.name, "timeout")
        self._wake_waiter()
        return True

    def _end_doubt(self) -> None:
        doubt, self._doubt = self._doubt, None
        if doubt is not None and not doubt.done():
            doubt.set_result(None)

    # --- closing ------------------------------------------------------------------------------

    def _fail(self, exc: SessionError) -> None:
        self._finish(exc, self._writer.abort())

    def _finish(self, exc: SessionError | None, written: int) -> None:
        """Close the books: each outstanding request fails with NotSentError when its octets
        were not all written to the socket (``written`` octets were), else LinkLostError."""
        if self._closed.done():
            return
        self._conn.connection_lost()
        self._inbound.close()
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, {}
        self._late.cancel()  # no response can come on a closed link
        self._end_doubt()
        s = self.settings
        self._observe_window(s.server, s.name, 0)
        for future, _, end in pending.values():
            if future.done():
                continue
            if end > written:
                message = f"link to {s.endpoint} closed before the request was written"
                future.set_exception(NotSentError(message))
                continue
            future.set_exception(LinkLostError(f"link to {s.endpoint} closed before the response"))
            self._observer.submit_unknown(s.server, s.name, "link_lost")
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._closed.set_result(exc)
        self._observer.bind_state(s.server, s.name, "closed")
