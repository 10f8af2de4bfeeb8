"""BindManager against fake sessions, in virtual time (no sockets, no sleeps, no wall clock).

The event loop's clock and its selector are replaced for each test so that the loop jumps
straight to its next timer: a test of minutes of backoff runs in milliseconds and is exact.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from virtual_time import VirtualClock

from smppgw.codec.constants import CommandStatus
from smppgw.codec.pdu import DataSm, DataSmResp, DeliverSm, SubmitSm, SubmitSmResp
from smppgw.esme.binds import (
    BindManager,
    BindManagerSettings,
    BindSettingsError,
    BindState,
    CircuitState,
    ManagerStoppedError,
    PartResult,
    PartStatus,
    ServerSettings,
)
from smppgw.esme.observe import NULL_OBSERVER, Observer, RecordingObserver
from smppgw.esme.retry_policy import StatusClass, UnknownPolicy
from smppgw.esme.session import (
    BindType,
    ConnectError,
    InboundHandler,
    LinkLostError,
    ResponseTimeoutError,
    SessionClosedError,
    SessionSettings,
)

# --- virtual time ---------------------------------------------------------------------------


@pytest.fixture
async def vclock() -> AsyncIterator[VirtualClock]:
    clock = VirtualClock()
    with clock.install():
        yield clock


# --- a fake SMSC and its sessions ------------------------------------------------------------

Verdict = CommandStatus | str  # a status, "stall" (no response) or "drop" (link lost)


@dataclass
class Sent:
    at: float
    server: str
    bind: str
    text: bytes


@dataclass
class FakeSmsc:
    """Every fake session's far end: scripted verdicts, and a log of what arrived when."""

    clock: VirtualClock
    latency: float = 0.01
    latencies: dict[bytes, float] = field(default_factory=dict)  # per message, else latency
    verdict: Callable[[str, bytes, int], Verdict] = lambda _s, _t, _n: CommandStatus.ESME_ROK
    down: set[str] = field(default_factory=set)
    sent: list[Sent] = field(default_factory=list)
    sessions: list[FakeSession] = field(default_factory=list)
    connects: list[tuple[float, str]] = field(default_factory=list)
    seen: Counter[bytes] = field(default_factory=Counter)

    async def connect(
        self,
        settings: SessionSettings,
        *,
        on_inbound: InboundHandler | None = None,
        observer: Observer = NULL_OBSERVER,
        clock: Callable[[], float] = time.monotonic,
    ) -> FakeSession:
        self.connects.append((self.clock.now, settings.server))
        await asyncio.sleep(0.001)
        if settings.server in self.down:
            raise ConnectError(f"connect to {settings.host}:{settings.port} refused")
        session = FakeSession(self, settings, on_inbound, observer)
        self.sessions.append(session)
        return session

    def live(self, server: str | None = None) -> list[FakeSession]:
        return [s for s in self.sessions if not s.closed and server in (None, s.server)]

    def set_down(self, server: str) -> None:
        self.down.add(server)
        for session in self.live(server):
            session.drop()

    def per_second(self, server: str) -> int:
        """The most submits to ``server`` in any 1-second window (exact, half-open)."""
        times = sorted(s.at for s in self.sent if s.server == server)
        return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


