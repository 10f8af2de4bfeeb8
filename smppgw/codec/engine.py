"""The whole SMPP connection, sans-IO, for either role: bytes in, events out, bytes to send.

:class:`SmppConnection` is what an owner (an asyncio session, a simulator, a test SMSC, a
program of your own) drives. It frames and decodes what :meth:`~SmppConnection.receive_data`
is given and returns typed events; it encodes what :meth:`~SmppConnection.send` is given,
with the sequence number stamped, and returns the octets to write; it answers on its own what
needs no decision of the owner (enquire_link_resp, unbind_resp, generic_nack to a bad frame or
an unknown command, the refusal of a request not allowed in this bind state) and keeps those
octets for :meth:`~SmppConnection.data_to_send`. Time arrives as ``now``: the owner arms one
timer at :meth:`~SmppConnection.next_deadline` and calls
:meth:`~SmppConnection.handle_timer` when it fires, which probes the link with enquire_link
(after ``enquire_link_interval`` of silence from the peer, and at once after a response
timeout) and reports the requests whose response did not come and the link found dead.

The bind state, sequence numbers, window and deadlines are kept by
:class:`~smppgw.codec.connection.Connection` (see it for the worst-case detection times of a
frozen peer); this adds the framing (:class:`~smppgw.codec.framer.Framer`: ``16 <=
command_length <= max_command_length`` before a body is buffered), the codec and the map from
each outstanding sequence number to its request, so that every response, refusal and timeout
comes back *with the request it concerns*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from .connection import (
    Connection,
    LinkDead,
    RejectedRequestError,
    RemoteProtocolError,
    RequestTimedOut,
    Role,
    SendEnquireLink,
    State,
)
from .constants import CommandId, CommandStatus
from .errors import DecodeError, InvalidCommandLengthError
from .framer import Framer
from .pdu import (
    DEFAULT_MAX_COMMAND_LENGTH,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    UnbindResp,
    decode,
    encode,
    pdu_class,
)
from .states import RESPONSE_BIT, Input

__all__ = [
    "BadPdu",
    "EnquireLinkReceived",
    "EnquireLinkSent",
    "Event",
    "LateResponse",
    "LinkDead",
    "PduReceived",
    "RequestRefused",
    "RequestRejected",
    "ResponseReceived",
    "ResponseTimedOut",
    "SmppConnection",
    "UnbindReceived",
]


@dataclass(frozen=True, slots=True)
class PduReceived:
    """A request of the peer for the owner to act on and answer with :meth:`SmppConnection.send`
    (deliver_sm, data_sm, submit_sm, a bind...; alert_notification expects no answer)."""

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The response to a request we sent, whatever its command_status.

    Attributes:
        request: the request as given to :meth:`SmppConnection.send` (its sequence number on
            the wire is ``response.sequence_number``).
        response: its response.
    """

    request: Pdu
    response: Pdu


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """The peer answered a request of ours with generic_nack (SMPP v3.4 section 4.3): it did not
    process it. The link is fine; a rejected bind leaves the connection unbound."""

    request: Pdu
    nack: GenericNack


@dataclass(frozen=True, slots=True)
class ResponseTimedOut:
    """No response to ``request`` (sent with ``sequence_number``) by its deadline: its outcome
    is unknown. A response that still comes is a :class:`LateResponse`."""

    request: Pdu
    sequence_number: int


@dataclass(frozen=True, slots=True)
class LateResponse:
    """A response whose sequence number awaits nothing: typically one that came after its
    request timed out (the peer still decided the request)."""

    response: Pdu


@dataclass(frozen=True, slots=True)
class EnquireLinkSent:
    """The link was due a probe, and an enquire_link is in :meth:`SmppConnection.data_to_send`.

    Attributes:
        after_timeout: True when a response timed out (the peer may be frozen), False after
            ``enquire_link_interval`` of silence from the peer.
    """

    after_timeout: bool


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """A request of the peer not allowed now (section 2.3: a bind state, or a command its role
    does not send); it has been answered with ``status`` (its own response, else
    generic_nack). The connection carries on."""

    pdu: Pdu
    status: CommandStatus


