"""A per-server throughput limit: a token bucket in its GCRA form, pure and clock-injected.

The provider enforces "N messages per second per server" (a typical account: 50/s per server)
and answers ESME_RTHROTTLED, or bars the account, when a client sends faster. What the SMSC
counts is messages per 1-second window, so the bucket must guarantee a bound over *any*
1-second window, not only a long-run average.

The Generic Cell Rate Algorithm (ITU-T I.371, "virtual scheduling") gives exactly that. With
emission interval ``T = 1/rate`` and tolerance ``tau`` it keeps one number, the theoretical
arrival time ``TAT``; a token is granted at ``now`` when ``now >= TAT - tau`` and then
``TAT = max(TAT, now) + T``. Any ``n`` grants therefore span at least ``(n - 1) * T - tau``
seconds. Here ``tau = (burst - 1) * T + tolerance``, so a half-open window of ``W`` seconds holds
fewer than ``burst + (W + tolerance) * rate`` grants:

* ``burst = 1, tolerance = 0``: at most ``ceil(rate)`` grants in any 1-second window (at most
  ``rate`` when it is a whole number): what a strict SMSC counting per 1-second window accepts;
* ``burst = b``: ``b - 1`` more, the slack an idle bucket grants at once;
* ``tolerance = L`` seconds: a waiter may take its token up to ``L`` early, so a timer that wakes
  it a little late (asyncio rounds select timeouts up to the millisecond) does not push the whole
  schedule back and cost throughput; it is the fraction ``L * rate`` of a burst token.

The bound holds up to float rounding (far below a microsecond). The bind manager lowers the rate
slightly and sets a small tolerance (see ``ServerSettings.jitter_allowance`` in
:mod:`smppgw.esme.binds`) so that delays between our grant and the SMSC's count cannot push an extra
message into the SMSC's window.

The bucket is pure: :meth:`TokenBucket.try_take` takes ``now`` and never sleeps. The async
:meth:`TokenBucket.acquire` wraps it for callers that just want to wait their turn.

An account's real limit is sometimes below the configured one (a provider's "50/s" that is 20/s
on a bad day). :class:`AdaptiveRate` learns it from the ESME_RTHROTTLED answers, AIMD-style: on
a throttle it drops the rate to just under what the SMSC accepted in the second before, waits
until the SMSC's window has room again, then probes back up toward the configured rate, slowly
near the rate it learnt and faster the longer no throttle comes. Throttles then cost a few
percent of the real limit instead of a pause of a second or more each.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from smppgw.codec.errors import SmppError

__all__ = ["AdaptiveRate", "RateChange", "RateLimitSettingsError", "TokenBucket"]


class RateLimitSettingsError(SmppError, ValueError):
    """A bucket was configured with a rate, burst or tolerance that cannot be honoured."""


class TokenBucket:
    """A token bucket (GCRA) granting ``rate`` tokens per second with ``burst`` tokens of slack.

    Args:
        rate: tokens per second; ``math.inf`` means unlimited (every take succeeds, but
            :meth:`pause_until` still pauses).
        burst: how many tokens an idle bucket grants at once (at least 1).
        clock: the monotonic clock :meth:`acquire` reads; the pure methods take ``now``.
        tolerance: seconds by which a token may be taken ahead of its slot (see the module
            docstring); over any 1-second window at most ``ceil(burst + (1 + tolerance) *
            rate) - 1`` tokens are granted, which is ``ceil(rate) + burst - 1`` when 0.
        sleep: what :meth:`acquire` awaits to wait (``asyncio.sleep``; tests pass a fake that
            advances their fake clock).

    Raises:
        RateLimitSettingsError: ``rate`` is not positive, ``burst`` is below 1 or
            ``tolerance`` is negative.
    """

    __slots__ = (
        "_anchor",
        "_burst",
        "_clock",
        "_count",
        "_lock",
        "_paused_until",
        "_rate",
        "_sleep",
        "_tolerance",
    )

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        *,
        tolerance: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not rate > 0:  # also rejects NaN
            raise RateLimitSettingsError(f"token bucket rate must be > 0, got {rate!r}")
        if burst < 1:
            raise RateLimitSettingsError(f"token bucket burst must be >= 1, got {burst!r}")
        if not 0 <= tolerance < math.inf:
            raise RateLimitSettingsError(f"token bucket tolerance must be >= 0, got {tolerance!r}")
        self._rate = rate
        self._burst = burst
        self._tolerance = tolerance
        self._clock = clock
        self._sleep = sleep
        # TAT is kept as anchor + count / rate rather than summed interval by interval: k / rate
        # is correctly rounded, so after a backlog of k tokens started at t the next one is due
        # at t + k / rate exactly, not a few ulps early (which would slip a token into the
        # previous 1-second window). anchor = -inf: a full, unused bucket.
        self._anchor = -math.inf
        self._count = 0
        self._paused_until = -math.inf
        self._lock = asyncio.Lock()

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self._rate

    @property
    def burst(self) -> int:
        """Tokens an idle bucket grants at once."""
        return self._burst

    @property
    def paused_until(self) -> float:
        """The clock time before which nothing is granted (``-inf`` if never paused)."""
        return self._paused_until

    def _next_allowed(self) -> float:
        # GCRA: a token may be taken once now >= TAT - tau, tau = (burst - 1) / rate + tolerance.
        return self._anchor + (self._count - self._burst + 1) / self._rate - self._tolerance

    def available_at(self) -> float:
        """The clock time from which a token is available (in the past for an idle bucket).

        Comparing buckets by it tells which server has been idle longest, which the bind
        manager uses to spread traffic.
        """
        return self._next_allowed()

    def wait_time(self, now: float) -> float:
        """Seconds from ``now`` until a token is available, without taking it (0 = available)."""
        return max(0.0, self._next_allowed() - now)

    def try_take(self, now: float) -> float:
        """Take a token at ``now`` if one is available.

        Returns:
            0.0 when a token was taken; otherwise the seconds to wait before one is available
            (nothing is taken then, so the caller retries after that wait).
        """
        wait = self._next_allowed() - now
        if wait > 0:
            return wait
        if now > self._anchor + self._count / self._rate:
            # TAT is in the past: the bucket has refilled; restart the schedule at now.
            self._anchor = now
            self._count = 1
        else:
            self._count += 1
        return 0.0

    def set_rate(self, rate: float, now: float) -> None:
        """Grant ``rate`` tokens per second from ``now`` on, keeping the schedule so far.

        Tokens already granted keep their slots; the next one is due when it was due before, and
        the ones after it follow at the new rate. An idle bucket stays idle.

        Raises:
            RateLimitSettingsError: ``rate`` is not positive.
        """
        if not rate > 0:
            raise RateLimitSettingsError(f"token bucket rate must be > 0, got {rate!r}")
        if rate == self._rate:
            return
        tat = self._anchor + self._count / self._rate
        if tat > now:
            # Rebase: TAT = anchor + count / rate holds for the new rate with count 0.
            self._anchor = tat
            self._count = 0
        else:
            # Idle: the tokens counted at the old rate must not be recounted at the new one.
            self._anchor = -math.inf
            self._count = 0
        self._rate = rate

    def set_burst(self, burst: int) -> None:
        """Grant up to ``burst`` tokens at once from now on, keeping the schedule so far.

        Raises:
            RateLimitSettingsError: ``burst`` is below 1.
        """
        if burst < 1:
            raise RateLimitSettingsError(f"token bucket burst must be >= 1, got {burst!r}")
        self._burst = burst

    def pause_until(self, until: float) -> None:
        """Grant nothing before ``until`` (the server answered ESME_RTHROTTLED).

        After the pause the bucket restarts at its steady rate with no burst: one token at
        ``until``, the next one interval later, so the server does not see a burst just when
        it has told us to slow down. A pause never shortens an earlier, longer one.
        """
        self._paused_until = max(self._paused_until, until)
        if until > self._next_allowed():
            # TAT = until + tau, so that the next token is due at ``until`` and none sooner.
            self._anchor = until + self._tolerance
            self._count = self._burst - 1

    async def acquire(self) -> float:
        """Wait until a token is taken; callers are served first come, first served.

        Returns:
            The seconds this call waited for its token (0.0 if one was available at once).
        """
        start = self._clock()
        async with self._lock:
            # A timer may fire a hair early on a coarse clock; then the bucket answers with
            # the small remainder and we sleep again.
            while True:
                wait = self.try_take(self._clock())
                if wait <= 0:
                    break
                await self._sleep(wait)
        return self._clock() - start


@dataclass(frozen=True, slots=True)
class RateChange:
    """What to do after an ESME_RTHROTTLED (see :meth:`AdaptiveRate.throttled`)."""

    rate: float
    """The rate to send at from now on."""
    resume_at: float | None
    """When the SMSC will have room again; None when nothing was accepted in the last window,
    so that the SMSC refuses everything (overloaded, not rate-limited) and the caller backs off
    on its own schedule (exponentially)."""


class AdaptiveRate:
    """The rate a server really accepts, learnt from its ESME_RTHROTTLED answers (pure: the
    caller passes the send time of each answered submit and ``now``).

    * :meth:`accepted` records each submit the SMSC accepted (its send time); while the rate is
      below ``ceiling`` it climbs: by ``probe`` of the learnt rate per second at first (but at
      least ``min_probe`` of the ceiling, so a rate learnt while traffic was light comes back
      soon), the climb doubling every ``double_every`` seconds without a throttle;
    * :meth:`throttled` on a throttled submit sent after the last change: the SMSC counts per
      ``window``, so what it accepted from us in the last window is its limit. The rate drops
      to ``decrease`` times that, and sending resumes when the oldest of those acceptances
      leaves the window (a sliding window has room then). A further throttle within a window
      of that drop learns nothing new (the SMSC's counting period has not rolled yet, which is
      how a per-clock-second SMSC answers): the rate stays and the wait doubles from one slot.
      Throttles of submits sent before the last change are old news and ignored.

    Args:
        ceiling: the configured rate (tokens per second; ``math.inf`` = unlimited).
        window: the SMSC's counting period in seconds.
        decrease: the share of the measured limit to drop to (below 1, so the SMSC has slack).
        probe: the first climb per second, as a share of the learnt rate.
        min_probe: the least first climb per second, as a share of the ceiling (when finite).
        double_every: seconds without a throttle after which the climb doubles.
        floor: the rate never goes below this.

    Raises:
        RateLimitSettingsError: a parameter out of its range.
    """

    __slots__ = (
        "_accepted",
        "_adjusted_at",
        "_base",
        "_ceiling",
        "_decrease",
        "_double_every",
        "_floor",
        "_holds",
        "_min_step",
        "_news_after",
        "_probe",
        "_rate",
        "_step",
        "_window",
    )

    def __init__(
        self,
        ceiling: float,
        *,
        window: float = 1.0,
        decrease: float = 0.95,
        probe: float = 0.025,
        min_probe: float = 0.01,
        double_every: float = 5.0,
        floor: float = 1.0,
    ) -> None:
        if not ceiling > 0:
            raise RateLimitSettingsError(f"adaptive rate ceiling must be > 0, got {ceiling!r}")
        if not 0 < window < math.inf:
            raise RateLimitSettingsError(f"adaptive rate window must be > 0, got {window!r}")
        if not 0 < decrease < 1:
            raise RateLimitSettingsError(
                f"adaptive rate decrease must be in (0, 1), got {decrease!r}"
            )
        if not (0 < probe < math.inf and 0 <= min_probe < math.inf and 0 < double_every < math.inf):
            raise RateLimitSettingsError(
                "adaptive rate probe and double_every must be > 0, min_probe >= 0"
            )
        if not 0 < floor <= ceiling:
            raise RateLimitSettingsError(
                f"adaptive rate floor must be in (0, ceiling], got {floor!r}"
            )
        self._ceiling = ceiling
        self._rate = ceiling
        self._base = ceiling
        self._window = window
        self._decrease = decrease
        self._probe = probe
        self._min_step = ceiling * min_probe if math.isfinite(ceiling) else 0.0
        self._double_every = double_every
        self._floor = floor
        self._step = 0.0
        self._accepted: deque[float] = deque()  # send times of acceptances in the last window
        self._adjusted_at = -math.inf  # when the rate was last lowered
        self._news_after = -math.inf  # throttles of submits sent before this are old news
        self._holds = 0

    @property
    def rate(self) -> float:
        """The rate to send at now."""
        return self._rate

    @property
    def ceiling(self) -> float:
        """The configured rate."""
        return self._ceiling

    def accepted(self, sent_at: float, now: float) -> float | None:
        """Record a submit sent at ``sent_at`` that the SMSC accepted.

        Returns:
            The new rate when the climb raised it (by at least half a percent, or back to the
            ceiling), else None.
        """
        accepted = self._accepted
        accepted.append(sent_at)
        horizon = now - self._window
        while accepted and accepted[0] <= horizon:
            accepted.popleft()
        if sent_at >= self._news_after:
            self._holds = 0
        rate = self._rate
        if rate >= self._ceiling:
            return None
        new = min(self._ceiling, self._base + self._climb(now - self._adjusted_at))
        if new < self._ceiling and new < rate * 1.005:
            return None
        self._rate = new
        return new

    def throttled(self, sent_at: float, now: float) -> RateChange | None:
        """Learn from a submit sent at ``sent_at`` that the SMSC throttled.

        Returns:
            None when the submit was sent before the last change (old news), else the rate to
            send at and when to resume (see :class:`RateChange`).
        """
        if sent_at < self._news_after:
            return None
        self._news_after = now
        accepted = self._accepted
        horizon = now - self._window
        while accepted and accepted[0] <= horizon:
            accepted.popleft()
        if not accepted:
            return RateChange(self._rate, None)
        if now - self._adjusted_at < self._window:
            self._holds += 1
            wait = min(self._window, 2 ** min(self._holds, 30) / self._rate)
            return RateChange(self._rate, now + wait)
        learnt = max(self._floor, min(self._rate, len(accepted) / self._window) * self._decrease)
        self._rate = self._base = learnt
        self._step = max(learnt * self._probe, self._min_step)
        self._adjusted_at = now
        self._holds = 0
        return RateChange(learnt, max(now, accepted[0] + self._window))

    def _climb(self, elapsed: float) -> float:
        """How far the rate has climbed ``elapsed`` seconds after the last drop."""
        if elapsed <= 0:
            return 0.0
        period = self._double_every
        doublings = min(int(elapsed // period), 60)
        factor = 2.0**doublings
        return self._step * (period * (factor - 1) + factor * (elapsed - doublings * period))
