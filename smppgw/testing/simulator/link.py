"""One ESME's link to a simulated server: the SMSC role of the sans-IO connection, and what
the simulator does with each PDU (binds, submits, query_sm, receipts and MO going out)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

from smppgw.codec import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    CancelSmResp,
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    Event,
    GenericNack,
    MessageState,
    Pdu,
    PduReceived,
    QuerySm,
    QuerySmResp,
    ResponseReceived,
    Role,
    SmppConnection,
    State,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Tlv,
    Unbind,
    c_string_tlv,
)
from smppgw.codec.constants import EsmClass, Npi, Ton
from smppgw.codec.errors import SmppError
from smppgw.codec.receipt import format_receipt, stat_to_message_state
from smppgw.codec.smpp_time import SmppTimeError, format_absolute, parse_smpp_time
from smppgw.provider import is_rejection

if TYPE_CHECKING:
    from .mo import MoPart
    from .server import Simulator
    from .settings import Account

__all__ = ["Link", "Receipt", "Server", "TimeFieldError", "receipt_timing"]

_BIND_RESPONSES: dict[
    type[Pdu], type[BindTransmitterResp | BindReceiverResp | BindTransceiverResp]
] = {
    BindTransmitter: BindTransmitterResp,
    BindReceiver: BindReceiverResp,
    BindTransceiver: BindTransceiverResp,
}
# A PDU with an unknown command_id: what FaultSettings.malformed_ratio sends.
_MALFORMED = b"\x00\x00\x00\x10\x00\x00\x00\x99\x00\x00\x00\x00\x00\x00\x00\x00"


@dataclass(slots=True)
class Receipt:
    """A delivery receipt on its way to a receiver of the account."""

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


class Server:
    """One simulated server: its listeners, links and per-account rate windows."""

    def __init__(self, sim: Simulator, name: str) -> None:
        self.sim = sim
        self.name = name
        self.down = False
        self.frozen = False  # reads nothing and answers nothing; TCP stays open
        self.listeners: list[asyncio.Server] = []
        self.connections: set[Link] = set()
        self.windows: dict[str, tuple[int, int]] = {}  # system_id -> (second, count)
        self.recent: dict[str, deque[float]] = {}  # system_id -> accepted times, last second


class Link(asyncio.Protocol):
    """One ESME's connection: the engine frames, answers enquire_link and unbind and refuses
    what the bind state forbids; this answers binds, submits and query_sm as the provider."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.sim = server.sim
        self.transport: asyncio.Transport | None = None
        # No window and no response deadline: receipts wait for their answer until the link
        # goes (then they are sent again elsewhere).
        self.conn = SmppConnection(Role.SMSC, window=1 << 30, response_timeout=None)
        self.account: Account | None = None
        self.receiver = False
        self.transmitter = False
        self.received = 0
        self.last_received = time.monotonic()
        self.awaiting: dict[int, Receipt | MoPart] = {}
        self.out: list[bytes] = []  # written at the end of this turn of the event loop
        self.in_turn = False
        self.held: list[bytes] = []  # written while the server was frozen: sent on thaw

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
        self.conn.connection_lost()
        # Receipts and MO parts sent on this link but not acknowledged go back to the queue.
        for item in self.awaiting.values():
            self.sim.outbox.requeue(item)
        self.awaiting.clear()

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        conn = self.conn
        drop = self.sim.settings.faults.drop_every
        for event in conn.receive_data(data, self.last_received):
            self.write_bytes(conn.data_to_send())  # the engine's answers, in order
            self.handle(event)
            self.received += 1
            if drop and self.received % drop == 0:
                self.close()
                return
        self.write_bytes(conn.data_to_send())
        if conn.state is State.CLOSED:
            self.close()  # unbound (either side), or a frame that cannot be resynchronised

    def handle(self, event: Event) -> None:
        if isinstance(event, PduReceived):
            pdu = event.pdu
            if isinstance(pdu, BindTransmitter | BindReceiver | BindTransceiver):
                self.bind(pdu)
            elif isinstance(pdu, SubmitSm | DataSm):
                self.submit(pdu)
            elif isinstance(pdu, QuerySm):
                self.query(pdu)
            elif isinstance(pdu, CancelSm):
                self.cancel(pdu)
            else:  # neither submit_multi nor the other ancillary operations are simulated
                status = CommandStatus.ESME_RINVCMDID
                self.answer(GenericNack(sequence_number=pdu.sequence_number, command_status=status))
        elif isinstance(event, ResponseReceived) and isinstance(event.response, DeliverSmResp):
            item = self.awaiting.pop(event.response.sequence_number, None)
            if isinstance(item, Receipt):
                self.sim.outbox.receipt_answered(item, event.response.command_status)
            elif item is not None:
                self.sim.outbox.mo_answered(item, event.response.command_status)

    # writing
    def answer(self, pdu: Pdu) -> None:
        """Send a response through the engine (nothing once the link is closed)."""
        if self.conn.state is not State.CLOSED:
            self.write_bytes(self.conn.send(pdu, time.monotonic()))

    def send(self, pdu: Pdu) -> int:
        """Send a request through the engine; return the sequence number it got."""
        self.write_bytes(self.conn.send(pdu, time.monotonic()))
        return self.conn.last_sequence

    def write_bytes(self, data: bytes) -> None:
        """The first write of a loop turn goes at once, the rest together at its end."""
        if not data:
            return
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
    def bind(self, pdu: BindTransmitter | BindReceiver | BindTransceiver) -> None:
        resp_cls = _BIND_RESPONSES[type(pdu)]
        sim = self.sim
        status = sim.check_bind(self.server, pdu, self)
        seq = pdu.sequence_number
        if status != CommandStatus.ESME_ROK:
            sim.stats.binds_refused += 1
            self.answer(resp_cls(sequence_number=seq, command_status=status, body_omitted=True))
            return
        self.account = sim.accounts[pdu.system_id]
        sim.stats.binds_accepted += 1
        self.transmitter = not isinstance(pdu, BindReceiver)
        self.receiver = not isinstance(pdu, BindTransmitter)
        self.answer(resp_cls(sequence_number=seq, system_id="SMPPGW-SIM"))
        if sim.settings.faults.unbind_after_bind:
            # As some SMSCs do with an account they do not know: bind, then unbind at once.
            sim.stats.unbinds_after_bind += 1
            self.send(Unbind())
            return
        if self.receiver:
            sim.outbox.flush_receipts(self.account.system_id)
            sim.outbox.flush_mo(self.account.system_id)

    def submit(self, pdu: SubmitSm | DataSm) -> None:
        sim, account = self.sim, self.account
        assert account is not None  # the engine refuses a submit before the bind
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
            delay, expired = sim.outbox.receipt_timing(pdu)
        except TimeFieldError as exc:
            self.respond(pdu, exc.status, None)
            return
        message_id = sim.new_message_id()
        sim.remember(message_id, pdu, delay)
        sim.stats.accepted += 1
        sim.stats.accepted_by_server[self.server.name] += 1
        if sim.settings.record_destinations:
            sim.stats.accepted_by_destination[pdu.destination_addr] += 1
        registered = pdu.registered_delivery & 0x03
        early = faults.dlr_before_resp and sim.rng.random() < faults.dlr_before_resp
        if registered:
            receipt = sim.outbox.make_receipt(account.system_id, message_id, pdu, expired=expired)
            if registered == 1 or receipt.stat != "DELIVRD":
                timer = sim.outbox.schedule_receipt(receipt, 0.0 if early else delay)
                sim.messages[message_id].receipt_timer = timer
        if early:
            # Let the receipt go out first, as some SMSCs do.
            asyncio.get_running_loop().call_later(
                0.05, self.respond, pdu, CommandStatus.ESME_ROK, message_id
            )
            return
        if faults.malformed_ratio and sim.rng.random() < faults.malformed_ratio:
            self.write_bytes(_MALFORMED)
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
            self.answer(QuerySmResp(sequence_number=seq, command_status=status, body_omitted=True))
            return
        self.answer(
            QuerySmResp(
                sequence_number=seq,
                message_id=pdu.message_id,
                final_date=message.final_date,
                message_state=message.state,
                error_code=message.error_code,
            )
        )

    def cancel(self, pdu: CancelSm) -> None:
        """Withdraw a message before its scheduled delivery (SMPP v3.4 section 4.9): no receipt
        follows. A message already delivered (or for immediate delivery), unknown, or submitted
        from another source address is ESME_RCANCELFAIL."""
        message = self.sim.messages.get(pdu.message_id)
        status = CommandStatus.ESME_RCANCELFAIL
        if not self.transmitter:
            status = CommandStatus.ESME_RINVBNDSTS
        elif (
            message is not None
            and message.deliver_at is not None
            and message.state == MessageState.ENROUTE
            and datetime.now(UTC) < message.deliver_at
            and (pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr)
            == (message.source_ton, message.source_npi, message.source)
        ):
            message.state = MessageState.DELETED
            message.final_date = format_absolute(datetime.now(UTC))
            self.sim.stats.cancelled += 1
            self.sim.outbox.drop_receipt(message.receipt_timer)
            message.receipt_timer = None
            status = CommandStatus.ESME_ROK
        self.answer(
            CancelSmResp(
                sequence_number=pdu.sequence_number, command_status=status, body_omitted=True
            )
        )

    def respond(
        self, pdu: SubmitSm | DataSm, status: CommandStatus, message_id: str | None
    ) -> None:
        seq = pdu.sequence_number
        cls = SubmitSmResp if isinstance(pdu, SubmitSm) else DataSmResp
        if message_id is not None:
            self.answer(cls(sequence_number=seq, message_id=message_id))
        else:
            self.answer(cls(sequence_number=seq, command_status=status, body_omitted=True))

    def send_mo_part(self, part: MoPart) -> None:
        part.attempts += 1
        self.sim.stats.mo_sent += 1
        self.awaiting[self.send(part.pdu)] = part

    def send_receipt(self, receipt: Receipt) -> None:
        receipt.attempts += 1
        self.sim.stats.dlrs_sent += 1
        settings = self.sim.settings
        shown_id = receipt.message_id
        if settings.receipt_id_format == "decimal" and settings.message_id_format == "hex":
            shown_id = str(int(receipt.message_id, 16))
        text = format_receipt(
            shown_id,
            stat=receipt.stat,
            err=receipt.err,
            submit_date=receipt.submitted,
            done_date=datetime.now(UTC),
            text=receipt.text,
        )
        state = stat_to_message_state(receipt.stat, rejection=is_rejection) or MessageState.UNKNOWN
        tlvs: tuple[Tlv, ...] = (
            c_string_tlv(Tag.RECEIPTED_MESSAGE_ID, receipt.message_id),
            Tlv(Tag.MESSAGE_STATE, bytes((state,))),
        )
        if receipt.err:
            tlvs += (Tlv(Tag.NETWORK_ERROR_CODE, b"\x01" + receipt.err.to_bytes(2, "big")),)
        pdu = DeliverSm(
            source_addr_ton=Ton.INTERNATIONAL,
            source_addr_npi=Npi.ISDN,
            source_addr=receipt.destination,
            dest_addr_ton=Ton.ALPHANUMERIC,
            destination_addr=receipt.source,
            esm_class=EsmClass.DELIVERY_RECEIPT,
            short_message=text,
            tlvs=tlvs,
        )
        self.awaiting[self.send(pdu)] = receipt
