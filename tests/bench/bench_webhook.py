"""Webhook delivery against a receiver that hangs 10% of first attempts.

Events arrive at ``RATE`` per second for ``SECONDS`` seconds (or ``--backlog N`` of them are
waiting at the start); the receiver on 127.0.0.1 never answers the first attempt of one event
in ten (the sender's 3 s timeout ends it) and answers everything else at once with 204.
Printed: first attempts answered per second (from the start to the last of them), and how long
after its failed first attempt each hung event's retry came (the schedule says 10 s).

    python tests/bench/bench_webhook.py [--rate 100] [--seconds 20] [--backlog N]
                                        [--concurrency N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace

from smppgw.gateway.webhook import PendingDelivery, WebhookSender, WebhookSettings


class Store:
    """The WebhookStore protocol over a dict (the bench measures the sender, not SQLite)."""

    def __init__(self) -> None:
        self.items: dict[int, PendingDelivery] = {}
        self.delivered = 0
        self.failed_at: dict[int, float] = {}

    async def pending(self, limit: int) -> Sequence[PendingDelivery]:
        return sorted(self.items.values(), key=lambda d: (d.due_at, d.cursor))[:limit]

    async def result(
        self,
        cursor: int,
        *,
        delivered: bool,
        attempts: int,
        next_attempt_at: float | None,
        error: str | None,
    ) -> None:
        if delivered or next_attempt_at is None:
            del self.items[cursor]
            self.delivered += delivered
        else:
            self.failed_at.setdefault(cursor, time.monotonic())
            self.items[cursor] = replace(
                self.items[cursor], attempts=attempts, due_at=next_attempt_at
            )


class Receiver:
    def __init__(self) -> None:
        self.retried_at: dict[int, float] = {}
        self.answered: list[float] = []  # when each first attempt was answered

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            lines = (h.partition(":") for h in head.split("\r\n"))
            headers = {k.strip(): v.strip() for k, _, v in lines}
            await reader.readexactly(int(headers["content-length"]))
            cursor, attempt = int(headers["x-smppgw-event-id"]), int(headers["x-smppgw-attempt"])
            if cursor % 10 == 0 and attempt == 1:
                await reader.read()  # hang until the sender gives up
                return
            if attempt > 1:
                self.retried_at.setdefault(cursor, time.monotonic())
            else:
                self.answered.append(time.monotonic())
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def main(rate: float, seconds: float, backlog: int, concurrency: int | None) -> None:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, backlog=1000)
    port = server.sockets[0].getsockname()[1]
    store = Store()
    settings = WebhookSettings(url=f"http://127.0.0.1:{port}/hook")
    if concurrency is not None:
        settings = replace(settings, concurrency=concurrency)
    sender = WebhookSender(settings, store, clock=time.monotonic)
    task = asyncio.create_task(sender.run())
    started = time.monotonic()
    total = backlog or int(rate * seconds)
    for n in range(1, total + 1):
        store.items[n] = PendingDelivery(n, b'{"event":"x","payload":{}}', 0, time.monotonic())
        if not backlog:
            sender.wake()
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
    sender.wake()
    # Let the retries of the last hung events come due (10 s) and be sent, within a bound.
    deadline = time.monotonic() + max(40.0, seconds)
    while store.items and time.monotonic() < deadline:  # noqa: ASYNC110 - a bench polls
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    server.close()
    lags = sorted(
        receiver.retried_at[c] - store.failed_at[c]
        for c in receiver.retried_at
        if c in store.failed_at
    )
    arrivals = f"a backlog of {total}" if backlog else f"{total} events at {rate:g}/s"
    print(f"concurrency {settings.concurrency}, {arrivals}, 10% of first attempts hang")
    first = len(receiver.answered)
    span = (receiver.answered[-1] - started) if receiver.answered else elapsed
    print(f"first attempts answered: {first} in {span:.1f} s = {first / span:.1f} events/s")
    print(f"delivered {store.delivered} of {total}; still pending {len(store.items)}")
    hung = total // 10
    if lags:
        print(
            f"retry after failure: min {lags[0]:.1f} s, median {statistics.median(lags):.1f} s,"
            f" max {lags[-1]:.1f} s ({len(lags)} of {hung} hung events retried)"
        )
    else:
        print(f"no retry of the {hung} hung events within {elapsed:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.backlog, args.concurrency))
