"""Webhook delivery against a local HTTP receiver on 127.0.0.1, with an injected clock."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.esme.observe import RecordingObserver
from smppgw.gateway.webhook import (
    PendingDelivery,
    WebhookError,
    WebhookSender,
    WebhookSettings,
    post_json,
    retry_delay,
    sign,
)

SECRET = "s3cret-key"
BODY = b'{"event":"sms:message:status","payload":{"id":"m1","status":"DELIVRD"}}'


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP/1.1 server answering each request with the next status of ``statuses``."""

    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[Request] = field(default_factory=list)
    mode: str = "answer"  # "answer", "close" (no status line), "garbage", "silent"
    server: asyncio.Server | None = None
    received: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ")
            headers = {}
            for line in head[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers["content-length"]))
            self.requests.append(Request(method, target, headers, body))
            self.received.set()
            if self.mode == "silent":
                await reader.read()  # hold the connection until the client gives up
                return
            if self.mode == "garbage":
                writer.write(b"SMTP ready\r\n")
            elif self.mode == "answer":
                status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
                writer.write(f"HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    r.server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
    yield r
    r.server.close()
    await r.server.wait_closed()


class MemoryStore:
    """WebhookStore keeping delivery state in a dict."""

    def __init__(self, *deliveries: PendingDelivery) -> None:
        self.items = {d.cursor: d for d in deliveries}
        self.results: list[tuple[int, bool, int, float | None, str | None]] = []
        self.changed = asyncio.Event()

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


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sender(
    url: str,
    store: MemoryStore,
    clock: Clock,
    observer: RecordingObserver | None = None,
    **kw: object,
) -> WebhookSender:
    settings = WebhookSettings(url=url, secret=SECRET, **kw)  # type: ignore[arg-type]
    return WebhookSender(settings, store, clock=clock, observer=observer or RecordingObserver())


async def test_an_event_is_posted_signed_with_the_exact_body(receiver: Receiver) -> None:
    clock = Clock(1_700_000_123.75)
    store = MemoryStore(PendingDelivery(cursor=17, body=BODY, attempts=0, due_at=clock.now))
    observer = RecordingObserver()
    next_due = await sender(receiver.url("/hook?x=1"), store, clock, observer).deliver_due()

    assert next_due is None
    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.target == "/hook?x=1"
    assert request.body == BODY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["x-smppgw-timestamp"] == "1700000123"
    assert request.headers["x-smppgw-event-id"] == "17"
    assert request.headers["x-smppgw-attempt"] == "1"
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    signature = request.headers["x-smppgw-signature"]
    assert hmac.compare_digest(signature, f"sha256={expected}")
    assert store.results == [(17, True, 0, None, None)]
    assert observer.counts[("webhook_delivery", (True,))] == 1


async def test_failures_are_retried_on_the_provider_schedule_then_given_up(
    receiver: Receiver,
) -> None:
    receiver.statuses = [503]
    clock = Clock()
    store = MemoryStore(PendingDelivery(cursor=1, body=BODY, attempts=0, due_at=clock.now))
    observer = RecordingObserver()
    webhook = sender(receiver.url(), store, clock, observer, max_attempts=8)
    waits = []
    while store.items:
        started = clock.now
        next_due = await webhook.deliver_due()
        if next_due is not None:
            waits.append(next_due - started)
            clock.now = next_due - 0.5
            assert await webhook.deliver_due() == next_due  # not due yet: nothing is sent
            clock.now = next_due
    assert waits == [10, 100, 1000, 10_000, 100_000, 100_000, 100_000]
    assert len(receiver.requests) == 8
    assert [r.headers["x-smppgw-attempt"] for r in receiver.requests] == [
        str(n) for n in range(1, 9)
    ]
    assert [(attempts, err) for _, _, attempts, _, err in store.results] == [
        (n, "HTTP status 503") for n in range(1, 9)
    ]
    assert store.results[-1][3] is None  # given up
    assert observer.counts[("webhook_delivery", (False,))] == 8


async def test_a_retry_that_succeeds_stops_the_schedule(receiver: Receiver) -> None:
    receiver.statuses = [500, 204]
    clock = Clock()
    store = MemoryStore(PendingDelivery(cursor=5, body=BODY, attempts=0, due_at=clock.now))
    webhook = sender(receiver.url(), store, clock)
    assert await webhook.deliver_due() == clock.now + 10
    clock.now += 10
    assert await webhook.deliver_due() is None
    assert store.results == [(5, False, 1, clock.now, "HTTP status 500"), (5, True, 1, None, None)]


@pytest.mark.parametrize("status", [301, 302, 400, 404, 500])
async def test_non_2xx_answers_are_failures(receiver: Receiver, status: int) -> None:
    receiver.statuses = [status]
    clock = Clock()
    store = MemoryStore(PendingDelivery(cursor=1, body=BODY, attempts=0, due_at=clock.now))
    await sender(receiver.url(), store, clock).deliver_due()
    assert store.results == [(1, False, 1, clock.now + 10, f"HTTP status {status}")]


async def test_only_due_events_are_sent_earliest_first(receiver: Receiver) -> None:
    clock = Clock(1000.0)
    store = MemoryStore(
        PendingDelivery(cursor=1, body=b'{"n":1}', attempts=2, due_at=1500.0),
        PendingDelivery(cursor=2, body=b'{"n":2}', attempts=0, due_at=999.0),
        PendingDelivery(cursor=3, body=b'{"n":3}', attempts=0, due_at=1000.0),
    )
    next_due = await sender(receiver.url(), store, clock, concurrency=1).deliver_due()
    assert next_due == 1500.0
    assert [r.body for r in receiver.requests] == [b'{"n":2}', b'{"n":3}']
    assert list(store.items) == [1]


async def test_unsigned_when_no_secret_is_configured(receiver: Receiver) -> None:
    clock = Clock()
    store = MemoryStore(PendingDelivery(cursor=1, body=BODY, attempts=0, due_at=clock.now))
    settings = WebhookSettings(url=receiver.url())
    await WebhookSender(settings, store, clock=clock).deliver_due()
    assert "x-smppgw-signature" not in receiver.requests[0].headers


async def test_userinfo_in_the_url_becomes_basic_authorization(receiver: Receiver) -> None:
    url = f"http://hook%20user:p%40ss@127.0.0.1:{receiver.port}/in"
    status = await post_json(url, b"{}", {}, timeout=5)
    assert status == 200
    # base64("hook user:p@ss")
    assert receiver.requests[0].headers["authorization"] == "Basic aG9vayB1c2VyOnBAc3M="
    assert receiver.requests[0].target == "/in"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_a_failure_naming_the_endpoint() -> None:
    port = free_port()
    with pytest.raises(WebhookError, match=f"POST to 127.0.0.1:{port}: "):
        await post_json(f"http://127.0.0.1:{port}/", b"{}", {}, timeout=5)


async def test_a_connection_closed_without_an_answer_is_a_failure(receiver: Receiver) -> None:
    receiver.mode = "close"
    with pytest.raises(WebhookError, match="connection closed before a status line"):
        await post_json(receiver.url(), b"{}", {}, timeout=5)


async def test_a_malformed_status_line_is_a_failure(receiver: Receiver) -> None:
    receiver.mode = "garbage"
    with pytest.raises(WebhookError, match="malformed status line"):
        await post_json(receiver.url(), b"{}", {}, timeout=5)


async def test_a_silent_receiver_times_out(receiver: Receiver) -> None:
    receiver.mode = "silent"
    with pytest.raises(WebhookError, match=r"no answer within 0\.2 s"):
        await post_json(receiver.url(), b"{}", {}, timeout=0.2)
    assert len(receiver.requests) == 1


async def test_header_values_with_line_breaks_are_refused() -> None:
    with pytest.raises(WebhookError, match="line break"):
        await post_json("http://127.0.0.1:1/", b"{}", {"X-A": "1\r\nX-B: 2"}, timeout=5)


async def test_run_delivers_when_woken(receiver: Receiver) -> None:
    clock = Clock()
    store = MemoryStore()
    webhook = sender(receiver.url(), store, clock)
    task = asyncio.create_task(webhook.run())
    try:
        store.items[9] = PendingDelivery(cursor=9, body=BODY, attempts=0, due_at=clock.now)
        webhook.wake()
        async with asyncio.timeout(5):
            await store.changed.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert store.results == [(9, True, 0, None, None)]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/", "must be http:// or https://"),
        ("http:///path", "must be http:// or https://"),
        ("http://example.com/a b", "spaces or control characters"),
    ],
)
def test_bad_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(WebhookError, match=problem):
        WebhookSettings(url=url)


def test_retry_delay_schedule() -> None:
    assert [retry_delay(n) for n in range(1, 8)] == [
        10,
        100,
        1000,
        10_000,
        100_000,
        100_000,
        100_000,
    ]
    assert retry_delay(10_000) == 100_000  # no float overflow for huge counts
    with pytest.raises(ValueError, match="failures"):
        retry_delay(0)


@given(st.integers(1, 500), st.floats(0.1, 100), st.floats(1, 20), st.floats(100, 1e6))
def test_retry_delay_grows_and_is_capped(
    failures: int, first: float, factor: float, cap: float
) -> None:
    delay = retry_delay(failures, first=first, factor=factor, cap=cap)
    assert first <= delay or delay == cap
    assert delay <= cap
    assert retry_delay(failures + 1, first=first, factor=factor, cap=cap) >= delay


def test_sign_is_hex_hmac_sha256() -> None:
    # Locks the header format: "sha256=" + lowercase hex of HMAC-SHA256(secret, body).
    assert sign("key", b"The quick brown fox jumps over the lazy dog") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )
