"""Metrics fed by real sessions, a real bind manager and a running daemon, read by scraping.

Each test drives the component against the simulator on 127.0.0.1 with a
:class:`PrometheusObserver` and reads the text exposition back, so what is checked is what a
Prometheus server would see.
"""

from __future__ import annotations

import asyncio
import random
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from smppgw.codec import CommandStatus, DataSm, DeliverSm, SubmitSm
from smppgw.esme.binds import BindManager, BindManagerSettings, ServerSettings
from smppgw.esme.session import Session, SessionSettings
from smppgw.gateway.config import parse_config
from smppgw.gateway.daemon import Gateway, GatewayOptions
from smppgw.gateway.metrics import BIND_STATES, PrometheusObserver
from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

SYSTEM_ID = "acme"
PASSWORD = "secret"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(observer: PrometheusObserver) -> Samples:
    """Every sample of the observer's registry, as the text exposition carries it."""
    text = generate_latest(observer.registry).decode()
    return parse(text)


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def bound_is_zero(samples: Samples) -> set[str]:
    """The servers for which the no-bound-bind alert fires:
    ``sum by (server) (smppgw_binds{state="bound"}) == 0`` (docker/alerts.yml).

    PromQL sums only the series that exist, so a server without a ``state="bound"`` series has
    no sum and never fires: this evaluates the expression the same way.
    """
    sums: dict[str, float] = {}
    for (name, labels), v in samples.items():
        if name == "smppgw_binds" and ("state", "bound") in labels:
            server = dict(labels)["server"]
            sums[server] = sums.get(server, 0.0) + v
    return {server for server, total in sums.items() if total == 0}


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Poll ``condition`` until true, within ``timeout``."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling gauges, not waiting on an event
            await asyncio.sleep(0.01)


def sim_settings() -> SimulatorSettings:
    return SimulatorSettings(
        tls=False,
        names=("smpp1",),
        accounts=(Account(SYSTEM_ID, PASSWORD, max_binds_per_server=3),),
        dlr_delay=(0.0, 0.05),
        dlr_outcomes=(("DELIVRD", 0, 1.0),),
        seed=3,
    )


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(n: int) -> SubmitSm:
    return SubmitSm(source_addr="ACME", destination_addr=f"1415555{n:04d}", short_message=b"hi")


async def test_requests_in_flight_fall_back_to_zero_when_their_responses_arrive() -> None:
    """``smppgw_window_in_flight`` only ever went up: the bind request left 1 on every idle
    bind, and a run of submits left the window's size on binds long idle, or long closed."""
    observer = PrometheusObserver()
    async with Simulator(sim_settings()) as sim:
        server = sim.servers[0]
        settings = SessionSettings(
            host=server.host,
            port=server.plain_port,
            system_id=SYSTEM_ID,
            password=PASSWORD,
            server="smpp1",
            name="smpp1/trx-0",
            window=10,
            response_timeout=5.0,
        )
        session = await Session.connect(settings, observer=observer)
        labels = {"server": "smpp1", "bind": "smpp1/trx-0"}
        assert value(scrape(observer), "smppgw_window_in_flight", **labels) == 0
        responses = await asyncio.gather(*(session.submit(message(n)) for n in range(6)))
        assert [r.command_status for r in responses] == [CommandStatus.ESME_ROK] * 6
        assert value(scrape(observer), "smppgw_window_in_flight", **labels) == 0
        await session.close(5)
    assert value(scrape(observer), "smppgw_window_in_flight", **labels) == 0


async def test_a_link_closed_with_requests_outstanding_leaves_none_in_flight() -> None:
    """A bind whose link dropped while submits awaited their responses still showed them."""
    observer = PrometheusObserver()
    async with Simulator(sim_settings()) as sim:
        server = sim.servers[0]
        settings = SessionSettings(
            host=server.host,
            port=server.plain_port,
            system_id=SYSTEM_ID,
            password=PASSWORD,
            server="smpp1",
            name="smpp1/trx-0",
            window=10,
            response_timeout=5.0,
        )
        session = await Session.connect(settings, observer=observer)
        labels = {"server": "smpp1", "bind": "smpp1/trx-0"}
        submits = [asyncio.ensure_future(session.submit(message(n))) for n in range(3)]
        await asyncio.sleep(0)  # the submits are written in this turn of the loop
        assert value(scrape(observer), "smppgw_window_in_flight", **labels) == 3
        session.abort()
        await asyncio.gather(*submits, return_exceptions=True)
    assert value(scrape(observer), "smppgw_window_in_flight", **labels) == 0


