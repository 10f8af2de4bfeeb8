"""The bind states of an SMPP session (SMPP v3.4 section 2.3) as a table, for either role.

One :class:`State` enum, one :class:`Input` enum, one dict of legal transitions
(:data:`TRANSITIONS`). Both roles share the table: inputs are events of the *session*, not of
one side, so two peers back to back are in the same state once the wire between them is empty.
Which side may originate which request is a per-role table too (:data:`REQUESTS`). The tables
are data; :class:`~smppgw.codec.connection.Connection` applies them, raising the protocol
errors defined here.
"""

from __future__ import annotations

import enum
from typing import Final

from .constants import CommandId, CommandStatus
from .errors import SmppError

__all__ = [
    "BOUND",
    "CONTROL",
    "LEGAL",
    "REQUESTS",
    "ROLE_SIDE",
    "ROWS",
    "TRANSITIONS",
    "Input",
    "LocalProtocolError",
    "ProtocolError",
    "RejectedRequestError",
    "RemoteProtocolError",
    "Role",
    "State",
    "WindowFullError",
]

RESPONSE_BIT: Final = 0x80000000


class ProtocolError(SmppError):
    """A PDU that the session state does not allow.

    Attributes:
        status: the command_status that describes the fault (for an answer on the wire).
    """

    def __init__(self, message: str, status: CommandStatus = CommandStatus.ESME_RINVBNDSTS) -> None:
        super().__init__(message)
        self.status = status


class LocalProtocolError(ProtocolError):
    """We tried to send something illegal in this state; the connection is now CLOSED."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something illegal in this state; the connection is now CLOSED."""


class RejectedRequestError(RemoteProtocolError):
    """A request the peer may not send now: answer it with ``status``; the state is unchanged."""


class WindowFullError(SmppError):
    """Every slot of the window is taken; nothing was recorded and the state is unchanged."""


class Role(enum.Enum):
    """Which end of the session this connection is (SMPP v3.4 section 2.1)."""

    ESME = "esme"
    SMSC = "smsc"

    __hash__ = object.__hash__  # as State's, below


class State(enum.Enum):
    """Bind states of section 2.3, plus the two halves of a bind and of an unbind."""

    OPEN = "open"  # connected, not bound
    BINDING_TX = "binding_tx"  # bind_transmitter sent, its response not yet
    BINDING_RX = "binding_rx"
    BINDING_TRX = "binding_trx"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"  # unbind sent (by either side), unbind_resp not yet
    CLOSED = "closed"

    # Members are singletons, so hash by identity (in C) rather than by name (Enum.__hash__,
    # in Python): every PDU costs a dict lookup keyed by a state or an input.
    __hash__ = object.__hash__


class Input(enum.Enum):
    """What can happen to a session, whichever side makes it happen."""

    BIND_TX = "bind_transmitter"
    BIND_RX = "bind_receiver"
    BIND_TRX = "bind_transceiver"
    BIND_OK = "bind response ESME_ROK"
    BIND_FAILED = "bind response error or generic_nack"
    SUBMIT = "ESME operation (submit_sm, data_sm, query_sm, ...)"
    DELIVER = "SMSC operation (deliver_sm, data_sm, alert_notification)"
    ENQUIRE_LINK = "enquire_link"
    UNBIND = "unbind"
    UNBIND_RESP = "unbind response"
    RESPONSE = "any other response"
    CONNECTION_LOST = "connection lost"

    __hash__ = object.__hash__  # as State's, below


_BINDING: Final = {
    State.BINDING_TX: State.BOUND_TX,
    State.BINDING_RX: State.BOUND_RX,
    State.BINDING_TRX: State.BOUND_TRX,
}
# Tuples, not sets: identity hashes differ from run to run, and the table's order should not.
BOUND: Final = tuple(_BINDING.values())
_LIVE: Final = tuple(state for state in State if state is not State.CLOSED)

