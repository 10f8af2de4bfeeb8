"""What the gateway reports about itself: one small interface every layer calls with typed facts.

Layers receive an :class:`Observer` (a no-op by default) and call it synchronously on the hot
path, so every method must be cheap and must not raise. :mod:`smppgw.gateway.metrics`
implements it with
prometheus-client; tests use :class:`RecordingObserver`. Nothing here imports Prometheus.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final, Protocol

__all__ = [
    "NULL_OBSERVER",
    "UNMATCHED_AFTER",
    "NullObserver",
    "Observer",
    "ReceiptTally",
    "RecordingObserver",
    "TeeObserver",
]


class Observer(Protocol):
    """Facts reported by sessions, the bind manager, the store and the daemon.

    ``server`` is the configured server name (e.g. ``smpp1``), ``bind`` a bind's name unique
    within the process (e.g. ``smpp1/trx-2``).
    """

    # --- sessions ---------------------------------------------------------------------------
    def bind_state(self, server: str, bind: str, state: str) -> None:
        """A bind moved to ``state``: ``connecting``, ``bound``, ``unbinding``, ``closed`` (from
        the session) or ``backoff`` (the bind manager waits to reconnect it)."""

    def window(self, server: str, bind: str, in_flight: int) -> None:
        """The number of requests awaiting a response on a bind changed (a request sent, its
        response received or timed out, or the link closed: 0)."""

    def submit_result(self, server: str, bind: str, status: str, latency: float) -> None:
        """A submit_sm/data_sm got its response (``status`` is the CommandStatus name)."""

    def submit_unknown(self, server: str, bind: str, reason: str) -> None:
        """A submit's response never came (``timeout`` or ``link_lost``)."""

    # --- bind manager -----------------------------------------------------------------------
    def token_wait(self, server: str, seconds: float) -> None:
        """A submit waited this long for the server's throughput token."""

    def throttled(self, server: str) -> None:
        """The server answered ESME_RTHROTTLED."""

    def reconnect(self, server: str, bind: str, delay: float) -> None:
        """A bind will be re-established after ``delay`` seconds."""

    # --- delivery receipts and MO -------------------------------------------------------------
    def dlr_received(self, stat: str, matched: bool) -> None:
        """A delivery receipt's fate is known (once per receipt): it found its message, at
        arrival or once its submit_sm_resp came (``matched``), or it had no id or stayed
        without a message for the grace of :class:`ReceiptTally` (not ``matched``)."""

    def dlr_parked(self) -> None:
        """A receipt found no message yet and was parked (its submit_sm_resp may follow)."""

    def parked_dlrs(self, count: int) -> None:
        """The number of receipts parked and still within their grace."""

    def dlr_latency(self, seconds: float) -> None:
        """Time from submit to the final delivery receipt of a message."""

    def unmatched_dlrs(self, count: int) -> None:
        """The number of receipts held without a matching message past their grace."""

    def mo_received(self) -> None:
        """A mobile-originated message arrived."""

    # --- store, queue, events ---------------------------------------------------------------
    def store_commit(self, seconds: float, records: int) -> None:
        """A group commit of ``records`` writes took ``seconds``."""

    def queue_depth(self, state: str, count: int) -> None:
        """The number of messages in ``state`` (queued, submitting, submitted...)."""

    def message_final(self, status: str) -> None:
        """A message reached a final status (delivered, failed, expired, rejected)."""

    def webhook_delivery(self, ok: bool) -> None:
        """One webhook POST attempt finished."""

    def intake_request(self, op: str, ok: bool) -> None:
        """One request line on the intake socket was answered."""


