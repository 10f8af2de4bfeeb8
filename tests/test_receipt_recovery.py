"""Receipt recovery: a part whose receipt is overdue is asked about with query_sm.

The simulator drops a share of receipts (``drop_receipts``) but keeps each message's outcome in
its message table and answers query_sm from it (SMPP v3.4 section 4.8). The daemon asks about
parts still waiting after ``[receipts] query_after`` and finalises them from a final
message_state, with ``via: "query_sm"`` in the event.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from smppgw.codec import (
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    GenericNack,
    MessageState,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
)
from smppgw.codec.constants import RegisteredDelivery, Ton
from smppgw.esme.binds import BindManager, BindManagerSettings, ServerSettings
from smppgw.esme.observe import RecordingObserver
from smppgw.esme.ratelimit import TokenBucket
from smppgw.esme.session import BindType, Session, SessionSettings
from smppgw.gateway.config import ConfigError, parse_config
from smppgw.gateway.daemon import Gateway, GatewayOptions
from smppgw.gateway.recovery import (
    QUERY_SM,
    ReceiptWatch,
    RecoverySettings,
    RecoverySettingsError,
    Waiting,
    dlr_from_query,
)
from smppgw.testing.simulator import Account, FaultSettings, Simulator, SimulatorSettings

TIMEOUT = 60.0

_DELIVERY_STATES = {
    MessageState.DELIVERED: "delivered",
    MessageState.UNDELIVERABLE: "failed",
    MessageState.DELETED: "failed",
    MessageState.EXPIRED: "expired",
    MessageState.REJECTED: "rejected",
}


async def read_json(reader: asyncio.StreamReader) -> dict[str, Any]:
    line = await reader.readline()
    assert line, "the daemon closed the connection"
    reply: dict[str, Any] = json.loads(line)
    return reply


async def call(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: dict[str, Any]
) -> dict[str, Any]:
    writer.write(json.dumps(request).encode() + b"\n")
    await writer.drain()
    return await read_json(reader)


async def test_messages_whose_receipts_were_dropped_end_final_with_their_state_via_query_sm(
    tmp_path: Path,
) -> None:
    """Regression: with 30 % of receipts lost, those messages used to stay ``submitted`` until
    the correlation TTL ended them ``unknown``. Now every message ends final with the state the
    SMSC really gave it: from its receipt, or from query_sm (marked ``via``)."""
    count = 60
    config = parse_config(
        {
            "gateway": {"enquire_link_interval": 30, "response_timeout": 5},
            "simulator": {
                "enabled": True,
                "servers": 2,
                "max_binds_per_server": 2,
                "rate_per_server": 500,
                "dlr_delay": [0.0, 0.05],
                "drop_receipts": 0.3,
                "seed": 4,
            },
            "receipts": {"query_after": 0.5, "query_interval": 0.5, "query_rate": 200},
            "store": {"path": str(tmp_path / "gw.db"), "synchronous": "normal"},
            "intake": {"path": str(tmp_path / "gw.sock")},
            "defaults": {"sender": "ACME"},
            "metrics": {"enabled": False},
        },
        environ={},
    )
    gateway = Gateway(
        config,
        GatewayOptions(wait_bound=5, housekeeping_interval=0.2),
        observer=RecordingObserver(),
    )
    async with asyncio.timeout(TIMEOUT):
        await gateway.start()
        try:
            reader, writer = await asyncio.open_unix_connection(config.intake.path)
            assert (await call(reader, writer, {"op": "subscribe", "cursor": 0}))["ok"]
            s_reader, s_writer = await asyncio.open_unix_connection(config.intake.path)
            ids = set()
            for n in range(count):
                reply = await call(
                    s_reader, s_writer, {"op": "submit", "to": f"9198123{n:05d}", "text": "hi"}
                )
                assert reply["ok"] is True, reply
                ids.add(reply["id"])
            finals: dict[str, dict[str, Any]] = {}
            while not ids <= finals.keys():
                event = await read_json(reader)
                payload = event["payload"]
                if event["event"] == "sms:message:status" and payload["final"]:
                    assert payload["id"] not in finals, "two final events for one message"
                    finals[payload["id"]] = payload
            writer.close()
            s_writer.close()
            sim = gateway.simulator
            assert sim is not None
            dropped = sim.stats.dlrs_dropped
            queries = sim.stats.queries
        finally:
            await gateway.stop(5)
    assert dropped > 0
    recovered = [p for p in finals.values() if p.get("via") == QUERY_SM]
    assert len(recovered) == dropped
    assert queries >= dropped
    for payload in finals.values():
        (part,) = payload["parts"]
        truth = sim.messages[part["smsc_id"]].state
        assert payload["state"] == _DELIVERY_STATES[truth], payload
        if "via" not in payload:
            continue
        assert payload["status"] == part["status"]
        assert part["status"] in {"DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED"}


# --- the simulator's query_sm ---------------------------------------------------------------


def simulator() -> Simulator:
    return Simulator(
        SimulatorSettings(
            tls=False,
            servers=1,
            accounts=(Account("acme", "secret"),),
            dlr_delay=(0.0, 0.0),
            dlr_outcomes=(("UNDELIV", 34, 1.0),),
            faults=FaultSettings(drop_receipts=1.0),
            seed=1,
        )
    )


async def test_the_simulator_answers_query_sm_from_its_message_table() -> None:
    async with asyncio.timeout(TIMEOUT), simulator() as sim:
        info = sim.servers[0]
        session = await Session.connect(
            SessionSettings(
                host=info.host,
                port=info.plain_port,
                system_id="acme",
                password="secret",
                bind_type=BindType.TRANSCEIVER,
            )
        )
        try:
            resp = await session.submit(
                SubmitSm(
                    source_addr_ton=Ton.ALPHANUMERIC,
                    source_addr="ACME",
                    destination_addr="919812345678",
                    registered_delivery=RegisteredDelivery.FINAL,
                    short_message=b"hello",
                )
            )
            message_id = resp.message_id
            async with asyncio.timeout(5):
                while sim.stats.dlrs_dropped < 1:  # noqa: ASYNC110 - a counter, no event
                    await asyncio.sleep(0.01)
            answer = await session.query(
                QuerySm(message_id=message_id, source_addr_ton=Ton.ALPHANUMERIC, source_addr="ACME")
            )
            unknown = await session.query(
                QuerySm(message_id="ffffffff", source_addr_ton=Ton.ALPHANUMERIC, source_addr="ACME")
            )
            other_source = await session.query(
                QuerySm(
                    message_id=message_id, source_addr_ton=Ton.ALPHANUMERIC, source_addr="OTHER"
                )
            )
        finally:
            await session.close()
    assert isinstance(answer, QuerySmResp)
    assert answer.command_status == CommandStatus.ESME_ROK
    assert answer.message_id == message_id
    assert answer.message_state == MessageState.UNDELIVERABLE
    assert answer.error_code == 34
    assert len(answer.final_date) == 16  # YYMMDDhhmmsstnnp
    assert sim.stats.dlrs_sent == 0  # the receipt itself was dropped
    assert unknown.command_status == CommandStatus.ESME_RINVMSGID
    assert other_source.command_status == CommandStatus.ESME_RQUERYFAIL


# --- the pure parts -------------------------------------------------------------------------


def waiting(queries: int = 0) -> Waiting:
    return Waiting("m1", 0, "1a2b", 5, 0, "ACME", queries)


@pytest.mark.parametrize(
    ("state", "stat"),
    [
        (MessageState.DELIVERED, "DELIVRD"),
        (MessageState.EXPIRED, "EXPIRED"),
        (MessageState.DELETED, "DELETED"),
        (MessageState.UNDELIVERABLE, "UNDELIV"),
        (MessageState.REJECTED, "REJECTD"),
    ],
)
def test_a_final_query_answer_reads_as_the_receipt_it_stands_for(
    state: MessageState, stat: str
) -> None:
    resp = QuerySmResp(
        message_id="1a2b", final_date="251128171500000+", message_state=state, error_code=7
    )
    dlr = dlr_from_query(waiting(), resp, received_at=100.0)
    assert dlr is not None
    assert (dlr.smsc_id, dlr.stat, dlr.state, dlr.err) == ("1a2b", stat, state, "007")
    assert dlr.done_date == "251128171500"
    assert dlr.via == QUERY_SM
    assert dlr.final


@pytest.mark.parametrize(
    "state", [MessageState.ENROUTE, MessageState.ACCEPTED, MessageState.UNKNOWN, 42]
)
def test_an_answer_without_a_final_state_finalises_nothing(state: int) -> None:
    resp = QuerySmResp(message_id="1a2b", message_state=MessageState(state))
    assert dlr_from_query(waiting(), resp, received_at=1.0) is None


def test_an_error_answer_finalises_nothing() -> None:
    resp = QuerySmResp(
        command_status=CommandStatus.ESME_RQUERYFAIL, message_state=MessageState.DELIVERED
    )
    assert dlr_from_query(waiting(), resp, received_at=1.0) is None


def test_a_part_is_queried_after_query_after_then_every_interval_up_to_max_queries() -> None:
    watch = ReceiptWatch(RecoverySettings(query_after=60, query_interval=30, max_queries=3))
    watch.watch(waiting(), registered_at=1000.0)
    assert watch.due(1059.0, 10) == []
    assert watch.next_due() == 1060.0
    asked = []
    now = 1060.0
    while (due := watch.next_due()) is not None:
        now = due
        (part,) = watch.due(now, 10)
        asked.append((now, part.queries))
        watch.answered(part, now)
    assert asked == [(1060.0, 0), (1090.0, 1), (1120.0, 2)]
    assert len(watch) == 0  # left to the end of the receipt wait


def test_a_query_that_could_not_be_sent_is_not_counted() -> None:
    watch = ReceiptWatch(RecoverySettings(query_after=10, query_interval=30, max_queries=1))
    watch.watch(waiting(), registered_at=0.0)
    (part,) = watch.due(10.0, 10)
    watch.retry(part, 15.0)
    (again,) = watch.due(15.0, 10)
    assert again.queries == 0
    watch.answered(again, 15.0)
    assert len(watch) == 0


def test_query_after_zero_watches_nothing() -> None:
    watch = ReceiptWatch(RecoverySettings(query_after=0))
    watch.watch(waiting(), registered_at=0.0)
    assert len(watch) == 0


def test_the_receipts_section_is_read_and_checked() -> None:
    base: dict[str, Any] = {
        "gateway": {"system_id": "acme", "password_env": "PW"},
        "servers": [{"name": "a", "host": "127.0.0.1", "port": 2775}],
    }
    config = parse_config(
        {**base, "receipts": {"query_after": 600, "query_interval": 900, "max_queries": 2}},
        environ={"PW": "secret"},
    )
    assert config.receipts == RecoverySettings(600, 900, 2, 1.0)
    assert parse_config(base, environ={"PW": "secret"}).receipts == RecoverySettings()
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                **base,
                "receipts": {"query_after": -1, "max_queries": 0, "query_rate": 0, "x": 1},
            },
            environ={"PW": "secret"},
        )
    text = str(caught.value)
    for key in ("query_after", "max_queries", "query_rate", "x"):
        assert f"receipts.{key}" in text, text


def test_impossible_recovery_settings_are_refused() -> None:
    with pytest.raises(RecoverySettingsError, match="max_queries"):
        RecoverySettings(max_queries=0)
    with pytest.raises(RecoverySettingsError, match="query_rate"):
        RecoverySettings(query_rate=0)


async def test_parts_waiting_at_a_stop_are_queried_after_the_restart(tmp_path: Path) -> None:
    """The watch is in memory: a restarted daemon takes the parts still waiting for their
    receipts from the store and asks about them when they are overdue."""
    count = 5
    sim_settings = SimulatorSettings(
        tls=False,
        servers=1,
        accounts=(Account("acme", "secret"),),
        dlr_delay=(0.0, 0.0),
        dlr_outcomes=(("EXPIRED", 21, 1.0),),
        faults=FaultSettings(drop_receipts=1.0),
        seed=2,
    )

    def config(port: int, query_after: float) -> Any:
        return parse_config(
            {
                "gateway": {"system_id": "acme", "password_env": "PW", "response_timeout": 5},
                "servers": [{"name": "s1", "host": "127.0.0.1", "port": port, "binds": 1}],
                "receipts": {"query_after": query_after, "query_interval": 0.5, "query_rate": 100},
                "store": {"path": str(tmp_path / "gw.db"), "synchronous": "normal"},
                "intake": {"path": str(tmp_path / "gw.sock")},
                "defaults": {"sender": "ACME"},
                "metrics": {"enabled": False},
            },
            environ={"PW": "secret"},
        )

    async with asyncio.timeout(TIMEOUT), Simulator(sim_settings) as sim:
        port = sim.servers[0].plain_port
        first = Gateway(config(port, 3600), GatewayOptions(wait_bound=5))
        await first.start()
        try:
            reader, writer = await asyncio.open_unix_connection(first.config.intake.path)
            ids = [
                (
                    await call(
                        reader, writer, {"op": "submit", "to": f"91981234{n:04d}", "text": "x"}
                    )
                )["id"]
                for n in range(count)
            ]
            writer.close()
            async with asyncio.timeout(10):
                while sim.stats.dlrs_dropped < count:  # noqa: ASYNC110 - a counter, no event
                    await asyncio.sleep(0.01)
        finally:
            await first.stop(5)
        assert sim.stats.queries == 0
        second = Gateway(config(port, 0.2), GatewayOptions(wait_bound=5))
        await second.start()
        try:
            reader, writer = await asyncio.open_unix_connection(second.config.intake.path)
            states: dict[str, str] = {}
            while len(states) < count:
                for message_id in ids:
                    reply = await call(reader, writer, {"op": "status", "id": message_id})
                    if reply["status"]["final"]:
                        states[message_id] = reply["status"]["state"]
                await asyncio.sleep(0.05)
            writer.close()
        finally:
            await second.stop(5)
    assert states == dict.fromkeys(ids, "expired")
    assert sim.stats.queries >= count


# --- the bind manager's query ---------------------------------------------------------------


class QueryingFake:
    """A bound session that records when each request was sent (on the loop's clock)."""

    def __init__(self, answers: list[CommandStatus]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, float]] = []
        self.bound = True
        self.closed = False
        self._closed: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future()
        )

    async def submit(self, pdu: SubmitSm | DataSm) -> SubmitSmResp | DataSmResp:
        self.sent.append(("submit_sm", asyncio.get_running_loop().time()))
        return SubmitSmResp(message_id=f"{len(self.sent)}")

    async def query(self, pdu: QuerySm) -> QuerySmResp | GenericNack:
        self.sent.append(("query_sm", asyncio.get_running_loop().time()))
        status = self.answers.pop(0)
        if status != CommandStatus.ESME_ROK:
            return QuerySmResp(command_status=status, body_omitted=True)
        return QuerySmResp(message_id=pdu.message_id, message_state=MessageState.DELIVERED)

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self.abort()

    def abort(self) -> None:
        self.closed, self.bound = True, False
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> BaseException | None:
        return await self._closed


