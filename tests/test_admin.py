"""The operators' ops through the socket, against a daemon with the simulator in-process:
pause/resume, cancel (queued, and scheduled at the SMSC with cancel_sm), retry, history and
list; who may use them (admin_group, admin_path) and the audit trail they leave."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from test_daemon import TIMEOUT, Client, gateway_config

from smppgw.esme.binds import BindState
from smppgw.esme.observe import RecordingObserver
from smppgw.gateway import cli
from smppgw.gateway.daemon import Gateway, GatewayOptions
from smppgw.gateway.store import SqliteStore
from smppgw.testing.simulator import Simulator

ALL_DELIVERED = (("DELIVRD", 0, 1.0),)
ALL_UNDELIVERED = (("UNDELIV", 34, 1.0),)


def outcomes(simulator: Simulator | None, table: tuple[tuple[str, int, float], ...]) -> None:
    assert simulator is not None
    simulator.settings = dataclasses.replace(simulator.settings, dlr_outcomes=table)


async def started(tmp_path: Path, **sections: dict[str, Any]) -> Gateway:
    gw = Gateway(
        gateway_config(tmp_path, **sections),
        GatewayOptions(wait_bound=5, housekeeping_interval=0.2),
        observer=RecordingObserver(),
    )
    async with asyncio.timeout(TIMEOUT):
        await gw.start()
    outcomes(gw.simulator, ALL_DELIVERED)
    return gw


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await started(tmp_path)
    try:
        yield gw
    finally:
        async with asyncio.timeout(TIMEOUT):
            await gw.stop(5)


async def until(client: Client, accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Read a subscribed connection until an event ``accept`` takes."""
    while True:
        line = await client.read()
        if "cursor" in line and accept(line):
            return line


async def until_all(client: Client, ids: list[str], state: str) -> None:
    """Read a subscribed connection until every message of ``ids`` reached ``state``."""
    waiting = set(ids)
    while waiting:
        line = await client.read()
        payload = line.get("payload", {})
        if line.get("event") == "sms:message:status" and payload["state"] == state:
            waiting.discard(payload["id"])


def status_of(message_id: str, state: str) -> Callable[[dict[str, Any]], bool]:
    def accept(event: dict[str, Any]) -> bool:
        payload = event["payload"]
        return bool(
            event["event"] == "sms:message:status"
            and payload["id"] == message_id
            and payload["state"] == state
        )

    return accept


async def submit(client: Client, **fields: Any) -> str:
    reply = await client.call({"op": "submit", "to": "919812345678", "text": "hi", **fields})
    assert reply["ok"] is True, reply
    message_id: str = reply["id"]
    return message_id


def accepted(gateway: Gateway) -> int:
    assert gateway.simulator is not None
    return gateway.simulator.stats.accepted


# --- pause / resume ------------------------------------------------------------------------


async def test_pause_keeps_receipts_flowing_and_binds_up_and_resume_sends_what_waited(
    gateway: Gateway,
) -> None:
    simulator = gateway.simulator
    assert simulator is not None
    simulator.settings = dataclasses.replace(simulator.settings, dlr_delay=(0.3, 0.3))
    async with asyncio.timeout(TIMEOUT):
        events = await Client.connect(gateway.config.intake.path)
        assert (await events.call({"op": "subscribe"}))["ok"]
        client = await Client.connect(gateway.config.intake.path)
        first = await submit(client)
        await until(events, status_of(first, "submitted"))
        reply = await client.call({"op": "pause", "req": 1})
        assert reply == {"ok": True, "req": 1, "paused": ["smpp1", "smpp2"]}
        second = await submit(client)
        # The receipt of the message sent before the pause still comes in and is recorded.
        await until(events, status_of(first, "delivered"))
        assert accepted(gateway) == 1
        assert (await client.call({"op": "status", "id": second}))["status"]["state"] == "queued"
        assert gateway.manager is not None
        assert all(b.state is BindState.BOUND for b in gateway.manager.status())
        ping = await client.call({"op": "ping"})
        assert ping["paused"] == ["smpp1", "smpp2"]
        stats = await client.call({"op": "stats"})
        assert stats["paused"] == ["smpp1", "smpp2"]

        assert (await client.call({"op": "resume"}))["paused"] == []
        await until(events, status_of(second, "delivered"))
        assert (await client.call({"op": "ping"}))["paused"] == []
        await events.close()
        await client.close()