class FakeSession:
    def __init__(
        self,
        smsc: FakeSmsc,
        settings: SessionSettings,
        on_inbound: InboundHandler | None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self.smsc = smsc
        self.observer = observer  # reports unanswered submits, as Session does
        self.settings = settings
        self.server = settings.server
        self.name = settings.name
        self.on_inbound = on_inbound
        self.bound = True
        self.closed = False
        self.in_flight = 0
        self.max_in_flight = 0
        self.pending: set[asyncio.Future[SubmitSmResp | DataSmResp]] = set()
        self.closed_future: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future()
        )
        self.close_calls: list[float | None] = []

    async def submit(self, pdu: SubmitSm | DataSm) -> SubmitSmResp | DataSmResp:
        if self.closed:
            raise SessionClosedError(f"{self.name} is closed")
        assert isinstance(pdu, SubmitSm)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        assert self.in_flight <= self.settings.window
        smsc = self.smsc
        smsc.sent.append(Sent(smsc.clock.now, self.server, self.name, pdu.short_message))
        smsc.seen[pdu.short_message] += 1
        verdict = smsc.verdict(self.server, pdu.short_message, smsc.seen[pdu.short_message])
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SubmitSmResp | DataSmResp] = loop.create_future()
        self.pending.add(future)
        if verdict == "stall":
            loop.call_later(self.settings.response_timeout, self._time_out, future)
        elif isinstance(verdict, str):  # "drop"
            loop.call_later(smsc.latency, self.drop)
        else:
            status = CommandStatus(verdict)
            message_id = f"{self.server}-{len(smsc.sent)}" if status == 0 else ""
            response = SubmitSmResp(command_status=status, message_id=message_id)
            latency = smsc.latencies.get(pdu.short_message, smsc.latency)
            loop.call_later(latency, self._answer, future, response)
        try:
            return await future
        finally:
            self.pending.discard(future)
            self.in_flight -= 1

    @staticmethod
    def _answer(future: asyncio.Future[SubmitSmResp | DataSmResp], response: SubmitSmResp) -> None:
        if not future.done():
            future.set_result(response)

    @staticmethod
    def _fail(future: asyncio.Future[SubmitSmResp | DataSmResp], exc: Exception) -> None:
        if not future.done():
            future.set_exception(exc)

    def _time_out(self, future: asyncio.Future[SubmitSmResp | DataSmResp]) -> None:
        if not future.done():
            future.set_exception(ResponseTimeoutError("no submit_sm_resp"))
            self.observer.submit_unknown(self.server, self.name, "timeout")

    def drop(self) -> None:
        if self.closed:
            return
        self.closed, self.bound = True, False
        for future in list(self.pending):
            if not future.done():
                self.observer.submit_unknown(self.server, self.name, "link_lost")
            self._fail(future, LinkLostError("link lost"))
        self.closed_future.set_result(LinkLostError("link lost"))

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self.close_calls.append(timeout)
        self.bound = False
        if self.pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*self.pending, return_exceptions=True)
        self.drop()

    def abort(self) -> None:
        self.drop()

    async def wait_closed(self) -> BaseException | None:
        return await self.closed_future


# --- helpers ---------------------------------------------------------------------------------


def settings(**overrides: Any) -> BindManagerSettings:
    servers = overrides.pop(
        "servers",
        (
            ServerSettings("smpp1", "127.0.0.1", 3634, rate=overrides.pop("rate", 0.0)),
            ServerSettings("smpp2", "127.0.0.2", 3634, rate=overrides.pop("rate2", 0.0)),
        ),
    )
    base: dict[str, Any] = {
        "servers": servers,
        "system_id": "smppgw",
        "password": "secret",
        "response_timeout": 5.0,
        "reconnect_min": 1.0,
        "reconnect_max": 30.0,
        "retry_delay": 2.0,
        "max_attempts": 4,
    }
    base.update(overrides)
    return BindManagerSettings(**base)


def part(text: str) -> SubmitSm:
    return SubmitSm(destination_addr="447700900000", short_message=text.encode())


async def no_inbound(pdu: DeliverSm | DataSm) -> CommandStatus:
    return CommandStatus.ESME_ROK


@contextlib.asynccontextmanager
async def running(
    smsc: FakeSmsc, config: BindManagerSettings, **kwargs: Any
) -> AsyncIterator[BindManager]:
    kwargs.setdefault("on_inbound", no_inbound)
    manager = BindManager(
        config,
        session_factory=smsc.connect,
        clock=smsc.clock.time,
        rng=random.Random(7),
        **kwargs,
    )
    await manager.start()
    try:
        await manager.wait_bound(timeout=5)
        yield manager
    finally:
        await manager.stop(timeout=1)


# --- tests -----------------------------------------------------------------------------------


