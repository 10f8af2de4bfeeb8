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
:mod:`smppgw.binds`) so that delays between our grant and the SMSC's count cannot push an extra
message into the SMSC's window.

The bucket is pure: :meth:`TokenBucket.try_take` takes ``now`` and never sleeps. The async
:meth:`TokenBucket.acquire` wraps it for callers that just want to wait their turn.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from smppgw.codec.errors import SmppError

__all__ = ["RateLimitSettingsError", "TokenBucket"]


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
