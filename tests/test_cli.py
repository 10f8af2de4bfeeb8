"""The smppgw command, through main(argv), against an intake server run in a thread."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import types
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from smppgw import __version__
from smppgw.gateway.cli import main
from smppgw.gateway.config import SIMULATOR_PASSWORD, Config
from smppgw.gateway.events import (
    DeliveryState,
    ReceiptPayload,
    StatusEvent,
    StatusPayload,
    StoredEvent,
    encode_event,
)
from smppgw.gateway.intake import (
    BackendOverloadedError,
    IntakeDefaults,
    IntakeServer,
    IntakeSettings,
    SubmitRequest,
    SubmitResult,
)

T = TypeVar("T")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


class Coder:
    def choose_coding(self, text: str) -> Any:
        from smppgw.codec.constants import DataCoding  # noqa: PLC0415

        return DataCoding.DEFAULT

    def count_parts(self, text: str, data_coding: Any) -> int:
        return 1 if len(text) <= 160 else -(-len(text) // 153)


class Backend:
    def __init__(self) -> None:
        self.messages: dict[str, SubmitRequest] = {}
        self.by_custom: dict[str, str] = {}
        self.events: list[StoredEvent] = []
        self.receipts: list[ReceiptPayload] = []
        self.overload_next = 0
        self.requests = 0
        self._new = asyncio.Event()

    async def submit(self, requests: Sequence[SubmitRequest]) -> Sequence[SubmitResult]:
        self.requests += 1
        if self.overload_next:
            self.overload_next -= 1
            raise BackendOverloadedError("busy")
        results = []
        for request in requests:
            if request.custom in self.by_custom:
                results.append(
                    SubmitResult(self.by_custom[request.custom], request.parts, duplicate=True)
                )
                continue
            message_id = f"m{len(self.messages) + 1}"
            self.messages[message_id] = request
            if request.custom is not None:
                self.by_custom[request.custom] = message_id
            results.append(SubmitResult(message_id, request.parts))
        return results

    async def status(
        self, *, message_id: str | None = None, custom: str | None = None
    ) -> StatusPayload | None:
        if custom is not None:
            message_id = self.by_custom.get(custom)
        if message_id not in self.messages:
            return None
        assert message_id is not None
        return self._payload(message_id, "DELIVRD")

    @staticmethod
    def _payload(message_id: str, status: str) -> StatusPayload:
        return StatusPayload(
            id=message_id,
            mobile="14155550101",
            status=status,
            state=DeliveryState.DELIVERED,
            final=True,
            units=1,
            deliv_time="2024-01-02 03:04:05",
        )

    def append(self, message_id: str, status: str = "DELIVRD") -> None:
        event = StatusEvent(self._payload(message_id, status))
        self.events.append(StoredEvent(len(self.events) + 1, encode_event(event)))
        self._new.set()

    async def events_after(self, cursor: int, limit: int) -> Sequence[StoredEvent]:
        return [e for e in self.events if e.cursor > cursor][:limit]

    async def wait_events(self, cursor: int) -> None:
        while len(self.events) <= cursor:
            self._new.clear()
            await self._new.wait()

    async def last_cursor(self) -> int:
        return len(self.events)

    async def unmatched(self, limit: int) -> tuple[int, Sequence[ReceiptPayload]]:
        return len(self.receipts), self.receipts[:limit]


class Daemon:
    """An intake server with a fake backend, on its own event loop in a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loop: asyncio.AbstractEventLoop
        self.backend: Backend
        self._stop: asyncio.Event
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),))

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.backend = Backend()
        self._stop = asyncio.Event()
        settings = IntakeSettings(path=str(self.path), defaults=IntakeDefaults(sender="ACME"))
        async with IntakeServer(self.backend, settings, coder=Coder()):
            self._ready.set()
            await self._stop.wait()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "gw.sock")
    d.start()
    yield d
    d.stop()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --- version, help, check-config ----------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["version"], capsys)
    assert code == 0
    assert out.startswith(f"smppgw {__version__} (Python 3.")


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in ("run", "simulate", "send", "status", "events", "check-config", "version"):
        assert command in out
    assert "3 daemon unreachable" in " ".join(out.split())
    code, _, err = run([], capsys)
    assert code == 2
    assert "required" in err
    code, _, err = run(["send", "--priority", "9"], capsys)
    assert code == 2
    assert "invalid choice" in err


def test_check_config_prints_a_summary_without_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMPPGW_PASSWORD", "topsecrt")
    code, out, err = run(
        ["check-config", "--config", str(CONFIG_DIR / "smppgw.example.toml")], capsys
    )
    assert (code, err) == (0, "")
    assert "server smpp1: smpp1.txtsms.me:3635 tls 3 x trx, 50 msg/s" in out
    assert "password from env SMPPGW_PASSWORD" in out
    assert "topsecrt" not in out
    assert out.endswith("configuration OK\n")