async def test_every_configured_bind_comes_up_with_its_own_settings(vclock: VirtualClock) -> None:
    smsc = FakeSmsc(vclock)
    servers = (
        ServerSettings("smpp1", "10.0.0.1", 3634, binds=3),
        ServerSettings(
            "smpp2",
            "10.0.0.2",
            3635,
            binds=2,
            bind_type=(BindType.TRANSMITTER, BindType.RECEIVER),
        ),
    )
    config = settings(servers=servers, window=7, idle_timeout=120.0, enquire_link_interval=45.0)
    async with asyncio.timeout(10), running(smsc, config) as manager:
        names = sorted(s.settings.name for s in smsc.sessions)
        assert names == ["smpp1/trx-0", "smpp1/trx-1", "smpp1/trx-2", "smpp2/rx-1", "smpp2/tx-0"]
        rx = next(s for s in smsc.sessions if s.name == "smpp2/rx-1").settings
        assert (rx.host, rx.port, rx.bind_type, rx.window) == (
            "10.0.0.2",
            3635,
            BindType.RECEIVER,
            7,
        )
        assert (rx.idle_timeout, rx.enquire_link_interval) == (120.0, 45.0)
        assert (rx.system_id, rx.password, rx.system_type, rx.server) == (
            "smppgw",
            "secret",
            "smpp",
            "smpp2",
        )
        assert {s.state for s in manager.status()} == {BindState.BOUND}
        # A receiver bind never carries a submit.
        await asyncio.gather(*(manager.submit([part(f"m{i}")]) for i in range(40)))
        assert "smpp2/rx-1" not in {s.bind for s in smsc.sent}
        assert {s.bind for s in smsc.sent} == {
            "smpp1/trx-0",
            "smpp1/trx-1",
            "smpp1/trx-2",
            "smpp2/tx-0",
        }


async def test_each_server_stays_within_its_rate_in_every_one_second_window(
    vclock: VirtualClock,
) -> None:
    smsc = FakeSmsc(vclock, latency=0.05)
    config = settings(rate=20.0, rate2=20.0)
    async with asyncio.timeout(60), running(smsc, config) as manager:
        start = vclock.now
        queue = list(range(400))

        async def worker() -> None:
            while queue:
                result = await manager.submit([part(f"m{queue.pop(0)}")])
                assert result[0].status is PartStatus.ACCEPTED

        await asyncio.gather(*(worker() for _ in range(30)))
        elapsed = vclock.now - start
    assert smsc.per_second("smpp1") <= 20
    assert smsc.per_second("smpp2") <= 20
    per_server = Counter(s.server for s in smsc.sent)
    assert abs(per_server["smpp1"] - per_server["smpp2"]) <= 2  # load is spread
    # ... and the limit is used, not just respected: 400 at 2 x 20/1.02 per second.
    assert elapsed == pytest.approx(400 / (40 / 1.02), rel=0.03)


async def test_window_is_never_exceeded_and_all_binds_share_the_load(vclock: VirtualClock) -> None:
    smsc = FakeSmsc(vclock, latency=0.5)
    async with asyncio.timeout(60), running(smsc, settings(window=2)) as manager:
        start = vclock.now
        results = await asyncio.gather(*(manager.submit([part(f"m{i}")]) for i in range(120)))
        elapsed = vclock.now - start
    assert all(r[0].status is PartStatus.ACCEPTED for r in results)
    assert max(s.max_in_flight for s in smsc.sessions) == 2
    assert Counter(s.bind for s in smsc.sent) == dict.fromkeys(
        {s.bind for s in smsc.sent}, 20
    )  # 6 binds x 20
    # 6 binds x window 2 = 12 at a time, 0.5 s each: 10 rounds.
    assert elapsed == pytest.approx(5.0, abs=0.05)


async def test_a_server_down_from_the_start_leaves_traffic_on_the_other(
    vclock: VirtualClock,
) -> None:
    smsc = FakeSmsc(vclock, down={"smpp1"})
    observer = RecordingObserver()
    manager = BindManager(
        settings(rate=10.0, rate2=10.0),
        on_inbound=no_inbound,
        session_factory=smsc.connect,
        clock=vclock.time,
        observer=observer,
        rng=random.Random(3),
    )
    async with asyncio.timeout(300):
        await manager.start()
        await manager.wait_bound(3)
        results = await asyncio.gather(*(manager.submit([part(f"m{i}")]) for i in range(50)))
        assert {r[0].server for r in results} == {"smpp2"}
        assert smsc.per_second("smpp2") <= 10
        states = {s.server: s.server_state for s in manager.status()}
        assert states["smpp1"] in (CircuitState.DOWN, CircuitState.PROBING)
        assert states["smpp2"] is CircuitState.UP
        # After the first failed round (all three binds), each retry is a single probe, and
        # the gaps between probes grow (exponential backoff with full jitter, capped).
        await asyncio.sleep(120)
        attempts = [t for t, server in smsc.connects if server == "smpp1"]
        first_round = [t for t in attempts if t == attempts[0]]
        assert len(first_round) == 3
        probes = attempts[3:]
        assert len(probes) >= 5
        assert len(set(probes)) == len(probes)  # one at a time
        gaps = [b - a for a, b in zip(attempts[2:], probes, strict=False)]
        ceilings = [min(30.0, 2.0**k) for k in range(len(gaps))]
        assert all(gap <= ceiling + 0.01 for gap, ceiling in zip(gaps, ceilings, strict=True))
        assert observer.total("reconnect") >= 3 + len(probes)
        # The server comes back: the probe binds, then the other two follow at once.
        smsc.down.clear()
        await manager.wait_bound(6, timeout=40)
        assert {s.state for s in manager.status()} == {BindState.BOUND}
        assert {s.server_state for s in manager.status()} == {CircuitState.UP}
        results = await asyncio.gather(*(manager.submit([part(f"n{i}")]) for i in range(40)))
        assert {r[0].server for r in results} == {"smpp1", "smpp2"}
        await manager.stop(timeout=1)


