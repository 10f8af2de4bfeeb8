"""Webhook delivery: each event POSTed to the application's URL, signed, retried until taken.

Retries follow the provider's own webhook schedule ("Retrying failed webhooks"): a call that
does not get a 2xx answer within 3 seconds failed, and the next attempt comes 10 s later, then
100 s, 1000 s and so on, ten times longer each time, never more than 100,000 s (about 27 h)
apart. We read the schedule as: the wait after the n-th failed attempt is ``10 ** n`` seconds,
capped. After ``max_attempts`` failures the event is given up (it stays in the event log, and
socket subscribers still see it).

The delivery state of every event lives in the store (:class:`WebhookStore`), so a restart
neither loses nor repeats a delivered event; delivery is at least once (a crash between the
receiver's 2xx and our record of it repeats that event), so receivers should deduplicate on
the ``X-Smppgw-Event-Id`` header.

Each POST carries ``X-Smppgw-Signature: sha256=<hex>``, the HMAC-SHA256 of the exact body bytes
keyed with the configured secret, and ``X-Smppgw-Timestamp`` (Unix seconds of the attempt).

HTTP client choice: the sender needs one thing, a POST of a small JSON body with a short
timeout, to one configured URL. That is a few dozen lines over ``asyncio.open_connection``
(plain or TLS through :mod:`ssl`), which avoids a new dependency and a thread pool
(``urllib.request`` blocks). One connection per attempt (``Connection: close``); redirects are
not followed (a 3xx is a failure, as is any other non-2xx).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import ssl
import time
import urllib.parse
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Protocol

from smppgw import __version__
from smppgw.codec.errors import SmppError
from smppgw.esme.observe import NULL_OBSERVER, Observer
from smppgw.esme.settings import setting

__all__ = [
    "PendingDelivery",
    "Poster",
    "WebhookError",
    "WebhookSender",
    "WebhookSettings",
    "WebhookStore",
    "post_json",
    "retry_delay",
    "sign",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Smppgw-Signature"
TIMESTAMP_HEADER = "X-Smppgw-Timestamp"
EVENT_ID_HEADER = "X-Smppgw-Event-Id"
ATTEMPT_HEADER = "X-Smppgw-Attempt"

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?\r?\n")
_MAX_STATUS_LINE = 8192


class WebhookError(SmppError):
    """A webhook attempt failed: connection, TLS, timeout or an unreadable answer."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Where and how events are POSTed.

    ``timeout`` bounds one whole attempt (connect, send, status line); the provider's own
    webhooks use 3 s. ``first_delay``, ``factor`` and ``max_delay`` give the retry schedule
    (10 s, 100 s, 1000 s... capped at 100,000 s). ``concurrency`` bounds the attempts in
    flight; ``batch`` is how many pending events are read from the store at a time.
    """

    url: str
    secret: str | None = field(default=None, repr=False)  # from secret_env or secret_file
    timeout: float = setting(3.0, positive=True)
    max_attempts: int = setting(10, low=1, high=100)
    first_delay: float = setting(10.0, configurable=False)
    factor: float = setting(10.0, configurable=False)
    max_delay: float = setting(100_000.0, configurable=False)
    concurrency: int = setting(32, low=1, high=1000)
    batch: int = setting(100, configurable=False)
    ca_file: str | None = setting(None, path=True)
    verify: bool = True

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookError(f"webhook url must be http:// or https:// with a host: {self.url!r}")
        if any(ch.isspace() or ord(ch) < 0x20 for ch in self.url):
            raise WebhookError("webhook url must not contain spaces or control characters")
        if self.timeout <= 0 or self.max_attempts < 1 or self.concurrency < 1 or self.batch < 1:
            raise WebhookError("webhook timeout, max_attempts, concurrency and batch must be > 0")
        if not 0 < self.first_delay <= self.max_delay or self.factor < 1:
            raise WebhookError("webhook retry delays must satisfy 0 < first_delay <= max_delay")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for an https URL (system trust store unless ``ca_file``)."""
        if urllib.parse.urlsplit(self.url).scheme != "https":
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def retry_delay(
    failures: int, *, first: float = 10.0, factor: float = 10.0, cap: float = 100_000.0
) -> float:
    """The wait before the next attempt after ``failures`` failed attempts (``failures >= 1``).

    With the defaults: 10, 100, 1000, 10000, 100000, 100000... seconds.
    """
    if failures < 1:
        raise ValueError(f"failures must be >= 1, got {failures}")
    # Compare exponents, not values: factor ** failures overflows a float for large counts.
    delay = first
    for _ in range(failures - 1):
        delay *= factor
        if delay >= cap:
            return cap
    return min(delay, cap)