@dataclass(frozen=True, slots=True)
class BadPdu:
    """A frame that does not decode; it has been answered with generic_nack (``error.status``,
    the frame's sequence number when its header was readable). The connection carries on."""

    error: DecodeError


@dataclass(frozen=True, slots=True)
class EnquireLinkReceived:
    """The peer probed the link; its enquire_link_resp is in :meth:`SmppConnection.data_to_send`
    (for the owner's log or counters: there is nothing to do)."""

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class UnbindReceived:
    """The peer unbound; its unbind_resp is in :meth:`SmppConnection.data_to_send`. Write it,
    then close the transport."""

    pdu: Pdu


Event = (
    PduReceived
    | ResponseReceived
    | RequestRejected
    | ResponseTimedOut
    | LateResponse
    | EnquireLinkSent
    | EnquireLinkReceived
    | RequestRefused
    | BadPdu
    | UnbindReceived
    | LinkDead
)
"""Everything :meth:`SmppConnection.receive_data` and :meth:`SmppConnection.handle_timer` report.
:class:`~smppgw.codec.connection.LinkDead` ends the link: write :meth:`SmppConnection.data_to_send`
and close the transport."""

_ENQUIRE_LINK: Final = int(CommandId.ENQUIRE_LINK)
_ALERT_NOTIFICATION: Final = int(CommandId.ALERT_NOTIFICATION)
_ENQUIRE: Final = Input.ENQUIRE_LINK
_UNBIND: Final = Input.UNBIND
_FOREVER: Final = math.inf
_CLOSED: State = State.CLOSED  # not Final: mypy would narrow the state to a literal


