"""``smppgw simulate``: its options checked, a busy port reported, the account printed; the
simulator honours schedule_delivery_time and validity_period."""

from __future__ import annotations

import asyncio
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from smppgw.codec import CommandStatus, DataSm, DeliverSm, MessageState, SubmitSm
from smppgw.codec.constants import RegisteredDelivery
from smppgw.codec.receipt import receipt_info
from smppgw.codec.smpp_time import format_absolute
from smppgw.esme.session import BindType, Session, SessionSettings
from smppgw.testing.simulator import Account, Simulator, SimulatorSettings
from smppgw.testing.simulator.server import TimeFieldError, receipt_timing

WAIT = 30.0
NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)

# --- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--servers", "0"], "argument --servers: expected a whole number of 1 or more, got '0'"),
        (["--binds", "0"], "argument --binds: expected a whole number of 1 or more, got '0'"),
        (["--rate", "-5"], "argument --rate: expected a rate of 0 or more per second, got '-5'"),
        (["--rate", "nan"], "argument --rate: expected a rate of 0 or more per second"),
        (["--queue-full-ratio", "1.5"], "argument --queue-full-ratio: expected a share between"),
        (["--stall-ratio", "-0.1"], "argument --stall-ratio: expected a share between 0 and 1"),
        (["--dlr-before-resp", "2"], "argument --dlr-before-resp: expected a share between 0"),
        (["--dlr-delay", "2", "1"], "--dlr-delay: MIN 2 is above MAX 1"),
        (["--dlr-delay", "-1", "1"], "argument --dlr-delay: expected seconds, 0 or more"),
        (["--drop-every", "-1"], "argument --drop-every: expected a whole number of 0 or more"),
        (["--plain-ports", "70000"], "argument --plain-ports: expected a port 0..65535"),
        (["--plain-ports", "0", "0", "0"], "--plain-ports: 3 ports for 2 servers"),
        (["--down", "3:1:1"], "--down: server 3 does not exist (2 servers)"),
        (["--password-file", "/nonexistent/pw"], "--password-file: cannot read /nonexistent/pw"),
    ],
)
def test_bad_options_are_refused_with_exit_2(argv: list[str], error: str) -> None:
    """--servers 0, a negative rate, a share of 1.5 or a delay range upside down started a
    simulator that misbehaved (or died with a traceback on the first receipt)."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "smppgw", "simulate", "--no-tls", *argv],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert error in done.stderr
    assert done.stderr.startswith("usage: smppgw simulate")
    assert "Traceback" not in done.stderr


def test_a_password_file_with_a_password_too_long_to_bind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("much-too-long\n")
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "smppgw", "simulate", "--no-tls", "--password-file", str(path)],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 2
    assert f"--password-file: {path} holds a password of 13 characters; a bind password " in (
        done.stderr
    )
    assert "much-too-long" not in done.stderr


# --- running ------------------------------------------------------------------------------


@contextmanager
def simulate(*args: str) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """`smppgw simulate ARGS` in a subprocess with its stdout lines in a queue; killed at the
    end if still running."""
    lines: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "smppgw", "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    ) as process:
        assert process.stdout is not None
        stdout = process.stdout

        def read() -> None:
            for line in stdout:
                lines.put(line)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            yield process, lines
        finally:
            process.kill()
            process.wait(WAIT)
            reader.join(WAIT)


def test_a_busy_port_is_reported_without_a_traceback() -> None:
    """A port in use ended the simulator with an OSError traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with simulate("--servers", "1", "--no-tls", "--plain-ports", str(port)) as (process, _):
            assert process.wait(WAIT) == 1
            assert process.stderr is not None
            err = process.stderr.read()
    assert err == (
        f"smppgw simulate: cannot start: error while attempting to bind on address "
        f"('127.0.0.1', {port}): address already in use\n"
    )


def test_the_account_is_printed_with_where_its_password_comes_from(tmp_path: Path) -> None:
    """The simulator said where it listened but not which account it takes, so a client had
    to guess the system_id and the password."""
    with simulate("--servers", "1", "--no-tls", "--rate", "20") as (process, lines):
        assert lines.get(timeout=WAIT).startswith("smpp1: 127.0.0.1 plain port ")
        assert lines.get(timeout=WAIT) == (
            "account: system_id smppgw, password 'localsim' (the default; --password-file to "
            "set another); 3 binds and 20 submits/s per server\n"
        )
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT) == 0
    password = tmp_path / "pw"
    password.write_text("s3cret\n")
    with simulate(
        "--servers", "1", "--no-tls", "--system-id", "acme", "--password-file", str(password)
    ) as (process, lines):
        lines.get(timeout=WAIT)
        account = lines.get(timeout=WAIT)
        assert account == (
            f"account: system_id acme, password from {password}; 3 binds and 50 submits/s per "
            "server\n"
        )
        assert "s3cret" not in account


# --- schedule_delivery_time and validity_period -----------------------------------------


def test_no_times_mean_the_receipt_after_the_delay() -> None:
    assert receipt_timing("", "", NOW, 0.25) == (0.25, False)


