"""Webhook delivery against a receiver that hangs on some requests.

The receiver is a plain asyncio HTTP/1.1 server on 127.0.0.1:0 that decides per event id and
attempt whether to answer (and with what) or to hang until the client gives up. The sender's
clock is injected; the only real time involved is the per-request timeout, set short where a
test needs it to expire and long where a test needs a request to stay hung.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import pytest

from smppgw.gateway.config import parse_config
from smppgw.gateway.webhook import PendingDelivery, WebhookSender, WebhookSettings

T0 = 1_700_000_000.0
HANG = 0  # the behaviour's answer meaning: hold the connection, never answer


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Receiver:
    """Answers each request with ``behaviour(event id, attempt)``: a status, or HANG."""

    behaviour: Callable[[int, int], int]
    seen: list[tuple[int, int]] = field(default_factory=list)  # (event id, attempt)
    hanging: set[int] = field(default_factory=set)  # event ids whose request is held open
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # drop every hung request
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = (line.partition(":") for line in head.split("\r\n")[1:] if line)
            headers = {k.strip().lower(): v.strip() for k, _, v in lines}
            await reader.readexactly(int(headers["content-length"]))
            event, attempt = int(headers["x-smppgw-event-id"]), int(headers["x-smppgw-attempt"])
            self.seen.append((event, attempt))
            status = self.behaviour(event, attempt)
            if status == HANG:
                self.hanging.add(event)
                self.changed.set()
                # Until the sender closes its end, or the test drops it without an answer.
                closed = asyncio.ensure_future(reader.read())
                released = asyncio.ensure_future(self.release.wait())
                await asyncio.wait((closed, released), return_when=asyncio.FIRST_COMPLETED)
                closed.cancel()
                released.cancel()
                self.hanging.discard(event)
                return
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.changed.set()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Callable[[int, int], int]], Awaitable[Receiver]]]:
    servers: list[asyncio.Server] = []

    async def start(behaviour: Callable[[int, int], int]) -> Receiver:
        receiver = Receiver(behaviour)
        receiver.server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
        servers.append(receiver.server)
        return receiver

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


class MemoryStore:
    """The WebhookStore protocol over a dict, recording every result."""

    def __init__(self, *cursors: int, due_at: float = T0) -> None:
        self.items: dict[int, PendingDelivery] = {}
        self.results: list[tuple[int, bool, int, float | None, str | None]] = []
        self.changed = asyncio.Event()
        self.add(*cursors, due_at=due_at)

    def add(self, *cursors: int, due_at: float = T0) -> None:
        for cursor in cursors:
            self.items[cursor] = PendingDelivery(cursor, b'{"event":"e"}', 0, due_at)

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
        self.results.append((cursor, delivered, attempts, next_attempt_at, error))
        if delivered or next_attempt_at is None:
            del self.items[cursor]
        else:
            self.items[cursor] = replace(
                self.items[cursor], attempts=attempts, due_at=next_attempt_at
            )
        self.changed.set()

    def delivered(self) -> set[int]:
        return {cursor for cursor, ok, *_ in self.results if ok}


async def until(event: asyncio.Event, condition: Callable[[], bool]) -> None:
    """Wait for ``condition``, re-checked whenever ``event`` is set, for at most 10 s."""
    async with asyncio.timeout(10):
        while not condition():
            event.clear()
            await event.wait()


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_hung_request_does_not_hold_back_events_that_arrive_after_it(
    serve: Callable[[Callable[[int, int], int]], Awaitable[Receiver]],
) -> None:
    """A receiver hanging on one request stopped every delivery until that request timed out:
    the sender awaited each batch whole, so events appended meanwhile waited for the hung one,
    and one hang in ten brought delivery down to about 11 events/s."""
    receiver = await serve(lambda event, _attempt: HANG if event == 1 else 204)
    store = MemoryStore(1)
    settings = WebhookSettings(url=receiver.url, timeout=60.0, concurrency=4)
    sender = WebhookSender(settings, store, clock=Clock())
    task = asyncio.create_task(sender.run())
    try:
        await until(receiver.changed, lambda: 1 in receiver.hanging)
        store.add(*range(2, 41))
        sender.wake()
        await until(store.changed, lambda: store.delivered() == set(range(2, 41)))
        assert receiver.hanging == {1}  # still held: its 60 s are far from over
        assert [r for r in store.results if r[0] == 1] == []
    finally:
        await stop(task)


async def test_one_event_in_ten_hanging_holds_only_its_own_slots(
    serve: Callable[[Callable[[int, int], int]], Awaitable[Receiver]],
) -> None:
    """Hung requests take one slot each: the other events flow through the remaining slots
    while they hang. When the hung requests fail, each is retried on the schedule, 10 s after
    its own failure, with its next attempt recorded in the store."""
    receiver = await serve(lambda event, attempt: HANG if event % 10 == 0 and attempt == 1 else 204)
    clock = Clock()
    store = MemoryStore(*range(1, 101))
    settings = WebhookSettings(url=receiver.url, timeout=60.0, concurrency=16)
    sender = WebhookSender(settings, store, clock=clock)
    hung = set(range(10, 101, 10))
    round_ = asyncio.create_task(sender.deliver_due())
    await until(store.changed, lambda: store.delivered() == set(range(1, 101)) - hung)
    assert receiver.hanging == hung
    receiver.release.set()  # the hung requests end without an answer
    async with asyncio.timeout(10):
        assert await round_ == T0 + 10
    failures = {r[0]: r for r in store.results if not r[1]}
    assert set(failures) == hung
    for cursor, (_, _, attempts, next_at, error) in failures.items():
        assert (attempts, next_at) == (1, T0 + 10), cursor
        assert error is not None
        assert "closed before a status line" in error
    clock.now = T0 + 10
    assert await sender.deliver_due() is None
    assert store.delivered() == set(range(1, 101))
    assert sorted(e for e, a in receiver.seen if a == 2) == sorted(hung)


async def test_a_retry_comes_due_and_goes_out_while_another_request_still_hangs(
    serve: Callable[[Callable[[int, int], int]], Awaitable[Receiver]],
) -> None:
    """Each event keeps its own schedule: event 2 failed at once and was due again 10 s later,
    but its retry waited for event 1's hung request (awaited as part of the same batch)."""

    def behaviour(event: int, attempt: int) -> int:
        if event == 1:
            return HANG
        return 503 if attempt == 1 else 200

    receiver = await serve(behaviour)
    clock = Clock()
    store = MemoryStore(1, 2)
    settings = WebhookSettings(url=receiver.url, timeout=60.0, concurrency=4)
    sender = WebhookSender(settings, store, clock=clock)
    task = asyncio.create_task(sender.run())
    try:
        await until(
            store.changed, lambda: (2, False, 1, T0 + 10, "HTTP status 503") in store.results
        )
        clock.now = T0 + 10
        sender.wake()
        await until(store.changed, lambda: store.delivered() == {2})
        assert (2, 2) in receiver.seen
        assert receiver.hanging == {1}
    finally:
        await stop(task)


