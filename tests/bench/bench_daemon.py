"""Daemon benchmark: messages per second end to end, against the bind manager alone.

Both runs use the built-in simulator with no rate limit (two servers, 3 binds each, window 50)
in this process, with uvloop when installed:

* **baseline** - the bind manager alone: N single-part submits, no store, no intake;
* **daemon** - the whole gateway: N messages written to the intake socket in batches, stored
  (SQLite WAL, group commit, ``synchronous`` as given), dispatched, submitted, and their
  delivery receipts correlated and recorded, until every message has its final event.

The ratio daemon / baseline shows what durability costs: the store must not be the
bottleneck. Store commits (count, mean batch, mean latency) are printed too.

    python tests/bench/bench_daemon.py [--messages 5000] [--synchronous full|normal]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smppgw.binds import BindManager, BindManagerSettings, PartStatus, ServerSettings
from smppgw.codec.constants import CommandStatus
from smppgw.codec.pdu import DataSm, DeliverSm, SubmitSm
from smppgw.config import parse_config
from smppgw.daemon import Gateway, GatewayOptions
from smppgw.observe import NullObserver
from smppgw.simulator import Account, Simulator, SimulatorSettings

BINDS = 3
WINDOW = 50


class CommitCounter(NullObserver):
    """Counts store commits and their sizes."""

    def __init__(self) -> None:
        self.commits = 0
        self.records = 0
        self.seconds = 0.0

    def store_commit(self, seconds: float, records: int) -> None:
        self.commits += 1
        self.records += records
        self.seconds += seconds


async def baseline(messages: int) -> float:
    """Submits per second of the bind manager alone."""
    settings = SimulatorSettings(
        tls=False,
        accounts=(Account("bench", "bench", max_binds_per_server=BINDS, rate_per_server=0),),
        dlr_delay=(0.0, 0.0),
    )
    async with Simulator(settings) as sim:
        manager_settings = BindManagerSettings(
            servers=tuple(
                ServerSettings(name=s.name, host=s.host, port=s.plain_port, binds=BINDS, rate=0)
                for s in sim.servers
            ),
            system_id="bench",
            password="bench",
            window=WINDOW,
        )

        async def ack(_pdu: DeliverSm | DataSm) -> CommandStatus:
            return CommandStatus.ESME_ROK

        manager = BindManager(manager_settings, on_inbound=ack)
        await manager.start()
        await manager.wait_bound()
        pdu = SubmitSm(destination_addr="919812345678", short_message=b"x" * 100)
        started = time.perf_counter()
        results = await asyncio.gather(*(manager.submit([pdu]) for _ in range(messages)))
        elapsed = time.perf_counter() - started
        await manager.stop(5)
    assert all(r[0].status is PartStatus.ACCEPTED for r in results)
    return messages / elapsed


async def daemon(messages: int, synchronous: str, workdir: Path) -> tuple[float, float, Any]:
    """(intake messages/s, end-to-end messages/s, commit counter) of the whole gateway."""
    config = parse_config(
        {
            "gateway": {"window": WINDOW},
            "simulator": {
                "enabled": True,
                "max_binds_per_server": BINDS,
                "rate_per_server": 0,
                "dlr_delay": [0.0, 0.0],
            },
            "store": {"path": str(workdir / "bench.db"), "synchronous": synchronous},
            "intake": {"path": str(workdir / "bench.sock"), "max_pending": messages},
            "defaults": {"sender": "ACME"},
            "metrics": {"enabled": False},
        },
        environ={},
    )
    counter = CommitCounter()
    gateway = Gateway(config, GatewayOptions(wait_bound=10), observer=counter)
    await gateway.start()
    try:
        manager = gateway.manager
        assert manager is not None
        await manager.wait_bound()
        reader, writer = await asyncio.open_unix_connection(config.intake.path, limit=1 << 22)
        events_reader, events_writer = await asyncio.open_unix_connection(
            config.intake.path, limit=1 << 22
        )
        events_writer.write(b'{"op":"subscribe"}\n')
        await events_reader.readline()
        started = time.perf_counter()
        ids: set[str] = set()
        batch = 500
        for start in range(0, messages, batch):
            body = [
                {"to": f"9198{i:08d}", "text": f"benchmark message number {i}"}
                for i in range(start, min(messages, start + batch))
            ]
            writer.write(json.dumps({"op": "submit", "messages": body}).encode() + b"\n")
        for _ in range(0, messages, batch):
            reply = json.loads(await reader.readline())
            ids.update(r["id"] for r in reply["results"])
        accepted = time.perf_counter() - started
        final = 0
        while final < len(ids):
            event = json.loads(await events_reader.readline())
            if event["event"] == "sms:message:status" and event["payload"]["final"]:
                final += 1
        elapsed = time.perf_counter() - started
        writer.close()
        events_writer.close()
    finally:
        await gateway.stop(5)
    return messages / accepted, messages / elapsed, counter


async def main_async(messages: int, synchronous: str) -> None:
    base = await baseline(messages)
    with tempfile.TemporaryDirectory() as tmp:
        intake, end_to_end, counter = await daemon(messages, synchronous, Path(tmp))
    print(f"messages: {messages}, 2 servers x {BINDS} binds, window {WINDOW}, no rate limit")
    print(f"baseline (bind manager alone):       {base:10.0f} submit_sm/s")
    print(f"daemon intake (stored, replied):     {intake:10.0f} messages/s")
    print(
        f"daemon end to end (final receipt):   {end_to_end:10.0f} messages/s"
        f"  = {end_to_end / base:.2f} x baseline"
    )
    if counter.commits:
        print(
            f"store ({synchronous}): {counter.commits} commits, "
            f"{counter.records / counter.commits:.1f} operations per commit, "
            f"{1000 * counter.seconds / counter.commits:.2f} ms per commit"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full")
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args(argv)
    loop_factory = None
    if not args.no_uvloop:
        try:
            import uvloop  # noqa: PLC0415
        except ImportError:
            pass
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main_async(args.messages, args.synchronous))
    return 0


if __name__ == "__main__":
    sys.exit(main())
