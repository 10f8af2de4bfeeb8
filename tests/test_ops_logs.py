"""What the daemon's log tells an operator: binds coming and going, the simulator it started,
TLS failures in words, insecure settings, and repeated warnings counted instead of repeated.

Run as a new user, the log never said a bind came up; a TLS version mismatch showed only
``ConnectionResetError``; a bind that could not connect wrote the same line forever.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

from smppgw.codec import CommandStatus, DataSm, DeliverSm
from smppgw.esme.binds import BindManager, BindManagerSettings, ServerSettings
from smppgw.esme.session import ConnectError, Session, SessionSettings
from smppgw.esme.tls import TlsSettings
from smppgw.gateway.logs import RepeatFilter, setup_logging
from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

TIMEOUT = 60.0
PASSWORD = "sekr3t"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def record(
    message: str, level: int = logging.WARNING, name: str = "smppgw.esme.binds"
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


# --- repeated warnings ----------------------------------------------------------------------


def test_repeats_of_a_warning_are_held_back_and_counted_in_the_next_one() -> None:
    clock = FakeClock()
    repeats = RepeatFilter(60.0, clock=clock)
    line = "bind smpp1/trx-0: connect to 10.0.0.1:3634 failed: [Errno 111] Connection refused"
    assert repeats.filter(record(line)) is True
    for _ in range(37):
        clock.now += 1.5
        assert repeats.filter(record(line)) is False
    clock.now = 1000.0 + 60.0
    shown = record(line)
    assert repeats.filter(shown) is True
    assert shown.getMessage() == f"{line} (repeated 37 times in the last 60 s)"
    assert shown.__dict__["repeated"] == 37
    # A new window starts: held back again, and nothing to report when none came.
    clock.now += 1
    assert repeats.filter(record(line)) is False
    clock.now += 120
    quiet = record(line)
    assert repeats.filter(quiet) is True
    assert quiet.getMessage() == f"{line} (repeated once in the last 121 s)"


def test_different_lines_levels_and_loggers_are_counted_apart_and_info_never_held() -> None:
    clock = FakeClock()
    repeats = RepeatFilter(60.0, clock=clock)
    assert repeats.filter(record("bind a lost")) is True
    assert repeats.filter(record("bind b lost")) is True
    assert repeats.filter(record("bind a lost", logging.ERROR)) is True
    assert repeats.filter(record("bind a lost", name="smppgw.gateway.daemon")) is True
    assert repeats.filter(record("bind a lost")) is False
    for _ in range(3):
        assert repeats.filter(record("bind a up", logging.INFO)) is True


def test_repeats_still_held_back_are_written_when_logging_stops(
    restore_root: None,
) -> None:
    clock = FakeClock()
    stream = io.StringIO()
    setup = setup_logging("info", "json", stream=stream, repeats=RepeatFilter(60.0, clock=clock))
    log = logging.getLogger("smppgw.gateway.daemon")
    for _ in range(5):
        log.warning("dispatcher: the store failed; retrying in 1 s")
    clock.now += 4
    setup.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["level"], r["msg"]) for r in lines] == [
        ("warning", "dispatcher: the store failed; retrying in 1 s"),
        (
            "warning",
            "dispatcher: the store failed; retrying in 1 s (repeated 4 times in the last 4 s)",
        ),
    ]
    assert lines[1]["repeated"] == 4


def test_the_daemon_s_logging_holds_back_repeated_warnings(restore_root: None) -> None:
    stream = io.StringIO()
    setup = setup_logging("info", "text", stream=stream)
    log = logging.getLogger("smppgw.esme.binds")
    for _ in range(100):
        log.warning("bind smpp1/trx-0: connect to 127.0.0.1:9 failed: refused")
    text = stream.getvalue()
    setup.close()
    assert text.count("connect to 127.0.0.1:9 failed") == 1


# --- binds up, lost, back ------------------------------------------------------------------


async def _accept(_pdu: DeliverSm | DataSm) -> CommandStatus:
    return CommandStatus.ESME_ROK


async def until_true(condition: object, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    assert callable(condition)
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling a state that has no event
            await asyncio.sleep(0.01)


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    settings = SimulatorSettings(
        servers=1,
        tls=False,
        accounts=(Account("acme", PASSWORD, max_binds_per_server=1, rate_per_server=0),),
        seed=3,
    )
    async with Simulator(settings) as sim:
        yield sim


async def test_a_bind_coming_up_being_lost_and_coming_back_is_logged(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """INFO with server, bind, type and peer when a bind comes up or back; WARNING with the
    reason when it is lost."""
    caplog.set_level(logging.INFO, logger="smppgw.esme.binds")
    info = simulator.servers[0]
    settings = BindManagerSettings(
        (ServerSettings(name="smpp1", host=info.host, port=info.plain_port, binds=1),),
        "acme",
        PASSWORD,
        reconnect_min=0.05,
        reconnect_max=0.1,
        connect_timeout=5,
        bind_timeout=5,
    )
    manager = BindManager(settings, on_inbound=_accept)
    async with asyncio.timeout(TIMEOUT):
        await manager.start()
        try:
            await manager.wait_bound(1, timeout=TIMEOUT)
            simulator.set_server_down(0, down=True)
            await until_true(lambda: " lost: " in caplog.text)
            simulator.set_server_down(0, down=False)
            await until_true(lambda: "back up" in caplog.text)
        finally:
            await manager.stop(5)
    peer = f"transceiver to {info.host}:{info.plain_port}, server smpp1"
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "smppgw.esme.binds"]
    assert lines[0] == ("INFO", f"bind smpp1/trx-0 up: {peer}")
    level, lost = next(line for line in lines if line[0] == "WARNING")
    assert level == "WARNING"
    assert lost.startswith("bind smpp1/trx-0 lost: ")
    assert lost.endswith(f" ({peer})")
    back = next(m for _, m in lines if "back up" in m)
    assert back.startswith("bind smpp1/trx-0 back up after ")
    assert back.endswith(f" s: {peer}")
    up = next(r for r in caplog.records if "up:" in r.getMessage())
    assert (up.__dict__["server"], up.__dict__["bind"], up.__dict__["bind_type"]) == (
        "smpp1",
        "smpp1/trx-0",
        "trx",
    )
    assert up.__dict__["peer"] == f"{info.host}:{info.plain_port}"


async def test_the_simulator_logs_its_ports_and_account_but_never_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="smppgw.testing.simulator")
    settings = SimulatorSettings(
        servers=2,
        tls=True,
        accounts=(Account("acme", PASSWORD, max_binds_per_server=3, rate_per_server=50),),
    )
    async with Simulator(settings) as sim:
        pass
    messages = [r.getMessage() for r in caplog.records]
    for info in sim.servers:
        assert (
            f"simulator {info.name} listening on {info.host}: plain port {info.plain_port}, "
            f"TLS port {info.tls_port}"
        ) in messages
    assert "simulator account acme: 3 binds and 50/s submits per server" in messages
    assert PASSWORD not in caplog.text


# --- TLS failures in words ------------------------------------------------------------------


class _AlertingTlsServer(asyncio.Protocol):
    """A TLS server that answers a bad handshake with its alert and a clean close (as OpenSSL
    servers do), unlike asyncio's, which resets the connection."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._incoming.write(data)
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            self._transport.write(self._outgoing.read())
            self._transport.close()
            return
        self._transport.write(self._outgoing.read())