# The legal transitions (section 2.3, table 2-1 of the bind states); anything else is a
# protocol error. enquire_link and responses are legal whenever the link is up (a response
# can answer a request sent in an earlier state, and section 4.11 lets either side probe the
# link at any time). Unbind crossing unbind keeps UNBINDING: the first unbind_resp closes.
TRANSITIONS: Final[dict[tuple[State, Input], State]] = {
    (State.OPEN, Input.BIND_TX): State.BINDING_TX,
    (State.OPEN, Input.BIND_RX): State.BINDING_RX,
    (State.OPEN, Input.BIND_TRX): State.BINDING_TRX,
    **{(binding, Input.BIND_OK): bound for binding, bound in _BINDING.items()},
    **{(binding, Input.BIND_FAILED): State.OPEN for binding in _BINDING},
    (State.BOUND_TX, Input.SUBMIT): State.BOUND_TX,
    (State.BOUND_TRX, Input.SUBMIT): State.BOUND_TRX,
    (State.BOUND_RX, Input.DELIVER): State.BOUND_RX,
    (State.BOUND_TRX, Input.DELIVER): State.BOUND_TRX,
    **{(bound, Input.UNBIND): State.UNBINDING for bound in BOUND},
    (State.UNBINDING, Input.UNBIND): State.UNBINDING,
    (State.UNBINDING, Input.UNBIND_RESP): State.CLOSED,
    **{(state, Input.ENQUIRE_LINK): state for state in _LIVE},
    **{(state, Input.RESPONSE): state for state in _LIVE},
    **{(state, Input.CONNECTION_LOST): State.CLOSED for state in State},
}

# Rows of the table, keyed by state: the current one is kept, so a lookup is one enum hash.
ROWS: Final[dict[State, dict[Input, State]]] = {
    state: {i: new for (s, i), new in TRANSITIONS.items() if s is state} for state in State
}

# Who may originate each request (section 4): the input it is when the ESME sends it and when
# the SMSC sends it; None means that side never sends it. data_sm goes both ways (4.7).
REQUESTS: Final[dict[int, tuple[Input | None, Input | None]]] = {
    CommandId.BIND_TRANSMITTER: (Input.BIND_TX, None),
    CommandId.BIND_RECEIVER: (Input.BIND_RX, None),
    CommandId.BIND_TRANSCEIVER: (Input.BIND_TRX, None),
    CommandId.SUBMIT_SM: (Input.SUBMIT, None),
    CommandId.SUBMIT_MULTI: (Input.SUBMIT, None),
    CommandId.QUERY_SM: (Input.SUBMIT, None),
    CommandId.CANCEL_SM: (Input.SUBMIT, None),
    CommandId.REPLACE_SM: (Input.SUBMIT, None),
    CommandId.DATA_SM: (Input.SUBMIT, Input.DELIVER),
    CommandId.DELIVER_SM: (None, Input.DELIVER),
    CommandId.ALERT_NOTIFICATION: (None, Input.DELIVER),
    CommandId.ENQUIRE_LINK: (Input.ENQUIRE_LINK, Input.ENQUIRE_LINK),
    CommandId.UNBIND: (Input.UNBIND, Input.UNBIND),
}

# The input a response is, by the input of the request it answers (a failed bind aside).
_ANSWERS: Final = {
    Input.BIND_TX: Input.BIND_OK,
    Input.BIND_RX: Input.BIND_OK,
    Input.BIND_TRX: Input.BIND_OK,
    Input.UNBIND: Input.UNBIND_RESP,
}

# Requests with no response (section 4.12.1): nothing to await.
_UNANSWERED: Final = frozenset({CommandId.ALERT_NOTIFICATION})

# Requests that must get through with the window full: binding, keeping the link alive and
# closing it must never wait behind submits.
CONTROL: Final = frozenset(
    {Input.BIND_TX, Input.BIND_RX, Input.BIND_TRX, Input.ENQUIRE_LINK, Input.UNBIND}
)
# What one side may originate in one state: command_id -> (input, new state, input of its
# answer, command_id of its answer or None when it has none). Derived from the tables above,
# so the hot path is one int-keyed lookup.
_Legal = dict[int, tuple[Input, State, Input, int | None]]


def _legal(side: int, state: State) -> _Legal:
    row = ROWS[state]
    legal: _Legal = {}
    for command_id, inputs in REQUESTS.items():
        event = inputs[side]
        if event is not None and event in row:
            response = None if command_id in _UNANSWERED else int(command_id) | RESPONSE_BIT
            legal[command_id] = (event, row[event], _ANSWERS.get(event, Input.RESPONSE), response)
    return legal


ROLE_SIDE: Final = {Role.ESME: 0, Role.SMSC: 1}
LEGAL: Final = {(side, state): _legal(side, state) for side in (0, 1) for state in State}