async def test_link_lost_mid_run_loses_nothing_and_binds_come_back(vclock: VirtualClock) -> None:
    smsc = FakeSmsc(vclock, latency=0.2)
    observer = RecordingObserver()
    async with (
        asyncio.timeout(120),
        running(smsc, settings(rate=20.0, rate2=20.0), observer=observer) as manager,
    ):

        async def kill_smpp1_later() -> None:
            await asyncio.sleep(2.0)
            smsc.set_down("smpp1")
            await asyncio.sleep(5.0)
            smsc.down.clear()

        killer = asyncio.create_task(kill_smpp1_later())
        results = await asyncio.gather(*(manager.submit([part(f"m{i}")]) for i in range(300)))
        await killer
        await manager.wait_bound(6, timeout=60)
    statuses = Counter(r[0].status for r in results)
    assert statuses == {PartStatus.ACCEPTED: 300}
    # Parts in flight on smpp1 when it died were resubmitted once and flagged.
    lost = [r[0] for r in results if r[0].possible_duplicate]
    assert lost
    assert all(r.attempts == 2 for r in lost)
    assert observer.total("submit_unknown") == len(lost)
    assert sum(1 for r in results if r[0].server == "smpp2") > 150
    assert smsc.per_second("smpp1") <= 20
    assert smsc.per_second("smpp2") <= 20


async def test_throttling_pauses_that_server_and_requeues_without_failing(
    vclock: VirtualClock,
) -> None:
    throttled_at: list[float] = []

    def verdict(server: str, text: bytes, n: int) -> Verdict:
        # smpp1 throttles everything during [1, 4) s of the run.
        if server == "smpp1" and 1.0 <= vclock.now - t0 < 4.0:
            throttled_at.append(vclock.now - t0)
            return CommandStatus.ESME_RTHROTTLED
        return CommandStatus.ESME_ROK

    smsc = FakeSmsc(vclock, latency=0.05, verdict=verdict)
    observer = RecordingObserver()
    config = settings(rate=20.0, rate2=20.0, throttle_backoff=0.5)
    async with (
        asyncio.timeout(120),
        running(smsc, config, observer=observer) as manager,
    ):
        t0 = vclock.now
        results = await asyncio.gather(*(manager.submit([part(f"m{i}")]) for i in range(240)))
    assert all(r[0].status is PartStatus.ACCEPTED for r in results)
    assert observer.total("throttled") == len(throttled_at) > 0
    # Pauses of 0.5, 1, 2 s...: after each throttle, smpp1 gets nothing until the pause ends,
    # so only a few submits meet the throttled period, not 20/s of it.
    assert len(throttled_at) < 15
    throttled = [r[0] for r in results if r[0].attempts > 1]
    assert throttled
    assert all(r.command_status == CommandStatus.ESME_ROK for r in throttled)
    assert smsc.per_second("smpp2") <= 20