async def test_pausing_one_server_sends_through_the_others(gateway: Gateway) -> None:
    simulator = gateway.simulator
    assert simulator is not None
    async with asyncio.timeout(TIMEOUT):
        events = await Client.connect(gateway.config.intake.path)
        assert (await events.call({"op": "subscribe"}))["ok"]
        client = await Client.connect(gateway.config.intake.path)
        reply = await client.call({"op": "pause", "server": "smpp1"})
        assert reply["paused"] == ["smpp1"]
        before = simulator.stats.accepted_by_server["smpp1"]
        ids = [await submit(client) for _ in range(6)]
        await until_all(events, ids, "delivered")
        assert simulator.stats.accepted_by_server["smpp1"] == before
        assert simulator.stats.accepted_by_server["smpp2"] >= len(ids)
        await events.close()
        await client.close()


async def test_pausing_a_server_that_is_not_configured_is_an_invalid_request(
    gateway: Gateway,
) -> None:
    async with asyncio.timeout(TIMEOUT):
        client = await Client.connect(gateway.config.intake.path)
        reply = await client.call({"op": "pause", "server": "nope"})
        assert reply["error"] == "invalid_request"
        assert "no server named 'nope'" in reply["message"]
        assert (await client.call({"op": "ping"}))["paused"] == []
        await client.close()


async def test_the_paused_metric_is_one_while_a_server_is_paused(tmp_path: Path) -> None:
    gw = Gateway(
        gateway_config(tmp_path),
        GatewayOptions(wait_bound=5, housekeeping_interval=0.2),
    )
    async with asyncio.timeout(TIMEOUT):
        await gw.start()
        try:
            registry = gw._prometheus.registry if gw._prometheus else None
            assert registry is not None
            assert registry.get_sample_value("smppgw_paused", {"server": "smpp1"}) == 0
            client = await Client.connect(gw.config.intake.path)
            await client.call({"op": "pause", "server": "smpp1"})
            assert registry.get_sample_value("smppgw_paused", {"server": "smpp1"}) == 1
            assert registry.get_sample_value("smppgw_paused", {"server": "smpp2"}) == 0
            await client.call({"op": "resume"})
            assert registry.get_sample_value("smppgw_paused", {"server": "smpp1"}) == 0
            await client.close()
        finally:
            await gw.stop(5)


# --- cancel --------------------------------------------------------------------------------


async def test_cancel_makes_queued_messages_final_cancelled_by_id_custom_or_filter(
    gateway: Gateway,
) -> None:
    async with asyncio.timeout(TIMEOUT):
        events = await Client.connect(gateway.config.intake.path)
        assert (await events.call({"op": "subscribe"}))["ok"]
        client = await Client.connect(gateway.config.intake.path)
        await client.call({"op": "pause"})
        by_id = await submit(client)
        by_custom = await submit(client, custom="order-9")
        promo = [await submit(client, custom=f"promo-{i}") for i in range(3)]
        kept = await submit(client, custom="other-1")

        reply = await client.call({"op": "cancel", "id": [by_id, "no-such-id"]})
        assert reply["counts"] == {"cancelled": 1, "not_found": 1}
        assert {"id": by_id, "outcome": "cancelled", "state": "cancelled"} in reply["messages"]
        event = await until(events, status_of(by_id, "cancelled"))
        assert event["payload"]["final"] is True
        assert event["payload"]["status"] == "CANCELLED"
        assert event["payload"]["reason"] == "cancelled by an operator"

        reply = await client.call({"op": "cancel", "custom": "order-9"})
        assert reply["messages"] == [
            {"id": by_custom, "outcome": "cancelled", "state": "cancelled"}
        ]

        reply = await client.call({"op": "cancel", "filter": {"custom_prefix": "promo-"}})
        assert reply["counts"] == {"cancelled": 3}
        assert sorted(m["id"] for m in reply["messages"]) == sorted(promo)

        await client.call({"op": "resume"})
        await until(events, status_of(kept, "delivered"))
        assert accepted(gateway) == 1  # only the one not cancelled went out
        status = await client.call({"op": "status", "id": promo[0]})
        assert status["status"]["state"] == "cancelled"
        await events.close()
        await client.close()


async def test_cancel_says_per_message_why_a_message_sent_for_immediate_delivery_stays(
    gateway: Gateway,
) -> None:
    async with asyncio.timeout(TIMEOUT):
        events = await Client.connect(gateway.config.intake.path)
        assert (await events.call({"op": "subscribe"}))["ok"]
        client = await Client.connect(gateway.config.intake.path)
        message_id = await submit(client)
        await until(events, status_of(message_id, "delivered"))
        reply = await client.call({"op": "cancel", "id": message_id})
        assert reply["counts"] == {"not_cancellable": 1}
        assert reply["messages"] == [
            {
                "id": message_id,
                "outcome": "not_cancellable",
                "state": "delivered",
                "reason": "already final (delivered)",
            }
        ]
        await events.close()
        await client.close()


