"""Delivery-receipt correlation: SMSC message ids back to (our message id, part index).

Every part of a submitted message gets an SMSC ``message_id`` in its submit_sm_resp
(SMPP v3.4 section 4.4.2). A delivery receipt names that id later, in the receipted_message_id
TLV (section 5.3.2.12) or in the ``id:`` field of its text (Appendix B), on any bind of any
server bound with the same system_id. :class:`Correlator` maps one to the other:

* :meth:`Correlator.register` records a part when its submit_sm_resp arrives, then matches any
  receipt that arrived *before* the resp and was parked.
* :meth:`Correlator.on_dlr` matches a receipt to its part, or parks it as *unmatched*. Unmatched
  receipts are kept (counted, queryable) until their TTL runs out; they are never dropped
  silently, and a later :meth:`~Correlator.register` with the same id takes them.

Ids are compared in a normalised form (:func:`normalize_message_id`): SMSCs answer the resp with
a decimal id and write the receipt in hex, or the other way round, or pad with zeros, or change
case. :func:`id_candidates` lists the forms an id may take elsewhere; the exact (normalised)
form always comes first, so an exact match wins over a converted one.

A message's state over all its parts is :func:`aggregate`: final only when every part has a
final receipt, delivered only when every part was delivered. :func:`outcome` says what the
message-level ``status``, ``err`` and ``reason`` are then: those of the part that decided it.

The store behind the correlator is the :class:`CorrelationStore` protocol (its docstrings are
the contract other implementations follow); :class:`MemoryCorrelationStore` is the in-memory
one. Time is injected (``clock``), so the logic is testable without a real clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from smppgw.codec.constants import MessageState
from smppgw.codec.errors import SmppError
from smppgw.esme.receipts import (
    FINAL_STATES,
    MAX_ID_LENGTH,
    Dlr,
    dlr_from_pdu,
    id_candidates,
    is_receipt,
    normalize_message_id,
    user_data,
)
from smppgw.gateway.events import DeliveryState
from smppgw.provider import lookup_dlr_error

__all__ = [
    "FINAL_STATES",
    "MAX_ID_LENGTH",
    "CorrelationError",
    "CorrelationStore",
    "Correlator",
    "Dlr",
    "Match",
    "MemoryCorrelationStore",
    "Outcome",
    "PartEntry",
    "aggregate",
    "dlr_from_pdu",
    "id_candidates",
    "is_receipt",
    "normalize_message_id",
    "outcome",
    "user_data",
]

DEFAULT_TTL: Final = 7 * 86400.0
"""Seven days: operators send receipts for as long as the validity period, often days."""


class CorrelationError(SmppError, ValueError):
    """A part that cannot be registered (empty SMSC id, part index out of range)."""


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartEntry:
    """One submitted part, as registered when its submit_sm_resp arrived."""

    message_id: str
    """Our message id."""
    part: int
    """The part's index, 0-based."""
    parts: int
    """The message's number of parts."""
    smsc_id: str
    """The SMSC's message_id from the submit_sm_resp, as given."""
    registered_at: float
    """Unix time of registration."""
    expires_at: float
    """Unix time after which the entry is no longer found (and may be removed)."""


def aggregate(dlrs: Sequence[Dlr | None]) -> DeliveryState:
    """A message's state from the latest receipt of each of its parts.

    SUBMITTED until every part has a final receipt (and for an empty sequence); DELIVERED when
    every part was delivered; otherwise a failure, the most specific cause winning:
    REJECTED if any part was rejected, else EXPIRED if any part expired, else FAILED
    (undeliverable, deleted).

    Args:
        dlrs: one entry per part, None where no receipt came yet.

    Returns:
        The aggregated state.
    """
    states: list[MessageState] = []
    for dlr in dlrs:
        if dlr is None or dlr.state is None or not dlr.final:
            return DeliveryState.SUBMITTED
        states.append(dlr.state)
    if not states:
        return DeliveryState.SUBMITTED
    if all(state == MessageState.DELIVERED for state in states):
        return DeliveryState.DELIVERED
    if MessageState.REJECTED in states:
        return DeliveryState.REJECTED
    if MessageState.EXPIRED in states:
        return DeliveryState.EXPIRED
    return DeliveryState.FAILED


@dataclass(frozen=True, slots=True)
class Outcome:
    """A final message's ``status``, ``err`` and ``reason`` (see :func:`outcome`)."""

    status: str
    err: str | None
    reason: str | None