async def _noop_inbound(_pdu: DeliverSm | DataSm) -> CommandStatus:
    return CommandStatus.ESME_ROK


async def test_a_server_that_never_bound_fires_the_no_bound_bind_alert() -> None:
    """A server whose binds never came up exported no ``state="bound"`` series at all, so the
    README's alert (``smppgw_binds{state="bound"} == 0``) stayed silent for exactly the server
    it exists for; and binds waiting to reconnect showed as ``closed``, never ``backoff``."""
    observer = PrometheusObserver()
    async with Simulator(sim_settings()) as sim:
        live = sim.servers[0]
        servers = (
            ServerSettings(name="live", host=live.host, port=live.plain_port, binds=2),
            ServerSettings(name="dead", host="127.0.0.1", port=refused_port(), binds=2),
        )
        settings = BindManagerSettings(
            servers,
            SYSTEM_ID,
            PASSWORD,
            connect_timeout=2.0,
            bind_timeout=2.0,
            reconnect_min=60.0,
            reconnect_max=60.0,
        )
        # With this seed the dead server's first backoff is tens of seconds: it stays there.
        rng = random.Random(7)
        manager = BindManager(settings, on_inbound=_noop_inbound, observer=observer, rng=rng)
        await manager.start()
        try:
            await manager.wait_bound(count=2, timeout=5)
            await until(
                lambda: value(scrape(observer), "smppgw_binds", server="dead", state="backoff") == 2
            )
            samples = scrape(observer)
        finally:
            await manager.stop(2)
    for server in ("live", "dead"):
        for state in BIND_STATES:
            assert value(samples, "smppgw_binds", server=server, state=state) is not None
    assert value(samples, "smppgw_binds", server="live", state="bound") == 2
    assert value(samples, "smppgw_binds", server="dead", state="bound") == 0
    assert bound_is_zero(samples) == {"dead"}
    stopped = scrape(observer)
    assert value(stopped, "smppgw_binds", server="dead", state="closed") == 2
    assert value(stopped, "smppgw_binds", server="dead", state="backoff") == 0


@pytest.mark.skipif(sys.platform != "linux", reason="the process collector reads /proc")
async def test_the_daemon_exports_its_process_memory_descriptors_and_cpu(tmp_path: Path) -> None:
    """A leak of memory or descriptors showed nowhere: the daemon's registry had no
    ``process_*`` metrics."""
    config = parse_config(
        {
            "simulator": {"enabled": True, "servers": 1, "max_binds_per_server": 1},
            "store": {"path": str(tmp_path / "gw.db"), "synchronous": "normal"},
            "intake": {"path": str(tmp_path / "gw.sock")},
            "defaults": {"sender": "ACME"},
            "metrics": {"enabled": True, "address": "127.0.0.1:0"},
        },
        environ={},
    )
    gw = Gateway(config, GatewayOptions(wait_bound=5))
    try:
        async with asyncio.timeout(20):
            await gw.start()
            assert gw.metrics is not None
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.metrics.port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            response = (await reader.read()).decode()
            writer.close()
            await writer.wait_closed()
    finally:
        async with asyncio.timeout(20):
            await gw.stop(5)
    samples = parse(response.partition("\r\n\r\n")[2])
    rss = value(samples, "process_resident_memory_bytes")
    fds = value(samples, "process_open_fds")
    cpu = value(samples, "process_cpu_seconds_total")
    assert rss is not None
    assert rss > 1_000_000  # a Python process with the daemon loaded is megabytes
    assert fds is not None
    assert fds >= 3  # at least the store, the intake socket and the metrics listener
    assert cpu is not None
    assert cpu > 0