async def test_a_filter_without_a_condition_cancels_nothing(gateway: Gateway) -> None:
    async with asyncio.timeout(TIMEOUT):
        client = await Client.connect(gateway.config.intake.path)
        reply = await client.call({"op": "cancel", "filter": {"state": "queued"}})
        assert reply["error"] == "invalid_request"
        assert reply["message"].startswith("filter: give at least one of")
        reply = await client.call({"op": "cancel", "id": "x", "custom": "y"})
        assert reply["message"] == "id: give exactly one of id, custom, filter"
        await client.close()


async def test_a_message_scheduled_at_the_smsc_is_withdrawn_with_cancel_sm(
    gateway: Gateway,
) -> None:
    simulator = gateway.simulator
    assert simulator is not None
    async with asyncio.timeout(TIMEOUT):
        events = await Client.connect(gateway.config.intake.path)
        assert (await events.call({"op": "subscribe"}))["ok"]
        client = await Client.connect(gateway.config.intake.path)
        scheduled = await submit(client, schedule=3600)
        now = await submit(client)
        await until(events, status_of(scheduled, "submitted"))
        await until(events, status_of(now, "delivered"))
        assert simulator.dlrs_pending == 1  # the scheduled message's receipt, an hour away

        reply = await client.call({"op": "cancel", "id": [scheduled, now]})
        assert reply["counts"] == {"cancelled": 1, "not_cancellable": 1}
        assert {"id": scheduled, "outcome": "cancelled", "state": "cancelled"} in reply["messages"]
        assert simulator.stats.cancelled == 1
        assert simulator.dlrs_pending == 0  # no receipt will follow
        event = await until(events, status_of(scheduled, "cancelled"))
        assert event["payload"]["final"] is True

        assert isinstance(gateway.store, SqliteStore)
        assert await gateway.store.scheduled_parts(scheduled) is None  # no longer waiting
        await events.close()
        await client.close()


async def test_the_simulator_refuses_cancel_sm_for_a_message_sent_for_immediate_delivery(
    gateway: Gateway,
) -> None:
    from smppgw.codec.constants import CommandStatus, Npi, Ton  # noqa: PLC0415
    from smppgw.codec.pdu import CancelSm  # noqa: PLC0415

    async with asyncio.timeout(TIMEOUT):
        events = await Client.connect(gateway.config.intake.path)
        assert (await events.call({"op": "subscribe"}))["ok"]
        client = await Client.connect(gateway.config.intake.path)
        message_id = await submit(client)
        event = await until(events, status_of(message_id, "delivered"))
        smsc_id = event["payload"]["parts"][0]["smsc_id"]
        assert gateway.manager is not None
        resp = await gateway.manager.cancel(
            CancelSm(
                message_id=smsc_id,
                source_addr_ton=Ton.ALPHANUMERIC,
                source_addr_npi=Npi.UNKNOWN,
                source_addr="ACME",
            )
        )
        assert resp is not None
        assert resp.command_status == CommandStatus.ESME_RCANCELFAIL
        await events.close()
        await client.close()


# --- retry, history, list ------------------------------------------------------------------


async def test_retry_sends_a_failed_message_again_and_it_is_delivered_the_second_time(
    gateway: Gateway,
) -> None:
    async with asyncio.timeout(TIMEOUT):
        events = await Client.connect(gateway.config.intake.path)
        assert (await events.call({"op": "subscribe"}))["ok"]
        client = await Client.connect(gateway.config.intake.path)
        outcomes(gateway.simulator, ALL_UNDELIVERED)
        message_id = await submit(client, custom="r-1")
        await until(events, status_of(message_id, "failed"))
        outcomes(gateway.simulator, ALL_DELIVERED)

        reply = await client.call({"op": "retry", "custom": "r-1"})
        assert reply["messages"] == [{"id": message_id, "outcome": "retried", "state": "queued"}]
        queued = await until(events, status_of(message_id, "queued"))
        assert queued["payload"]["retried"] == 1
        delivered = await until(events, status_of(message_id, "delivered"))
        assert delivered["payload"]["retried"] == 1
        assert delivered["payload"]["possible_duplicate"] is False
        assert accepted(gateway) == 2

        reply = await client.call({"op": "retry", "id": message_id})
        assert reply["messages"][0]["outcome"] == "not_retriable"

        history = await client.call({"op": "history", "id": message_id})
        assert history["id"] == message_id
        states = [e["payload"]["state"] for e in history["events"]]
        assert states == ["submitted", "failed", "queued", "submitted", "delivered"]
        cursors = [e["cursor"] for e in history["events"]]
        assert cursors == sorted(cursors)
        assert all(e["payload"]["id"] == message_id for e in history["events"])
        await events.close()
        await client.close()


