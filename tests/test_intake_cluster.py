"""The intake's cluster additions: the ``cluster`` op and the ``store_unavailable`` error."""

from __future__ import annotations

import io
from pathlib import Path

from test_intake import FakeBackend, FakeCoder, connect, settings

from smppgw.gateway.cli.cluster import print_cluster
from smppgw.gateway.intake import BackendStoreUnavailableError, IntakeServer

VIEW: dict[str, object] = {
    "instance": "a",
    "account": "acme",
    "servers": {"smpp1": {"binds": 3, "rate": 50}},
    "held": {"smpp1": [0, 1]},
    "instances": [
        {"instance": "a", "slots": {"smpp1": [0, 1]}, "rates": {"smpp1": 34}},
        {"instance": "b", "slots": {"smpp1": [2]}, "rates": {"smpp1": 16}},
    ],
}


async def test_a_submit_the_shared_store_cannot_take_is_answered_store_unavailable(
    tmp_path: Path,
) -> None:
    backend = FakeBackend()
    backend.fail = BackendStoreUnavailableError("store: PostgreSQL cannot be reached")
    async with IntakeServer(backend, settings(tmp_path / "s.sock"), coder=FakeCoder()) as srv:
        client = await connect(srv)
        reply = await client.call({"op": "submit", "to": "919812345678", "text": "hi", "req": 1})
        await client.close()
    assert reply == {
        "ok": False,
        "req": 1,
        "error": "store_unavailable",
        "message": "store: PostgreSQL cannot be reached",
    }
    assert backend.messages == {}


async def test_the_cluster_op_answers_the_view_or_null_for_a_lone_instance(
    tmp_path: Path,
) -> None:
    backend = FakeBackend()
    async with IntakeServer(backend, settings(tmp_path / "a.sock"), coder=FakeCoder()) as alone:
        client = await connect(alone)
        assert await client.call({"op": "cluster", "req": 2}) == {
            "ok": True,
            "req": 2,
            "cluster": None,
        }
        await client.close()
    async with IntakeServer(
        backend, settings(tmp_path / "b.sock"), coder=FakeCoder(), cluster=lambda: VIEW
    ) as shared:
        client = await connect(shared)
        reply = await client.call({"op": "cluster"})
        await client.close()
    assert reply == {"ok": True, "cluster": VIEW}


def test_status_cluster_prints_one_line_per_instance_with_its_slots_and_rate() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert print_cluster({"ok": True, "cluster": VIEW}, json=False, out=out, err=err) == 0
    assert out.getvalue().splitlines() == [
        "account acme: 2 live instances, this one a",
        "server smpp1: 3 binds, 50 msg/s",
        "instance a (this one): smpp1 slots [0,1] at 34 msg/s",
        "instance b: smpp1 slots [2] at 16 msg/s",
    ]
    out = io.StringIO()
    assert print_cluster({"ok": True, "cluster": None}, json=False, out=out, err=err) == 0
    assert out.getvalue() == "no cluster: this daemon holds every bind of the account alone\n"
