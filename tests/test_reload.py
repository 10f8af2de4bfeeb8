"""Reloading the configuration of a running daemon (Gateway.reload, reload_file, SIGHUP).

The daemon runs in-process against the simulator on loopback, its servers written as
[[servers]]; a reload must keep every bind it can (the same sessions, no reconnect), apply the
new values, lose no message, refuse a bad file and say what needs a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cli_gateway import Gateway as DaemonProcess
from test_daemon import Client
from test_webhook import Receiver

from smppgw.esme.observe import RecordingObserver
from smppgw.gateway.config import Config, parse_config
from smppgw.gateway.daemon import Gateway, GatewayOptions
from smppgw.gateway.reload import plan, reload_file
from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

TIMEOUT = 30.0
BINDS = 2


def config(
    tmp_path: Path, sim: Simulator, servers: dict[str, dict[str, Any]], **sections: Any
) -> Config:
    """Servers of the simulator by name, with each one's extra keys (rate...)."""
    ports = {s.name: s.plain_port for s in sim.servers}
    data: dict[str, Any] = {
        "gateway": {
            "system_id": "acme",
            "password_env": "SMPPGW_PASSWORD",
            "response_timeout": 5,
            "retry_delay": 0.2,
        },
        "servers": [
            {"name": name, "host": "127.0.0.1", "port": ports[name], "binds": BINDS, **extra}
            for name, extra in servers.items()
        ],
        "store": {"path": str(tmp_path / "gw.db"), "synchronous": "normal"},
        "intake": {"path": str(tmp_path / "gw.sock")},
        "defaults": {"sender": "ACME"},
        "metrics": {"enabled": False},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return parse_config(data, environ={"SMPPGW_PASSWORD": "secret"})


def simulator(rate: float = 0) -> Simulator:
    return Simulator(
        SimulatorSettings(
            tls=False,
            names=("smpp1", "smpp2"),
            accounts=(Account("acme", "secret", max_binds_per_server=BINDS, rate_per_server=rate),),
            dlr_delay=(0.0, 0.02),
            dlr_outcomes=(("DELIVRD", 0, 1.0),),
            seed=3,
        )
    )


@contextlib.asynccontextmanager
async def daemon(cfg: Config) -> AsyncIterator[Gateway]:
    gw = Gateway(cfg, GatewayOptions(wait_bound=5), observer=RecordingObserver())
    async with asyncio.timeout(TIMEOUT):
        await gw.start()
    try:
        assert gw.manager is not None
        await gw.manager.wait_bound(timeout=10)
        yield gw
    finally:
        async with asyncio.timeout(TIMEOUT):
            await gw.stop(5)


def sessions(gw: Gateway) -> dict[str, object]:
    """Each bind's session object: the same objects prove no bind dropped."""
    assert gw.manager is not None
    keeper = gw.manager._keeper
    return {b.name: b.session for s in keeper._servers for b in s.binds}


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling counters, not waiting on an event
            await asyncio.sleep(0.01)


async def send_all(gw: Gateway, count: int, start: int = 0) -> dict[str, dict[str, Any]]:
    """Submit ``count`` messages and wait for each one's final status; payload by id."""
    client = await Client.connect(gw.config.intake.path)
    events = await Client.connect(gw.config.intake.path)
    try:
        assert (await events.call({"op": "subscribe", "cursor": 0}))["ok"] is True
        ids = set()
        for n in range(start, start + count):
            reply = await client.call({"op": "submit", "to": f"9198{n:08d}", "text": f"m{n}"})
            assert reply["ok"] is True, reply
            ids.add(reply["id"])
        finals: dict[str, dict[str, Any]] = {}
        while not ids <= finals.keys():
            event = await events.read()
            payload = event["payload"]
            if event["event"] == "sms:message:status" and payload["final"]:
                finals[payload["id"]] = payload
        return {i: finals[i] for i in ids}
    finally:
        await client.close()
        await events.close()


def observer(gw: Gateway) -> RecordingObserver:
    tee = gw.observer
    first = tee._first  # type: ignore[attr-defined]
    assert isinstance(first, RecordingObserver)
    return first


async def test_a_lowered_rate_is_sent_at_without_a_bind_dropping(tmp_path: Path) -> None:
    """The simulator allows 3 submits a second per server; the daemon starts at 500/s and
    is reloaded at 3/s: 12 messages are delivered without one ESME_RTHROTTLED, on the binds
    that were up before (same sessions, no reconnect, no new bind at the simulator)."""
    async with simulator(rate=3) as sim, asyncio.timeout(TIMEOUT):
        fast = {"smpp1": {"rate": 500}, "smpp2": {"rate": 500}}
        async with daemon(config(tmp_path, sim, fast)) as gw:
            before = sessions(gw)
            binds = sim.stats.binds_accepted
            report = await gw.reload(
                config(tmp_path, sim, {"smpp1": {"rate": 3}, "smpp2": {"rate": 3}})
            )
            assert report.applied == ("servers[smpp1].rate", "servers[smpp2].rate")
            assert report.restart == ()
            finals = await send_all(gw, 12)
            assert {p["state"] for p in finals.values()} == {"delivered"}
            assert sim.stats.throttled == 0
            assert sessions(gw) == before
            assert sim.stats.binds_accepted == binds
            assert observer(gw).total("reconnect") == 0
            assert gw.manager is not None
            assert [r.rate for r in gw.manager.rates()] == [3, 3]


async def test_a_raised_rate_is_sent_at_without_a_bind_dropping(tmp_path: Path) -> None:
    """Started at 1/s per server, raised to 500/s: the simulator sees more than one message
    a second from a server, on the same binds."""
    async with (
        simulator() as sim,
        asyncio.timeout(TIMEOUT),
        daemon(config(tmp_path, sim, {"smpp1": {"rate": 1}})) as gw,
    ):
        before = sessions(gw)
        await gw.reload(config(tmp_path, sim, {"smpp1": {"rate": 500}}))
        finals = await send_all(gw, 20)
        assert {p["state"] for p in finals.values()} == {"delivered"}
        assert max(sim.stats.per_second["smpp1"].values()) > 2
        assert sessions(gw) == before
        assert observer(gw).total("reconnect") == 0


async def test_a_server_added_then_one_removed_loses_no_message(tmp_path: Path) -> None:
    """smpp2 is added (its binds come up, it takes traffic, smpp1's binds stay), then smpp1 is
    removed while messages flow: its binds unbind gracefully (never backoff, no reconnect),
    every message ends delivered, and what follows goes to smpp2."""
    async with simulator(rate=20) as sim, asyncio.timeout(TIMEOUT):
        one = {"smpp1": {"rate": 20}}
        both = {"smpp1": {"rate": 20}, "smpp2": {"rate": 20}}
        async with daemon(config(tmp_path, sim, one)) as gw:
            assert gw.manager is not None
            before = sessions(gw)
            report = await gw.reload(config(tmp_path, sim, both))
            assert report.applied == ("servers[smpp2] added",)
            await gw.manager.wait_bound(2 * BINDS, timeout=10)
            assert {k: v for k, v in sessions(gw).items() if k.startswith("smpp1")} == before
            first = await send_all(gw, 20)
            assert {p["state"] for p in first.values()} == {"delivered"}
            assert set(sim.stats.accepted_by_server) == {"smpp1", "smpp2"}

            sending = asyncio.ensure_future(send_all(gw, 30, start=100))
            await until(lambda: sim.stats.received_submits >= 26)
            report = await gw.reload(config(tmp_path, sim, {"smpp2": {"rate": 20}}))
            assert report.applied == ("servers[smpp1] removed",)
            finals = await sending
            assert {p["state"] for p in finals.values()} == {"delivered"}
            recorded = observer(gw)
            gone = [f"smpp1/trx-{i}" for i in range(BINDS)]
            await until(lambda: all(recorded.bind_states.get(b) == "closed" for b in gone))
            for bind in gone:
                assert recorded.counts[("bind_state", ("smpp1", bind, "backoff"))] == 0
            assert recorded.total("reconnect") == 0
            accepted = sim.stats.accepted_by_server["smpp1"]
            after = await send_all(gw, 10, start=200)
            assert {p["state"] for p in after.values()} == {"delivered"}
            assert sim.stats.accepted_by_server["smpp1"] == accepted
            assert sim.stats.accepted == 60


async def test_the_log_level_and_the_webhook_url_change_live(tmp_path: Path) -> None:
    """The log level follows the file; events go to the new webhook URL after the reload."""
    first, second = Receiver(), Receiver()
    first.server = await asyncio.start_server(first.handle, "127.0.0.1", 0)
    second.server = await asyncio.start_server(second.handle, "127.0.0.1", 0)
    root = logging.getLogger()
    level = root.level
    try:
        async with simulator() as sim, asyncio.timeout(TIMEOUT):
            servers: dict[str, dict[str, Any]] = {"smpp1": {}}
            hook = {"url": first.url(), "max_attempts": 1}
            async with daemon(config(tmp_path, sim, servers, webhook=hook)) as gw:
                await send_all(gw, 1)
                await until(lambda: bool(first.requests))
                report = await gw.reload(
                    config(
                        tmp_path,
                        sim,
                        servers,
                        webhook={**hook, "url": second.url("/new")},
                        log={"level": "debug"},
                    )
                )
                assert report.applied == ("webhook.url", "log.level")
                assert root.level == logging.DEBUG
                seen = len(first.requests)
                await send_all(gw, 1, start=1)
                await until(lambda: any(r.target == "/new" for r in second.requests))
                assert len(first.requests) == seen
    finally:
        root.setLevel(level)
        for r in (first, second):
            assert r.server is not None
            r.server.close()


async def test_a_webhook_added_by_a_reload_gets_the_events_from_then_on(tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    try:
        async with (
            simulator() as sim,
            asyncio.timeout(TIMEOUT),
            daemon(config(tmp_path, sim, {"smpp1": {}})) as gw,
        ):
            report = await gw.reload(
                config(tmp_path, sim, {"smpp1": {}}, webhook={"url": receiver.url()})
            )
            assert report.applied == ("webhook added",)
            await send_all(gw, 1)
            await until(lambda: bool(receiver.requests))
            report = await gw.reload(config(tmp_path, sim, {"smpp1": {}}))
            assert report.applied == ("webhook removed",)
            assert gw.webhook is None
    finally:
        receiver.server.close()


async def test_a_bad_file_is_refused_and_the_old_configuration_keeps_sending(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with simulator() as sim, asyncio.timeout(TIMEOUT):
        cfg = config(tmp_path, sim, {"smpp1": {"rate": 50}})
        path = tmp_path / "gw.toml"
        path.write_text('[gateway]\nsystem_id = "acme"\nwindow = 0\n[[servers]]\nname = "x"\n')
        async with daemon(cfg) as gw:
            before = sessions(gw)
            with caplog.at_level(logging.ERROR, logger="smppgw.gateway.reload"):
                report = await reload_file(gw, str(path))
            assert not report.ok
            assert any(e.startswith("gateway.window") for e in report.errors)
            assert any("configuration not reloaded" in r.getMessage() for r in caplog.records)
            assert gw.config is cfg
            assert gw.manager is not None
            assert [r.rate for r in gw.manager.rates()] == [50]
            finals = await send_all(gw, 3)
            assert {p["state"] for p in finals.values()} == {"delivered"}
            assert sessions(gw) == before


async def test_a_change_needing_a_restart_is_reported_at_every_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with simulator() as sim, asyncio.timeout(TIMEOUT):
        servers: dict[str, dict[str, Any]] = {"smpp1": {}}
        async with daemon(config(tmp_path, sim, servers)) as gw:
            changed = config(
                tmp_path,
                sim,
                servers,
                gateway={"system_id": "other", "window": 5},
                store={"synchronous": "full"},
                metrics={"enabled": True},
            )
            with caplog.at_level(logging.WARNING, logger="smppgw.gateway.reload"):
                report = await gw.reload(changed)
            restart = (
                "gateway.system_id",
                "gateway.window",
                "store.synchronous",
                "metrics.enabled",
            )
            assert report.applied == ()
            assert report.restart == restart
            assert (
                "changed but needs a restart: gateway.system_id, gateway.window, "
                "store.synchronous, metrics.enabled"
            ) in [r.getMessage() for r in caplog.records]
            assert gw.config.gateway.system_id == "acme"
            assert gw.config.store.synchronous == "normal"
            again = await gw.reload(changed)
            assert again.restart == restart


def test_the_retry_policy_defaults_and_intake_limits_are_applied_live(tmp_path: Path) -> None:
    base: dict[str, Any] = {
        "gateway": {"system_id": "acme", "password_env": "SMPPGW_PASSWORD"},
        "servers": [{"name": "a", "host": "127.0.0.1", "port": 2775}],
        "store": {"path": str(tmp_path / "gw.db")},
        "intake": {"path": str(tmp_path / "gw.sock")},
    }
    env = {"SMPPGW_PASSWORD": "secret"}
    old = parse_config(base, environ=env)
    new = parse_config(
        {
            **base,
            "retry": {"unknown_policy": "never", "status": {"ESME_RSYSERR": "permanent"}},
            "defaults": {"sender": "ACME"},
            "intake": {"path": str(tmp_path / "other.sock"), "max_batch": 10},
            "receipts": {"query_rate": 5.0},
        },
        environ=env,
    )
    change = plan(old, new)
    assert change.applied == (
        "retry.unknown_policy",
        "retry.status",
        "intake.max_batch",
        "defaults.sender",
        "receipts.query_rate",
    )
    assert change.restart == ("intake.path",)
    assert change.bind_manager
    assert change.intake
    assert change.receipts
    assert change.config.intake.path == old.intake.path
    assert change.config.intake.max_batch == 10


def test_sighup_reloads_the_file_of_a_running_daemon(tmp_path: Path) -> None:
    """``smppgw run`` + SIGHUP (what ``systemctl reload`` sends): the file is read again, the
    log level applied and a restart-only change reported; the daemon keeps serving."""
    process = DaemonProcess(tmp_path / "daemon")
    process.start()
    try:
        text = process.config.read_text()
        text = text.replace("[metrics]\n", '[log]\nlevel = "debug"\n[metrics]\n')
        process.config.write_text(text.replace('synchronous = "normal"', 'synchronous = "full"'))
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + TIMEOUT
        wanted = (
            "configuration reloaded: applied log.level",
            "changed but needs a restart: store.synchronous",
        )
        while not all(w in process.log.read_text() for w in wanted):
            assert time.monotonic() < deadline, process.log.read_text()
            time.sleep(0.05)
        assert process._answers()
    finally:
        process.stop()
