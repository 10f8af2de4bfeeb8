"""``smppgw send --dry-run`` and ``--transliterate``: against an intake server with the codec's
text rules (in a thread), and once against a real daemon and its store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_gateway import Gateway
from test_cli import Backend, Daemon, run

from smppgw.codec.constants import DataCoding
from smppgw.gateway.intake import IntakeDefaults, IntakeServer, IntakeSettings

TO = "14155550101"
# 150 characters; the one typographic apostrophe makes them UCS-2.
BOOKING = (
    "Hi Anna, it\u2019s confirmed: your table for 4 is booked for Friday at 19:30. "
    "Reply YES to keep it or NO to cancel. See you soon at Luigi's, Main Street 12"
)
BOOKING_PREVIEW = (
    "would be accepted: ucs2, 3 parts\n"
    '  part 1: 67 chars, 134 octets: "Hi Anna, it\u2019s confirmed: your table for 4 is '
    'booked for Friday at 1"\n'
    '  part 2: 67 chars, 134 octets: "9:30. Reply YES to keep it or NO to cancel. See you '
    "soon at Luigi's\"\n"
    '  part 3: 16 chars, 32 octets: ", Main Street 12"\n'
    "  transliterated (--transliterate): gsm, 1 part\n"
)


class TextDaemon(Daemon):
    """The intake server of test_cli with the codec's text rules instead of a fake."""

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.backend = Backend()
        self._stop = asyncio.Event()
        settings = IntakeSettings(path=str(self.path), defaults=IntakeDefaults(sender="ACME"))
        async with IntakeServer(self.backend, settings):
            self._ready.set()
            await self._stop.wait()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[TextDaemon]:
    d = TextDaemon(tmp_path / "gw.sock")
    d.start()
    yield d
    d.stop()


def send(daemon: Daemon, *args: str) -> list[str]:
    return ["send", "--socket", str(daemon.path), *args]