async def test_history_of_an_unknown_message_is_not_found(gateway: Gateway) -> None:
    async with asyncio.timeout(TIMEOUT):
        client = await Client.connect(gateway.config.intake.path)
        reply = await client.call({"op": "history", "custom": "nope"})
        assert reply["error"] == "not_found"
        await client.close()


async def test_list_pages_newest_first_and_filters(gateway: Gateway) -> None:
    async with asyncio.timeout(TIMEOUT):
        client = await Client.connect(gateway.config.intake.path)
        await client.call({"op": "pause"})
        ids = [await submit(client, custom=f"batch-{i}") for i in range(5)]
        other = await submit(client, custom="x-1", to="14155550101")

        first = await client.call({"op": "list", "custom_prefix": "batch-", "limit": 2})
        assert [m["id"] for m in first["messages"]] == [ids[4], ids[3]]
        second = await client.call(
            {"op": "list", "custom_prefix": "batch-", "limit": 2, "after": first["next"]}
        )
        assert [m["id"] for m in second["messages"]] == [ids[2], ids[1]]
        third = await client.call(
            {"op": "list", "custom_prefix": "batch-", "limit": 2, "after": second["next"]}
        )
        assert [m["id"] for m in third["messages"]] == [ids[0]]
        assert third["next"] is None

        by_to = await client.call({"op": "list", "to": "14155550101"})
        assert [m["id"] for m in by_to["messages"]] == [other]
        await client.call({"op": "cancel", "id": ids[0]})
        cancelled = await client.call({"op": "list", "state": "cancelled"})
        assert [m["id"] for m in cancelled["messages"]] == [ids[0]]
        future = await client.call({"op": "list", "since": "2999-01-01"})
        assert future["messages"] == []
        bad = await client.call({"op": "list", "state": "lost"})
        assert bad["error"] == "invalid_request"
        await client.close()


# --- who may, and the audit trail ----------------------------------------------------------


def _a_group_we_are_not_in() -> int:
    ours = {os.getgid(), *os.getgroups()}
    return next(gid for gid in range(64000, 65000) if gid not in ours)


async def test_admin_group_lets_its_members_in_and_refuses_the_others(tmp_path: Path) -> None:
    member = await started(tmp_path / "a", intake={"admin_group": str(os.getgid())})
    outsider = await started(tmp_path / "b", intake={"admin_group": str(_a_group_we_are_not_in())})
    try:
        async with asyncio.timeout(TIMEOUT):
            client = await Client.connect(member.config.intake.path)
            assert (await client.call({"op": "pause"}))["ok"] is True
            await client.close()

            client = await Client.connect(outsider.config.intake.path)
            reply = await client.call({"op": "pause", "req": "p"})
            assert reply["ok"] is False
            assert reply["error"] == "forbidden"
            assert reply["req"] == "p"
            assert f"the client (uid {os.getuid()}) is not in it" in reply["message"]
            assert (await client.call({"op": "list"}))["error"] == "forbidden"
            # The other ops are not restricted.
            assert (await client.call({"op": "ping"}))["paused"] == []
            await submit(client)
            await client.close()
    finally:
        async with asyncio.timeout(TIMEOUT):
            await member.stop(5)
            await outsider.stop(5)


async def test_with_an_admin_path_admin_ops_are_taken_only_on_that_socket(
    tmp_path: Path,
) -> None:
    admin_path = tmp_path / "admin.sock"
    gw = await started(tmp_path, intake={"admin_path": str(admin_path), "admin_mode": 0o600})
    try:
        async with asyncio.timeout(TIMEOUT):
            assert stat.S_IMODE(admin_path.stat().st_mode) == 0o600
            main = await Client.connect(gw.config.intake.path)
            reply = await main.call({"op": "cancel", "id": "x"})
            assert reply["error"] == "forbidden"
            assert "only on the admin socket" in reply["message"]
            assert (await main.call({"op": "ping"}))["ok"] is True
            admin = await Client.connect(str(admin_path))
            assert (await admin.call({"op": "pause", "server": "smpp2"}))["paused"] == ["smpp2"]
            await main.close()
            await admin.close()
    finally:
        async with asyncio.timeout(TIMEOUT):
            await gw.stop(5)
    assert not admin_path.exists()


