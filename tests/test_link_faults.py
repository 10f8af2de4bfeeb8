"""Links that die are seen dying: refusals, frozen SMSCs and binds that die as they come up.

Each test drives the gateway's own session or bind manager against an SMSC that misbehaves
the way real ones were seen to: a generic_nack to a submit, a frozen process (TCP open, nothing
read or answered), and an SMSC that unbinds each bind as soon as it has accepted it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import random
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from virtual_time import VirtualClock

from smppgw.codec import (
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Tlv,
    Unbind,
)
from smppgw.codec.constants import RegisteredDelivery
from smppgw.esme.binds import BindManager, BindManagerSettings, PartStatus, ServerSettings
from smppgw.esme.session import (
    BindError,
    LinkLostError,
    NotSentError,
    ResponseTimeoutError,
    Session,
    SessionClosedError,
    SessionSettings,
)
from smppgw.testing.simulator import Account, FaultSettings, Simulator, SimulatorSettings
from smppgw.testing.simulator.cli import build_parser, run_outages, settings_from_args
from smppgw.testing.smsc import Handler, Nack, TestSmsc


def session_settings(port: int, **kwargs: object) -> SessionSettings:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "system_id": "smppgw",
        "password": "secret",
        "response_timeout": 5.0,
    }
    base.update(kwargs)
    return SessionSettings(**base)  # type: ignore[arg-type]


def nack_every_submit(status: CommandStatus) -> Handler:
    def answer(pdu: Pdu) -> Nack | None:
        return Nack(status) if isinstance(pdu, SubmitSm | DataSm) else None

    return answer


# --- item: a generic_nack to a submit is a refusal -------------------------------------------


async def test_generic_nack_to_a_submit_is_a_refusal_with_its_status_and_the_bind_stays_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A generic_nack answering a submit_sm used to raise LinkLostError while the session stayed
    bound: the bind manager took the outcome as unknown, resubmitted the message and flagged it
    possible_duplicate, although the SMSC had refused it. It is the submit's refusal: returned
    with its status, tied to the submit by sequence number, logged naming the PDU and status."""
    async with TestSmsc(nack_every_submit(CommandStatus.ESME_RINVCMDID)) as smsc:
        session = await Session.connect(session_settings(smsc.port))
        try:
            with caplog.at_level(logging.WARNING, logger="smppgw.esme.session"):
                resp = await session.submit(SubmitSm(destination_addr="14155550101"))
            assert isinstance(resp, SubmitSmResp)
            assert resp.command_status is CommandStatus.ESME_RINVCMDID
            assert resp.sequence_number == smsc.of_type(SubmitSm)[0].sequence_number
            assert session.bound
            assert "SubmitSm" in caplog.text
            assert "generic_nack ESME_RINVCMDID" in caplog.text
            data = await session.submit(DataSm(destination_addr="14155550101"))
            assert data.command_status is CommandStatus.ESME_RINVCMDID
        finally:
            session.abort()


async def test_close_returns_when_the_smsc_closes_the_link_on_unbind_without_answering() -> None:
    """smpp34's server often closes the link on our unbind before its unbind_resp reaches us;
    Session.close() raised LinkLostError although the link was closed, as asked."""
    async with TestSmsc(close_on_unbind=True) as smsc:
        session = await Session.connect(session_settings(smsc.port))
        await session.close(5)
        assert session.closed
        assert isinstance(smsc.received[-1], Unbind)


def manager_settings(*servers: ServerSettings, **kwargs: object) -> BindManagerSettings:
    base: dict[str, object] = {
        "servers": servers,
        "system_id": "smppgw",
        "password": "secret",
        "response_timeout": 5.0,
        "reconnect_min": 0.05,
        "reconnect_max": 0.5,
        "retry_delay": 0.0,
        "max_attempts": 3,
    }
    base.update(kwargs)
    return BindManagerSettings(**base)  # type: ignore[arg-type]


async def no_inbound(_pdu: DeliverSm | DataSm) -> CommandStatus:
    return CommandStatus.ESME_ROK


