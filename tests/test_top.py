"""``smppgw top``: the screen fits 80 x 24, ``--once --json`` for scripts, and the live view in
a real terminal (tmux) while messages flow, through a daemon lost and the ``q`` key."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_gateway import Gateway, smppgw
from rich.console import Console

from smppgw.gateway import cli
from smppgw.gateway.top import count, duration, millis, render


def bind(name: str, state: str = "bound", error: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "type": "trx",
        "state": state,
        "since": "2026-11-28 18:00:00",
        "seconds": 754.2,
        "in_flight": 3,
        "last_error": error,
    }


def stats(servers: int = 2, binds: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "ok": True,
        "time": "2026-11-28 18:12:34",
        "version": "0.1.0",
        "uptime": 754.2,
        "healthy": True,
        "servers": [
            {
                "name": f"smpp{s + 1}",
                "rate": 50,
                "current_rate": 31.0 if s else 50.0,
                "paused": False,
                "slots": None,
                "bound": binds,
                "in_flight": 3 * binds,
                "submits_per_s": 49.7,
                "submits": 12345678,
                "unknown": 0,
                "throttles": 4,
                "throttles_last_minute": 1,
                "latency_p50_ms": 3.14,
                "latency_p99_ms": 1234.0,
                "binds": [bind(f"smpp{s + 1}/trx-{b}") for b in range(binds)],
            }
            for s in range(servers)
        ],
        "queue": {
            "queued": 1200,
            "submitting": 6,
            "submitted": 48,
            "sent": 0,
            "delivered": 9690,
            "failed": 3,
            "expired": 0,
            "rejected": 0,
            "unknown": 0,
        },
        "receipts": {
            "per_s": 49.1,
            "total": 9693,
            "latency_p50_ms": 280.0,
            "latency_p99_ms": 498.2,
            "parked": 2,
            "unmatched": 1,
        },
        "intake": {"requests_per_s": 0.5, "rejections_per_s": 0.0},
        "webhook": None,
        "cluster": None,
        **extra,
    }


def screen(data: dict[str, Any], height: int | None = None) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=80, height=height or 24, color_system=None).print(
        render(data, height=height)
    )
    return out.getvalue().splitlines()


def test_the_screen_fits_80_columns_servers_and_binds_first() -> None:
    lines = screen(stats())
    assert all(len(line) <= 80 for line in lines)
    assert len(lines) <= 24
    server = next(line for line in lines if line.startswith("smpp2 "))
    assert server.split() == ["smpp2", "3/3", "49.7", "31<50", "1", "4", "9", "3.1ms", "1.2s"]
    binds = [line for line in lines if line.startswith("smpp1/trx-")]
    assert binds[0].split()[:5] == ["smpp1/trx-0", "trx", "bound", "12m34s", "3"]
    assert lines.index(server) < lines.index(binds[0])
    queue = next(i for i, line in enumerate(lines) if line.startswith("QUEUE"))
    assert "queued 1200" in lines[queue]
    assert lines.index(binds[-1]) < queue
    assert any(line.startswith("RECEIPTS") and "parked 2" in line for line in lines)
    assert any("WEBHOOK off" in line for line in lines)


def test_many_binds_are_cut_to_the_terminal_with_a_count_of_the_rest() -> None:
    lines = screen(stats(servers=4, binds=8), height=24)
    assert len(lines) <= 24
    assert all(len(line) <= 80 for line in lines)
    shown = sum(1 for line in lines if "/trx-" in line)
    assert any(f"... {32 - shown} more binds" in line for line in lines)
    assert any(line.startswith("QUEUE") for line in lines)  # the sections below still show


def test_a_bind_error_is_cut_to_one_line_without_control_characters() -> None:
    data = stats(servers=1, binds=1)
    data["servers"][0]["binds"] = [bind("smpp1/trx-0", "backoff", "refused\n\x1b[31mby " * 20)]
    lines = screen(data)
    row = next(line for line in lines if line.startswith("smpp1/trx-0"))
    assert "\x1b" not in row
    assert row.endswith("…")
    assert len(lines) == len(screen(stats(servers=1, binds=1)))  # no extra line


def test_the_cluster_section_shows_each_instance_s_slots_and_rate() -> None:
    cluster = {
        "instance": "gw-a",
        "instances": [
            {"instance": "gw-a", "slots": {"smpp1": [0, 1]}, "rates": {"smpp1": 34}},
            {"instance": "gw-b", "slots": {"smpp1": [2]}, "rates": {"smpp1": 16}},
        ],
    }
    lines = screen(stats(cluster=cluster))
    start = next(i for i, line in enumerate(lines) if line.startswith("CLUSTER"))
    assert lines[start + 1].split() == ["*", "gw-a", "smpp1", "0,1", "@34/s"]
    assert lines[start + 2].split() == ["gw-b", "smpp1", "2", "@16/s"]


def test_figures_are_abbreviated() -> None:
    assert [duration(s) for s in (5, 65, 3725, 180000, None)] == [
        "5s",
        "1m05s",
        "1h02m",
        "2d02h",
        "-",
    ]
    assert [millis(v) for v in (0.25, 42.4, 4200.0, 90000.0, None)] == [
        "0.2ms",
        "42ms",
        "4.2s",
        "1m30s",
        "-",
    ]
    assert [count(v) for v in (999999, 1234567, 2_500_000_000)] == ["999999", "1.2M", "2.5G"]


# --- through the command line ---------------------------------------------------------------


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path / "gw")
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def test_top_once_json_prints_one_stats_snapshot(gateway: Gateway) -> None:
    done = smppgw("top", "--config", str(gateway.config), "--once", "--json")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    snapshot = json.loads(line)
    assert snapshot["ok"] is True
    assert snapshot["servers"][0]["name"] == "smpp1"
    assert {b["state"] for b in snapshot["servers"][0]["binds"]} <= {"bound", "connecting"}
    assert snapshot["queue"]["queued"] == 0
    text = smppgw("top", "--socket", str(gateway.socket), "--once")
    assert text.returncode == 0, text.stderr
    assert any(line.startswith("smpp1 ") for line in text.stdout.splitlines())


def test_top_says_the_daemon_is_unreachable_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["top", "--socket", str(tmp_path / "none.sock"), "--once", "--json"])
    assert code == cli.EXIT_UNAVAILABLE
    assert "cannot reach the daemon at" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--json"], ["--once", "--interval", "0"], ["--interval", "nan"]])
def test_top_refuses_bad_options(
    tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["top", "--socket", str(tmp_path / "s"), *args]) == cli.EXIT_USAGE
    assert capsys.readouterr().err


# --- the live view in an 80 x 24 terminal ---------------------------------------------------


def _tmux() -> str:
    found = shutil.which("tmux")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is needed for the live view test (CI installs it)")
        pytest.skip("tmux is not installed (CI installs it)")
    return found


def _wait_for(read: Callable[[], str], check: Callable[[str], bool], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    text = read()
    while not check(text):
        assert time.monotonic() < deadline, f"the screen never showed it:\n{text}"
        time.sleep(0.2)
        text = read()
    return text


def test_top_live_in_an_80x24_terminal_shows_traffic_survives_a_lost_daemon_and_quits_on_q(
    gateway: Gateway, tmp_path: Path
) -> None:
    tmux = _tmux()
    tmux_server = ["-L", f"smppgw-top-{os.getpid()}"]  # a tmux server of the test's own
    exit_file = tmp_path / "exit"
    command = (
        f"{cli_command()} top --socket {gateway.socket} --interval 0.3; "
        f"echo $? > {exit_file}; sleep 30"
    )
    subprocess.run(  # noqa: S603 - tmux with our own command
        [tmux, *tmux_server, "new-session", "-d", "-s", "top", "-x", "80", "-y", "24", command],
        check=True,
        env={**os.environ, "TERM": "xterm-256color"},
    )

    def read() -> str:
        return subprocess.run(  # noqa: S603
            [tmux, *tmux_server, "capture-pane", "-p", "-t", "top"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    try:
        messages = tmp_path / "m.csv"
        messages.write_text("to,text\n" + "".join(f"9198{i:08d},hello {i}\n" for i in range(40)))
        sent = smppgw("send", "--socket", str(gateway.socket), "--file", str(messages))
        assert sent.returncode == 0, sent.stderr

        def settled(text: str) -> bool:
            queue = " ".join(line for line in text.splitlines() if line.startswith(("QUEUE", " ")))
            final = sum(
                int(queue.split(f"{state} ")[1].split()[0])
                for state in ("delivered", "failed", "expired", "rejected")
                if f"{state} " in queue
            )
            return final == 40

        text = _wait_for(read, settled)
        lines = text.splitlines()
        assert len(lines) <= 24
        assert all(len(line) <= 80 for line in lines)
        assert lines[0].startswith("smppgw top")
        assert lines[1].split()[:3] == ["SERVER", "BOUND", "SUB/S"]
        server = next(line for line in lines if line.startswith("smpp1 "))
        assert float(server.split()[2]) > 0  # submits/s over the last 10 s
        assert any(line.startswith("smpp1/trx-0") and " bound " in line for line in lines)
        assert any(line.startswith("QUEUE") and "queued 0" in line for line in lines)

        gateway.stop()
        text = _wait_for(read, lambda t: "retrying every 0.3 s" in t)
        assert "smpp1/trx-0" in text  # the last figures stay
        subprocess.run([tmux, *tmux_server, "send-keys", "-t", "top", "q"], check=True)  # noqa: S603
        _wait_for(lambda: exit_file.read_text() if exit_file.exists() else "", bool, 10.0)
        assert exit_file.read_text().strip() == "0"
    finally:
        subprocess.run([tmux, *tmux_server, "kill-server"], check=False)  # noqa: S603


def cli_command() -> str:
    import sys  # noqa: PLC0415

    return f"{sys.executable} -m smppgw"
