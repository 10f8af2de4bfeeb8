"""A small scriptable SMSC for tests: in-process, on 127.0.0.1, port 0.

:class:`TestSmsc` speaks the SMSC role of :class:`~smppgw.codec.SmppConnection` (so framing,
sequence numbers, enquire_link_resp, unbind_resp, generic_nack to bad frames and refusals of
requests not allowed in the bind state are the engine's, as for any peer) and hands every
request an ESME sends to a *handler* the test writes. The handler returns what to do with it:

* ``None``: the default: a bind is accepted (refused ESME_RINVPASWD when ``password`` is set
  and differs), a submit_sm / data_sm gets ESME_ROK and the id ``id<sequence_number>``, a
  query_sm ESME_RINVMSGID, anything else generic_nack ESME_RINVCMDID;
* :class:`Answer` (a status, a message id, a delay), :class:`Reply` (this exact PDU),
  :class:`Nack` (generic_nack), :class:`Hold` (no answer now: it waits in
  :attr:`TestSmsc.held` for :meth:`TestSmsc.release`), :class:`Close` (drop the link).

``async with TestSmsc(handler) as smsc:`` returns once it accepts connections; every PDU
received, responses included, is in :attr:`TestSmsc.received` in arrival order, and
:meth:`TestSmsc.wait_for` awaits one of a type without polling.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self, TypeVar, cast

from smppgw.codec import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CommandStatus,
    DataSm,
    DataSmResp,
    EnquireLinkReceived,
    GenericNack,
    LateResponse,
    Pdu,
    PduReceived,
    QuerySm,
    QuerySmResp,
    RequestRefused,
    RequestRejected,
    ResponseReceived,
    Role,
    SmppConnection,
    State,
    SubmitSm,
    SubmitSmResp,
    UnbindReceived,
)

__all__ = ["Answer", "Close", "Handler", "Hold", "Nack", "Reply", "SmscLink", "TestSmsc"]

P = TypeVar("P", bound=Pdu)
_OK = CommandStatus.ESME_ROK


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer with the request's own response: ``status``, ``message_id`` (default
    ``id<sequence_number>`` when ESME_ROK), after ``delay`` seconds."""

    status: CommandStatus = CommandStatus.ESME_ROK
    message_id: str | None = None
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer with this PDU (its sequence number becomes the request's), after ``delay``."""

    pdu: Pdu
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Nack:
    """Answer generic_nack with ``status``, after ``delay`` seconds."""

    status: CommandStatus = CommandStatus.ESME_RSYSERR
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Hold:
    """Answer nothing now: the request waits in :attr:`TestSmsc.held`."""


@dataclass(frozen=True, slots=True)
class Close:
    """Drop the link at once, answering nothing (TCP reset, as a crashed SMSC)."""


Action = Answer | Reply | Nack | Hold | Close
# The requests Answer knows the response of (anything else is answered generic_nack).
_ANSWERED = (BindTransmitter, BindReceiver, BindTransceiver, SubmitSm, DataSm, QuerySm)
Handler = Callable[[Pdu], Action | None]
"""Called with each request an ESME sends (not enquire_link or unbind: those the engine
answers); returns what to do with it, None for the default."""

_REQUEST_EVENTS = (PduReceived, RequestRefused, UnbindReceived, EnquireLinkReceived)
_BindResp = BindTransmitterResp | BindReceiverResp | BindTransceiverResp
_BIND_RESPONSES: dict[type[Pdu], type[_BindResp]] = {
    BindTransmitter: BindTransmitterResp,
    BindReceiver: BindReceiverResp,
    BindTransceiver: BindTransceiverResp,
}


class SmscLink(asyncio.Protocol):
    """One ESME's connection to the :class:`TestSmsc`."""

    def __init__(self, smsc: TestSmsc) -> None:
        self.smsc = smsc
        self.conn = SmppConnection(Role.SMSC, window=1 << 30, response_timeout=None)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)
        self.smsc.links.append(self)
        if self.smsc.frozen:
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.smsc.links:
            self.smsc.links.remove(self)

    def data_received(self, data: bytes) -> None:
        smsc = self.smsc
        loop = asyncio.get_running_loop()
        for event in self.conn.receive_data(data, loop.time()):
            if isinstance(
                event, PduReceived | RequestRefused | UnbindReceived | EnquireLinkReceived
            ):
                smsc.record(event.pdu)
                if isinstance(event, PduReceived):
                    self.act(event.pdu, smsc.handler(event.pdu))
            elif isinstance(event, ResponseReceived):
                smsc.record(event.response)
            elif isinstance(event, RequestRejected):
                smsc.record(event.nack)
            elif isinstance(event, LateResponse):
                smsc.record(event.response)
            # BadPdu and LinkDead: the engine answered; a dead link is closed below.
        self.write(self.conn.data_to_send())
        if self.conn.state is State.CLOSED and self.transport is not None:
            self.transport.close()  # after what was written: an unbind_resp, a generic_nack

    def act(self, pdu: Pdu, action: Action | None) -> None:
        """Carry out ``action`` for the request ``pdu``."""
        if isinstance(action, Close):
            self.close()
            return
        if isinstance(action, Hold):
            self.smsc.held.append((self, pdu))
            return
        delay = 0.0 if action is None else action.delay
        answer = self.smsc.default(pdu) if action is None else _response(pdu, action)
        if delay:
            asyncio.get_running_loop().call_later(delay, self.answer, answer)
        else:
            self.answer(answer)

    def answer(self, response: Pdu) -> None:
        """Send a response (nothing if the link is closed)."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.conn.state is State.CLOSED:
            return
        self.write(self.conn.send(response, asyncio.get_running_loop().time()))

    def send(self, pdu: Pdu) -> int:
        """Send a request through the engine (its sequence number stamped); return that."""
        self.write(self.conn.send(pdu, asyncio.get_running_loop().time()))
        return self.conn.last_sequence

    def write(self, data: bytes) -> None:
        """Write octets as they are (a test may send anything, malformed included)."""
        transport = self.transport
        if data and transport is not None and not transport.is_closing() and not self.smsc.silent:
            transport.write(data)

    def close(self) -> None:
        """Drop the link at once."""
        if self.transport is not None:
            self.transport.abort()


class TestSmsc:
    """A scriptable in-process SMSC (see the module docstring).

    Args:
        handler: what to do with each request (None: the defaults).
        password: when set, binds with another password are refused ESME_RINVPASWD.
        close_on_unbind: drop the link on an unbind without answering it (as some SMSCs do).
        tls: a server-side context for TLS.
        host: where to listen (loopback by default).
    """

    __test__ = False  # not a test class, whatever its name

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        password: str | None = None,
        close_on_unbind: bool = False,
        tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self._handler = handler
        self.password = password
        self.close_on_unbind = close_on_unbind
        self._tls = tls
        self._host = host
        self.port = 0
        self.received: list[Pdu] = []
        self.held: list[tuple[SmscLink, Pdu]] = []
        self.links: list[SmscLink] = []
        self.silent = False  # write nothing at all (answers and automatic ones alike)
        self.frozen = False  # read nothing on new links (see freeze() for the live ones)
        self._server: asyncio.Server | None = None
        self._changed: asyncio.Event | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen; returns once connections are accepted (:attr:`port` is then set). Once
        started, starting again (``async with`` a started SMSC) does nothing."""
        if self._server is not None:
            return
        self._changed = asyncio.Event()
        self._server = await asyncio.get_running_loop().create_server(
            lambda: SmscLink(self), self._host, 0, ssl=self._tls
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Drop every link and stop listening."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for link in list(self.links):
            link.close()
        await server.wait_closed()

    def handler(self, pdu: Pdu) -> Action | None:
        """The test's handler (or the default) for ``pdu``."""
        return None if self._handler is None else self._handler(pdu)

    def default(self, pdu: Pdu) -> Pdu:
        """The default answer to ``pdu``."""
        if isinstance(pdu, BindTransmitter | BindReceiver | BindTransceiver):
            wrong = self.password is not None and pdu.password != self.password
            return _response(pdu, Answer(CommandStatus.ESME_RINVPASWD if wrong else _OK))
        if isinstance(pdu, SubmitSm | DataSm):
            return _response(pdu, Answer())
        if isinstance(pdu, QuerySm):
            return _response(pdu, Answer(CommandStatus.ESME_RINVMSGID))
        return _response(pdu, Nack(CommandStatus.ESME_RINVCMDID))

    def record(self, pdu: Pdu) -> None:
        self.received.append(pdu)
        if self._changed is not None:
            self._changed.set()

    async def wait_for(self, kind: type[P], count: int = 1, timeout: float = 5.0) -> P:  # noqa: ASYNC109
        """The ``count``-th PDU of type ``kind`` received, once it is.

        Raises:
            TimeoutError: not received in ``timeout`` seconds.
        """
        assert self._changed is not None, "start() first"
        async with asyncio.timeout(timeout):
            while True:
                found = [pdu for pdu in self.received if isinstance(pdu, kind)]
                if len(found) >= count:
                    return found[count - 1]
                self._changed.clear()
                await self._changed.wait()

    def of_type(self, kind: type[P]) -> list[P]:
        """Every PDU of type ``kind`` received, in order."""
        return [pdu for pdu in self.received if isinstance(pdu, kind)]

    def release(self, action: Action | None = None) -> None:
        """Answer every held request (with ``action``, or its default)."""
        held, self.held = self.held, []
        for link, pdu in held:
            link.act(pdu, action)

    def push(self, pdu: Pdu) -> None:
        """Send a request to every link, through the engine (sequence number stamped)."""
        for link in self.links:
            link.send(pdu)

    def push_raw(self, data: bytes) -> None:
        """Write octets to every link as they are (a PDU the bind state forbids, garbage...)."""
        for link in self.links:
            link.write(data)

    def freeze(self, *, frozen: bool = True) -> None:
        """Stop reading on every link (the ESME's writes fill the TCP buffers), or read again."""
        self.frozen = frozen
        for link in self.links:
            if link.transport is not None and not link.transport.is_closing():
                if frozen:
                    link.transport.pause_reading()
                else:
                    link.transport.resume_reading()

    def drop_links(self) -> None:
        """Reset every link."""
        for link in list(self.links):
            link.close()


def _response(pdu: Pdu, action: Answer | Reply | Nack) -> Pdu:
    seq = pdu.sequence_number
    if isinstance(action, Reply):
        return dataclasses.replace(action.pdu, sequence_number=seq)
    status = action.status
    if isinstance(action, Nack) or not isinstance(pdu, _ANSWERED):
        return GenericNack(sequence_number=seq, command_status=status)
    ok = status == _OK
    if isinstance(pdu, SubmitSm | DataSm) and (ok or action.message_id is not None):
        cls = SubmitSmResp if isinstance(pdu, SubmitSm) else DataSmResp
        message_id = f"id{seq}" if action.message_id is None else action.message_id
        return cls(sequence_number=seq, command_status=status, message_id=message_id)
    resp = _BIND_RESPONSES.get(type(pdu))
    if resp is not None and ok:
        return resp(sequence_number=seq, system_id="TESTSMSC")
    response = resp or {SubmitSm: SubmitSmResp, DataSm: DataSmResp}.get(type(pdu), QuerySmResp)
    return response(sequence_number=seq, command_status=status, body_omitted=True)
