"""The ``stats`` reply: the observer's figures joined with the binds, rates, store and cluster."""

from __future__ import annotations

from typing import Any

from smppgw.esme.binds import BindState, BindStatus, CircuitState, ServerRate
from smppgw.esme.session import BindType
from smppgw.esme.slots import rate_share
from smppgw.gateway.cluster.plan import Instance, Lease, members
from smppgw.gateway.stats import StatsObserver
from smppgw.gateway.stats_reply import StatsSource, StoreFigures, stats_fields


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def status(name: str, state: BindState, error: str | None = None) -> BindStatus:
    return BindStatus("smpp1", name, BindType.TRANSCEIVER, state, 2, CircuitState.UP, error)


class Binds:
    def status(self) -> list[BindStatus]:
        return [
            status("smpp1/trx-0", BindState.BOUND),
            status("smpp1/trx-1", BindState.BACKOFF, "connect refused"),
        ]

    def rates(self) -> list[ServerRate]:
        return [ServerRate("smpp1", 50.0, 31.0, paused=True, slots=frozenset({0, 1}))]


def test_the_reply_joins_binds_rates_traffic_store_and_cluster() -> None:
    clock = FakeClock()
    observer = StatsObserver(clock)
    observer.bind_state("smpp1", "smpp1/trx-0", "bound")
    clock.now += 30.0
    observer.submit_result("smpp1", "smpp1/trx-0", "ESME_ROK", 0.004)
    cluster = (
        "gw-a",
        members(
            [Instance("gw-a", 200.0), Instance("gw-b", 200.0), Instance("gone", 50.0)],
            [
                Lease("smpp1", 2, "gw-b", 200.0),
                Lease("smpp1", 0, "gw-a", 200.0),
                Lease("smpp1", 1, "gw-a", 200.0),
                Lease("smpp1", 1, "gone", 50.0),
            ],
            100.0,
            lambda _server, slots: rate_share(50, 3, slots),
        ),
    )
    reply = stats_fields(
        observer.snapshot(),
        Binds().status(),
        Binds().rates(),
        StoreFigures({"queued": 7}, webhook_backlog=3),
        wall=1_764_353_534.0,
        healthy=None,
        cluster=cluster,
    )
    servers: Any = reply["servers"]
    (server,) = servers
    assert server["current_rate"] == 31.0
    assert server["paused"] is True
    assert server["slots"] == [0, 1]
    assert (server["bound"], server["in_flight"], server["submits"]) == (1, 4, 1)
    assert server["latency_p50_ms"] == 4.0
    bound, backoff = server["binds"]
    assert bound["seconds"] == 30.0
    assert bound["since"] == "2025-11-28 18:11:44"
    assert backoff["since"] is None  # the observer never heard of it in that state
    assert backoff["last_error"] == "connect refused"
    assert reply["queue"] == {"queued": 7}
    assert reply["webhook"] == {"backlog": 3, "attempts_per_s": 0.0, "failures_per_s": 0.0}
    assert reply["cluster"] == {
        "instance": "gw-a",
        "instances": [
            {"instance": "gw-a", "slots": {"smpp1": [0, 1]}, "rates": {"smpp1": 34.0}},
            {"instance": "gw-b", "slots": {"smpp1": [2]}, "rates": {"smpp1": 16.0}},
        ],
    }


async def test_the_store_is_read_at_most_once_a_second_whatever_the_readers() -> None:
    clock = FakeClock()
    reads = []

    async def read_store() -> StoreFigures:
        reads.append(clock.now)
        return StoreFigures({"queued": len(reads)}, None)

    source = StatsSource(
        StatsObserver(clock), Binds(), read_store, health=lambda: None, clock=clock
    )
    for _ in range(5):
        assert (await source())["queue"] == {"queued": 1}
        clock.now += 0.1
    clock.now += 0.6
    assert (await source())["queue"] == {"queued": 2}
    assert len(reads) == 2
