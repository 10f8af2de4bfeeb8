"""The simulator: its servers, accounts, rate limits, the queues of receipts and MO on their
way, faults; each link speaks the SMSC role of the sans-IO connection (see :mod:`.link`)."""

from __future__ import annotations

import asyncio
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Self

from smppgw.codec import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    DataSm,
    MessageState,
    SubmitSm,
)
from smppgw.codec.split import SplitMethod

from .link import Link, Server, TimeFieldError, receipt_timing
from .mo import MoPart, build_mo_parts, generate_mo, mo_record
from .outbox import Outbox
from .settings import (
    Account,
    FaultSettings,
    MoRecord,
    MoSettings,
    ServerInfo,
    SimulatorSettings,
    SimulatorStats,
    UnknownAccountError,
)

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


@dataclass(slots=True)
class _Message:
    """What the SMSC knows of a message it accepted, for query_sm (SMPP v3.4 section 4.8)."""

    source_ton: int
    source_npi: int
    source: str
    state: MessageState = MessageState.ENROUTE
    final_date: str = ""
    error_code: int = 0
    deliver_at: datetime | None = None  # a scheduled delivery's time (cancel_sm until then)
    receipt_timer: asyncio.TimerHandle | None = None  # its receipt's, until due


_MAX_MESSAGES = 1_000_000  # the oldest are forgotten beyond this (query_sm: ESME_RINVMSGID)


_MAX_MESSAGES = 1_000_000  # the oldest are forgotten beyond this (query_sm: ESME_RINVMSGID)


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
        self.nodes = [Server(self, name) for name in self.settings.server_names()]  # by index
        self.outbox = Outbox(self)  # receipts and MO parts on their way
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
        for index, server in enumerate(self.nodes):
            plain_port = s.plain_ports[index] if index < len(s.plain_ports) else 0
            plain = await loop.create_server(functools.partial(Link, server), s.host, plain_port)
            server.listeners.append(plain)
            tls_port = None
            if context is not None:
                port = s.tls_ports[index] if index < len(s.tls_ports) else 0
                secure = await loop.create_server(
                    functools.partial(Link, server), s.host, port, ssl=context
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
            self._mo_task = loop.create_task(generate_mo(self))

    async def stop(self) -> None:
        """Close every listener and connection."""
        for task in (self._idle_task, self._mo_task):
            if task is not None:
                task.cancel()
        for task in list(self._tasks):
            task.cancel()
        for server in self.nodes:
            for listener in server.listeners:
                listener.close()
            for conn in list(server.connections):
                conn.close()
        for server in self.nodes:
            for listener in server.listeners:
                await listener.wait_closed()
        if self._tmp is not None:
            self._tmp.cleanup()

    # --- faults and observation -------------------------------------------------------------

    def set_server_down(self, index: int, *, down: bool) -> None:
        """Take a server down (its binds are cut and new connections refused) or back up."""
        server = self.nodes[index]
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
        server = self.nodes[index]
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
        return self.outbox.receipts_pending()

    async def wait_dlrs_settled(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until every receipt was sent and acknowledged.

        Raises:
            TimeoutError: receipts are still pending after ``timeout`` seconds.
        """
        await self._settled(lambda: self.dlrs_pending, timeout)

    @property
    def mo_pending(self) -> int:
        """MO parts waiting to be resent, queued for a receiver, or sent and not yet answered."""
        return self.outbox.mo_parts_pending()

    async def wait_mo_settled(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until every MO part was sent and acknowledged with ESME_ROK.

        Raises:
            TimeoutError: parts are still pending after ``timeout`` seconds.
        """
        await self._settled(lambda: self.mo_pending, timeout)

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
        record, used = mo_record(
            system_id,
            source_addr,
            destination_addr,
            text,
            number=next(self._mo_numbers),
            reference=self._mo_reference,
            data_coding=data_coding,
            concatenated=concatenated,
            udh_ref_bits=udh_ref_bits,
            method=method,
            addressing=(source_addr_ton, source_addr_npi, dest_addr_ton, dest_addr_npi),
        )
        self._mo_reference += used
        pdus = record.pdus
        self.stats.mo_messages += 1
        self.stats.mo_parts += len(pdus)
        self.outbox.queue_mo(system_id, [MoPart(record, pdu) for pdu in pdus])
        return record

    def submits_per_second(self, server: str) -> list[int]:
        """Accepted-or-throttled submit counts per 1-second window of the monotonic clock."""
        counts = self.stats.per_second.get(server, Counter())
        return [counts[k] for k in sorted(counts)]

    def bound(self, server_index: int | None = None) -> int:
        """How many connections are bound (on one server, or on all)."""
        servers = self.nodes if server_index is None else [self.nodes[server_index]]
        return sum(1 for s in servers for c in s.connections if c.account is not None)

    # --- internals used by connections ------------------------------------------------------

    def check_bind(
        self,
        server: Server,
        pdu: BindTransmitter | BindReceiver | BindTransceiver,
        conn: Link,
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

    def take_token(self, server: Server, account: Account) -> bool:
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

    def remember(self, message_id: str, pdu: SubmitSm | DataSm, delay: float = 0.0) -> None:
        """Keep an accepted message for query_sm and cancel_sm: en route until its outcome is
        known; one with a schedule_delivery_time is delivered ``delay`` seconds from now."""
        messages = self.messages
        if len(messages) >= _MAX_MESSAGES:
            del messages[next(iter(messages))]
        deliver_at = None
        if isinstance(pdu, SubmitSm) and pdu.schedule_delivery_time:
            deliver_at = datetime.now(UTC) + timedelta(seconds=delay)
        messages[message_id] = _Message(
            pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr, deliver_at=deliver_at
        )

    async def _cut_idle_links(self) -> None:
        limit = self.settings.idle_timeout
        while True:
            await asyncio.sleep(min(limit, 30.0) / 2)
            now = time.monotonic()
            for server in self.nodes:
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
