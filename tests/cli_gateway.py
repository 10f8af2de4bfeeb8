"""A real daemon for tests of the command line: ``smppgw run`` in simulator mode, in a subprocess.

Its store and socket live under the test's temporary directory, the simulator listens on
ephemeral loopback ports, metrics are off. ``start()`` returns once the socket answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["Gateway", "smppgw"]

STARTUP_TIMEOUT = 30.0


def _toml(value: object) -> str:
    return json.dumps(value)  # numbers, strings and lists of them read the same in TOML


class Gateway:
    """``smppgw run --config DIR/gw.toml`` with the simulator inside; stop with ``stop()``."""

    def __init__(self, directory: Path, **intake: object) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.socket = directory / "gw.sock"
        self.config = directory / "gw.toml"
        self.log = directory / "gw.log"
        sections: dict[str, dict[str, object]] = {
            "gateway": {"system_id": "smppgw", "response_timeout": 5, "retry_delay": 0.2},
            "simulator": {
                "enabled": True,
                "servers": 1,
                "tls": False,
                "rate_per_server": 1000,
                "dlr_delay": [0.0, 0.01],
            },
            "store": {"path": str(directory / "gw.db"), "synchronous": "normal"},
            "intake": {"path": str(self.socket), **intake},
            "defaults": {"sender": "ACME"},
            "metrics": {"enabled": False},
        }
        self.config.write_text(
            "".join(
                f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())
                for name, values in sections.items()
            )
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "smppgw", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                msg = f"the daemon did not start:\n{self.log.read_text()}"
                raise RuntimeError(msg)
            time.sleep(0.05)

    def _answers(self) -> bool:
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(str(self.socket))
            except OSError:
                return False
        return True

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the daemon."""
        assert self._process is not None
        self._process.send_signal(signum)

    def stop(self) -> None:
        """SIGTERM (the daemon drains and stops), SIGKILL if it has not stopped in 30 s."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def smppgw(
    *args: str, stdin: bytes | int | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run the command line in a subprocess (stdin: bytes to feed, or a file descriptor)."""
    feed, descriptor = (stdin, None) if isinstance(stdin, bytes) else (None, stdin)
    process = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "smppgw", *args],
        input=feed,
        stdin=None
        if feed is not None
        else subprocess.DEVNULL
        if descriptor is None
        else descriptor,
        capture_output=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return subprocess.CompletedProcess(
        process.args,
        process.returncode,
        process.stdout.decode("utf-8", "replace"),
        process.stderr.decode("utf-8", "replace"),
    )
