"""The ``smppgw`` command: run the daemon, talk to it, check a configuration.

Commands::

    smppgw run --config PATH                 run the daemon
    smppgw simulate [OPTIONS]                run the SMSC simulator (see simulate --help)
    smppgw send --to N --text T [...]        submit one message
    smppgw send --file FILE.csv|.jsonl       submit many, with a progress bar on stderr
    smppgw send --dry-run [...]              what the message(s) would cost; nothing is sent
    smppgw status ID | --custom X | --ping   a message's status, or check the daemon answers
    smppgw status --unmatched                receipts that matched no message
    smppgw events [--cursor N] [--follow]    print events; --follow tails, across restarts
    smppgw check-config --config PATH        validate a configuration and print a summary
    smppgw version | --version

Exit codes: 0 success; 1 the daemon refused something (a rejected message, an unknown id);
2 usage or configuration error; 3 the daemon cannot be reached; 130 interrupted.

Client commands find the socket with ``--socket``, else ``[intake] path`` of ``--config``,
else ``$SMPPGW_SOCKET``, else ``/run/smppgw/smppgw.sock``.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import csv
import dataclasses
import importlib
import io
import logging
import os
import platform
import re
import sys
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO, TypeGuard

import msgspec

from smppgw import __version__
from smppgw.gateway.events import EventType

__all__ = [
    "DEFAULT_SOCKET",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "main",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

DEFAULT_SOCKET = "/run/smppgw/smppgw.sock"
_REPLY_LIMIT = 16 * 1024 * 1024  # a batch reply lists one result per message
_OVERLOAD_RETRIES = 10
_DEFAULT_MAX_LINE = 65536  # [intake] max_line and max_batch of a daemon configured without them
_DEFAULT_MAX_BATCH = 1000

# Message fields a file row may hold, with how a CSV cell is converted.
_INT_FIELDS = frozenset({"max_parts", "priority"})
_BOOL_FIELDS = frozenset({"flash", "registered_delivery", "transliterate"})
_TIME_FIELDS = frozenset({"validity", "schedule"})
_FIELDS = frozenset(
    {"to", "from", "text", "hex", "coding", "pe_id", "template_id", "tm_id", "custom"}
    | _INT_FIELDS
    | _BOOL_FIELDS
    | _TIME_FIELDS
)
_BATCH_PREFIX = re.compile(r"^messages\[\d+\]\.")
_TRUE = frozenset({"1", "true", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "no", "n", "off"})


class CliError(Exception):
    """A problem to report on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# --- the socket client ------------------------------------------------------------------------