async def test_a_query_takes_its_servers_token_and_a_throttled_one_slows_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = QueryingFake([CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_ROK])

    async def connect(settings: SessionSettings, **kwargs: Any) -> QueryingFake:
        return session

    async def no_inbound(pdu: DeliverSm | DataSm) -> CommandStatus:
        return CommandStatus.ESME_ROK

    observer = RecordingObserver()
    loop = asyncio.get_running_loop()
    manager = BindManager(
        BindManagerSettings(
            (ServerSettings("s1", "127.0.0.1", 2775, binds=1, rate=10.0),), "acme", "secret"
        ),
        on_inbound=no_inbound,
        observer=observer,
        session_factory=connect,
        clock=loop.time,
    )
    take = TokenBucket.try_take
    granted: list[float] = []

    def recording_take(bucket: TokenBucket, now: float) -> float:
        wait = take(bucket, now)
        if wait <= 0:
            granted.append(now)
        return wait

    monkeypatch.setattr(TokenBucket, "try_take", recording_take)
    async with asyncio.timeout(TIMEOUT):
        await manager.start()
        try:
            await manager.wait_bound(timeout=5)
            await manager.submit([SubmitSm(destination_addr="919812345678", short_message=b"x")])
            throttled = await manager.query(QuerySm(message_id="1"))
            answered = await manager.query(QuerySm(message_id="1"))
        finally:
            await manager.stop(1)
    assert throttled is not None
    assert throttled.command_status == CommandStatus.ESME_RTHROTTLED
    assert isinstance(answered, QuerySmResp)
    assert answered.message_state == MessageState.DELIVERED
    assert observer.total("throttled") == 1
    kinds = [kind for kind, _ in session.sent]
    assert kinds == ["submit_sm", "query_sm", "query_sm"]
    # Each request took a token of the 10/s server: three grants, each at least a token's
    # interval after the one before on the bucket's own clock (it lets a sender take its token
    # up to a quarter of the jitter allowance early). Send times are not compared: a loaded
    # machine may write a request late and the next one on time.
    assert len(granted) == 3
    interval = (1 + bucket_allowance(manager)) / 10.0
    early = bucket_allowance(manager) / 4
    assert granted[1] - granted[0] >= interval - early - 1e-9
    assert granted[2] - granted[1] >= interval - early - 1e-9


def bucket_allowance(manager: BindManager) -> float:
    return manager._servers[0].settings.jitter_allowance


def test_a_part_whose_receipt_came_is_no_longer_held_nor_queried() -> None:
    """The watch holds only the parts still waiting: a final receipt takes its part out at
    once, instead of the part being held until its query is due (``query_after`` later)."""
    watch = ReceiptWatch(RecoverySettings(query_after=60, query_interval=30))
    for n in range(1000):
        watch.watch(Waiting(f"m{n}", 0, f"{n:x}", 5, 0, "ACME"), registered_at=float(n))
    for n in range(1000):
        if n != 500:
            watch.done(f"m{n}", 0)
    assert len(watch) == 1
    (part,) = watch.due(10_000.0, 10)
    assert part.message_id == "m500"