def test_dry_run_prints_coding_parts_split_and_the_transliterated_cost_and_sends_nothing(
    daemon: TextDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(send(daemon, "--to", TO, "--text", BOOKING, "--dry-run"), capsys)
    assert (code, out, err) == (0, BOOKING_PREVIEW, "")
    assert daemon.backend.requests == 0
    assert daemon.backend.messages == {}


def test_dry_run_with_transliterate_shows_the_transliterated_text_as_it_would_be_sent(
    daemon: TextDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        send(daemon, "--to", TO, "--text", BOOKING, "--transliterate", "--dry-run"), capsys
    )
    assert code == 0
    transliterated = BOOKING.replace("\u2019", "'")
    assert out == (
        f'would be accepted: gsm, 1 part\n  part 1: 150 chars, 150 septets: "{transliterated}"\n'
    )


def test_dry_run_of_a_gsm_text_counts_septets_and_escapes_what_a_terminal_would_obey(
    daemon: TextDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "a" * 150 + "\n[x]" + "b" * 5
    code, out, _ = run(send(daemon, "--to", TO, "--text", text, "--dry-run"), capsys)
    assert code == 0
    assert out == (
        "would be accepted: gsm, 2 parts\n"
        f'  part 1: 152 chars, 153 septets: "{"a" * 150}\\n["\n'
        '  part 2: 7 chars, 8 septets: "x]bbbbb"\n'
    )


def test_dry_run_of_a_message_the_daemon_would_refuse_says_why_and_exits_1(
    daemon: TextDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(send(daemon, "--to", "+" + TO, "--text", "hi", "--dry-run"), capsys)
    assert (code, out) == (1, "")
    assert err == (
        "would be rejected: invalid_number: to: must not start with '+' (E.164 digits only), "
        f"got '+{TO}'\n"
    )
    code, out, err = run(
        send(daemon, "--to", TO, "--text", BOOKING, "--max-parts", "2", "--dry-run"), capsys
    )
    assert (code, out) == (1, "")
    assert err == (
        "would be rejected: too_long: text: needs 3 parts as ucs2, max_parts is 2\n"
        "  transliterated (--transliterate): gsm, 1 part\n"
    )
    assert daemon.backend.requests == 0


def test_dry_run_json_prints_the_preview_reply(
    daemon: TextDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(send(daemon, "--to", TO, "--hex", "00ff", "--dry-run", "--json"), capsys)
    assert code == 0
    assert json.loads(out) == {
        "ok": True,
        "coding": "binary",
        "parts": 1,
        "split": [{"hex": "00ff", "octets": 2}],
    }


def test_dry_run_of_a_file_prints_each_row_and_a_summary_and_sends_nothing(
    daemon: TextDaemon, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "m.jsonl"
    rows = [
        {"to": TO, "text": "a" * 161},
        {"to": TO, "text": BOOKING},
        {"to": "0044", "text": "bad"},
        {"to": TO, "text": "Don\u2019t", "transliterate": True},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    code, out, err = run(send(daemon, "--file", str(path), "--dry-run", "--batch", "3"), capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[:3] == [
        "line 1: would be accepted: gsm, 2 parts",
        f'  part 1: 153 chars, 153 septets: "{"a" * 153}"',
        f'  part 2: 8 chars, 8 septets: "{"a" * 8}"',
    ]
    assert "\n".join(lines[3:8]) + "\n" == "line 2: " + BOOKING_PREVIEW
    assert lines[8].startswith("line 3: would be rejected: invalid_number: messages[2].to:")
    assert lines[9:11] == [
        "line 4: would be accepted: gsm, 1 part",
        '  part 1: 5 chars, 5 septets: "Don\'t"',
    ]
    assert lines[11].startswith("4 messages previewed in ")
    assert lines[11].endswith(
        "nothing sent: 3 would be accepted (6 parts), 1 would be rejected, 0 malformed"
    )
    assert "line 3: invalid_number: to: must start with the country code" in err
    assert daemon.backend.requests == 0
    assert daemon.backend.messages == {}


def test_dry_run_of_a_file_with_json_prints_each_preview_reply(
    daemon: TextDaemon, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(f"to,text,transliterate\n{TO},\u201cok\u201d,yes\n{TO},\u201cok\u201d,\n")
    code, out, err = run(send(daemon, "--file", str(path), "--dry-run", "--json"), capsys)
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {
            "line": 2,
            "ok": True,
            "coding": "gsm",
            "parts": 1,
            "split": [{"text": '"ok"', "chars": 4, "septets": 4}],
        },
        {
            "line": 3,
            "ok": True,
            "coding": "ucs2",
            "parts": 1,
            "split": [{"text": "\u201cok\u201d", "chars": 4, "octets": 8}],
            "transliterated": {"coding": "gsm", "parts": 1, "text": '"ok"'},
        },
    ]
    assert "2 would be accepted (2 parts)" in err
    assert daemon.backend.messages == {}


def test_send_transliterate_stores_the_transliterated_text(
    daemon: TextDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(send(daemon, "--to", TO, "--text", BOOKING, "--transliterate"), capsys)
    assert (code, out) == (0, "accepted id=m1 parts=1\n")
    stored = daemon.backend.messages["m1"]
    assert (stored.data_coding, stored.parts) == (DataCoding.DEFAULT, 1)
    assert stored.text == BOOKING.replace("\u2019", "'")


def test_a_dry_run_leaves_a_real_store_untouched_and_transliterate_saves_parts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end through `smppgw run`: a dry run (one message, and a file) stores nothing the
    status op can find; the same messages sent are stored, with 3 parts as UCS-2 and 1 part
    transliterated."""
    gateway = Gateway(tmp_path / "gw")
    gateway.start()
    try:
        socket = ["--socket", str(gateway.socket)]
        base = ["send", *socket, "--to", TO, "--text", BOOKING]
        path = tmp_path / "m.jsonl"
        path.write_text(json.dumps({"to": TO, "text": BOOKING, "custom": "f"}) + "\n")
        for argv in (
            [*base, "--custom", "p", "--dry-run"],
            [*base, "--custom", "t", "--transliterate", "--dry-run"],
            ["send", *socket, "--file", str(path), "--dry-run"],
        ):
            assert run(argv, capsys)[0] == 0
        for custom in ("p", "t", "f"):
            code, _, err = run(["status", *socket, "--custom", custom], capsys)
            assert (code, err.split(":")[0]) == (1, "not_found")
        for custom, extra, parts in (("p", [], 3), ("t", ["--transliterate"], 1)):
            code, out, _ = run([*base, "--custom", custom, *extra], capsys)
            assert (code, out.split()[-1]) == (0, f"parts={parts}")
            code, out, _ = run(["status", *socket, "--custom", custom, "--json"], capsys)
            assert (code, json.loads(out)["units"]) == (0, parts)
    finally:
        gateway.stop()
