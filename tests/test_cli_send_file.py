"""``smppgw send --file`` against a real daemon: batches cut to fit, input bounded and checked."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_gateway import Gateway, smppgw

from smppgw.gateway.cli import main

TO = "14155550101"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("gw"))
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def small_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A daemon taking request lines of at most 2048 bytes."""
    gw = Gateway(tmp_path_factory.mktemp("small"), max_line=2048)
    gw.start()
    yield gw
    gw.stop()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def not_found(gateway: Gateway, custom: str, capsys: pytest.CaptureFixture[str]) -> bool:
    code, _, err = run(["status", "--socket", str(gateway.socket), "--custom", custom], capsys)
    return code == 1 and err.startswith("not_found")


def test_a_hundred_long_texts_are_cut_into_batches_that_fit_max_line(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """100 texts of 1,000 characters made one request line of 100 kB, over the daemon's 64 kB
    max_line: the daemon discarded it and answered line_too_long (without a req), and the
    command stopped with "reply to request None where 1 was due", nothing sent."""
    path = jsonl(tmp_path / "long.jsonl", [{"to": TO, "text": "x" * 1000}] * 100)
    code, out, err = run(["send", "--socket", str(gateway.socket), "--file", str(path)], capsys)
    assert (code, err) == (0, "")
    assert "100 messages in" in out
    assert out.endswith(": 100 accepted (0 duplicates), 0 rejected, 0 malformed\n")


def test_the_max_line_of_the_config_cuts_the_batches(
    small_gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows: list[dict[str, object]] = [
        {"to": TO, "text": "y" * 600, "custom": f"cfg-{n}"} for n in range(10)
    ]
    rows.insert(4, {"to": TO, "text": "z" * 1960, "custom": "cfg-huge", "max_parts": 20})
    path = jsonl(tmp_path / "m.jsonl", rows)
    code, out, err = run(
        ["send", "--config", str(small_gateway.config), "--file", str(path), "--json"], capsys
    )
    assert code == 1
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["line"] for r in results if r["ok"]] == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    (huge,) = [r for r in results if not r["ok"]]
    assert huge["line"] == 5
    assert huge["error"] == "line_too_long"
    assert "over" not in huge["message"]
    assert "max_line (2048 bytes); not sent" in huge["message"]
    assert "11 messages in" in err
    assert "10 accepted (0 duplicates), 1 rejected, 0 malformed" in err
    assert not_found(small_gateway, "cfg-huge", capsys)


def test_a_daemon_with_a_smaller_max_line_than_assumed_gets_the_batch_in_halves(
    small_gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --config the command assumes the default max_line (64 kB); a daemon taking less
    discards the line and answers line_too_long, and the command sends the batch again in
    halves until each fits."""
    rows: list[dict[str, object]] = [
        {"to": TO, "text": "w" * 600, "custom": f"half-{n}"} for n in range(12)
    ]
    path = jsonl(tmp_path / "m.jsonl", rows)
    code, out, err = run(
        ["send", "--socket", str(small_gateway.socket), "--file", str(path), "--window", "2"],
        capsys,
    )
    assert (code, err) == (0, "")
    assert "12 accepted (0 duplicates), 0 rejected, 0 malformed" in out


def test_an_endless_line_on_stdin_stops_at_max_line_with_its_number(gateway: Gateway) -> None:
    """`smppgw send --file - < /dev/zero` read its one endless line whole, until the kernel
    killed it at 24 GB. A line is now read up to max_line bytes and no further."""
    with Path("/dev/zero").open("rb") as zero:
        done = smppgw("send", "--socket", str(gateway.socket), "--file", "-", stdin=zero.fileno())
    assert done.returncode == 2
    assert "smppgw send: -:1: line longer than 65536 bytes" in done.stderr
    assert "0 messages in" in done.stdout


def test_rows_before_an_overlong_line_from_a_pipe_are_sent_and_counted(gateway: Gateway) -> None:
    good = json.dumps({"to": TO, "text": "before", "custom": "pipe-1"}).encode() + b"\n"
    done = smppgw(
        "send", "--socket", str(gateway.socket), "--file", "-", stdin=good + b"a" * 70_000
    )
    assert done.returncode == 2
    assert "-:2: line longer than 65536 bytes" in done.stderr
    assert "the rows before it were sent" in done.stderr
    assert "1 messages in" in done.stdout
    assert "1 accepted (0 duplicates), 0 rejected, 0 malformed" in done.stdout


def test_an_overlong_line_in_a_file_stops_the_run_before_anything_is_sent(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.jsonl"
    good = json.dumps({"to": TO, "text": "first", "custom": "long-1"})
    path.write_text(good + "\n" + "b" * 70_000 + "\n")
    code, _, err = run(["send", "--socket", str(gateway.socket), "--file", str(path)], capsys)
    assert code == 2
    assert f"{path}:2: line longer than 65536 bytes" in err
    assert "nothing was sent" in err
    assert not_found(gateway, "long-1", capsys)


def test_malformed_rows_are_reported_and_the_others_sent(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "to,text,custom,priority\n"
        f"{TO},one,mal-1,1\n"
        f"{TO},two,mal-2,high\n"
        f"{TO},three,mal-3,0,extra\n"
        "\n"
        f"{TO},four,mal-4,\n"
    )
    code, out, err = run(["send", "--socket", str(gateway.socket), "--file", str(path)], capsys)
    assert code == 1
    assert err.splitlines() == [
        "line 3: malformed: priority must be an integer, got 'high'",
        "line 4: malformed: 5 cells where the header has 4",
    ]
    assert "4 messages in" in out
    assert "2 accepted (0 duplicates), 0 rejected, 2 malformed" in out
    assert not not_found(gateway, "mal-4", capsys)
    assert not_found(gateway, "mal-2", capsys)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bom.csv", f"\ufeffto,text,custom\n{TO},hi,bom-csv\n"),
        ("bom.jsonl", '\ufeff{"to": "' + TO + '", "text": "hi", "custom": "bom-jsonl"}\n'),
    ],
)
def test_a_utf8_byte_order_mark_is_accepted(
    gateway: Gateway,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str,
) -> None:
    """Spreadsheets save "CSV UTF-8" with a byte order mark: the first column was read as
    "\\ufeffto", an unknown column."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    code, out, _ = run(["send", "--socket", str(gateway.socket), "--file", str(path)], capsys)
    assert code == 0
    assert "1 accepted (0 duplicates), 0 rejected, 0 malformed" in out


def test_a_file_not_in_utf8_is_a_clear_error_with_nothing_sent(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"to,text,custom\n{TO},ok,enc-1\n{TO},caf\xe9,enc-2\n".encode("latin-1"))
    code, _, err = run(["send", "--socket", str(gateway.socket), "--file", str(path)], capsys)
    assert code == 2
    assert f"{path}:3: not UTF-8 text (byte 0xe9 at byte " in err
    assert "nothing was sent" in err
    assert "Traceback" not in err
    assert not_found(gateway, "enc-1", capsys)


@pytest.mark.parametrize(
    ("option", "error"),
    [
        (["--window", "0"], "--window must be 1..1024 requests, got 0"),
        (["--batch", "0"], "--batch must be 1..1000 messages, got 0"),
        (["--batch", "1001"], "--batch must be 1..1000 messages, got 1001"),
        (["--custom", "same"], "--custom cannot be used with --file"),
        (["--to", TO, "--text", "t"], "--to, --text cannot be used with --file"),
        (["--hex", "00"], "--hex cannot be used with --file"),
    ],
)
def test_options_that_make_no_sense_for_a_file_are_refused(
    gateway: Gateway,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: list[str],
    error: str,
) -> None:
    """`--window 0` sent nothing and reported success; `--custom` gave every row the same
    idempotency key, so every row after the first was a duplicate of it."""
    path = jsonl(tmp_path / "m.jsonl", [{"to": TO, "text": "t", "custom": "opt-1"}])
    code, out, err = run(
        ["send", "--socket", str(gateway.socket), "--file", str(path), *option], capsys
    )
    assert (code, out) == (2, "")
    assert error in err
    assert not_found(gateway, "opt-1", capsys)


def test_a_run_cut_short_by_the_daemon_still_ends_with_its_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daemon that goes away mid-run ended the command with "closed the connection" and no
    totals: the user could not tell what had been sent. The summary now ends every run and
    counts the messages left without an answer."""
    path = tmp_path / "d.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()

        def take_one_request_and_close() -> None:
            conn, _ = server.accept()
            with conn, conn.makefile("rb") as requests:
                requests.readline()

        closer = threading.Thread(target=take_one_request_and_close)
        closer.start()
        rows = jsonl(tmp_path / "m.jsonl", [{"to": TO, "text": "t"}] * 3)
        code, out, err = run(
            ["send", "--socket", str(path), "--file", str(rows), "--batch", "2", "--window", "1"],
            capsys,
        )
        closer.join(30)
    assert code == 3
    assert f"the daemon at {path} closed the connection" in err
    assert out.startswith("2 messages in")
    assert out.endswith(
        ": 0 accepted (0 duplicates), 0 rejected, 0 malformed, 2 without an answer (resend "
        "them with the same custom)\n"
    )
