"""One SMPP session (one bind) over asyncio: plain TCP or TLS.

A :class:`Session` is a thin :class:`asyncio.Protocol` over the sans-IO
:class:`~smppgw.codec.SmppConnection`, which frames, decodes, matches each response to its
request, answers enquire_link and bad frames, and keeps the window and the timers
(enquire_link after ``enquire_link_interval`` without a word from the peer, and at once after a
response timeout; the peer dead when that goes unanswered or nothing arrives for
``idle_timeout``). The session writes the octets, resolves one future per request, arms one
loop timer at the connection's next deadline, and keeps what only IO knows: a request the link
closed before writing wholly to the socket fails with :class:`NotSentError` (it never reached
the SMSC); while the link is in doubt (a response timed out, the probe after it unanswered) new
submits wait for the verdict.

Requests from the SMSC (deliver_sm, data_sm) go to the ``on_inbound`` handler, whose result is
the status of the response: the caller answers ESME_ROK only after it stored the message. At
most ``inbound_window`` handlers run at once; while that many are unanswered the session stops
reading from the socket, so TCP backpressure makes the SMSC wait for our responses instead of
every queued receipt becoming a task in memory (an SMSC flushes its whole backlog at a bind).
A non-OK submit_sm_resp is returned, not raised (so is a generic_nack to a submit, as a response
with its status); a submit whose response never came raises :class:`ResponseTimeoutError` or
:class:`LinkLostError` (its outcome is unknown); a response that comes after the timeout
resolves the error's ``late`` future instead of being dropped. No reconnect: that is the bind
manager's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from smppgw.codec import (
    BadPdu,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLinkSent,
    Event,
    GenericNack,
    LateResponse,
    LinkDead,
    Pdu,
    PduReceived,
    QuerySm,
    QuerySmResp,
    RequestRefused,
    RequestRejected,
    ResponseReceived,
    ResponseTimedOut,
    Role,
    SmppConnection,
    SmppError,
    State,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindReceived,
)
from smppgw.esme.observe import NULL_OBSERVER, Observer
from smppgw.esme.tls import TlsSettings, is_handshake_failure

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

MAX_LATE = 1024
"""Timed-out requests whose late response a session still takes, per session (the oldest
beyond it stop waiting). Sequence numbers are not reused before they wrap (2**31), so a
late response is never mistaken for another request's."""

# Hot-path constants: a tuple for isinstance (a union would be built on every call) and the
# status names by value (Enum.name is a descriptor, slower than a dict lookup).
_SUBMIT_RESPONSES = (SubmitSmResp, DataSmResp)
_STATUS_NAMES: dict[int, str] = {status: status.name for status in CommandStatus}


class BindType(enum.Enum):
    """The three bind modes (SMPP v3.4 section 2.2)."""

    TRANSMITTER = "tx"
    RECEIVER = "rx"
    TRANSCEIVER = "trx"

    @property
    def can_submit(self) -> bool:
        return self is not BindType.RECEIVER

    @property
    def can_receive(self) -> bool:
        return self is not BindType.TRANSMITTER


_BIND_PDUS: dict[BindType, type[BindTransmitter | BindReceiver | BindTransceiver]] = {
    BindType.TRANSMITTER: BindTransmitter,
    BindType.RECEIVER: BindReceiver,
    BindType.TRANSCEIVER: BindTransceiver,
}


class SessionError(SmppError):
    """Root of the session layer's errors."""


class ConnectError(SessionError):
    """The TCP or TLS connection could not be opened."""


class BindError(SessionError):
    """The SMSC refused the bind; ``status`` says why (ESME_RINVPASWD, ESME_RALYBND...)."""

    def __init__(self, message: str, status: CommandStatus) -> None:
        super().__init__(message)
        self.status = status


class SessionClosedError(SessionError):
    """A request on a session that is closing or closed; nothing was sent."""


class NotSentError(SessionClosedError):
    """The link closed before the request was wholly written to the socket: the SMSC never
    got it, so it may be sent again elsewhere without risk of a duplicate."""


class ResponseTimeoutError(SessionError):
    """The request was sent but its response did not come in time: the outcome is unknown.

    Attributes:
        late: resolved with the response if it still comes on this link (an SMSC slower than
            ``response_timeout`` still decided the request); cancelled when the link closes
            first, or when :data:`MAX_LATE` later timeouts push it out.
    """

    def __init__(self, message: str, late: asyncio.Future[Pdu] | None = None) -> None:
        super().__init__(message)
        self.late = late


class LinkLostError(SessionError):
    """The link died with the request outstanding: the outcome is unknown."""


