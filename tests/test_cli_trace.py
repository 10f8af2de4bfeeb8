"""``smppgw trace on|off|status``: the requests it writes and the state it prints."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import Backend, Coder, Daemon, run

from smppgw.gateway.intake import IntakeServer
from smppgw.gateway.intake.protocol import TraceRequest
from smppgw.gateway.intake.settings import IntakeDefaults, IntakeSettings
from smppgw.gateway.trace import WireTrace, trace_op

BINDS = (("smpp1", "trx-0"), ("smpp2", "trx-0"))


class TracingDaemon(Daemon):
    """The CLI tests' intake server with the daemon's trace op over a real WireTrace."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.requests: list[TraceRequest] = []
        self.trace = WireTrace(clock=lambda: 1_800_000_000.0)

    def _op(self, request: TraceRequest) -> dict[str, object]:
        self.requests.append(request)
        return trace_op(self.trace, request, lambda: BINDS)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.backend = Backend()
        self._stop = asyncio.Event()
        settings = IntakeSettings(path=str(self.path), defaults=IntakeDefaults(sender="ACME"))
        async with IntakeServer(self.backend, settings, coder=Coder(), trace=self._op):
            self._ready.set()
            await self._stop.wait()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[TracingDaemon]:
    d = TracingDaemon(tmp_path / "gw.sock")
    d.start()
    yield d
    d.stop()


def test_trace_on_for_a_bind_with_reveal_and_a_duration_then_status_and_off(
    daemon: TracingDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = ["--socket", str(daemon.path)]
    code, out, _ = run(["trace", "status", *sock], capsys)
    assert (code, out) == (0, "trace off\n")
    code, out, _ = run(
        ["trace", "on", "--bind", "smpp1/trx-0", "--reveal", "--for", "60", *sock], capsys
    )
    assert (code, out) == (
        0,
        "trace on for smpp1/trx-0 (REVEALING numbers and text) until 2027-01-15T08:01:00Z\n",
    )
    request = daemon.requests[-1]
    assert (request.on, request.bind, request.server, request.reveal, request.duration) == (
        True,
        "smpp1/trx-0",
        None,
        True,
        60.0,
    )
    code, out, _ = run(["trace", "status", *sock], capsys)
    assert out.startswith("trace on for smpp1/trx-0")
    code, out, _ = run(["trace", "off", *sock], capsys)
    assert (code, out) == (0, "trace off\n")
    assert daemon.trace.on is False


def test_trace_on_for_a_server_or_all_is_masked(
    daemon: TracingDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = ["--socket", str(daemon.path)]
    assert run(["trace", "on", "--server", "smpp2", *sock], capsys)[1] == (
        "trace on for smpp2 (masked)\n"
    )
    assert run(["trace", "on", *sock], capsys)[1] == "trace on for all (masked)\n"
    run(["trace", "off", *sock], capsys)


def test_an_unknown_scope_exits_1_with_the_daemons_reason(
    daemon: TracingDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["trace", "on", "--server", "smpp9", "--socket", str(daemon.path)], capsys)
    assert (code, out) == (1, "")
    assert "no server 'smpp9'" in err
    assert daemon.trace.on is False


def test_scope_options_go_with_on_only(
    daemon: TracingDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["trace", "off", "--reveal", "--socket", str(daemon.path)], capsys)
    assert code == 2
    assert "go with on" in err
    code, _, err = run(["trace", "on", "--for", "0", "--socket", str(daemon.path)], capsys)
    assert code == 2
    assert daemon.requests == []