def test_a_schedule_delays_the_receipt_until_after_it() -> None:
    at = format_absolute(NOW + timedelta(minutes=10))
    assert receipt_timing(at, "", NOW, 0.25) == (600.25, False)
    assert receipt_timing("000000001000000R", "", NOW, 0.25) == (600.25, False)
    past = format_absolute(NOW - timedelta(minutes=10))
    assert receipt_timing(past, "", NOW, 0.25) == (0.25, False)


def test_a_validity_ending_before_delivery_expires_the_message_at_its_end() -> None:
    schedule = "000000001000000R"  # in 10 minutes
    assert receipt_timing(schedule, "000000000500000R", NOW, 0.25) == (300.0, True)
    assert receipt_timing(schedule, "000000002000000R", NOW, 0.25) == (600.25, False)
    gone = format_absolute(NOW - timedelta(seconds=1))
    assert receipt_timing("", gone, NOW, 0.25) == (0.0, True)
    # An absolute time in another zone is the same instant.
    east = format_absolute(
        (NOW + timedelta(seconds=100)).astimezone(timezone(timedelta(hours=5.5)))
    )
    assert receipt_timing("", east, NOW, 0.25) == (0.25, False)
    assert receipt_timing(east, "", NOW, 0.25) == (100.25, False)


@pytest.mark.parametrize(
    ("schedule", "validity", "status"),
    [
        ("2611281200", "", CommandStatus.ESME_RINVSCHED),
        ("", "261128120000049+", CommandStatus.ESME_RINVEXPIRY),
        ("", "261328120000000+", CommandStatus.ESME_RINVEXPIRY),
    ],
)
def test_a_malformed_time_is_refused_with_its_status(
    schedule: str, validity: str, status: CommandStatus
) -> None:
    with pytest.raises(TimeFieldError) as caught:
        receipt_timing(schedule, validity, NOW, 0.0)
    assert caught.value.status is status


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    settings = SimulatorSettings(
        servers=1,
        tls=False,
        accounts=(Account("acme", "secret", rate_per_server=0),),
        dlr_delay=(0.0, 0.0),
        dlr_outcomes=(("DELIVRD", 0, 1.0),),
        seed=3,
    )
    async with Simulator(settings) as simulator:
        yield simulator


async def bind(sim: Simulator, inbox: asyncio.Queue[tuple[float, DeliverSm]]) -> Session:
    info = sim.servers[0]
    loop = asyncio.get_running_loop()

    async def on_inbound(pdu: DeliverSm | DataSm) -> CommandStatus:
        assert isinstance(pdu, DeliverSm)
        inbox.put_nowait((loop.time(), pdu))
        return CommandStatus.ESME_ROK

    settings = SessionSettings(
        host=info.host,
        port=info.plain_port,
        system_id="acme",
        password="secret",
        bind_type=BindType.TRANSCEIVER,
        response_timeout=5.0,
    )
    return await Session.connect(settings, on_inbound=on_inbound)


async def test_a_scheduled_message_gets_its_receipt_only_after_the_schedule(
    sim: Simulator,
) -> None:
    """The simulator ignored schedule_delivery_time: a message scheduled for later was
    reported delivered at once."""
    inbox: asyncio.Queue[tuple[float, DeliverSm]] = asyncio.Queue()
    session = await bind(sim, inbox)
    loop = asyncio.get_running_loop()
    sent = loop.time()
    resp = await session.submit(
        SubmitSm(
            destination_addr="14155550101",
            registered_delivery=RegisteredDelivery.FINAL,
            schedule_delivery_time="000000000001000R",  # in 1 second
        )
    )
    assert resp.command_status is CommandStatus.ESME_ROK
    arrived, receipt = await asyncio.wait_for(inbox.get(), WAIT)
    assert arrived - sent >= 1.0
    info = receipt_info(receipt.short_message, receipt.tlvs)
    assert (info.message_id, info.state) == (resp.message_id, MessageState.DELIVERED)
    session.abort()


async def test_a_message_whose_validity_ends_first_gets_an_expired_receipt(
    sim: Simulator,
) -> None:
    """The simulator ignored validity_period: a message whose validity had run out was
    reported delivered (or, by chance, any other outcome)."""
    inbox: asyncio.Queue[tuple[float, DeliverSm]] = asyncio.Queue()
    session = await bind(sim, inbox)
    past = format_absolute(datetime.now(UTC) - timedelta(minutes=1))
    expired = await session.submit(
        SubmitSm(
            destination_addr="14155550101",
            registered_delivery=RegisteredDelivery.FAILURE,
            validity_period=past,
        )
    )
    _, receipt = await asyncio.wait_for(inbox.get(), WAIT)
    info = receipt_info(receipt.short_message, receipt.tlvs)
    assert (info.message_id, info.state, info.stat) == (
        expired.message_id,
        MessageState.EXPIRED,
        "EXPIRED",
    )
    refused = await session.submit(
        SubmitSm(destination_addr="14155550101", schedule_delivery_time="tomorrow")
    )
    assert refused.command_status is CommandStatus.ESME_RINVSCHED
    session.abort()