_DELIVERED: Final = Outcome("DELIVRD", "000", None)
# Which part states make each failed outcome (see aggregate's precedence).
_DECIDING: Final[dict[DeliveryState, frozenset[MessageState]]] = {
    DeliveryState.REJECTED: frozenset({MessageState.REJECTED}),
    DeliveryState.EXPIRED: frozenset({MessageState.EXPIRED}),
    DeliveryState.FAILED: frozenset({MessageState.UNDELIVERABLE, MessageState.DELETED}),
}
# Our words for a receipt that carries no err code, and the stat word when it has none either.
_STATE_WORDS: Final[dict[MessageState | None, tuple[str, str]]] = {
    MessageState.EXPIRED: ("EXPIRED", "the validity period ran out before delivery"),
    MessageState.DELETED: ("DELETED", "deleted by the SMSC"),
    MessageState.UNDELIVERABLE: ("UNDELIV", "undeliverable"),
    MessageState.REJECTED: ("REJECTD", "rejected by the SMSC or the network"),
}


def outcome(state: DeliveryState, dlrs: Sequence[Dlr | None]) -> Outcome | None:
    """The message-level status, err and reason of a final state reached by receipts.

    ``delivered`` is ``DELIVRD`` / ``000`` with no reason, whatever the parts' receipts wrote.
    Otherwise the *deciding* part is the first (lowest index) whose receipt state made
    :func:`aggregate` choose ``state`` (REJECTED over EXPIRED over undeliverable/deleted), and
    the message takes its stat word and err. The reason puts the err code into words from the
    provider's DLR error table (``Unknown Error (err 034 UNDELIV)``), prefixed with the part
    when the message has several.

    Args:
        state: ``aggregate(dlrs)``.
        dlrs: one entry per part, as for :func:`aggregate`.

    Returns:
        The outcome, or None when ``state`` is not final.
    """
    if state is DeliveryState.DELIVERED:
        return _DELIVERED
    deciding = _DECIDING.get(state)
    if deciding is None:
        return None
    for index, dlr in enumerate(dlrs):
        if dlr is not None and dlr.state in deciding:
            status, reason = _receipt_words(dlr)
            if len(dlrs) > 1:
                reason = f"part {index} of {len(dlrs)}: {reason}"
            return Outcome(status, dlr.err, reason)
    return None


def _receipt_words(dlr: Dlr) -> tuple[str, str]:
    """The stat word (never DELIVRD for a part that was not delivered) and the reason."""
    word, words = _STATE_WORDS.get(dlr.state, ("UNDELIV", "undeliverable"))
    stat = dlr.stat if dlr.stat and dlr.stat != "DELIVRD" else word
    if not dlr.err:
        return stat, f"{words} (receipt stat {dlr.stat})" if dlr.stat else words
    row = lookup_dlr_error(dlr.err)
    if row is None:
        return stat, f"{stat} with err {dlr.err}, a code the provider's error table does not list"
    return stat, f"{row.description.rstrip('.')} (err {row.text} {row.status})"


@dataclass(frozen=True, slots=True)
class Match:
    """A receipt matched to a part, with the message's state after it."""

    entry: PartEntry
    dlr: Dlr
    parts: tuple[Dlr | None, ...]
    """The latest receipt of every part of the message, after this one was recorded."""
    state: DeliveryState
    """``aggregate(parts)``."""
    final: bool
    """Whether ``state`` is final."""

    @property
    def outcome(self) -> Outcome | None:
        """The message-level status, err and reason when ``state`` is final (:func:`outcome`)."""
        return outcome(self.state, self.parts)

    @property
    def applied(self) -> bool:
        """Whether this receipt is now the part's latest one.

        False when it was a non-final receipt arriving after a final one (SMSCs reorder), which
        the store keeps out; the message's state did not change then.
        """
        return self.parts[self.entry.part] == self.dlr


# --- store -------------------------------------------------------------------------------------


