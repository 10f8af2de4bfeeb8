"""Virtual time for tests of code that sleeps on the event loop (back-off, pauses, rates).

``VirtualClock().install()`` makes the running loop's clock virtual: whenever the loop would
wait for its next timer, the clock jumps there instead, so minutes of back-off take no real
time and the order of timers is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any
from unittest import mock


class VirtualClock:
    """Makes the running loop's time virtual: a wait for the next timer takes no real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    @contextlib.contextmanager
    def install(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        selector = loop._selector  # type: ignore[attr-defined]
        real_select = selector.select
        self.now = loop.time()

        def select(timeout: float | None = None) -> Any:
            if timeout is not None and timeout > 0:
                self.now += timeout
            return real_select(0)

        with (
            mock.patch.object(loop, "time", self.time),
            mock.patch.object(selector, "select", select),
        ):
            yield
