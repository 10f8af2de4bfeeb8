"""Session benchmark: submit_sm/s of one session against the simulator over loopback.

Run with ``make bench-session`` (or ``python tests/bench/bench_session.py``). For each window
(1, 10, 100, 1000), plain and TLS, it keeps ``window`` submits in flight for ``--seconds`` and
reports the submit_sm_resp rate. The simulator runs in the same process and event loop (uvloop
when installed), without a rate limit and without receipts, so the figure is the session's cost
plus the simulator's.

A/B mode: ``--baseline FILE`` (repeatable) loads another session module from a file (say an
earlier ``smppgw/esme/session.py`` taken out of git) and measures it in the same process, against
the same simulator, alternating with the current one; ``--runs N`` repeats every measurement
and the table shows medians, with the current module's change against each baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import smppgw.esme.session
from smppgw.codec import CommandStatus, SubmitSm
from smppgw.codec.constants import Npi, Ton
from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

PASSWORD = "bench"


def load_session_module(path: str) -> ModuleType:
    """A session module loaded from ``path`` under a name of its own (for A/B runs)."""
    name = f"_bench_session_{Path(path).stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def measure(
    sim: Simulator,
    window: int,
    *,
    tls: bool,
    seconds: float,
    impl: ModuleType = smppgw.esme.session,
) -> float:
    info = sim.servers[0]
    port = info.tls_port if tls else info.plain_port
    assert port is not None
    tls_settings = impl.TlsSettings
    session: Any = await impl.Session.connect(
        impl.SessionSettings(
            info.host,
            port,
            "bench",
            PASSWORD,
            window=window,
            tls=tls_settings(ca_file=sim.ca_file, minimum_version="TLSv1.2") if tls else None,
        )
    )
    pdu = SubmitSm(
        source_addr="ACMEIN",
        source_addr_ton=Ton.ALPHANUMERIC,
        destination_addr="919876543210",
        dest_addr_ton=Ton.INTERNATIONAL,
        dest_addr_npi=Npi.ISDN,
        short_message=b"x" * 100,
    )
    done = 0
    failed = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, failed
        while time.perf_counter() < deadline:
            resp = await session.submit(pdu)
            if resp.command_status is CommandStatus.ESME_ROK:
                done += 1
            else:
                failed += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(window)))
    elapsed = time.perf_counter() - start
    await session.close(5)
    if failed:
        print(f"  ({failed} non-OK responses)")
    return done / elapsed


async def measure_aiosmpplib(sim: Simulator, count: int) -> float | None:
    """aiosmpplib's ESME against the same simulator: submit_sm_resp/s over ``count`` submits.

    Its correlator scans every stored request on each put; that scan is paced to once a
    second here (with its default it falls to a few hundred per second as a run grows).
    """
    try:
        from aiosmpplib import ESME, PhoneNumber  # noqa: PLC0415
        from aiosmpplib import SubmitSm as ASubmitSm  # noqa: PLC0415
        from aiosmpplib.broker import SimpleBroker  # noqa: PLC0415
        from aiosmpplib.correlator import SimpleCorrelator  # noqa: PLC0415
        from aiosmpplib.hook import AbstractHook  # noqa: PLC0415
        from aiosmpplib.protocol import SubmitSmResp as ASubmitSmResp  # noqa: PLC0415
    except ImportError:
        return None

    class PacedCorrelator(SimpleCorrelator):  # type: ignore[misc]
        last = 0.0

        async def _remove_expired(self) -> None:
            now = time.monotonic()
            if now - self.last >= 1.0:
                self.last = now
                await super()._remove_expired()

    done = asyncio.Event()
    received = 0

    class Hook(AbstractHook):  # type: ignore[misc]
        async def sending(self, *args: object) -> None:
            return None

        async def received(self, message: object, *args: object) -> None:
            nonlocal received
            if isinstance(message, ASubmitSmResp):
                received += 1
                if received >= count:
                    done.set()

        async def send_error(self, *args: object) -> None:
            return None

    broker = SimpleBroker(maxsize=count + 1)
    for i in range(count):
        await broker.enqueue(
            ASubmitSm(
                short_message="x" * 100,
                source=PhoneNumber("ACMEIN"),
                destination=PhoneNumber("919876543210"),
                registered_delivery=0,
                log_id=str(i),
            )
        )
    esme = ESME(
        smsc_host=sim.servers[0].host,
        smsc_port=sim.servers[0].plain_port,
        system_id="bench",
        password=PASSWORD,
        broker=broker,
        hook=Hook(),
        correlator=PacedCorrelator("bench"),
        log_level="ERROR",
    )
    start = time.perf_counter()
    task = asyncio.create_task(esme.start())
    try:
        async with asyncio.timeout(300):
            await done.wait()
        elapsed = time.perf_counter() - start
    finally:
        await esme.stop()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    return count / elapsed


async def run_ab(
    sim: Simulator, seconds: float, windows: list[int], runs: int, baselines: list[str]
) -> None:
    """Medians of ``runs`` alternating measurements of the current module and each baseline."""
    impls = [("current", smppgw.esme.session)] + [
        (Path(path).name, load_session_module(path)) for path in baselines
    ]
    for _, impl in impls:  # warm up: first connections (TLS above all) are slower
        for tls in (False, True):
            await measure(sim, windows[0], tls=tls, seconds=min(seconds, 0.5), impl=impl)
    rates: dict[tuple[str, int, bool], list[float]] = {}
    for run_index in range(runs):
        # Rotate the order every run so that no variant always goes first after a pause.
        shift = run_index % len(impls)
        order = impls[shift:] + impls[:shift]
        for window in windows:
            for tls in (False, True):
                for label, impl in order:
                    rate = await measure(sim, window, tls=tls, seconds=seconds, impl=impl)
                    rates.setdefault((label, window, tls), []).append(rate)
        print(f"  run {run_index + 1}/{runs} done", flush=True)
    print(f"medians of {runs} runs of {seconds:g} s")
    print(f"{'window':>7} {'module':>22} {'plain submit/s':>15} {'TLS submit/s':>13}")
    for window in windows:
        plain_now = statistics.median(rates["current", window, False])
        tls_now = statistics.median(rates["current", window, True])
        for label, _ in impls:
            plain = statistics.median(rates[label, window, False])
            secure = statistics.median(rates[label, window, True])
            line = f"{window:>7} {label:>22} {plain:15,.0f} {secure:13,.0f}"
            if label != "current":
                line += f"   current {plain_now / plain - 1:+.1%} / {tls_now / secure - 1:+.1%}"
            print(line)


async def run(seconds: float, windows: list[int], runs: int, baselines: list[str]) -> None:
    settings = SimulatorSettings(
        servers=1,
        tls=True,
        accounts=(Account("bench", PASSWORD, max_binds_per_server=10, rate_per_server=0),),
    )
    async with Simulator(settings) as sim:
        if baselines or runs > 1:
            await run_ab(sim, seconds, windows, runs, baselines)
            return
        print(f"{'window':>7} {'plain submit/s':>15} {'TLS submit/s':>13}")
        rates: dict[int, float] = {}
        for window in windows:
            plain = await measure(sim, window, tls=False, seconds=seconds)
            secure = await measure(sim, window, tls=True, seconds=seconds)
            print(f"{window:>7} {plain:15,.0f} {secure:13,.0f}")
            rates[window] = plain
        theirs = await measure_aiosmpplib(sim, 20_000)
        if theirs is None:
            print("aiosmpplib is not installed: no baseline")
            return
        print(f"aiosmpplib ESME, same simulator: {theirs:,.0f} submit/s")
        best = rates.get(1000, max(rates.values()))
        print(f"ratio smppgw (window 1000, plain) / aiosmpplib: {best / theirs:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each run")
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--no-uvloop", action="store_true", help="use the default event loop")
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="FILE",
        help="a session module to compare with, alternating (repeatable)",
    )
    parser.add_argument("--runs", type=int, default=1, help="repeat each measurement; medians")
    args = parser.parse_args(argv)
    loop_name = "asyncio"
    if not args.no_uvloop:
        try:
            import uvloop  # noqa: PLC0415

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            loop_name = "uvloop"
        except ImportError:
            pass
    print(f"Python {sys.version.split()[0]}, {loop_name}, {os.cpu_count()} CPUs, one session")
    asyncio.run(run(args.seconds, args.windows, max(1, args.runs), args.baseline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