InboundHandler = Callable[[DeliverSm | DataSm], Awaitable[CommandStatus]]
"""Called with each deliver_sm / data_sm; its result is the response's command_status. While
it runs, :func:`inbound_origin` tells which server and bind the PDU came on."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an inbound PDU arrived: the configured server and bind names."""

    server: str
    bind: str


_ORIGIN: contextvars.ContextVar[Origin | None] = contextvars.ContextVar(
    "smppgw_inbound_origin", default=None
)


def inbound_origin() -> Origin | None:
    """The server and bind of the PDU the current inbound handler is answering (None outside
    a handler, or for a session without names)."""
    return _ORIGIN.get()


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Everything one session needs; see the module docstring for the timers."""

    host: str
    port: int
    system_id: str
    password: str = field(repr=False)
    system_type: str = "smpp"
    bind_type: BindType = BindType.TRANSCEIVER
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    tls: TlsSettings | None = None
    window: int = 10
    response_timeout: float = 30.0
    enquire_link_interval: float = 60.0
    idle_timeout: float = 300.0
    connect_timeout: float = 10.0
    bind_timeout: float = 10.0
    close_timeout: float = 5.0
    max_command_length: int = 65536
    inbound_window: int = 64
    server: str = ""
    name: str = ""

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}{' (TLS)' if self.tls else ''}"


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
        self._on_inbound = on_inbound
        self._observer = observer
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []  # written at the end of this turn of the loop
        self._in_turn = False  # a PDU was written in this turn: queue the next ones
        self._conn = SmppConnection(
            Role.ESME,
            window=settings.window,
            response_timeout=settings.response_timeout,
            enquire_link_interval=settings.enquire_link_interval,
            idle_timeout=settings.idle_timeout,
            max_command_length=settings.max_command_length,
            now=clock(),
        )
        # sequence_number -> (its future, when it was sent, the end of its octets in our stream)
        self._pending: dict[int, tuple[asyncio.Future[Pdu], float, int]] = {}
        self._queued = 0  # octets handed to _queue_bytes since the connection opened
        self._late: dict[int, asyncio.Future[Pdu]] = {}  # timed out; their response may come
        # Set while a response timed out and the probe after it is unanswered (see submit).
        self._doubt: asyncio.Future[None] | None = None
        self._server, self._name = settings.server, settings.name
        self._observe_window = observer.window
        self._observe_result = observer.submit_result
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed: asyncio.Future[BaseException | None] = self._loop.create_future()
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._inbound_tasks: set[asyncio.Task[None]] = set()
        # deliver_sm / data_sm read while inbound_window handlers ran: reading is paused
        # until they are served.
        self._inbound_backlog: deque[DeliverSm | DataSm] = deque()
        self._inbound_window = max(1, settings.inbound_window)
        self._reading_paused = False

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
        await _open_transport(settings, session, observer)
        s = settings
        bind = _BIND_PDUS[s.bind_type](
            system_id=s.system_id,
            password=s.password,
            system_type=s.system_type,
            interface_version=s.interface_version,
            addr_ton=s.addr_ton,
            addr_npi=s.addr_npi,
            address_range=s.address_range,
        )
        what = f"bind_{s.bind_type.name.lower()} to {s.endpoint}"
        try:
            resp = await session._start_request(bind, s.bind_timeout)
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

    def send_nowait_possible(self) -> bool:
        """True when a request can be sent at once (bound and the window has room)."""
        conn = self._conn
        return not self._closing and conn.bound and not conn.window_full and not self._waiters

    async def submit(self, pdu: SubmitSm | DataSm) -> SubmitSmResp | DataSmResp:
        """Send a submit_sm or data_sm and return its response, whatever its status.

        A generic_nack to it is a refusal (section 4.3: nothing was accepted): it comes back as
        a response of the submit's type with the nack's status (ESME_RUNKNOWNERR for a nack
        saying ESME_ROK). While the link is in doubt (a response timed out and the probe after
        it is unanswered) the submit waits for the verdict: on a frozen link it would only
        join the unknown outcomes.

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
        resp = await self._send_request(pdu, self.settings.response_timeout)
        if isinstance(resp, _SUBMIT_RESPONSES):
            return resp
        status = resp.command_status
        log.warning(
            "%s answered %s (sequence %d) with generic_nack %s (%s)",
            self.settings.endpoint,
            type(pdu).__name__,
            resp.sequence_number,
            status.name,
            status.description,
        )
        if status == CommandStatus.ESME_ROK:
            status = CommandStatus.ESME_RUNKNOWNERR
        cls = DataSmResp if isinstance(pdu, DataSm) else SubmitSmResp
        return cls(sequence_number=resp.sequence_number, command_status=status, body_omitted=True)

    async def query(self, pdu: QuerySm) -> QuerySmResp | GenericNack:
        """Send a query_sm (section 4.8); return its answer, whatever its status (an SMSC
        without query_sm answers generic_nack ESME_RINVCMDID).

        Raises:
            SessionClosedError: not bound (nothing sent).
            ResponseTimeoutError, LinkLostError: sent, but no answer.
        """
        resp = await self.request(pdu)
        if not isinstance(resp, QuerySmResp | GenericNack):
            raise LinkLostError(f"{self.settings.endpoint} answered query_sm with {resp!r}")
        return resp

    async def request(self, pdu: Pdu) -> Pdu:
        """Send any request and return its response (a generic_nack included)."""
        if self._closing or not self._conn.bound:
            raise SessionClosedError(f"session to {self.settings.endpoint} is not bound")
        return await self._send_request(pdu, self.settings.response_timeout)

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
        self._finish(None, self._abort_transport())

    async def wait_closed(self) -> BaseException | None:
        """Wait until the session is closed; return why (None for a local close)."""
        return await asyncio.shield(self._closed)

    # --- sending: the connection encodes, stamps and books; this writes and waits --------------

    async def _send_request(self, pdu: Pdu, timeout: float) -> Pdu:  # noqa: ASYNC109
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
        return await self._start_request(pdu, timeout)

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
        pending[conn.last_sequence] = (future, now, self._queued)
        self._observe_window(self._server, self._name, len(pending))
        timer = self._timer
        if timer is None or timer.when() > self._loop.time() + timeout:
            self._arm_timer()
        return future

    def _queue_bytes(self, data: bytes) -> None:
        """The first PDU of a turn of the loop goes at once, the next ones together at its end:
        under load one write (one system call) carries a window of PDUs."""
        self._queued += len(data)
        if self._in_turn:
            self._out.append(data)
            return
        self._in_turn = True
        self._loop.call_soon(self._flush)
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _flush(self) -> None:
        self._in_turn = False
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _wake_waiter(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # --- receiving: the connection frames, decodes, matches and answers; this dispatches --------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast("asyncio.Transport", transport)
        self._conn.heard(self._clock())

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(LinkLostError(f"link to {self.settings.endpoint} lost: {exc or 'closed'}"))

    def data_received(self, data: bytes) -> None:
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

    def _other(self, event: Event) -> None:
        endpoint = self.settings.endpoint
        if isinstance(event, PduReceived):
            self._received(event.pdu)
        elif isinstance(event, LateResponse):
            late = self._late.pop(event.response.sequence_number, None)
            if late is None:
                log.warning(
                    "%s: response for unknown sequence %d dropped",
                    endpoint,
                    event.response.sequence_number,
                )
            else:
                log.warning(
                    "%s: response to sequence %d came after the response timeout",
                    endpoint,
                    event.response.sequence_number,
                )
                if not late.done():
                    late.set_result(event.response)
        elif isinstance(event, UnbindReceived):
            self._closing = True
            self._fail(LinkLostError(f"{endpoint} unbound"))
        elif isinstance(event, LinkDead):
            self._fail(LinkLostError(f"{endpoint} {event.reason}"))
        elif isinstance(event, BadPdu | RequestRefused):
            log.warning("%s: %s", endpoint, event)

    def _received(self, pdu: Pdu) -> None:
        if not isinstance(pdu, DeliverSm | DataSm):  # alert_notification: no answer (4.12)
            log.info("%s: %s ignored", self.settings.endpoint, type(pdu).__name__)
        elif self._inbound_backlog or len(self._inbound_tasks) >= self._inbound_window:
            self._inbound_backlog.append(pdu)
            if not self._reading_paused and self._transport is not None:
                self._reading_paused = True
                self._transport.pause_reading()
        else:
            self._start_inbound(pdu)

    def _start_inbound(self, pdu: DeliverSm | DataSm) -> None:
        task = self._loop.create_task(self._inbound(pdu))
        self._inbound_tasks.add(task)
        task.add_done_callback(self._inbound_done)

    def _inbound_done(self, task: asyncio.Task[None]) -> None:
        self._inbound_tasks.discard(task)
        backlog = self._inbound_backlog
        if self.closed:
            backlog.clear()  # never answered: the SMSC sends them again on another bind
            return
        while backlog and len(self._inbound_tasks) < self._inbound_window:
            self._start_inbound(backlog.popleft())
        transport = self._transport
        if not backlog and self._reading_paused:
            self._reading_paused = False
            if transport is not None and not transport.is_closing():
                transport.resume_reading()

    async def _inbound(self, pdu: DeliverSm | DataSm) -> None:
        # This task runs in its own copy of the context: the handler sees this bind's origin.
        _ORIGIN.set(Origin(self._server, self._name))
        status = CommandStatus.ESME_RX_T_APPN
        if self._on_inbound is not None:
            try:
                status = await self._on_inbound(pdu)
            except Exception:
                log.exception("inbound handler failed; answering ESME_RX_T_APPN")
        seq = pdu.sequence_number
        resp = (
            DeliverSmResp(sequence_number=seq, command_status=status)
            if isinstance(pdu, DeliverSm)
            else DataSmResp(sequence_number=seq, command_status=status)
        )
        if not self.closed and self._conn.state is not State.CLOSED:
            self._queue_bytes(self._conn.send(resp, self._clock()))

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
        if self._reading_paused:
            # We hold reading back (inbound flow control): the silence is ours, and responses
            # may be waiting unread. Judge the link again once we read.
            self._conn.heard(now)
            self._timer = self._loop.call_at(self._loop.time() + 1.0, self._on_timer)
            return
        s = self.settings
        timed_out = False
        for event in self._conn.handle_timer(now):
            if isinstance(event, ResponseTimedOut):
                if not self._timed_out(event.sequence_number):
                    return
                timed_out = True
            elif isinstance(event, EnquireLinkSent):
                self._queue_bytes(self._conn.data_to_send())
                if event.after_timeout:
                    log.info(
                        "%s (bind %s): a response timed out; probing the link with enquire_link",
                        s.endpoint,
                        s.name,
                    )
            elif isinstance(event, LinkDead):
                self._link_dead(event)
                return
        if timed_out and self._doubt is None and self._conn.probing:
            self._doubt = self._loop.create_future()
        self._arm_timer()

    def _link_dead(self, event: LinkDead) -> None:
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
        if end > self._written():
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
            late: asyncio.Future[Pdu] = self._loop.create_future()
            self._late[seq] = late
            if len(self._late) > MAX_LATE:
                self._late.pop(next(iter(self._late))).cancel()
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

    def _written(self) -> int:
        """Octets of our stream handed to the kernel so far (over TLS, octets still being
        encrypted count as written: that only errs towards "the SMSC may have it")."""
        unsent = sum(map(len, self._out))
        transport = self._transport
        if transport is not None and not transport.is_closing():
            unsent += transport.get_write_buffer_size()
        return self._queued - unsent

    def _abort_transport(self) -> int:
        """Flush what this turn queued, abort the transport; return :meth:`_written` before."""
        transport = self._transport
        if transport is None:
            return self._written()
        if transport.is_closing():
            written = self._written()  # the transport's buffer is gone: count it as written
            self._out.clear()
        else:
            self._flush()  # responses already given (deliver_sm_resp, unbind_resp) still go
            written = self._written()
        transport.abort()
        return written

    def _fail(self, exc: SessionError) -> None:
        self._finish(exc, self._abort_transport())

    def _finish(self, exc: SessionError | None, written: int) -> None:
        """Close the books: each outstanding request fails with NotSentError when its octets
        were not all written to the socket (``written`` octets were), else LinkLostError."""
        if self._closed.done():
            return
        self._conn.connection_lost()
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, {}
        late, self._late = self._late, {}
        for future in late.values():
            future.cancel()  # no response can come on a closed link
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


async def _open_transport(settings: SessionSettings, session: Session, observer: Observer) -> None:
    """Open the TCP or TLS connection with ``session`` as its protocol.

    Raises:
        ConnectError: not in ``connect_timeout``, refused, or the TLS handshake failed (named).
    """
    ssl_context = None
    if settings.tls is not None:
        try:
            ssl_context = settings.tls.context()
        except (OSError, ValueError) as exc:
            raise ConnectError(f"TLS settings for {settings.endpoint}: {exc}") from exc
    server_hostname = None if settings.tls is None else settings.tls.server_name or settings.host
    try:
        async with asyncio.timeout(settings.connect_timeout):
            await asyncio.get_running_loop().create_connection(
                lambda: session,
                settings.host,
                settings.port,
                ssl=ssl_context,
                server_hostname=server_hostname,
            )
    except (OSError, TimeoutError) as exc:
        observer.bind_state(settings.server, settings.name, "closed")
        if settings.tls is not None and is_handshake_failure(exc):
            reason = await settings.tls.explain_failure(
                exc, settings.host, settings.port, settings.connect_timeout
            )
            raise ConnectError(
                f"TLS handshake with {settings.host}:{settings.port} failed: {reason}"
            ) from exc
        cause = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise ConnectError(f"connect to {settings.endpoint} failed: {cause}") from exc
