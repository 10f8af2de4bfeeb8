"""One client connection: line framing, pipelined requests answered in order, and the event
stream of a subscription.

Memory is bounded per connection: at most ``pipeline`` requests in flight, and reading pauses
while the bytes of unanswered requests plus unwritten replies exceed ``max_connection_buffer``
(a client that pipelines without reading its replies is simply not read any more; the
kernel's socket buffers then stop it). A line is bounded in length (``max_line``) and in the
time it may stay unfinished (``line_timeout``).
"""

from __future__ import annotations

import asyncio
import enum
import logging

import msgspec

from smppgw.esme.observe import Observer
from smppgw.gateway.intake.admin import peer_of
from smppgw.gateway.intake.handler import Reply, RequestHandler
from smppgw.gateway.intake.protocol import ErrorCode, error_line
from smppgw.gateway.intake.settings import IntakeSettings

__all__ = ["CHUNK", "Connection", "LineReader"]

logger = logging.getLogger("smppgw.gateway.intake")

CHUNK = 65536
"""Bytes read from a client at a time."""


class _Read(enum.Enum):
    """What :meth:`LineReader.next_line` returns instead of a line."""

    LINE_TOO_LONG = "line_too_long"  # a line over max_line was read and discarded
    LINE_TIMEOUT = "line_timeout"  # a line stayed unfinished for line_timeout seconds


class Connection:
    """One client: reads lines, answers them in order, streams events once subscribed.

    Memory is bounded per connection: at most ``pipeline`` requests in flight, and reading
    pauses while the bytes of unanswered requests plus unwritten replies exceed
    ``max_connection_buffer`` (a client that pipelines without reading its replies is simply
    not read any more; the kernel's socket buffers then stop it).
    """

    def __init__(
        self,
        handler: RequestHandler,
        settings: IntakeSettings,
        observer: Observer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        admin_socket: bool = False,
    ) -> None:
        self._handler = handler
        self._peer = peer_of(writer.get_extra_info("socket"), admin_socket=admin_socket)
        self._observer = observer
        self._writer = writer
        self._settings = settings
        self._lines = LineReader(reader, settings.max_line, settings.line_timeout)
        self._stream: asyncio.Task[None] | None = None
        self._held = 0  # bytes of requests read and not answered, and of replies not written
        self._room = asyncio.Event()
        self._room.set()

    async def run(self) -> None:
        """Serve the client until it closes its side (or a line times out)."""
        replies: asyncio.Queue[asyncio.Task[Reply] | None] = asyncio.Queue(self._settings.pipeline)
        writer_task = asyncio.create_task(self._write_replies(replies))
        in_flight: set[asyncio.Task[Reply]] = set()
        try:
            while True:
                await self._room.wait()
                line = await self._lines.next_line()
                if line is None:
                    break
                if isinstance(line, _Read):
                    task = asyncio.create_task(self._refuse(line))
                else:
                    if not line.strip():
                        continue
                    self._hold(len(line))  # released once answered
                    task = asyncio.create_task(self._answer(line))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                await replies.put(task)
                if line is _Read.LINE_TIMEOUT:
                    break  # what comes next is the rest of a line, or nothing: stop reading
            await replies.put(None)
            await writer_task
        finally:
            writer_task.cancel()
            for task in in_flight:
                task.cancel()
            if self._stream is not None:
                self._stream.cancel()
            await asyncio.gather(writer_task, *in_flight, return_exceptions=True)
            if self._stream is not None:
                await asyncio.gather(self._stream, return_exceptions=True)

    def _hold(self, size: int) -> None:
        self._held += size
        if self._held > self._settings.max_connection_buffer:
            self._room.clear()
        elif not self._room.is_set():
            self._room.set()

    async def _answer(self, line: bytes) -> Reply:
        try:
            reply = await self._handler.answer(line, self._start_stream, self._peer)
        finally:
            self._hold(-len(line))
        self._hold(len(reply.data))  # released once written
        return reply

    async def _refuse(self, problem: _Read) -> Reply:
        if problem is _Read.LINE_TOO_LONG:
            code = ErrorCode.LINE_TOO_LONG
            message = f"line longer than {self._settings.max_line} bytes; discarded"
        else:
            code = ErrorCode.LINE_TIMEOUT
            message = (
                f"no end of line {self._settings.line_timeout:g} s after the line began; "
                "closing the connection"
            )
        data = error_line(msgspec.UNSET, code, message)
        self._hold(len(data))
        return Reply("invalid", data, ok=False)

    async def _write_replies(self, replies: asyncio.Queue[asyncio.Task[Reply] | None]) -> None:
        observer = self._observer
        broken = False
        while (task := await replies.get()) is not None:
            reply = await task
            observer.intake_request(reply.op, reply.ok)
            if broken:
                self._hold(-len(reply.data))
                continue  # keep consuming, so the reading side never blocks on a full queue
            try:
                self._writer.write(reply.data)
                await self._writer.drain()
            except ConnectionError:
                # The peer is gone: what it sent is still answered (a submit stays committed),
                # and aborting makes the reading side see EOF.
                broken = True
                self._writer.transport.abort()
                continue
            finally:
                self._hold(-len(reply.data))
            if reply.after is not None:
                reply.after()

    def _start_stream(self, cursor: int, types: frozenset[str]) -> None:
        if self._stream is not None:
            self._stream.cancel()  # a second subscribe replaces the first
        self._stream = asyncio.create_task(self._run_stream(cursor, types))

    async def _run_stream(self, cursor: int, types: frozenset[str]) -> None:
        try:
            await self._handler.stream_events(self._writer, cursor, types)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            logger.exception("intake: event stream failed")
            self._writer.write(
                error_line(msgspec.UNSET, ErrorCode.INTERNAL, "event stream failed; reconnect")
            )
            self._writer.close()


