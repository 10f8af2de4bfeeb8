"""Preflight against the configured SMPP servers (``smppgw doctor``).

For every server it opens every bind slot the configuration asks for, one after the other
(so a bind limit shows at the slot where it bites), and times each step on its own: name
resolution, TCP connect, TLS handshake, bind, and a few enquire_link round trips. Each
failure is put in words an operator can act on (DNS, refused, no answer, TLS version or
certificate, credentials, bind limit, a link the server drops right after the bind).
Optionally one test message goes to a number given on the command line, and its receipt
tells in which form the server writes message ids (the same, or the other base), which is
what receipt matching depends on. From the measured round trip and the server's rate it
recommends a window per bind: enough requests in flight to keep the rate busy, twice over.

The probes speak SMPP through the codec on plain asyncio streams, independent of the
session layer, so that every step can be timed and named separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import math
import socket
import ssl
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from smppgw.codec import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    DataCoding,
    DecodeError,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Framer,
    GenericNack,
    Pdu,
    RegisteredDelivery,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Unbind,
    UnbindResp,
    decode,
    encode,
    find_tlv,
)
from smppgw.codec.receipt import ReceiptInfo, ReceiptParseError, receipt_info
from smppgw.codec.text import encode_text
from smppgw.esme.binds import BindManagerSettings, ServerSettings
from smppgw.esme.numbers import Sender
from smppgw.esme.session import BindType

__all__ = [
    "DoctorReport",
    "ServerResult",
    "SlotResult",
    "Step",
    "TestMessageResult",
    "diagnose",
    "id_form",
    "recommended_window",
]

TEST_TEXT = "smppgw doctor: test message"


class Step(enum.Enum):
    """The steps of opening one bind slot, in order."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    BIND = "bind"
    ENQUIRE_LINK = "enquire_link"


@dataclass(slots=True)
class SlotResult:
    """One bind slot: how long each step took, and the first problem in words."""

    server: str
    slot: int
    bind_type: str
    timings: dict[Step, float] = field(default_factory=dict)
    enquire_link_rtts: list[float] = field(default_factory=list)
    failed_step: Step | None = None
    problem: str | None = None
    status: CommandStatus | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(slots=True)
class ServerResult:
    """One server: its slots and what they tell."""

    name: str
    endpoint: str
    rate: float
    slots: list[SlotResult] = field(default_factory=list)

    @property
    def bound(self) -> int:
        return sum(1 for slot in self.slots if slot.ok)

    @property
    def round_trip(self) -> float | None:
        """The median enquire_link round trip over every slot, in seconds."""
        rtts = [rtt for slot in self.slots for rtt in slot.enquire_link_rtts]
        return statistics.median(rtts) if rtts else None

    @property
    def recommended_window(self) -> int | None:
        rtt = self.round_trip
        if rtt is None or not self.slots:
            return None
        return recommended_window(self.rate, len(self.slots), rtt)


@dataclass(slots=True)
class TestMessageResult:
    """The test message: where it went, its ids, and what the receipt taught."""

    to: str
    server: str | None = None
    message_id: str | None = None
    submit_status: CommandStatus | None = None
    receipt_id: str | None = None
    receipt_stat: str | None = None
    receipt_after: float | None = None
    id_forms: dict[str, str] = field(default_factory=dict)  # where in the receipt -> form
    problem: str | None = None

    def lines(self) -> Iterator[str]:
        if self.message_id is not None:
            yield f"test message to {self.to} via {self.server}: id {self.message_id}"
        if self.receipt_id is not None:
            after = self.receipt_after or 0.0
            yield f"  receipt {self.receipt_stat} after {after:.1f} s, id {self.receipt_id}"
            for where, form in self.id_forms.items():
                yield f"  ids in the receipt's {where}: {form}"
        if self.problem is not None:
            yield f"  test message: {self.problem}"