async def test_a_throttled_part_is_resent_before_parts_queued_after_it(
    vclock: VirtualClock,
) -> None:
    def verdict(server: str, text: bytes, n: int) -> Verdict:
        return CommandStatus.ESME_RTHROTTLED if text == b"A" and n == 1 else CommandStatus.ESME_ROK

    smsc = FakeSmsc(vclock, verdict=verdict)
    servers = (ServerSettings("smpp1", "h", 1, binds=1),)
    async with (
        asyncio.timeout(60),
        running(smsc, settings(servers=servers, window=1, throttle_backoff=1.0)) as manager,
    ):
        tasks = [asyncio.create_task(manager.submit([part(t)])) for t in "ABCD"]
        await asyncio.gather(*tasks)
    assert [s.text for s in smsc.sent] == [b"A", b"A", b"B", b"C", b"D"]
    assert smsc.sent[1].at - smsc.sent[0].at == pytest.approx(1.0 + smsc.latency, abs=0.01)


async def test_throttle_pause_doubles_only_on_fresh_evidence(vclock: VirtualClock) -> None:
    def verdict(server: str, text: bytes, n: int) -> Verdict:
        return CommandStatus.ESME_RTHROTTLED if n <= 4 else CommandStatus.ESME_ROK

    smsc = FakeSmsc(vclock, verdict=verdict)
    servers = (ServerSettings("smpp1", "h", 1, binds=1),)
    config = settings(servers=servers, window=1, throttle_backoff=1.0, throttle_backoff_max=3.0)
    async with asyncio.timeout(60), running(smsc, config) as manager:
        (result,) = await manager.submit([part("x")])
    times = [s.at for s in smsc.sent]
    gaps = [round(b - a - smsc.latency, 3) for a, b in itertools.pairwise(times)]
    assert gaps == [1.0, 2.0, 3.0, 3.0]  # doubling, capped at throttle_backoff_max
    assert result.status is PartStatus.ACCEPTED
    assert result.attempts == 5  # throttles do not count against max_attempts (4)


async def test_transient_status_is_retried_after_retry_delay(vclock: VirtualClock) -> None:
    def verdict(server: str, text: bytes, n: int) -> Verdict:
        return CommandStatus.ESME_RMSSQFUL if n <= 2 else CommandStatus.ESME_ROK

    smsc = FakeSmsc(vclock, verdict=verdict)
    async with asyncio.timeout(60), running(smsc, settings(retry_delay=2.0)) as manager:
        (result,) = await manager.submit([part("x")])
    assert result.status is PartStatus.ACCEPTED
    assert result.attempts == 3
    assert result.smsc_message_id is not None
    times = [s.at for s in smsc.sent]
    assert [round(b - a, 3) for a, b in itertools.pairwise(times)] == [2.01, 2.01]


async def test_transient_status_fails_after_max_attempts(vclock: VirtualClock) -> None:
    smsc = FakeSmsc(vclock, verdict=lambda _s, _t, _n: CommandStatus.ESME_RSYSERR)
    async with asyncio.timeout(60), running(smsc, settings(max_attempts=3)) as manager:
        (result,) = await manager.submit([part("x")])
    assert result.status is PartStatus.FAILED
    assert result.command_status is CommandStatus.ESME_RSYSERR
    assert result.attempts == 3
    assert len(smsc.sent) == 3
    assert not result.possible_duplicate


async def test_permanent_failure_stops_the_rest_of_the_message(vclock: VirtualClock) -> None:
    def verdict(server: str, text: bytes, n: int) -> Verdict:
        return CommandStatus.ESME_RINVDSTADR if text == b"p2" else CommandStatus.ESME_ROK

    smsc = FakeSmsc(vclock, verdict=verdict)
    seen: list[tuple[int, PartStatus, int]] = []

    async def on_part(index: int, result: PartResult) -> None:
        seen.append((index, result.status, len(smsc.sent)))

    async with asyncio.timeout(60), running(smsc, settings()) as manager:
        results = await manager.submit([part("p1"), part("p2"), part("p3")], on_part=on_part)
    assert [r.status for r in results] == [
        PartStatus.ACCEPTED,
        PartStatus.FAILED,
        PartStatus.FAILED,
    ]
    assert results[1].command_status is CommandStatus.ESME_RINVDSTADR
    assert results[1].attempts == 1
    assert results[2].attempts == 0
    assert results[2].command_status is None
    assert [s.text for s in smsc.sent] == [b"p1", b"p2"]
    # on_part ran after each outcome and before the next part was sent.
    assert seen == [
        (0, PartStatus.ACCEPTED, 1),
        (1, PartStatus.FAILED, 2),
        (2, PartStatus.FAILED, 2),
    ]


