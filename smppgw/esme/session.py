"""One SMPP session (one bind) over asyncio: plain TCP or TLS.

A :class:`Session` is an :class:`asyncio.Protocol`: received octets go through the
:class:`~smppgw.codec.Framer` and :func:`~smppgw.codec.decode` straight into the future of the
request they answer, with no task or stream per PDU. The sans-IO
:class:`~smppgw.codec.connection.Connection` keeps the window, the response deadlines and the
link timers (enquire_link after ``enquire_link_interval`` without a word from the peer, and at
once after a response timeout; the peer dead when that goes unanswered or nothing arrives for
``idle_timeout``); the session arms one loop timer at its next deadline and carries out what
it says. A request the link closed before writing wholly to the socket fails with
:class:`NotSentError` (it never reached the SMSC); while the link is in doubt (a response timed
out, the probe after it unanswered) new submits wait for the verdict.

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
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    DataSm,
    DataSmResp,
    DecodeError,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Framer,
    GenericNack,
    InvalidCommandLengthError,
    Pdu,
    QuerySm,
    QuerySmResp,
    SmppError,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode,
    encode,
)
from smppgw.codec.connection import (
    Connection,
    Input,
    LinkDead,
    ProtocolError,
    RejectedRequestError,
    RequestTimedOut,
    Role,
    SendEnquireLink,
    State,
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
    """One bound SMPP session. Create it with :meth:`connect`."""

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
        self._framer = Framer(settings.max_command_length)
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []  # written at the end of this turn of the loop
        self._in_turn = False  # a PDU was written in this turn: queue the next ones
        # Bind state, sequence numbers, window, response deadlines and the link timers live in
        # the sans-IO connection; this maps each outstanding sequence number to its future, its
        # send time and the end of its octets in the stream we write (see _written).
        self._conn = Connection(
            Role.ESME,
            window=settings.window,
            enquire_link_interval=settings.enquire_link_interval,
            idle_timeout=settings.idle_timeout,
        )
        self._pending: dict[int, tuple[asyncio.Future[Pdu], float, int]] = {}
        self._queued = 0  # octets handed to _queue_bytes since the connection opened
        # Requests that timed out, by sequence number: their response may still come.
        self._late: dict[int, asyncio.Future[Pdu]] = {}
        # Set while a response timed out and the enquire_link probing the link is unanswered:
        # new submits wait for its verdict (see _wait_out_doubt).
        self._doubt: asyncio.Future[None] | None = None
        # Looked up once rather than on every PDU (settings are frozen).
        self._server = settings.server
        self._name = settings.name
        self._response_timeout = settings.response_timeout
        self._create_future = self._loop.create_future
        self._loop_time = self._loop.time
        self._observe_window = observer.window
        self._observe_result = observer.submit_result
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self._closed: asyncio.Future[BaseException | None] = self._loop.create_future()
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._inbound_tasks: set[asyncio.Task[None]] = set()
        # deliver_sm / data_sm read while inbound_window handlers were running: the rest of the
        # socket read they came in (reading is paused until the backlog is served).
        self._inbound_backlog: deque[DeliverSm | DataSm] = deque()
        self._inbound_window = max(1, settings.inbound_window)
        self._reading_paused = False

    # --- opening ------------------------------------------------------------------------------

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
            ConnectError: the connection could not be opened in ``connect_timeout``.
            BindError: the SMSC answered the bind with an error, or not in ``bind_timeout``.
        """
        loop = asyncio.get_running_loop()
        session = cls(settings, on_inbound, observer, clock)
        observer.bind_state(settings.server, settings.name, "connecting")
        ssl_context = None
        server_hostname = None
        if settings.tls is not None:
            try:
                ssl_context = settings.tls.context()
            except (OSError, ValueError) as exc:
                raise ConnectError(f"TLS settings for {settings.endpoint}: {exc}") from exc
            server_hostname = settings.tls.server_name or settings.host
        try:
            async with asyncio.timeout(settings.connect_timeout):
                await loop.create_connection(
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
        await session._bind()
        return session

    async def _bind(self) -> None:
        s = self.settings
        pdu = _BIND_PDUS[s.bind_type](
            system_id=s.system_id,
            password=s.password,
            system_type=s.system_type,
            interface_version=s.interface_version,
            addr_ton=s.addr_ton,
            addr_npi=s.addr_npi,
            address_range=s.address_range,
        )
        try:
            resp = await self._send_request(pdu, s.bind_timeout, bypass_window=True)
        except SessionError as exc:
            self.abort()
            raise BindError(
                f"bind_{s.bind_type.name.lower()} to {s.endpoint}: {exc}",
                CommandStatus.ESME_RBINDFAIL,
            ) from exc
        if resp.command_status != CommandStatus.ESME_ROK:
            self.abort()
            status = resp.command_status
            raise BindError(
                f"bind_{s.bind_type.name.lower()} to {s.endpoint} refused: "
                f"{status.name} ({status.description})",
                status,
            )
        self._observer.bind_state(s.server, s.name, "bound")
        self._arm_timer()

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

        A generic_nack to it is a refusal: it comes back as a response of the submit's type
        carrying the generic_nack's status (and is logged, naming the PDU and the status).

        Raises:
            SessionClosedError: the session is not bound (nothing was sent).
            ResponseTimeoutError, LinkLostError: sent, but no response: outcome unknown.
        """
        # request() and _send_request(), inlined: two coroutines less per submit.
        conn = self._conn
        if self._closing or not conn.bound:
            raise SessionClosedError(f"session to {self.settings.endpoint} is not bound")
        if self._doubt is not None:
            await self._wait_out_doubt()
        waiters = self._waiters
        if conn.window_full or (waiters and waiters[0].done()):
            await self._wait_for_room()
        resp = await self._start_request(pdu, self._response_timeout)
        if not isinstance(resp, _SUBMIT_RESPONSES):
            return self._refusal(pdu, resp)
        return resp

    async def _wait_out_doubt(self) -> None:
        """Hold a submit while the link is in doubt (a response timed out and the enquire_link
        after it is unanswered): on a frozen link it would only join the unknown ones.

        Raises:
            NotSentError: the link was found dead meanwhile (the submit never left us).
        """
        doubt = self._doubt
        if doubt is not None:
            await asyncio.shield(doubt)
        if self._closing or not self._conn.bound:
            raise NotSentError(f"link to {self.settings.endpoint} closed before the request")

    def _refusal(self, pdu: SubmitSm | DataSm, nack: Pdu) -> SubmitSmResp | DataSmResp:
        """A generic_nack to a submit (the connection lets no other PDU through): a refusal.

        Section 4.3: the SMSC did not process the PDU, so nothing was accepted and the status
        goes to the retry policy like any negative response. A generic_nack carrying ESME_ROK
        contradicts itself; it is taken as ESME_RUNKNOWNERR (a bounded retry).
        """
        status = nack.command_status
        if status == CommandStatus.ESME_ROK:
            status = CommandStatus.ESME_RUNKNOWNERR
        log.warning(
            "%s answered %s (sequence %d) with generic_nack %s (%s)",
            self.settings.endpoint,
            type(pdu).__name__,
            nack.sequence_number,
            nack.command_status.name,
            nack.command_status.description,
        )
        seq = nack.sequence_number
        if isinstance(pdu, DataSm):
            return DataSmResp(sequence_number=seq, command_status=status, body_omitted=True)
        return SubmitSmResp(sequence_number=seq, command_status=status, body_omitted=True)

    async def query(self, pdu: QuerySm) -> QuerySmResp | GenericNack:
        """Send a query_sm (SMPP v3.4 section 4.8) and return its answer, whatever its status
        (an SMSC without query_sm answers generic_nack ESME_RINVCMDID).

        Raises:
            SessionClosedError: the session is not bound (nothing was sent).
            ResponseTimeoutError, LinkLostError: sent, but no answer.
        """
        resp = await self.request(pdu)
        if not isinstance(resp, QuerySmResp | GenericNack):
            raise LinkLostError(
                f"{self.settings.endpoint} answered query_sm with {type(resp).__name__}"
            )
        return resp

    async def request(self, pdu: Pdu) -> Pdu:
        """Send any request and return its response (a generic_nack included)."""
        if self._closing or not self._conn.bound:
            raise SessionClosedError(f"session to {self.settings.endpoint} is not bound")
        return await self._send_request(pdu, self._response_timeout)

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Stop taking requests, wait for outstanding responses, unbind and close."""
        if self.closed:
            return
        deadline = self.settings.close_timeout if timeout is None else timeout
        was_bound = self._conn.bound
        self._closing = True
        self._observer.bind_state(self.settings.server, self.settings.name, "unbinding")
        # An SMSC may close the link on our unbind before its unbind_resp reaches us (smpp34's
        # server often does): the link is closed either way, which is all close() promises.
        with contextlib.suppress(TimeoutError, LinkLostError, SessionClosedError):
            async with asyncio.timeout(deadline):
                while self._pending and not self.closed:
                    await asyncio.gather(
                        *(entry[0] for entry in self._pending.values()), return_exceptions=True
                    )
                if was_bound and not self.closed:
                    await self._send_request(Unbind(), deadline, bypass_window=True)
        self.abort()
        await asyncio.shield(self._closed)

    def abort(self) -> None:
        """Close at once; outstanding requests fail with LinkLostError (or NotSentError)."""
        self._finish(None, self._abort_transport())

    async def wait_closed(self) -> BaseException | None:
        """Wait until the session is closed; return why (None for a local close)."""
        return await asyncio.shield(self._closed)

    # --- sending ------------------------------------------------------------------------------

    async def _send_request(self, pdu: Pdu, timeout: float, *, bypass_window: bool = False) -> Pdu:  # noqa: ASYNC109
        if not bypass_window:
            waiters = self._waiters
            if self._conn.window_full or (waiters and waiters[0].done()):
                await self._wait_for_room()
        return await self._start_request(pdu, timeout)

    def _start_request(self, pdu: Pdu, timeout: float) -> asyncio.Future[Pdu]:
        """Send a request now (the caller saw to the window); the future gets its response."""
        conn = self._conn
        transport = self._transport
        if transport is None or self._closed.done():
            raise SessionClosedError(f"session to {self.settings.endpoint} is closed")
        command_id = pdu.command_id
        if not conn.can_send(command_id):
            raise SessionClosedError(
                f"{type(pdu).__name__} to {self.settings.endpoint} not allowed in state "
                f"{conn.state.value}"
            )
        wire = encode(pdu)
        now = self._clock()
        seq = conn.send_request(command_id, now, timeout)
        future: asyncio.Future[Pdu] = self._create_future()
        self._queue_bytes(wire[:12] + seq.to_bytes(4, "big") + wire[16:])  # our sequence number
        pending = self._pending
        pending[seq] = (future, now, self._queued)
        self._observe_window(self._server, self._name, len(pending))
        timer = self._timer
        if timer is None or timer.when() > self._loop_time() + timeout:
            self._arm_timer()
        return future

    async def _wait_for_room(self) -> None:
        """Wait until the window has room and every earlier waiter has gone first."""
        waiters = self._waiters
        while self._conn.window_full or (waiters and waiters[0].done()):
            waiter = self._loop.create_future()
            waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)
            if self.closed or self._closing:
                raise SessionClosedError(f"session to {self.settings.endpoint} closed")

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast("asyncio.Transport", transport)
        self._conn.heard(self._clock())
        if not self._connected.done():
            self._connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._conn.heard(self._clock())
        try:
            frames = self._framer.feed(data)
        except InvalidCommandLengthError as exc:
            # The stream cannot be resynchronised: answer and disconnect.
            self._write(GenericNack(command_status=exc.status))
            self._fail(LinkLostError(f"{self.settings.endpoint} sent a bad frame: {exc}"))
            return
        handle = self._handle
        for frame in frames:
            try:
                pdu = decode(frame)
            except DecodeError as exc:
                log.warning("undecodable PDU from %s: %s", self.settings.endpoint, exc)
                self._write(
                    GenericNack(sequence_number=exc.sequence_number, command_status=exc.status)
                )
                continue
            handle(pdu)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(LinkLostError(f"link to {self.settings.endpoint} lost: {exc or 'closed'}"))

    # --- receiving ----------------------------------------------------------------------------

    def _handle(self, pdu: Pdu) -> None:
        try:
            event = self._conn.receive(pdu)
        except RejectedRequestError as exc:
            # Section 2.3: a request not allowed in this bind state (or from an SMSC at all)
            # is answered with an error status; the session carries on.
            self._write(_rejection(pdu, exc.status))
            return
        except ProtocolError as exc:
            self._fail(LinkLostError(f"{self.settings.endpoint} broke the protocol: {exc}"))
            return
        if not pdu.is_response:
            self._handle_request(pdu, event)
            return
        entry = self._pending.pop(pdu.sequence_number, None)
        if entry is None:
            # No future for it: the answer to our enquire_link (the connection has noted it),
            # or one the connection ignored because it awaits nothing: its request timed out
            # (whoever still waits for it gets it).
            if event is not None and self._doubt is not None and not self._conn.probing:
                self._end_doubt()  # the probe was answered: the link is alive
            taken = bool(self._late) and self._take_late(pdu)
            if not taken and event is None:
                log.warning(
                    "%s: response for unknown sequence %d dropped",
                    self.settings.endpoint,
                    pdu.sequence_number,
                )
            return
        future, sent_at, _ = entry
        if not future.done():
            future.set_result(pdu)
        self._observe_window(self._server, self._name, len(self._pending))
        if isinstance(pdu, _SUBMIT_RESPONSES):
            status = pdu.command_status
            self._observe_result(
                self._server,
                self._name,
                _STATUS_NAMES.get(status) or status.name,  # an unknown status has its own
                self._clock() - sent_at,
            )
        if self._waiters:
            self._wake_waiter()

    def _handle_request(self, pdu: Pdu, event: Input | None) -> None:
        if event is Input.ENQUIRE_LINK:
            self._write(EnquireLinkResp(sequence_number=pdu.sequence_number))
        elif isinstance(pdu, DeliverSm | DataSm):
            if self._inbound_backlog or len(self._inbound_tasks) >= self._inbound_window:
                self._inbound_backlog.append(pdu)
                self._pause_reading()
            else:
                self._start_inbound(pdu)
        elif event is Input.UNBIND:
            self._closing = True
            self._write(UnbindResp(sequence_number=pdu.sequence_number))
            self._fail(LinkLostError(f"{self.settings.endpoint} unbound"))
        else:
            # An alert_notification: nothing to answer (section 4.12), nothing to do with it.
            log.info("%s: %s ignored", self.settings.endpoint, type(pdu).__name__)

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
        if not backlog and self._reading_paused:
            self._reading_paused = False
            transport = self._transport
            if transport is not None and not transport.is_closing():
                transport.resume_reading()

    def _pause_reading(self) -> None:
        if self._reading_paused:
            return
        self._reading_paused = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()

    async def _inbound(self, pdu: DeliverSm | DataSm) -> None:
        # This task runs in its own copy of the context: the handler sees this bind's origin.
        _ORIGIN.set(Origin(self._server, self._name))
        status = CommandStatus.ESME_RX_T_APPN
        if self._on_inbound is not None:
            try:
                status = await self._on_inbound(pdu)
            except Exception:
                log.exception("inbound handler failed; answering ESME_RX_T_APPN")
        resp: Pdu = (
            DeliverSmResp(sequence_number=pdu.sequence_number, command_status=status)
            if isinstance(pdu, DeliverSm)
            else DataSmResp(sequence_number=pdu.sequence_number, command_status=status)
        )
        self._write(resp)

    def _write(self, pdu: Pdu) -> None:
        """Send a response (never a request: those go through :meth:`_send_request`)."""
        transport = self._transport
        if transport is None or transport.is_closing() or self._conn.state is State.CLOSED:
            return
        self._conn.send_response(pdu.command_id, pdu.command_status)
        self._queue_bytes(encode(pdu))

    def _queue_bytes(self, data: bytes) -> None:
        """Send ``data``: the first PDU of a turn of the event loop at once (no added latency),
        the ones after it together at the end of the turn.

        Under load many PDUs are written per turn (a window of submits, the responses to a
        burst of receipts); one write, one system call, carries them all.
        """
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

    # --- timers -------------------------------------------------------------------------------
    # The connection keeps the deadlines and says what to do (RequestTimedOut, SendEnquireLink,
    # LinkDead); this only arms one loop timer at its next deadline and carries out its events.

    def _arm_timer(self) -> None:
        if self.closed:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._conn.next_deadline()
        if deadline is not None:
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
        timed_out = False
        for event in self._conn.handle_timer(now):
            if isinstance(event, RequestTimedOut):
                if not self._timed_out(event.sequence_number):
                    return
                timed_out = True
            elif isinstance(event, SendEnquireLink):
                self._send_enquire_link(now, after_timeout=event.after_timeout)
            else:
                self._link_dead(event)
                return
        if timed_out and self._doubt is None and self._conn.probing:
            self._doubt = self._loop.create_future()
        self._arm_timer()

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
                s.endpoint,
                s.name,
                seq,
                s.response_timeout,
            )
            self._fail(LinkLostError(f"{s.endpoint} read nothing for {s.response_timeout:g} s"))
            return False
        if not future.done():
            future.set_exception(
                ResponseTimeoutError(
                    f"no response from {s.endpoint} in {s.response_timeout:g} s",
                    self._await_late(seq),
                )
            )
            self._observer.submit_unknown(s.server, s.name, "timeout")
        self._wake_waiter()
        return True

    def _take_late(self, pdu: Pdu) -> bool:
        """Hand a response that came after its request's timeout to whoever waits for it."""
        late = self._late.pop(pdu.sequence_number, None)
        if late is None:
            return False
        log.warning(
            "%s: response to sequence %d came after the response timeout",
            self.settings.endpoint,
            pdu.sequence_number,
        )
        if not late.done():
            late.set_result(pdu)
        return True

    def _await_late(self, seq: int) -> asyncio.Future[Pdu]:
        """A future for the response to ``seq`` should it come after its timeout."""
        late: asyncio.Future[Pdu] = self._loop.create_future()
        self._late[seq] = late
        if len(self._late) > MAX_LATE:
            self._late.pop(next(iter(self._late))).cancel()
        return late

    def _end_doubt(self) -> None:
        doubt, self._doubt = self._doubt, None
        if doubt is not None and not doubt.done():
            doubt.set_result(None)

    def _send_enquire_link(self, now: float, *, after_timeout: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        seq = self._conn.send_request(EnquireLink.command_id, now, self.settings.response_timeout)
        self._queue_bytes(encode(EnquireLink(sequence_number=seq)))
        if after_timeout:
            log.info(
                "%s (bind %s): a response timed out; probing the link with enquire_link",
                self.settings.endpoint,
                self.settings.name,
            )

    def _link_dead(self, event: LinkDead) -> None:
        s = self.settings
        if event.frozen:
            log.warning(
                "%s (bind %s): %s in %g s: the SMSC looks frozen (TCP open, nothing answered); "
                "dropping the link",
                s.endpoint,
                s.name,
                event.reason,
                s.response_timeout,
            )
        else:
            log.warning("%s (bind %s): %s; dropping the link", s.endpoint, s.name, event.reason)
        self._fail(LinkLostError(f"{s.endpoint}: {event.reason}"))

    # --- closing ------------------------------------------------------------------------------

    def _written(self) -> int:
        """Octets of our stream handed to the kernel so far.

        Those still in our list for this turn or in the transport's buffer are not; on plain
        TCP the count is exact, over TLS it may count octets still being encrypted as written
        (which only errs towards "the SMSC may have it").
        """
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
        self._observe_window(self.settings.server, self.settings.name, 0)
        endpoint = self.settings.endpoint
        for future, _, end in pending.values():
            if future.done():
                continue
            if end > written:
                future.set_exception(
                    NotSentError(f"link to {endpoint} closed before the request was written")
                )
                continue
            future.set_exception(LinkLostError(f"link to {endpoint} closed before the response"))
            self._observer.submit_unknown(self.settings.server, self.settings.name, "link_lost")
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._closed.set_result(exc)
        self._observer.bind_state(self.settings.server, self.settings.name, "closed")


def _rejection(pdu: Pdu, status: CommandStatus) -> Pdu:
    """The answer to a request we refuse: its own response where it has one, else generic_nack."""
    seq = pdu.sequence_number
    if isinstance(pdu, DeliverSm):
        return DeliverSmResp(sequence_number=seq, command_status=status)
    if isinstance(pdu, DataSm):
        return DataSmResp(sequence_number=seq, command_status=status)
    return GenericNack(sequence_number=seq, command_status=status)
