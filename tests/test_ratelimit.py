"""TokenBucket: the per-server rate bound over any 1-second window, on a fake clock."""

from __future__ import annotations

import asyncio
import bisect
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.esme.ratelimit import RateLimitSettingsError, TokenBucket


def grant_times(
    bucket: TokenBucket, arrivals: list[float], pauses: dict[int, float] | None = None
) -> list[float]:
    """Serve requests in arrival order, each retrying after the wait the bucket names.

    ``pauses`` maps a request index to a pause length applied (as a throttle would) at the
    moment that request arrives. Returns each request's grant time.
    """
    pauses = pauses or {}
    grants: list[float] = []
    now = 0.0
    for index, arrival in enumerate(arrivals):
        now = max(now, arrival)
        if index in pauses:
            bucket.pause_until(now + pauses[index])
        for _ in range(4):  # the named wait is exact up to float rounding
            wait = bucket.try_take(now)
            if wait == 0:
                break
            now += wait
        else:
            pytest.fail(f"request {index} not granted after waiting the named time")
        grants.append(now)
    return grants


def max_in_window(grants: list[float], width: float) -> int:
    """The most grants in any half-open window [s, s + width).

    Windows starting at a grant are the fullest ones, so those are the only starts checked.
    """
    ordered = sorted(grants)
    return max(
        (bisect.bisect_left(ordered, start + width) - i for i, start in enumerate(ordered)),
        default=0,
    )


arrival_lists = st.lists(st.floats(0, 1.5), min_size=1, max_size=300).map(
    lambda gaps: [sum(gaps[: i + 1]) for i in range(len(gaps))]
)
rates = st.one_of(st.integers(1, 120).map(float), st.floats(0.5, 120.0))


@settings(max_examples=300, deadline=None)
@given(
    rate=rates,
    burst=st.integers(1, 6),
    tolerance=st.sampled_from([0.0, 0.0]) | st.floats(0.0, 0.1),
    arrivals=arrival_lists,
)
def test_no_one_second_window_exceeds_the_documented_bound(
    rate: float, burst: int, tolerance: float, arrivals: list[float]
) -> None:
    grants = grant_times(TokenBucket(rate, burst, tolerance=tolerance), arrivals)
    bound = math.ceil(burst + (1 + tolerance) * rate) - 1
    if tolerance == 0:
        assert bound == math.ceil(rate) + burst - 1
    # Float rounding of accumulated times may shift a grant by far less than a microsecond;
    # a window one microsecond short of a second absorbs that and nothing else.
    assert max_in_window(grants, 1.0 - 1e-6) <= bound


@settings(max_examples=300, deadline=None)
@given(
    rate=st.integers(1, 120),
    arrivals=arrival_lists,
    shifts=st.lists(st.floats(-0.0074, 0.0074), min_size=300, max_size=300),
)
def test_bind_manager_setting_keeps_exact_windows_under_rate_despite_15ms_skew(
    rate: int, arrivals: list[float], shifts: list[float]
) -> None:
    """The bind manager's configuration: burst 1, rate / 1.02, tolerance 5 ms.

    Then rate + 1 grants span at least 1.02 s - 5 ms, so even exact 1-second windows over send
    times shifted (as the SMSC sees them) by up to 15 ms relative to each other hold <= rate.
    """
    grants = grant_times(TokenBucket(rate / 1.02, 1, tolerance=0.005), arrivals)
    assert max_in_window(grants, 1.0) <= rate
    seen_by_smsc = [g + shift for g, shift in zip(grants, shifts, strict=False)]
    assert max_in_window(seen_by_smsc, 1.0) <= rate


@settings(max_examples=200, deadline=None)
@given(
    rate=rates,
    burst=st.integers(1, 4),
    tolerance=st.floats(0.0, 0.05),
    arrivals=arrival_lists,
    pauses=st.dictionaries(st.integers(0, 299), st.floats(0.0, 5.0), max_size=5),
)
def test_throttle_pauses_keep_the_bound_and_grant_nothing_while_paused(
    rate: float, burst: int, tolerance: float, arrivals: list[float], pauses: dict[int, float]
) -> None:
    bucket = TokenBucket(rate, burst, tolerance=tolerance)
    grants = grant_times(bucket, arrivals, pauses)
    assert max_in_window(grants, 1.0 - 1e-6) <= math.ceil(burst + (1 + tolerance) * rate) - 1
    # Re-run with the same inputs, recording each pause interval: no grant falls inside one.
    bucket = TokenBucket(rate, burst, tolerance=tolerance)
    now = 0.0
    paused: list[tuple[float, float]] = []
    for index, arrival in enumerate(arrivals):
        now = max(now, arrival)
        if index in pauses:
            paused.append((now, now + pauses[index]))
            bucket.pause_until(now + pauses[index])
        while (wait := bucket.try_take(now)) > 0:
            now += wait
        assert not any(start <= now < end - 1e-9 for start, end in paused)


