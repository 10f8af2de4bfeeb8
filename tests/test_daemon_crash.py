"""SIGKILL of the daemon in the middle of a run of thousands of messages, then a restart.

The simulator runs in the test process and the daemon in a child process, so killing the
daemon loses nothing but the daemon. The test counts messages lost (acknowledged by the intake
but never final: must be 0) and duplicates (accepted twice by the SMSC: reported, bounded by
the in-flight window).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

MESSAGES = 3000
KILL_AFTER = 1000  # accepted by the SMSC
TIMEOUT = 90.0
PASSWORD = "crash-pw"


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    settings = SimulatorSettings(
        servers=2,
        tls=False,
        accounts=(Account("smppgw", PASSWORD, max_binds_per_server=2, rate_per_server=400),),
        dlr_delay=(0.0, 0.2),
        record_destinations=True,
        seed=7,
    )
    async with Simulator(settings) as sim:
        yield sim


def write_config(tmp_path: Path, sim: Simulator) -> Path:
    servers = "\n".join(
        f'[[servers]]\nname = "{s.name}"\nhost = "{s.host}"\nport = {s.plain_port}\n'
        "binds = 2\nrate = 400\n"
        for s in sim.servers
    )
    config = f"""
[gateway]
system_id = "smppgw"
password_env = "SMPPGW_TEST_PASSWORD"
response_timeout = 5
reconnect_min = 0.2
reconnect_max = 1

{servers}

[store]
path = "{tmp_path / "gw.db"}"
synchronous = "normal"

[intake]
path = "{tmp_path / "gw.sock"}"

[defaults]
sender = "ACME"

[metrics]
enabled = false

[log]
level = "warning"
"""
    path = tmp_path / "crash.toml"
    path.write_text(config)
    return path


class Daemon:
    """``smppgw run`` in a child process."""

    def __init__(self, config: Path, socket_path: Path) -> None:
        self.config = config
        self.socket_path = socket_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {**os.environ, "SMPPGW_TEST_PASSWORD": PASSWORD}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "smppgw",
            "run",
            "--config",
            str(self.config),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(200):
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
                writer.write(b'{"op":"ping"}\n')
                reply = await reader.readline()
                writer.close()
                await writer.wait_closed()
                if reply:
                    return
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        stderr = b""
        if self.process.stderr is not None:
            stderr = await self.process.stderr.read()
        pytest.fail(f"the daemon did not start: {stderr.decode(errors='replace')}")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.process.wait()


async def submit_all(socket_path: Path, count: int = MESSAGES) -> set[str]:
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    ids: set[str] = set()
    try:
        for start in range(0, count, 100):
            batch = [
                {"to": f"9198{i:08d}", "text": f"message {i}", "custom": f"c-{i}"}
                for i in range(start, min(count, start + 100))
            ]
            writer.write(json.dumps({"op": "submit", "messages": batch}).encode() + b"\n")
            reply = json.loads(await reader.readline())
            assert reply["ok"] is True, reply
            ids.update(r["id"] for r in reply["results"])
    finally:
        writer.close()
        await writer.wait_closed()
    return ids


async def final_ids(socket_path: Path, ids: set[str]) -> dict[str, dict[str, Any]]:
    """Subscribe from the first event and collect final statuses until all of ``ids``."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=1 << 20)
    writer.write(b'{"op":"subscribe","cursor":0}\n')
    finals: dict[str, dict[str, Any]] = {}
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TIMEOUT / 2):
                while not ids <= finals.keys():
                    event: dict[str, Any] = json.loads(await reader.readline())
                    payload: dict[str, Any] = event.get("payload", {})
                    if event.get("event") == "sms:message:status" and payload["final"]:
                        finals[payload["id"]] = payload
    finally:
        writer.close()
        await writer.wait_closed()
    return finals


async def unfinished(socket_path: Path, ids: set[str]) -> dict[str, str]:
    """The state of each of ``ids`` that is not final yet (``not_found`` if the store lost it).

    A message may still wait in the queue for its retry time (a throttled server's pause grows
    to a minute): that is late, not lost. Anything else not final is reported."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=1 << 20)
    states: dict[str, str] = {}
    try:
        for message_id in sorted(ids):
            writer.write(json.dumps({"op": "status", "id": message_id}).encode() + b"\n")
            reply: dict[str, Any] = json.loads(await reader.readline())
            states[message_id] = reply["status"]["state"] if reply["ok"] else reply["error"]
    finally:
        writer.close()
        await writer.wait_closed()
    return states


async def test_sigkill_mid_run_loses_no_message(tmp_path: Path, simulator: Simulator) -> None:
    config = write_config(tmp_path, simulator)
    socket_path = tmp_path / "gw.sock"
    daemon = Daemon(config, socket_path)
    async with asyncio.timeout(TIMEOUT):
        await daemon.start()
        ids = await submit_all(socket_path)
        assert len(ids) == MESSAGES
        while simulator.stats.accepted < KILL_AFTER:  # noqa: ASYNC110 - a counter, no event
            await asyncio.sleep(0.01)
        await daemon.kill()
        accepted_at_kill = simulator.stats.accepted
        assert accepted_at_kill < MESSAGES, "the run finished before the kill"

        await daemon.start()
        finals = await final_ids(socket_path, ids)
        assert await daemon.terminate() == 0

    lost = ids - finals.keys()
    duplicates = sum(n - 1 for n in simulator.stats.accepted_by_destination.values())
    reached = len(simulator.stats.accepted_by_destination)
    print(
        f"\ncrash test: {MESSAGES} messages, killed after {accepted_at_kill} accepted; "
        f"lost {len(lost)}, duplicates {duplicates}, destinations reached {reached}"
    )
    assert not lost, f"{len(lost)} messages lost"
    assert reached == MESSAGES
    # Only messages in flight at the kill can go twice: sent, but their acceptance not yet
    # committed. The dispatcher keeps at most 2 x binds x window (2 x 4 x 10) in flight.
    assert duplicates <= 2 * 4 * 10
    # Every message the SMSC got twice is flagged as a possible duplicate.
    flagged = {p["mobile"] for p in finals.values() if p["possible_duplicate"]}
    twice = {to for to, n in simulator.stats.accepted_by_destination.items() if n > 1}
    assert twice <= flagged


async def test_sigterm_drains_without_loss_or_duplicates(
    tmp_path: Path, simulator: Simulator
) -> None:
    """SIGTERM mid-run: in-flight submits get their responses, the rest stays queued, the
    binds unbind; after a restart every message is final and none went twice."""
    count = 1500
    config = write_config(tmp_path, simulator)
    socket_path = tmp_path / "gw.sock"
    daemon = Daemon(config, socket_path)
    async with asyncio.timeout(TIMEOUT):
        await daemon.start()
        ids = await submit_all(socket_path, count)
        while simulator.stats.accepted < count // 3:  # noqa: ASYNC110 - a counter, no event
            await asyncio.sleep(0.01)
        assert await daemon.terminate() == 0
        assert simulator.stats.accepted < count, "the run finished before the stop"
        for _ in range(100):  # the simulator sees the last links close
            if simulator.bound() == 0:
                break
            await asyncio.sleep(0.01)
        assert simulator.bound() == 0  # every bind unbound
        await daemon.start()
        finals = await final_ids(socket_path, ids)
        assert await daemon.terminate() == 0
    assert ids <= finals.keys()
    assert all(n == 1 for n in simulator.stats.accepted_by_destination.values())
    assert len(simulator.stats.accepted_by_destination) == count
    assert not any(p["possible_duplicate"] for p in finals.values())