class NullObserver:
    """An :class:`Observer` that records nothing."""

    __slots__ = ()

    def bind_state(self, server: str, bind: str, state: str) -> None:
        pass

    def window(self, server: str, bind: str, in_flight: int) -> None:
        pass

    def submit_result(self, server: str, bind: str, status: str, latency: float) -> None:
        pass

    def submit_unknown(self, server: str, bind: str, reason: str) -> None:
        pass

    def token_wait(self, server: str, seconds: float) -> None:
        pass

    def throttled(self, server: str) -> None:
        pass

    def reconnect(self, server: str, bind: str, delay: float) -> None:
        pass

    def dlr_received(self, stat: str, matched: bool) -> None:
        pass

    def dlr_parked(self) -> None:
        pass

    def parked_dlrs(self, count: int) -> None:
        pass

    def dlr_latency(self, seconds: float) -> None:
        pass

    def unmatched_dlrs(self, count: int) -> None:
        pass

    def mo_received(self) -> None:
        pass

    def store_commit(self, seconds: float, records: int) -> None:
        pass

    def queue_depth(self, state: str, count: int) -> None:
        pass

    def message_final(self, status: str) -> None:
        pass

    def webhook_delivery(self, ok: bool) -> None:
        pass

    def intake_request(self, op: str, ok: bool) -> None:
        pass


class TeeObserver:
    """An :class:`Observer` that tells every fact to two observers, ``first`` then ``second``
    (compose for more). Two plain calls per fact: no loop, no allocation.

    Args:
        first: e.g. the Prometheus observer.
        second: e.g. the live figures of ``smppgw top``.
    """

    __slots__ = ("_first", "_second")

    def __init__(self, first: Observer, second: Observer) -> None:
        self._first = first
        self._second = second

    def bind_state(self, server: str, bind: str, state: str) -> None:
        self._first.bind_state(server, bind, state)
        self._second.bind_state(server, bind, state)

    def window(self, server: str, bind: str, in_flight: int) -> None:
        self._first.window(server, bind, in_flight)
        self._second.window(server, bind, in_flight)

    def submit_result(self, server: str, bind: str, status: str, latency: float) -> None:
        self._first.submit_result(server, bind, status, latency)
        self._second.submit_result(server, bind, status, latency)

    def submit_unknown(self, server: str, bind: str, reason: str) -> None:
        self._first.submit_unknown(server, bind, reason)
        self._second.submit_unknown(server, bind, reason)

    def token_wait(self, server: str, seconds: float) -> None:
        self._first.token_wait(server, seconds)
        self._second.token_wait(server, seconds)

    def throttled(self, server: str) -> None:
        self._first.throttled(server)
        self._second.throttled(server)

    def reconnect(self, server: str, bind: str, delay: float) -> None:
        self._first.reconnect(server, bind, delay)
        self._second.reconnect(server, bind, delay)

    def dlr_received(self, stat: str, matched: bool) -> None:
        self._first.dlr_received(stat, matched)
        self._second.dlr_received(stat, matched)

    def dlr_parked(self) -> None:
        self._first.dlr_parked()
        self._second.dlr_parked()

    def parked_dlrs(self, count: int) -> None:
        self._first.parked_dlrs(count)
        self._second.parked_dlrs(count)

    def dlr_latency(self, seconds: float) -> None:
        self._first.dlr_latency(seconds)
        self._second.dlr_latency(seconds)

    def unmatched_dlrs(self, count: int) -> None:
        self._first.unmatched_dlrs(count)
        self._second.unmatched_dlrs(count)

    def mo_received(self) -> None:
        self._first.mo_received()
        self._second.mo_received()

    def store_commit(self, seconds: float, records: int) -> None:
        self._first.store_commit(seconds, records)
        self._second.store_commit(seconds, records)

    def queue_depth(self, state: str, count: int) -> None:
        self._first.queue_depth(state, count)
        self._second.queue_depth(state, count)

    def message_final(self, status: str) -> None:
        self._first.message_final(status)
        self._second.message_final(status)

    def webhook_delivery(self, ok: bool) -> None:
        self._first.webhook_delivery(ok)
        self._second.webhook_delivery(ok)

    def intake_request(self, op: str, ok: bool) -> None:
        self._first.intake_request(op, ok)
        self._second.intake_request(op, ok)


NULL_OBSERVER: Observer = NullObserver()

UNMATCHED_AFTER: Final = 60.0
"""Seconds a parked receipt may wait for its submit_sm_resp before it counts as unmatched.

A receipt can overtake the resp of its own submit (SMPP v3.4 does not order them across binds,
and some SMSCs send the receipt first); the resp comes within the response timeout or never."""


