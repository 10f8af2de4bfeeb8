"""``send --file``: the file's rows pipelined to the daemon in batches, with a progress bar
and totals."""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

import msgspec

from smppgw.gateway.cli.client import EXIT_FAILED, Client, CliError
from smppgw.gateway.cli.output import preview_lines
from smppgw.gateway.cli.rows import InputError, Row

__all__ = ["FileSender", "Progress", "SendTotals"]

_OVERLOAD_RETRIES = 10
_BATCH_PREFIX = re.compile(r"^messages\[\d+\]\.")


@dataclass(slots=True)
class Progress:
    """A progress bar on a terminal (redrawn at most 10 times a second)."""

    stream: TextIO
    total: int | None
    enabled: bool
    done: int = 0
    failed: int = 0
    _last: float = 0.0
    _started: float = field(default_factory=time.monotonic)

    def update(self, processed: int, failed: int) -> None:
        self.done += processed
        self.failed += failed
        now = time.monotonic()
        if self.enabled and now - self._last >= 0.1:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self._started, 1e-9)
        if self.total:
            width = 30
            filled = int(width * min(self.done / self.total, 1.0))
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
        else:
            bar = f"{self.done} sent"
        self.stream.write(f"\r{bar}  {self.failed} rejected  {rate:.0f} msg/s ")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


# Rows of one request: (line number, the message encoded as JSON).
_Chunk = list[tuple[int, bytes]]
# A batch request (op submit, or preview for a dry run) around its messages.
_REQUEST = b'{"op":"%b","req":%d,"messages":[%b]}\n'
_SHOWN_PROBLEMS = 20


@dataclass(slots=True)
class SendTotals:
    accepted: int = 0
    parts: int = 0  # of the accepted messages
    duplicates: int = 0
    rejected: int = 0
    malformed: int = 0
    unanswered: int = 0  # sent (or read) when the run was cut short: their fate is unknown
    problems: list[str] = field(default_factory=list)  # the first few, printed at the end

    def problem(self, text: str) -> None:
        if len(self.problems) < _SHOWN_PROBLEMS:
            self.problems.append(text)