class CorrelationStore(Protocol):
    """Where registered parts, their receipts and unmatched receipts are kept.

    Keys are normalised ids (:func:`normalize_message_id`). The two writing methods are each
    atomic (one transaction in a database): that alone makes a receipt racing its own
    submit_sm_resp match exactly once, in one process or across daemon instances sharing the
    store. Either :meth:`match_dlr` finds the part, or it parks the receipt, and then
    :meth:`register_part` (which stores the part first) takes it.

    Receipt ordering: a final receipt is never replaced by a non-final one. When a part's
    stored receipt is final (``Dlr.final``) and a new one is not, the new one is ignored
    (SMSCs reorder intermediate and final receipts); otherwise the new one replaces it.
    """

    async def register_part(
        self, entry: PartEntry, keys: Sequence[str], *, keep_previous: bool = False
    ) -> list[tuple[Dlr, tuple[Dlr | None, ...]]]:
        """Store a part under ``normalize_message_id(entry.smsc_id)``, then take the unmatched
        receipts kept under any of ``keys`` and record each as the part's receipt.

        An entry already stored under the same normalised id is replaced (the SMSC reused the
        id; the newest registration wins). With ``keep_previous``, an id the same part was
        registered under before stays matchable too: two attempts of the part were both
        accepted (a late response to one that timed out), so two copies are at the SMSC and
        either may send a receipt; the message is then flagged ``possible_duplicate``.

        Returns:
            Each receipt taken, oldest first, with the latest receipt of every part of the
            message right after recording it (index = part, None where none came).
        """
        ...

    async def match_dlr(
        self, keys: Sequence[str], dlr: Dlr, now: float, unmatched_expires: float
    ) -> tuple[PartEntry, tuple[Dlr | None, ...]] | None:
        """Record ``dlr`` for the part stored under the first of ``keys`` that has one.

        ``keys`` are in preference order (:func:`id_candidates`); entries with ``expires_at <=
        now`` are not found. When no part is found, ``dlr`` is kept as unmatched under
        ``keys[0]`` until ``unmatched_expires``.

        Returns:
            The part and the latest receipt of every part of its message (its length is
            ``entry.parts``), or None when the receipt was kept as unmatched.
        """
        ...

    async def unmatched(self, limit: int) -> list[Dlr]:
        """At most ``limit`` unmatched receipts, oldest first, without removing them."""
        ...

    async def count_unmatched(self) -> int:
        """The number of unmatched receipts kept."""
        ...

    async def expire(self, now: float) -> tuple[int, int]:
        """Remove parts (with their receipts) and unmatched receipts with ``expires_at <= now``.

        Returns:
            (parts removed, unmatched receipts removed).
        """
        ...


class MemoryCorrelationStore:
    """A :class:`CorrelationStore` in dicts, for one process and for tests.

    Each method runs without yielding to the event loop, so each is atomic. It is bounded in
    time, not in count: entries and unmatched receipts stay until :meth:`expire` removes them
    after their TTL, so the caller must call ``expire`` now and then (the daemon does, on a
    timer). Unmatched receipts are never evicted early, because dropping a receipt silently is
    what this module exists to avoid.
    """

    __slots__ = ("_next", "_parts", "_receipts", "_unmatched", "_unmatched_keys")

    def __init__(self) -> None:
        self._parts: dict[str, PartEntry] = {}
        # (message id, part) -> (latest receipt, expires_at of the entry that recorded it)
        self._receipts: dict[tuple[str, int], tuple[Dlr, float]] = {}
        # arrival number -> (key, receipt, expires_at); dicts keep insertion (arrival) order
        self._unmatched: dict[int, tuple[str, Dlr, float]] = {}
        self._unmatched_keys: dict[str, list[int]] = {}
        self._next = 0

    async def register_part(
        self, entry: PartEntry, keys: Sequence[str], *, keep_previous: bool = False
    ) -> list[tuple[Dlr, tuple[Dlr | None, ...]]]:
        # Entries are keyed by SMSC id, so an earlier id of the same part stays matchable
        # whatever keep_previous says.
        self.add_part(entry)
        return [(dlr, self._record(entry, dlr)) for dlr in self._take(keys)]

    async def match_dlr(
        self, keys: Sequence[str], dlr: Dlr, now: float, unmatched_expires: float
    ) -> tuple[PartEntry, tuple[Dlr | None, ...]] | None:
        entry = self.find_part(keys, now)
        if entry is None:
            self._park(keys[0], dlr, unmatched_expires)
            return None
        return entry, self._record(entry, dlr)

    def add_part(self, entry: PartEntry) -> None:
        """Store a part (no receipts taken)."""
        self._parts[normalize_message_id(entry.smsc_id)] = entry

    def find_part(self, keys: Sequence[str], now: float) -> PartEntry | None:
        """The unexpired part stored under the first of ``keys`` that has one."""
        for key in keys:
            entry = self._parts.get(key)
            if entry is not None and entry.expires_at > now:
                return entry
        return None

    def _record(self, entry: PartEntry, dlr: Dlr) -> tuple[Dlr | None, ...]:
        slot = (entry.message_id, entry.part)
        stored = self._receipts.get(slot)
        if stored is None or not stored[0].final or dlr.final:
            self._receipts[slot] = (dlr, entry.expires_at)
        else:
            self._receipts[slot] = (stored[0], max(stored[1], entry.expires_at))
        out: list[Dlr | None] = []
        for part in range(entry.parts):
            found = self._receipts.get((entry.message_id, part))
            out.append(None if found is None else found[0])
        return tuple(out)

    def _park(self, key: str, dlr: Dlr, expires_at: float) -> None:
        number = self._next
        self._next += 1
        self._unmatched[number] = (key, dlr, expires_at)
        self._unmatched_keys.setdefault(key, []).append(number)

    def _take(self, keys: Sequence[str]) -> list[Dlr]:
        numbers: list[int] = []
        for key in dict.fromkeys(keys):
            numbers.extend(self._unmatched_keys.pop(key, ()))
        return [self._unmatched.pop(number)[1] for number in sorted(numbers)]

    async def unmatched(self, limit: int) -> list[Dlr]:
        out: list[Dlr] = []
        for _key, dlr, _expires in self._unmatched.values():
            if len(out) >= limit:
                break
            out.append(dlr)
        return out

    async def count_unmatched(self) -> int:
        return len(self._unmatched)

    async def expire(self, now: float) -> tuple[int, int]:
        dead_parts = [key for key, entry in self._parts.items() if entry.expires_at <= now]
        for key in dead_parts:
            del self._parts[key]
        dead_receipts = [slot for slot, (_, expires) in self._receipts.items() if expires <= now]
        for slot in dead_receipts:
            del self._receipts[slot]
        dead = [n for n, (_, _, expires) in self._unmatched.items() if expires <= now]
        for number in dead:
            key = self._unmatched.pop(number)[0]
            numbers = self._unmatched_keys[key]
            numbers.remove(number)
            if not numbers:
                del self._unmatched_keys[key]
        return len(dead_parts), len(dead)


