"""The simulator's servers, accounts, rate limits, receipts and faults."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import random
import ssl
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Self, cast

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
    DecodeError,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    EsmClass,
    Framer,
    GenericNack,
    InvalidCommandLengthError,
    MessageState,
    Pdu,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Tlv,
    Unbind,
    UnbindResp,
    c_string_tlv,
    decode,
    encode,
)
from smppgw.codec.errors import SmppError
from smppgw.codec.receipt import format_receipt, stat_to_message_state
from smppgw.codec.smpp_time import SmppTimeError, format_absolute, parse_smpp_time
from smppgw.codec.text import (
    Part,
    SplitMethod,
    choose_coding,
    encode_text,
    split_message,
    split_octets,
)
from smppgw.provider import is_rejection

__all__ = [
    "Account",
    "FaultSettings",
    "MoRecord",
    "MoSettings",
    "ServerInfo",
    "Simulator",
    "SimulatorSettings",
    "SimulatorStats",
    "TimeFieldError",
    "UnknownAccountError",
    "build_mo_parts",
    "receipt_timing",
]

log = logging.getLogger(__name__)

_BIND_RESPONSES: dict[
    type[Pdu], type[BindTransmitterResp | BindReceiverResp | BindTransceiverResp]
] = {
    BindTransmitter: BindTransmitterResp,
    BindReceiver: BindReceiverResp,
    BindTransceiver: BindTransceiverResp,
}


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


@dataclass(slots=True)
class _MoPart:
    record: MoRecord
    pdu: DeliverSm
    attempts: int = 0


# Octets of user data: (one plain message, a part after an 8-bit ref UDH, after a 16-bit one).
# GSM 03.38 is counted in unpacked septets: 160 alone, 153 / 152 after a 6 / 7-octet UDH.
def build_mo_parts(
    text: str | bytes,
    data_coding: int,
    *,
    reference: int = 0,
    concatenated: bool | None = None,
    udh16: bool = False,
    method: SplitMethod = SplitMethod.UDH,
) -> tuple[Part, ...]:
    """The short_message, TLVs and esm_class bits of each deliver_sm of an MO message.

    A text is encoded and split by :func:`smppgw.codec.text.split_message`; octets given as
    ``bytes`` are taken as already encoded in ``data_coding`` and cut at the same sizes.

    Args:
        text: the message, as text or as encoded user data.
        data_coding: the data_coding of the parts.
        reference: the concatenation reference (8 bits, or 16 with udh16 or SAR).
        concatenated: None: concatenate only when one message is too short; True: always mark
            the parts as concatenated (a short text becomes part 1 of 1); False: refuse a text
            needing more than one message.
        udh16: use the 16-bit reference UDH ``06 08 04 refhi reflo total seq``.
        method: UDH (esm_class UDHI), SAR TLVs, or the whole text in message_payload.

    Returns:
        One :class:`~smppgw.codec.text.Part` per deliver_sm.

    Raises:
        TextEncodeError, UnsupportedCodingError: text the data_coding cannot carry.
        MessageTooLongError: more than one part with concatenated=False, or over 255 parts.
        EncodeError: a reference out of range.
    """
    if isinstance(text, str) and not concatenated:
        return split_message(
            text,
            data_coding,
            method=method,
            reference=reference,
            udh16=udh16,
            max_parts=1 if concatenated is False else None,
        )
    data = encode_text(text, data_coding) if isinstance(text, str) else text
    return split_octets(
        data,
        data_coding,
        method=method,
        reference=reference,
        udh16=udh16,
        max_parts=1 if concatenated is False else None,
        always_concatenate=bool(concatenated) and method is not SplitMethod.PAYLOAD,
    )


@dataclass(slots=True)
class _Message:
    """What the SMSC knows of a message it accepted, for query_sm (SMPP v3.4 section 4.8)."""

    source_ton: int
    source_npi: int
    source: str
    state: MessageState = MessageState.ENROUTE
    final_date: str = ""
    error_code: int = 0


_MAX_MESSAGES = 1_000_000  # the oldest are forgotten beyond this (query_sm: ESME_RINVMSGID)


@dataclass(slots=True)
class _Receipt:
    system_id: str
    message_id: str
    source: str
    destination: str
    stat: str
    err: int
    submitted: datetime
    text: str
    attempts: int = 0


class TimeFieldError(SmppError, ValueError):
    """A submit_sm's schedule_delivery_time or validity_period that is no SMPP time."""

    def __init__(self, status: CommandStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _time_field(value: str, now: datetime, status: CommandStatus) -> datetime | None:
    try:
        parsed = parse_smpp_time(value)
    except SmppTimeError as exc:
        raise TimeFieldError(status, str(exc)) from exc
    return now + parsed if isinstance(parsed, timedelta) else parsed


def receipt_timing(
    schedule_delivery_time: str, validity_period: str, now: datetime, delay: float
) -> tuple[float, bool]:
    """When the receipt of a message submitted at ``now`` is due, and whether it is EXPIRED.

    The message is delivered ``delay`` seconds after its schedule_delivery_time (or after
    ``now`` when it has none or it has passed); when its validity_period ends before that, it
    expires at that moment instead and the receipt says EXPIRED (SMPP v3.4 sections 5.2.15,
    5.2.16). Relative times count from ``now``.

    Returns:
        (seconds from ``now`` until the receipt, True when the message expires undelivered).

    Raises:
        TimeFieldError: ESME_RINVSCHED for a malformed schedule_delivery_time,
            ESME_RINVEXPIRY for a malformed validity_period.
    """
    scheduled = _time_field(schedule_delivery_time, now, CommandStatus.ESME_RINVSCHED)
    expires = _time_field(validity_period, now, CommandStatus.ESME_RINVEXPIRY)
    delivered = max(now, scheduled or now) + timedelta(seconds=delay)
    if expires is not None and expires < delivered:
        return max((expires - now).total_seconds(), 0.0), True
    return (delivered - now).total_seconds(), False


class _Server:
    def __init__(self, sim: Simulator, name: str) -> None:
        self.sim = sim
        self.name = name
        self.down = False
        self.frozen = False  # reads nothing and answers nothing; TCP stays open
        self.listeners: list[asyncio.Server] = []
        self.connections: set[_Connection] = set()
        self.windows: dict[str, tuple[int, int]] = {}  # system_id -> (second, count)
        self.recent: dict[str, deque[float]] = {}  # system_id -> accepted times, last second


class _Connection(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.sim = server.sim
        self.transport: asyncio.Transport | None = None
        self.framer = Framer()
        self.account: Account | None = None
        self.receiver = False
        self.transmitter = False
        self.received = 0
        self.last_received = time.monotonic()
        self.sequence = itertools.count(1)
        self.awaiting: dict[int, _Receipt | _MoPart] = {}
        self.out: list[bytes] = []  # written at the end of this turn of the event loop
        self.in_turn = False
        self.held: list[bytes] = []  # written while the server was frozen: sent on thaw
        self.unbinding = False  # we sent an unbind: close on its response

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast("asyncio.Transport", transport)
        if self.server.down:
            self.transport.abort()
            return
        self.server.connections.add(self)
        if self.server.frozen:
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        # Receipts and MO parts sent on this link but not acknowledged go back to the queue.
        for item in self.awaiting.values():
            self.sim.requeue(item)
        self.awaiting.clear()

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        try:
            frames = self.framer.feed(data)
        except InvalidCommandLengthError as exc:
            self.write(GenericNack(command_status=exc.status))
            self.close()
            return
        for frame in frames:
            try:
                pdu = decode(frame)
            except DecodeError as exc:
                self.write(
                    GenericNack(sequence_number=exc.sequence_number, command_status=exc.status)
                )
                continue
            self.received += 1
            self.handle(pdu)
            drop = self.sim.settings.faults.drop_every
            if drop and self.received % drop == 0:
                self.close()
                return

    def write(self, pdu: Pdu) -> None:
        self.write_bytes(encode(pdu))

    def write_bytes(self, data: bytes) -> None:
        """The first write of a loop turn goes at once, the rest together at its end."""
        if self.server.frozen:
            self.held.append(data)
            return
        if self.in_turn:
            self.out.append(data)
            return
        self.in_turn = True
        asyncio.get_running_loop().call_soon(self.flush)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def flush(self) -> None:
        self.in_turn = False
        if not self.out:
            return
        data = b"".join(self.out)
        self.out.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.flush()
            self.transport.abort()

    def freeze(self, *, frozen: bool) -> None:
        """Stop reading (the peer's writes fill the TCP buffers), or carry on where it stopped."""
        if self.transport is None or self.transport.is_closing():
            return
        if frozen:
            self.transport.pause_reading()
            return
        self.last_received = time.monotonic()  # a stopped process does not see time pass
        held, self.held = self.held, []
        for data in held:
            self.write_bytes(data)
        self.transport.resume_reading()

    # PDUs
    def handle(self, pdu: Pdu) -> None:  # noqa: C901, PLR0911 - one branch per PDU type
        seq = pdu.sequence_number
        if isinstance(pdu, BindTransmitter | BindReceiver | BindTransceiver):
            self.bind(pdu)
            return
        if isinstance(pdu, EnquireLink):
            self.write(EnquireLinkResp(sequence_number=seq))
            return
        if isinstance(pdu, Unbind):
            self.write(UnbindResp(sequence_number=seq))
            self.close()
            return
        if isinstance(pdu, DeliverSmResp):
            self.answered(pdu)
            return
        if isinstance(pdu, UnbindResp) and self.unbinding:
            self.close()
            return
        if isinstance(pdu, EnquireLinkResp | UnbindResp | GenericNack):
            return
        if self.account is None:
            self.write(
                GenericNack(sequence_number=seq, command_status=CommandStatus.ESME_RINVBNDSTS)
            )
            return
        if isinstance(pdu, SubmitSm | DataSm):
            if not self.transmitter:
                self.respond(pdu, CommandStatus.ESME_RINVBNDSTS, None)
                return
            self.submit(pdu)
            return
        if isinstance(pdu, QuerySm):
            self.query(pdu)
            return
        # Neither submit_multi nor the other ancillary operations are simulated.
        self.write(GenericNack(sequence_number=seq, command_status=CommandStatus.ESME_RINVCMDID))

    def answered(self, resp: DeliverSmResp) -> None:
        item = self.awaiting.pop(resp.sequence_number, None)
        if isinstance(item, _Receipt):
            self.sim.receipt_answered(item, resp.command_status)
        elif item is not None:
            self.sim.mo_answered(item, resp.command_status)

    def bind(self, pdu: BindTransmitter | BindReceiver | BindTransceiver) -> None:
        resp_cls = _BIND_RESPONSES[type(pdu)]
        status = self.sim.check_bind(self.server, pdu, self)
        if status != CommandStatus.ESME_ROK:
            self.sim.stats.binds_refused += 1
            self.write(
                resp_cls(
                    sequence_number=pdu.sequence_number, command_status=status, body_omitted=True
                )
            )
            return
        self.account = self.sim.accounts[pdu.system_id]
        self.sim.stats.binds_accepted += 1
        self.transmitter = not isinstance(pdu, BindReceiver)
        self.receiver = not isinstance(pdu, BindTransmitter)
        self.write(resp_cls(sequence_number=pdu.sequence_number, system_id="SMPPGW-SIM"))
        if self.sim.settings.faults.unbind_after_bind:
            # As some SMSCs do with an account they do not know: bind, then unbind at once.
            self.sim.stats.unbinds_after_bind += 1
            self.unbinding = True
            self.write(Unbind(sequence_number=next(self.sequence) % 0x7FFFFFFF + 1))
            return
        if self.receiver:
            self.sim.flush_receipts(self.account.system_id)
            self.sim.flush_mo(self.account.system_id)

    def submit(self, pdu: SubmitSm | DataSm) -> None:
        sim, account = self.sim, self.account
        assert account is not None
        sim.stats.received_submits += 1
        faults = sim.settings.faults
        if not sim.take_token(self.server, account):
            sim.stats.throttled += 1
            self.respond(pdu, CommandStatus.ESME_RTHROTTLED, None)
            return
        if faults.stall_ratio and sim.rng.random() < faults.stall_ratio:
            sim.stats.stalled += 1
            return
        if faults.queue_full_ratio and sim.rng.random() < faults.queue_full_ratio:
            sim.stats.queue_full += 1
            self.respond(pdu, CommandStatus.ESME_RMSSQFUL, None)
            return
        try:
            delay, expired = sim.receipt_timing(pdu)
        except TimeFieldError as exc:
            self.respond(pdu, exc.status, None)
            return
        message_id = sim.new_message_id()
        sim.remember(message_id, pdu)
        sim.stats.accepted += 1
        sim.stats.accepted_by_server[self.server.name] += 1
        if sim.settings.record_destinations:
            sim.stats.accepted_by_destination[pdu.destination_addr] += 1
        registered = pdu.registered_delivery & 0x03
        early = faults.dlr_before_resp and sim.rng.random() < faults.dlr_before_resp
        if registered:
            receipt = sim.make_receipt(account.system_id, message_id, pdu, expired=expired)
            if registered == 1 or receipt.stat != "DELIVRD":
                sim.schedule_receipt(receipt, 0.0 if early else delay)
        if early:
            # Let the receipt go out first, as some SMSCs do.
            asyncio.get_running_loop().call_later(
                0.05, self.respond, pdu, CommandStatus.ESME_ROK, message_id
            )
            return
        if faults.malformed_ratio and sim.rng.random() < faults.malformed_ratio:
            self.write_bytes(b"\x00\x00\x00\x10\x00\x00\x00\x99\x00\x00\x00\x00\x00\x00\x00\x00")
        self.respond(pdu, CommandStatus.ESME_ROK, message_id)

    def query(self, pdu: QuerySm) -> None:
        """Answer a query_sm from the message table (SMPP v3.4 section 4.8): an id it never
        issued (or has forgotten) is ESME_RINVMSGID, a source address other than the one the
        message was submitted with is ESME_RQUERYFAIL."""
        self.sim.stats.queries += 1
        seq = pdu.sequence_number
        status = CommandStatus.ESME_ROK
        message = self.sim.messages.get(pdu.message_id)
        if not self.transmitter:
            status = CommandStatus.ESME_RINVBNDSTS
        elif message is None:
            status = CommandStatus.ESME_RINVMSGID
        elif (pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr) != (
            message.source_ton,
            message.source_npi,
            message.source,
        ):
            status = CommandStatus.ESME_RQUERYFAIL
        if status != CommandStatus.ESME_ROK or message is None:
            self.write(QuerySmResp(sequence_number=seq, command_status=status, body_omitted=True))
            return
        self.write(
            QuerySmResp(
                sequence_number=seq,
                message_id=pdu.message_id,
                final_date=message.final_date,
                message_state=message.state,
                error_code=message.error_code,
            )
        )

    def respond(
        self, pdu: SubmitSm | DataSm, status: CommandStatus, message_id: str | None
    ) -> None:
        seq = pdu.sequence_number
        if isinstance(pdu, SubmitSm):
            resp: Pdu = (
                SubmitSmResp(sequence_number=seq, message_id=message_id)
                if message_id is not None
                else SubmitSmResp(sequence_number=seq, command_status=status, body_omitted=True)
            )
        else:
            resp = (
                DataSmResp(sequence_number=seq, message_id=message_id)
                if message_id is not None
                else DataSmResp(sequence_number=seq, command_status=status, body_omitted=True)
            )
        self.write(resp)

    def send_mo_part(self, part: _MoPart) -> None:
        seq = next(self.sequence) % 0x7FFFFFFF + 1
        self.awaiting[seq] = part
        part.attempts += 1
        self.sim.stats.mo_sent += 1
        self.write(dataclasses.replace(part.pdu, sequence_number=seq))

    def send_receipt(self, receipt: _Receipt) -> None:
        seq = next(self.sequence) % 0x7FFFFFFF + 1
        self.awaiting[seq] = receipt
        receipt.attempts += 1
        self.sim.stats.dlrs_sent += 1
        shown_id = receipt.message_id
        if (
            self.sim.settings.receipt_id_format == "decimal"
            and self.sim.settings.message_id_format == "hex"
        ):
            shown_id = str(int(receipt.message_id, 16))
        now = datetime.now(UTC)
        text = format_receipt(
            shown_id,
            stat=receipt.stat,
            err=receipt.err,
            submit_date=receipt.submitted,
            done_date=now,
            text=receipt.text,
        )
        state = stat_to_message_state(receipt.stat, rejection=is_rejection) or MessageState.UNKNOWN
        tlvs: tuple[Tlv, ...] = (
            c_string_tlv(Tag.RECEIPTED_MESSAGE_ID, receipt.message_id),
            Tlv(Tag.MESSAGE_STATE, bytes((state,))),
        )
        if receipt.err:
            tlvs += (Tlv(Tag.NETWORK_ERROR_CODE, b"\x01" + receipt.err.to_bytes(2, "big")),)
        self.write(
            DeliverSm(
                sequence_number=seq,
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=receipt.destination,
                dest_addr_ton=5,
                destination_addr=receipt.source,
                esm_class=0x04,
                short_message=text,
                tlvs=tlvs,
            )
        )


class Simulator:
    """A set of simulated SMSC servers sharing accounts and receipts.

    Use ``async with Simulator(settings) as sim:``; :attr:`servers` tells where they listen.
    """

    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a simulator (nothing listens before :meth:`start`).

        Args:
            settings: servers, accounts, receipts and faults.
            clock: the monotonic clock the rate windows count by; a test that drives the
                client's token bucket with a fake clock passes the same one, so that both sides
                see one time and the rate check is exact.
        """
        self.settings = settings or SimulatorSettings()
        self.clock = clock
        # message_id -> what query_sm answers, oldest first (bounded by _MAX_MESSAGES)
        self.messages: dict[str, _Message] = {}
        self.accounts = {a.system_id: a for a in self.settings.accounts}
        self.rng = random.Random(self.settings.seed)  # noqa: S311 - simulation, not security
        self.stats = SimulatorStats()
        self.servers: tuple[ServerInfo, ...] = ()
        self.ca_pem: bytes | None = None
        self.ca_file: str | None = None
        self._servers = [_Server(self, name) for name in self.settings.server_names()]
        self._pending: dict[str, deque[_Receipt]] = {}
        self._scheduled = 0
        self._mo_pending: dict[str, deque[_MoPart]] = {}
        self._mo_scheduled = 0
        self._mo_numbers = itertools.count(1)
        self._mo_reference = self.rng.randrange(0x10000)
        self._mo_task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._idle_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on every server's ports; returns once they accept connections."""
        loop = asyncio.get_running_loop()
        s = self.settings
        context = self._tls_context() if s.tls else None
        infos = []
        for index, server in enumerate(self._servers):
            plain_port = s.plain_ports[index] if index < len(s.plain_ports) else 0
            plain = await loop.create_server(
                functools.partial(_Connection, server), s.host, plain_port
            )
            server.listeners.append(plain)
            tls_port = None
            if context is not None:
                port = s.tls_ports[index] if index < len(s.tls_ports) else 0
                secure = await loop.create_server(
                    functools.partial(_Connection, server), s.host, port, ssl=context
                )
                server.listeners.append(secure)
                tls_port = secure.sockets[0].getsockname()[1]
            infos.append(
                ServerInfo(server.name, s.host, plain.sockets[0].getsockname()[1], tls_port)
            )
        self.servers = tuple(infos)
        for info in infos:
            tls = f", TLS port {info.tls_port}" if info.tls_port is not None else ""
            log.info(
                "simulator %s listening on %s: plain port %d%s",
                info.name,
                info.host,
                info.plain_port,
                tls,
            )
        for account in s.accounts:  # never the password
            rate = f"{account.rate_per_server:g}/s" if account.rate_per_server else "unlimited"
            log.info(
                "simulator account %s: %d binds and %s submits per server",
                account.system_id,
                account.max_binds_per_server,
                rate,
            )
        self._idle_task = loop.create_task(self._cut_idle_links())
        mo = self.settings.mo
        if mo.rate > 0:
            if mo.system_id is not None and mo.system_id not in self.accounts:
                await self.stop()
                raise UnknownAccountError(mo.system_id)
            self._mo_task = loop.create_task(self._generate_mo())

    async def stop(self) -> None:
        """Close every listener and connection."""
        for task in (self._idle_task, self._mo_task):
            if task is not None:
                task.cancel()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            for listener in server.listeners:
                listener.close()
            for conn in list(server.connections):
                conn.close()
        for server in self._servers:
            for listener in server.listeners:
                await listener.wait_closed()
        if self._tmp is not None:
            self._tmp.cleanup()

    # --- faults and observation -------------------------------------------------------------

    def set_server_down(self, index: int, *, down: bool) -> None:
        """Take a server down (its binds are cut and new connections refused) or back up."""
        server = self._servers[index]
        server.down = down
        if down:
            for conn in list(server.connections):
                conn.close()

    async def server_down_for(self, index: int, seconds: float) -> None:
        self.set_server_down(index, down=True)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.set_server_down(index, down=False)

    def set_server_frozen(self, index: int, *, frozen: bool) -> None:
        """Freeze a server as a stopped process is frozen, or thaw it.

        Frozen, it reads nothing and answers nothing (binds, submits, enquire_link), sends no
        receipt and cuts no idle link, while every TCP connection stays open and new ones are
        accepted; what the clients sent waits in the TCP buffers. Thawed, it reads on.
        """
        server = self._servers[index]
        server.frozen = frozen
        for conn in list(server.connections):
            conn.freeze(frozen=frozen)

    async def server_frozen_for(self, index: int, seconds: float) -> None:
        self.set_server_frozen(index, frozen=True)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.set_server_frozen(index, frozen=False)

    @property
    def dlrs_pending(self) -> int:
        """Receipts scheduled, queued for a receiver, or sent and not yet acknowledged."""
        queued = sum(len(q) for q in self._pending.values())
        return self._scheduled + queued + self._awaiting(_Receipt)

    async def wait_dlrs_settled(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until every receipt was sent and acknowledged.

        Raises:
            TimeoutError: receipts are still pending after ``timeout`` seconds.
        """
        await self._settled(lambda: self.dlrs_pending, timeout)

    @property
    def mo_pending(self) -> int:
        """MO parts waiting to be resent, queued for a receiver, or sent and not yet answered."""
        queued = sum(len(q) for q in self._mo_pending.values())
        return self._mo_scheduled + queued + self._awaiting(_MoPart)

    async def wait_mo_settled(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until every MO part was sent and acknowledged with ESME_ROK.

        Raises:
            TimeoutError: parts are still pending after ``timeout`` seconds.
        """
        await self._settled(lambda: self.mo_pending, timeout)

    def _awaiting(self, kind: type[_Receipt | _MoPart]) -> int:
        """Items of ``kind`` sent on a link and not yet answered."""
        return sum(
            1
            for s in self._servers
            for c in s.connections
            for item in c.awaiting.values()
            if isinstance(item, kind)
        )

    @staticmethod
    async def _settled(pending: Callable[[], int], timeout: float) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while pending():  # noqa: ASYNC110 - counters, not events
                await asyncio.sleep(0.01)

    def send_mo(
        self,
        system_id: str,
        source_addr: str,
        destination_addr: str,
        text: str | bytes,
        *,
        data_coding: int | None = None,
        concatenated: bool | None = None,
        udh_ref_bits: Literal[8, 16] = 8,
        method: SplitMethod = SplitMethod.UDH,
        source_addr_ton: int = 1,
        source_addr_npi: int = 1,
        dest_addr_ton: int = 0,
        dest_addr_npi: int = 1,
    ) -> MoRecord:
        """Deliver a mobile-originated message to an account, as deliver_sm (SMPP v3.4 4.6.1).

        Each part goes to a random receiver-capable bind of ``system_id`` on any server that is
        up; parts are held until such a bind exists and resent ``dlr_retry`` seconds after any
        answer other than ESME_ROK or a link lost before the answer. The esm_class type bits are
        0 (a short message, not a receipt); UDHI (0x40) is set on UDH parts.

        Args:
            system_id: the account to deliver to.
            source_addr: the sending mobile's number.
            destination_addr: the number or short code it wrote to.
            text: the message, as text or as octets already encoded in ``data_coding``.
            data_coding: the data_coding; default GSM 03.38 when the text fits it, else UCS-2
                (8-bit data, 0x04, for octets).
            concatenated: None to concatenate only when needed, True to always, False to refuse
                a text needing more than one message (see :func:`build_mo_parts`).
            udh_ref_bits: 8 for the UDH ``05 00 03 ref total seq``, 16 for ``06 08 04 ...``.
            method: UDH, SAR (sar_* TLVs) or PAYLOAD (message_payload) for long messages.
            source_addr_ton: TON of source_addr (1, international, by default).
            source_addr_npi: NPI of source_addr (1, E.164, by default).
            dest_addr_ton: TON of destination_addr (0, unknown, by default).
            dest_addr_npi: NPI of destination_addr (1, E.164, by default).

        Returns:
            The message and its deliver_sm parts.

        Raises:
            UnknownAccountError: no account has this system_id.
            TextEncodeError, UnsupportedCodingError: text the data_coding cannot carry.
            MessageTooLongError: too long for the ``concatenated`` choice or over 255 parts.
            EncodeError: an address or field that does not fit its deliver_sm field.
        """
        if system_id not in self.accounts:
            raise UnknownAccountError(system_id)
        if data_coding is None:
            data_coding = choose_coding(text) if isinstance(text, str) else 0x04
        wide = udh_ref_bits == 16 or method is SplitMethod.SAR
        reference = self._mo_reference % (0x10000 if wide else 0x100)
        parts = build_mo_parts(
            text,
            data_coding,
            reference=reference,
            concatenated=concatenated,
            udh16=udh_ref_bits == 16,
            method=method,
        )
        pdus = tuple(
            DeliverSm(
                source_addr_ton=source_addr_ton,
                source_addr_npi=source_addr_npi,
                source_addr=source_addr,
                dest_addr_ton=dest_addr_ton,
                dest_addr_npi=dest_addr_npi,
                destination_addr=destination_addr,
                esm_class=int(part.esm_class),
                data_coding=data_coding,
                short_message=part.short_message,
                tlvs=part.tlvs,
            )
            for part in parts
        )
        for pdu in pdus:
            encode(pdu)  # refuse now what could not go on the wire later
        marked = len(pdus) > 1 or bool(pdus[0].esm_class & EsmClass.UDHI) or bool(pdus[0].tlvs)
        if marked and method is not SplitMethod.PAYLOAD:
            self._mo_reference += 1
        record = MoRecord(
            number=next(self._mo_numbers),
            system_id=system_id,
            source_addr=source_addr,
            destination_addr=destination_addr,
            data_coding=data_coding,
            reference=reference if marked and method is not SplitMethod.PAYLOAD else None,
            pdus=pdus,
        )
        self.stats.mo_messages += 1
        self.stats.mo_parts += len(pdus)
        queue = self._mo_pending.setdefault(system_id, deque())
        queue.extend(_MoPart(record, pdu) for pdu in pdus)
        self.flush_mo(system_id)
        return record

    def submits_per_second(self, server: str) -> list[int]:
        """Accepted-or-throttled submit counts per 1-second window of the monotonic clock."""
        counts = self.stats.per_second.get(server, Counter())
        return [counts[k] for k in sorted(counts)]

    def bound(self, server_index: int | None = None) -> int:
        """How many connections are bound (on one server, or on all)."""
        servers = self._servers if server_index is None else [self._servers[server_index]]
        return sum(1 for s in servers for c in s.connections if c.account is not None)

    # --- internals used by connections ------------------------------------------------------

    def check_bind(
        self,
        server: _Server,
        pdu: BindTransmitter | BindReceiver | BindTransceiver,
        conn: _Connection,
    ) -> CommandStatus:
        if self.settings.faults.refuse_binds:
            return CommandStatus.ESME_RBINDFAIL
        if conn.account is not None:
            return CommandStatus.ESME_RALYBND
        account = self.accounts.get(pdu.system_id)
        if account is None:
            return CommandStatus.ESME_RINVSYSID
        if pdu.password != account.password:
            return CommandStatus.ESME_RINVPASWD
        bound = sum(
            1
            for c in server.connections
            if c.account is not None and c.account.system_id == account.system_id
        )
        if bound >= account.max_binds_per_server:
            # The provider allows N binds per server; one more is refused as a failed bind.
            return CommandStatus.ESME_RBINDFAIL
        return CommandStatus.ESME_ROK

    def take_token(self, server: _Server, account: Account) -> bool:
        """Count a submit against the account's rate on this server; False when over it.

        ``rate_window = "fixed"`` counts per clock second; ``"sliding"`` refuses a submit when
        ``rate`` were accepted in the second before it, which is the strictest reading of
        "N messages per second". Both count by :attr:`clock`.
        """
        now = self.clock()
        second = int(now)
        per_second = self.stats.per_second.setdefault(server.name, Counter())
        rate = account.rate_per_server
        if rate <= 0:
            per_second[second] += 1
            return True
        if self.settings.rate_window == "sliding":
            recent = server.recent.setdefault(account.system_id, deque())
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= rate:
                return False
            recent.append(now)
        else:
            window_second, count = server.windows.get(account.system_id, (second, 0))
            if window_second != second:
                count = 0
            if count >= rate:
                return False
            server.windows[account.system_id] = (second, count + 1)
        per_second[second] += 1
        return True

    def new_message_id(self) -> str:
        n = next(self._ids)
        fmt = self.settings.message_id_format
        if fmt == "decimal":
            return str(1_000_000_000 + n)
        if fmt == "uuid":
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return f"{0x10000000 + n:x}"

    def remember(self, message_id: str, pdu: SubmitSm | DataSm) -> None:
        """Keep an accepted message for query_sm: en route until its outcome is known."""
        messages = self.messages
        if len(messages) >= _MAX_MESSAGES:
            del messages[next(iter(messages))]
        messages[message_id] = _Message(pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr)

    def receipt_timing(self, pdu: SubmitSm | DataSm) -> tuple[float, bool]:
        """Seconds until the receipt of an accepted submit, and whether it reports EXPIRED.

        Raises:
            TimeFieldError: schedule_delivery_time or validity_period is malformed.
        """
        delay = self.rng.uniform(*self.settings.dlr_delay)
        if not isinstance(pdu, SubmitSm):  # data_sm has neither field
            return delay, False
        return receipt_timing(
            pdu.schedule_delivery_time, pdu.validity_period, datetime.now(UTC), delay
        )

    def make_receipt(
        self, system_id: str, message_id: str, pdu: SubmitSm | DataSm, *, expired: bool = False
    ) -> _Receipt:
        outcomes = self.settings.dlr_outcomes
        stat, err, _ = self.rng.choices(outcomes, weights=[w for _, _, w in outcomes])[0]
        if expired:
            stat, err = "EXPIRED", next((e for st, e, _ in outcomes if st == "EXPIRED"), 0)
        text = pdu.short_message[:20].decode("latin-1") if isinstance(pdu, SubmitSm) else ""
        return _Receipt(
            system_id,
            message_id,
            pdu.source_addr,
            pdu.destination_addr,
            stat,
            err,
            datetime.now(UTC),
            "".join(c if c.isprintable() else "." for c in text),
        )

    def schedule_receipt(self, receipt: _Receipt, delay: float | None) -> None:
        if delay is None:
            delay = self.rng.uniform(*self.settings.dlr_delay)
        self._scheduled += 1
        asyncio.get_running_loop().call_later(delay, self._due, receipt)

    def _due(self, receipt: _Receipt) -> None:
        self._scheduled -= 1
        if not receipt.attempts:
            # The message's outcome is decided now, whether or not its receipt ever goes out.
            message = self.messages.get(receipt.message_id)
            if message is not None:
                message.state = (
                    stat_to_message_state(receipt.stat, rejection=is_rejection)
                    or MessageState.UNKNOWN
                )
                message.final_date = format_absolute(datetime.now(UTC))
                message.error_code = min(receipt.err, 0xFF)  # one octet (section 5.2.29)
            drop = self.settings.faults.drop_receipts
            if drop and self.rng.random() < drop:
                self.stats.dlrs_dropped += 1
                return
        self._pending.setdefault(receipt.system_id, deque()).append(receipt)
        self.flush_receipts(receipt.system_id)

    def _receivers(self, system_id: str) -> list[_Connection]:
        return [
            c
            for s in self._servers
            if not s.down
            for c in s.connections
            if c.receiver and c.account is not None and c.account.system_id == system_id
        ]

    def flush_receipts(self, system_id: str) -> None:
        """Send queued receipts on random receiver binds of the account, on any server."""
        queue = self._pending.get(system_id)
        if not queue:
            return
        receivers = self._receivers(system_id)
        if not receivers:
            return  # kept until a receiver binds
        while queue:
            self.rng.choice(receivers).send_receipt(queue.popleft())

    def flush_mo(self, system_id: str) -> None:
        """Send queued MO parts on random receiver binds of the account, on any server."""
        queue = self._mo_pending.get(system_id)
        if not queue:
            return
        receivers = self._receivers(system_id)
        if not receivers:
            return  # kept until a receiver binds
        while queue:
            self.rng.choice(receivers).send_mo_part(queue.popleft())

    def mo_answered(self, part: _MoPart, status: CommandStatus) -> None:
        if status == CommandStatus.ESME_ROK:
            self.stats.mo_acknowledged += 1
            return
        self.stats.mo_nacked += 1
        self._schedule_mo(part)

    def _schedule_mo(self, part: _MoPart) -> None:
        self._mo_scheduled += 1
        asyncio.get_running_loop().call_later(self.settings.dlr_retry, self._mo_due, part)

    def _mo_due(self, part: _MoPart) -> None:
        self._mo_scheduled -= 1
        self._mo_pending.setdefault(part.record.system_id, deque()).append(part)
        self.flush_mo(part.record.system_id)

    def receipt_answered(self, receipt: _Receipt, status: CommandStatus) -> None:
        if status == CommandStatus.ESME_ROK:
            self.stats.dlrs_acked += 1
            return
        self.stats.dlrs_nacked += 1
        self.schedule_receipt(receipt, self.settings.dlr_retry)

    def requeue(self, item: _Receipt | _MoPart) -> None:
        if isinstance(item, _Receipt):
            self.schedule_receipt(item, self.settings.dlr_retry)
        else:
            self._schedule_mo(item)

    async def _generate_mo(self) -> None:
        mo = self.settings.mo
        while True:
            await asyncio.sleep(self.rng.expovariate(mo.rate))
            if self.mo_pending >= mo.max_pending:
                self.stats.mo_skipped += 1
                continue
            system_id = mo.system_id or self.rng.choice(list(self.accounts))
            source = mo.source or f"1415555{self.rng.randrange(10_000):04d}"
            text = _random_text(
                self.rng,
                long=self.rng.random() < mo.long_share,
                ucs2=self.rng.random() < mo.ucs2_share,
            )
            try:
                self.send_mo(
                    system_id,
                    source,
                    mo.destination,
                    text,
                    udh_ref_bits=mo.udh_ref_bits,
                    method=mo.method,
                )
            except SmppError:
                # A sender or destination that cannot go in a deliver_sm: every MO would fail.
                log.exception("MO generation stopped")
                return

    async def _cut_idle_links(self) -> None:
        limit = self.settings.idle_timeout
        while True:
            await asyncio.sleep(min(limit, 30.0) / 2)
            now = time.monotonic()
            for server in self._servers:
                if server.frozen:
                    continue
                for conn in list(server.connections):
                    if now - conn.last_received > limit:
                        conn.close()

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        s = self.settings
        if s.cert_file is not None:
            context.load_cert_chain(s.cert_file, s.key_file)
            return context
        import trustme  # noqa: PLC0415 - only when a certificate must be generated

        ca = trustme.CA()
        names = {s.host, "localhost", "127.0.0.1"}
        ca.issue_cert(*sorted(names)).configure_cert(context)
        self.ca_pem = ca.cert_pem.bytes()
        self._tmp = tempfile.TemporaryDirectory(prefix="smppgw-sim-")
        path = Path(self._tmp.name) / "ca.pem"
        path.write_bytes(self.ca_pem)
        self.ca_file = str(path)
        return context


_GSM_WORDS = ("hello", "STOP", "yes", "no", "balance?", "info", "thanks", "order 42", "help")
_UCS2_WORDS = ("привет", "नमस्ते", "你好", "ありがとう", "مرحبا", "😀", "€5 ok")


def _random_text(rng: random.Random, *, long: bool, ucs2: bool) -> str:
    """A plausible MO text: one message, or 2 to 4 parts when ``long``."""
    words = _GSM_WORDS + _UCS2_WORDS if ucs2 else _GSM_WORDS
    single, part = (70, 67) if ucs2 else (160, 153)
    size = rng.randint(single + 1, 4 * part - 4) if long else rng.randint(2, single // 2)
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(words)
        out.append(word)
        length += len(word) + 1
    text = " ".join(out)
    if ucs2 and text.isascii():
        text = "привет " + text
    return text[:size] if not ucs2 else text[: size - 2]
