"""The ``trace`` op against a running daemon and its simulator: the lines of a message's
submit, response and receipt share its trace id; the trace goes off when asked and by itself
after its duration."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_stats_op import FINAL, TIMEOUT, Client, simulator_config

from smppgw.gateway.daemon import Gateway, GatewayOptions
from smppgw.gateway.trace import TRACE_LOGGER


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = Gateway(simulator_config(tmp_path), GatewayOptions(wait_bound=5))
    async with asyncio.timeout(TIMEOUT):
        await gw.start()
        assert gw.manager is not None
        await gw.manager.wait_bound(timeout=TIMEOUT)
    try:
        yield gw
    finally:
        async with asyncio.timeout(TIMEOUT):
            await gw.stop(5)


async def connect(gw: Gateway) -> Client:
    reader, writer = await asyncio.open_unix_connection(gw.config.intake.path)
    return Client(reader, writer)


def trace_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == TRACE_LOGGER]


async def wait_for_line(caplog: pytest.LogCaptureFixture, *words: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not any(all(w in line for w in words) for line in trace_lines(caplog)):  # noqa: ASYNC110 - log records come with no event to wait on
            await asyncio.sleep(0.02)


async def test_submit_resp_and_receipt_lines_share_the_messages_trace_id(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRACE_LOGGER)
    client = await connect(gateway)
    try:
        assert await client.call({"op": "trace"}) == {
            "ok": True,
            "on": False,
            "scope": None,
            "reveal": False,
            "until": None,
        }
        reply = await client.call({"op": "trace", "on": True})
        assert reply == {"ok": True, "on": True, "scope": "all", "reveal": False, "until": None}
        ids: list[str] = []
        for n in range(3):
            sent: dict[str, Any] = await client.call(
                {
                    "op": "submit",
                    "to": f"9198765432{n:02d}",
                    "text": "secret 4242",
                    "registered_delivery": True,
                }
            )
            ids.append(sent["id"])
        for message_id in ids:
            await wait_for_line(caplog, "deliver_sm", "receipt", f"trace={message_id}/0")
        for message_id in ids:
            story = [line for line in trace_lines(caplog) if f"trace={message_id}/0" in line]
            kinds = [line.split()[2] for line in story]
            assert kinds[:2] == ["submit_sm", "submit_sm_resp"]
            assert "deliver_sm" in kinds
        assert not any("4242" in line for line in trace_lines(caplog))
        assert any("to=91********" in line for line in trace_lines(caplog))

        assert (await client.call({"op": "trace", "on": False}))["on"] is False
        count = len(trace_lines(caplog))
        await client.call({"op": "submit", "to": "919876543299", "text": "after"})
        assert (await client.call({"op": "trace"}))["on"] is False
        assert trace_lines(caplog)[count:] == []
    finally:
        await client.close()


async def test_a_trace_with_a_duration_goes_off_by_itself(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRACE_LOGGER)
    client = await connect(gateway)
    try:
        reply = await client.call({"op": "trace", "on": True, "server": "smpp1", "duration": 0.2})
        assert reply["on"] is True
        assert reply["scope"] == "smpp1"
        assert isinstance(reply["until"], float)
        await wait_for_line(caplog, "its duration is over")
        assert (await client.call({"op": "trace"}))["on"] is False
        assert all(session_tap_off(gateway))
    finally:
        await client.close()


async def final(client: Client, message_id: str) -> bool:
    reply = await client.call({"op": "status", "id": message_id})
    return reply["status"]["state"] in FINAL


def session_tap_off(gw: Gateway) -> list[bool]:
    return [s._tap is None for s in gw.trace._sessions]


async def test_a_scope_naming_no_bind_is_refused(gateway: Gateway) -> None:
    client = await connect(gateway)
    try:
        reply = await client.call({"op": "trace", "on": True, "server": "nowhere"})
        assert reply == {
            "ok": False,
            "error": "not_found",
            "message": "server: no server 'nowhere'",
        }
        reply = await client.call({"op": "trace", "on": True, "bind": "smpp1/nope"})
        assert reply["error"] == "not_found"
        reply = await client.call({"op": "trace", "on": True, "duration": 0})
        assert reply["error"] == "invalid_request"
        assert (await client.call({"op": "trace"}))["on"] is False
    finally:
        await client.close()


async def test_a_server_scope_follows_its_messages_receipts_onto_the_other_servers_binds(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """The simulator sends a receipt on any bound receiver of the account: a message sent on
    smpp1 may have its receipt on smpp2. Traced for smpp1, that receipt's line is logged with
    the message's id; smpp2's own submits are not."""
    caplog.set_level(logging.INFO, logger=TRACE_LOGGER)
    client = await connect(gateway)
    try:
        await client.call({"op": "trace", "on": True, "server": "smpp1"})
        ids = []
        for n in range(8):
            request = {"op": "submit", "to": f"9198765432{n:02d}", "text": "x"}
            ids.append((await client.call({**request, "registered_delivery": True}))["id"])
        async with asyncio.timeout(TIMEOUT):
            for message_id in ids:  # each message's receipt came (whatever it says)
                while not await final(client, message_id):  # noqa: ASYNC110 - no event here
                    await asyncio.sleep(0.02)
    finally:
        await client.close()
    got = trace_lines(caplog)
    assert not [line for line in got if line.startswith("sent smpp2/")]
    traced = [i for i in ids if any(f"trace={i}/0" in line for line in got)]
    assert traced  # the dispatcher spreads messages over both servers
    for message_id in traced:
        story = [line.split()[:3] for line in got if f"trace={message_id}/0" in line]
        assert story[0][1].startswith("smpp1/")
        assert [kind for _, _, kind in story] == ["submit_sm", "submit_sm_resp", "deliver_sm"]
