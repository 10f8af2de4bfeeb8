"""The scriptable test SMSC (smppgw.testing.smsc): what each handler action does on the wire."""

from __future__ import annotations

import asyncio

import pytest

from smppgw.codec import (
    BindTransceiver,
    CommandStatus,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    GenericNack,
    Pdu,
    QuerySm,
    SubmitSm,
    SubmitSmResp,
    Unbind,
)
from smppgw.esme.session import (
    BindError,
    LinkLostError,
    ResponseTimeoutError,
    Session,
    SessionSettings,
)
from smppgw.testing.smsc import Action, Answer, Close, Hold, Nack, Reply, TestSmsc


def settings(port: int, **kwargs: object) -> SessionSettings:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "system_id": "smppgw",
        "password": "secret",
        "response_timeout": 2.0,
    }
    base.update(kwargs)
    return SessionSettings(**base)  # type: ignore[arg-type]


def by_destination(pdu: Pdu) -> Action | None:
    if not isinstance(pdu, SubmitSm):
        return None
    actions: dict[str, Action] = {
        "throttle": Answer(CommandStatus.ESME_RTHROTTLED),
        "id": Answer(message_id="chosen"),
        "nack": Nack(CommandStatus.ESME_RINVCMDID),
        "reply": Reply(GenericNack(command_status=CommandStatus.ESME_RSYSERR)),
        "slow": Answer(delay=0.2),
        "hold": Hold(),
        "close": Close(),
    }
    return actions.get(pdu.destination_addr)


async def test_start_returns_once_it_accepts_and_each_action_shows_on_the_wire() -> None:
    async with TestSmsc(by_destination, password="secret") as smsc:
        session = await Session.connect(settings(smsc.port))
        ok = await session.submit(SubmitSm(destination_addr="1"))
        assert (ok.command_status, ok.message_id) == (
            CommandStatus.ESME_ROK,
            f"id{ok.sequence_number}",
        )
        throttled = await session.submit(SubmitSm(destination_addr="throttle"))
        assert throttled.command_status is CommandStatus.ESME_RTHROTTLED
        assert (await session.submit(SubmitSm(destination_addr="id"))).message_id == "chosen"
        nacked = await session.submit(SubmitSm(destination_addr="nack"))
        assert nacked.command_status is CommandStatus.ESME_RINVCMDID
        replied = await session.submit(SubmitSm(destination_addr="reply"))
        assert replied.command_status is CommandStatus.ESME_RSYSERR
        assert (await session.submit(SubmitSm(destination_addr="slow"))).command_status == 0
        data = await session.submit(DataSm(destination_addr="1"))
        assert data.message_id == f"id{data.sequence_number}"
        query = await session.query(QuerySm(message_id="x"))
        assert query.command_status is CommandStatus.ESME_RINVMSGID
        assert isinstance(smsc.received[0], BindTransceiver)
        assert isinstance(smsc.received[1], SubmitSm)
        await session.close(2)
        assert isinstance(await smsc.wait_for(Unbind), Unbind)


async def test_a_held_request_is_answered_on_release_and_a_close_drops_the_link() -> None:
    async with TestSmsc(by_destination) as smsc:
        session = await Session.connect(settings(smsc.port))
        held = asyncio.ensure_future(session.submit(SubmitSm(destination_addr="hold")))
        await smsc.wait_for(SubmitSm)
        assert len(smsc.held) == 1
        smsc.release(Answer(message_id="late"))
        assert (await held).message_id == "late"
        with pytest.raises(LinkLostError):
            await session.submit(SubmitSm(destination_addr="close"))


async def test_a_wrong_password_is_refused_when_one_is_set() -> None:
    async with TestSmsc(password="secret") as smsc:
        with pytest.raises(BindError) as info:
            await Session.connect(settings(smsc.port, password="wrong"))
    assert info.value.status is CommandStatus.ESME_RINVPASWD


async def test_pushed_requests_go_through_the_engine_and_their_answers_are_recorded() -> None:
    async def handler(_pdu: DeliverSm | DataSm) -> CommandStatus:
        return CommandStatus.ESME_ROK

    async with TestSmsc() as smsc:
        session = await Session.connect(settings(smsc.port), on_inbound=handler)
        smsc.push(DeliverSm(short_message=b"mo"))
        resp = await smsc.wait_for(DeliverSmResp)
        assert resp.command_status is CommandStatus.ESME_ROK
        assert resp.sequence_number == 1  # the SMSC's own first sequence number
        await session.close(2)


async def test_a_silent_smsc_answers_nothing_not_even_enquire_link() -> None:
    async with TestSmsc() as smsc:
        session = await Session.connect(
            settings(smsc.port, response_timeout=0.2, enquire_link_interval=0.1)
        )
        smsc.silent = True
        async with asyncio.timeout(5):
            cause = await session.wait_closed()
        assert "enquire_link" in str(cause)
        assert smsc.of_type(EnquireLink)


async def test_a_frozen_smsc_reads_nothing_until_thawed() -> None:
    async with TestSmsc() as smsc:
        session = await Session.connect(settings(smsc.port, response_timeout=0.2))
        smsc.freeze()
        with pytest.raises(ResponseTimeoutError):
            await session.submit(SubmitSm(destination_addr="1"))
        assert smsc.of_type(SubmitSm) == []
        smsc.freeze(frozen=False)
        await smsc.wait_for(SubmitSm)
        session.abort()


async def test_close_on_unbind_drops_the_link_without_an_unbind_resp() -> None:
    async with TestSmsc(close_on_unbind=True) as smsc:
        session = await Session.connect(settings(smsc.port))
        await session.close(2)
        assert session.closed
        assert isinstance(smsc.received[-1], Unbind)
        assert not any(isinstance(p, SubmitSmResp) for p in smsc.received)