def test_check_config_reports_every_error_with_its_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMPPGW_PASSWORD", raising=False)
    path = tmp_path / "bad.toml"
    path.write_text(
        '[gateway]\nsystem_id = "a"\npassword_env = "SMPPGW_PASSWORD"\n'
        '[[servers]]\nname = "s"\nhost = "h"\nport = 70000\n'
    )
    code, out, err = run(["check-config", "--config", str(path)], capsys)
    assert code == 2
    assert out == ""
    assert "gateway.password_env: environment variable SMPPGW_PASSWORD is not set" in err
    assert "servers[0].port: must be 1..65535, got 70000" in err


# --- send ---------------------------------------------------------------------------------


def test_send_one_message(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    socket_args = ["--socket", str(daemon.path)]
    argv = ["send", *socket_args, "--to", "14155550101", "--text", "hi", "--custom", "c1"]
    code, out, _ = run([*argv, "--validity", "60", "--tm-id", "17", "--no-dlr"], capsys)
    assert (code, out) == (0, "accepted id=m1 parts=1\n")
    stored = daemon.backend.messages["m1"]
    assert (stored.to, stored.sender.value, stored.text) == ("14155550101", "ACME", "hi")
    assert (stored.validity, stored.tm_id, stored.registered_delivery) == (
        "000000000100000R",
        "17",
        False,
    )
    code, out, _ = run(argv, capsys)
    assert (code, out) == (0, "duplicate of id=m1 parts=1\n")
    code, out, _ = run([*argv, "--json"], capsys)
    assert json.loads(out) == {"ok": True, "id": "m1", "parts": 1, "duplicate": True}


def test_a_rejected_message_exits_1(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["send", "--socket", str(daemon.path), "--to", "+14155550101", "--text", "hi"], capsys
    )
    assert (code, out) == (1, "")
    assert (
        err == "rejected: invalid_number: to: must not start with '+' (E.164 digits only), "
        "got '+14155550101'\n"
    )


def test_send_needs_a_destination_and_a_text(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["send", "--socket", str(daemon.path), "--text", "hi"], capsys)
    assert code == 2
    assert "give --to and --text" in err


def test_an_unreachable_daemon_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "none.sock"
    code, _, err = run(
        ["send", "--socket", str(path), "--to", "14155550101", "--text", "x"], capsys
    )
    assert code == 3
    assert f"cannot reach the daemon at {path}" in err
    code, _, _ = run(["status", "--ping", "--socket", str(path)], capsys)
    assert code == 3


def test_send_a_csv_file_in_batches(
    daemon: Daemon, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "messages.csv"
    path.write_text(
        "to,text,custom,priority,flash\n"
        "14155550101,one,a,1,false\n"
        "14155550102,two,,,\n"
        "0044,bad,,,\n"
        "447700900123,four,d,3,yes\n"
        "447700900124,five,,,\n"
    )
    code, out, err = run(
        [
            "send",
            "--socket",
            str(daemon.path),
            "--file",
            str(path),
            "--from",
            "SHOP",
            "--batch",
            "2",
            "--window",
            "1",
            "--progress",
        ],
        capsys,
    )
    assert code == 1
    assert "5 messages in" in out
    assert "4 accepted (0 duplicates), 1 rejected" in out
    assert "line 4: invalid_number: to: must start with the country code" in err
    assert "\r[" in err
    assert "5/5" in err
    messages = daemon.backend.messages
    assert [m.text for m in messages.values()] == ["one", "two", "four", "five"]
    assert {m.sender.value for m in messages.values()} == {"SHOP"}
    assert messages["m1"].priority == 1
    assert messages["m3"].flash is True
    assert daemon.backend.requests == 3  # batches of 2, 2 and 1


def test_send_a_jsonl_file_with_json_results(
    daemon: Daemon, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "messages.jsonl"
    path.write_text(
        '{"to": "14155550101", "text": "one", "custom": "x"}\n\n'
        '{"to": "14155550101", "text": "one", "custom": "x"}\n'
    )
    code, out, err = run(
        ["send", "--socket", str(daemon.path), "--file", str(path), "--json"], capsys
    )
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"line": 1, "ok": True, "id": "m1", "parts": 1, "duplicate": False},
        {"line": 3, "ok": True, "id": "m1", "parts": 1, "duplicate": True},
    ]
    assert "2 accepted (1 duplicates), 0 rejected" in err


def test_an_overloaded_batch_is_sent_again(
    daemon: Daemon, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    daemon.backend.overload_next = 2
    path = tmp_path / "m.jsonl"
    path.write_text('{"to": "14155550101", "text": "one"}\n')
    code, out, _ = run(["send", "--socket", str(daemon.path), "--file", str(path)], capsys)
    assert code == 0
    assert "1 accepted" in out
    assert daemon.backend.requests == 3
    assert len(daemon.backend.messages) == 1


def test_a_file_with_unknown_columns_is_refused_with_nothing_sent(
    daemon: Daemon, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "m.csv"
    path.write_text("to,txt\n14155550101,2\n")
    code, _, err = run(["send", "--socket", str(daemon.path), "--file", str(path)], capsys)
    assert code == 2
    assert f"{path}:1: unknown column(s) txt; nothing was sent" in err
    assert daemon.backend.messages == {}


@pytest.mark.parametrize(
    "case",
    [
        ("m.csv", "to,text,priority\n14155550101,x,high\n", "priority must be an integer"),
        ("m.csv", "to,text,flash\n14155550101,x,maybe\n", "flash must be true or false"),
        ("m.jsonl", '{"to": "1", "body": "x"}\n', "line 1: malformed: unknown field(s) body"),
        ("m.jsonl", "not json\n", "line 1: malformed: not a JSON object"),
    ],
)
def test_malformed_rows_are_reported_with_their_line(
    daemon: Daemon,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    case: tuple[str, str, str],
) -> None:
    name, content, error = case
    path = tmp_path / name
    path.write_text(content)
    code, out, err = run(["send", "--socket", str(daemon.path), "--file", str(path)], capsys)
    assert code == 1
    assert error in err
    assert "1 messages in" in out
    assert "0 accepted (0 duplicates), 0 rejected, 1 malformed" in out
    assert daemon.backend.messages == {}


# --- status, events -----------------------------------------------------------------------


def test_status_by_id_custom_and_ping(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    socket_args = ["--socket", str(daemon.path)]
    run(["send", *socket_args, "--to", "14155550101", "--text", "x", "--custom", "k"], capsys)
    code, out, _ = run(["status", "m1", *socket_args], capsys)
    assert code == 0
    assert "status: DELIVRD\n" in out
    assert "deliv_time: 2024-01-02 03:04:05\n" in out
    code, out, _ = run(["status", "--custom", "k", "--json", *socket_args], capsys)
    assert (code, json.loads(out)["id"]) == (0, "m1")
    code, _, err = run(["status", "m9", *socket_args], capsys)
    assert (code, err) == (1, "not_found: no message with id 'm9'\n")
    code, out, _ = run(["status", "--ping", *socket_args], capsys)
    assert (code, out) == (0, f"pong from smppgw {__version__} at {daemon.path}\n")
    code, _, err = run(["status", *socket_args], capsys)
    assert code == 2
    assert "give a message id, --custom X, --unmatched, --cluster or --ping" in err


def test_events_prints_from_the_cursor_until_caught_up(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in (1, 2, 3):
        daemon.loop.call_soon_threadsafe(daemon.backend.append, f"m{n}")
    daemon.run(asyncio.sleep(0))
    code, out, _ = run(["events", "--socket", str(daemon.path), "--cursor", "1"], capsys)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(e["cursor"], e["payload"]["id"]) for e in lines] == [(2, "m2"), (3, "m3")]
    code, out, _ = run(["events", "--socket", str(daemon.path)], capsys)
    assert (code, out) == (0, "")  # no cursor: only new events, and none came
    code, out, _ = run(
        ["events", "--socket", str(daemon.path), "--cursor", "0", "--type", "sms:message:in"],
        capsys,
    )
    assert (code, out) == (0, "")


def test_the_socket_path_comes_from_the_config_or_the_environment(
    daemon: Daemon,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[intake]\npath = "{daemon.path}"\n')
    assert run(["status", "--ping", "--config", str(config)], capsys)[0] == 0
    monkeypatch.setenv("SMPPGW_SOCKET", str(daemon.path))
    assert run(["status", "--ping"], capsys)[0] == 0


# --- run, simulate ------------------------------------------------------------------------


def test_run_loads_the_config_and_calls_the_daemon(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Config] = []
    hup_during_run: list[object] = []

    def fake_run(config: Config) -> int:
        seen.append(config)
        hup_during_run.append(signal.getsignal(signal.SIGHUP))
        return 7

    daemon_module = types.ModuleType("smppgw.gateway.daemon")
    daemon_module.run = fake_run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "smppgw.gateway.daemon", daemon_module)
    before = signal.getsignal(signal.SIGHUP)
    code, _, _ = run(["run", "--config", str(CONFIG_DIR / "local.toml")], capsys)
    assert code == 7
    (config,) = seen
    assert config.simulator.enabled is True
    assert config.gateway.password == SIMULATOR_PASSWORD
    assert hup_during_run[0] is not before  # SIGHUP reopens the log while running
    assert signal.getsignal(signal.SIGHUP) is before


def test_run_with_an_invalid_config_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[gateway]\nbogus = 1\n")
    code, _, err = run(["run", "--config", str(path)], capsys)
    assert code == 2
    assert "gateway.bogus: unknown key" in err


def test_simulate_delegates_every_argument(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[Sequence[str] | None] = []

    def fake_main(argv: Sequence[str] | None = None) -> int:
        received.append(argv)
        return 4

    module = types.ModuleType("smppgw.testing.simulator.cli")
    module.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "smppgw.testing.simulator.cli", module)
    assert main(["simulate", "--help", "--servers", "3"]) == 4
    assert received == [["--help", "--servers", "3"]]