async def test_each_part_takes_a_token_and_parts_keep_their_order(vclock: VirtualClock) -> None:
    smsc = FakeSmsc(vclock, latency=0.001)
    servers = (ServerSettings("smpp1", "h", 1, rate=10.0),)
    async with asyncio.timeout(60), running(smsc, settings(servers=servers)) as manager:
        start = vclock.now
        results = await manager.submit([part(f"p{i}") for i in range(1, 21)])
        elapsed = vclock.now - start
    assert [s.text for s in smsc.sent] == [f"p{i}".encode() for i in range(1, 21)]
    assert all(r.status is PartStatus.ACCEPTED for r in results)
    assert elapsed == pytest.approx(19 * 1.02 / 10, abs=0.02)


@pytest.mark.parametrize(
    ("policy", "verdicts", "status", "attempts", "duplicate"),
    [
        (UnknownPolicy.RESUBMIT_ONCE, ["stall", "ok"], PartStatus.ACCEPTED, 2, True),
        (UnknownPolicy.RESUBMIT_ONCE, ["drop", "ok"], PartStatus.ACCEPTED, 2, True),
        (UnknownPolicy.RESUBMIT_ONCE, ["stall", "stall"], PartStatus.UNKNOWN, 2, True),
        (UnknownPolicy.NEVER, ["stall"], PartStatus.UNKNOWN, 1, False),
        (UnknownPolicy.ALWAYS, ["stall", "stall", "stall", "ok"], PartStatus.ACCEPTED, 4, True),
        (UnknownPolicy.ALWAYS, ["stall"] * 4, PartStatus.UNKNOWN, 4, True),
        # A refusal after an unknown attempt does not prove the first was not accepted.
        (UnknownPolicy.RESUBMIT_ONCE, ["stall", "perm"], PartStatus.UNKNOWN, 2, True),
        # Throttling after an unknown does not use up the one resubmission.
        (UnknownPolicy.RESUBMIT_ONCE, ["stall", "thr", "ok"], PartStatus.ACCEPTED, 3, True),
    ],
)
async def test_unknown_outcomes_follow_the_policy_and_are_never_silent(
    vclock: VirtualClock,
    *,
    policy: UnknownPolicy,
    verdicts: list[str],
    status: PartStatus,
    attempts: int,
    duplicate: bool,
) -> None:
    names: dict[str, Verdict] = {
        "ok": CommandStatus.ESME_ROK,
        "perm": CommandStatus.ESME_RINVSRCADR,
        "thr": CommandStatus.ESME_RTHROTTLED,
    }

    def verdict(server: str, text: bytes, n: int) -> Verdict:
        name = verdicts[n - 1]
        return names.get(name, name)

    smsc = FakeSmsc(vclock, verdict=verdict)
    observer = RecordingObserver()
    config = settings(unknown_policy=policy, response_timeout=5.0)
    async with asyncio.timeout(120), running(smsc, config, observer=observer) as manager:
        (result,) = await manager.submit([part("x")])
    assert (result.status, result.attempts, result.possible_duplicate) == (
        status,
        attempts,
        duplicate,
    )
    assert len(smsc.sent) == attempts
    unknowns = sum(1 for v in verdicts[:attempts] if v in ("stall", "drop"))
    assert observer.total("submit_unknown") == unknowns
    assert (result.reason != "") == (status is not PartStatus.ACCEPTED)


async def test_status_overrides_from_config_change_the_reaction(vclock: VirtualClock) -> None:
    smsc = FakeSmsc(vclock, verdict=lambda _s, _t, _n: CommandStatus.ESME_RSUBMITFAIL)
    config = settings(status_overrides={0x45: StatusClass.PERMANENT})
    async with asyncio.timeout(60), running(smsc, config) as manager:
        (result,) = await manager.submit([part("x")])
    assert (result.status, result.attempts) == (PartStatus.FAILED, 1)


async def test_a_vendor_status_defaults_to_transient(vclock: VirtualClock) -> None:
    smsc = FakeSmsc(vclock, verdict=lambda _s, _t, _n: CommandStatus(0x444))
    async with asyncio.timeout(60), running(smsc, settings(max_attempts=2)) as manager:
        (result,) = await manager.submit([part("x")])
    assert (result.status, result.attempts) == (PartStatus.FAILED, 2)
    assert result.command_status == 0x444


