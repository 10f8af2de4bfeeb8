"""Two daemons on one account and one PostgreSQL store, each on the slots it leases.

The simulator enforces the account as the provider does (3 binds per server, a fourth refused
and counted; 50 submits/s per server over any 1-second window, ``rate_window="sliding"``). Two
in-process gateways with ``[store] backend = "postgres"`` lease the slots; every message
submitted through either instance must reach the SMSC once and be delivered (receipts arrive
on either instance's binds and match in the shared store), with no bind refused, and the
``cluster`` op must show both instances and shares adding up to each server's rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from postgres_helper import Database, fresh_schema
from test_binds_simulator import PASSWORD, SYSTEM_ID, sim_settings

from smppgw.esme.observe import RecordingObserver
from smppgw.gateway.cli.cluster import print_cluster
from smppgw.gateway.config import Config, parse_config
from smppgw.gateway.daemon import Gateway, GatewayOptions
from smppgw.testing.simulator import Simulator

RATE = 50
BINDS = 3
TIMEOUT = 90.0


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    """The leases in a fresh schema, the shared store in ``<it>_store`` (dropped after)."""
    async with fresh_schema() as database:
        try:
            yield database
        finally:
            connection = await asyncpg.connect(database.dsn)
            try:
                await connection.execute(f"DROP SCHEMA IF EXISTS {database.schema}_store CASCADE")
            finally:
                await connection.close()


def instance_config(tmp_path: Path, sim: Simulator, db: Database, name: str) -> Config:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "pw").write_text(PASSWORD, encoding="utf-8")
    data: dict[str, Any] = {
        "gateway": {
            "system_id": SYSTEM_ID,
            "password_file": str(folder / "pw"),
            "response_timeout": 5,
            "retry_delay": 0.2,
        },
        "servers": [
            {"name": s.name, "host": s.host, "port": s.plain_port, "binds": BINDS, "rate": RATE}
            for s in sim.servers
        ],
        "store": {
            "backend": "postgres",
            "dsn": db.dsn,
            "schema": f"{db.schema}_store",
            "path": str(folder / "gw.db"),
            "synchronous": "normal",
        },
        "cluster": {
            "instance": name,
            "schema": db.schema,
            "ttl": 6,
            "heartbeat": 0.3,
            "margin": 2,
        },
        "intake": {"path": str(folder / "gw.sock")},
        "defaults": {"sender": "ACME"},
        "metrics": {"enabled": False},
    }
    return parse_config(data, environ={})


async def call(path: str, request: dict[str, Any]) -> dict[str, Any]:
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        reply: dict[str, Any] = json.loads(await reader.readline())
        return reply
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def balanced(gateways: list[Gateway]) -> dict[str, Any]:
    """Poll the ``cluster`` op until each instance holds its share of every server."""
    for _ in range(400):
        reply = await call(gateways[0].config.intake.path, {"op": "cluster"})
        view: dict[str, Any] = reply["cluster"]
        counts = sorted(len(slots) for m in view["instances"] for slots in m["slots"].values())
        if len(view["instances"]) == 2 and counts == [1, 1, 2, 2]:
            return view
        await asyncio.sleep(0.1)
    msg = f"never balanced: {view}"
    raise AssertionError(msg)


async def test_two_daemons_share_the_accounts_binds_and_deliver_each_message_once(
    tmp_path: Path, db: Database
) -> None:
    count = 120  # per instance: over two seconds at the account's rate
    async with (
        asyncio.timeout(TIMEOUT),
        Simulator(sim_settings(RATE, rate_window="sliding")) as sim,
    ):
        gateways = [
            Gateway(
                instance_config(tmp_path, sim, db, name),
                GatewayOptions(wait_bound=5, housekeeping_interval=0.2),
                observer=None if name == "a" else RecordingObserver(),
            )
            for name in ("a", "b")
        ]
        try:
            for gw in gateways:
                await gw.start()
            view = await balanced(gateways)
            assert view["account"] == SYSTEM_ID
            assert {m["instance"] for m in view["instances"]} == {"a", "b"}
            for server in ("smpp1", "smpp2"):
                slots = sorted(s for m in view["instances"] for s in m["slots"][server])
                assert slots == [0, 1, 2]  # every slot held once, by one instance
                assert sum(m["rates"][server] for m in view["instances"]) == RATE
            a = next(m for m in view["instances"] if m["instance"] == "a")
            registry = gateways[0].prometheus_registry
            assert registry is not None
            for server in ("smpp1", "smpp2"):
                labels = {"server": server}
                assert registry.get_sample_value("smppgw_cluster_slots", labels) == len(
                    a["slots"][server]
                )
                assert (
                    registry.get_sample_value("smppgw_cluster_rate_share", labels)
                    == (a["rates"][server])
                )
            assert registry.get_sample_value("smppgw_store_available") == 1
            out = io.StringIO()
            assert print_cluster({"ok": True, "cluster": view}, json=False, out=out, err=out) == 0
            assert out.getvalue().startswith("account acme: 2 live instances, this one a\n")
            for gw in gateways:
                messages = [
                    {"to": "919812345678", "text": f"{gw.config.cluster.instance}-{i}"}
                    for i in range(count)
                ]
                reply = await call(gw.config.intake.path, {"op": "submit", "messages": messages})
                assert reply["ok"] is True, reply
            for _ in range(600):
                if sim.stats.accepted >= 2 * count:
                    break
                await asyncio.sleep(0.05)
            assert sim.stats.accepted == 2 * count  # each accepted once by the SMSC
            store = gateways[1].store
            assert store is not None
            for _ in range(400):  # the receipts come on either instance's binds
                counts = await store.counts()
                if counts["delivered"] == 2 * count:
                    break
                await asyncio.sleep(0.05)
            # One store: every receipt matched its message whichever instance's bind it came on.
            assert counts["delivered"] == sum(counts.values()) == 2 * count, counts
            assert sim.stats.binds_refused == 0  # never above 3 binds per server
            stats = await call(gateways[1].config.intake.path, {"op": "stats"})
            assert stats["cluster"]["instance"] == "b"
            assert {m["instance"] for m in stats["cluster"]["instances"]} == {"a", "b"}
        finally:
            for gw in gateways:
                await gw.stop(5)
