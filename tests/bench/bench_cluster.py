"""Cluster benchmark: take-over time of a dead instance's binds, and the rate through hand-overs.

Run with ``python tests/bench/bench_cluster.py [--dsn DSN] [--ttl 10] [--heartbeat 2]``; it
needs PostgreSQL (default: postgres@127.0.0.1:5432, a throwaway schema dropped at the end).
Two instances (a slot leaser and a bind manager each, in one process) share one simulator
account: 2 servers, 3 binds and 50 submits per second per server, the simulator refusing any
submit beyond 50 in the second before it (sliding window).

1. Both send flat out while the second instance joins (a slot of each server is handed over)
   and later stops (its slots are handed back): the simulator's ESME_RTHROTTLED count (0 means
   no 1-second window had more than 50), the binds it refused, and the most submits it counted
   in a clock second of each server.
2. The first instance is killed (heartbeats stop, its database connection and binds are cut
   with no unbind) while the second runs: seconds until the second holds every slot, and until
   it has every bind up.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import Callable

import asyncpg

from smppgw.codec import CommandStatus, DataSm, DeliverSm, SubmitSm
from smppgw.esme.binds import BindManager, BindManagerSettings, BindState, ServerSettings
from smppgw.gateway.cluster.leaser import LeaserSettings, ServerLimits, SlotLeaser
from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

RATE, BINDS = 50, 3
SERVERS = ("smpp1", "smpp2")


async def no_inbound(pdu: DeliverSm | DataSm) -> CommandStatus:
    return CommandStatus.ESME_ROK


def bound(manager: BindManager) -> int:
    return sum(1 for s in manager.status() if s.state is BindState.BOUND)


async def until(condition: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def main(args: argparse.Namespace) -> None:
    schema = f"bench_{secrets.token_hex(4)}"
    account = Account("bench", "bench", max_binds_per_server=BINDS, rate_per_server=RATE)
    sim_settings = SimulatorSettings(
        tls=False, names=SERVERS, accounts=(account,), rate_window="sliding"
    )
    admin = await asyncpg.connect(args.dsn)
    try:
        async with Simulator(sim_settings) as sim:
            await run(args, sim, schema)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def run(args: argparse.Namespace, sim: Simulator, schema: str) -> None:
    servers = tuple(
        ServerSettings(name=i.name, host=i.host, port=i.plain_port, binds=BINDS, rate=RATE)
        for i in sim.servers
    )
    settings = BindManagerSettings(
        servers, "bench", "bench", reconnect_min=0.2, response_timeout=5.0
    )

    def instance(name: str) -> tuple[SlotLeaser, BindManager]:
        leaser = SlotLeaser(
            LeaserSettings(
                dsn=args.dsn,
                account="bench",
                servers={s: ServerLimits(BINDS, RATE) for s in SERVERS},
                instance=name,
                schema=schema,
                ttl=args.ttl,
                heartbeat=args.heartbeat,
                margin=args.margin,
            )
        )
        manager = BindManager(settings, on_inbound=no_inbound, slots=leaser)
        return leaser, manager

    (lease_a, manager_a), (lease_b, manager_b) = instance("a"), instance("b")
    await lease_a.start()
    await manager_a.start()
    await manager_a.wait_bound(2 * BINDS, timeout=10)

    stop_sending = asyncio.Event()
    accepted = 0

    async def sender(manager: BindManager) -> None:
        nonlocal accepted
        n = 0
        while not stop_sending.is_set():
            n += 1
            pdu = SubmitSm(destination_addr=f"1415555{n % 10000:04d}", short_message=b"x")
            results = await manager.submit([pdu])
            accepted += results[0].smsc_message_id is not None

    def start_senders(manager: BindManager, count: int) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(sender(manager)) for _ in range(count)]

    tasks = start_senders(manager_a, 40)
    await asyncio.sleep(2)
    await lease_b.start()
    await manager_b.start()
    tasks += start_senders(manager_b, 40)
    await until(lambda: bound(manager_b) == 2 and bound(manager_a) == 4, timeout=30)
    print("second instance joined: a holds 2 + 2 binds, b 1 + 1")
    await asyncio.sleep(4)
    stopped = time.monotonic()
    for task in tasks[40:]:
        task.cancel()
    await manager_b.stop(2)
    await lease_b.stop()
    await until(lambda: bound(manager_a) == 6, timeout=30)
    print(
        f"second instance stopped: a has every bind back after {time.monotonic() - stopped:.1f} s"
    )
    await asyncio.sleep(2)
    stop_sending.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(
        f"accepted {accepted}, ESME_RTHROTTLED {sim.stats.throttled}, "
        f"binds refused {sim.stats.binds_refused}"
    )
    for server in SERVERS:
        windows = sim.submits_per_second(server)[1:-1]  # whole seconds only
        print(
            f"  {server}: most submits in a clock second {max(windows)}, mean "
            f"{sum(windows) / len(windows):.1f} (limit {RATE}, any 1-second window)"
        )

    # Take-over: b runs, a is killed.
    lease_b, manager_b = instance("b2")
    await lease_b.start()
    await manager_b.start()
    await until(lambda: bound(manager_a) == 4 and bound(manager_b) == 2, timeout=30)
    await asyncio.sleep(args.heartbeat * secrets.randbelow(100) / 100)
    killed = time.monotonic()
    await manager_a.stop(0)  # links cut at once, no unbind waited for
    lease_a.abort()  # heartbeats stop, the database connection is cut, nothing released
    await until(lambda: len(lease_b.held) == 2 * BINDS, timeout=60)
    slots_at = time.monotonic() - killed
    await until(lambda: bound(manager_b) == 2 * BINDS, timeout=60)
    binds_at = time.monotonic() - killed
    print(
        f"take-over (ttl {args.ttl:g} s, heartbeat {args.heartbeat:g} s): every slot held "
        f"after {slots_at:.1f} s, every bind up after {binds_at:.1f} s "
        f"(bound: ttl + heartbeat = {args.ttl + args.heartbeat:g} s + a bind)"
    )
    await manager_b.stop(2)
    await lease_b.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--ttl", type=float, default=10.0)
    parser.add_argument("--heartbeat", type=float, default=2.0)
    parser.add_argument("--margin", type=float, default=3.0)
    asyncio.run(main(parser.parse_args()))