async def test_every_admin_action_is_logged_with_the_peer_and_written_as_an_event(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smppgw.gateway.admin")
    async with asyncio.timeout(TIMEOUT):
        events = await Client.connect(gateway.config.intake.path)
        assert (await events.call({"op": "subscribe", "events": ["sms:admin"]}))["ok"]
        client = await Client.connect(gateway.config.intake.path)
        await client.call({"op": "pause", "server": "smpp1"})
        event = await until(events, lambda e: e["event"] == "sms:admin")
        payload = event["payload"]
        assert payload["op"] == "pause"
        assert payload["server"] == "smpp1"
        assert payload["uid"] == os.getuid()
        assert payload["pid"] == os.getpid()

        await client.call({"op": "pause"})
        queued = [await submit(client, custom=f"c-{i}") for i in range(2)]
        await client.call({"op": "cancel", "filter": {"custom_prefix": "c-"}})
        event = await until(events, lambda e: e["payload"]["op"] == "cancel")
        assert event["payload"]["counts"] == {"cancelled": len(queued)}
        assert event["payload"]["filter"] == {
            "custom_prefix": "c-",
            "state": ["queued", "submitted"],
        }
        await events.close()
        await client.close()
    lines = [
        (r.levelno, r.getMessage()) for r in caplog.records if r.name == "smppgw.gateway.admin"
    ]
    uid, pid = os.getuid(), os.getpid()
    assert (
        logging.WARNING,
        f"admin: pause server smpp1 by uid {uid} (pid {pid}); paused now: smpp1",
    ) in lines
    assert any(
        level == logging.WARNING
        and message.startswith(f"admin: cancel (2 cancelled) by uid {uid} (pid {pid}); filter")
        for level, message in lines
    )


async def test_a_stop_while_paused_says_the_pause_is_not_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="smppgw.gateway.admin")
    gw = await started(tmp_path)
    async with asyncio.timeout(TIMEOUT):
        client = await Client.connect(gw.config.intake.path)
        await client.call({"op": "pause"})
        await client.close()
        await gw.stop(5)
    assert any(
        "stopping while sending to smpp1, smpp2 is paused; the next start sends again"
        in r.getMessage()
        for r in caplog.records
    )


# --- the command line ----------------------------------------------------------------------


async def test_the_commands_pause_cancel_list_history_retry_and_resume_through_the_socket(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = ["--socket", gateway.config.intake.path]

    async def run(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(cli.main, [*argv, *sock])
        out, err = capsys.readouterr()
        return code, out, err

    async with asyncio.timeout(TIMEOUT):
        code, out, _ = await run("pause", "--server", "smpp1")
        assert (code, out) == (0, "sending paused: smpp1\n")
        code, out, _ = await run("status", "--ping")
        assert code == 0
        assert out.endswith("sending paused by an operator: smpp1\n")
        code, out, _ = await run("pause", "--json")
        assert (code, json.loads(out)) == (0, {"paused": ["smpp1", "smpp2"]})

        client = await Client.connect(gateway.config.intake.path)
        ids = [await submit(client, custom=f"cli-{i}") for i in range(3)]
        code, out, _ = await run("list", "--custom-prefix", "cli-", "--limit", "2")
        assert code == 0
        lines = out.splitlines()
        assert lines[0].startswith(f"id={ids[2]} ")
        assert lines[1].startswith(f"id={ids[1]} ")
        assert lines[2].startswith("more: --after ")
        after = lines[2].split()[-1]
        code, out, _ = await run("list", "--custom-prefix", "cli-", "--after", after, "--json")
        page = json.loads(out)
        assert [m["id"] for m in page["messages"]] == [ids[0]]
        assert page["next"] is None

        code, out, _ = await run("cancel", ids[0], "nope")
        assert code == 1  # one of the ids named no message
        assert out.splitlines() == [
            "1 cancelled, 1 not_found",
            "id=nope outcome=not_found",
            f"id={ids[0]} outcome=cancelled state=cancelled",
        ]
        code, out, _ = await run("cancel", "--filter", "--custom-prefix", "cli-", "--json")
        assert code == 0
        assert json.loads(out)["counts"] == {"cancelled": 2}

        code, out, _ = await run("history", "--custom", "cli-0")
        assert code == 0
        (line,) = out.splitlines()
        assert json.loads(line)["payload"]["state"] == "cancelled"

        code, out, err = await run("retry", ids[1])
        assert code == 1
        assert "outcome=not_retriable" in out
        code, out, err = await run("cancel")
        assert code == 2
        assert "give message ids, --custom X or --filter" in err
        code, out, err = await run("pause", "--server", "nope")
        assert code == 1
        assert "no server named 'nope'" in err

        code, out, _ = await run("resume")
        assert (code, out) == (0, "sending paused: none\n")
        await client.close()
