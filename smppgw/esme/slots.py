"""Bind slots: which of a server's binds this process may hold, and the rate that goes with them.

The provider's limits are per account: ``binds`` binds and ``rate`` messages per second per
server, whoever holds them. When several gateway processes serve one account, each server's
``binds`` are *slots* leased by the live processes (:mod:`smppgw.gateway.cluster`); a process
binds only
on the slots it holds and sends at the rate of those slots. :class:`SlotSource` is the seam the
bind manager reads; without one it holds every slot at the full rate, as a lone process does.

The rate is apportioned per slot in whole messages per second (:func:`slot_rates`): a token
bucket at a whole rate ``r`` grants at most ``r`` tokens in any 1-second window, so the holders'
windows add up to at most the server's rate, where fractional shares could each round up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["SlotGrant", "SlotSource", "rate_share", "slot_rates"]


@dataclass(frozen=True, slots=True)
class SlotGrant:
    """What one process holds of one server.

    Attributes:
        slots: the indices (``0 .. binds - 1``) of the binds it may keep.
        rate: the messages per second it may send to the server (0 = unlimited, as in the
            server's settings); the sum of the holders' rates never exceeds the server's.
    """

    slots: frozenset[int]
    rate: float


class SlotSource(Protocol):
    """Where the bind manager learns which slots it holds (see :class:`SlotGrant`).

    The manager reads :meth:`grant` for each server at start and after every change
    notification. For each slot it held and holds no more, it closes the bind on that slot and
    then calls :meth:`unbound` (at once if there was none): the source releases the slot to
    other processes only after that, so the account never has more binds than slots.
    """

    def grant(self, server: str) -> SlotGrant:
        """The slots held of ``server`` and their rate, now."""
        ...

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (synchronously, in the event loop) whenever a grant changes."""
        ...

    def unbound(self, server: str, slot: int) -> None:
        """The bind on ``slot`` of ``server`` is closed (or was never up)."""
        ...


def slot_rates(rate: float, binds: int) -> tuple[float, ...]:
    """Each slot's share of a server's ``rate`` (0 = unlimited): whole numbers summing to it.

    ``floor(rate)`` is split as evenly as whole numbers allow, the lower slots taking the one
    more; the fraction of a fractional rate is left unused. A rate below ``binds`` cannot give
    every slot a whole message per second: then each slot gets ``rate / binds``, which keeps the
    long-run sum but may let each holder's bucket round up within one second.
    """
    if binds <= 0:
        return ()
    if rate == 0:
        return (0.0,) * binds
    whole = math.floor(rate)
    if whole < binds:
        return (rate / binds,) * binds
    base, extra = divmod(whole, binds)
    return tuple(float(base + (1 if index < extra else 0)) for index in range(binds))


def rate_share(rate: float, binds: int, slots: Iterable[int]) -> float:
    """The rate of the ``slots`` held of a server with ``rate`` and ``binds`` (0 = unlimited)."""
    if rate == 0:
        return 0.0
    rates = slot_rates(rate, binds)
    return sum((rates[slot] for slot in slots if 0 <= slot < binds), 0.0)