class ReceiptTally:
    """Counts each delivery receipt once, by its fate, for an :class:`Observer`.

    A receipt that finds its message at arrival is matched. One that does not is *parked*
    (:meth:`Observer.dlr_parked`): when its submit_sm_resp arrives within ``grace`` seconds it
    is matched too (:meth:`matched_later`); if ``grace`` passes first it is counted unmatched
    (:meth:`sweep`). A receipt matched after it was counted unmatched, or parked before this
    process started, is not counted again. Only receipts within their grace are held here, so
    the tally stays as small as the receipts of one grace period.

    Args:
        observer: where the counts go.
        grace: seconds a parked receipt waits before it counts as unmatched.
    """

    __slots__ = ("_grace", "_observer", "_parked")

    def __init__(self, observer: Observer, grace: float = UNMATCHED_AFTER) -> None:
        self._observer = observer
        self._grace = grace
        self._parked: dict[Hashable, tuple[float, str]] = {}

    @property
    def parked(self) -> int:
        """Receipts parked and still within their grace."""
        return len(self._parked)

    def arrived(self, key: Hashable, stat: str, *, matched: bool, now: float) -> None:
        """A receipt arrived and found its message (``matched``) or was parked under ``key``."""
        if matched:
            self._observer.dlr_received(stat, matched=True)
            return
        self._observer.dlr_parked()
        self._parked[key] = (now, stat)
        self._observer.parked_dlrs(len(self._parked))

    def matched_later(self, key: Hashable) -> None:
        """The receipt parked under ``key`` found its message (its submit_sm_resp came)."""
        entry = self._parked.pop(key, None)
        if entry is not None:
            self._observer.dlr_received(entry[1], matched=True)
            self._observer.parked_dlrs(len(self._parked))

    def sweep(self, now: float) -> None:
        """Count the receipts parked for ``grace`` or longer as unmatched."""
        limit = now - self._grace
        expired = []
        for key, (since, _) in self._parked.items():  # in arrival order
            if since > limit:
                break
            expired.append(key)
        for key in expired:
            _, stat = self._parked.pop(key)
            self._observer.dlr_received(stat, matched=False)
        self._observer.parked_dlrs(len(self._parked))


@dataclass(slots=True)
class RecordingObserver:
    """An :class:`Observer` that counts every fact by method and arguments (for tests)."""

    counts: Counter[tuple[str, tuple[object, ...]]] = field(default_factory=Counter)
    bind_states: dict[str, str] = field(default_factory=dict)

    def _count(self, name: str, *args: object) -> None:
        self.counts[(name, args)] += 1

    def total(self, name: str) -> int:
        """How many times method ``name`` was called, whatever its arguments."""
        return sum(n for (method, _), n in self.counts.items() if method == name)

    def bind_state(self, server: str, bind: str, state: str) -> None:
        self.bind_states[bind] = state
        self._count("bind_state", server, bind, state)

    def window(self, server: str, bind: str, in_flight: int) -> None:
        pass

    def submit_result(self, server: str, bind: str, status: str, latency: float) -> None:
        self._count("submit_result", server, status)

    def submit_unknown(self, server: str, bind: str, reason: str) -> None:
        self._count("submit_unknown", server, reason)

    def token_wait(self, server: str, seconds: float) -> None:
        self._count("token_wait", server)

    def throttled(self, server: str) -> None:
        self._count("throttled", server)

    def reconnect(self, server: str, bind: str, delay: float) -> None:
        self._count("reconnect", server)

    def dlr_received(self, stat: str, matched: bool) -> None:
        self._count("dlr_received", stat, matched)

    def dlr_parked(self) -> None:
        self._count("dlr_parked")

    def parked_dlrs(self, count: int) -> None:
        self._count("parked_dlrs", count)

    def dlr_latency(self, seconds: float) -> None:
        self._count("dlr_latency")

    def unmatched_dlrs(self, count: int) -> None:
        self._count("unmatched_dlrs", count)

    def mo_received(self) -> None:
        self._count("mo_received")

    def store_commit(self, seconds: float, records: int) -> None:
        self._count("store_commit")

    def queue_depth(self, state: str, count: int) -> None:
        pass

    def message_final(self, status: str) -> None:
        self._count("message_final", status)

    def webhook_delivery(self, ok: bool) -> None:
        self._count("webhook_delivery", ok)

    def intake_request(self, op: str, ok: bool) -> None:
        self._count("intake_request", op, ok)
