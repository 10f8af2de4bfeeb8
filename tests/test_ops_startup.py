"""Starting and stopping the daemon: a stop with no bind up is quick, a fatal start error
reaches the terminal even when logs go to a file, and configuration problems exit 2 at run.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smppgw.gateway.config import parse_config
from smppgw.gateway.daemon import Gateway, GatewayOptions

TIMEOUT = 60.0
ENV = {"SMPPGW_PASSWORD": "pw-12345"}


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port held by a listening socket (another binding it fails)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def smppgw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "smppgw", *args],
        cwd=cwd,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


async def test_a_stop_with_no_bind_up_does_not_wait_the_drain_time(
    tmp_path: Path, closed_port: int
) -> None:
    """With the SMSC unreachable, a message waits for a bind that never comes; stopping the
    daemon waited the whole drain time (10 s by default) for a response that could not come.
    With a drain time of an hour, the stop must still be prompt, and the message stays queued."""
    data: dict[str, Any] = {
        "gateway": {"system_id": "acme", "password_env": "SMPPGW_PASSWORD", "reconnect_min": 5},
        "servers": [{"name": "smpp1", "host": "127.0.0.1", "port": closed_port, "binds": 1}],
        "store": {"path": str(tmp_path / "gw.db"), "synchronous": "normal"},
        "intake": {"path": str(tmp_path / "gw.sock")},
        "defaults": {"sender": "ACME"},
        "metrics": {"enabled": False},
    }
    gateway = Gateway(parse_config(data, environ=ENV), GatewayOptions(drain_timeout=3600))
    async with asyncio.timeout(TIMEOUT):
        await gateway.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(tmp_path / "gw.sock"))
            writer.write(b'{"op":"submit","to":"14155550101","text":"hi"}\n')
            reply = json.loads(await reader.readline())
            writer.close()
            await writer.wait_closed()
            assert reply["ok"] is True, reply
            store = gateway.store
            assert store is not None
            while (await store.counts())["submitting"] == 0:  # noqa: ASYNC110 - no event for it
                await asyncio.sleep(0.01)  # the dispatcher claims it and waits for a bind
        finally:
            await gateway.stop()
    gateway = Gateway(parse_config(data, environ=ENV))
    async with asyncio.timeout(TIMEOUT):
        await gateway.start()
        try:
            assert gateway.store is not None
            assert (await gateway.store.status(message_id=reply["id"])) is not None
        finally:
            await gateway.stop(0.0)


def _config(tmp_path: Path, port: int, *extra: str) -> Path:
    text = f"""
[gateway]
system_id = "acme"
password_env = "SMPPGW_PASSWORD"

[[servers]]
name = "smpp1"
host = "127.0.0.1"
port = {port}
binds = 1

[store]
path = "gw.db"

[intake]
path = "gw.sock"
"""
    for section in extra:
        text += f"\n{section}\n"
    if "[metrics]" not in text:
        # Never the default 127.0.0.1:9108: a daemon running beside the tests may hold it.
        text += "\n[metrics]\nenabled = false\n"
    path = tmp_path / "gw.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("taken", "code"),
    [
        # The simulator cannot listen: a start failure like any other (exit 1).
        ("[simulator]\nenabled = true\nservers = 1\nplain_ports = [{port}]", 1),
        # Another process holds the metrics port: a conflict, nothing changed (exit 2).
        ('[metrics]\naddress = "127.0.0.1:{port}"', 2),
    ],
)
def test_a_fatal_start_error_is_on_stderr_even_with_a_log_file(
    tmp_path: Path, busy_port: int, taken: str, code: int
) -> None:
    """With ``[log] file`` set, "cannot start: ..." went only to the file: the terminal (or
    systemctl status) showed an exit code and nothing else."""
    config = _config(tmp_path, busy_port, taken.format(port=busy_port), '[log]\nfile = "gw.log"')
    result = smppgw("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == code, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("smppgw run: cannot start: ")
    assert str(busy_port) in line
    assert (
        f"cannot start: {line.removeprefix('smppgw run: cannot start: ')}"
        in (tmp_path / "gw.log").read_text()
    )


def test_a_fatal_start_error_logged_on_stderr_is_not_printed_twice(
    tmp_path: Path, busy_port: int
) -> None:
    config = _config(
        tmp_path,
        busy_port,
        f"[simulator]\nenabled = true\nservers = 1\nplain_ports = [{busy_port}]",
    )
    result = smppgw("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("cannot start: ") == 1, result.stderr


def test_a_configuration_problem_exits_2_at_run_as_at_check_config(
    tmp_path: Path, closed_port: int
) -> None:
    """``response_timeout = nan`` was accepted, and run exited 1 with "cannot start"."""
    config = _config(tmp_path, closed_port)
    config.write_text(
        config.read_text().replace("[[servers]]", "response_timeout = nan\n\n[[servers]]")
    )
    for command in ("check-config", "run"):
        result = smppgw(command, "--config", str(config), cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert "gateway.response_timeout: must be a finite number, got nan" in result.stderr
        assert "cannot start" not in result.stderr