class _Client:
    """A newline-delimited JSON connection to the daemon's intake socket."""

    def __init__(
        self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.path = path
        self._reader = reader
        self._writer = writer
        self._decoder = msgspec.json.Decoder(dict[str, object])

    @classmethod
    async def connect(cls, path: str) -> _Client:
        try:
            reader, writer = await asyncio.open_unix_connection(path, limit=_REPLY_LIMIT)
        except OSError as exc:
            raise CliError(
                f"cannot reach the daemon at {path}: {exc.strerror or exc}", EXIT_UNAVAILABLE
            ) from exc
        return cls(path, reader, writer)

    def send(self, request: dict[str, object]) -> None:
        self._writer.write(msgspec.json.encode(request) + b"\n")

    def send_raw(self, line: bytes) -> None:
        self._writer.write(line)

    async def drain(self) -> None:
        await self._writer.drain()

    async def receive_line(self) -> bytes:
        try:
            return await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise CliError(
                f"the daemon at {self.path} closed the connection", EXIT_UNAVAILABLE
            ) from exc
        except OSError as exc:
            raise CliError(
                f"lost the connection to the daemon at {self.path}: {exc.strerror or exc}",
                EXIT_UNAVAILABLE,
            ) from exc

    def decode(self, line: bytes) -> dict[str, object]:
        return self._decoder.decode(line)

    async def receive(self) -> dict[str, object]:
        return self.decode(await self.receive_line())

    async def call(self, request: dict[str, object]) -> dict[str, object]:
        self.send(request)
        await self.drain()
        return await self.receive()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


@dataclass(frozen=True, slots=True)
class _Intake:
    """Where the daemon listens, and the limits of its requests (the daemon's defaults)."""

    path: str
    max_line: int = _DEFAULT_MAX_LINE
    max_batch: int = _DEFAULT_MAX_BATCH


def _intake(args: argparse.Namespace) -> _Intake:
    """The socket (see the module's docstring) and, from ``--config``, its request limits."""
    section: dict[str, object] = {}
    if args.config:
        # Only [intake] is read: a client needs neither the secrets nor full validation.
        try:
            with Path(args.config).open("rb") as file:
                data = tomllib.load(file)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CliError(f"{args.config}: {exc}") from exc
        found = data.get("intake", {})
        section = found if isinstance(found, dict) else {}
    path = section.get("path")
    if isinstance(path, str) and path:
        # Relative to the file's folder, as the daemon reads it: any working directory works.
        path = os.path.normpath(Path(args.config).absolute().parent / path)
    if args.socket:
        path = str(args.socket)
    elif not args.config:
        path = os.environ.get("SMPPGW_SOCKET")
    max_line = section.get("max_line")
    max_batch = section.get("max_batch")
    return _Intake(
        path if isinstance(path, str) and path else DEFAULT_SOCKET,
        max_line if _is_count(max_line) else _DEFAULT_MAX_LINE,
        max_batch if _is_count(max_batch) else _DEFAULT_MAX_BATCH,
    )


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _socket_path(args: argparse.Namespace) -> str:
    return _intake(args).path


def _error_text(reply: dict[str, object]) -> str:
    return f"{reply.get('error')}: {reply.get('message')}"


# --- send -----------------------------------------------------------------------------------


def _message_from_args(args: argparse.Namespace) -> dict[str, object]:
    """Message fields given as options (also the defaults for every row of --file)."""
    given = {
        "to": args.to,
        "from": args.sender,
        "text": args.text,
        "hex": args.hex,
        "coding": args.coding,
        "pe_id": args.pe_id,
        "template_id": args.template_id,
        "tm_id": args.tm_id,
        "validity": _time_value(args.validity),
        "schedule": _time_value(args.schedule),
        "max_parts": args.max_parts,
        "custom": args.custom,
        "priority": args.priority,
    }
    message: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    if args.flash:
        message["flash"] = True
    if args.no_dlr:
        message["registered_delivery"] = False
    if args.transliterate:
        message["transliterate"] = True
    return message


def _time_value(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


class _RowError(ValueError):
    """A malformed file row: reported with its line number while the other rows go on."""


class _InputError(CliError):
    """Input that is no message file (a line too long, bytes not UTF-8): reading stops."""


def _csv_value(name: str, cell: str) -> object:
    if name in _INT_FIELDS:
        if not cell.isdigit():
            raise _RowError(f"{name} must be an integer, got {cell!r}")
        return int(cell)
    if name in _BOOL_FIELDS:
        if cell.lower() in _TRUE:
            return True
        if cell.lower() in _FALSE:
            return False
        raise _RowError(f"{name} must be true or false, got {cell!r}")
    if name in _TIME_FIELDS:
        return _time_value(cell)
    return cell


def _lines(file: BinaryIO, name: str, limit: int) -> Iterator[tuple[int, str]]:
    """(number, text) of every line of ``file``; a UTF-8 byte order mark is dropped.

    Raises:
        _InputError: a line longer than ``limit`` bytes (no more of it is read, so that an
            endless line, ``--file - < /dev/zero``, costs ``limit`` bytes of memory, not all of
            it), or a line that is not UTF-8.
    """
    number = 0
    while raw := file.readline(limit + 1):
        number += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            raise _InputError(
                f"{name}:{number}: line longer than {limit} bytes (the daemon's [intake] max_line)"
            )
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _InputError(
                f"{name}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte "
                f"{exc.start + 1} of the line); save the file as UTF-8"
            ) from None
        yield number, text


# A file row: (line number, the message) or (line number, why the row is malformed).
_Row = tuple[int, dict[str, object] | str]


def _rows(file: BinaryIO, fmt: str, name: str, limit: int) -> Iterator[_Row]:
    """Every row of a CSV file (with a header) or a JSONL file; blank lines are skipped.

    Raises:
        _InputError: see :func:`_lines`; also a CSV header naming unknown columns, or a CSV
            structure error (an unclosed quote running past the field size limit).
    """
    lines = _lines(file, name, limit)
    if fmt == "jsonl":
        yield from _jsonl_rows(lines)
        return
    reader = csv.reader(text for _, text in lines)
    try:
        header = next(reader, None)
        if header is None:
            return
        unknown = sorted(set(header) - _FIELDS)
        if unknown:
            raise _InputError(f"{name}:1: unknown column(s) {', '.join(unknown)}")
        last = reader.line_num
        for cells in reader:
            first, last = last + 1, reader.line_num
            if not any(cells):
                continue
            if len(cells) > len(header):
                yield first, f"{len(cells)} cells where the header has {len(header)}"
                continue
            try:
                yield first, {k: _csv_value(k, v) for k, v in zip(header, cells, strict=False) if v}
            except _RowError as exc:
                yield first, str(exc)
    except csv.Error as exc:
        raise _InputError(f"{name}:{reader.line_num}: {exc}") from None


def _jsonl_rows(lines: Iterator[tuple[int, str]]) -> Iterator[_Row]:
    decoder = msgspec.json.Decoder(dict[str, object])
    for number, text in lines:
        if not text.strip():
            continue
        try:
            message = decoder.decode(text)
        except msgspec.DecodeError as exc:
            yield number, f"not a JSON object: {exc}"
            continue
        unknown = sorted(set(message) - _FIELDS)
        if unknown:
            yield number, f"unknown field(s) {', '.join(unknown)}"
            continue
        yield number, message


@dataclass(slots=True)
class _Progress:
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
class _SendTotals:
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


class _FileSender:
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
        rows: Iterator[_Row],
        *,
        defaults: dict[str, object],
        batch: int,
        window: int,
        max_line: int,
        progress: _Progress,
        json_out: TextIO | None,
        op: str = "submit",
        preview_out: TextIO | None = None,
    ) -> None:
        self._path = path
        self._client: _Client | None = None  # connected when the first batch is ready
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
        self.stopped: _InputError | None = None
        self.totals = _SendTotals()

    def _read(self) -> tuple[int, bytes] | None:
        """The next well-formed row as JSON; malformed rows are recorded on the way."""
        while self.stopped is None:
            try:
                line, message = next(self._rows)
            except StopIteration:
                return None
            except _InputError as exc:
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
            head, *rest = _preview_lines(result)
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

    async def run(self) -> _SendTotals:
        """Send every row; returns the totals once every request is answered."""
        try:
            while True:
                while len(self._in_flight) < self._window and (item := self._next_batch()):
                    if self._client is None:
                        self._retry.appendleft(item)  # counted as unanswered if this fails
                        self._client = await _Client.connect(self._path)
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


_ROW_OPTIONS = (("--to", "to"), ("--text", "text"), ("--hex", "hex"), ("--custom", "custom"))
_MAX_WINDOW = 1024


async def _cmd_send(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    intake = _intake(args)
    message = _message_from_args(args)
    if args.file is None:
        if "to" not in message or not {"text", "hex"} & message.keys():
            raise CliError("give --to and --text (or --hex), or --file")
    else:
        _check_file_options(args, intake)
        return await _send_from_file(args, intake=intake, defaults=message, out=out, err=err)
    client = await _Client.connect(intake.path)
    try:
        reply = await client.call({"op": "preview" if args.dry_run else "submit", **message})
        if args.json:
            out.write(msgspec.json.encode(reply).decode() + "\n")
        elif args.dry_run:
            (out if reply.get("ok") else err).writelines(_preview_lines(reply))
        elif reply.get("ok"):
            kind = "duplicate of" if reply.get("duplicate") else "accepted"
            out.write(f"{kind} id={reply.get('id')} parts={reply.get('parts')}\n")
        else:
            err.write(f"rejected: {_printable(_error_text(reply))}\n")
        return EXIT_OK if reply.get("ok") else EXIT_FAILED
    finally:
        await client.close()


def _check_file_options(args: argparse.Namespace, intake: _Intake) -> None:
    per_row = [flag for flag, name in _ROW_OPTIONS if getattr(args, name) is not None]
    if per_row:
        raise CliError(
            f"{', '.join(per_row)} cannot be used with --file: the value would be the same for "
            "every row (give it as a column or key of the file)"
        )
    if not 1 <= args.batch <= intake.max_batch:
        raise CliError(f"--batch must be 1..{intake.max_batch} messages, got {args.batch}")
    if not 1 <= args.window <= _MAX_WINDOW:
        raise CliError(f"--window must be 1..{_MAX_WINDOW} requests, got {args.window}")


async def _send_from_file(
    args: argparse.Namespace,
    *,
    intake: _Intake,
    defaults: dict[str, object],
    out: TextIO,
    err: TextIO,
) -> int:
    name = str(args.file)
    fmt = args.format or ("csv" if name.lower().endswith(".csv") else "jsonl")
    async with contextlib.AsyncExitStack() as stack:
        total = None
        if name == "-":
            file: BinaryIO = sys.stdin.buffer
        else:
            path = Path(name)
            file = stack.enter_context(_open_rows(path))
            total = _count_rows(path, fmt, name, intake.max_line)
        progress = _Progress(err, total, enabled=not args.quiet and (args.progress or err.isatty()))
        sender = _FileSender(
            intake.path,
            _rows(file, fmt, name, intake.max_line),
            defaults=defaults,
            batch=args.batch,
            window=args.window,
            max_line=intake.max_line,
            progress=progress,
            json_out=out if args.json else None,
            op="preview" if args.dry_run else "submit",
            preview_out=out if args.dry_run and not args.json else None,
        )
        stack.push_async_callback(sender.close)
        started = time.monotonic()
        try:
            totals = await sender.run()
        finally:
            progress.finish()
            _summary(
                sender,
                time.monotonic() - started,
                out if not args.json else err,
                err,
                dry_run=args.dry_run,
            )
    if sender.stopped is not None:
        raise _InputError(f"{sender.stopped}; reading stopped there, the rows before it were sent")
    return EXIT_FAILED if totals.rejected or totals.malformed else EXIT_OK


def _summary(
    sender: _FileSender, elapsed: float, out: TextIO, err: TextIO, *, dry_run: bool = False
) -> None:
    """The rows not accepted (the first 20), then one line of totals: printed however it ends."""
    totals = sender.totals
    err.writelines(f"{_printable(text)}\n" for text in totals.problems)
    hidden = totals.rejected + totals.malformed - len(totals.problems)
    if hidden > 0:
        err.write(f"... and {hidden} more rows not accepted\n")
    rows = totals.accepted + totals.rejected + totals.malformed + totals.unanswered
    if dry_run:
        line = (
            f"{rows} messages previewed in {elapsed:.1f} s, nothing sent: {totals.accepted} "
            f"would be accepted ({totals.parts} parts), {totals.rejected} would be rejected, "
            f"{totals.malformed} malformed"
        )
    else:
        line = (
            f"{rows} messages in {elapsed:.1f} s: {totals.accepted} accepted "
            f"({totals.duplicates} duplicates), {totals.rejected} rejected, "
            f"{totals.malformed} malformed"
        )
    if totals.unanswered:
        line += f", {totals.unanswered} without an answer (resend them with the same custom)"
    out.write(line + "\n")


def _open_rows(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}") from exc


def _count_rows(path: Path, fmt: str, name: str, limit: int) -> int | None:
    """The rows of a regular file (for the progress bar); None for a pipe or a device.

    The file is read through once before anything is sent, so that a line too long or not
    UTF-8 stops the run with nothing sent (from a pipe, the rows before such a line have gone).

    Raises:
        _InputError: the file is no message file; nothing has been sent.
    """
    try:
        if not path.is_file():
            return None
        with path.open("rb") as file:
            return sum(1 for _ in _rows(file, fmt, name, limit))
    except _InputError as exc:
        raise _InputError(f"{exc}; nothing was sent") from None
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}") from exc


def _preview_lines(result: dict[str, object]) -> list[str]:
    """A preview result in words: ``would be accepted: gsm, 2 parts`` (or ``would be
    rejected: ERROR: ...``), a line per part, then the cost transliterated when there is one."""
    if result.get("ok"):
        lines = [f"would be accepted: {_cost(result)}"]
        split = result.get("split")
        for number, part in enumerate(split if isinstance(split, list) else [], 1):
            assert isinstance(part, dict)
            sizes = [f"{part[k]} {k}" for k in ("chars", "septets", "octets") if k in part]
            content = str(part["text"] if "text" in part else part.get("hex"))
            lines.append(f'  part {number}: {", ".join(sizes)}: "{_printable(content)}"')
    else:
        lines = [f"would be rejected: {_printable(_error_text(result))}"]
    alternative = result.get("transliterated")
    if isinstance(alternative, dict):
        lines.append(f"  transliterated (--transliterate): {_cost(alternative)}")
    return [f"{line}\n" for line in lines]


def _cost(result: dict[str, object]) -> str:
    parts = result.get("parts")
    return f"{result.get('coding')}, {parts} part{'' if parts == 1 else 's'}"


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\u001b``...) for a terminal.

    A payload field may hold anything a remote party sent; printed raw, an escape sequence
    would drive the terminal and a newline would forge a line of output.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_ESCAPES.get(c) or (c if c.isprintable() else _escape(c)) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


