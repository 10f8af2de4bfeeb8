"""The SMSC simulator, driven by our own session layer over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable

import pytest

from smppgw.codec import (
    BindReceiver,
    CommandStatus,
    DataSm,
    DeliverSm,
    EnquireLink,
    EsmClass,
    Framer,
    MessageState,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Tag,
    decode,
    encode,
)
from smppgw.codec.constants import DataCoding, RegisteredDelivery
from smppgw.codec.receipt import receipt_info
from smppgw.codec.split import SplitMethod, split_message
from smppgw.codec.text import MessageTooLongError, decode_text, encode_text
from smppgw.codec.udh import parse_udh
from smppgw.esme.session import BindError, BindType, Session, SessionSettings, TlsSettings
from smppgw.testing.simulator import (
    Account,
    FaultSettings,
    MoSettings,
    ServerInfo,
    Simulator,
    SimulatorSettings,
    UnknownAccountError,
    build_mo_parts,
)
from smppgw.testing.simulator.cli import build_parser, run_outages, settings_from_args

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
    resp = await tx.submit(
        SubmitSm(destination_addr="14155550101", registered_delivery=RegisteredDelivery.FINAL)
    )
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
    await tx.submit(
        SubmitSm(destination_addr="14155550101", registered_delivery=RegisteredDelivery.FINAL)
    )
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
        await session.submit(
            SubmitSm(destination_addr="14155550101", registered_delivery=RegisteredDelivery.FINAL)
        )
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
    # Raw PDUs: our own session refuses to send a submit_sm on a receiver bind.
    info = sim.servers[0]
    reader, writer = await asyncio.open_connection(info.host, info.plain_port)
    framer = Framer()

    async def exchange(pdu: Pdu) -> Pdu:
        writer.write(encode(pdu))
        async with asyncio.timeout(5):
            while True:
                frames = framer.feed(await reader.read(4096))
                if frames:
                    return decode(frames[0])

    bound = await exchange(BindReceiver(sequence_number=1, system_id="acme", password=PASSWORD))
    assert bound.command_status is CommandStatus.ESME_ROK
    resp = await exchange(SubmitSm(sequence_number=2))
    assert isinstance(resp, SubmitSmResp)
    assert resp.command_status is CommandStatus.ESME_RINVBNDSTS
    writer.close()
    await writer.wait_closed()
    await until(lambda: sim.bound() == 0)


# --- mobile-originated messages --------------------------------------------------------------

MOBILE = "14155550123"
SHORT_CODE = "12345"


def reassemble(parts: list[DeliverSm]) -> str:
    """The text of a UDH-concatenated message whose parts may arrive in any order."""
    by_seq: dict[int, bytes] = {}
    references = set()
    for pdu in parts:
        assert pdu.esm_class & EsmClass.UDHI
        udh, data = parse_udh(pdu.short_message)
        concat = udh.concat
        assert concat is not None
        assert concat.total == len(parts)
        references.add(concat.reference)
        by_seq[concat.seqnum] = data
    assert len(references) == 1
    assert sorted(by_seq) == list(range(1, len(parts) + 1))
    return decode_text(b"".join(by_seq[i] for i in sorted(by_seq)), parts[0].data_coding)


@pytest.mark.parametrize("bind_type", [BindType.RECEIVER, BindType.TRANSCEIVER])
async def test_injected_mo_reaches_a_receiver_with_its_fields(
    sim: Simulator, bind_type: BindType
) -> None:
    inbox: Inbox = []
    session = await connect(sim, 1, bind_type, inbox)
    record = sim.send_mo("acme", MOBILE, SHORT_CODE, "Hello @ 5 EUR")
    await sim.wait_mo_settled(5)
    assert len(inbox) == 1
    pdu = inbox[0]
    assert isinstance(pdu, DeliverSm)
    assert pdu.esm_class == 0x00  # type bits 0: a short message, not a receipt
    assert (pdu.source_addr, pdu.source_addr_ton, pdu.source_addr_npi) == (MOBILE, 1, 1)
    assert pdu.destination_addr == SHORT_CODE
    assert pdu.data_coding == 0x00
    assert pdu.short_message == b"Hello \x00 5 EUR"  # "@" is septet 0x00 in GSM 03.38
    assert pdu.tlvs == ()
    assert (record.parts, record.reference, record.system_id) == (1, None, "acme")
    s = sim.stats
    assert (s.mo_messages, s.mo_parts, s.mo_sent, s.mo_acknowledged) == (1, 1, 1, 1)
    assert (s.dlrs_sent, sim.mo_pending) == (0, 0)
    session.abort()


async def test_long_ucs2_mo_arrives_as_three_concatenated_parts(sim: Simulator) -> None:
    inbox: Inbox = []
    rx = [await connect(sim, i, BindType.RECEIVER, inbox) for i in (0, 1)]
    text = ("Привет, мир! " * 12)[:150]  # 150 UCS-2 units: 67 + 67 + 16
    record = sim.send_mo("acme", MOBILE, SHORT_CODE, text)
    await sim.wait_mo_settled(5)
    parts = [p for p in inbox if isinstance(p, DeliverSm)]
    assert len(parts) == record.parts == 3
    assert record.reference is not None
    for pdu in parts:
        assert pdu.esm_class == EsmClass.UDHI
        assert pdu.data_coding == 0x08
        seqnum = pdu.short_message[5]
        assert pdu.short_message[:6] == bytes((5, 0, 3, record.reference, 3, seqnum))
    assert reassemble(parts) == text
    assert (sim.stats.mo_parts, sim.stats.mo_acknowledged) == (3, 3)
    for session in rx:
        session.abort()


async def test_long_gsm_mo_with_16_bit_reference(sim: Simulator) -> None:
    inbox: Inbox = []
    session = await connect(sim, 0, BindType.TRANSCEIVER, inbox)
    text = "Price {EUR} 5€ " * 24  # extension characters count 2 septets: 3 parts
    record = sim.send_mo("acme", MOBILE, SHORT_CODE, text, udh_ref_bits=16)
    await sim.wait_mo_settled(5)
    parts = [p for p in inbox if isinstance(p, DeliverSm)]
    assert len(parts) == record.parts == 3
    assert record.reference is not None
    ref = record.reference.to_bytes(2, "big")
    assert {p.short_message[:5] for p in parts} == {b"\x06\x08\x04" + ref}
    assert reassemble(parts) == text
    session.abort()


async def test_long_mo_with_sar_tlvs(sim: Simulator) -> None:
    inbox: Inbox = []
    session = await connect(sim, 0, BindType.RECEIVER, inbox)
    text = "x" * 400
    record = sim.send_mo("acme", MOBILE, SHORT_CODE, text, method=SplitMethod.SAR)
    await sim.wait_mo_settled(5)
    parts = sorted(
        (p for p in inbox if isinstance(p, DeliverSm)),
        key=lambda p: p.tlv(Tag.SAR_SEGMENT_SEQNUM) or b"",
    )
    assert len(parts) == record.parts == 3
    assert record.reference is not None
    for seqnum, pdu in enumerate(parts, 1):
        assert pdu.esm_class == 0x00
        assert pdu.tlv(Tag.SAR_MSG_REF_NUM) == record.reference.to_bytes(2, "big")
        assert pdu.tlv(Tag.SAR_TOTAL_SEGMENTS) == b"\x03"
        assert pdu.tlv(Tag.SAR_SEGMENT_SEQNUM) == bytes((seqnum,))
    assert b"".join(p.short_message for p in parts) == text.encode()
    session.abort()


async def test_mo_is_held_until_a_receiver_binds(sim: Simulator) -> None:
    tx = await connect(sim, 0, BindType.TRANSMITTER)
    record = sim.send_mo("acme", MOBILE, SHORT_CODE, "y" * 200)
    await asyncio.sleep(0.1)
    assert record.parts == 2
    assert (sim.stats.mo_sent, sim.mo_pending) == (0, 2)
    inbox: Inbox = []
    rx = await connect(sim, 1, BindType.RECEIVER, inbox)
    await sim.wait_mo_settled(5)
    assert reassemble([p for p in inbox if isinstance(p, DeliverSm)]) == "y" * 200
    assert (sim.stats.mo_sent, sim.stats.mo_acknowledged) == (2, 2)
    tx.abort()
    rx.abort()


async def test_mo_answered_with_an_error_is_resent() -> None:
    async with Simulator(sim_settings(dlr_retry=0.05)) as sim:
        inbox: Inbox = []
        refusals = 0

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
        sim.send_mo("acme", MOBILE, SHORT_CODE, "retry me")
        await sim.wait_mo_settled(5)
        assert [p.short_message for p in inbox if isinstance(p, DeliverSm)] == [b"retry me"]
        s = sim.stats
        assert (s.mo_sent, s.mo_nacked, s.mo_acknowledged, s.dlrs_sent) == (2, 1, 1, 0)
        session.abort()


async def test_mo_unanswered_when_the_link_drops_goes_to_the_next_receiver() -> None:
    async with Simulator(sim_settings(dlr_retry=0.05)) as sim:
        arrived = asyncio.Event()
        release = asyncio.Event()

        async def stuck(pdu: DeliverSm | DataSm) -> CommandStatus:
            arrived.set()
            await release.wait()
            return CommandStatus.ESME_ROK

        info = sim.servers[0]
        first = await Session.connect(
            SessionSettings(info.host, info.plain_port, "acme", PASSWORD), on_inbound=stuck
        )
        sim.send_mo("acme", MOBILE, SHORT_CODE, "do not lose me")
        async with asyncio.timeout(5):
            await arrived.wait()
        assert (sim.mo_pending, sim.dlrs_pending) == (1, 0)
        first.abort()
        release.set()
        await until(lambda: sim.bound() == 0)
        inbox: Inbox = []
        second = await connect(sim, 1, BindType.RECEIVER, inbox)
        await sim.wait_mo_settled(5)
        assert [p.short_message for p in inbox if isinstance(p, DeliverSm)] == [b"do not lose me"]
        assert (sim.stats.mo_sent, sim.stats.mo_acknowledged) == (2, 1)
        second.abort()


async def test_mo_refusals(sim: Simulator) -> None:
    with pytest.raises(UnknownAccountError):
        sim.send_mo("nobody", MOBILE, SHORT_CODE, "hi")
    with pytest.raises(MessageTooLongError):
        sim.send_mo("acme", MOBILE, SHORT_CODE, "z" * 161, concatenated=False)
    assert (sim.stats.mo_messages, sim.mo_pending) == (0, 0)


def test_forced_concatenation_marks_a_short_text_as_part_one_of_one() -> None:
    (part,) = build_mo_parts("hi", 0, reference=9, concatenated=True)
    assert part.short_message == bytes.fromhex("050003090101") + b"hi"
    assert part.esm_class == EsmClass.UDHI
    # 155 septets fit one plain message but not one part after a UDH: two parts.
    assert len(build_mo_parts("a" * 155, 0, concatenated=True)) == 2


@pytest.mark.parametrize(
    ("text", "data_coding"),
    [
        ("a" * 152 + "€" + "b" * 200, 0x00),  # an escape pair across the part boundary
        ("ж" * 66 + "😀" + "ж" * 100, 0x08),  # a surrogate pair across the part boundary
        ("é" * 300, 0x03),
    ],
)
@pytest.mark.parametrize("udh16", [False, True])
def test_octets_are_cut_as_the_codec_cuts_text(text: str, data_coding: int, udh16: bool) -> None:
    as_bytes = build_mo_parts(encode_text(text, data_coding), data_coding, reference=7, udh16=udh16)
    assert as_bytes == split_message(text, data_coding, reference=7, udh16=udh16)


async def test_generated_mo_messages_arrive_whole() -> None:
    mo = MoSettings(rate=400, long_share=0.5, ucs2_share=0.3, source=MOBILE, system_id="acme")
    async with Simulator(sim_settings(mo=mo)) as sim:
        inbox: Inbox = []
        session = await connect(sim, 0, BindType.RECEIVER, inbox)
        await until(lambda: sim.stats.mo_messages >= 20)
        messages: dict[int, list[DeliverSm]] = {}
        singles = 0
        for pdu in inbox:
            assert isinstance(pdu, DeliverSm)
            assert (pdu.source_addr, pdu.destination_addr) == (MOBILE, SHORT_CODE)
            assert pdu.esm_class & EsmClass.TYPE_MASK == 0
            if pdu.esm_class & EsmClass.UDHI:
                udh, _ = parse_udh(pdu.short_message)
                assert udh.concat is not None
                messages.setdefault(udh.concat.reference, []).append(pdu)
            else:
                decode_text(pdu.short_message, pdu.data_coding)
                singles += 1
        assert singles
        assert messages
        complete = [p for p in messages.values() if len(p) == p[0].short_message[4]]
        assert complete
        for parts in complete:
            reassemble(parts)
        session.abort()


async def test_generation_pauses_while_parts_wait_for_a_receiver() -> None:
    mo = MoSettings(rate=500, max_pending=3)
    async with Simulator(sim_settings(mo=mo)) as sim:
        await until(lambda: sim.stats.mo_skipped > 0)
        assert 3 <= sim.mo_pending < 3 + 4
        assert sim.stats.mo_sent == 0


async def test_generation_for_an_unknown_account_is_refused_at_start() -> None:
    with pytest.raises(UnknownAccountError):
        async with Simulator(sim_settings(mo=MoSettings(rate=1, system_id="nobody"))):
            pass


def test_cli_builds_mo_settings() -> None:
    args = build_parser().parse_args(
        ["--mo-rate", "2.5", "--mo-long-share", "0.3", "--mo-source", MOBILE, "--mo-split", "sar"]
    )
    mo = settings_from_args(args).mo
    assert (mo.rate, mo.long_share, mo.source, mo.method) == (2.5, 0.3, MOBILE, SplitMethod.SAR)
    assert settings_from_args(build_parser().parse_args([])).mo.rate == 0
    for bad in (["--mo-long-share", "1.5"], ["--mo-rate", "-1"], ["--mo-rate", "nan"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)


def test_cli_builds_fault_settings_and_outages() -> None:
    args = build_parser().parse_args(
        ["--malformed-ratio", "0.1", "--stall-ratio", "0.2", "--down", "2:30:60", "--down", "1:0:5"]
    )
    faults = settings_from_args(args).faults
    assert (faults.malformed_ratio, faults.stall_ratio) == (0.1, 0.2)
    assert args.down == [(2, 30.0, 60.0), (1, 0.0, 5.0)]
    for bad in (["--down", "0:1:1"], ["--down", "1:1"], ["--down", "1:-1:5"], ["--down", "x"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)


async def test_a_scheduled_outage_takes_a_server_down_then_up() -> None:
    settings = SimulatorSettings(servers=2, tls=False)
    async with asyncio.timeout(5), Simulator(settings) as sim:
        outage = asyncio.create_task(run_outages(sim, [(2, 0.0, 0.2)]))
        await asyncio.sleep(0.05)
        assert not await answers(sim.servers[1])
        assert await answers(sim.servers[0])
        await outage
        assert await answers(sim.servers[1])


async def answers(info: ServerInfo) -> bool:
    """Whether the server answers an enquire_link (a down server refuses or drops the link)."""
    try:
        reader, writer = await asyncio.open_connection(info.host, info.plain_port)
    except OSError:
        return False
    try:
        writer.write(encode(EnquireLink(sequence_number=1)))
        await writer.drain()
        return len(await reader.read(16)) == 16
    except OSError:
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def test_simulate_help_documents_mo_flags() -> None:
    text = build_parser().format_help()
    for flag in ("--mo-rate", "--mo-long-share", "--mo-ucs2-share", "--mo-source", "--mo-split"):
        assert flag in text


async def test_mo_octets_and_message_payload(sim: Simulator) -> None:
    inbox: Inbox = []
    session = await connect(sim, 0, BindType.RECEIVER, inbox)
    binary = sim.send_mo("acme", MOBILE, SHORT_CODE, b"\x00\xff\x10")
    payload = sim.send_mo("acme", MOBILE, SHORT_CODE, "p" * 300, method=SplitMethod.PAYLOAD)
    await sim.wait_mo_settled(5)
    assert (binary.data_coding, binary.parts, payload.parts, payload.reference) == (4, 1, 1, None)
    by_coding = {p.data_coding: p for p in inbox if isinstance(p, DeliverSm)}
    assert by_coding[DataCoding.OCTET_UNSPECIFIED_2].short_message == b"\x00\xff\x10"
    assert by_coding[DataCoding.DEFAULT].short_message == b""
    assert by_coding[DataCoding.DEFAULT].tlv(Tag.MESSAGE_PAYLOAD) == b"p" * 300
    assert sim.stats.mo_acknowledged == 2
    session.abort()
