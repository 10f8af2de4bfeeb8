"""The intake's connection limits: clients, unfinished lines, memory per connection, and file
descriptors running out."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import resource
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from test_config import ENV, minimal
from test_intake import TIMEOUT, Client, FakeBackend, FakeCoder, connect, settings

from smppgw.gateway.config import ConfigError, parse_config
from smppgw.gateway.intake import IntakeServer, SubmitRequest, SubmitResult
from smppgw.gateway.intake.server import _Reported


class CountingBackend(FakeBackend):
    """Counts the submits that reached it (each may then wait on ``gate``)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def submit(self, requests: Sequence[SubmitRequest]) -> Sequence[SubmitResult]:
        self.calls += 1
        return await super().submit(requests)


@pytest.fixture
def backend() -> CountingBackend:
    return CountingBackend()


def serve(tmp_path: Path, backend: FakeBackend, **overrides: Any) -> IntakeServer:
    return IntakeServer(backend, settings(tmp_path / "s.sock", **overrides), coder=FakeCoder())


async def read_until_closed(client: Client) -> list[dict[str, Any]]:
    """Every line until the server closes the connection."""
    lines = []
    async with asyncio.timeout(TIMEOUT):
        while line := await client.reader.readline():
            lines.append(json.loads(line))
    return lines


