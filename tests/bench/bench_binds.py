"""Bind manager benchmark: throughput at the account's limit, throttling and receipts.

Run with ``python tests/bench/bench_binds.py [--messages N]``. Two simulator servers, each
allowing 3 binds and 50 submits per 1-second window (the provider's typical account), run in
the same process and event loop (uvloop when installed). The bind manager keeps 3 transceiver
binds to each and submits N one-part messages, all at once, each asking for a receipt.

It prints, per server, the submits the simulator counted in each full 1-second window (max and
mean, the first and last partial windows left out) against the configured limit; how many
submits were answered ESME_RTHROTTLED; the receipts received and how many matched a submit's
message id; and the elapsed times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter

from smppgw.codec import CommandStatus, DataSm, DeliverSm, SubmitSm
from smppgw.codec.constants import Npi, RegisteredDelivery, Ton
from smppgw.codec.receipt import ReceiptParseError, receipt_info
from smppgw.esme.binds import (
    BindManager,
    BindManagerSettings,
    PartResult,
    PartStatus,
    ServerSettings,
)
from smppgw.esme.observe import RecordingObserver
from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

SYSTEM_ID = "bench"
PASSWORD = "bench"


def full_windows(counts: list[int]) -> list[int]:
    """The counts of the 1-second windows that lie wholly inside the run (not the first/last)."""
    return counts[1:-1]


async def run(messages: int, rate: float, binds: int, window: int) -> int:
    settings = SimulatorSettings(
        tls=False,
        servers=2,
        accounts=(Account(SYSTEM_ID, PASSWORD, max_binds_per_server=binds, rate_per_server=rate),),
        seed=1,
    )
    receipt_ids: list[str] = []
    unparsed = 0

    async def on_inbound(pdu: DeliverSm | DataSm) -> CommandStatus:
        nonlocal unparsed
        if isinstance(pdu, DeliverSm):
            try:
                receipt_ids.append(receipt_info(pdu.short_message, pdu.tlvs).message_id)
            except ReceiptParseError:
                unparsed += 1
        return CommandStatus.ESME_ROK

    observer = RecordingObserver()
    async with Simulator(settings) as sim:
        config = BindManagerSettings(
            servers=tuple(
                ServerSettings(info.name, info.host, info.plain_port, binds=binds, rate=rate)
                for info in sim.servers
            ),
            system_id=SYSTEM_ID,
            password=PASSWORD,
            window=window,
        )
        manager = BindManager(config, on_inbound=on_inbound, observer=observer)
        await manager.start()
        await manager.wait_bound(timeout=10)
        pdus = [
            SubmitSm(
                source_addr="ACME",
                source_addr_ton=Ton.ALPHANUMERIC,
                destination_addr=f"9198{n:08d}",
                dest_addr_ton=Ton.INTERNATIONAL,
                dest_addr_npi=Npi.ISDN,
                registered_delivery=RegisteredDelivery.FINAL,
                short_message=f"bench message {n}".encode(),
            )
            for n in range(messages)
        ]
        start = time.perf_counter()
        outcomes = await asyncio.gather(*(manager.submit([pdu]) for pdu in pdus))
        submitted = time.perf_counter() - start
        # Each receipt comes 0.05-0.5 s after its submit; allow for resends as well.
        try:
            await sim.wait_dlrs_settled(30)
        except TimeoutError:
            print(f"receipts still pending after 30 s: {sim.dlrs_pending}")
        settled = time.perf_counter() - start
        await manager.stop(5)

        results: list[PartResult] = [r for parts in outcomes for r in parts]
        statuses = Counter(r.status for r in results)
        accepted = {r.smsc_message_id for r in results if r.status is PartStatus.ACCEPTED}
        by_status = {s.value: n for s, n in statuses.items()}
        print(f"messages: {messages}, results: {by_status}")
        print(
            f"{'server':>7} {'limit/s':>8} {'max/s':>6} {'mean/s':>7} {'windows':>8} "
            f"{'accepted':>9}"
        )
        for info in sim.servers:
            counts = sim.submits_per_second(info.name)
            full = full_windows(counts)
            peak = max(full) if full else max(counts, default=0)
            mean = sum(full) / len(full) if full else float("nan")
            print(
                f"{info.name:>7} {rate:8g} {peak:6d} {mean:7.1f} {len(full):8d} "
                f"{sim.stats.accepted_by_server[info.name]:9d}"
            )
            print(f"        every window: {counts}")
        print(
            f"ESME_RTHROTTLED: {sim.stats.throttled} at the simulator, "
            f"{observer.total('throttled')} seen by the manager"
        )
        matched = sum(1 for mid in receipt_ids if mid in accepted)
        distinct = len(set(receipt_ids) & accepted)
        print(
            f"DLRs: {len(receipt_ids)} received, {matched} matched to a submit "
            f"({distinct} distinct of {len(accepted)} accepted), {unparsed} unparsable"
        )
        print(
            f"elapsed: {submitted:.2f} s to submit all ({len(results) / submitted:.1f} msg/s "
            f"overall), {settled:.2f} s until every receipt was acknowledged"
        )
        lost = messages - statuses[PartStatus.ACCEPTED]
        ok = lost == 0 and sim.stats.throttled == 0 and distinct == len(accepted)
        return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages to submit")
    parser.add_argument("--rate", type=float, default=50.0, help="limit per server, msg/s")
    parser.add_argument("--binds", type=int, default=3, help="binds per server")
    parser.add_argument("--window", type=int, default=10, help="outstanding submits per bind")
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
    print(
        f"Python {sys.version.split()[0]}, {loop_name}, {os.cpu_count()} CPUs; "
        f"2 servers x {args.binds} binds at {args.rate:g} msg/s each"
    )
    return asyncio.run(run(args.messages, args.rate, args.binds, args.window))


if __name__ == "__main__":
    raise SystemExit(main())