# --- status, events -----------------------------------------------------------------------


def _text_value(value: object) -> str:
    """A payload value as ``status`` prints it: ``true``/``false``, numbers, strings with
    control characters escaped, anything nested as compact JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _printable(value)
    if isinstance(value, int | float):
        return str(value)
    return _printable(msgspec.json.encode(value).decode())


def _fields_text(fields: dict[str, object]) -> str:
    """``key=value`` pairs of the fields that are not null."""
    return " ".join(f"{_printable(k)}={_text_value(v)}" for k, v in fields.items() if v is not None)


async def _cmd_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    chosen = args.ping + args.unmatched + (args.id is not None) + (args.custom is not None)
    if chosen != 1:
        raise CliError("status: give a message id, --custom X, --unmatched or --ping")
    client = await _Client.connect(_socket_path(args))
    try:
        if args.ping:
            reply = await client.call({"op": "ping"})
            version = _text_value(reply.get("version"))
            out.write(f"pong from smppgw {version} at {client.path}\n")
            return EXIT_OK if reply.get("ok") else EXIT_FAILED
        if args.unmatched:
            reply = await client.call({"op": "unmatched", "limit": args.limit})
            return _print_unmatched(reply, args, out, err)
        query = {"id": args.id} if args.id is not None else {"custom": args.custom}
        reply = await client.call({"op": "status", **query})
    finally:
        await client.close()
    if not reply.get("ok"):
        err.write(f"{_printable(_error_text(reply))}\n")
        return EXIT_FAILED
    status = reply.get("status")
    if args.json:
        out.write(msgspec.json.encode(status).decode() + "\n")
        return EXIT_OK
    assert isinstance(status, dict)
    for key, value in status.items():
        if key == "parts" and isinstance(value, list):
            for part in value:
                assert isinstance(part, dict)
                number = part.pop("part", None)
                out.write(f"part {_text_value(number)}: {_fields_text(part)}\n")
        elif value is not None:
            out.write(f"{_printable(key)}: {_text_value(value)}\n")
    return EXIT_OK


def _print_unmatched(
    reply: dict[str, object], args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    if not reply.get("ok"):
        err.write(f"{_printable(_error_text(reply))}\n")
        return EXIT_FAILED
    receipts = reply.get("receipts")
    assert isinstance(receipts, list)
    if args.json:
        document = {"count": reply.get("count"), "receipts": receipts}
        out.write(msgspec.json.encode(document).decode() + "\n")
        return EXIT_OK
    out.write(f"{_text_value(reply.get('count'))} delivery receipts matched no message\n")
    for receipt in receipts:
        assert isinstance(receipt, dict)
        out.write(_fields_text(receipt) + "\n")
    return EXIT_OK


_EVENT_TYPES = tuple(t.value for t in EventType)
_RECONNECT_FIRST = 0.1  # seconds before the first attempt to reconnect, doubling up to:
_RECONNECT_MAX = 5.0


class _EventStream:
    """One subscription, followed across reconnects: the cursor is the last event seen."""

    def __init__(
        self, path: str, types: frozenset[str], out: TextIO, err: TextIO, client: _Client
    ) -> None:
        self.path = path
        self.cursor = 0
        self._types = types
        self._out = out
        self._err = err
        self._client = client

    async def subscribe(self, cursor: int | None) -> int:
        """Subscribe after ``cursor`` (None: now); returns the newest event's cursor."""
        request: dict[str, object] = {"op": "subscribe"}
        if cursor is not None:
            request["cursor"] = cursor
        # Types are filtered here, not by the daemon: every event's cursor must arrive for
        # the command to know when it has caught up, and to resume after the last one.
        reply = await self._client.call(request)
        if not reply.get("ok"):
            raise CliError(_printable(_error_text(reply)), EXIT_FAILED)
        start, last = reply.get("cursor"), reply.get("last")
        assert isinstance(start, int)
        assert isinstance(last, int)
        self.cursor = start
        return last

    async def print_until(self, last: int | None) -> None:
        """Print events until the one at ``last`` (None: for ever).

        Raises:
            CliError: EXIT_UNAVAILABLE when the connection is lost, EXIT_FAILED when the
                daemon ends the stream with an error.
        """
        client = self._client
        while last is None or self.cursor < last:
            line = await client.receive_line()
            event = client.decode(line)
            cursor = event.get("cursor")
            if not isinstance(cursor, int):  # an error line: the daemon ends the stream
                raise CliError(_printable(_error_text(event)), EXIT_FAILED)
            if not self._types or event.get("event") in self._types:
                self._out.write(line.decode("utf-8"))
                self._out.flush()
            self.cursor = cursor

    async def reconnect(self, why: CliError) -> None:
        """Connect and subscribe again after the last cursor seen, backing off up to 5 s."""
        self.say(f"{why}; reconnecting, to resume after cursor {self.cursor}")
        await self._client.close()
        delay = _RECONNECT_FIRST
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX)
            try:
                self._client = await _Client.connect(self.path)
            except CliError:
                continue
            try:
                await self.subscribe(self.cursor)
            except CliError as exc:
                await self._client.close()
                if exc.code != EXIT_UNAVAILABLE:
                    raise
                continue
            self.say(f"reconnected to {self.path}; resuming after cursor {self.cursor}")
            return

    def say(self, text: str) -> None:
        self._err.write(f"smppgw events: {text}\n")
        self._err.flush()

    async def close(self) -> None:
        await self._client.close()