class SmppConnection:
    """One end of an SMPP session with its framing, codec, automatic answers and timers.

    Args:
        role: which end this is (:class:`~smppgw.codec.connection.Role`).
        window: operations (submit_sm, deliver_sm...) that may await a response at once; bind,
            enquire_link and unbind are never held back by it.
        response_timeout: seconds a response may take, unless :meth:`send` is given another;
            None: responses are awaited for ever (an SMSC awaiting its deliver_sm_resp).
        enquire_link_interval: seconds of silence from the peer, while bound, before an
            enquire_link (None: never).
        idle_timeout: seconds of silence from the peer after which the link is dead (None:
            never).
        max_command_length: the largest command_length accepted; a larger one (or one under
            16) is answered generic_nack ESME_RINVCMDLEN and ends the link.
        now: when the transport opened, in the owner's clock (silence is counted from it).
    """

    __slots__ = ("_books", "_framer", "_out", "_requests", "response_timeout")

    def __init__(
        self,
        role: Role = Role.ESME,
        *,
        window: int = 10,
        response_timeout: float | None = 30.0,
        enquire_link_interval: float | None = None,
        idle_timeout: float | None = None,
        max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH,
        now: float = 0.0,
    ) -> None:
        self._books = Connection(
            role,
            window=window,
            enquire_link_interval=enquire_link_interval,
            idle_timeout=idle_timeout,
        )
        self._books.heard(now)
        self._framer = Framer(max_command_length)
        self._requests: dict[int, Pdu] = {}  # outstanding sequence number -> its request
        self._out: list[bytes] = []  # automatic answers not yet taken by data_to_send()
        self.response_timeout = response_timeout

    # --- state ------------------------------------------------------------------------------

    @property
    def role(self) -> Role:
        """Which end of the session this is."""
        return self._books.role

    @property
    def state(self) -> State:
        """The bind state (section 2.3)."""
        return self._books.state

    @property
    def bound(self) -> bool:
        """True in BOUND_TX, BOUND_RX and BOUND_TRX."""
        return self._books.bound

    @property
    def window_full(self) -> bool:
        """True when no operation may be sent until a response comes."""
        return self._books.window_full

    @property
    def window_free(self) -> int:
        """How many more operations may be sent now."""
        return self._books.window_free

    @property
    def outstanding(self) -> int:
        """Requests we sent that await a response (our enquire_link included)."""
        return self._books.outstanding

    @property
    def probing(self) -> bool:
        """True while an enquire_link we sent awaits its response."""
        return self._books.probing

    @property
    def last_sequence(self) -> int:
        """The sequence number of the request :meth:`send` sent last."""
        return self._books.last_sequence

    def can_send(self, command_id: int) -> bool:
        """True when our role may send this request in this state (the window aside)."""
        return self._books.can_send(command_id)

    # --- sending ----------------------------------------------------------------------------

    def send(self, pdu: Pdu, now: float, timeout: float | None = None) -> bytes:
        """Encode a PDU of ours and record it.

        A request gets the next sequence number (1..0x7FFFFFFF, then 1 again, skipping any
        still outstanding) stamped into its header, whatever its ``sequence_number`` field
        says; :attr:`last_sequence` tells which. A response keeps its request's.

        Args:
            pdu: a request or a response.
            now: the current time in the owner's clock.
            timeout: seconds its response may take (default ``response_timeout``).

        Returns:
            The octets to write, in order with those of earlier calls.

        Raises:
            EncodeError: a field does not fit; nothing was recorded.
            WindowFullError: an operation with the window full; nothing was recorded.
            LocalProtocolError: our role may not send it, or not in this state; the connection
                is now CLOSED.
        """
        wire = encode(pdu)
        books = self._books
        if pdu.is_response:
            books.send_response(pdu.command_id, pdu.command_status)
            return wire
        if timeout is None:
            timeout = self.response_timeout
        command_id = pdu.command_id
        seq = books.send_request(command_id, now, _FOREVER if timeout is None else timeout)
        if command_id != _ALERT_NOTIFICATION:  # the one request without a response (4.12)
            self._requests[seq] = pdu
        if pdu.sequence_number == seq:
            return wire
        # The header's last four octets are the sequence number (section 3.2).
        return wire[:12] + seq.to_bytes(4, "big") + wire[16:]

    def data_to_send(self) -> bytes:
        """Take the automatic answers and probes queued since the last call (b"" if none)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def _answer(self, pdu: Pdu) -> None:
        self._books.send_response(pdu.command_id, pdu.command_status)
        self._out.append(encode(pdu))

    # --- receiving --------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> list[Event]:
        """Take octets read from the transport.

        Args:
            data: any number of octets: part of a PDU, one, several.
            now: when they were read, in the owner's clock.

        Returns:
            The events of every PDU they complete, in order. After a
            :class:`~smppgw.codec.connection.LinkDead` (a command_length out of bounds, a
            response of the wrong command for its sequence number) nothing more is read:
            write :meth:`data_to_send` and close.
        """
        books = self._books
        books.heard(now)
        events: list[Event] = []
        if books.state is _CLOSED:
            return events
        try:
            frames = self._framer.feed(data)
        except InvalidCommandLengthError as exc:
            # The stream cannot be resynchronised (section 3.2): answer and give up.
            self._out.append(encode(GenericNack(command_status=exc.status)))
            books.connection_lost()
            events.append(LinkDead(f"sent a bad frame: {exc}", frozen=False))
            return events
        requests = self._requests
        for frame in frames:
            try:
                pdu = decode(frame)
            except DecodeError as exc:
                self._out.append(
                    encode(
                        GenericNack(sequence_number=exc.sequence_number, command_status=exc.status)
                    )
                )
                events.append(BadPdu(exc))
                continue
            if not pdu.is_response:
                self._receive_request(pdu, events)
                if books.state is _CLOSED:  # unbound: the rest of the read is moot
                    return events
                continue
            try:
                answered = books.receive(pdu)
            except RemoteProtocolError as exc:
                events.append(LinkDead(f"broke the protocol: {exc}", frozen=False))
                return events
            if answered is None:
                events.append(LateResponse(pdu))
                continue
            request = requests.pop(pdu.sequence_number)
            if isinstance(pdu, GenericNack):
                events.append(RequestRejected(request, pdu))
            else:
                events.append(ResponseReceived(request, pdu))
        return events

    def _receive_request(self, pdu: Pdu, events: list[Event]) -> None:
        try:
            event = self._books.receive(pdu)
        except RejectedRequestError as exc:
            self._answer(_refusal(pdu, exc.status))
            events.append(RequestRefused(pdu, exc.status))
            return
        if event is _ENQUIRE:
            self._answer(EnquireLinkResp(sequence_number=pdu.sequence_number))
            events.append(EnquireLinkReceived(pdu))
        elif event is _UNBIND:
            self._answer(UnbindResp(sequence_number=pdu.sequence_number))
            events.append(UnbindReceived(pdu))
        else:
            events.append(PduReceived(pdu))

    def connection_lost(self) -> list[Pdu]:
        """Record that the transport is gone: CLOSED.

        Returns:
            The requests that awaited a response (our enquire_link aside): their outcome is
            unknown, unless the owner knows they were never written.
        """
        self._books.connection_lost()
        requests, self._requests = self._requests, {}
        return [pdu for pdu in requests.values() if pdu.command_id != _ENQUIRE_LINK]

    # --- timers -----------------------------------------------------------------------------

    def heard(self, now: float) -> None:
        """Count the peer as heard at ``now`` without reading (an owner that holds reading
        back for flow control: the silence is its own)."""
        self._books.heard(now)

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` next has something to do (None: nothing is due ever)."""
        deadline = self._books.next_deadline()
        return None if deadline is None or deadline == _FOREVER else deadline

    def handle_timer(self, now: float) -> list[Event]:
        """Act on every deadline passed by ``now`` (calling it early does nothing).

        Returns:
            A :class:`ResponseTimedOut` per request whose response is overdue (oldest first),
            then either :class:`EnquireLinkSent` (its octets in :meth:`data_to_send`) or
            :class:`~smppgw.codec.connection.LinkDead` (our enquire_link went unanswered, or
            nothing was heard for ``idle_timeout``: close the transport).
        """
        books = self._books
        events: list[Event] = []
        if books.state is State.CLOSED:
            return events
        requests = self._requests
        for event in books.handle_timer(now):
            if isinstance(event, RequestTimedOut):
                seq = event.sequence_number
                events.append(ResponseTimedOut(requests.pop(seq), seq))
            elif isinstance(event, SendEnquireLink):
                self._out.append(self.send(EnquireLink(), now))
                events.append(EnquireLinkSent(after_timeout=event.after_timeout))
            else:
                events.append(event)
        return events


def _refusal(pdu: Pdu, status: CommandStatus) -> Pdu:
    """The answer to a request we refuse: in the wrong bind state, its own response carrying
    ESME_RINVBNDSTS (section 2.3); a deliver_sm or data_sm always gets its own response (it
    keeps the SMSC's books simple); anything else generic_nack (section 4.3)."""
    seq = pdu.sequence_number
    if isinstance(pdu, DeliverSm):
        return DeliverSmResp(sequence_number=seq, command_status=status)
    if isinstance(pdu, DataSm):
        return DataSmResp(sequence_number=seq, command_status=status)
    response = pdu_class(pdu.command_id | RESPONSE_BIT)
    if status == CommandStatus.ESME_RINVBNDSTS and response is not None:
        return response(sequence_number=seq, command_status=status, body_omitted=True)
    return GenericNack(sequence_number=seq, command_status=status)
