"""The session layer against a small scriptable SMSC on 127.0.0.1 (plain and TLS)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from smppgw.codec import (
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    Unbind,
    UnbindResp,
    encode,
)
from smppgw.codec.connection import State
from smppgw.codec.constants import EsmClass
from smppgw.esme.observe import RecordingObserver
from smppgw.esme.session import (
    BindError,
    BindType,
    ConnectError,
    LinkLostError,
    Origin,
    ResponseTimeoutError,
    Session,
    SessionClosedError,
    SessionSettings,
    TlsSettings,
    inbound_origin,
)
from smppgw.testing.smsc import Action, Answer, Hold, TestSmsc


@dataclass
class Script:
    """How the test SMSC answers submits: with ``status``, or not yet (``hold``)."""

    status: CommandStatus = CommandStatus.ESME_ROK
    hold: bool = False

    def __call__(self, pdu: Pdu) -> Action | None:
        if not isinstance(pdu, SubmitSm):
            return None
        return Hold() if self.hold else Answer(self.status)


Fake = tuple[TestSmsc, Script, int]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Poll ``condition`` every 10 ms, failing the test after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the fake SMSC has no events to await
            await asyncio.sleep(0.01)


@pytest.fixture
async def smsc() -> AsyncIterator[Fake]:
    script = Script()
    async with TestSmsc(script, password="secret") as server:
        yield server, script, server.port


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


@pytest.mark.parametrize("bind_type", list(BindType))
async def test_bind_each_type(smsc: Fake, bind_type: BindType) -> None:
    fake, _script, port = smsc
    observer = RecordingObserver()
    session = await Session.connect(
        settings(port, bind_type=bind_type, name="b0"), observer=observer
    )
    assert session.bound
    assert fake.received[0].command_id == {"tx": 2, "rx": 1, "trx": 9}[bind_type.value]
    assert fake.received[0].system_type == "smpp"  # type: ignore[attr-defined]
    assert observer.bind_states["b0"] == "bound"
    await session.close(1)
    assert session.closed
    assert isinstance(fake.received[-1], Unbind)
    assert observer.bind_states["b0"] == "closed"


async def test_bind_refused_carries_the_status(smsc: Fake) -> None:
    _, _, port = smsc
    with pytest.raises(BindError) as info:
        await Session.connect(settings(port, password="wrong"))
    assert info.value.status is CommandStatus.ESME_RINVPASWD


async def test_connect_refused_names_the_endpoint() -> None:
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
        await Session.connect(settings(port))


async def test_submit_returns_non_ok_status(smsc: Fake) -> None:
    _fake, script, port = smsc
    session = await Session.connect(settings(port))
    ok = await session.submit(SubmitSm(destination_addr="14155550101", short_message=b"hi"))
    assert ok.command_status is CommandStatus.ESME_ROK
    assert ok.message_id == f"id{ok.sequence_number}"
    script.status = CommandStatus.ESME_RTHROTTLED
    throttled = await session.submit(SubmitSm(destination_addr="14155550101"))
    assert throttled.command_status is CommandStatus.ESME_RTHROTTLED
    session.abort()


async def test_window_bounds_outstanding_requests(smsc: Fake) -> None:
    fake, script, port = smsc
    session = await Session.connect(settings(port, window=3))
    script.hold = True
    tasks = [asyncio.create_task(session.submit(SubmitSm())) for _ in range(5)]
    await until(lambda: len(fake.held) >= 3)
    await asyncio.sleep(0.05)
    assert len(fake.held) == 3
    assert session.in_flight == 3
    assert session.window_free == 0
    script.hold = False
    fake.release(Answer(message_id="late"))
    async with asyncio.timeout(5):
        results = await asyncio.gather(*tasks)
    assert len(results) == 5
    assert len({r.sequence_number for r in results}) == 5
    session.abort()


async def test_response_timeout_is_an_unknown_outcome(smsc: Fake) -> None:
    _fake, script, port = smsc
    observer = RecordingObserver()
    session = await Session.connect(settings(port, response_timeout=0.1), observer=observer)
    script.hold = True
    with pytest.raises(ResponseTimeoutError):
        await session.submit(SubmitSm())
    assert observer.total("submit_unknown") == 1
    assert session.in_flight == 0
    session.abort()


async def test_link_lost_fails_every_outstanding_request(smsc: Fake) -> None:
    fake, script, port = smsc
    session = await Session.connect(settings(port))
    script.hold = True
    tasks = [asyncio.create_task(session.submit(SubmitSm())) for _ in range(4)]
    await until(lambda: len(fake.held) >= 4)
    fake.drop_links()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, LinkLostError) for r in results)
    assert isinstance(await session.wait_closed(), LinkLostError)
    with pytest.raises(SessionClosedError):
        await session.submit(SubmitSm())


async def test_enquire_link_sent_when_idle_and_answered(smsc: Fake) -> None:
    fake, _script, port = smsc
    session = await Session.connect(settings(port, enquire_link_interval=0.05))
    await until(lambda: any(isinstance(p, EnquireLink) for p in fake.received))
    # Answered, so the session stays up through several intervals.
    await asyncio.sleep(0.2)
    assert session.bound
    fake.push_raw(encode(EnquireLink(sequence_number=77)))
    await until(
        lambda: any(
            isinstance(p, EnquireLinkResp) and p.sequence_number == 77 for p in fake.received
        )
    )
    session.abort()


async def test_silent_peer_is_declared_dead(smsc: Fake) -> None:
    fake, _script, port = smsc
    session = await Session.connect(
        settings(port, enquire_link_interval=0.05, response_timeout=0.1, idle_timeout=10)
    )
    fake.silent = True
    async with asyncio.timeout(5):
        cause = await session.wait_closed()
    assert isinstance(cause, LinkLostError)
    assert "enquire_link" in str(cause)


async def test_garbage_gets_generic_nack_and_session_survives(
    smsc: Fake,
) -> None:
    fake, _script, port = smsc
    session = await Session.connect(settings(port))
    fake.push_raw(bytes.fromhex("00000010 00000099 00000000 0000002a"))  # unknown command_id
    await until(lambda: any(isinstance(p, GenericNack) for p in fake.received))
    nack = next(p for p in fake.received if isinstance(p, GenericNack))
    assert nack.command_status is CommandStatus.ESME_RINVCMDID
    assert nack.sequence_number == 0x2A
    assert (await session.submit(SubmitSm())).command_status is CommandStatus.ESME_ROK
    session.abort()


async def test_peer_unbind_is_answered_and_closes(smsc: Fake) -> None:
    fake, _script, port = smsc
    session = await Session.connect(settings(port))
    fake.push_raw(encode(Unbind(sequence_number=5)))
    async with asyncio.timeout(5):
        await session.wait_closed()
    await until(lambda: any(isinstance(p, UnbindResp) for p in fake.received))


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("ok", CommandStatus.ESME_ROK), ("raise", CommandStatus.ESME_RX_T_APPN)],
)
async def test_inbound_deliver_sm_answered_with_handler_status(
    smsc: Fake, outcome: str, status: CommandStatus
) -> None:
    fake, _script, port = smsc
    seen: list[DeliverSm] = []

    async def handler(pdu: DeliverSm | object) -> CommandStatus:
        assert isinstance(pdu, DeliverSm)
        seen.append(pdu)
        if outcome == "raise":
            raise RuntimeError("store down")
        return CommandStatus.ESME_ROK

    session = await Session.connect(settings(port), on_inbound=handler)
    fake.push_raw(
        encode(
            DeliverSm(
                sequence_number=9, esm_class=EsmClass.DELIVERY_RECEIPT, short_message=b"id:1 stat:X"
            )
        )
    )
    await until(lambda: any(isinstance(p, DeliverSmResp) for p in fake.received))
    resp = next(p for p in fake.received if isinstance(p, DeliverSmResp))
    assert (resp.sequence_number, resp.command_status) == (9, status)
    assert seen[0].short_message == b"id:1 stat:X"
    session.abort()


async def test_the_inbound_handler_knows_the_server_and_bind_of_the_pdu(
    smsc: Fake,
) -> None:
    fake, _script, port = smsc
    origins: list[Origin | None] = []

    async def handler(_pdu: DeliverSm | object) -> CommandStatus:
        await asyncio.sleep(0)  # the origin survives a suspension
        origins.append(inbound_origin())
        return CommandStatus.ESME_ROK

    session = await Session.connect(
        settings(port, server="smpp2", name="smpp2/trx-1"), on_inbound=handler
    )
    fake.push_raw(
        encode(
            DeliverSm(
                sequence_number=3, esm_class=EsmClass.DELIVERY_RECEIPT, short_message=b"id:1 stat:X"
            )
        )
    )
    await until(lambda: bool(origins))
    assert origins == [Origin("smpp2", "smpp2/trx-1")]
    assert inbound_origin() is None  # outside a handler
    session.abort()


async def test_graceful_close_waits_for_outstanding(smsc: Fake) -> None:
    fake, script, port = smsc
    session = await Session.connect(settings(port))
    script.hold = True
    task = asyncio.create_task(session.submit(SubmitSm()))
    await until(lambda: bool(fake.held))
    closing = asyncio.create_task(session.close(3))
    await asyncio.sleep(0.05)
    assert not session.closed
    script.hold = False
    fake.release(Answer(message_id="late"))
    resp = await task
    assert resp.message_id == "late"
    await closing
    assert session.closed


async def test_tls_bind_verifies_the_server(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with TestSmsc(tls=server_ctx) as fake:
        port = fake.port
        session = await Session.connect(
            settings(port, tls=TlsSettings(ca_file=str(ca_file), minimum_version="TLSv1.2"))
        )
        resp = await session.submit(SubmitSm())
        assert resp.command_status is CommandStatus.ESME_ROK
        await session.close(1)
        # Without our CA the certificate is refused: verification is on by default.
        with pytest.raises(ConnectError):
            await Session.connect(settings(port, tls=TlsSettings()))


async def test_session_state_follows_the_bind_and_the_unbind(smsc: Fake) -> None:
    _, _, port = smsc
    session = await Session.connect(settings(port, bind_type=BindType.TRANSMITTER))
    states = [session.state]
    await session.close()
    states.append(session.state)
    assert states == [State.BOUND_TX, State.CLOSED]


async def test_deliver_sm_on_a_transmitter_bind_is_refused_and_the_bind_survives(
    smsc: Fake,
) -> None:
    """SMPP v3.4 section 2.3: a transmitter may not receive deliver_sm; the SMSC is told so
    (ESME_RINVBNDSTS) and the handler never sees it, but the bind stays up."""
    fake, _script, port = smsc
    seen: list[DeliverSm | DataSm] = []

    async def handler(pdu: DeliverSm | DataSm) -> CommandStatus:
        seen.append(pdu)  # pragma: no cover - must not be called
        return CommandStatus.ESME_ROK  # pragma: no cover

    session = await Session.connect(
        settings(port, bind_type=BindType.TRANSMITTER), on_inbound=handler
    )
    fake.push_raw(encode(DeliverSm(sequence_number=77, short_message=b"x")))
    await until(lambda: any(isinstance(p, DeliverSmResp) for p in fake.received))
    resp = next(p for p in fake.received if isinstance(p, DeliverSmResp))
    assert (resp.sequence_number, resp.command_status) == (77, CommandStatus.ESME_RINVBNDSTS)
    assert seen == []
    assert session.bound
    await session.submit(SubmitSm(destination_addr="1"))
    await session.close()


async def test_submit_on_a_receiver_bind_is_refused_before_sending(
    smsc: Fake,
) -> None:
    fake, _script, port = smsc
    session = await Session.connect(settings(port, bind_type=BindType.RECEIVER))
    with pytest.raises(SessionClosedError, match="not allowed in state bound_rx"):
        await session.submit(SubmitSm(destination_addr="1"))
    assert not any(isinstance(p, SubmitSm) for p in fake.received)
    assert session.bound
    await session.close()


async def test_response_of_the_wrong_command_drops_the_link(smsc: Fake) -> None:
    fake, script, port = smsc
    script.hold = True
    session = await Session.connect(settings(port))
    task = asyncio.create_task(session.submit(SubmitSm(destination_addr="1")))
    await until(lambda: bool(fake.held))
    fake.push_raw(encode(DataSmResp(sequence_number=fake.held[0][1].sequence_number)))
    with pytest.raises(LinkLostError):
        await task
    cause = await session.wait_closed()
    assert isinstance(cause, LinkLostError)
    assert "broke the protocol" in str(cause)