@dataclass(slots=True)
class DoctorReport:
    servers: list[ServerResult]
    test_message: TestMessageResult | None = None

    @property
    def ok(self) -> bool:
        slots_ok = all(slot.ok for server in self.servers for slot in server.slots)
        return slots_ok and (self.test_message is None or self.test_message.problem is None)

    def to_json(self) -> dict[str, object]:
        """The report as plain JSON values (seconds as floats, statuses by name)."""
        servers: list[object] = [
            {
                "name": server.name,
                "endpoint": server.endpoint,
                "rate": server.rate,
                "binds": len(server.slots),
                "bound": server.bound,
                "round_trip": server.round_trip,
                "recommended_window": server.recommended_window,
                "slots": [_slot_json(slot) for slot in server.slots],
            }
            for server in self.servers
        ]
        message = self.test_message
        return {
            "ok": self.ok,
            "servers": servers,
            "test_message": None
            if message is None
            else {
                "to": message.to,
                "server": message.server,
                "message_id": message.message_id,
                "submit_status": None
                if message.submit_status is None
                else message.submit_status.name,
                "receipt_id": message.receipt_id,
                "receipt_stat": message.receipt_stat,
                "receipt_after": message.receipt_after,
                "id_forms": message.id_forms,
                "problem": message.problem,
            },
        }

    def lines(self) -> Iterator[str]:
        """The report as text, one line per slot, server summary and test message."""
        for server in self.servers:
            yield f"{server.name} {server.endpoint}: {server.bound} of {len(server.slots)} binds"
            for slot in server.slots:
                steps = "  ".join(
                    f"{step.value} {_ms(seconds)}" for step, seconds in slot.timings.items()
                )
                if slot.enquire_link_rtts:
                    steps += f"  enquire_link {_ms(statistics.median(slot.enquire_link_rtts))}"
                verdict = "ok" if slot.ok else f"FAILED at {_step_name(slot.failed_step)}"
                yield f"  slot {slot.slot} ({slot.bind_type}): {verdict}  {steps}".rstrip()
                if slot.problem is not None:
                    yield f"    {slot.problem}"
            window = server.recommended_window
            if window is not None:
                rtt = server.round_trip
                assert rtt is not None
                basis = f"{server.rate:g} msg/s" if server.rate > 0 else "no rate limit"
                yield (
                    f"  recommended window per bind: {window} "
                    f"({basis} over {len(server.slots)} binds, round trip {_ms(rtt)})"
                )
        if self.test_message is not None:
            yield from self.test_message.lines()
        yield "all checks passed" if self.ok else "some checks FAILED"


