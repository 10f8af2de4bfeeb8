"""Inbound flow control: a bind records at most ``inbound_window`` deliver_sm at once.

An SMSC holding receipts while we were away sends all of them the moment a receiver binds.
Each deliver_sm used to become its own task at once: 20,000 queued receipts meant 20,000 tasks
and their PDUs in memory together. Now a session runs at most ``inbound_window`` handlers and
stops reading from the socket beyond that, so the rest waits in the SMSC (TCP backpressure)
until our deliver_sm_resp go out; nothing is lost, it only arrives as fast as we record it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from smppgw.codec import CommandStatus, DataSm, DeliverSm
from smppgw.esme.binds import BindManagerSettings, BindSettingsError, ServerSettings
from smppgw.esme.session import BindType, Session, SessionSettings
from smppgw.gateway.config import bind_manager_settings, parse_config
from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

SYSTEM_ID = "acme"
PASSWORD = "secret"


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - simulator counters have no events
            await asyncio.sleep(0.01)


@dataclass
class Recorder:
    """An inbound handler that counts how many of its calls run at the same time."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    running: int = 0
    most: int = 0
    texts: list[bytes] = field(default_factory=list)

    async def handle(self, pdu: DeliverSm | DataSm) -> CommandStatus:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate.wait()
            await asyncio.sleep(0)  # a store commit takes at least a turn of the loop
            assert isinstance(pdu, DeliverSm)
            self.texts.append(pdu.short_message)
        finally:
            self.running -= 1
        return CommandStatus.ESME_ROK


def simulator() -> Simulator:
    return Simulator(
        SimulatorSettings(
            tls=False,
            servers=1,
            accounts=(Account(SYSTEM_ID, PASSWORD),),
            dlr_retry=0.2,
            seed=5,
        )
    )


async def test_a_flood_of_deliver_sm_never_runs_more_handlers_than_the_inbound_window() -> None:
    """Regression: 2,000 MO messages held by the SMSC arrive in one burst when the receiver
    binds. With the handler blocked, exactly ``inbound_window`` calls start and no more (the
    rest is neither read nor answered); once it proceeds, every message is recorded once and
    acknowledged, and at no time did more than the window run together."""
    count, window = 2000, 8
    recorder = Recorder()
    async with asyncio.timeout(60), simulator() as sim:
        for n in range(count):
            sim.send_mo(SYSTEM_ID, "14155550000", "12345", f"mo {n}")
        info = sim.servers[0]
        session = await Session.connect(
            SessionSettings(
                host=info.host,
                port=info.plain_port,
                system_id=SYSTEM_ID,
                password=PASSWORD,
                bind_type=BindType.RECEIVER,
                inbound_window=window,
            ),
            on_inbound=recorder.handle,
        )
        try:
            await until(lambda: recorder.running >= window)
            for _ in range(20):  # give a wrong implementation every chance to start more
                await asyncio.sleep(0.005)
            assert recorder.running == window
            assert sim.stats.mo_acknowledged == 0
            recorder.gate.set()
            await until(lambda: sim.stats.mo_acknowledged == count)
        finally:
            await session.close()
    assert recorder.most == window
    assert sorted(recorder.texts) == sorted(f"mo {n}".encode() for n in range(count))
    assert sim.stats.mo_nacked == 0


def test_inbound_window_is_read_from_the_gateway_section_and_reaches_the_binds() -> None:
    config = parse_config(
        {
            "gateway": {"system_id": "acme", "password_env": "PW", "inbound_window": 16},
            "servers": [{"name": "a", "host": "127.0.0.1", "port": 2775}],
        },
        environ={"PW": "secret"},
    )
    assert config.gateway.inbound_window == 16
    assert bind_manager_settings(config).inbound_window == 16


def test_an_inbound_window_below_one_is_refused() -> None:
    server = ServerSettings(name="a", host="127.0.0.1", port=2775)
    with pytest.raises(BindSettingsError, match="inbound_window"):
        BindManagerSettings((server,), SYSTEM_ID, PASSWORD, inbound_window=0)