async def _cmd_events(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.cursor is not None and args.cursor < 0:
        raise CliError(f"--cursor must be 0 or more, got {args.cursor}")
    path = _socket_path(args)
    stream = _EventStream(path, frozenset(args.type or ()), out, err, await _Client.connect(path))
    try:
        last = await stream.subscribe(args.cursor)
        if args.cursor is None:
            verb, more = (
                ("following", "") if args.follow else ("printing", ", --follow to keep going")
            )
            stream.say(
                f"{verb} events from now (cursor {stream.cursor}); --cursor 0 for the stored "
                f"history{more}"
            )
        elif args.follow:
            stream.say(f"following events after cursor {stream.cursor}")
        while True:
            try:
                await stream.print_until(None if args.follow else last)
            except CliError as exc:
                if not args.follow or exc.code != EXIT_UNAVAILABLE:
                    raise
                await stream.reconnect(exc)
            else:
                return EXIT_OK
    finally:
        await stream.close()


# --- run, check-config, simulate, version -------------------------------------------------


def _cmd_check_config(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from smppgw.gateway.config import ConfigError, load_config, summary  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    out.write(summary(config) + "\nconfiguration OK\n")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace, _out: TextIO, err: TextIO) -> int:
    from smppgw.codec.errors import SmppError  # noqa: PLC0415
    from smppgw.gateway.config import (  # noqa: PLC0415
        ConfigError,
        load_config,
        secrets,
        startup_warnings,
    )
    from smppgw.gateway.logs import install_sighup, setup_logging  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    try:
        setup = setup_logging(
            args.log_level or config.log.level,
            args.log_format or config.log.format,
            config.log.file,
            secrets=secrets(config),
            stream=err,
        )
    except (OSError, ValueError) as exc:
        err.write(f"cannot set up logging: {exc}\n")
        return EXIT_USAGE
    restore = install_sighup(setup)
    try:
        for warning in startup_warnings(config):
            logging.getLogger("smppgw").warning("%s", warning)
        daemon = importlib.import_module("smppgw.gateway.daemon")
        run: Callable[[object], int] = daemon.run
        return run(config)
    except SmppError as exc:  # the daemon's StartupError, logged already
        if config.log.file is not None:
            # A log file is not where someone starting the daemon looks first.
            err.write(f"smppgw run: {exc}\n")
        if isinstance(exc.__cause__, ConfigError):
            return EXIT_USAGE
        code = getattr(exc, "exit_code", EXIT_FAILED)
        return code if isinstance(code, int) else EXIT_FAILED
    finally:
        restore()
        setup.close()


async def _cmd_doctor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from smppgw.esme.numbers import NumberError, validate_msisdn, validate_sender  # noqa: PLC0415
    from smppgw.gateway.config import ConfigError, bind_manager_settings, load_config  # noqa: PLC0415
    from smppgw.gateway.doctor import diagnose  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    sender = None
    try:
        if args.to is not None:
            validate_msisdn(args.to, field="--to")
            sender_id = args.sender or config.defaults.sender
            if sender_id is None:
                raise CliError("--to needs a sender: --from or [defaults] sender", EXIT_USAGE)
            sender = validate_sender(sender_id, field="--from")
    except NumberError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if args.receipt_timeout <= 0 or args.probes < 1:
        raise CliError("--receipt-timeout must be > 0 and --probes >= 1", EXIT_USAGE)
    if args.binds is not None and args.binds < 1:
        raise CliError("--binds must be >= 1", EXIT_USAGE)
    if config.simulator.enabled:
        err.write(
            "the servers are the simulator inside `smppgw run`: start the daemon first; its "
            "own binds count against the account's limit (use --binds 1)\n"
        )
    settings = bind_manager_settings(config)
    if args.binds is not None:
        servers = tuple(
            dataclasses.replace(
                server,
                binds=min(args.binds, server.binds),
                bind_type=server.bind_type
                if not isinstance(server.bind_type, tuple)
                else server.bind_type[: args.binds],
            )
            for server in settings.servers
            if server.binds > 0
        )
        settings = dataclasses.replace(settings, servers=servers)
    report = await diagnose(
        settings,
        test_to=args.to,
        sender=sender,
        receipt_timeout=args.receipt_timeout,
        probes=args.probes,
    )
    if args.json:
        out.write(msgspec.json.encode(report.to_json()).decode() + "\n")
    else:
        out.writelines(f"{line}\n" for line in report.lines())
    return EXIT_OK if report.ok else EXIT_FAILED


def _simulator_main() -> Callable[[Sequence[str] | None], int]:
    # The simulator's entry point lives in smppgw.testing.simulator.cli or
    # smppgw.testing.simulator.__main__.
    for name in ("smppgw.testing.simulator.cli", "smppgw.testing.simulator.__main__"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        entry: Callable[[Sequence[str] | None], int] = module.main
        return entry
    raise CliError("the simulator is not installed", EXIT_FAILED)


def _cmd_version(_args: argparse.Namespace, out: TextIO, _err: TextIO) -> int:
    out.write(f"smppgw {__version__} (Python {platform.python_version()})\n")
    return EXIT_OK


# --- argument parsing -----------------------------------------------------------------------


def _add_socket(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("daemon socket")
    group.add_argument("--socket", metavar="PATH", help="the intake socket path")
    group.add_argument("--config", metavar="PATH", help="read the socket path from a config")


def _add_doctor(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = commands.add_parser(
        "doctor", help="check every configured bind slot, and optionally send a test message"
    )
    doctor.add_argument("--config", required=True, metavar="PATH", help="TOML configuration")
    doctor.add_argument("--to", help="send one test message to this number, await its receipt")
    doctor.add_argument("--from", dest="sender", help="the test message's sender")
    doctor.add_argument(
        "--receipt-timeout", type=float, default=60.0, help="seconds to await the receipt (60)"
    )
    doctor.add_argument(
        "--probes", type=int, default=3, help="enquire_link round trips per bind (3)"
    )
    doctor.add_argument(
        "--binds", type=int, help="check at most this many slots per server (default: all)"
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_send(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser("send", help="submit one message, or many from a file")
    send.add_argument("--to", help="destination, E.164 digits without + (e.g. 14155550101)")
    send.add_argument("--from", dest="sender", help="sender id (default: [defaults] sender)")
    send.add_argument("--text", help="message text")
    send.add_argument("--hex", help="raw payload octets in hex (instead of --text)")
    send.add_argument("--coding", choices=["auto", "gsm", "latin1", "ucs2"])
    send.add_argument("--pe-id", help="DLT principal entity id")
    send.add_argument("--template-id", help="DLT template id")
    send.add_argument("--tm-id", help="DLT telemarketer id")
    send.add_argument("--flash", action="store_true", help="flash SMS (message class 0)")
    send.add_argument("--no-dlr", action="store_true", help="request no delivery receipt")
    send.add_argument("--validity", help="seconds, SMPP time or ISO 8601 time")
    send.add_argument("--schedule", help="seconds, SMPP time or ISO 8601 time")
    send.add_argument("--max-parts", type=int, help="refuse texts needing more parts")
    send.add_argument("--custom", help="your reference (idempotency key)")
    send.add_argument("--priority", type=int, choices=range(4), help="0..3")
    send.add_argument("--file", help="CSV (with header) or JSONL file of messages; - = stdin")
    send.add_argument("--format", choices=["csv", "jsonl"], help="file format (by extension)")
    send.add_argument("--batch", type=int, default=100, help="messages per request (100)")
    send.add_argument("--window", type=int, default=8, help="requests in flight (8)")
    send.add_argument("--progress", action="store_true", help="progress bar even off a tty")
    send.add_argument("--quiet", action="store_true", help="no progress bar")
    send.add_argument("--json", action="store_true", help="print replies as JSON lines")
    send.add_argument(
        "--transliterate",
        action="store_true",
        help="replace typographic quotes, dashes... with GSM look-alikes before coding",
    )
    send.add_argument(
        "--dry-run",
        action="store_true",
        help="only show the coding, parts and split each message would have; send nothing",
    )
    _add_socket(send)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smppgw",
        description="SMPP v3.4 gateway: daemon, client and simulator.",
        epilog="Exit codes: 0 ok, 1 refused by the daemon, 2 usage or configuration error, "
        "3 daemon unreachable, 130 interrupted.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"smppgw {__version__} (Python {platform.python_version()})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", required=True, metavar="PATH", help="TOML configuration")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument("--log-format", choices=["text", "json"])

    commands.add_parser("simulate", help="run the SMSC simulator (simulate --help)", add_help=False)

    _add_send(commands)

    status = commands.add_parser("status", help="a message's status, or --ping the daemon")
    status.add_argument("id", nargs="?", help="the message id returned by send")
    status.add_argument("--custom", help="look up by your reference instead")
    status.add_argument("--ping", action="store_true", help="only check the daemon answers")
    status.add_argument(
        "--unmatched",
        action="store_true",
        help="list the delivery receipts that matched no message (kept, never dropped)",
    )
    status.add_argument(
        "--limit", type=int, default=100, help="with --unmatched: how many to list (100)"
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    _add_socket(status)

    events = commands.add_parser("events", help="print events as JSON lines")
    events.add_argument(
        "--cursor", type=int, help="start after this cursor, 0 = the stored history (default: now)"
    )
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument(
        "--type",
        action="append",
        choices=_EVENT_TYPES,
        help="only this event type (repeatable)",
    )
    _add_socket(events)

    check = commands.add_parser("check-config", help="validate a configuration")
    check.add_argument("--config", required=True, metavar="PATH")

    _add_doctor(commands)
    commands.add_parser("version", help="print the version")
    return parser


_ASYNC_COMMANDS = {
    "send": _cmd_send,
    "status": _cmd_status,
    "events": _cmd_events,
    "doctor": _cmd_doctor,
}
_SYNC_COMMANDS = {"check-config": _cmd_check_config, "run": _cmd_run, "version": _cmd_version}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``smppgw`` command line; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["simulate"]:
        try:
            return _simulator_main()(args_list[1:])
        except CliError as exc:
            sys.stderr.write(f"smppgw simulate: {exc}\n")
            return exc.code
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    try:
        if args.command in _ASYNC_COMMANDS:
            return asyncio.run(_ASYNC_COMMANDS[args.command](args, out, err))
        return _SYNC_COMMANDS[args.command](args, out, err)
    except CliError as exc:
        err.write(f"smppgw {args.command}: {exc}\n")
        return exc.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `smppgw events | head`: the reader went away; not an error of ours. Point stdout at
        # nothing so the interpreter's final flush does not fail again.
        sys.stdout = io.TextIOWrapper(io.BytesIO())
        return EXIT_OK