def _slot_json(slot: SlotResult) -> dict[str, object]:
    return {
        "slot": slot.slot,
        "bind_type": slot.bind_type,
        "ok": slot.ok,
        "timings": {step.value: seconds for step, seconds in slot.timings.items()},
        "enquire_link_rtts": slot.enquire_link_rtts,
        "failed_step": None if slot.failed_step is None else slot.failed_step.value,
        "status": None if slot.status is None else slot.status.name,
        "problem": slot.problem,
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _step_name(step: Step | None) -> str:
    return "?" if step is None else step.value


def recommended_window(rate: float, binds: int, round_trip: float) -> int:
    """Requests in flight per bind that keep ``rate`` busy over ``round_trip``, twice over.

    A bind sends ``rate / binds`` per second; each waits ``round_trip`` for its response, so
    that many per second times the round trip are in flight at once (Little's law). Twice that
    absorbs jitter. An unlimited rate (0) gets the largest window the gateway advises (100).
    """
    if rate <= 0:
        return 100
    return max(1, min(100, math.ceil(2 * rate / max(binds, 1) * round_trip)))


def _id_forms(message_id: str, deliver: DeliverSm, info: ReceiptInfo) -> dict[str, str | None]:
    """The id form of each place a receipt writes the id: its TLV and its text."""
    ids: dict[str, str] = {}
    raw = find_tlv(deliver.tlvs, Tag.RECEIPTED_MESSAGE_ID)
    if raw:
        ids["receipted_message_id"] = raw.rstrip(b"\x00").decode("latin-1")
    if info.receipt is not None and info.receipt.id:
        ids["text"] = info.receipt.id
    return {where: id_form(message_id, receipt_id) for where, receipt_id in ids.items()}


def id_form(message_id: str, receipt_id: str) -> str | None:
    """How a receipt writes the message id the submit_sm_resp gave, or None if unrelated."""
    if receipt_id == message_id:
        if message_id.isdigit() and int(message_id) < 10:
            return "the same id in receipts as in responses (too short to tell hex from decimal)"
        return "the same id in receipts as in responses"
    a, b = message_id.strip().lower().lstrip("0"), receipt_id.strip().lower().lstrip("0")
    if a == b:
        return "the same id in receipts, in another letter case or with leading zeros"
    with contextlib.suppress(ValueError):
        if int(receipt_id, 10) == int(message_id, 16):
            return "hex ids in responses, the same ids in decimal in receipts"
    with contextlib.suppress(ValueError):
        if int(receipt_id, 16) == int(message_id, 10):
            return "decimal ids in responses, the same ids in hex in receipts"
    return None


# --- probing ---------------------------------------------------------------------------------


class _LinkClosedError(Exception):
    """The server closed the connection."""


class _Probe:
    """One connection speaking SMPP through the codec: requests matched by sequence number,
    enquire_link, deliver_sm and unbind from the server answered, receipts collected."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        receipts: asyncio.Queue[tuple[str, DeliverSm]],
        server: str,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._receipts = receipts
        self._server = server
        self._framer = Framer()
        self._sequence = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._task = asyncio.get_running_loop().create_task(self._read())
        self.closed_at: float | None = None

    async def request(self, pdu: Pdu, timeout: float) -> Pdu:  # noqa: ASYNC109
        sequence = next(self._sequence)
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        if self._task.done():
            raise _LinkClosedError
        self._pending[sequence] = future
        self._writer.write(encode(replace(pdu, sequence_number=sequence)))
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._pending.pop(sequence, None)

    async def _read(self) -> None:
        try:
            while data := await self._reader.read(65536):
                for frame in self._framer.feed(data):
                    self._handle(decode(frame))
        except (OSError, DecodeError):
            pass
        finally:
            self.closed_at = time.monotonic()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(_LinkClosedError())

    def _handle(self, pdu: Pdu) -> None:
        if isinstance(pdu, EnquireLink):
            self._writer.write(encode(EnquireLinkResp(sequence_number=pdu.sequence_number)))
        elif isinstance(pdu, DeliverSm):
            self._writer.write(encode(DeliverSmResp(sequence_number=pdu.sequence_number)))
            self._receipts.put_nowait((self._server, pdu))
        elif isinstance(pdu, Unbind):
            self._writer.write(encode(UnbindResp(sequence_number=pdu.sequence_number)))
        elif type(pdu).command_id & 0x80000000 or isinstance(pdu, GenericNack):
            future = self._pending.get(pdu.sequence_number)
            if future is not None and not future.done():
                future.set_result(pdu)

    async def close(self, timeout: float) -> None:  # noqa: ASYNC109
        if not self._task.done():
            with contextlib.suppress(_LinkClosedError, TimeoutError, OSError):
                await self.request(Unbind(), timeout)
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


_BINDS: dict[BindType, type[BindTransmitter | BindReceiver | BindTransceiver]] = {
    BindType.TRANSMITTER: BindTransmitter,
    BindType.RECEIVER: BindReceiver,
    BindType.TRANSCEIVER: BindTransceiver,
}
_BIND_NAMES = {BindType.TRANSMITTER: "tx", BindType.RECEIVER: "rx", BindType.TRANSCEIVER: "trx"}
_TLS_VERSION_REASONS = {
    "UNSUPPORTED_PROTOCOL",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "NO_PROTOCOLS_AVAILABLE",
    "VERSION_TOO_LOW",
    "VERSION_TOO_HIGH",
}


def _bind_type(server: ServerSettings, slot: int) -> BindType:
    kind = server.bind_type
    return kind[slot] if isinstance(kind, tuple) else kind


def _endpoint(server: ServerSettings) -> str:
    return f"{server.host}:{server.port}{' (TLS)' if server.tls is not None else ''}"


class _SlotFailedError(Exception):
    def __init__(self, step: Step, problem: str, status: CommandStatus | None = None) -> None:
        super().__init__(problem)
        self.step = step
        self.problem = problem
        self.status = status


@dataclass(slots=True)
class _Context:
    settings: BindManagerSettings
    receipts: asyncio.Queue[tuple[str, DeliverSm]]
    clock: Callable[[], float]
    probes: int
    probes_open: list[tuple[str, BindType, _Probe]] = field(default_factory=list)


async def _resolve(context: _Context, server: ServerSettings, slot: SlotResult) -> str:
    timeout = context.settings.connect_timeout
    loop = asyncio.get_running_loop()
    started = context.clock()
    try:
        async with asyncio.timeout(timeout):
            addresses = await loop.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _SlotFailedError(
            Step.RESOLVE, f"DNS: {server.host!r} cannot be resolved ({exc.strerror})"
        ) from exc
    except TimeoutError as exc:
        raise _SlotFailedError(
            Step.RESOLVE, f"DNS: no answer for {server.host!r} in {timeout:g} s"
        ) from exc
    slot.timings[Step.RESOLVE] = context.clock() - started
    return str(addresses[0][4][0])


async def _connect(
    context: _Context, server: ServerSettings, slot: SlotResult, address: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    endpoint, timeout = _endpoint(server), context.settings.connect_timeout
    started = context.clock()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, server.port)
    except ConnectionRefusedError as exc:
        raise _SlotFailedError(
            Step.CONNECT,
            f"connect: {endpoint} refused the connection (nothing listens on that port, "
            "or a firewall rejects it)",
        ) from exc
    except TimeoutError as exc:
        raise _SlotFailedError(
            Step.CONNECT,
            f"connect: no answer from {endpoint} in {timeout:g} s "
            "(a firewall dropping packets, or a wrong address)",
        ) from exc
    except OSError as exc:
        raise _SlotFailedError(Step.CONNECT, f"connect: {endpoint}: {exc.strerror or exc}") from exc
    slot.timings[Step.CONNECT] = context.clock() - started
    return reader, writer


async def _enquire(
    context: _Context, server: ServerSettings, slot: SlotResult, probe: _Probe
) -> None:
    endpoint, timeout = _endpoint(server), context.settings.response_timeout
    started = context.clock()
    try:
        resp = await probe.request(EnquireLink(), timeout)
    except _LinkClosedError as exc:
        raise _SlotFailedError(
            Step.ENQUIRE_LINK,
            f"link: {endpoint} closed the connection right after the bind (the account "
            "may not be allowed here, or is bound elsewhere)",
        ) from exc
    except TimeoutError as exc:
        raise _SlotFailedError(
            Step.ENQUIRE_LINK, f"enquire_link: no answer from {endpoint} in {timeout:g} s"
        ) from exc
    if not isinstance(resp, EnquireLinkResp):
        raise _SlotFailedError(
            Step.ENQUIRE_LINK,
            f"enquire_link: {endpoint} answered {type(resp).__name__} ({resp.command_status.name})",
        )
    slot.enquire_link_rtts.append(context.clock() - started)


async def _open_slot(context: _Context, server: ServerSettings, slot: SlotResult) -> None:
    address = await _resolve(context, server, slot)
    reader, writer = await _connect(context, server, slot, address)
    try:
        if server.tls is not None:
            await _handshake(context, server, slot, writer)
        probe = _Probe(reader, writer, context.receipts, server.name)
    except BaseException:
        writer.close()
        raise
    try:
        await _bind(context, server, slot, probe)
        for _ in range(context.probes):
            await _enquire(context, server, slot, probe)
    except BaseException:
        await probe.close(context.settings.response_timeout)
        raise
    context.probes_open.append((server.name, _bind_type(server, slot.slot), probe))


async def _handshake(
    context: _Context, server: ServerSettings, slot: SlotResult, writer: asyncio.StreamWriter
) -> None:
    tls = server.tls
    assert tls is not None
    endpoint = _endpoint(server)
    started = context.clock()
    try:
        tls_context = tls.context()
    except (OSError, ValueError) as exc:
        raise _SlotFailedError(Step.TLS, f"TLS settings: {exc}") from exc
    try:
        async with asyncio.timeout(context.settings.connect_timeout):
            await writer.start_tls(tls_context, server_hostname=tls.server_name or server.host)
    except ssl.SSLCertVerificationError as exc:
        raise _SlotFailedError(
            Step.TLS,
            f"TLS: the certificate of {endpoint} is not trusted: {exc.verify_message} "
            "([tls] ca_file, server_name)",
        ) from exc
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if reason in _TLS_VERSION_REASONS:
            problem = (
                f"TLS: {endpoint} and we share no protocol version (we offer "
                f"{tls.minimum_version} or newer; [tls] min_version): {reason}"
            )
        elif reason == "WRONG_VERSION_NUMBER":
            problem = f"TLS: {endpoint} does not speak TLS (a plain port?): {reason}"
        else:
            problem = f"TLS: handshake with {endpoint} failed: {reason}"
        raise _SlotFailedError(Step.TLS, problem) from exc
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        raise _SlotFailedError(
            Step.TLS,
            f"TLS: {endpoint} closed the connection during the handshake (often a TLS "
            "version or cipher it does not accept, or a plain port)",
        ) from exc
    except TimeoutError as exc:
        raise _SlotFailedError(
            Step.TLS, f"TLS: no handshake with {endpoint} in {context.settings.connect_timeout:g} s"
        ) from exc
    slot.timings[Step.TLS] = context.clock() - started


async def _bind(context: _Context, server: ServerSettings, slot: SlotResult, probe: _Probe) -> None:
    s = context.settings
    endpoint = _endpoint(server)
    bind_type = _bind_type(server, slot.slot)
    pdu = _BINDS[bind_type](
        system_id=s.system_id,
        password=s.password,
        system_type=s.system_type,
        interface_version=0x34,
    )
    started = context.clock()
    try:
        resp = await probe.request(pdu, s.bind_timeout)
    except _LinkClosedError as exc:
        raise _SlotFailedError(
            Step.BIND, f"bind: {endpoint} closed the connection without answering the bind"
        ) from exc
    except TimeoutError as exc:
        raise _SlotFailedError(
            Step.BIND, f"bind: no answer from {endpoint} in {s.bind_timeout:g} s"
        ) from exc
    slot.timings[Step.BIND] = context.clock() - started
    status = resp.command_status
    if status == CommandStatus.ESME_ROK:
        return
    if status == CommandStatus.ESME_RINVPASWD:
        problem = f"bind: wrong password for system_id {s.system_id!r} (ESME_RINVPASWD)"
    elif status == CommandStatus.ESME_RINVSYSID:
        problem = f"bind: {endpoint} does not know system_id {s.system_id!r} (ESME_RINVSYSID)"
    elif slot.slot > 0 and status in (CommandStatus.ESME_RBINDFAIL, CommandStatus.ESME_RALYBND):
        problem = (
            f"bind limit: {endpoint} refused bind {slot.slot + 1} of {server.binds} "
            f"({status.name}) after accepting {slot.slot}: the account allows fewer binds "
            f"than servers[].binds = {server.binds}, or another instance holds some"
        )
    else:
        problem = f"bind: {endpoint} refused: {status.name} ({status.description})"
    raise _SlotFailedError(Step.BIND, problem, status)


async def _check_server(context: _Context, server: ServerSettings) -> ServerResult:
    result = ServerResult(server.name, _endpoint(server), server.rate)
    for index in range(server.binds):
        slot = SlotResult(server.name, index, _BIND_NAMES[_bind_type(server, index)])
        result.slots.append(slot)
        try:
            await _open_slot(context, server, slot)
        except _SlotFailedError as exc:
            slot.failed_step, slot.problem, slot.status = exc.step, exc.problem, exc.status
    return result


async def _test_message(
    context: _Context, to: str, sender: Sender, receipt_timeout: float
) -> TestMessageResult:
    result = TestMessageResult(to)
    senders = [(name, probe) for name, kind, probe in context.probes_open if kind.can_submit]
    if not senders:
        result.problem = "no bound bind can submit (transmitter or transceiver)"
        return result
    if not any(kind.can_receive for _, kind, _ in context.probes_open):
        result.problem = "no bound bind can receive receipts (receiver or transceiver)"
    result.server, probe = senders[0]
    pdu = SubmitSm(
        source_addr_ton=sender.ton,
        source_addr_npi=sender.npi,
        source_addr=sender.value,
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=to,
        registered_delivery=RegisteredDelivery.FINAL,
        data_coding=DataCoding.DEFAULT,
        short_message=encode_text(TEST_TEXT, DataCoding.DEFAULT),
    )
    sent = context.clock()
    try:
        resp = await probe.request(pdu, context.settings.response_timeout)
    except (_LinkClosedError, TimeoutError) as exc:
        result.problem = f"submit_sm: no response ({type(exc).__name__})"
        return result
    result.submit_status = resp.command_status
    if not isinstance(resp, SubmitSmResp) or resp.command_status != CommandStatus.ESME_ROK:
        status = resp.command_status
        result.problem = f"submit_sm refused: {status.name} ({status.description})"
        return result
    result.message_id = resp.message_id
    if result.problem is not None:
        return result
    await _await_receipt(context, result, resp.message_id, receipt_timeout, sent)
    return result


async def _await_receipt(
    context: _Context,
    result: TestMessageResult,
    message_id: str,
    receipt_timeout: float,
    sent: float,
) -> None:
    """Wait for the test message's receipt, on any bind; note its id form in ``result``."""
    try:
        async with asyncio.timeout(receipt_timeout):
            while True:
                _, deliver = await context.receipts.get()
                try:
                    info = receipt_info(deliver.short_message, deliver.tlvs)
                except ReceiptParseError:
                    continue  # an MO message, not a receipt
                forms = _id_forms(message_id, deliver, info)
                if any(form is not None for form in forms.values()):
                    break
                result.receipt_id = info.message_id  # the latest unrelated one, for the report
    except TimeoutError:
        if result.receipt_id is not None:
            result.problem = (
                f"receipts arrived (the latest for id {result.receipt_id}) but none for "
                f"{message_id} in {receipt_timeout:g} s: ids in a form the gateway "
                "cannot match, or the receipt is late"
            )
        else:
            result.problem = f"no receipt in {receipt_timeout:g} s"
        return
    result.receipt_id = info.message_id
    result.receipt_stat = info.stat or (info.state.name if info.state is not None else None)
    result.receipt_after = context.clock() - sent
    result.id_forms = {where: form or "an unrelated id" for where, form in forms.items()}


async def diagnose(
    settings: BindManagerSettings,
    *,
    test_to: str | None = None,
    sender: Sender | None = None,
    receipt_timeout: float = 60.0,
    probes: int = 3,
    clock: Callable[[], float] = time.monotonic,
) -> DoctorReport:
    """Open every bind slot of every server, time each step, optionally send a test message.

    Servers are checked at once; the slots of one server one after the other. Every link is
    unbound and closed before this returns.

    Args:
        settings: the servers, account and timeouts (as the daemon's bind manager uses them).
        test_to: send one test message to this number and wait for its receipt.
        sender: the test message's sender (needed with ``test_to``).
        receipt_timeout: how long to wait for the test message's receipt.
        probes: enquire_link round trips measured per slot.
        clock: the clock timings are read from.

    Returns:
        The report; :attr:`DoctorReport.ok` is False when any step or the test message failed.
    """
    context = _Context(settings, asyncio.Queue(), clock, probes)
    try:
        servers = list(
            await asyncio.gather(*(_check_server(context, server) for server in settings.servers))
        )
        message = None
        if test_to is not None:
            if sender is None:
                raise ValueError("a test message needs a sender")
            message = await _test_message(context, test_to, sender, receipt_timeout)
    finally:
        await asyncio.gather(
            *(probe.close(settings.response_timeout) for _, _, probe in context.probes_open)
        )
    return DoctorReport(servers, message)
