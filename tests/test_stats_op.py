"""The ``stats`` socket op against a running daemon and its simulator: the figures move as
messages flow."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from smppgw.gateway.config import Config, parse_config
from smppgw.gateway.daemon import Gateway, GatewayOptions
from smppgw.gateway.intake import IntakeServer

TIMEOUT = 30.0
MESSAGES = 200
FINAL = ("delivered", "failed", "expired", "rejected", "unknown", "sent")


def final(queue: dict[str, int]) -> int:
    return sum(queue[state] for state in FINAL)


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.writer.write(json.dumps(request).encode() + b"\n")
        await self.writer.drain()
        line = await self.reader.readline()
        assert line, "the daemon closed the connection"
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def simulator_config(tmp_path: Path) -> Config:
    return parse_config(
        {
            "gateway": {"response_timeout": 5, "retry_delay": 0.2},
            "simulator": {
                "enabled": True,
                "servers": 2,
                "max_binds_per_server": 2,
                "rate_per_server": 500,
                "dlr_delay": [0.0, 0.05],
            },
            "store": {"path": str(tmp_path / "gw.db"), "synchronous": "normal"},
            "intake": {"path": str(tmp_path / "gw.sock")},
            "defaults": {"sender": "ACME"},
            "metrics": {"enabled": False},
        },
        environ={},
    )


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    config = simulator_config(tmp_path)
    gw = Gateway(config, GatewayOptions(wait_bound=5, housekeeping_interval=0.2))
    async with asyncio.timeout(TIMEOUT):
        await gw.start()
        assert gw.manager is not None
        await gw.manager.wait_bound(timeout=TIMEOUT)
    try:
        yield gw
    finally:
        async with asyncio.timeout(TIMEOUT):
            await gw.stop(5)


async def test_stats_shows_binds_and_then_the_traffic_of_messages_sent(gateway: Gateway) -> None:
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_unix_connection(gateway.config.intake.path)
        client = Client(reader, writer)
        before = await client.call({"op": "stats", "req": 1})
        assert before["ok"] is True, before
        assert before["req"] == 1
        assert [s["name"] for s in before["servers"]] == ["smpp1", "smpp2"]
        for server in before["servers"]:
            assert server["rate"] > 0
            assert server["bound"] == 2
            assert server["submits"] == 0
            assert [b["state"] for b in server["binds"]] == ["bound", "bound"]
            assert all(b["type"] == "trx" and b["since"] for b in server["binds"])
        assert before["queue"]["queued"] == 0
        assert before["queue"]["delivered"] == 0
        assert before["receipts"]["total"] == 0
        assert before["webhook"] is None
        assert before["cluster"] is None

        batch = [{"to": f"9198{i:08d}", "text": f"m{i}"} for i in range(MESSAGES)]
        reply = await client.call({"op": "submit", "messages": batch})
        assert reply["accepted"] == MESSAGES, reply

        after = before
        for _ in range(100):
            after = await client.call({"op": "stats"})
            if final(after["queue"]) == MESSAGES and after["receipts"]["total"] == MESSAGES:
                break
            await asyncio.sleep(0.2)
        assert final(after["queue"]) == MESSAGES  # the simulator fails some, as networks do
        assert after["queue"]["queued"] == after["queue"]["submitted"] == 0
        assert sum(s["submits"] for s in after["servers"]) == MESSAGES
        assert sum(s["submits_per_s"] for s in after["servers"]) > 0
        for server in after["servers"]:
            assert server["latency_p50_ms"] is not None
            assert server["latency_p99_ms"] >= server["latency_p50_ms"]
            assert server["throttles"] == 0
        assert after["receipts"]["total"] == MESSAGES
        assert after["receipts"]["per_s"] > 0
        assert after["receipts"]["latency_p99_ms"] >= after["receipts"]["latency_p50_ms"]
        assert after["intake"]["requests_per_s"] > 0  # the submit, not the stats requests
        assert after["intake"]["rejections_per_s"] == 0
        await client.close()


async def test_stats_is_an_unknown_op_for_a_server_without_figures(tmp_path: Path) -> None:
    class NoBackend:
        pass

    server = IntakeServer(NoBackend(), simulator_config(tmp_path).intake)  # type: ignore[arg-type]
    reply = await server.answer(b'{"op": "stats"}', lambda _c, _t: None)
    assert json.loads(reply.data)["error"] == "unknown_op"