def _match(entry: PartEntry, dlr: Dlr, latest: tuple[Dlr | None, ...]) -> Match:
    state = aggregate(latest)
    return Match(entry=entry, dlr=dlr, parts=latest, state=state, final=state.is_final)


# --- correlator --------------------------------------------------------------------------------


class Correlator:
    """Matches delivery receipts to submitted parts through a :class:`CorrelationStore`.

    No lock: calls run concurrently, so a store with group commit serves many at once. Each
    call is one atomic store operation, which is what matches a receipt racing its own
    submit_sm_resp exactly once (see :class:`CorrelationStore`).
    """

    __slots__ = ("_clock", "_store", "_ttl", "_unmatched_ttl")

    def __init__(
        self,
        store: CorrelationStore,
        *,
        ttl: float = DEFAULT_TTL,
        unmatched_ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a correlator.

        Args:
            store: where parts and receipts are kept.
            ttl: seconds a registered part stays matchable.
            unmatched_ttl: seconds an unmatched receipt is kept.
            clock: the Unix time source.
        """
        self._store = store
        self._ttl = ttl
        self._unmatched_ttl = unmatched_ttl
        self._clock = clock

    async def register(
        self, message_id: str, part: int, parts: int, smsc_id: str, *, keep_previous: bool = False
    ) -> list[Match]:
        """Record a part's SMSC id (from its submit_sm_resp) and match receipts parked for it.

        Args:
            message_id: our message id.
            part: the part's index, 0-based.
            parts: the message's number of parts.
            smsc_id: the message_id of the submit_sm_resp.
            keep_previous: another attempt of the part may have been (or be) accepted under
                another id: keep every id of the part matchable (see
                :meth:`CorrelationStore.register_part`).

        Returns:
            The matches of receipts that had arrived before this call, in arrival order.

        Raises:
            CorrelationError: ``smsc_id`` is empty, or ``part`` is not in ``range(parts)``.
        """
        keys = id_candidates(smsc_id)  # the normalised id first
        if not keys[0]:
            raise CorrelationError(f"message {message_id!r} part {part}: empty SMSC message id")
        if not 0 <= part < parts:
            raise CorrelationError(f"message {message_id!r}: part {part} not in 0..{parts - 1}")
        now = self._clock()
        entry = PartEntry(message_id, part, parts, smsc_id, now, now + self._ttl)
        taken = await self._store.register_part(entry, keys, keep_previous=keep_previous)
        return [_match(entry, dlr, latest) for dlr, latest in taken]

    async def on_dlr(self, dlr: Dlr) -> Match | None:
        """Match a receipt to its part, or keep it as unmatched.

        Args:
            dlr: the receipt (see :func:`dlr_from_pdu`).

        Returns:
            The match, or None when no part matched: the receipt is then kept, and matched by a
            later :meth:`register` of its id, or removed by :meth:`expire` after
            ``unmatched_ttl``.
        """
        now = self._clock()
        found = await self._store.match_dlr(
            id_candidates(dlr.smsc_id), dlr, now, now + self._unmatched_ttl
        )
        if found is None:
            return None
        entry, latest = found
        return _match(entry, dlr, latest)

    async def unmatched(self, limit: int = 100) -> list[Dlr]:
        """At most ``limit`` unmatched receipts, oldest first."""
        return await self._store.unmatched(limit)

    async def count_unmatched(self) -> int:
        """The number of unmatched receipts kept."""
        return await self._store.count_unmatched()

    async def expire(self) -> tuple[int, int]:
        """Remove expired parts and unmatched receipts.

        Returns:
            (parts removed, unmatched receipts removed).
        """
        return await self._store.expire(self._clock())
