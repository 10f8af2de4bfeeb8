"""What the bind manager reports (part results, bind status) and what it needs of a session."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from smppgw.codec.constants import CommandStatus
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
from smppgw.esme.observe import Observer
from smppgw.esme.session import BindType, InboundHandler, SessionSettings

__all__ = [
    "BindState",
    "BindStatus",
    "CircuitState",
    "OnPart",
    "OnSend",
    "PartResult",
    "PartStatus",
    "QueryingSession",
    "RequestingSession",
    "ServerRate",
    "SessionFactory",
    "SessionLike",
]


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


@runtime_checkable
class RequestingSession(Protocol):
    """A session that can send any request (:meth:`smppgw.esme.session.Session.request`)."""

    async def request(self, pdu: Pdu) -> Pdu: ...


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


@dataclass(frozen=True, slots=True)
class ServerRate:
    """A server's rate: as configured, and as sent at now (both msg/s, 0 = unlimited).

    ``current`` is the configured rate, or this process's share of it under a slot source, or
    lower while the server's ESME_RTHROTTLED answers taught the manager less; ``paused`` while
    the manager waits after a throttle; ``slots`` the bind slots held (None: no slot source).
    """

    server: str
    rate: float
    current: float
    paused: bool
    slots: frozenset[int] | None