async def test_inbound_from_any_session_reaches_the_single_handler(vclock: VirtualClock) -> None:
    smsc = FakeSmsc(vclock)
    received: list[tuple[bytes, str]] = []

    async def on_inbound(pdu: DeliverSm | DataSm) -> CommandStatus:
        assert isinstance(pdu, DeliverSm)
        received.append((pdu.short_message, pdu.source_addr))
        return CommandStatus.ESME_ROK

    async with asyncio.timeout(60), running(smsc, settings(), on_inbound=on_inbound):
        statuses = []
        for session in smsc.sessions:
            assert session.on_inbound is not None
            statuses.append(
                await session.on_inbound(
                    DeliverSm(source_addr=session.name, short_message=b"id:1 stat:DELIVRD")
                )
            )
    assert statuses == [CommandStatus.ESME_ROK] * 6
    assert sorted(name for _, name in received) == sorted(s.name for s in smsc.sessions)


async def test_a_cancelled_submit_gives_back_its_window_slot(vclock: VirtualClock) -> None:
    smsc = FakeSmsc(vclock, latency=1.0)
    servers = (ServerSettings("smpp1", "h", 1, binds=1),)
    async with asyncio.timeout(60), running(smsc, settings(servers=servers, window=1)) as manager:
        first = asyncio.create_task(manager.submit([part("a")]))
        waiting = asyncio.create_task(manager.submit([part("b")]))
        await asyncio.sleep(0.1)
        waiting.cancel()  # cancelled while queued
        first.cancel()  # cancelled while in flight
        with pytest.raises(asyncio.CancelledError):
            await waiting
        with pytest.raises(asyncio.CancelledError):
            await first
        assert [s.in_flight for s in manager.status()] == [0]
        (result,) = await manager.submit([part("c")])
    assert result.status is PartStatus.ACCEPTED
    assert [s.text for s in smsc.sent] == [b"a", b"c"]


async def test_stop_drains_in_flight_submits_then_unbinds(vclock: VirtualClock) -> None:
    smsc = FakeSmsc(vclock, latency=0.5)
    manager = BindManager(
        settings(), on_inbound=no_inbound, session_factory=smsc.connect, clock=vclock.time
    )
    async with asyncio.timeout(60):
        await manager.start()
        await manager.wait_bound()
        in_flight = asyncio.create_task(manager.submit([part("a"), part("b")]))
        await asyncio.sleep(0.1)
        await manager.stop(timeout=5)
        (a, b) = in_flight.result()  # finished before stop returned
        assert (a.status, b.status) == (PartStatus.ACCEPTED, PartStatus.ACCEPTED)
        assert all(s.closed for s in smsc.sessions)
        assert {s.state for s in manager.status()} == {BindState.CLOSED}
        with pytest.raises(ManagerStoppedError):
            await manager.submit([part("late")])


async def test_stop_timeout_hands_back_unsent_parts(vclock: VirtualClock) -> None:
    smsc = FakeSmsc(vclock, latency=0.01)
    servers = (ServerSettings("smpp1", "h", 1, rate=1.0),)
    manager = BindManager(
        settings(servers=servers),
        on_inbound=no_inbound,
        session_factory=smsc.connect,
        clock=vclock.time,
    )
    async with asyncio.timeout(60):
        await manager.start()
        await manager.wait_bound()
        task = asyncio.create_task(manager.submit([part(f"p{i}") for i in range(10)]))
        await asyncio.sleep(1.5)
        await manager.stop(timeout=1.0)
        with pytest.raises(ManagerStoppedError) as caught:
            await task
    # At 1/1.02 per second, parts went out at 0, 1.015 and 2.035 s; stop came at 2.5 s and the
    # other seven were never sent.
    assert [r.status for r in caught.value.results] == [PartStatus.ACCEPTED] * 3
    assert len(smsc.sent) == 3


async def test_wait_bound_times_out_naming_the_counts(vclock: VirtualClock) -> None:
    smsc = FakeSmsc(vclock, down={"smpp1", "smpp2"})
    manager = BindManager(
        settings(), on_inbound=no_inbound, session_factory=smsc.connect, clock=vclock.time
    )
    async with asyncio.timeout(60):
        await manager.start()
        with pytest.raises(TimeoutError, match="0 of 6 binds bound after 3 s"):
            await manager.wait_bound(timeout=3)
        await manager.stop(timeout=1)


