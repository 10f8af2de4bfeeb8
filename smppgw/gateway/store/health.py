"""What the store's failures mean, how healthy it is, and logging them without a flood.

SQLite reports a full disk (or a store at its size limit) as ``SQLITE_FULL``, a damaged file as
``SQLITE_CORRUPT`` or ``SQLITE_NOTADB``, and a failing device as ``SQLITE_IOERR``. A full disk
is temporary: nothing written is lost, the writes that failed were rolled back, and the store
works again in place once space returns. Corruption is not: it stays unhealthy until an
operator repairs the file.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from smppgw.codec.errors import SmppError

__all__ = [
    "LogLimiter",
    "StorageFullError",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreHealth",
    "store_error",
]


class StoreError(SmppError):
    """The store could not do what was asked (the message says what and why)."""


class StoreClosedError(StoreError):
    """The store is closed (or its writer stopped for good)."""


class StorageFullError(StoreError):
    """The disk holding the store is full (SQLITE_FULL): nothing of the operation was written."""


class StoreCorruptError(StoreError):
    """The database file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB)."""


_FULL = 13  # SQLITE_FULL
_CORRUPT = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


def store_error(exc: BaseException, what: str) -> StoreError:
    """The typed error for a failure of the database (``what`` names the step)."""
    if isinstance(exc, StoreError):
        return exc
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.Error) else None
    primary = None if code is None else code & 0xFF
    error: StoreError
    if primary == _FULL:
        error = StorageFullError(f"{what}: the disk is full ({exc})")
    elif primary in _CORRUPT:
        error = StoreCorruptError(f"{what}: the database is damaged ({exc})")
    else:
        error = StoreError(f"{what}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """Whether the store can write, and if not why (``reason``)."""

    healthy: bool
    reason: str | None = None


HEALTHY = StoreHealth(healthy=True)


class LogLimiter:
    """Logs a repeated failure once per ``interval`` seconds, with the count of those not
    logged in between, instead of once per occurrence (a full disk fails every request).

    Args:
        logger: where the lines go.
        interval: seconds between two lines.
        clock: monotonic time.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last = -float("inf")
        self._suppressed = 0
        self._logged = False  # an ERROR line went out since the last recovery line

    def error(self, message: str, *args: object, exc_info: bool = False) -> bool:
        """Log ``message % args`` at ERROR unless a line went out less than ``interval`` ago.

        Returns:
            Whether a line was logged.
        """
        now = self._clock()
        if now - self._last < self._interval:
            self._suppressed += 1
            return False
        if self._suppressed:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, self._suppressed, now - self._last)
        self._last = now
        self._suppressed = 0
        self._logged = True
        self._logger.error(message, *args, exc_info=exc_info)
        return True

    def recovered(self, message: str, *args: object) -> None:
        """Log ``message`` at INFO once after failures were logged (with the count of those
        not logged since the last line). A failure soon after still waits for the interval:
        a flapping disk does not flood the log either."""
        if not self._logged:
            return
        if self._suppressed:
            message += " (after %d more failures)"
            args = (*args, self._suppressed)
        self._logged = False
        self._suppressed = 0
        self._logger.info(message, *args)
