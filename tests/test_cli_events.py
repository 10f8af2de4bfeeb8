"""``smppgw events``, ``status`` and ``--version`` through the command line, on a real daemon."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from cli_gateway import Gateway

from smppgw import __version__
from smppgw.gateway.cli import main

TO = "14155550101"
WAIT = 30.0  # seconds for a line to come; only a broken build waits that long


class Lines:
    """The lines of a subprocess's stream, read in a thread so that a test can wait bounded."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)

    def next(self) -> str:
        line = self._queue.get(timeout=WAIT)
        self.seen.append(line)
        return line

    def until(self, pattern: str) -> str:
        """Lines up to the first matching ``pattern``; returns that line."""
        while not re.search(pattern, line := self.next()):
            pass
        return line

    def rest(self) -> str:
        self._thread.join(WAIT)
        while not self._queue.empty():
            self.seen.append(self._queue.get())
        return "".join(self.seen)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path / "gw")
    gw.start()
    yield gw
    gw.stop()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def send(gateway: Gateway, custom: str, capsys: pytest.CaptureFixture[str]) -> str:
    code, out, _ = run(
        ["send", "--socket", str(gateway.socket), "--to", TO, "--text", "hi", "--custom", custom],
        capsys,
    )
    assert code == 0, out
    return out.split("id=")[1].split()[0]


def wait_final(gateway: Gateway, message_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Until the message's status is final (delivery receipts come within 10 ms)."""
    for _ in range(300):
        code, out, _ = run(
            ["status", "--socket", str(gateway.socket), "--json", message_id], capsys
        )
        if code == 0 and json.loads(out)["final"]:
            return
        time.sleep(0.1)
    pytest.fail(f"message {message_id} is not final after 30 s")


@contextlib.contextmanager
def follow(gateway: Gateway, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`smppgw events ARGS` in a subprocess, killed at the end if still running."""
    with subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "smppgw", "events", "--socket", str(gateway.socket), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    ) as process:
        try:
            yield process
        finally:
            process.kill()
            process.wait(WAIT)


def interrupt(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(WAIT)


def test_follow_resumes_after_a_daemon_restart_from_its_cursor(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    """`events --follow` ended when the daemon restarted ("closed the connection", exit 3): a
    tail meant to run for weeks stopped at the first upgrade. It now reconnects, backing off
    up to 5 s, and subscribes again after the last cursor it printed: nothing is lost, nothing
    printed twice."""
    first = send(gateway, "restart-1", capsys)
    with follow(gateway, "--follow", "--cursor", "0") as process:
        assert process.stdout is not None
        assert process.stderr is not None
        out, err = Lines(process.stdout), Lines(process.stderr)
        err.until("following events after cursor 0")
        out.until(f'"id":"{first}".*"final":true')
        gateway.stop()
        err.until(r"closed the connection; reconnecting, to resume after cursor \d+")
        gateway.start()
        second = send(gateway, "restart-2", capsys)
        out.until(f'"id":"{second}".*"final":true')
        err.until(r"reconnected to .*gw\.sock; resuming after cursor \d+")
        assert interrupt(process) == 130
    events = [json.loads(line) for line in out.rest().splitlines()]
    cursors = [event["cursor"] for event in events]
    assert cursors == sorted(set(cursors))
    assert cursors[0] == 1
    assert {e["payload"]["id"] for e in events} == {first, second}
    assert "Traceback" not in err.rest()


def test_sigint_ends_follow_with_exit_130(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C on `events --follow` exited 0 although the documented code is 130."""
    message_id = send(gateway, "sigint-1", capsys)
    with follow(gateway, "--follow", "--cursor", "0") as process:
        assert process.stdout is not None
        assert process.stderr is not None
        out, err = Lines(process.stdout), Lines(process.stderr)
        out.until(f'"id":"{message_id}"')
        assert interrupt(process) == 130
        assert "Traceback" not in err.rest()


def test_follow_says_from_where_it_follows(gateway: Gateway) -> None:
    with follow(gateway, "--follow") as process:
        assert process.stderr is not None
        line = Lines(process.stderr).next()
        assert re.fullmatch(
            r"smppgw events: following events from now \(cursor \d+\); --cursor 0 for the "
            r"stored history\n",
            line,
        )


def test_events_without_options_says_what_it_prints(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    """`smppgw events` printed nothing and exited 0: it prints only events after now, and
    none had come. It now says so on stderr, and how to see history or keep going."""
    send(gateway, "hint-1", capsys)
    code, out, err = run(["events", "--socket", str(gateway.socket)], capsys)
    assert (code, out) == (0, "")
    assert re.fullmatch(
        r"smppgw events: printing events from now \(cursor \d+\); --cursor 0 for the stored "
        r"history, --follow to keep going\n",
        err,
    )


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--type", "sms:message:sent"], "argument --type: invalid choice: 'sms:message:sent'"),
        (["--cursor", "-1"], "--cursor must be 0 or more, got -1"),
    ],
)
def test_event_options_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    """A mistyped --type matched no event and printed nothing, silently, for ever."""
    code, out, err = run(["events", "--socket", str(tmp_path / "none.sock"), *argv], capsys)
    assert (code, out) == (2, "")
    assert error in err


def test_status_prints_plain_text_with_control_characters_escaped(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    """status printed Python's spelling of values (`final: True`, dicts as `{'part': 0, ...}`)
    and strings raw, so a reference holding an escape sequence or a newline drove the terminal
    or forged a line."""
    custom = "evil\x1b[2J\nstatus: DELIVRD\t\\"
    message_id = send(gateway, custom, capsys)
    wait_final(gateway, message_id, capsys)
    code, out, err = run(["status", "--socket", str(gateway.socket), message_id], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert f"id: {message_id}" in lines
    assert "custom: evil\\u001b[2J\\nstatus: DELIVRD\\t\\\\" in lines
    assert "cid: evil\\u001b[2J\\nstatus: DELIVRD\\t\\\\" in lines
    assert "final: true" in lines
    assert "possible_duplicate: false" in lines
    assert "units: 1" in lines
    parts = [line for line in lines if line.startswith("part ")]
    assert len(parts) == 1
    assert re.fullmatch(r"part 0: smsc_id=\w+ status=[A-Z]+ err=\d+", parts[0])
    assert all(re.fullmatch(r"(part \d+|[a-z_]+): .*", line) for line in lines)
    for python in ("True", "False", "None", "{", "'"):
        assert python not in out


def test_unmatched_json_carries_the_count(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status --unmatched --json` printed the receipts one per line and not the count, so an
    empty list and a truncated one looked alike."""
    socket = ["--socket", str(gateway.socket)]
    code, out, _ = run(["status", "--unmatched", "--json", *socket], capsys)
    assert code == 0
    assert json.loads(out) == {"count": 0, "receipts": []}
    code, out, _ = run(["status", "--unmatched", *socket], capsys)
    assert (code, out) == (0, "0 delivery receipts matched no message\n")


def test_version_option(capsys: pytest.CaptureFixture[str]) -> None:
    """`smppgw --version` was a usage error; only `smppgw version` worked."""
    code, out, _ = run(["--version"], capsys)
    assert code == 0
    assert out.startswith(f"smppgw {__version__} (Python 3.")