class LineReader:
    """Newline-delimited lines from a stream, with a bound on their length and on the time a
    line may stay unfinished (an idle connection between lines has no deadline)."""

    def __init__(self, reader: asyncio.StreamReader, max_line: int, timeout: float) -> None:
        self._reader = reader
        self._max_line = max_line
        self._timeout = timeout
        self._buffer = bytearray()
        self._discarding = False  # inside a line over max_line: dropping it up to its newline
        self._began = 0.0  # loop time the unfinished line's first byte was read
        self._last_read = 0.0
        self._eof = False

    async def next_line(self) -> bytes | _Read | None:
        """The next line without its newline; LINE_TOO_LONG after discarding one;
        LINE_TIMEOUT when a line stayed unfinished too long; None at EOF."""
        buffer = self._buffer
        while True:
            if (line := self._take_line()) is not None:
                return line
            if len(buffer) > self._max_line:
                self._discarding = True  # never buffer more than a line's worth
                buffer.clear()
            if self._eof:
                return self._at_eof()
            unfinished = bool(buffer) or self._discarding
            try:
                if unfinished:
                    async with asyncio.timeout_at(self._began + self._timeout):
                        chunk = await self._reader.read(CHUNK)
                else:
                    chunk = await self._reader.read(CHUNK)
            except TimeoutError:
                buffer.clear()
                self._discarding = False
                self._eof = True  # the stream is out of step: read no more
                return _Read.LINE_TIMEOUT
            self._last_read = asyncio.get_running_loop().time()
            if not chunk:
                self._eof = True
                continue
            if not unfinished:
                self._began = self._last_read
            buffer += chunk

    def _take_line(self) -> bytes | _Read | None:
        buffer = self._buffer
        end = buffer.find(b"\n")
        if end < 0:
            return None
        line = bytes(buffer[:end])
        del buffer[: end + 1]
        if buffer:
            self._began = self._last_read  # the next line began in the last read
        if self._discarding or end > self._max_line:
            self._discarding = False
            return _Read.LINE_TOO_LONG
        return line

    def _at_eof(self) -> bytes | _Read | None:
        if self._discarding:
            self._discarding = False
            return _Read.LINE_TOO_LONG  # EOF inside the long line: still answer it
        if self._buffer:
            line = bytes(self._buffer)  # a last line without newline still counts
            self._buffer.clear()
            return line
        return None
