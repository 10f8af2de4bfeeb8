"""What a user reads about a message says what happened to it.

The daemon runs against a scripted SMSC on 127.0.0.1 that answers each submit_sm as the test
says (at once, refused, or held and answered late) and sends the receipts the test writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from smppgw.codec import (
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    Pdu,
    SubmitSm,
    SubmitSmResp,
)
from smppgw.codec.constants import DataCoding, EsmClass, MessageState
from smppgw.esme.numbers import validate_sender
from smppgw.esme.observe import RecordingObserver
from smppgw.esme.session import ResponseTimeoutError, Session, SessionSettings
from smppgw.gateway import cli
from smppgw.gateway.config import Config, parse_config
from smppgw.gateway.correlate import Correlator, Dlr, aggregate, outcome
from smppgw.gateway.daemon import Gateway, GatewayOptions
from smppgw.gateway.events import DeliveryState
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store import SqliteStore, StoreSettings
from smppgw.testing.smsc import Action, Answer, Hold, TestSmsc

TIMEOUT = 20.0
# The scripted SMSC holds some submits past this; the others it answers at once, so only a
# loop stalled this long (a loaded machine) could time one of those out too.
RESPONSE_TIMEOUT = 1.0
LONG_TEXT = "x" * 400  # three GSM parts of at most 153 septets


@dataclass
class ScriptedSmsc:
    """One bind's SMSC (a :class:`TestSmsc`): each submit_sm is answered with the
    command_status ``answer`` gives (and the next id, kept in ``given``) or, when it gives
    None, held until the test calls :meth:`respond`."""

    answer: Callable[[SubmitSm], CommandStatus | None] = lambda _: CommandStatus.ESME_ROK
    given: list[str] = field(default_factory=list)
    submits: asyncio.Queue[SubmitSm] = field(default_factory=asyncio.Queue)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    server: TestSmsc = field(init=False)

    def __post_init__(self) -> None:
        self.server = TestSmsc(self._reply)

    def next_id(self) -> str:
        return f"m{next(self.ids)}"

    def _reply(self, pdu: Pdu) -> Action | None:
        if not isinstance(pdu, SubmitSm):
            return None
        self.submits.put_nowait(pdu)
        status = self.answer(pdu)
        if status is None:
            return Hold()
        message_id = self.next_id() if status == CommandStatus.ESME_ROK else ""
        self.given.append(message_id)
        return Answer(status, message_id)

    def send(self, pdu: Pdu) -> None:
        self.server.links[-1].send(pdu)

    def respond(self, submit: SubmitSm, message_id: str) -> None:
        """Answer a held submit_sm with ESME_ROK and ``message_id``."""
        resp = SubmitSmResp(sequence_number=submit.sequence_number, message_id=message_id)
        self.server.links[-1].answer(resp)

    async def receipt(self, message_id: str, stat: str, err: str) -> None:
        """Send a delivery receipt and wait until the gateway answered it (it is recorded)."""
        text = (
            f"id:{message_id} sub:001 dlvrd:001 submit date:2611281200 done date:2611281201"
            f" stat:{stat} err:{err} text:"
        )
        answered = len(self.server.of_type(DeliverSmResp))
        self.send(
            DeliverSm(
                source_addr="919812345678",
                destination_addr="ACME",
                esm_class=EsmClass.DELIVERY_RECEIPT,
                short_message=text.encode(),
            )
        )
        resp = await self.server.wait_for(DeliverSmResp, answered + 1, TIMEOUT)
        assert resp.command_status == CommandStatus.ESME_ROK


def config_for(
    tmp_path: Path, port: int, hook_port: int, retry: dict[str, Any] | None, **gateway: Any
) -> Config:
    return parse_config(
        {
            "gateway": {
                "system_id": "smppgw",
                "password_env": "PW",
                "response_timeout": 5,
                "enquire_link_interval": 30,
                "retry_delay": 0.1,
                **gateway,
            },
            "servers": [{"name": "s1", "host": "127.0.0.1", "port": port, "binds": 1, "rate": 0}],
            "store": {"path": str(tmp_path / "gw.db"), "synchronous": "normal"},
            "intake": {"path": str(tmp_path / "gw.sock")},
            "defaults": {"sender": "ACME"},
            "metrics": {"enabled": False},
            "retry": retry or {},
            "webhook": {"url": f"http://127.0.0.1:{hook_port}/hook"},
        },
        environ={"PW": "secret"},
    )


class Client:
    """A newline-delimited JSON client of the intake socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path: str) -> Client:
        return cls(*await asyncio.open_unix_connection(path))

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.writer.write(json.dumps(request).encode() + b"\n")
        await self.writer.drain()
        return await self.read()

    async def read(self) -> dict[str, Any]:
        line = await self.reader.readline()
        assert line, "the daemon closed the connection"
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def status_event(self, message_id: str, state: str) -> dict[str, Any]:
        """Read subscribed events until ``message_id`` has one in ``state``."""
        while True:
            event = await self.read()
            payload: dict[str, Any] = event["payload"]
            if payload["id"] == message_id and payload["state"] == state:
                return payload

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@dataclass
class Rig:
    smsc: ScriptedSmsc
    gateway: Gateway
    observer: RecordingObserver
    events: Client
    client: Client
    hooks: asyncio.Queue[dict[str, Any]]
    """The payloads the webhook receiver got, in order."""

    async def submit(self, **fields: Any) -> str:
        reply = await self.client.call({"op": "submit", "to": "919812345678", **fields})
        assert reply["ok"] is True, reply
        message_id: str = reply["id"]
        return message_id

    async def unmatched(self) -> int:
        reply = await self.client.call({"op": "unmatched"})
        count: int = reply["count"]
        return count

    async def eventually(self, message_id: str, check: Callable[[dict[str, Any]], bool]) -> None:
        """Poll the message's status until ``check`` holds (bounded by the test's timeout)."""
        while not check(await self.status(message_id)):  # noqa: ASYNC110 - no event says it
            await asyncio.sleep(0.01)

    async def status(self, message_id: str) -> dict[str, Any]:
        reply = await self.client.call({"op": "status", "id": message_id})
        status: dict[str, Any] = reply["status"]
        return status


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    answer: Callable[[SubmitSm], CommandStatus | None] = lambda _: CommandStatus.ESME_ROK,
    retry: dict[str, Any] | None = None,
    **gateway: Any,
) -> AsyncIterator[Rig]:
    """The scripted SMSC, the daemon bound to it, a subscriber from cursor 0, a client, and a
    webhook receiver."""
    smsc = ScriptedSmsc(answer)
    server = smsc.server
    await server.start()
    port = server.port
    hooks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        hooks.put_nowait(json.loads(await reader.readexactly(length))["payload"])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    hook_server = await asyncio.start_server(receive, "127.0.0.1", 0)
    hook_port = hook_server.sockets[0].getsockname()[1]
    observer = RecordingObserver()
    gw = Gateway(
        config_for(tmp_path, port, hook_port, retry, **gateway),
        GatewayOptions(wait_bound=5, housekeeping_interval=0.2),
        observer=observer,
    )
    async with server, hook_server:
        try:
            async with asyncio.timeout(TIMEOUT):
                await gw.start()
                events = await Client.connect(gw.config.intake.path)
                await events.call({"op": "subscribe", "cursor": 0})
                client = await Client.connect(gw.config.intake.path)
            async with asyncio.timeout(TIMEOUT):
                yield Rig(smsc, gw, observer, events, client, hooks)
                await events.close()
                await client.close()
        finally:
            async with asyncio.timeout(TIMEOUT):
                await gw.stop(2)


