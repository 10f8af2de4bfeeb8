"""One daemon per store: an exclusive lock on a file beside the database, held while it is open.

Two daemons on one store would each take the other's claimed messages for a crash's leftovers,
put them back in the queue and send them again. The lock is an ``flock(2)`` on
``<store>.lock``: the kernel drops it when its holder exits, however it exits (SIGKILL
included), so a stale lock file never blocks a restart. The holder writes its pid in the file
for the error message of the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from smppgw.codec.errors import SmppError

__all__ = ["InstanceLock", "StoreLockedError"]


class StoreLockedError(SmppError):
    """Another process holds the store (``pid`` when it could be read)."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class InstanceLock:
    """An exclusive, non-blocking lock on ``path``; :meth:`release` (or the process's end)
    lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, what: str) -> InstanceLock:
        """Take the lock for ``what`` (named in the error), or fail at once.

        Raises:
            StoreLockedError: another process holds it.
            OSError: the lock file cannot be created.
        """
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            holder = f"pid {pid}" if pid is not None else "another process"
            raise StoreLockedError(
                f"{what} is in use by another smppgw ({holder}; lock file {path})", pid
            ) from None
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # the pid is for error messages only
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        """Let the lock go (idempotent). The file stays: removing it would race a new
        holder."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