class FileSender:
    """Pipelines batches of messages, at most ``window`` requests unanswered.

    A batch holds at most ``batch`` messages and is cut short where one more would make the
    request line longer than the daemon's ``max_line``. Replies come in request order, so each
    reply belongs to the oldest request in flight. A batch answered ``overloaded`` is sent again
    after a pause (up to 10 times); one answered ``line_too_long`` (the daemon's limit is lower
    than assumed) is sent again in two halves.
    """

    def __init__(
        self,
        path: str,
        rows: Iterator[Row],
        *,
        defaults: dict[str, object],
        batch: int,
        window: int,
        max_line: int,
        progress: Progress,
        json_out: TextIO | None,
        op: str = "submit",
        preview_out: TextIO | None = None,
    ) -> None:
        self._path = path
        self._client: Client | None = None  # connected when the first batch is ready
        self._rows = rows
        self._defaults = defaults
        self._batch = batch
        self._window = window
        self._max_line = max_line
        self._progress = progress
        self._json_out = json_out
        self._op = op.encode()
        self._overhead = len(_REQUEST % (self._op, 2**31 - 1, b"")) - 1  # newline excluded
        self._preview_out = preview_out  # each result of a dry run, in words
        self._in_flight: deque[tuple[int, _Chunk, int]] = deque()
        self._retry: deque[tuple[_Chunk, int]] = deque()
        self._held: tuple[int, bytes] | None = None  # read, but did not fit the last batch
        self._number = 0
        self.stopped: InputError | None = None
        self.totals = SendTotals()

    def _read(self) -> tuple[int, bytes] | None:
        """The next well-formed row as JSON; malformed rows are recorded on the way."""
        while self.stopped is None:
            try:
                line, message = next(self._rows)
            except StopIteration:
                return None
            except InputError as exc:
                self.stopped = exc
                return None
            if isinstance(message, str):
                self._report(line, {"ok": False, "error": "malformed", "message": message})
                self.totals.malformed += 1
                self.totals.problem(f"line {line}: malformed: {message}")
                self._progress.update(1, 1)
                continue
            return line, msgspec.json.encode({**self._defaults, **message})
        return None

    def _next_batch(self) -> tuple[_Chunk, int] | None:
        if self._retry:
            return self._retry.popleft()
        chunk: _Chunk = []
        size = self._overhead
        while len(chunk) < self._batch:
            row = self._held or self._read()
            self._held = None
            if row is None:
                break
            _, encoded = row
            if size + len(encoded) + 1 <= self._max_line:
                chunk.append(row)
                size += len(encoded) + 1
            elif chunk:
                self._held = row
                break
            else:
                too_long = (
                    f"{len(encoded)} bytes as JSON, too long for a request line of the "
                    f"daemon's max_line ({self._max_line} bytes); not sent"
                )
                failure = {"ok": False, "error": "line_too_long", "message": too_long}
                self._record([row], [failure])
        return (chunk, 0) if chunk else None

    def _report(self, line: int, result: dict[str, object]) -> None:
        if self._json_out is not None:
            self._json_out.write(msgspec.json.encode({"line": line, **result}).decode() + "\n")
        if self._preview_out is not None:
            head, *rest = preview_lines(result)
            self._preview_out.writelines([f"line {line}: {head}", *rest])

    def _record(self, chunk: _Chunk, results: list[object]) -> None:
        failed = 0
        totals = self.totals
        for (line, _), result in zip(chunk, results, strict=True):
            assert isinstance(result, dict)
            self._report(line, result)
            if result.get("ok"):
                totals.accepted += 1
                parts = result.get("parts")
                totals.parts += parts if isinstance(parts, int) else 0
                totals.duplicates += bool(result.get("duplicate"))
            else:
                failed += 1
                totals.rejected += 1
                # A file row's errors need no "messages[i]." prefix: the line number says it.
                text = _BATCH_PREFIX.sub("", str(result.get("message")))
                totals.problem(f"line {line}: {result.get('error')}: {text}")
        self._progress.update(len(chunk), failed)

    async def run(self) -> SendTotals:
        """Send every row; returns the totals once every request is answered."""
        try:
            while True:
                while len(self._in_flight) < self._window and (item := self._next_batch()):
                    if self._client is None:
                        self._retry.appendleft(item)  # counted as unanswered if this fails
                        self._client = await Client.connect(self._path)
                        continue
                    chunk, attempt = item
                    self._number += 1
                    self._in_flight.append((self._number, chunk, attempt))
                    messages = b",".join(encoded for _, encoded in chunk)
                    self._client.send_raw(_REQUEST % (self._op, self._number, messages))
                if self._client is None:
                    return self.totals  # no row to send: the daemon is never contacted
                await self._client.drain()
                if not self._in_flight:
                    return self.totals
                await self._answer(await self._client.receive())
        finally:
            self.totals.unanswered = (
                sum(len(chunk) for _, chunk, _ in self._in_flight)
                + sum(len(chunk) for chunk, _ in self._retry)
                + (self._held is not None)
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def _answer(self, reply: dict[str, object]) -> None:
        req, chunk, attempt = self._in_flight.popleft()
        error = reply.get("error")
        if error == "line_too_long" and reply.get("req") is None:
            # The daemon discarded the line unread (its max_line is below the one assumed):
            # nothing of it was stored, so send it again in two halves.
            if len(chunk) > 1:
                half = len(chunk) // 2
                self._retry.extendleft([(chunk[half:], attempt), (chunk[:half], attempt)])
                return
        elif reply.get("req") != req:
            raise CliError(f"reply to request {reply.get('req')} where {req} was due", EXIT_FAILED)
        results = reply.get("results")
        if reply.get("ok") and isinstance(results, list):
            self._record(chunk, results)
        elif error == "overloaded" and attempt < _OVERLOAD_RETRIES:
            await asyncio.sleep(min(0.1 * 2**attempt, 5.0))
            self._retry.append((chunk, attempt + 1))
        else:
            failure = {"ok": False, "error": error, "message": reply.get("message")}
            self._record(chunk, [failure] * len(chunk))