@pytest.mark.parametrize(
    ("status", "expected", "sends"),
    [
        # permanent: refused once, failed, never flagged as a possible duplicate
        (CommandStatus.ESME_RINVCMDID, PartStatus.FAILED, 1),
        # transient: retried up to max_attempts, then failed
        (CommandStatus.ESME_RSYSERR, PartStatus.FAILED, 3),
    ],
)
async def test_bind_manager_follows_the_retry_policy_for_a_generic_nack_status(
    status: CommandStatus, expected: PartStatus, sends: int
) -> None:
    async with TestSmsc(nack_every_submit(status)) as smsc:
        manager = BindManager(
            manager_settings(ServerSettings("smpp1", "127.0.0.1", smsc.port, binds=1, rate=0)),
            on_inbound=no_inbound,
        )
        await manager.start()
        try:
            await manager.wait_bound(timeout=10)
            [result] = await manager.submit([SubmitSm(destination_addr="14155550101")])
        finally:
            await manager.stop(2)
    assert result.status is expected
    assert result.command_status is status
    assert result.possible_duplicate is False
    assert result.attempts == sends
    assert len(smsc.of_type(SubmitSm)) == sends


# --- item: no reconnect storm against an SMSC that unbinds every bind at once -----------------


class ShortLivedSession:
    """A session the SMSC unbinds right after accepting its bind."""

    def __init__(self, lifetime: float) -> None:
        self.bound = True
        self.closed = False
        loop = asyncio.get_running_loop()
        self._closed: asyncio.Future[BaseException | None] = loop.create_future()
        loop.call_later(lifetime, self.abort)

    async def submit(self, pdu: SubmitSm | DataSm) -> SubmitSmResp | DataSmResp:
        raise SessionClosedError("unbound")

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.bound, self.closed = False, True
            self._closed.set_result(LinkLostError("unbound by the SMSC"))

    async def wait_closed(self) -> BaseException | None:
        return await self._closed


async def binds_in(seconds: float, lifetime: float, **kwargs: object) -> list[float]:
    """Run a manager for ``seconds`` of virtual time against binds that live ``lifetime``;
    return the times of its bind attempts."""
    clock = VirtualClock()
    attempts: list[float] = []

    async def connect(settings: SessionSettings, **_: object) -> ShortLivedSession:
        attempts.append(clock.now)
        await asyncio.sleep(0.001)
        return ShortLivedSession(lifetime)

    with clock.install():
        manager = BindManager(
            manager_settings(
                ServerSettings("smpp1", "10.0.0.1", 3634, binds=1, rate=0),
                reconnect_min=1.0,
                reconnect_max=60.0,
                **kwargs,
            ),
            on_inbound=no_inbound,
            session_factory=connect,
            clock=clock.time,
            rng=random.Random(5),
        )
        start = clock.now
        await manager.start()
        await asyncio.sleep(seconds)
        await manager.stop(1)
    return [t - start for t in attempts]


async def test_binds_unbound_as_soon_as_they_bind_back_off_instead_of_storming() -> None:
    """An SMSC that accepts each bind and unbinds it at once (as smpp34's server does for an
    account it does not know) got 199 bind cycles in 22 s: a bind that bound counted as a
    success, so the next reconnect came after at most reconnect_min. A bind lost within
    stable_after (10 s) of binding is now a failure, and the reconnects back off
    exponentially (full jitter, doubling from reconnect_min)."""
    attempts = await binds_in(20.0, lifetime=0.01)
    assert 3 <= len(attempts) <= 8, attempts
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    ceilings = [min(60.0, 2.0**k) for k in range(len(gaps))]
    assert all(gap <= ceiling + 0.1 for gap, ceiling in zip(gaps, ceilings, strict=True))


async def test_a_bind_that_proved_stable_reconnects_at_once_after_a_drop() -> None:
    """Binds living longer than stable_after are not failures: each drop gets only the short
    jittered pause (at most reconnect_min), however many times it happens."""
    attempts = await binds_in(120.0, lifetime=11.0)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(gaps) >= 9
    assert all(gap <= 11.0 + 1.0 + 0.1 for gap in gaps), gaps


async def test_simulator_unbind_after_bind_gets_a_backed_off_trickle_of_binds() -> None:
    """The same fault from the simulator (``--unbind-after-bind``), over loopback and real time:
    with reconnect_min at 50 ms the old manager rebound about 40 times a second."""
    settings = SimulatorSettings(
        servers=1, tls=False, faults=FaultSettings(unbind_after_bind=True), seed=1
    )
    async with Simulator(settings) as sim:
        manager = BindManager(
            manager_settings(
                ServerSettings("smpp1", "127.0.0.1", sim.servers[0].plain_port, binds=1, rate=0),
                reconnect_min=0.05,
                reconnect_max=2.0,
            ),
            on_inbound=no_inbound,
            rng=random.Random(5),
        )
        await manager.start()
        await asyncio.sleep(1.5)
        await manager.stop(1)
        assert 2 <= sim.stats.unbinds_after_bind == sim.stats.binds_accepted <= 12