@pytest.fixture
def ca(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    """A server context that speaks at most TLS 1.2, and the CA file that trusts it."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return context, str(path)


def tls_session(port: int, ca_file: str, minimum: str = "TLSv1.3") -> SessionSettings:
    return SessionSettings(
        host="127.0.0.1",
        port=port,
        system_id="acme",
        password=PASSWORD,
        tls=TlsSettings(ca_file=ca_file, minimum_version=minimum),
        connect_timeout=10,
        bind_timeout=10,
    )


async def test_a_tls_version_mismatch_reset_by_the_server_is_named(
    ca: tuple[ssl.SSLContext, str],
) -> None:
    """The server (asyncio's TLS) resets the connection on a version it does not speak; the
    error was ``connect to 127.0.0.1:N (TLS) failed: ConnectionResetError``."""
    context, ca_file = ca
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server, asyncio.timeout(TIMEOUT):
        with pytest.raises(ConnectError) as info:
            await Session.connect(tls_session(port, ca_file))
    assert str(info.value) == (
        f"TLS handshake with 127.0.0.1:{port} failed: unsupported protocol version: "
        "the server speaks TLSv1.2, min_version is TLSv1.3"
    )


async def test_a_tls_version_mismatch_answered_with_an_alert_is_named(
    ca: tuple[ssl.SSLContext, str],
) -> None:
    context, ca_file = ca
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _AlertingTlsServer(context), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, asyncio.timeout(TIMEOUT):
        with pytest.raises(ConnectError) as info:
            await Session.connect(tls_session(port, ca_file))
    assert str(info.value) == (
        f"TLS handshake with 127.0.0.1:{port} failed: unsupported protocol version "
        "(min_version TLSv1.3)"
    )


async def test_an_untrusted_certificate_is_named(ca: tuple[ssl.SSLContext, str]) -> None:
    context, _ = ca
    other = trustme.CA()
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    other_file = Path(ca[1]).with_name("other.pem")
    other.cert_pem.write_to_path(str(other_file))
    async with server, asyncio.timeout(TIMEOUT):
        with pytest.raises(ConnectError) as info:
            await Session.connect(tls_session(port, str(other_file), "TLSv1.2"))
    assert str(info.value).startswith(
        f"TLS handshake with 127.0.0.1:{port} failed: certificate verify failed: "
    )


async def test_a_refused_tcp_connect_is_still_a_connect_failure(
    ca: tuple[ssl.SSLContext, str],
) -> None:
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(ConnectError) as info:
            await Session.connect(tls_session(port, ca[1]))
    assert str(info.value).startswith(f"connect to 127.0.0.1:{port} (TLS) failed: ")


# --- the daemon through its command line ----------------------------------------------------


async def test_smppgw_run_logs_the_simulator_each_bind_and_an_unverified_tls_setting(
    tmp_path: Path,
) -> None:
    """``smppgw run`` in simulator mode over TLS with ``verify = false``: stderr shows the
    warning, the simulator's ports and account, and an INFO line per bind that came up."""
    config = tmp_path / "gw.toml"
    config.write_text(
        '[gateway]\nsystem_id = "acme"\n'
        "[simulator]\nenabled = true\nservers = 2\ntls = true\nmax_binds_per_server = 2\n"
        "[tls]\nverify = false\n"
        '[store]\npath = "gw.db"\nsynchronous = "normal"\n'
        '[intake]\npath = "gw.sock"\n'
        "[metrics]\nenabled = false\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smppgw",
        "run",
        "--config",
        str(config),
        env={k: v for k, v in os.environ.items() if not k.startswith("SMPPGW")},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while sum(" up: " in line for line in lines) < 4:
                line = await process.stderr.readline()
                assert line, "\n".join(lines)
                lines.append(line.decode().rstrip())
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT):
            rest = await process.stderr.read()
            code = await process.wait()
    lines += rest.decode().splitlines()
    text = "\n".join(lines)
    assert code == 0, text
    assert (
        "WARNING smppgw: [tls] verify = false: the certificates and host names of the "
        "simulator's servers are not checked"
    ) in text
    assert "simulator account acme: 2 binds and 50/s submits per server" in text
    listening = [
        line for line in lines if "INFO    smppgw.testing.simulator" in line and "listening" in line
    ]
    assert len(listening) == 2, text
    assert all("plain port" in line and "TLS port" in line for line in listening)
    ups = [line.split("smppgw.esme.binds: ", 1)[1] for line in lines if " up: " in line]
    assert sorted(u.split(" up:")[0] for u in ups) == [
        "bind smpp1/trx-0",
        "bind smpp1/trx-1",
        "bind smpp2/trx-0",
        "bind smpp2/trx-1",
    ]
    assert all(" (TLS), server smpp" in u and "transceiver to 127.0.0.1:" in u for u in ups)
