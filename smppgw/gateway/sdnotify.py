"""A tiny sd_notify(3) client: tell systemd the daemon is ready, alive, or stopping.

With ``Type=notify`` systemd considers the service started only once it receives ``READY=1``,
and with ``WatchdogSec=`` it restarts the service if ``WATCHDOG=1`` does not arrive within that
time. The protocol is one datagram of ``KEY=value`` lines to the Unix socket named by
``$NOTIFY_SOCKET`` (a path, or an abstract name when it starts with ``@``). Without that
variable (not under systemd) every call is a no-op, so the daemon calls it unconditionally.
Standard library only.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]

logger = logging.getLogger(__name__)


class Notifier:
    """Sends state changes to systemd's notification socket.

    Args:
        environ: where ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` are read
            (``os.environ`` by default).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket name is written with a leading '@' (sd_notify(3)).
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._watchdog = self._watchdog_interval(env)

    @staticmethod
    def _watchdog_interval(env: Mapping[str, str]) -> float | None:
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0:
            return None
        if pid and pid != str(os.getpid()):
            return None  # the watchdog is meant for another process
        return int(usec) / 1_000_000

    @property
    def enabled(self) -> bool:
        """Whether a notification socket is configured."""
        return bool(self._address)

    @property
    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds (send ``WATCHDOG=1`` at least twice per interval),
        or None when no watchdog is armed for this process."""
        return self._watchdog

    def notify(self, *states: str) -> bool:
        """Send ``KEY=value`` states in one datagram.

        Returns:
            True if sent; False when not under systemd or the send failed (logged, never
            raised: a missed notification must not stop the daemon).
        """
        if not self._address:
            return False
        data = "\n".join(states).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(data)
        except OSError as exc:
            logger.warning("sd_notify to %r failed: %s", self._address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: startup finished (and an optional status line)."""
        return self.notify("READY=1", *((f"STATUS={status}",) if status else ()))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the daemon is alive."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown began."""
        return self.notify("STOPPING=1", *((f"STATUS={status}",) if status else ()))

    def status(self, text: str) -> bool:
        """``STATUS=...``: a free-form status line shown by ``systemctl status``."""
        return self.notify(f"STATUS={text}")