# --- item: a frozen SMSC (TCP open, nothing read or answered) is seen dying --------------------


def frozen_settings(port: int, **kwargs: object) -> SessionSettings:
    base: dict[str, object] = {
        "system_id": "smppgw",
        "password": "secret",
        "response_timeout": 0.5,
        "enquire_link_interval": 0.4,
    }
    base.update(kwargs)
    return session_settings(port, **base)


@contextlib.asynccontextmanager
async def one_server(**kwargs: Any) -> AsyncIterator[Simulator]:
    settings = SimulatorSettings(
        servers=1,
        tls=False,
        accounts=(Account("smppgw", "secret", rate_per_server=0),),
        dlr_outcomes=(("DELIVRD", 0, 1.0),),
        record_destinations=True,
        **kwargs,
    )
    async with Simulator(settings) as sim:
        yield sim


async def outcome(task: asyncio.Future[SubmitSmResp | DataSmResp]) -> str:
    try:
        await task
    except NotSentError:
        return "not sent"
    except ResponseTimeoutError:
        return "timeout"
    except LinkLostError:
        return "link lost"
    return "answered"


async def test_a_stream_of_submits_no_longer_keeps_a_frozen_link_alive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A frozen SMSC (simulated by SIGSTOP for 90 s) was never declared dead: enquire_link was
    scheduled from the last PDU *sent*, so the submits kept postponing it, and a response
    timeout counted against nothing. Now the silence of the peer is what counts: the link is
    probed and dropped, and the freeze is logged at WARNING."""
    async with one_server() as sim:
        session = await Session.connect(frozen_settings(sim.servers[0].plain_port))
        sim.set_server_frozen(0, frozen=True)
        tasks: list[asyncio.Task[SubmitSmResp | DataSmResp]] = []
        with caplog.at_level(logging.WARNING, logger="smppgw.esme.session"):
            async with asyncio.timeout(10):
                while not session.closed:
                    if session.window_free:
                        tasks.append(asyncio.ensure_future(session.submit(numbered(len(tasks)))))
                    await asyncio.sleep(0.05)
        outcomes = Counter([await outcome(t) for t in tasks])
        assert "looks frozen" in caplog.text
        assert outcomes["answered"] == 0
        assert sim.stats.received_submits == 0


def numbered(i: int, size: int = 0) -> SubmitSm:
    return SubmitSm(
        source_addr="ACME",
        destination_addr=f"4477009{i:05d}",
        short_message=b"x" * size,
        registered_delivery=RegisteredDelivery.FINAL,
    )


async def test_submits_never_written_to_a_frozen_smsc_are_not_sent_and_the_rest_are_unknown() -> (
    None
):
    """A submit still in our write buffer (the frozen SMSC's TCP window closed) when the link
    was dropped ended UNKNOWN and was resubmitted as a possible duplicate, although it never
    reached the SMSC: with short timers 305 messages ended UNKNOWN that way. It is not sent
    (NotSentError: the bind manager puts it back in the queue); a submit the SMSC may have
    read is unknown. The SMSC, thawed, processes only submits reported unknown."""
    async with one_server() as sim:
        session = await Session.connect(
            frozen_settings(sim.servers[0].plain_port, window=1000, response_timeout=1.0)
        )
        sock = session._transport.get_extra_info("socket") if session._transport else None
        assert sock is not None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sim.set_server_frozen(0, frozen=True)
        # 8 MB of submits: more than any TCP buffers between us and a reader that stopped.
        payload = (Tlv(Tag.MESSAGE_PAYLOAD, b"x" * 8000),)
        pdus = [dataclasses.replace(numbered(i), tlvs=payload) for i in range(1000)]
        tasks = [asyncio.ensure_future(session.submit(pdu)) for pdu in pdus]
        async with asyncio.timeout(20):
            outcomes = [await outcome(t) for t in tasks]
        assert session.closed
        counts = Counter(outcomes)
        assert counts["answered"] == 0
        assert counts["not sent"] > 0
        not_sent = {
            p.destination_addr for p, o in zip(pdus, outcomes, strict=True) if o == "not sent"
        }
        sim.set_server_frozen(0, frozen=False)
        await asyncio.sleep(0.5)  # the thawed SMSC reads what reached it
        assert not_sent.isdisjoint(sim.stats.accepted_by_destination)
        assert sim.stats.received_submits <= counts["timeout"] + counts["link lost"]


async def test_an_idle_link_to_a_frozen_smsc_is_dropped_after_enquire_link_goes_unanswered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with one_server() as sim:
        session = await Session.connect(frozen_settings(sim.servers[0].plain_port))
        sim.set_server_frozen(0, frozen=True)
        with caplog.at_level(logging.WARNING, logger="smppgw.esme.session"):
            async with asyncio.timeout(10):
                cause = await session.wait_closed()
        assert "enquire_link got no response" in str(cause)
        assert "dropping the link" in caplog.text


async def test_a_thawed_smsc_that_answers_the_probe_keeps_the_link() -> None:
    """A single lost response is not a dead link: the enquire_link after the timeout is
    answered and the session stays bound."""
    async with one_server(faults=FaultSettings(stall_ratio=1.0), seed=3) as sim:
        session = await Session.connect(frozen_settings(sim.servers[0].plain_port))
        try:
            with pytest.raises(ResponseTimeoutError):
                await session.submit(numbered(1))
            await asyncio.sleep(1.5)  # probe sent and answered; quiet probes answered too
            assert session.bound
            assert not session.closed
        finally:
            session.abort()


async def test_bind_manager_through_a_frozen_server_ends_no_message_unknown() -> None:
    """Server 1 of 2 freezes mid-stream. Before, its links were never found dead, each unanswered
    submit was resubmitted once to the same frozen link and ended UNKNOWN (60 messages in the
    field run, 30 of them sent twice). Now: every message is accepted; a resubmission never goes
    to the link that left it unanswered (nor to its frozen server while another is bound), and
    every message the thawed SMSC ends up accepting twice was flagged possible_duplicate."""
    settings = SimulatorSettings(
        servers=2,
        tls=False,
        accounts=(Account("smppgw", "secret", max_binds_per_server=3, rate_per_server=0),),
        dlr_outcomes=(("DELIVRD", 0, 1.0),),
        record_destinations=True,
    )
    async with Simulator(settings) as sim:
        servers = tuple(
            ServerSettings(info.name, "127.0.0.1", info.plain_port, binds=2, rate=0)
            for info in sim.servers
        )
        manager = BindManager(
            manager_settings(
                *servers,
                response_timeout=1.0,
                enquire_link_interval=0.8,
                connect_timeout=0.5,
                bind_timeout=0.5,
            ),
            on_inbound=no_inbound,
            rng=random.Random(2),
        )
        await manager.start()
        try:
            await manager.wait_bound(timeout=10)
            sim.set_server_frozen(0, frozen=True)
            async with asyncio.timeout(60):
                results = await asyncio.gather(*(manager.submit([numbered(i)]) for i in range(300)))
        finally:
            await manager.stop(2)
        sim.set_server_frozen(0, frozen=False)
        await asyncio.sleep(0.5)  # the thawed server reads what reached it
    parts = [r[0] for r in results]
    assert Counter(p.status for p in parts) == {PartStatus.ACCEPTED: 300}
    assert all(p.server == "smpp2" for p in parts if p.possible_duplicate)
    twice = {d for d, n in sim.stats.accepted_by_destination.items() if n > 1}
    flagged = {numbered(i).destination_addr for i, p in enumerate(parts) if p.possible_duplicate}
    assert twice <= flagged
    assert len(sim.stats.accepted_by_destination) == 300


async def test_a_real_sigstop_of_the_simulator_process_is_seen_as_a_freeze(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The field fault itself: the SMSC process is stopped (SIGSTOP), its sockets stay open and
    the kernel keeps accepting octets for it. The session finds the link dead within
    response_timeout + response_timeout of its first unanswered submit, logs the freeze, and
    binds again once the process goes on (SIGCONT)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smppgw",
        "simulate",
        "--servers",
        "1",
        "--no-tls",
        "--rate",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    stopped = False
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        port = int(line.rsplit("plain port ", 1)[1].split(",")[0])
        settings = frozen_settings(port, password="localsim")
        session = await Session.connect(settings)
        os.kill(proc.pid, signal.SIGSTOP)
        stopped = True
        with caplog.at_level(logging.WARNING, logger="smppgw.esme.session"):
            tasks = [asyncio.ensure_future(session.submit(numbered(i))) for i in range(5)]
            async with asyncio.timeout(10):
                cause = await session.wait_closed()
                outcomes = Counter([await outcome(t) for t in tasks])
        assert "looks frozen" in caplog.text
        assert "after a response timeout" in str(cause)
        assert outcomes == {"timeout": 5}
        os.kill(proc.pid, signal.SIGCONT)
        stopped = False
        async with asyncio.timeout(10):
            again = await Session.connect(settings)
        await again.close(2)
    finally:
        if stopped:
            os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        await proc.wait()


async def test_simulate_freeze_flag_freezes_a_server_for_its_spell_then_thaws_it() -> None:
    args = build_parser().parse_args(["--freeze", "1:0:0.5", "--unbind-after-bind"])
    assert args.freeze == [(1, 0.0, 0.5)]
    assert settings_from_args(args).faults.unbind_after_bind
    async with one_server() as sim:
        spell = asyncio.create_task(run_outages(sim, [], args.freeze))
        await asyncio.sleep(0.1)
        with pytest.raises(BindError):  # accepted by TCP, never answered
            await Session.connect(frozen_settings(sim.servers[0].plain_port, bind_timeout=0.2))
        await spell
        session = await Session.connect(frozen_settings(sim.servers[0].plain_port))
        await session.close(2)


async def test_a_resubmission_waits_for_the_frozen_server_instead_of_its_other_frozen_link() -> (
    None
):
    """One server, two links, both frozen at once. A part left unanswered on one link was
    resubmitted on the other, just as frozen, and ended UNKNOWN. It now waits until the links
    are found dead and bound again after the thaw, and is accepted."""
    async with one_server() as sim:
        info = sim.servers[0]
        manager = BindManager(
            manager_settings(
                ServerSettings(info.name, "127.0.0.1", info.plain_port, binds=2, rate=0),
                response_timeout=1.0,
                enquire_link_interval=0.8,
                connect_timeout=0.5,
                bind_timeout=0.5,
            ),
            on_inbound=no_inbound,
            rng=random.Random(4),
        )
        await manager.start()
        try:
            await manager.wait_bound(timeout=10)
            sim.set_server_frozen(0, frozen=True)
            submits = asyncio.gather(*(manager.submit([numbered(i)]) for i in range(20)))
            await asyncio.sleep(3.0)
            sim.set_server_frozen(0, frozen=False)
            async with asyncio.timeout(30):
                results = await submits
        finally:
            await manager.stop(2)
    parts = [r[0] for r in results]
    assert Counter(p.status for p in parts) == {PartStatus.ACCEPTED: 20}
    twice = {d for d, n in sim.stats.accepted_by_destination.items() if n > 1}
    flagged = {numbered(i).destination_addr for i, p in enumerate(parts) if p.possible_duplicate}
    assert twice <= flagged


async def test_a_submit_made_while_the_link_is_in_doubt_waits_and_is_not_sent_if_it_dies() -> None:
    """After a response timeout, submits kept going out on the frozen link until it was found
    dead, each one more message the SMSC might process after its thaw: a duplicate once it is
    resubmitted (57 in a 90 s freeze with the default timers). A submit made while the probe
    after a timeout is unanswered now waits for its verdict; the link dies, the submit was
    never written (NotSentError) and the thawed SMSC never sees it."""
    async with one_server() as sim:
        session = await Session.connect(
            frozen_settings(sim.servers[0].plain_port, enquire_link_interval=30.0)
        )
        sim.set_server_frozen(0, frozen=True)
        with pytest.raises(ResponseTimeoutError):
            await session.submit(numbered(1))
        second = asyncio.ensure_future(session.submit(numbered(2)))
        async with asyncio.timeout(10):
            assert await outcome(second) == "not sent"
        assert session.closed
        sim.set_server_frozen(0, frozen=False)
        await asyncio.sleep(0.3)  # the thawed SMSC reads what reached it
        assert numbered(2).destination_addr not in sim.stats.accepted_by_destination


async def test_a_submit_held_in_doubt_goes_out_once_the_probe_is_answered() -> None:
    async with one_server(faults=FaultSettings(stall_ratio=1.0), seed=3) as sim:
        session = await Session.connect(
            frozen_settings(sim.servers[0].plain_port, enquire_link_interval=30.0)
        )
        try:
            with pytest.raises(ResponseTimeoutError):
                await session.submit(numbered(1))
            with pytest.raises(ResponseTimeoutError):  # held, then sent: the SMSC stalls it too
                await session.submit(numbered(2))
            assert sim.stats.stalled == 2
            assert session.bound
        finally:
            session.abort()
