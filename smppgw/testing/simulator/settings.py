"""The simulator's settings (servers, accounts, faults, MO generation), its counters, and the
record of an MO message."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from smppgw.codec import DeliverSm
from smppgw.codec.errors import SmppError
from smppgw.codec.split import SplitMethod

__all__ = [
    "Account",
    "FaultSettings",
    "MoRecord",
    "MoSettings",
    "ServerInfo",
    "SimulatorSettings",
    "SimulatorStats",
    "UnknownAccountError",
]


@dataclass(frozen=True, slots=True)
class Account:
    """An SMPP account: its binds and throughput are limited per server, as the provider does."""

    system_id: str
    password: str = field(repr=False)
    max_binds_per_server: int = 3
    rate_per_server: float = 50.0  # submits per 1-second window per server; 0 = unlimited


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """Faults to inject; each is off by default. Ratios are probabilities per PDU."""

    dlr_before_resp: float = 0.0  # send the receipt before the submit_sm_resp
    drop_every: int = 0  # close the connection after every N-th received PDU
    stall_ratio: float = 0.0  # never answer this share of submits
    queue_full_ratio: float = 0.0  # answer this share of submits with ESME_RMSSQFUL
    refuse_binds: bool = False  # answer every bind with ESME_RBINDFAIL
    malformed_ratio: float = 0.0  # send a malformed PDU before this share of responses
    unbind_after_bind: bool = False  # accept each bind, then unbind it at once
    drop_receipts: float = 0.0  # never send this share of receipts (query_sm still knows them)


@dataclass(frozen=True, slots=True)
class MoSettings:
    """Mobile-originated messages generated on their own (off by default).

    Each generated MO goes to one account as deliver_sm(s), under the same delivery rules as
    receipts: held until a receiver binds, resent until answered with ESME_ROK.
    """

    rate: float = 0.0  # MO messages per second over the whole simulator; 0 = none generated
    long_share: float = 0.0  # share of messages long enough to need 2 to 4 parts
    ucs2_share: float = 0.0  # share of messages written outside GSM 03.38 (sent as UCS-2)
    source: str | None = None  # a fixed sender, or None for a random mobile number each time
    destination: str = "12345"  # the short code or number the mobiles write to
    system_id: str | None = None  # the account receiving them, or None for a random account
    method: SplitMethod = SplitMethod.UDH  # how long messages travel: UDH, SAR or PAYLOAD
    udh_ref_bits: Literal[8, 16] = 8  # size of the concatenation reference in the UDH
    max_pending: int = 10_000  # generation pauses while this many parts await a receiver


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    """The simulated SMSC. Ports of 0 (the default) are chosen by the system."""

    host: str = "127.0.0.1"
    servers: int = 2
    names: tuple[str, ...] = ()
    plain_ports: tuple[int, ...] = ()
    tls: bool = True
    tls_ports: tuple[int, ...] = ()
    cert_file: str | None = None
    key_file: str | None = None
    accounts: tuple[Account, ...] = (Account("smppgw", "secret"),)
    message_id_format: Literal["decimal", "hex", "uuid"] = "hex"
    receipt_id_format: Literal["same", "decimal"] = "same"  # "decimal": hex ids in decimal
    dlr_delay: tuple[float, float] = (0.05, 0.5)
    dlr_outcomes: tuple[tuple[str, int, float], ...] = (
        ("DELIVRD", 0, 0.90),
        ("UNDELIV", 34, 0.05),
        ("EXPIRED", 21, 0.03),
        ("REJECTD", 453, 0.02),
    )
    dlr_retry: float = 1.0  # seconds before a receipt or MO not answered ESME_ROK is resent
    idle_timeout: float = 300.0  # links silent this long are cut, as the provider does
    faults: FaultSettings = field(default_factory=FaultSettings)
    mo: MoSettings = field(default_factory=MoSettings)
    record_destinations: bool = False  # count accepted submits per destination (see stats)
    rate_window: Literal["fixed", "sliding"] = "fixed"  # see Simulator.take_token
    seed: int | None = None

    def server_names(self) -> tuple[str, ...]:
        return self.names or tuple(f"smpp{i + 1}" for i in range(self.servers))


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Where one simulated server listens."""

    name: str
    host: str
    plain_port: int
    tls_port: int | None


@dataclass(slots=True)
class SimulatorStats:
    """Counters that let a test prove nothing was lost."""

    received_submits: int = 0
    accepted: int = 0
    throttled: int = 0
    queue_full: int = 0
    stalled: int = 0
    dlrs_sent: int = 0
    dlrs_acked: int = 0
    dlrs_nacked: int = 0
    dlrs_dropped: int = 0  # receipts never sent (FaultSettings.drop_receipts)
    queries: int = 0  # query_sm received
    cancelled: int = 0  # messages withdrawn by cancel_sm before their scheduled delivery
    binds_refused: int = 0
    binds_accepted: int = 0
    unbinds_after_bind: int = 0  # binds unbound at once by FaultSettings.unbind_after_bind
    mo_messages: int = 0  # MO messages injected or generated
    mo_parts: int = 0  # their deliver_sm parts
    mo_sent: int = 0  # MO deliver_sm sent, resends included
    mo_acknowledged: int = 0  # MO parts answered with ESME_ROK (each counted once)
    mo_nacked: int = 0  # MO deliver_sm answered with another status (then resent)
    mo_skipped: int = 0  # generated MO not made because max_pending parts were waiting
    accepted_by_server: Counter[str] = field(default_factory=Counter)
    # submits accepted per destination_addr, when SimulatorSettings.record_destinations is on
    # (tests count duplicates with it)
    accepted_by_destination: Counter[str] = field(default_factory=Counter)
    per_second: dict[str, Counter[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MoRecord:
    """An MO message handed to the simulator, as it is delivered.

    Attributes:
        number: its rank among the MO messages of this simulator (from 1).
        system_id: the account it is delivered to.
        source_addr: the mobile that sent it.
        destination_addr: the number or short code it was sent to.
        data_coding: the data_coding of every part.
        reference: the concatenation reference (UDH or sar_msg_ref_num), None for one plain part.
        pdus: the deliver_sm of each part in order (sequence_number is set when sent).
    """

    number: int
    system_id: str
    source_addr: str
    destination_addr: str
    data_coding: int
    reference: int | None
    pdus: tuple[DeliverSm, ...]

    @property
    def parts(self) -> int:
        """The number of deliver_sm this message takes."""
        return len(self.pdus)


class UnknownAccountError(SmppError, ValueError):
    """An MO addressed to a system_id the simulator has no account for."""

    def __init__(self, system_id: str) -> None:
        super().__init__(f"MO for system_id {system_id!r}: the simulator has no such account")
        self.system_id = system_id
