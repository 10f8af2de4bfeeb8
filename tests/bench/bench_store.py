"""Store benchmark: SQLite against PostgreSQL, operation by operation.

Run with ``python tests/bench/bench_store.py [--dsn DSN] [--messages 20000] [--callers 200]``;
PostgreSQL defaults to postgres@127.0.0.1:5432 (a throwaway schema, dropped at the end), SQLite
to a temporary file (``synchronous = full``).

- accept: ``callers`` tasks each storing one message at a time (as intake connections do), so
  the writer groups what arrives together into one commit;
- claim+finish: the dispatcher's loop, claims of 100 and one finish_submit (with its event)
  per message from ``callers`` tasks;
- one instance's claims while a second instance on the same schema claims too (PostgreSQL).

Figures are messages per second and the mean operations per commit.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from smppgw.codec.constants import DataCoding
from smppgw.esme.numbers import validate_sender
from smppgw.esme.observe import NullObserver
from smppgw.gateway.events import DeliveryState
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store import SqliteStore, StoreSettings
from smppgw.gateway.store.postgres import PostgresSettings, PostgresStore


class Commits(NullObserver):
    def __init__(self) -> None:
        self.commits = 0
        self.records = 0

    def store_commit(self, seconds: float, records: int) -> None:
        self.commits += 1
        self.records += records


def request(n: int) -> SubmitRequest:
    return SubmitRequest(
        to=f"9198{n:08d}",
        sender=validate_sender("ACME"),
        text=f"message {n}",
        payload=None,
        data_coding=DataCoding.DEFAULT,
        parts=1,
        priority=0,
        custom=None,
        registered_delivery=True,
    )


async def timed(
    label: str, count: int, work: Callable[[], Awaitable[object]], obs: Commits
) -> None:
    obs.commits = obs.records = 0
    started = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - started
    per = obs.records / obs.commits if obs.commits else 0.0
    print(f"  {label:<28} {count / elapsed:>9,.0f} msg/s  ({per:,.1f} ops per commit)")


async def run(
    store: SqliteStore | PostgresStore, obs: Commits, messages: int, callers: int
) -> None:
    per_caller = messages // callers

    async def accept() -> None:
        async def caller(c: int) -> None:
            for n in range(per_caller):
                await store.add_messages([request(c * per_caller + n)])

        await asyncio.gather(*(caller(c) for c in range(callers)))

    async def claim_finish() -> None:
        async def worker() -> None:
            while claimed := await store.claim(100):
                await asyncio.gather(
                    *(store.finish_submit(m.id, DeliveryState.SUBMITTED) for m in claimed)
                )

        await asyncio.gather(*(worker() for _ in range(4)))

    await timed("accept (1 per call)", per_caller * callers, accept, obs)
    await timed("claim+finish", per_caller * callers, claim_finish, obs)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--callers", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        obs = Commits()
        sqlite = await SqliteStore.open(StoreSettings(str(Path(tmp) / "bench.db")), observer=obs)
        print("SQLite (WAL, synchronous=full)")
        try:
            await run(sqlite, obs, args.messages, args.callers)
        finally:
            await sqlite.close()

    schema = f"bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.dsn)
    try:
        obs = Commits()
        settings = PostgresSettings(dsn=args.dsn, schema=schema, instance="bench")
        postgres = await PostgresStore.open(settings, observer=obs)
        print("PostgreSQL (asyncpg, one writer)")
        try:
            await run(postgres, obs, args.messages, args.callers)
        finally:
            await postgres.close()
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
