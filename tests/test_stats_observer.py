"""The live figures of ``smppgw top``: rates, percentiles and memory on a fake clock."""

from __future__ import annotations

import sys

import pytest

from smppgw.esme.observe import RecordingObserver, TeeObserver
from smppgw.gateway.stats import (
    RATE_WINDOW,
    RESERVOIR,
    THROTTLE_WINDOW,
    RateRing,
    Reservoir,
    StatsObserver,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_submits_per_second_are_the_last_ten_seconds_of_responses() -> None:
    clock = FakeClock()
    stats = StatsObserver(clock)
    stats.bind_state("smpp1", "smpp1/trx-0", "bound")
    for _ in range(30):  # 50 responses a second for 30 s
        for _ in range(50):
            stats.submit_result("smpp1", "smpp1/trx-0", "ESME_ROK", 0.01)
            clock.now += 0.02
    server = stats.snapshot().servers["smpp1"]
    assert server.submits_per_s == pytest.approx(50.0, rel=0.01)
    assert server.submits == 1500
    clock.now += 5.0  # 5 s of silence: half the window is empty
    assert stats.snapshot().servers["smpp1"].submits_per_s == pytest.approx(25.0, rel=0.02)
    clock.now += RATE_WINDOW
    assert stats.snapshot().servers["smpp1"].submits_per_s == 0.0
    assert stats.snapshot().servers["smpp1"].submits == 1500


def test_a_young_window_is_averaged_over_its_own_age() -> None:
    clock = FakeClock(50.5)
    ring = RateRing(10, clock.now)
    clock.now += 2.0
    ring.add(clock.now, 20)
    assert ring.per_second(clock.now) == pytest.approx(10.0)


def test_throttles_count_the_last_minute_and_in_total() -> None:
    clock = FakeClock()
    stats = StatsObserver(clock)
    for _ in range(3):
        stats.throttled("smpp2")
        clock.now += 20.0
    figures = stats.snapshot().servers["smpp2"]
    assert (figures.throttles, figures.throttles_last_minute) == (3, 2)
    clock.now += THROTTLE_WINDOW
    figures = stats.snapshot().servers["smpp2"]
    assert (figures.throttles, figures.throttles_last_minute) == (3, 0)


def test_latency_percentiles_are_nearest_rank_over_the_last_answers() -> None:
    stats = StatsObserver(FakeClock())
    for ms in range(1, 101):  # 1..100 ms, shuffled order does not matter
        stats.submit_result("smpp1", "smpp1/trx-0", "ESME_ROK", ((ms * 37) % 100 + 1) / 1000)
    figures = stats.snapshot().servers["smpp1"]
    assert figures.latency_p50 == pytest.approx(0.050)
    assert figures.latency_p99 == pytest.approx(0.099)


def test_the_reservoir_forgets_the_oldest_and_never_grows() -> None:
    reservoir = Reservoir(4)
    assert reservoir.percentile(0.5) is None
    for value in (9.0, 9.0, 9.0, 9.0, 1.0, 2.0, 3.0, 4.0):
        reservoir.add(value)
    assert len(reservoir) == 4
    assert reservoir.percentile(0.5) == 2.0
    assert reservoir.percentile(1.0) == 4.0


def test_memory_stays_fixed_however_much_traffic_flows() -> None:
    """A million facts over an hour of fake time leave every ring and reservoir at its size."""
    clock = FakeClock()
    stats = StatsObserver(clock)
    stats.bind_state("smpp1", "smpp1/trx-0", "bound")
    sizes = []
    for round_ in range(2):
        for _ in range(500_000 if round_ else 1000):
            stats.submit_result("smpp1", "smpp1/trx-0", "ESME_ROK", 0.004)
            stats.dlr_latency(0.3)
            clock.now += 0.0072
        server = stats._servers["smpp1"]
        sizes.append(
            (
                sys.getsizeof(server.submits._counts),
                sys.getsizeof(server.latency._values),
                sys.getsizeof(stats._receipt_latency._values),
                len(stats._servers),
                len(stats._binds),
            )
        )
    assert sizes[0] == sizes[1]
    assert len(stats._servers["smpp1"].latency._values) == RESERVOIR


def test_binds_report_their_state_time_in_state_and_window() -> None:
    clock = FakeClock()
    stats = StatsObserver(clock)
    stats.bind_state("smpp1", "smpp1/trx-0", "connecting")
    clock.now += 1.0
    stats.bind_state("smpp1", "smpp1/trx-0", "bound")
    stats.window("smpp1", "smpp1/trx-0", 7)
    clock.now += 12.5
    bind = stats.snapshot().binds["smpp1/trx-0"]
    assert (bind.state, bind.seconds, bind.in_flight) == ("bound", 12.5, 7)
    stats.bind_state("smpp1", "smpp1/trx-0", "closed")
    bind = stats.snapshot().binds["smpp1/trx-0"]
    assert (bind.state, bind.seconds, bind.in_flight) == ("closed", 0.0, 0)


def test_receipts_intake_and_webhook_rates() -> None:
    clock = FakeClock()
    stats = StatsObserver(clock)
    for _ in range(20):
        stats.dlr_received("DELIVRD", matched=True)
        stats.intake_request("submit", ok=True)
        stats.intake_request("submit", ok=False)
        stats.intake_request("stats", ok=True)  # the readers of the figures are not traffic
        stats.webhook_delivery(ok=True)
        clock.now += 0.5
    stats.dlr_received("DELIVRD", matched=False)
    stats.parked_dlrs(3)
    stats.unmatched_dlrs(2)
    snap = stats.snapshot()
    assert snap.receipts_per_s == pytest.approx(21 / RATE_WINDOW, rel=0.01)
    assert (snap.parked, snap.unmatched, snap.unmatched_total) == (3, 2, 1)
    assert snap.intake_per_s == pytest.approx(40 / RATE_WINDOW, rel=0.01)
    assert snap.rejections_per_s == pytest.approx(20 / RATE_WINDOW, rel=0.01)
    assert snap.webhook_per_s == pytest.approx(20 / RATE_WINDOW, rel=0.01)
    assert snap.webhook_failed_per_s == 0.0


def test_tee_tells_both_observers_every_fact() -> None:
    first, second = RecordingObserver(), RecordingObserver()
    tee = TeeObserver(first, second)
    tee.submit_result("smpp1", "smpp1/trx-0", "ESME_ROK", 0.01)
    tee.throttled("smpp1")
    tee.bind_state("smpp1", "smpp1/trx-0", "bound")
    tee.intake_request("submit", ok=True)
    for observer in (first, second):
        assert observer.total("submit_result") == 1
        assert observer.total("throttled") == 1
        assert observer.bind_states == {"smpp1/trx-0": "bound"}
        assert observer.total("intake_request") == 1
