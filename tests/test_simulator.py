"""The SMSC simulator, driven by our own session layer over loopback."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable

import pytest

from smppgw.codec import CommandStatus, DataSm, DeliverSm, MessageState, SubmitSm
from smppgw.codec.receipt import receipt_info
from smppgw.session import BindError, BindType, Session, SessionSettings, TlsSettings
from smppgw.simulator import Account, FaultSettings, Simulator, SimulatorSettings

PASSWORD = "secret"


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling simulator counters
            await asyncio.sleep(0.01)


def sim_settings(**kwargs: object) -> SimulatorSettings:
    base: dict[str, object] = {
        "tls": False,
        "accounts": (Account("acme", PASSWORD, max_binds_per_server=2, rate_per_server=0),),
        "dlr_delay": (0.0, 0.02),
        "dlr_outcomes": (("DELIVRD", 0, 1.0),),
        "seed": 7,
    }
    base.update(kwargs)
    return SimulatorSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_settings()) as simulator:
        yield simulator


Inbox = list[DeliverSm | DataSm]


async def connect(
    simulator: Simulator,
    server: int = 0,
    bind_type: BindType = BindType.TRANSCEIVER,
    inbox: Inbox | None = None,
    **kwargs: object,
) -> Session:
    info = simulator.servers[server]

    async def on_inbound(pdu: DeliverSm | DataSm) -> CommandStatus:
        if inbox is not None:
            inbox.append(pdu)
        return CommandStatus.ESME_ROK

    settings = SessionSettings(
        host=info.host,
        port=info.plain_port,
        system_id="acme",
        password=PASSWORD,
        bind_type=bind_type,
        response_timeout=2.0,
        **kwargs,  # type: ignore[arg-type]
    )
    return await Session.connect(settings, on_inbound=on_inbound)


async def test_binds_are_limited_per_server(sim: Simulator) -> None:
    first = [await connect(sim, 0) for _ in range(2)]
    with pytest.raises(BindError) as info:
        await connect(sim, 0)
    assert info.value.status is CommandStatus.ESME_RBINDFAIL
    other = await connect(sim, 1)  # the limit is per server
    assert sim.bound() == 3
    for session in [*first, other]:
        session.abort()


async def test_wrong_credentials_are_refused(sim: Simulator) -> None:
    info = sim.servers[0]
    for system_id, password, status in [
        ("acme", "wrong", CommandStatus.ESME_RINVPASWD),
        ("nobody", PASSWORD, CommandStatus.ESME_RINVSYSID),
    ]:
        with pytest.raises(BindError) as error:
            await Session.connect(SessionSettings(info.host, info.plain_port, system_id, password))
        assert error.value.status is status
    assert sim.stats.binds_refused == 2


async def test_receipt_relayed_on_a_receiver_of_another_server(sim: Simulator) -> None:
    inbox: Inbox = []
    tx = await connect(sim, 0, BindType.TRANSMITTER)
    rx = await connect(sim, 1, BindType.RECEIVER, inbox)
    resp = await tx.submit(SubmitSm(destination_addr="14155550101", registered_delivery=1))
    assert resp.command_status is CommandStatus.ESME_ROK
    await sim.wait_dlrs_settled(5)
    assert len(inbox) == 1
    assert isinstance(inbox[0], DeliverSm)
    info = receipt_info(inbox[0].short_message, inbox[0].tlvs)
    assert info.message_id == resp.message_id
    assert info.state is MessageState.DELIVERED
    assert inbox[0].esm_class == 0x04
    assert (sim.stats.dlrs_sent, sim.stats.dlrs_acked) == (1, 1)
    tx.abort()
    rx.abort()


async def test_receipt_waits_for_a_receiver_to_bind(sim: Simulator) -> None:
    tx = await connect(sim, 0, BindType.TRANSMITTER)
    await tx.submit(SubmitSm(destination_addr="14155550101", registered_delivery=1))
    await asyncio.sleep(0.1)
    assert sim.stats.dlrs_sent == 0
    assert sim.dlrs_pending == 1
    inbox: Inbox = []
    rx = await connect(sim, 1, BindType.RECEIVER, inbox)
    await sim.wait_dlrs_settled(5)
    assert len(inbox) == 1
    tx.abort()
    rx.abort()


async def test_unacknowledged_receipt_is_resent() -> None:
    async with Simulator(sim_settings(dlr_retry=0.05)) as sim:
        refusals = 0
        inbox: Inbox = []

        async def flaky(pdu: DeliverSm | DataSm) -> CommandStatus:
            nonlocal refusals
            if refusals == 0:
                refusals += 1
                return CommandStatus.ESME_RX_T_APPN
            inbox.append(pdu)
            return CommandStatus.ESME_ROK

        info = sim.servers[0]
        session = await Session.connect(
            SessionSettings(info.host, info.plain_port, "acme", PASSWORD), on_inbound=flaky
        )
        await session.submit(SubmitSm(destination_addr="14155550101", registered_delivery=1))
        await sim.wait_dlrs_settled(5)
        assert (sim.stats.dlrs_nacked, sim.stats.dlrs_acked, len(inbox)) == (1, 1, 1)
        session.abort()


async def test_throttling_per_one_second_window() -> None:
    account = Account("acme", PASSWORD, rate_per_server=5)
    async with Simulator(sim_settings(accounts=(account,))) as sim:
        session = await connect(sim, 0)
        results = await asyncio.gather(*(session.submit(SubmitSm()) for _ in range(12)))
        statuses = [r.command_status for r in results]
        throttled = statuses.count(CommandStatus.ESME_RTHROTTLED)
        assert statuses.count(CommandStatus.ESME_ROK) + throttled == 12
        assert throttled >= 2  # at most 5 per window, and 12 cannot span 3 windows here
        assert max(sim.submits_per_second("smpp1")) <= 5
        assert sim.stats.throttled == throttled
        session.abort()


@pytest.mark.parametrize(
    ("fmt", "pattern"),
    [
        ("hex", r"[0-9a-f]+"),
        ("decimal", r"[0-9]+"),
        ("uuid", r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
    ],
)
async def test_message_id_formats(fmt: str, pattern: str) -> None:
    async with Simulator(sim_settings(message_id_format=fmt)) as sim:
        session = await connect(sim, 0)
        resp = await session.submit(SubmitSm())
        assert re.fullmatch(pattern, resp.message_id)
        session.abort()


async def test_queue_full_fault() -> None:
    async with Simulator(sim_settings(faults=FaultSettings(queue_full_ratio=1.0))) as sim:
        session = await connect(sim, 0)
        resp = await session.submit(SubmitSm())
        assert resp.command_status is CommandStatus.ESME_RMSSQFUL
        assert sim.stats.queue_full == 1
        session.abort()


async def test_server_down_cuts_binds_and_refuses(sim: Simulator) -> None:
    session = await connect(sim, 0)
    sim.set_server_down(0, down=True)
    async with asyncio.timeout(5):
        await session.wait_closed()
    with pytest.raises(Exception):  # noqa: B017, PT011 - refused at connect or bind
        await connect(sim, 0, bind_timeout=1.0, connect_timeout=1.0)
    sim.set_server_down(0, down=False)
    again = await connect(sim, 0)
    assert again.bound
    again.abort()


async def test_tls_port_with_generated_certificate(tmp_path: object) -> None:
    async with Simulator(sim_settings(tls=True)) as sim:
        assert sim.ca_file is not None
        info = sim.servers[1]
        assert info.tls_port is not None
        session = await Session.connect(
            SessionSettings(
                info.host,
                info.tls_port,
                "acme",
                PASSWORD,
                tls=TlsSettings(ca_file=sim.ca_file, minimum_version="TLSv1.2"),
            )
        )
        assert (await session.submit(SubmitSm())).command_status is CommandStatus.ESME_ROK
        await session.close(1)


async def test_submit_on_receiver_bind_is_refused(sim: Simulator) -> None:
    rx = await connect(sim, 0, BindType.RECEIVER)
    resp = await rx.request(SubmitSm())
    assert resp.command_status is CommandStatus.ESME_RINVBNDSTS
    rx.abort()
    await until(lambda: sim.bound() == 0)
