"""Links that die are seen dying: refusals, frozen SMSCs and binds that die as they come up.

Each test drives the gateway's own session or bind manager against an SMSC that misbehaves
the way real ones were seen to: a generic_nack to a submit, a frozen process (TCP open, nothing
read or answered), and an SMSC that unbinds each bind as soon as it has accepted it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from smppgw.binds import BindManager, BindManagerSettings, PartStatus, ServerSettings
from smppgw.codec import (
    BindTransceiver,
    BindTransceiverResp,
    CommandStatus,
    DataSm,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    Framer,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode,
    encode,
)
from smppgw.session import Session, SessionSettings

Answer = Callable[[Pdu], Pdu | None]


@dataclass
class ScriptedSmsc:
    """A loopback SMSC answering each PDU with ``answer`` (binds and enquire_link by default)."""

    answer: Answer
    received: list[Pdu] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    handlers: set[asyncio.Task[object]] = field(default_factory=set)
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        self.writers.append(writer)
        framer = Framer()
        try:
            while data := await reader.read(65536):
                for frame in framer.feed(data):
                    pdu = decode(frame)
                    self.received.append(pdu)
                    reply = _default_answer(pdu) or self.answer(pdu)
                    if reply is not None:
                        writer.write(encode(reply))
        except ConnectionError:
            pass
        finally:
            writer.close()

    def submits(self) -> list[SubmitSm]:
        return [p for p in self.received if isinstance(p, SubmitSm)]


def _default_answer(pdu: Pdu) -> Pdu | None:
    seq = pdu.sequence_number
    if isinstance(pdu, BindTransceiver):
        return BindTransceiverResp(sequence_number=seq, system_id="SCRIPTED")
    if isinstance(pdu, EnquireLink):
        return EnquireLinkResp(sequence_number=seq)
    if isinstance(pdu, Unbind):
        return UnbindResp(sequence_number=seq)
    return None


@contextlib.asynccontextmanager
async def scripted_smsc(answer: Answer) -> AsyncIterator[ScriptedSmsc]:
    smsc = ScriptedSmsc(answer)
    server = await asyncio.start_server(smsc.serve, "127.0.0.1", 0)
    smsc.port = server.sockets[0].getsockname()[1]
    try:
        yield smsc
    finally:
        server.close()
        for writer in smsc.writers:
            writer.close()
        await asyncio.gather(*smsc.handlers, return_exceptions=True)
        await server.wait_closed()


def session_settings(port: int, **kwargs: object) -> SessionSettings:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "system_id": "smppgw",
        "password": "secret",
        "response_timeout": 5.0,
    }
    base.update(kwargs)
    return SessionSettings(**base)  # type: ignore[arg-type]


def nack_every_submit(status: CommandStatus) -> Answer:
    def answer(pdu: Pdu) -> Pdu | None:
        if isinstance(pdu, SubmitSm | DataSm):
            return GenericNack(sequence_number=pdu.sequence_number, command_status=status)
        return None

    return answer


# --- item: a generic_nack to a submit is a refusal -------------------------------------------


async def test_generic_nack_to_a_submit_is_a_refusal_with_its_status_and_the_bind_stays_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A generic_nack answering a submit_sm used to raise LinkLostError while the session stayed
    bound: the bind manager took the outcome as unknown, resubmitted the message and flagged it
    possible_duplicate, although the SMSC had refused it. It is the submit's refusal: returned
    with its status, tied to the submit by sequence number, logged naming the PDU and status."""
    async with scripted_smsc(nack_every_submit(CommandStatus.ESME_RINVCMDID)) as smsc:
        session = await Session.connect(session_settings(smsc.port))
        try:
            with caplog.at_level(logging.WARNING, logger="smppgw.session"):
                resp = await session.submit(SubmitSm(destination_addr="14155550101"))
            assert isinstance(resp, SubmitSmResp)
            assert resp.command_status is CommandStatus.ESME_RINVCMDID
            assert resp.sequence_number == smsc.submits()[0].sequence_number
            assert session.bound
            assert "SubmitSm" in caplog.text
            assert "generic_nack ESME_RINVCMDID" in caplog.text
            data = await session.submit(DataSm(destination_addr="14155550101"))
            assert data.command_status is CommandStatus.ESME_RINVCMDID
        finally:
            session.abort()


def manager_settings(*servers: ServerSettings, **kwargs: object) -> BindManagerSettings:
    base: dict[str, object] = {
        "servers": servers,
        "system_id": "smppgw",
        "password": "secret",
        "response_timeout": 5.0,
        "reconnect_min": 0.05,
        "reconnect_max": 0.5,
        "retry_delay": 0.0,
        "max_attempts": 3,
    }
    base.update(kwargs)
    return BindManagerSettings(**base)  # type: ignore[arg-type]


async def no_inbound(_pdu: DeliverSm | DataSm) -> CommandStatus:
    return CommandStatus.ESME_ROK


@pytest.mark.parametrize(
    ("status", "expected", "sends"),
    [
        # permanent: refused once, failed, never flagged as a possible duplicate
        (CommandStatus.ESME_RINVCMDID, PartStatus.FAILED, 1),
        # transient: retried up to max_attempts, then failed
        (CommandStatus.ESME_RSYSERR, PartStatus.FAILED, 3),
    ],
)
async def test_bind_manager_follows_the_retry_policy_for_a_generic_nack_status(
    status: CommandStatus, expected: PartStatus, sends: int
) -> None:
    async with scripted_smsc(nack_every_submit(status)) as smsc:
        manager = BindManager(
            manager_settings(ServerSettings("smpp1", "127.0.0.1", smsc.port, binds=1, rate=0)),
            on_inbound=no_inbound,
        )
        await manager.start()
        try:
            await manager.wait_bound(timeout=10)
            [result] = await manager.submit([SubmitSm(destination_addr="14155550101")])
        finally:
            await manager.stop(2)
    assert result.status is expected
    assert result.command_status is status
    assert result.possible_duplicate is False
    assert result.attempts == sends
    assert len(smsc.submits()) == sends