def sign(secret: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """An event not yet delivered to the webhook.

    ``attempts`` counts the failed attempts so far; ``due_at`` is the Unix time of the next one.
    """

    cursor: int
    body: bytes
    attempts: int
    due_at: float


class WebhookStore(Protocol):
    """The delivery state the sender needs, persisted by the store."""

    async def pending(self, limit: int) -> Sequence[PendingDelivery]:
        """Undelivered, not given-up events, earliest ``due_at`` first, at most ``limit``."""
        ...

    async def result(
        self,
        cursor: int,
        *,
        delivered: bool,
        attempts: int,
        next_attempt_at: float | None,
        error: str | None,
    ) -> None:
        """Record an attempt's outcome.

        ``delivered`` True: done. Otherwise ``attempts`` is the new failure count and
        ``next_attempt_at`` the next due time, or None when the event is given up.
        """
        ...


Poster = Callable[[str, bytes, Mapping[str, str]], Awaitable[int]]
"""POST ``body`` to ``url`` with headers; returns the HTTP status or raises WebhookError."""


async def post_json(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,  # noqa: ASYNC109 - one deadline over connect + send + answer
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """POST a JSON body over HTTP/1.1 and return the response's status code.

    Args:
        url: an ``http://`` or ``https://`` URL (userinfo becomes Basic authorization).
        body: the exact bytes to send.
        headers: extra headers (no CR/LF in names or values).
        timeout: seconds for the whole exchange up to the status line.
        ssl_context: for https; None builds a default verifying context.

    Returns:
        The status code (the caller decides what success is; redirects are not followed).

    Raises:
        WebhookError: connection refused, TLS failure, timeout, or a malformed status line.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = (https and port == 443) or (not https and port == 80)
    host_header = host if ":" not in host else f"[{host}]"
    if not default_port:
        host_header = f"{host_header}:{port}"
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {host_header}",
        f"User-Agent: smppgw/{__version__}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if parts.username is not None:
        userinfo = (
            f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        )
        lines.append("Authorization: Basic " + base64.b64encode(userinfo.encode()).decode())
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n"):
            raise WebhookError(f"header {name!r} contains a line break")
        lines.append(f"{name}: {value}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    context = (ssl_context or ssl.create_default_context()) if https else None
    where = f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=host if https else None
            )
            try:
                writer.write(head + body)
                await writer.drain()
                status_line = await reader.readuntil(b"\n")
            finally:
                writer.close()
                with suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
    except TimeoutError as exc:
        raise WebhookError(f"POST to {where}: no answer within {timeout} s") from exc
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise WebhookError(f"POST to {where}: connection closed before a status line") from exc
    except (OSError, ssl.SSLError) as exc:
        raise WebhookError(f"POST to {where}: {exc}") from exc
    match = _STATUS_LINE.fullmatch(status_line[:_MAX_STATUS_LINE])
    if match is None:
        raise WebhookError(f"POST to {where}: malformed status line {status_line[:80]!r}")
    return int(match[1])


class WebhookSender:
    """Delivers the store's pending events to the webhook URL, on the retry schedule.

    Up to ``concurrency`` attempts run at once, each on its own and each bounded by
    ``timeout``: a new attempt starts as soon as one finishes (or an event is appended, or a
    retry comes due), so a receiver that hangs on some requests holds only those events, for
    at most ``timeout`` each, and never the ones behind them. Each event's next attempt is
    scheduled from the moment its own attempt failed.

    Drive it with :meth:`run` (a loop that sleeps until the next due attempt, a finished
    attempt or :meth:`wake`, e.g. when an event is appended), or step it with
    :meth:`deliver_due` (tests, with an injected ``clock``).
    """

    def __init__(
        self,
        settings: WebhookSettings,
        store: WebhookStore,
        *,
        observer: Observer = NULL_OBSERVER,
        clock: Callable[[], float] = time.time,
        poster: Poster | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._observer = observer
        self._clock = clock
        self._context = settings.ssl_context()
        self._poster = poster or self._post
        parts = urllib.parse.urlsplit(settings.url)
        self._where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._errors: list[BaseException] = []

    async def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        return await post_json(
            url, body, headers, timeout=self._settings.timeout, ssl_context=self._context
        )

    def wake(self) -> None:
        """Re-check the store now (an event was appended, or the clock moved in a test)."""
        self._wake.set()

    def headers(self, delivery: PendingDelivery, now: float) -> dict[str, str]:
        """The headers of one attempt (signature over the exact body)."""
        headers = {
            TIMESTAMP_HEADER: str(int(now)),
            EVENT_ID_HEADER: str(delivery.cursor),
            ATTEMPT_HEADER: str(delivery.attempts + 1),
        }
        if self._settings.secret:
            headers[SIGNATURE_HEADER] = sign(self._settings.secret, delivery.body)
        return headers

    async def deliver_due(self) -> float | None:
        """Attempt every pending event that is due now and wait for those attempts.

        At most ``concurrency`` attempts run at once; each finished one makes room for the next.

        Returns:
            The earliest due time among the events still pending (including the retries just
            scheduled), or None if nothing is pending.

        Raises:
            Exception: the store failed to list pending events or to record a result.
        """
        while True:
            next_due = await self._start_due()
            if not self._in_flight:
                self._raise_errors()
                return next_due
            await asyncio.wait(tuple(self._in_flight.values()), return_when=FIRST_COMPLETED)
            self._raise_errors()

    def _raise_errors(self) -> None:
        if self._errors:
            error, self._errors = self._errors[0], []
            raise error

    async def _start_due(self) -> float | None:
        """Start attempts of due events while there is room.

        Returns:
            When to look again: the due time of the earliest event not yet due, now when more
            due events may wait behind the ones just read, or None when only a finished
            attempt (which wakes the loop) or a new event can change anything.
        """
        s = self._settings
        in_flight = self._in_flight
        room = s.concurrency - len(in_flight)
        if room <= 0:
            return None
        # The events in flight are still pending in the store (earliest due first): read past
        # them so that they never hide the events behind.
        limit = s.batch + len(in_flight)
        pending = await self._store.pending(limit)
        now = self._clock()
        for delivery in pending:
            if delivery.cursor in in_flight:
                continue
            if delivery.due_at > now:
                return delivery.due_at
            if room == 0:
                return None
            self._start(delivery)
            room -= 1
        return now if len(pending) >= limit and room > 0 else None

    def _start(self, delivery: PendingDelivery) -> None:
        cursor = delivery.cursor
        task = asyncio.create_task(self._attempt(delivery), name=f"webhook-{cursor}")
        self._in_flight[cursor] = task
        task.add_done_callback(lambda done: self._finished(cursor, done))

    def _finished(self, cursor: int, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(cursor, None)
        if not task.cancelled() and (error := task.exception()) is not None:
            self._errors.append(error)
        self._wake.set()

    async def _attempt(self, delivery: PendingDelivery) -> None:
        s = self._settings
        now = self._clock()
        error: str | None
        try:
            # Bounds any poster, not only post_json: a hung request holds only its own event.
            async with asyncio.timeout(s.timeout):
                status = await self._poster(s.url, delivery.body, self.headers(delivery, now))
        except TimeoutError:
            error = f"POST to {self._where}: no answer within {s.timeout} s"
        except WebhookError as exc:
            error = str(exc)
        else:
            error = None if 200 <= status < 300 else f"HTTP status {status}"
        ok = error is None
        self._observer.webhook_delivery(ok)
        attempts = delivery.attempts + (0 if ok else 1)
        next_at: float | None = None
        if not ok and attempts < s.max_attempts:
            delay = retry_delay(attempts, first=s.first_delay, factor=s.factor, cap=s.max_delay)
            next_at = self._clock() + delay
        if ok:
            logger.debug("webhook: event %d delivered", delivery.cursor)
        elif next_at is None:
            logger.warning(
                "webhook: event %d given up after %d attempts: %s",
                delivery.cursor,
                attempts,
                error,
            )
        else:
            logger.info(
                "webhook: event %d attempt %d failed (%s); next in %.0f s",
                delivery.cursor,
                attempts,
                error,
                next_at - self._clock(),
            )
        await self._store.result(
            delivery.cursor,
            delivered=ok,
            attempts=attempts,
            next_attempt_at=next_at,
            error=error,
        )

    async def run(self) -> None:
        """Deliver forever: sleep until the next due attempt, a finished attempt or a
        :meth:`wake`; cancel to stop (attempts in flight are cancelled and stay pending).

        A store error is logged and retried after ``first_delay`` so a transient failure does
        not stop deliveries for good.
        """
        try:
            while True:
                self._wake.clear()
                try:
                    self._raise_errors()
                    next_due = await self._start_due()
                except Exception:
                    logger.exception("webhook: delivery round failed")
                    next_due = self._clock() + self._settings.first_delay
                timeout = None if next_due is None else max(0.0, next_due - self._clock())
                if timeout == 0:
                    await asyncio.sleep(0)  # let the attempts just started run
                    continue
                with suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
        finally:
            tasks = tuple(self._in_flight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
