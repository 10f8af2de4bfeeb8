"""Session benchmark: submit_sm/s of one session against the simulator over loopback.

Run with ``make bench-session`` (or ``python tests/bench/bench_session.py``). For each window
(1, 10, 100, 1000), plain and TLS, it keeps ``window`` submits in flight for ``--seconds`` and
reports the submit_sm_resp rate. The simulator runs in the same process and event loop (uvloop
when installed), without a rate limit and without receipts, so the figure is the session's cost
plus the simulator's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from smppgw.codec import CommandStatus, SubmitSm
from smppgw.session import Session, SessionSettings, TlsSettings
from smppgw.simulator import Account, Simulator, SimulatorSettings

PASSWORD = "bench"


async def measure(sim: Simulator, window: int, *, tls: bool, seconds: float) -> float:
    info = sim.servers[0]
    port = info.tls_port if tls else info.plain_port
    assert port is not None
    session = await Session.connect(
        SessionSettings(
            info.host,
            port,
            "bench",
            PASSWORD,
            window=window,
            tls=TlsSettings(ca_file=sim.ca_file, minimum_version="TLSv1.2") if tls else None,
        )
    )
    pdu = SubmitSm(
        source_addr="ACMEIN",
        source_addr_ton=5,
        destination_addr="919876543210",
        dest_addr_ton=1,
        dest_addr_npi=1,
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


async def run(seconds: float, windows: list[int]) -> None:
    settings = SimulatorSettings(
        servers=1,
        tls=True,
        accounts=(Account("bench", PASSWORD, max_binds_per_server=10, rate_per_server=0),),
    )
    async with Simulator(settings) as sim:
        print(f"{'window':>7} {'plain submit/s':>15} {'TLS submit/s':>13}")
        for window in windows:
            plain = await measure(sim, window, tls=False, seconds=seconds)
            secure = await measure(sim, window, tls=True, seconds=seconds)
            print(f"{window:>7} {plain:15,.0f} {secure:13,.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each run")
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--no-uvloop", action="store_true", help="use the default event loop")
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
    asyncio.run(run(args.seconds, args.windows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