async def settle(condition: Any, rounds: int = 500) -> None:
    """Let the loop run (socket IO included) until ``condition()`` holds, a bounded number of
    short rounds."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


# --- max_clients ----------------------------------------------------------------------------


async def test_clients_over_max_clients_get_an_error_line_and_are_closed(
    tmp_path: Path, backend: CountingBackend, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(tmp_path, backend, max_clients=2) as server:
        first, second = await connect(server), await connect(server)
        for c in (first, second):
            assert (await c.call({"op": "ping"}))["pong"] is True
        for _ in range(2):
            extra = await connect(server)
            assert await read_until_closed(extra) == [
                {
                    "ok": False,
                    "error": "too_many_clients",
                    "message": "2 clients are connected, the most this gateway serves; retry later",
                }
            ]
            await extra.close()
        warnings = [r.getMessage() for r in caplog.records if "max_clients" in r.getMessage()]
        assert len(warnings) == 1, warnings  # rate-limited: one line for both refusals
        assert (await first.call({"op": "ping", "req": 1}))["req"] == 1  # the others go on
        await first.close()
        await settle(lambda: server.connections == 1)
        late = await connect(server)
        assert (await late.call({"op": "ping"}))["pong"] is True
        await late.close()
        await second.close()


# --- line_timeout ---------------------------------------------------------------------------


async def test_a_line_left_unfinished_is_answered_line_timeout_and_closed(
    tmp_path: Path, backend: CountingBackend
) -> None:
    """A client that wrote half a line and then nothing held its connection (and the bytes)
    forever. The line now has ``line_timeout`` seconds to end; earlier requests are still
    answered first."""
    async with serve(tmp_path, backend, line_timeout=0.05) as server:
        client = await connect(server)
        await client.send_raw(b'{"op": "ping", "req": 1}\n{"op": "pi')
        lines = await read_until_closed(client)
        assert lines[0]["req"] == 1
        assert lines[1:] == [
            {
                "ok": False,
                "error": "line_timeout",
                "message": "no end of line 0.05 s after the line began; closing the connection",
            }
        ]
        await client.close()


async def test_an_idle_connection_between_lines_has_no_deadline(
    tmp_path: Path, backend: CountingBackend
) -> None:
    async with serve(tmp_path, backend, line_timeout=0.02) as server:
        client = await connect(server)
        assert (await client.call({"op": "ping"}))["pong"] is True
        await asyncio.sleep(0.1)  # five line timeouts with no unfinished line
        assert (await client.call({"op": "ping", "req": 2}))["req"] == 2
        await client.close()


# --- memory per connection ------------------------------------------------------------------


async def test_a_client_pipelining_large_requests_is_not_read_beyond_its_buffer(
    tmp_path: Path, backend: CountingBackend
) -> None:
    """With 64 requests allowed in flight, a client pipelining big lines made the daemon hold
    64 of them (and their replies) per connection: 100 such clients took RSS from 173 to
    527 MB. Reading now stops while the unanswered requests and unwritten replies of a
    connection exceed ``max_connection_buffer``; nothing is lost, it is only later."""
    backend.gate = asyncio.Event()
    text = "x" * 9000  # a line of about 9 kB
    async with serve(tmp_path, backend, max_connection_buffer=32 * 1024) as server:
        client = await connect(server)
        lines = b"".join(
            json.dumps(
                {"op": "submit", "to": "14155550101", "text": text, "max_parts": 255, "req": n}
            ).encode()
            + b"\n"
            for n in range(40)
        )
        writing = asyncio.create_task(client.send_raw(lines))
        await settle(lambda: backend.calls >= 4)
        for _ in range(50):
            await asyncio.sleep(0)
        assert backend.calls <= 5  # 32 kB / 9 kB, plus the line that crossed the bound
        backend.gate.set()
        replies = [await client.read() for _ in range(40)]
        await writing
        assert [r["req"] for r in replies] == list(range(40))
        assert all(r["ok"] for r in replies)
        assert len(backend.messages) == 40
        await client.close()


# --- file descriptors -----------------------------------------------------------------------


async def test_running_out_of_file_descriptors_is_logged_once_and_clients_wait(
    tmp_path: Path, backend: CountingBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """When accept() failed with EMFILE the event loop logged a traceback every second (and
    uvloop dropped the clients without a word). Clients now wait in the listen queue, one
    warning says why, and they are served once descriptors free up."""
    async with serve(tmp_path, backend) as server:
        socks = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(3)]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowest_free = os.open(os.devnull, os.O_RDONLY)  # the lowest free descriptor number
        os.close(lowest_free)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
            for sock in socks:
                sock.connect(server.path)  # queued by the kernel: no descriptor needed here
            await settle(lambda: server.accept_errors >= 3)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        warnings = [r for r in caplog.records if "cannot accept clients" in r.getMessage()]
        assert len(warnings) == 1
        assert warnings[0].levelno == logging.WARNING
        assert "Too many open files" in warnings[0].getMessage()
        assert not any(r.exc_info for r in caplog.records)
        for sock in socks:
            reader, writer = await asyncio.open_unix_connection(sock=sock)
            writer.write(b'{"op": "ping"}\n')
            async with asyncio.timeout(TIMEOUT):
                assert json.loads(await reader.readline())["pong"] is True
            writer.close()
            await writer.wait_closed()


# --- configuration --------------------------------------------------------------------------


def test_the_limits_come_from_the_intake_table() -> None:
    data = minimal(intake={"max_clients": 16, "line_timeout": 2.5, "max_connection_buffer": 65536})
    built = parse_config(data, environ=ENV).intake
    assert (built.max_clients, built.line_timeout, built.max_connection_buffer) == (16, 2.5, 65536)
    defaults = parse_config(minimal(), environ=ENV).intake
    assert (defaults.max_clients, defaults.line_timeout, defaults.max_connection_buffer) == (
        256,
        30.0,
        1024 * 1024,
    )


def test_limits_out_of_range_are_refused_by_key() -> None:
    data = minimal(intake={"max_clients": 0, "line_timeout": 0, "max_connection_buffer": 1024})
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ=ENV)
    assert info.value.errors == (
        "intake.max_clients: must be 1..100000, got 0",
        "intake.line_timeout: must be 0.1..86400, got 0",
        "intake.max_connection_buffer: must be 65536..1073741824, got 1024",
    )


def test_a_repeated_warning_is_logged_once_a_minute_with_its_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reported = _Reported("intake: cannot accept clients")
    for now in (0.0, 1.0, 30.0, 59.9, 60.0, 61.0):
        reported.add(now, "Too many open files")
    assert [r.getMessage() for r in caplog.records] == [
        "intake: cannot accept clients: Too many open files",
        "intake: cannot accept clients: Too many open files (4 times since the last warning)",
    ]
    assert reported.total == 6


@pytest.mark.parametrize("turns", range(6))
async def test_a_client_arriving_as_the_server_stops_is_closed_not_leaked(
    tmp_path: Path, backend: CountingBackend, turns: int
) -> None:
    """A stop that came just after the kernel handed a client to the accept loop, but before
    the loop resumed, dropped that client's socket unclosed (a ResourceWarning at collection,
    seen as an intermittent error of the CLI tests). The stop now comes only while nothing is
    accepted; every client socket the server took is closed by it."""
    server = serve(tmp_path, backend)
    await server.start()
    for _ in range(3):
        await asyncio.sleep(0)  # the accept loop now waits for a client
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(tmp_path / "s.sock"))
        for _ in range(turns):
            await asyncio.sleep(0)
        await server.stop()
        gc.collect()  # an unclosed accepted socket would warn here (warnings are errors)
        client.settimeout(TIMEOUT)
        assert client.recv(1) == b""  # closed by the server, or reset with the listener
    except ConnectionResetError:
        pass
    finally:
        client.close()