async def test_a_poster_that_never_returns_is_cut_at_the_timeout() -> None:
    """The timeout bounded only the built-in HTTP client: any other poster that never
    returned held its delivery round for ever."""
    never = asyncio.Event()

    async def poster(_url: str, _body: bytes, _headers: Mapping[str, str]) -> int:
        await never.wait()
        return 200

    clock = Clock()
    store = MemoryStore(7)
    settings = WebhookSettings(url="http://127.0.0.1:9/hook", timeout=0.05)
    sender = WebhookSender(settings, store, clock=clock, poster=poster)
    async with asyncio.timeout(10):
        assert await sender.deliver_due() == T0 + 10
    assert store.results == [(7, False, 1, T0 + 10, "POST to 127.0.0.1:9: no answer within 0.05 s")]


async def test_stopping_the_sender_abandons_hung_requests_and_leaves_them_pending(
    serve: Callable[[Callable[[int, int], int]], Awaitable[Receiver]],
) -> None:
    receiver = await serve(lambda _event, _attempt: HANG)
    store = MemoryStore(1, 2)
    settings = WebhookSettings(url=receiver.url, timeout=60.0)
    sender = WebhookSender(settings, store, clock=Clock())
    task = asyncio.create_task(sender.run())
    await until(receiver.changed, lambda: receiver.hanging == {1, 2})
    await stop(task)
    await until(receiver.changed, lambda: not receiver.hanging)  # connections closed
    assert store.results == []
    assert set(store.items) == {1, 2}  # attempted again by the next sender


def test_the_number_of_concurrent_attempts_is_configurable() -> None:
    base = {"defaults": {"sender": "ACME"}, "simulator": {"enabled": True}}
    config = parse_config({**base, "webhook": {"url": "http://h/", "concurrency": 8}}, environ={})
    settings = config.webhook
    assert settings is not None
    assert settings.concurrency == 8
    default = parse_config({**base, "webhook": {"url": "http://h/"}}, environ={}).webhook
    assert default is not None
    assert default.concurrency == 32
