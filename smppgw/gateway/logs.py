"""Logging for the daemon and the CLI: text or JSON lines, a SIGHUP-reopenable file, and
redaction of secret values.

Libraries log to ``logging.getLogger(__name__)`` and never configure logging; the CLI calls
:func:`setup_logging` once. JSON lines carry ``ts`` (RFC 3339, UTC), ``level``, ``logger``,
``msg``, any ``extra=`` fields, and ``exc`` for tracebacks, so a log shipper needs no parsing
rules. Secret values (the SMPP password, the webhook secret) are replaced by ``***`` wherever
they would appear in a message; the configuration's ``repr`` already hides them, this is the
second line of defence.

Repeated warnings: a bind that cannot connect, or a store that keeps failing, would write the
same line again and again. :class:`RepeatFilter` lets the first through, holds back identical
ones (same logger, level and text) for a minute, and the next one after that carries the count:
``bind smpp1/trx-0: connect to ... refused (repeated 37 times in the last 60 s)``; counts still
held back at exit are written then.

Log rotation: ``logrotate`` moves the file and sends SIGHUP; the handler then reopens its path
on the next record (the signal handler only sets a flag, because reopening inside a signal
handler could interrupt a write in progress on the same stream).
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TextIO

import msgspec

__all__ = [
    "JsonFormatter",
    "LogSetup",
    "RedactingFilter",
    "ReopenableFileHandler",
    "RepeatFilter",
    "install_sighup",
    "setup_logging",
]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else came through ``extra=``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for the keys)."""

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in body:
                body[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return self._encoder.encode(body).decode("utf-8")


class RedactingFilter(logging.Filter):
    """Replaces each secret value in a record's final message by ``***``."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = tuple(sorted((s for s in secrets if s), key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg = redacted
            record.args = None
        if record.exc_info or record.exc_text:
            # Another handler may have formatted the traceback already (exc_text is cached
            # on the record): redact whichever text the formatters will use.
            text = record.exc_text or ""
            if not text and record.exc_info:
                text = logging.Formatter().formatException(record.exc_info)
            for secret in self._secrets:
                text = text.replace(secret, "***")
            record.exc_text = text
        return True


@dataclass(slots=True)
class _Repeat:
    since: float  # when the line was last let through
    held: int = 0  # identical lines held back since


class RepeatFilter(logging.Filter):
    """Holds back repeats of identical records at ``level`` or above for ``window`` seconds.

    The first record goes through; identical ones (same logger, level and message) within
    ``window`` seconds of it are counted, not written; the first one after that goes through
    with `` (repeated N times in the last S s)`` appended (and ``repeated`` as an extra field).

    Args:
        window: seconds during which repeats are held back.
        level: records below this level always go through.
        clock: a monotonic clock (tests pass a fake one).
        max_lines: distinct lines remembered; beyond it, lines with nothing held back and
            past their window are forgotten first.
    """

    def __init__(
        self,
        window: float = 60.0,
        *,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
        max_lines: int = 1024,
    ) -> None:
        super().__init__()
        self._window = window
        self._level = level
        self._clock = clock
        self._max_lines = max_lines
        self._lines: dict[tuple[str, int, str], _Repeat] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self._level:
            return True
        message = record.getMessage()
        key = (record.name, record.levelno, message)
        now = self._clock()
        line = self._lines.get(key)
        if line is not None and now - line.since < self._window:
            line.held += 1
            return False
        if line is not None and line.held:
            record.msg = f"{message} {_repeated(line, now)}"
            record.args = None
            record.repeated = line.held
        self._lines[key] = _Repeat(now)
        if len(self._lines) > self._max_lines:
            self._forget(now)
        return True

    def held_back(self) -> list[logging.LogRecord]:
        """A record for each line with repeats still held back (written at exit), and forget
        them."""
        now = self._clock()
        records = []
        for (name, level, message), line in self._lines.items():
            if line.held:
                record = logging.makeLogRecord(
                    {
                        "name": name,
                        "levelno": level,
                        "levelname": logging.getLevelName(level),
                        "msg": f"{message} {_repeated(line, now)}",
                        "repeated": line.held,
                    }
                )
                records.append(record)
        self._lines.clear()
        return records

    def _forget(self, now: float) -> None:
        stale = [k for k, v in self._lines.items() if not v.held and now - v.since >= self._window]
        for key in stale:
            del self._lines[key]
        if len(self._lines) > self._max_lines:  # all busy: forget the oldest half
            for key in list(self._lines)[: len(self._lines) // 2]:
                del self._lines[key]


def _repeated(line: _Repeat, now: float) -> str:
    times = "once" if line.held == 1 else f"{line.held} times"
    return f"(repeated {times} in the last {now - line.since:.0f} s)"


class ReopenableFileHandler(logging.FileHandler):
    """A file handler that reopens its path after :meth:`request_reopen` (SIGHUP)."""

    def __init__(self, filename: str) -> None:
        super().__init__(filename, mode="a", encoding="utf-8", delay=False)
        self._reopen = False

    def request_reopen(self) -> None:
        """Reopen the file before the next record (safe to call from a signal handler)."""
        self._reopen = True

    def emit(self, record: logging.LogRecord) -> None:
        if self._reopen:
            self._reopen = False
            self.acquire()
            try:
                if self.stream is not None:
                    self.stream.close()
                self.stream = self._open()
            finally:
                self.release()
        super().emit(record)


@dataclass(slots=True)
class LogSetup:
    """What :func:`setup_logging` installed, to reopen or remove it."""

    handler: logging.Handler
    file_handler: ReopenableFileHandler | None = None
    _root_level: int = field(default=logging.WARNING)
    repeats: RepeatFilter | None = None

    def reopen(self) -> None:
        """Reopen the log file (if logging to a file) before the next record."""
        if self.file_handler is not None:
            self.file_handler.request_reopen()

    def close(self) -> None:
        """Write the repeats still held back, remove the handler from the root logger and
        close it."""
        if self.repeats is not None:
            for record in self.repeats.held_back():
                self.handler.handle(record)
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._root_level)
        self.handler.close()


def setup_logging(
    level: str = "info",
    fmt: str = "text",
    file: str | None = None,
    *,
    secrets: Sequence[str] = (),
    stream: TextIO | None = None,
    repeats: RepeatFilter | None = None,
) -> LogSetup:
    """Send every log record at ``level`` or above to ``file`` (or ``stream``/stderr).

    Args:
        level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
        fmt: ``text`` or ``json``.
        file: a path to append to (reopened on :meth:`LogSetup.reopen`); None for the stream.
        secrets: values never to appear in a message.
        stream: the stream when ``file`` is None (stderr by default; systemd's journal and
            Docker collect it).
        repeats: how repeated warnings are held back (default: a :class:`RepeatFilter` with a
            60 s window).

    Returns:
        The installed setup; :meth:`LogSetup.close` removes it.

    Raises:
        ValueError: an unknown level or format.
        OSError: the file cannot be opened.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r} (text or json)")
    file_handler = ReopenableFileHandler(file) if file is not None else None
    handler: logging.Handler = file_handler or logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    repeats = repeats or RepeatFilter()
    handler.addFilter(repeats)  # first: a line held back costs no redaction
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    setup = LogSetup(handler, file_handler, root.level, repeats)
    root.addHandler(handler)
    root.setLevel(numeric)
    return setup


def install_sighup(setup: LogSetup) -> Callable[[], None]:
    """Make SIGHUP reopen the log file; returns a function restoring the previous handler.

    Must be called from the main thread (a :mod:`signal` rule). A daemon that handles SIGHUP
    itself through its event loop should call :meth:`LogSetup.reopen` from that handler instead.
    """
    previous = signal.getsignal(signal.SIGHUP)

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        setup.reopen()

    signal.signal(signal.SIGHUP, on_hup)

    def restore() -> None:
        signal.signal(signal.SIGHUP, previous)

    return restore