@settings(max_examples=200, deadline=None)
@given(rate=rates, burst=st.integers(1, 6), count=st.integers(1, 400))
def test_a_backlog_is_served_at_the_full_rate_not_slower(
    rate: float, burst: int, count: int
) -> None:
    """Liveness: with every request waiting at t=0, grant k comes at (k - burst + 1) / rate."""
    grants = grant_times(TokenBucket(rate, burst), [0.0] * count)
    for k, granted in enumerate(grants):
        assert granted == pytest.approx(max(0.0, (k - burst + 1) / rate), abs=1e-9)


def test_tolerance_absorbs_late_wakeups_without_losing_throughput() -> None:
    """A waiter woken 1 ms late (asyncio rounds timeouts up to the millisecond) keeps the pace."""
    strict, tolerant = TokenBucket(50.0, 1), TokenBucket(50.0, 1, tolerance=0.002)
    for bucket in (strict, tolerant):
        now = 0.0
        for _ in range(500):
            while (wait := bucket.try_take(now)) > 0:
                now += wait + 0.001
    # 500 tokens at 50/s take 10 s; late wakeups stretch the strict schedule by ~5 %.
    assert strict.wait_time(0.0) > 10.4
    assert tolerant.wait_time(0.0) == pytest.approx(10.0 - 0.002, abs=1e-6)


def test_burst_one_at_20_per_second_grants_exactly_20_per_second_under_backlog() -> None:
    grants = grant_times(TokenBucket(20.0, 1), [0.0] * 100)
    per_second = [sum(1 for g in grants if s <= g < s + 1) for s in range(5)]
    assert per_second == [20, 20, 20, 20, 20]


def test_try_take_returns_the_wait_and_takes_nothing_while_empty() -> None:
    bucket = TokenBucket(4.0, 1)
    assert bucket.try_take(10.0) == 0.0
    assert bucket.try_take(10.0) == pytest.approx(0.25)
    assert bucket.try_take(10.1) == pytest.approx(0.15)  # refusals took nothing
    assert bucket.wait_time(10.1) == pytest.approx(0.15)
    assert bucket.try_take(10.25) == 0.0


def test_idle_bucket_refills_to_burst_and_no_further() -> None:
    bucket = TokenBucket(10.0, 3)
    assert [bucket.try_take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take(0.0) == pytest.approx(0.1)
    # A long idle period refills three tokens, never more.
    assert [bucket.try_take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take(100.0) == pytest.approx(0.1)


def test_pause_until_restarts_at_steady_rate_without_a_burst() -> None:
    bucket = TokenBucket(10.0, 3)
    bucket.pause_until(5.0)
    assert bucket.paused_until == 5.0
    assert bucket.try_take(4.0) == pytest.approx(1.0)
    assert bucket.try_take(5.0) == 0.0
    # Burst 3 would allow two more at once after idling; after a throttle it does not.
    assert bucket.try_take(5.0) == pytest.approx(0.1)


def test_a_shorter_pause_never_cuts_a_longer_one() -> None:
    bucket = TokenBucket(10.0, 1)
    bucket.pause_until(8.0)
    bucket.pause_until(6.0)
    assert bucket.paused_until == 8.0
    assert bucket.try_take(7.0) == pytest.approx(1.0)


def test_unlimited_rate_grants_everything_but_still_honours_a_pause() -> None:
    bucket = TokenBucket(math.inf, 1)
    assert all(bucket.try_take(1.0) == 0.0 for _ in range(10_000))
    bucket.pause_until(3.0)
    assert bucket.try_take(2.0) == pytest.approx(1.0)
    assert bucket.try_take(3.0) == 0.0
    assert bucket.try_take(3.0) == 0.0


@pytest.mark.parametrize(
    ("rate", "burst", "tolerance"),
    [(0.0, 1, 0.0), (-1.0, 1, 0.0), (math.nan, 1, 0.0), (5.0, 0, 0.0), (5.0, 1, -0.1)],
)
def test_impossible_settings_are_refused_with_a_typed_error(
    rate: float, burst: int, tolerance: float
) -> None:
    with pytest.raises(RateLimitSettingsError):
        TokenBucket(rate, burst, tolerance=tolerance)


async def test_acquire_waits_on_the_injected_clock_first_come_first_served() -> None:
    now = [100.0]
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(0)  # let the other callers start (and queue) before time moves
        now[0] += seconds

    bucket = TokenBucket(5.0, 1, lambda: now[0], sleep=fake_sleep)
    order: list[int] = []

    async def take(i: int) -> float:
        waited = await bucket.acquire()
        order.append(i)
        return waited

    async with asyncio.timeout(5):
        waits = await asyncio.gather(*(take(i) for i in range(4)))
    assert order == [0, 1, 2, 3]
    assert waits == pytest.approx([0.0, 0.2, 0.4, 0.6])
    assert sleeps == pytest.approx([0.2, 0.2, 0.2])
    assert now[0] == pytest.approx(100.6)


def test_available_at_orders_buckets_by_idleness() -> None:
    busy, idle = TokenBucket(10.0, 1), TokenBucket(10.0, 1)
    assert idle.available_at() == -math.inf
    assert busy.try_take(5.0) == 0.0
    assert idle.try_take(4.0) == 0.0
    assert idle.available_at() == pytest.approx(4.1)
    assert busy.available_at() == pytest.approx(5.1)
    assert busy.wait_time(5.0) == pytest.approx(busy.available_at() - 5.0)
