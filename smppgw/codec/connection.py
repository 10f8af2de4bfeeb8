"""The books of one SMPP session (SMPP v3.4 section 2.3), for either role.

Sans-IO and clock-free: the owner tells it of every PDU sent or received, with ``now``. It
applies the table of :mod:`smppgw.codec.states` (an input not in it raises
:class:`LocalProtocolError` or :class:`RemoteProtocolError` and moves to CLOSED), allocates
sequence numbers (1..0x7FFFFFFF, then 1 again: section 3.2) and keeps the window of requests
awaiting a response, with their deadlines. :class:`~smppgw.codec.engine.SmppConnection` wraps
it with framing, the codec and the automatic answers: most owners want that one.

* A *request* the peer may not send, or not in this state, is not fatal: :meth:`Connection.
  receive` raises :class:`RejectedRequestError` with the status to answer (ESME_RINVCMDID,
  ESME_RINVBNDSTS), state unchanged (section 2.3: an error answer, not a disconnection).
* A response is matched to its request by sequence number and is the input of that request (a
  generic_nack to a bind is a failed bind); one whose sequence number awaits nothing (late,
  after its deadline) is ignored (None); one of the wrong command is a RemoteProtocolError.

Timers (section 4.11), clock injected: the owner calls :meth:`Connection.heard` when octets
arrive, arms one timer at :meth:`Connection.next_deadline` and acts on what
:meth:`Connection.handle_timer` returns. The link is probed with enquire_link after
``enquire_link_interval`` of *silence from the peer* (what we send does not count: a stream of
submits to a peer that answers nothing cannot postpone the probe), and at once when a response
deadline passes (:class:`RequestTimedOut`); a peer that answers the probe is alive, one that
does not in its own deadline is :class:`LinkDead`, as is nothing heard for ``idle_timeout``.
So a peer that freezes (TCP open, nothing read or answered) is declared dead at most
``min(enquire_link_interval, response_timeout) + response_timeout`` after its last response
when requests are outstanding, and ``enquire_link_interval + response_timeout`` after it last
spoke when none are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .constants import CommandId, CommandStatus
from .pdu import Pdu
from .states import (
    BOUND,
    CONTROL,
    LEGAL,
    REQUESTS,
    ROLE_SIDE,
    ROWS,
    TRANSITIONS,
    Input,
    LocalProtocolError,
    ProtocolError,
    RejectedRequestError,
    RemoteProtocolError,
    Role,
    State,
    WindowFullError,
)

__all__ = [
    "MAX_SEQUENCE",
    "TRANSITIONS",
    "Connection",
    "Input",
    "LinkDead",
    "LocalProtocolError",
    "ProtocolError",
    "RejectedRequestError",
    "RemoteProtocolError",
    "RequestTimedOut",
    "Role",
    "SendEnquireLink",
    "State",
    "TimerEvent",
    "WindowFullError",
]

MAX_SEQUENCE: Final = 0x7FFFFFFF


@dataclass(frozen=True, slots=True)
class RequestTimedOut:
    """The response to ``sequence_number`` did not come by its deadline; it is forgotten (a
    late one is ignored) and the link is being probed."""

    sequence_number: int


@dataclass(frozen=True, slots=True)
class SendEnquireLink:
    """Probe the link now with an enquire_link (:meth:`Connection.send_request` records it):
    ``after_timeout`` when a request timed out (the peer may be frozen), else the peer has been
    quiet for ``enquire_link_interval``."""

    after_timeout: bool


@dataclass(frozen=True, slots=True)
class LinkDead:
    """The peer is gone although the transport may look open: close it.

    Attributes:
        reason: what was seen, in words (for the log and the error).
        frozen: True when requests went unanswered and so did the enquire_link that followed
            (a stopped or wedged SMSC), False for silence or an unanswered routine probe.
    """

    reason: str
    frozen: bool


TimerEvent = RequestTimedOut | SendEnquireLink | LinkDead
"""What :meth:`Connection.handle_timer` asks of the owner."""


_BIND_RESPONSES: Final = frozenset(
    {CommandId.BIND_TRANSMITTER_RESP, CommandId.BIND_RECEIVER_RESP, CommandId.BIND_TRANSCEIVER_RESP}
)
_GENERIC_NACK: Final = int(CommandId.GENERIC_NACK)
_ENQUIRE: Final = Input.ENQUIRE_LINK
_ESME_ROK: Final = int(CommandStatus.ESME_ROK)
# Members the hot paths compare against, bound once: an enum class attribute lookup costs
# more than a module global.
_BIND_OK: Final = Input.BIND_OK
_BIND_FAILED: Final = Input.BIND_FAILED


class Connection:
    """One end of an SMPP session: bind state, sequence numbers, window and deadlines.

    Args:
        role: which end this is.
        window: how many operations (submit_sm, deliver_sm, ...) may await a response at
            once; bind, enquire_link and unbind are not held back by it (but are counted).
        last_sequence: the sequence number used last; the first request gets the next one.
        enquire_link_interval: seconds of silence from the peer, while bound, after which
            :meth:`handle_timer` asks for an enquire_link (None: never).
        idle_timeout: seconds of silence from the peer after which the link is dead (None:
            never).
    """

    __slots__ = (
        "_bound",
        "_heard",
        "_ours",
        "_outstanding",
        "_probe",
        "_probe_after_timeout",
        "_row",
        "_sequence",
        "_side",
        "_state",
        "_theirs",
        "enquire_link_interval",
        "idle_timeout",
        "role",
        "window",
    )

    def __init__(
        self,
        role: Role = Role.ESME,
        *,
        window: int = 10,
        last_sequence: int = 0,
        enquire_link_interval: float | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.role = role
        self.window = window
        self.enquire_link_interval = enquire_link_interval
        self.idle_timeout = idle_timeout
        self._side = ROLE_SIDE[role]
        self._sequence = last_sequence
        # sequence_number -> (input its answer is, expected response command_id, deadline)
        self._outstanding: dict[int, tuple[Input, int, float]] = {}
        self._heard: float | None = None  # when the peer last sent anything (None: not yet)
        self._probe: int | None = None  # sequence_number of our outstanding enquire_link
        self._probe_after_timeout = False  # that enquire_link follows a response timeout
        self.state = State.OPEN

    # --- state ----------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current bind state (settable, for tests that start mid-session)."""
        return self._state

    @state.setter
    def state(self, state: State) -> None:
        self._state = state
        self._bound = state in BOUND
        self._row = ROWS[state]
        self._ours = LEGAL[self._side, state]
        self._theirs = LEGAL[1 - self._side, state]

    @property
    def bound(self) -> bool:
        """True in BOUND_TX, BOUND_RX and BOUND_TRX."""
        return self._bound

    def can_send(self, command_id: int) -> bool:
        """True when our role may send this request now, the window aside (nothing recorded)."""
        return command_id in self._ours

    def handle(self, event: Input, *, local: bool) -> State:
        """Apply one input to the table.

        Args:
            event: what happened.
            local: True when we caused it (sent the PDU), False when the peer did.

        Returns:
            The new state.

        Raises:
            LocalProtocolError: ``local`` and not legal now; the state is CLOSED.
            RemoteProtocolError: not ``local`` and not legal now; the state is CLOSED.
        """
        new = self._row.get(event)
        if new is None:
            old = self._state
            self._close()
            error = LocalProtocolError if local else RemoteProtocolError
            raise error(f"{event.value} is not allowed in state {old.value}")
        if new is not self._state:
            self.state = new
        return new

    def connection_lost(self) -> None:
        """Record that the transport is gone: CLOSED, and nothing is outstanding any more."""
        self._close()

    def _close(self) -> None:
        self.state = State.CLOSED
        self._outstanding.clear()
        self._probe = None

    # --- sequence numbers and the window --------------------------------------------------

    @property
    def last_sequence(self) -> int:
        """The sequence number allocated last (0 before the first)."""
        return self._sequence

    def next_sequence(self) -> int:
        """Allocate a sequence number: 1..0x7FFFFFFF, then 1 again (section 3.2).

        Numbers still awaiting a response are skipped, so a wrap never reuses one.
        """
        seq = self._sequence % MAX_SEQUENCE + 1
        while seq in self._outstanding:
            seq = seq % MAX_SEQUENCE + 1
        self._sequence = seq
        return seq

    @property
    def outstanding(self) -> int:
        """How many requests we sent await a response."""
        return len(self._outstanding)

    @property
    def window_free(self) -> int:
        """How many more operations may be sent before the window is full."""
        return max(0, self.window - len(self._outstanding))

    @property
    def window_full(self) -> bool:
        """True when no more operations may be sent until a response comes."""
        return len(self._outstanding) >= self.window

    def awaiting(self, sequence_number: int) -> int | None:
        """The response command_id that ``sequence_number`` awaits, or None if it awaits none."""
        entry = self._outstanding.get(sequence_number)
        return None if entry is None else entry[1]

    # --- sending --------------------------------------------------------------------------

    def send_request(self, command_id: int, now: float, timeout: float) -> int:
        """Record that we send a request; allocate its sequence number.

        Args:
            command_id: the request's command_id.
            now: the current time, in the owner's clock.
            timeout: seconds the response may take; its deadline is ``now + timeout``.

        Returns:
            The sequence_number to put in the request's header.

        Raises:
            WindowFullError: an operation with the window full (nothing recorded).
            LocalProtocolError: our role may not send it, or not in this state; CLOSED.
        """
        legal = self._ours.get(command_id)
        if legal is None:
            raise self._illegal_send(command_id)
        event, new, answer, response = legal
        outstanding = self._outstanding
        if len(outstanding) >= self.window and event not in CONTROL:
            raise WindowFullError(f"window of {self.window} requests is full")
        if new is not self._state:
            self.state = new
        seq = self._sequence % MAX_SEQUENCE + 1
        if seq in outstanding:  # wrapped onto a request still outstanding: rare
            self._sequence = seq - 1
            seq = self.next_sequence()
        self._sequence = seq
        if response is not None:
            outstanding[seq] = (answer, response, now + timeout)
        if event is _ENQUIRE:
            self._probe = seq
        return seq

    def _illegal_send(self, command_id: int) -> LocalProtocolError:
        event = REQUESTS.get(command_id, (None, None))[self._side]
        if event is None:
            self._close()
            return LocalProtocolError(
                f"an {self.role.name} does not send command 0x{command_id:08x}"
            )
        try:
            self.handle(event, local=True)
        except LocalProtocolError as exc:
            return exc
        raise AssertionError(event)  # pragma: no cover - LEGAL is derived from the table

    def send_response(self, command_id: int, status: int = CommandStatus.ESME_ROK) -> State:
        """Record that we answer a request of the peer.

        Args:
            command_id: the response's command_id (generic_nack included).
            status: its command_status.

        Returns:
            The new state.

        Raises:
            LocalProtocolError: our role may not send it, or not in this state; CLOSED.
        """
        if command_id in _BIND_RESPONSES:
            if self.role is not Role.SMSC:
                self._close()
                raise LocalProtocolError("an ESME does not send bind responses")
            ok = status == CommandStatus.ESME_ROK
            return self.handle(Input.BIND_OK if ok else Input.BIND_FAILED, local=True)
        event = Input.UNBIND_RESP if command_id == CommandId.UNBIND_RESP else Input.RESPONSE
        return self.handle(event, local=True)

    def send(self, pdu: Pdu, now: float = 0.0, timeout: float = 0.0) -> int:
        """Record that we send ``pdu``: :meth:`send_request` or :meth:`send_response`.

        Returns:
            The sequence_number to send it with (a response keeps the request's).
        """
        if pdu.is_response:
            self.send_response(pdu.command_id, pdu.command_status)
            return pdu.sequence_number
        return self.send_request(pdu.command_id, now, timeout)

    # --- receiving ------------------------------------------------------------------------

    def receive(self, pdu: Pdu) -> Input | None:
        """Record that we received ``pdu``.

        Returns:
            The input it was, or None for a response whose sequence number awaits nothing
            (a late answer to a request that timed out): it is ignored, state unchanged.

        Raises:
            RejectedRequestError: a request the peer may not send, or not now; answer it
                with the error's status. The state is unchanged.
            RemoteProtocolError: a response of the wrong command for its sequence number;
                the state is CLOSED.
        """
        if pdu.is_response:
            entry = self._outstanding.pop(pdu.sequence_number, None)
            if entry is None:
                return None
            if pdu.sequence_number == self._probe:
                self._probe = None
            answered, expected, _ = entry
            command_id = pdu.command_id
            if command_id != expected and command_id != _GENERIC_NACK:  # noqa: PLR1714 - no tuple per response
                self._close()
                raise RemoteProtocolError(
                    f"{type(pdu).__name__} answers sequence {pdu.sequence_number}, "
                    f"which awaits command 0x{expected:08x}",
                    CommandStatus.ESME_RINVCMDID,
                )
            if answered is _BIND_OK and (
                command_id == _GENERIC_NACK or pdu.command_status != _ESME_ROK
            ):
                answered = _BIND_FAILED
            if self._row.get(answered) is not self._state:
                self.handle(answered, local=False)
            return answered
        legal = self._theirs.get(pdu.command_id)
        if legal is None:
            raise self._rejection(pdu)
        event, new, _, _ = legal
        if new is not self._state:
            self.state = new
        return event

    def _rejection(self, pdu: Pdu) -> RejectedRequestError:
        if REQUESTS.get(pdu.command_id, (None, None))[1 - self._side] is None:
            peer = Role.SMSC if self.role is Role.ESME else Role.ESME
            return RejectedRequestError(
                f"an {peer.name} does not send {type(pdu).__name__}", CommandStatus.ESME_RINVCMDID
            )
        return RejectedRequestError(
            f"{type(pdu).__name__} is not allowed in state {self._state.value}"
        )

    # --- timers -----------------------------------------------------------------------------

    def heard(self, now: float) -> None:
        """Record that octets arrived from the peer at ``now`` (once per read is enough)."""
        self._heard = now

    @property
    def probing(self) -> bool:
        """True while an enquire_link we sent awaits its response."""
        return self._probe is not None

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` next has something to do, or None for never.

        The earliest of: a response deadline, the end of ``idle_timeout`` and, while bound
        and not already probing, the end of ``enquire_link_interval`` (both counted from
        :meth:`heard`).
        """
        deadline = None
        if self._outstanding:
            deadline = min(due for _, _, due in self._outstanding.values())
        heard = self._heard
        if heard is None:
            return deadline
        if self.idle_timeout is not None:
            idle = heard + self.idle_timeout
            deadline = idle if deadline is None else min(deadline, idle)
        if self.enquire_link_interval is not None and self._bound and self._probe is None:
            quiet = heard + self.enquire_link_interval
            deadline = quiet if deadline is None else min(deadline, quiet)
        return deadline

    def handle_timer(self, now: float) -> list[TimerEvent]:
        """Act on the deadlines that passed by ``now``.

        Returns:
            In order: a :class:`RequestTimedOut` per request whose deadline passed (oldest
            first); then either :class:`LinkDead` (our enquire_link went unanswered, or the
            peer was silent for ``idle_timeout``), or :class:`SendEnquireLink` when a request
            timed out or the peer has been quiet for ``enquire_link_interval`` (while bound
            and not already probing). The state is unchanged: closing is the owner's act.
        """
        events: list[TimerEvent] = []
        probe = self._probe
        after_timeout = self._probe_after_timeout
        dead: LinkDead | None = None
        for seq in self.expired(now):
            if seq == probe:
                self._probe = None
                dead = LinkDead(
                    "enquire_link sent after a response timeout got no response either"
                    if after_timeout
                    else "enquire_link got no response",
                    frozen=after_timeout,
                )
            else:
                events.append(RequestTimedOut(seq))
        heard = self._heard
        idle = self.idle_timeout
        # Deadlines compare as next_deadline() computes them (heard + interval <= now), so a
        # timer armed at one always finds it due, whatever the float rounding.
        if dead is None and heard is not None and idle is not None and heard + idle <= now:
            dead = LinkDead(f"nothing heard for {now - heard:.1f} s", frozen=False)
        if dead is not None:
            events.append(dead)
            return events
        if events and self._probe is not None:
            self._probe_after_timeout = True  # requests time out behind a routine probe
        if self._bound and self._probe is None:
            interval = self.enquire_link_interval
            if events:
                self._probe_after_timeout = True
                events.append(SendEnquireLink(after_timeout=True))
            elif interval is not None and heard is not None and heard + interval <= now:
                self._probe_after_timeout = False
                events.append(SendEnquireLink(after_timeout=False))
        return events

    def expired(self, now: float) -> list[int]:
        """Forget the requests whose deadline is ``now`` or earlier (a late response is then
        ignored by :meth:`receive`); the state is unchanged: what a timeout means is the
        owner's call (:meth:`handle_timer` is the usual one).

        Returns:
            Their sequence numbers, oldest first.
        """
        late = [seq for seq, (_, _, deadline) in self._outstanding.items() if deadline <= now]
        for seq in late:
            del self._outstanding[seq]
        return late
