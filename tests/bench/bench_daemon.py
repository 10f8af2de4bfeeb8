"""Daemon benchmark: messages per second through the whole durable pipeline.

Three processes, as in production: the SMSC simulator (``smppgw simulate``, no rate limit,
receipts at once), the daemon (``smppgw run``: SQLite WAL store with group commit, ``synchronous``
as given), and this client. The client writes N messages to the intake socket in batches and
reads the event stream until every message has its final status (from its delivery receipt).
Every accepted message and every receipt is committed before it is acknowledged.

Printed: the window and binds, messages accepted per second (socket -> committed), messages per
second end to end (socket -> committed -> submitted -> receipt committed -> final event), the
share of messages finished by a receipt, and the daemon's resident memory (sampled during the
run, and its peak). For a baseline, the bind manager alone (no store, no intake, no receipts)
submits against the same simulator first.

    python tests/bench/bench_daemon.py [--messages 100000] [--synchronous full|normal]
        [--window 50] [--binds 3] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from smppgw.codec.constants import CommandStatus
from smppgw.codec.pdu import DataSm, DeliverSm, SubmitSm
from smppgw.esme.binds import BindManager, BindManagerSettings, PartStatus, ServerSettings

PASSWORD = "localsim"


@dataclass(slots=True)
class Run:
    accepted_at: float = 0.0
    finished_at: float = 0.0
    finals: int = 0
    by_receipt: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)
    peak_rss: int = 0


async def start_simulator(binds: int) -> tuple[asyncio.subprocess.Process, list[int]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smppgw",
        "simulate",
        "--no-tls",
        "--rate",
        "0",
        "--binds",
        str(binds + 1),  # one more for the baseline's binds while the daemon's are up
        "--dlr-delay",
        "0",
        "0",
        "--seed",
        "1",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    ports = []
    for _ in range(2):
        line = (await process.stdout.readline()).decode()
        match = re.search(r"plain port (\d+)", line)
        if match is None:
            raise SystemExit(f"simulator: unexpected output {line!r}")
        ports.append(int(match[1]))
    return process, ports


async def baseline(ports: list[int], messages: int, binds: int, window: int) -> float:
    """Submits per second of the bind manager alone (no receipts asked)."""
    settings = BindManagerSettings(
        servers=tuple(
            ServerSettings(name=f"smpp{i + 1}", host="127.0.0.1", port=p, binds=binds, rate=0)
            for i, p in enumerate(ports)
        ),
        system_id="smppgw",
        password=PASSWORD,
        window=window,
    )

    async def ack(_pdu: DeliverSm | DataSm) -> CommandStatus:
        return CommandStatus.ESME_ROK

    manager = BindManager(settings, on_inbound=ack)
    await manager.start()
    await manager.wait_bound()
    pdu = SubmitSm(destination_addr="919812345678", short_message=b"x" * 100)
    started = time.perf_counter()
    results = await asyncio.gather(*(manager.submit([pdu]) for _ in range(messages)))
    elapsed = time.perf_counter() - started
    await manager.stop(5)
    assert all(r[0].status is PartStatus.ACCEPTED for r in results)
    return messages / elapsed


def write_config(workdir: Path, ports: list[int], binds: int, window: int, sync: str) -> Path:
    servers = "".join(
        f'[[servers]]\nname = "smpp{i + 1}"\nhost = "127.0.0.1"\nport = {port}\n'
        f"binds = {binds}\nrate = 0\n\n"
        for i, port in enumerate(ports)
    )
    path = workdir / "bench.toml"
    path.write_text(
        f'[gateway]\nsystem_id = "smppgw"\npassword_env = "SMPPGW_BENCH_PASSWORD"\n'
        f"window = {window}\n\n{servers}"
        f'[store]\npath = "{workdir / "bench.db"}"\nsynchronous = "{sync}"\n\n'
        f'[intake]\npath = "{workdir / "bench.sock"}"\nmax_pending = 100000\n'
        f"max_batch = 1000\n\n"
        '[defaults]\nsender = "ACME"\n\n[metrics]\nenabled = false\n\n'
        '[log]\nlevel = "warning"\n'
    )
    return path


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


async def start_daemon(config: Path, socket_path: Path) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smppgw",
        "run",
        "--config",
        str(config),
        env={**os.environ, "SMPPGW_BENCH_PASSWORD": PASSWORD},
    )
    for _ in range(400):
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_unix_connection(str(socket_path))
            writer.write(b'{"op":"ping"}\n')
            if await reader.readline():
                writer.close()
                return process
        await asyncio.sleep(0.05)
    raise SystemExit("the daemon did not start")


async def drive(socket_path: Path, pid: int, messages: int, batch: int) -> Run:
    run = Run()
    limit = 1 << 24
    events_reader, events_writer = await asyncio.open_unix_connection(str(socket_path), limit=limit)
    events_writer.write(b'{"op":"subscribe"}\n')
    await events_reader.readline()
    reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=limit)
    started = time.perf_counter()

    async def sample() -> None:
        while True:
            run.rss.append((time.perf_counter() - started, rss_kib(pid)))
            await asyncio.sleep(1.0)

    async def read_events() -> None:
        while run.finals < messages:
            event = json.loads(await events_reader.readline())
            payload = event["payload"]
            if event["event"] == "sms:message:status" and payload["final"]:
                run.finals += 1
                if payload["parts"] and payload["parts"][0]["status"]:
                    run.by_receipt += 1
        run.finished_at = time.perf_counter() - started

    async def read_replies(batches: int) -> None:
        for _ in range(batches):
            reply = json.loads(await reader.readline())
            assert reply["ok"], reply
        run.accepted_at = time.perf_counter() - started

    sampler = asyncio.create_task(sample())
    events = asyncio.create_task(read_events())
    batches = -(-messages // batch)
    replies = asyncio.create_task(read_replies(batches))
    for start in range(0, messages, batch):
        body = [
            {"to": f"91{i:010d}", "text": f"benchmark message number {i}"}
            for i in range(start, min(messages, start + batch))
        ]
        writer.write(json.dumps({"op": "submit", "messages": body}).encode() + b"\n")
        await writer.drain()
    await replies
    await events
    sampler.cancel()
    run.peak_rss = rss_kib(pid, "VmHWM")
    writer.close()
    events_writer.close()
    return run


async def main_async(args: argparse.Namespace) -> int:
    simulator, ports = await start_simulator(args.binds)
    try:
        base = await baseline(ports, min(args.messages, 20000), args.binds, args.window)
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            config = write_config(workdir, ports, args.binds, args.window, args.synchronous)
            daemon = await start_daemon(config, workdir / "bench.sock")
            try:
                run = await drive(workdir / "bench.sock", daemon.pid, args.messages, args.batch)
            finally:
                daemon.send_signal(signal.SIGTERM)
                await daemon.wait()
    finally:
        simulator.send_signal(signal.SIGTERM)
        await simulator.wait()
    n = args.messages
    print(
        f"{n} messages, 2 servers x {args.binds} binds, window {args.window}, "
        f"store synchronous={args.synchronous}, simulator without a rate limit"
    )
    print(f"baseline, bind manager alone:        {base:10,.0f} submit_sm/s")
    print(f"daemon, accepted (committed):        {n / run.accepted_at:10,.0f} messages/s")
    print(
        f"daemon, end to end (receipt event):  {n / run.finished_at:10,.0f} messages/s"
        f"  ({run.finished_at:.1f} s; {n / run.finished_at / base:.2f} x baseline)"
    )
    print(f"finished by a delivery receipt:      {run.by_receipt / n:10.1%}")
    every = max(1, len(run.rss) // 8)
    samples = ", ".join(f"{t:.0f}s {kib / 1024:.0f}" for t, kib in run.rss[::every])
    print(f"daemon RSS (MiB) over the run: {samples}; peak {run.peak_rss / 1024:.0f} MiB")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--binds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
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
        return runner.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