def test_bad_settings_are_refused_naming_the_key() -> None:
    with pytest.raises(BindSettingsError, match="rate"):
        ServerSettings("s", "h", 1, rate=-1)
    with pytest.raises(BindSettingsError, match="burst"):
        ServerSettings("s", "h", 1, burst=0)
    with pytest.raises(BindSettingsError, match="bind_type lists 1 types for 3 binds"):
        ServerSettings("s", "h", 1, bind_type=(BindType.TRANSMITTER,))
    with pytest.raises(BindSettingsError, match="servers"):
        BindManagerSettings(servers=(), system_id="a", password="b")
    with pytest.raises(BindSettingsError, match="unique"):
        BindManagerSettings(
            servers=(ServerSettings("s", "h", 1), ServerSettings("s", "h", 2)),
            system_id="a",
            password="b",
        )
    with pytest.raises(BindSettingsError, match="window"):
        settings(window=0)
    with pytest.raises(BindSettingsError, match="reconnect_min"):
        settings(reconnect_min=10.0, reconnect_max=1.0)
    assert "secret" not in repr(settings())


def test_server_bucket_applies_the_jitter_allowance() -> None:
    bucket = ServerSettings("s", "h", 1, rate=50.0).token_bucket(lambda: 0.0)
    assert bucket.rate == pytest.approx(50.0 / 1.02)
    unlimited = ServerSettings("s", "h", 1, rate=0.0).token_bucket(lambda: 0.0)
    assert all(unlimited.try_take(0.0) == 0.0 for _ in range(1000))


async def test_a_closing_session_is_skipped_without_spending_an_attempt(
    vclock: VirtualClock,
) -> None:
    smsc = FakeSmsc(vclock)
    servers = (ServerSettings("smpp1", "h", 1, binds=2),)
    async with asyncio.timeout(60), running(smsc, settings(servers=servers)) as manager:
        closing = smsc.sessions[0]
        closing.closed = True  # refuses submits, though it still claims to be bound
        results = [await manager.submit([part(f"m{i}")]) for i in range(5)]
    assert all(r[0].status is PartStatus.ACCEPTED and r[0].attempts == 1 for r in results)
    assert {s.bind for s in smsc.sent} == {smsc.sessions[1].name}


@hypothesis_settings(max_examples=40, deadline=None)
@given(
    rates=st.tuples(st.integers(0, 30), st.integers(1, 30)),
    window=st.integers(1, 3),
    traffic=st.lists(
        st.tuples(st.floats(0.0, 0.3), st.floats(0.001, 0.8)), min_size=1, max_size=150
    ),
)
def test_dispatch_keeps_rates_windows_and_queue_order(
    rates: tuple[int, int], window: int, traffic: list[tuple[float, float]]
) -> None:
    """Random arrivals and response latencies over two rate-limited servers (0 = unlimited)."""

    async def scenario() -> None:
        clock = VirtualClock()
        with clock.install():
            smsc = FakeSmsc(clock)
            servers = (
                ServerSettings("smpp1", "h1", 1, binds=2, rate=float(rates[0])),
                ServerSettings("smpp2", "h2", 1, binds=1, rate=float(rates[1])),
            )
            async with (
                asyncio.timeout(600),
                running(smsc, settings(servers=servers, window=window)) as manager,
            ):
                tasks = []
                for i, (gap, latency) in enumerate(traffic):
                    await asyncio.sleep(gap)
                    smsc.latencies[f"m{i}".encode()] = latency
                    tasks.append(asyncio.create_task(manager.submit([part(f"m{i}")])))
                results = await asyncio.gather(*tasks)
            assert all(r[0].status is PartStatus.ACCEPTED for r in results)
            assert sorted(s.text for s in smsc.sent) == sorted(
                f"m{i}".encode() for i in range(len(traffic))
            )
            # Served in arrival order (one queue, no overtaking).
            assert [int(s.text[1:]) for s in smsc.sent] == list(range(len(traffic)))
            for name, rate in zip(("smpp1", "smpp2"), rates, strict=True):
                if rate:
                    assert smsc.per_second(name) <= rate
            assert max(s.max_in_flight for s in smsc.sessions) <= window

    asyncio.run(scenario())
