"""The values of the session layer: bind modes, settings and errors (see
:mod:`smppgw.esme.session`, which exports them all)."""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass, field

from smppgw.codec import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    DataSm,
    DataSmResp,
    Pdu,
    Role,
    SmppConnection,
    SmppError,
    SubmitSm,
    SubmitSmResp,
)
from smppgw.codec.constants import Npi, Ton
from smppgw.esme.tls import TlsSettings

__all__ = [
    "MAX_LATE",
    "BindError",
    "BindType",
    "ConnectError",
    "LinkLostError",
    "NotSentError",
    "ResponseTimeoutError",
    "SessionClosedError",
    "SessionError",
    "SessionSettings",
    "refusal",
]

log = logging.getLogger("smppgw.esme.session")

MAX_LATE = 1024
"""Timed-out requests whose late response a session still takes, per session (the oldest
beyond it stop waiting). Sequence numbers are not reused before they wrap (2**31), so a
late response is never mistaken for another request's."""


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

    def bind_pdu(self) -> BindTransmitter | BindReceiver | BindTransceiver:
        """The bind request these settings make (its sequence number is the connection's)."""
        return _BIND_PDUS[self.bind_type](
            system_id=self.system_id,
            password=self.password,
            system_type=self.system_type,
            interface_version=self.interface_version,
            addr_ton=Ton(self.addr_ton),
            addr_npi=Npi(self.addr_npi),
            address_range=self.address_range,
        )

    def connection(self, now: float) -> SmppConnection:
        """The sans-IO connection of a session with these settings, opened at ``now``."""
        return SmppConnection(
            Role.ESME,
            window=self.window,
            response_timeout=self.response_timeout,
            enquire_link_interval=self.enquire_link_interval,
            idle_timeout=self.idle_timeout,
            max_command_length=self.max_command_length,
            now=now,
        )

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}{' (TLS)' if self.tls else ''}"


def refusal(pdu: SubmitSm | DataSm, nack: Pdu, endpoint: str) -> SubmitSmResp | DataSmResp:
    """A generic_nack to a submit, as the submit's response: a refusal (section 4.3: the SMSC
    did not process it), its status for the retry policy like any negative response. A
    generic_nack saying ESME_ROK contradicts itself: it is ESME_RUNKNOWNERR (a bounded retry)."""
    status = nack.command_status
    log.warning(
        "%s answered %s (sequence %d) with generic_nack %s (%s)",
        *(endpoint, type(pdu).__name__, nack.sequence_number, status.name, status.description),
    )
    if status == CommandStatus.ESME_ROK:
        status = CommandStatus.ESME_RUNKNOWNERR
    cls = DataSmResp if isinstance(pdu, DataSm) else SubmitSmResp
    return cls(sequence_number=nack.sequence_number, command_status=status, body_omitted=True)
