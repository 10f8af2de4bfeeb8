"""The steps of opening one bind slot, each timed on its own, and each failure put in words
an operator can act on: DNS, refused, no answer, TLS version or certificate, credentials, bind
limit, a link the server drops right after the bind."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from smppgw.codec import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
)
from smppgw.esme.binds import BindManagerSettings, ServerSettings
from smppgw.esme.session import BindType
from smppgw.gateway.doctor.probe import LinkClosedError, Probe
from smppgw.gateway.doctor.report import ServerResult, SlotResult, Step

__all__ = ["Context", "check_server"]


_BINDS: dict[BindType, type[BindTransmitter | BindReceiver | BindTransceiver]] = {
    BindType.TRANSMITTER: BindTransmitter,
    BindType.RECEIVER: BindReceiver,
    BindType.TRANSCEIVER: BindTransceiver,
}


def _endpoint(server: ServerSettings) -> str:
    return f"{server.host}:{server.port}{' (TLS)' if server.tls is not None else ''}"


class _SlotFailedError(Exception):
    """A step failed: which, in words, and the server's status when it gave one."""

    def __init__(self, step: Step, problem: str, status: CommandStatus | None = None) -> None:
        super().__init__(problem)
        self.step = step
        self.problem = problem
        self.status = status


@dataclass(slots=True)
class Context:
    """What one run of the doctor shares: settings, the receipts any probe gets, the clock,
    and the links left open for the test message (closed at the end)."""

    settings: BindManagerSettings
    receipts: asyncio.Queue[tuple[str, DeliverSm]]
    clock: Callable[[], float]
    probes: int
    probes_open: list[tuple[str, BindType, Probe]] = field(default_factory=list)


async def _resolve(context: Context, server: ServerSettings, slot: SlotResult) -> str:
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
    context: Context, server: ServerSettings, slot: SlotResult, address: str
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
    context: Context, server: ServerSettings, slot: SlotResult, probe: Probe
) -> None:
    endpoint, timeout = _endpoint(server), context.settings.response_timeout
    started = context.clock()
    try:
        resp = await probe.request(EnquireLink(), timeout)
    except LinkClosedError as exc:
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


async def _open_slot(context: Context, server: ServerSettings, slot: SlotResult) -> None:
    address = await _resolve(context, server, slot)
    reader, writer = await _connect(context, server, slot, address)
    try:
        if server.tls is not None:
            await _handshake(context, server, slot, writer)
        probe = Probe(reader, writer, context.receipts, server.name)
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
    context.probes_open.append((server.name, server.bind_types[slot.slot], probe))


async def _handshake(
    context: Context, server: ServerSettings, slot: SlotResult, writer: asyncio.StreamWriter
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
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError) as exc:
        # The session's words for a failed handshake (a reset is asked which version the
        # server speaks), with the settings to look at for a certificate.
        reason = await tls.explain_failure(
            exc, server.host, server.port, context.settings.connect_timeout
        )
        hint = (
            " ([tls] ca_file, server_name)" if isinstance(exc, ssl.SSLCertVerificationError) else ""
        )
        raise _SlotFailedError(
            Step.TLS, f"TLS: handshake with {endpoint} failed: {reason}{hint}"
        ) from exc
    except TimeoutError as exc:
        raise _SlotFailedError(
            Step.TLS, f"TLS: no handshake with {endpoint} in {context.settings.connect_timeout:g} s"
        ) from exc
    slot.timings[Step.TLS] = context.clock() - started


async def _bind(context: Context, server: ServerSettings, slot: SlotResult, probe: Probe) -> None:
    s = context.settings
    endpoint = _endpoint(server)
    bind_type = server.bind_types[slot.slot]
    pdu = _BINDS[bind_type](
        system_id=s.system_id,
        password=s.password,
        system_type=s.system_type,
        interface_version=0x34,
    )
    started = context.clock()
    try:
        resp = await probe.request(pdu, s.bind_timeout)
    except LinkClosedError as exc:
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


async def check_server(context: Context, server: ServerSettings) -> ServerResult:
    """Open each of ``server``'s bind slots in turn; the links that bind stay open."""
    result = ServerResult(server.name, _endpoint(server), server.rate)
    for index in range(server.binds):
        slot = SlotResult(server.name, index, server.bind_types[index].value)
        result.slots.append(slot)
        try:
            await _open_slot(context, server, slot)
        except _SlotFailedError as exc:
            slot.failed_step, slot.problem, slot.status = exc.step, exc.problem, exc.status
    return result