# --- 1, 2: the message-level status, err and reason summarise the parts ---------------------


async def test_a_long_message_with_one_undelivered_part_reads_undeliv_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three parts: the first came back UNDELIV err 034, the two after it DELIVRD. The message
    used to read ``status: DELIVRD, err: 000, state: failed`` because status and err were
    copied from whichever receipt came last; and ``reason`` was always null."""
    async with running(tmp_path) as rig:
        message_id = await rig.submit(text=LONG_TEXT)
        for _ in range(3):
            await rig.smsc.submits.get()
        first, second, third = rig.smsc.given
        await rig.smsc.receipt(first, "UNDELIV", "034")
        await rig.smsc.receipt(second, "DELIVRD", "000")
        await rig.smsc.receipt(third, "DELIVRD", "000")
        event = await rig.events.status_event(message_id, "failed")
        status = await rig.status(message_id)
        hook = await rig.hooks.get()
        while not hook["final"]:
            hook = await rig.hooks.get()
        code = await asyncio.to_thread(
            cli.main, ["status", "--socket", rig.gateway.config.intake.path, message_id]
        )
    expected = {
        "status": "UNDELIV",
        "err": "034",
        "reason": "part 0 of 3: Unknown Error (err 034 UNDELIV)",
        "final": True,
    }
    assert {key: event[key] for key in expected} == expected
    assert {key: status[key] for key in expected} == expected
    assert {key: hook[key] for key in expected} == expected
    assert [p["status"] for p in status["parts"]] == ["UNDELIV", "DELIVRD", "DELIVRD"]
    out, _ = capsys.readouterr()
    assert code == 0
    assert "status: UNDELIV\n" in out
    assert "err: 034\n" in out
    assert "reason: part 0 of 3: Unknown Error (err 034 UNDELIV)\n" in out


async def test_a_delivered_long_message_reads_delivrd_000_whatever_the_last_receipt_wrote(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as rig:
        message_id = await rig.submit(text=LONG_TEXT)
        for _ in range(3):
            await rig.smsc.submits.get()
        ids = list(rig.smsc.given)
        await rig.smsc.receipt(ids[0], "DELIVRD", "000")
        await rig.smsc.receipt(ids[1], "DELIVRD", "000")
        await rig.smsc.receipt(ids[2], "DELIVRD", "001")  # an SMSC's odd err on a delivery
        event = await rig.events.status_event(message_id, "delivered")
    assert (event["status"], event["err"], event["reason"]) == ("DELIVRD", "000", None)


async def test_an_expired_part_outranks_an_undeliverable_one_and_decides_the_message(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as rig:
        message_id = await rig.submit(text=LONG_TEXT)
        for _ in range(3):
            await rig.smsc.submits.get()
        ids = list(rig.smsc.given)
        await rig.smsc.receipt(ids[0], "UNDELIV", "034")
        await rig.smsc.receipt(ids[1], "EXPIRED", "021")
        await rig.smsc.receipt(ids[2], "DELIVRD", "000")
        event = await rig.events.status_event(message_id, "expired")
    assert (event["status"], event["err"], event["reason"]) == (
        "EXPIRED",
        "021",
        "part 1 of 3: SMS timeout (err 021 EXPIRED)",
    )


async def test_a_receipt_with_a_code_missing_from_the_table_still_gets_a_reason(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as rig:
        message_id = await rig.submit(text="hello")
        await rig.smsc.submits.get()
        await rig.smsc.receipt(rig.smsc.given[0], "UNDELIV", "123")
        event = await rig.events.status_event(message_id, "failed")
    assert (
        event["reason"] == "UNDELIV with err 123, a code the provider's error table does not list"
    )


async def test_a_refused_submit_reads_the_command_status_in_words(tmp_path: Path) -> None:
    async with running(tmp_path, lambda _: CommandStatus.ESME_RINVDSTADR) as rig:
        message_id = await rig.submit(text="hello")
        event = await rig.events.status_event(message_id, "failed")
        status = await rig.status(message_id)
    assert (event["status"], event["err"]) == ("FAILED", "ESME_RINVDSTADR")
    assert event["reason"] == "ESME_RINVDSTADR: Invalid destination address"
    assert status["reason"] == event["reason"]


# --- 3: a message sent without a receipt request ends -----------------------------------------


async def test_a_message_sent_without_a_receipt_request_is_final_once_accepted(
    tmp_path: Path,
) -> None:
    """registered_delivery 0: no receipt will ever come. The message used to stay
    ``submitted, final: false`` for good, and was never counted as final."""
    async with running(tmp_path) as rig:
        message_id = await rig.submit(text=LONG_TEXT, registered_delivery=False)
        event = await rig.events.status_event(message_id, "sent")
        status = await rig.status(message_id)
        submits = [await rig.smsc.submits.get() for _ in range(3)]
    assert [s.registered_delivery for s in submits] == [0, 0, 0]
    assert event["final"] is True
    assert event["status"] == "SENT"
    assert event["reason"] == "accepted by the SMSC; no delivery receipt was requested"
    assert [p["smsc_id"] for p in event["parts"]] == rig.smsc.given
    assert status["state"] == "sent"
    assert status["final"] is True
    assert rig.observer.counts[("message_final", ("sent",))] == 1


# --- 4: a submit_sm_resp that comes after the response timeout still counts ------------------


def hold_first(count: int = 1) -> Callable[[SubmitSm], CommandStatus | None]:
    """Hold the first ``count`` submit_sm (the test answers them late), accept the others."""
    seen = itertools.count()
    return lambda _: None if next(seen) < count else CommandStatus.ESME_ROK


async def test_a_late_response_resolves_an_unknown_message_and_its_receipt_matches(
    tmp_path: Path,
) -> None:
    """The SMSC answered a submit after the response timeout. The response was logged and its
    message id dropped: the message stayed ``unknown`` and its receipt went unmatched (81 of
    them in one run against a slow SMSC)."""
    async with running(
        tmp_path, hold_first(), {"unknown_policy": "never"}, response_timeout=RESPONSE_TIMEOUT
    ) as rig:
        message_id = await rig.submit(text="hello")
        submit = await rig.smsc.submits.get()
        unknown = await rig.events.status_event(message_id, "unknown")
        rig.smsc.respond(submit, "late1")
        await rig.smsc.receipt("late1", "DELIVRD", "000")
        delivered = await rig.events.status_event(message_id, "delivered")
        assert await rig.unmatched() == 0
    assert unknown["final"] is True
    assert unknown["reason"] == "no response (timeout)"
    assert delivered["final"] is True
    assert (delivered["status"], delivered["err"], delivered["reason"]) == ("DELIVRD", "000", None)
    assert delivered["parts"] == [
        {"part": 0, "smsc_id": "late1", "status": "DELIVRD", "err": "000"}
    ]


async def test_a_late_response_to_a_resubmitted_part_makes_both_copies_receipts_match(
    tmp_path: Path,
) -> None:
    """The part timed out and was resubmitted (accepted as m1); then the first attempt's
    response came (late1): the SMSC holds two copies. Both ids name the part, either copy's
    receipt matches it, and the message says possible_duplicate."""
    async with running(tmp_path, hold_first(), response_timeout=RESPONSE_TIMEOUT) as rig:
        message_id = await rig.submit(text="hello")
        first = await rig.smsc.submits.get()
        await rig.smsc.submits.get()  # the resubmission, accepted at once
        submitted = await rig.events.status_event(message_id, "submitted")
        [resubmitted] = rig.smsc.given
        rig.smsc.respond(first, "late1")
        await rig.eventually(message_id, lambda s: s["parts"][0]["smsc_id"] == "late1")
        await rig.smsc.receipt(resubmitted, "DELIVRD", "000")
        delivered = await rig.events.status_event(message_id, "delivered")
        await rig.smsc.receipt("late1", "DELIVRD", "000")
        assert await rig.unmatched() == 0
        status = await rig.status(message_id)
    assert submitted["possible_duplicate"] is True
    assert delivered["possible_duplicate"] is True
    assert status["state"] == "delivered"
    assert status["possible_duplicate"] is True


async def test_a_late_response_before_the_message_ends_keeps_it_from_ending_unknown(
    tmp_path: Path,
) -> None:
    """Two parts, no resubmission: part 0 times out, and its late response comes while part 1
    is still with the SMSC. The message must not end ``unknown`` once part 1 is accepted: every
    part is, and it waits for its receipts like any other."""
    async with running(
        tmp_path, hold_first(2), {"unknown_policy": "never"}, response_timeout=2 * RESPONSE_TIMEOUT
    ) as rig:
        message_id = await rig.submit(text=LONG_TEXT[:200])
        part0 = await rig.smsc.submits.get()
        part1 = await rig.smsc.submits.get()  # sent after part 0 timed out
        rig.smsc.respond(part0, "late0")
        await rig.eventually(message_id, lambda s: s["parts"][0]["smsc_id"] == "late0")
        rig.smsc.respond(part1, "p1")
        submitted = await rig.events.status_event(message_id, "submitted")
        await rig.smsc.receipt("late0", "DELIVRD", "000")
        await rig.smsc.receipt("p1", "DELIVRD", "000")
        delivered = await rig.events.status_event(message_id, "delivered")
    assert submitted["final"] is False
    assert submitted["reason"] is None
    assert [p["smsc_id"] for p in delivered["parts"]] == ["late0", "p1"]


async def test_a_late_response_makes_an_unknown_message_without_receipt_request_sent(
    tmp_path: Path,
) -> None:
    async with running(
        tmp_path, hold_first(), {"unknown_policy": "never"}, response_timeout=RESPONSE_TIMEOUT
    ) as rig:
        message_id = await rig.submit(text="hello", registered_delivery=False)
        submit = await rig.smsc.submits.get()
        await rig.events.status_event(message_id, "unknown")
        rig.smsc.respond(submit, "late1")
        sent = await rig.events.status_event(message_id, "sent")
    assert sent["final"] is True
    assert sent["reason"] == "accepted by the SMSC; no delivery receipt was requested"
    assert sent["parts"][0]["smsc_id"] == "late1"
    assert rig.observer.counts[("message_final", ("unknown",))] == 1
    assert rig.observer.counts[("message_final", ("sent",))] == 1


@contextlib.asynccontextmanager
async def bound_session(smsc: ScriptedSmsc) -> AsyncIterator[Session]:
    async with smsc.server as server:
        port = server.port
        session = await Session.connect(
            SessionSettings(
                host="127.0.0.1",
                port=port,
                system_id="smppgw",
                password="secret",
                response_timeout=RESPONSE_TIMEOUT,
            )
        )
        try:
            yield session
        finally:
            await session.close(1)


async def test_a_session_hands_a_response_after_the_timeout_to_the_timed_out_submit() -> None:
    smsc = ScriptedSmsc(hold_first())
    async with asyncio.timeout(TIMEOUT), bound_session(smsc) as session:
        with pytest.raises(ResponseTimeoutError) as info:
            await session.submit(SubmitSm(destination_addr="919812345678", short_message=b"x"))
        late = info.value.late
        assert late is not None
        assert not late.done()
        smsc.respond(await smsc.submits.get(), "late1")
        resp = await late
        assert isinstance(resp, SubmitSmResp)
        assert resp.message_id == "late1"
        # The session goes on as before.
        assert (await session.submit(SubmitSm(destination_addr="1"))).message_id == "m1"


async def test_a_late_response_awaited_on_a_link_that_closes_is_cancelled() -> None:
    smsc = ScriptedSmsc(hold_first())
    async with asyncio.timeout(TIMEOUT), bound_session(smsc) as session:
        with pytest.raises(ResponseTimeoutError) as info:
            await session.submit(SubmitSm(destination_addr="919812345678", short_message=b"x"))
        late = info.value.late
        assert late is not None
        session.abort()
        assert late.cancelled()


async def test_both_ids_of_a_part_match_until_the_correlation_ttl_and_go_with_the_message(
    tmp_path: Path,
) -> None:
    now = [1_700_000_000.0]
    store = await SqliteStore.open(
        StoreSettings(str(tmp_path / "s.db"), retention=100), clock=lambda: now[0]
    )
    correlator = Correlator(store, ttl=50, unmatched_ttl=50, clock=lambda: now[0])
    try:
        [result] = await store.add_messages(
            [
                SubmitRequest(
                    to="919812345678",
                    sender=validate_sender("ACME"),
                    text="hello",
                    payload=None,
                    data_coding=DataCoding.DEFAULT,
                    parts=1,
                    priority=0,
                )
            ]
        )
        await store.claim(1)
        await correlator.register(result.id, 0, 1, "A1")
        await correlator.register(result.id, 0, 1, "B2", keep_previous=True)

        def receipt(smsc_id: str) -> Dlr:
            return Dlr(smsc_id, "ENROUTE", MessageState.ENROUTE, None, None, now[0])

        assert (await correlator.on_dlr(receipt("a1"))) is not None  # the earlier id
        assert (await correlator.on_dlr(receipt("B2"))) is not None  # the newer one
        status = await store.status(message_id=result.id)
        assert status is not None
        assert status.possible_duplicate is True
        now[0] += 50
        assert await correlator.expire() == (1, 0)
        assert await correlator.on_dlr(receipt("A1")) is None  # expired with its part
        assert await correlator.count_unmatched() == 1
    finally:
        await store.close()


def part(state: MessageState, stat: str | None, err: str | None) -> Dlr:
    return Dlr("x", stat, state, err, None, 0.0)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        # Delivered: DELIVRD 000 whatever the receipts wrote.
        (
            [
                part(MessageState.DELIVERED, "DELIVRD", "001"),
                part(MessageState.DELIVERED, None, None),
            ],
            (DeliveryState.DELIVERED, "DELIVRD", "000", None),
        ),
        # Rejected outranks expired, which outranks undeliverable, whatever the part order.
        (
            [
                part(MessageState.UNDELIVERABLE, "UNDELIV", "034"),
                part(MessageState.EXPIRED, "EXPIRED", "021"),
                part(MessageState.REJECTED, "DNDNUMB", "408"),
            ],
            (
                DeliveryState.REJECTED,
                "DNDNUMB",
                "408",
                "part 2 of 3: Number registered in the DND database (err 408 DNDNUMB)",
            ),
        ),
        # Among equals the first part decides.
        (
            [
                part(MessageState.DELIVERED, "DELIVRD", "000"),
                part(MessageState.DELIVERED, "DELIVRD", "000"),
                part(MessageState.UNDELIVERABLE, "MOB-OFF", "013"),
                part(MessageState.DELETED, "DELETED", None),
            ],
            (
                DeliveryState.FAILED,
                "MOB-OFF",
                "013",
                "part 2 of 4: Mobile handset switched off (err 013 MOB-OFF)",
            ),
        ),
        # A state from the TLV alone: our word for it, never DELIVRD for a failure.
        (
            [part(MessageState.UNDELIVERABLE, "DELIVRD", None)],
            (DeliveryState.FAILED, "UNDELIV", None, "undeliverable (receipt stat DELIVRD)"),
        ),
        (
            [part(MessageState.EXPIRED, None, None)],
            (DeliveryState.EXPIRED, "EXPIRED", None, "the validity period ran out before delivery"),
        ),
    ],
)
def test_the_deciding_part_gives_the_message_its_status_err_and_reason(
    parts: list[Dlr], expected: tuple[DeliveryState, str, str | None, str | None]
) -> None:
    state = aggregate(parts)
    result = outcome(state, parts)
    assert result is not None
    assert (state, result.status, result.err, result.reason) == expected


def test_a_message_still_waiting_for_a_receipt_has_no_outcome_yet() -> None:
    parts = [part(MessageState.UNDELIVERABLE, "UNDELIV", "034"), None]
    assert aggregate(parts) is DeliveryState.SUBMITTED
    assert outcome(DeliveryState.SUBMITTED, parts) is None
