"""What the daemon needs from a store, as small protocols with their contracts.

Every backend (SQLite for one machine, PostgreSQL for several) implements :class:`Store`, the
union of the protocols below; ``tests/test_store_contract.py`` holds each backend to these
contracts. The rules every method keeps:

- **Durability.** An awaited method that writes returns only after its effect is committed
  (SQLite: fsynced with ``synchronous = full``; PostgreSQL: the transaction committed). A
  caller cancelled while waiting may or may not see its effect; it is never half applied.
- **Atomicity.** Each method is one transaction: its effect is whole or absent. A method that
  raises wrote nothing (:class:`~smppgw.gateway.store.health.StorageFullError` on a full disk,
  :class:`~smppgw.gateway.store.health.StoreError` otherwise, ``StoreClosedError`` after
  :meth:`StoreLifecycle.close`).
- **Time.** Timestamps come from the store's clock (Unix seconds) when the call is made,
  unless the method takes ``now``.
- **Events.** Methods that change what a client can see of a message append a status event
  (rendered by :mod:`smppgw.gateway.events`) in the same transaction and return its cursor.
  Cursors grow strictly in commit order and are never reused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from smppgw.gateway.correlate import CorrelationStore, Outcome, PartEntry
from smppgw.gateway.events import (
    AdminPayload,
    DeliveryState,
    PartPayload,
    StatusPayload,
    StoredEvent,
)
from smppgw.gateway.intake import SubmitRequest, SubmitResult
from smppgw.gateway.selection import ListPage, MessageFilter, MessageOutcome
from smppgw.gateway.store.health import StoreHealth
from smppgw.gateway.webhook import WebhookStore

__all__ = [
    "ClaimedMessage",
    "Correlation",
    "EventLog",
    "Housekeeping",
    "InboundBuilder",
    "InboundParts",
    "MessageQueue",
    "OperatorStore",
    "Store",
    "StoreLifecycle",
    "WaitingPart",
    "WebhookState",
]

InboundBuilder = Callable[[bytes, list[bytes], tuple[int, ...]], bytes]
"""Builds an inbound message's event body from (head, parts' data in order, missing seqnums)."""


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message taken from the queue for submission.

    ``accepted`` holds the parts an SMSC already accepted (after a crash or a stop); they are
    not sent again. ``claims`` counts how often it was claimed (1 on its first run).
    """

    id: str
    request: SubmitRequest
    parts: int
    accepted: frozenset[int]
    claims: int
    created_at: float


WaitingPart = tuple[str, int, str, float, SubmitRequest]
"""(message id, part, SMSC id, registered_at, the message's request) of a part awaiting its
receipt (:meth:`Housekeeping.waiting_parts`)."""


class MessageQueue(Protocol):
    """Messages from acceptance to their final state.

    Life cycle: ``queued`` -> ``submitting`` (claimed) -> ``submitted`` (every part accepted,
    receipts awaited) -> a final state from the receipts (``delivered``, ``failed``,
    ``expired``, ``rejected``); or from ``submitting`` straight to ``sent`` (accepted, no
    receipt asked for), ``failed`` or ``unknown``. A final message never changes state again.
    """

    async def add_messages(self, requests: Sequence[SubmitRequest]) -> list[SubmitResult]:
        """Store new messages as ``queued``, all in one transaction; one result per request,
        in order, each with a new unique id.

        Idempotency: a request whose ``custom`` is already stored (or repeated earlier in
        ``requests``) is not stored again; its result carries the first message's id and part
        count and ``duplicate=True``.
        """
        ...

    async def requeue_claimed(self) -> int:
        """Put every ``submitting`` message back in the queue, due now; at start only.

        Those marked by :meth:`mark_sending` with a part whose acceptance is not recorded are
        flagged ``possible_duplicate`` (that part is sent again); the others are not.

        Returns:
            How many messages went back to the queue.
        """
        ...

    async def claim(self, limit: int) -> list[ClaimedMessage]:
        """Take up to ``limit`` queued messages due now (``due_at <= now``) and make them
        ``submitting``: highest priority first, then oldest accepted first. A message is
        claimed by one caller only; ``claims`` counts its claims. ``request`` is the request
        as stored, equal to the one given to :meth:`add_messages`.
        """
        ...

    async def next_due(self) -> float | None:
        """The earliest ``due_at`` of a queued message, or None when none is queued."""
        ...

    async def release(self, message_id: str, delay: float = 0.0) -> None:
        """Give a ``submitting`` message back to the queue, due ``delay`` seconds from now,
        unflagged (nothing of it left). No effect on a message in another state."""
        ...

    async def requeue(self, message_id: str, delay: float) -> None:
        """Give a ``submitting`` message back to the queue, due after ``delay``, flagged
        ``possible_duplicate`` by the rule of :meth:`requeue_claimed` (its sending failed
        unexpectedly). No effect on a message in another state."""
        ...

    async def mark_sending(self, message_id: str) -> None:
        """Record that a part of a claimed message is about to be written to an SMSC; returns
        once durable. Callers waiting at the same time may share one write."""
        ...

    async def finish_submit(
        self,
        message_id: str,
        state: DeliveryState,
        *,
        err: str | None = None,
        reason: str | None = None,
        possible_duplicate: bool = False,
        accepted: tuple[DeliveryState, str | None] | None = None,
    ) -> int | None:
        """Record the outcome of submitting every part of a ``submitting`` message, with its
        event: ``state`` is SUBMITTED, SENT, FAILED or UNKNOWN; ``sent_time`` becomes now.

        An UNKNOWN outcome whose parts all have an SMSC id takes ``accepted`` (state,
        reason) instead, when given. ``possible_duplicate`` only ever sets the flag.

        Returns:
            The event's cursor, or None when the message is no longer ``submitting`` (a
            receipt made it final first): then only its ``sent_time`` is filled if unset.
        """
        ...

    async def resolve_unknown(
        self, message_id: str, state: DeliveryState, reason: str | None
    ) -> int | None:
        """Make an ``unknown`` message whose parts all have an SMSC id ``state`` (final)
        with ``reason``, with its event.

        Returns:
            The event's cursor, or None when nothing changed.
        """
        ...

    async def apply_receipt(
        self,
        message_id: str,
        state: DeliveryState,
        result: Outcome | None,
        parts: tuple[PartPayload, ...] | None = None,
        *,
        via: str | None = None,
    ) -> int | None:
        """Record a message's final state from its receipts (``result``: status, err and
        reason), with its event carrying ``parts`` (read from the store when None) and
        ``via``. Only a message not yet final changes; a non-final ``state`` or a None
        ``result`` changes nothing.

        Returns:
            The event's cursor, or None when nothing changed.
        """
        ...

    async def status(
        self, *, message_id: str | None = None, custom: str | None = None
    ) -> StatusPayload | None:
        """A message's status (what its next event would carry) by our id or by the client's
        ``custom``; None when no such message is kept."""
        ...


class Correlation(CorrelationStore, Protocol):
    """Accepted parts by SMSC id, their receipts and the receipts not matched yet.

    Besides :class:`~smppgw.gateway.correlate.CorrelationStore`'s contract (a receipt racing
    its own submit_sm_resp matches exactly once; a final receipt is never replaced by a
    non-final one), an accepted part is the record that it is not to be sent again:
    :meth:`MessageQueue.claim` reports it in ``accepted``.
    """

    async def add_part(self, entry: PartEntry) -> None:
        """Record a part the SMSC accepted (replacing the part's earlier registration),
        without taking parked receipts (see ``register_part``)."""
        ...


class EventLog(Protocol):
    """The event log clients read by cursor (``subscribe``, ``smppgw events``)."""

    async def events_after(self, cursor: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` committed events with a cursor above ``cursor``, in cursor order."""
        ...

    async def wait_events(self, cursor: int) -> None:
        """Return once an event with a cursor above ``cursor`` is committed (at once when one
        is). Raises ``StoreClosedError`` when the store closes first."""
        ...

    async def last_cursor(self) -> int:
        """The cursor of the newest committed event, 0 when there is none."""
        ...

    def set_webhook(self, enabled: bool) -> None:
        """Whether events appended from now on await a webhook delivery (a webhook added or
        removed by a reload); events already appended keep their state."""
        ...


class InboundParts(Protocol):
    """Inbound (MO) messages, reassembled from their parts."""

    async def add_inbound(
        self,
        key: str,
        seqnum: int,
        total: int,
        data: bytes,
        *,
        head: bytes,
        build: InboundBuilder,
    ) -> int | None:
        """Keep part ``seqnum`` (1-based) of ``total`` of the message ``key``; a part kept
        already is kept once. When every part is here, append the event ``build(head, data in
        seqnum order, ())`` and forget the parts, in the same transaction.

        Returns:
            The event's cursor once the message is complete, else None.
        """
        ...

    async def expire_inbound(self, older_than: float, build: InboundBuilder) -> int:
        """For each incomplete message whose first part came before ``older_than``: append
        ``build(head, parts present in order, missing seqnums)`` and forget its parts.

        Returns:
            How many messages were written out.
        """
        ...


class WebhookState(WebhookStore, Protocol):
    """The webhook's delivery state of each event (``pending`` and ``result``), persisted so
    attempts and due times survive a restart. Events appended while the store's ``webhook``
    setting is on await a delivery from their creation time; others never do."""

    async def webhook_backlog(self) -> int:
        """How many events await a webhook delivery (neither delivered nor given up)."""
        ...


class Housekeeping(Protocol):
    """Counts, receipt recovery at start, and retention."""

    async def counts(self) -> dict[str, int]:
        """Messages by state: every state of the life cycle present, zeros included."""
        ...

    async def waiting_parts(self) -> list[WaitingPart]:
        """The parts still waiting for a receipt: accepted with an SMSC id still matchable and
        not empty, no final receipt, their message ``submitted`` and not final."""
        ...

    async def still_waiting(self, message_id: str, part: int) -> bool:
        """Whether a part is still waiting for its receipt (see :meth:`waiting_parts`)."""
        ...

    async def expire_waiting(self, older_than: float, reason: str) -> int:
        """Make every ``submitted`` message sent before ``older_than`` final ``unknown`` with
        ``reason``, each with its event.

        Returns:
            How many messages were ended.
        """
        ...

    async def prune(self) -> int:
        """Delete final messages (with their parts) that became final more than the retention
        ago, and events older than the retention that await no webhook delivery.

        Returns:
            How many messages were deleted.
        """
        ...


class StoreLifecycle(Protocol):
    """Health, liveness and closing."""

    @property
    def health(self) -> StoreHealth:
        """Whether the store can write now, and if not why."""
        ...

    async def probe(self) -> None:
        """A round trip through the store's writer; raises as any operation would."""
        ...

    def add_failure_callback(self, callback: Callable[[BaseException], None]) -> None:
        """Call ``callback(error)`` if the store becomes unusable for good other than by
        :meth:`close` (the daemon must then stop)."""
        ...

    async def close(self) -> None:
        """Commit what was asked before, then close; later calls raise ``StoreClosedError``.
        Closing twice is harmless."""
        ...


class OperatorStore(Protocol):
    """What the operators' ops need of a store (:mod:`smppgw.gateway.admin`); not part of
    :class:`Store` (a backend without it serves everything but those ops).

    Contracts: every change is atomic with its ``sms:message:status`` event; a message is
    changed only from the states named (a message that moved on meanwhile is reported, not
    changed); selections are oldest first, at most ``limit`` messages looked at.
    """

    async def cancel_queued(
        self, selection: MessageFilter, limit: int
    ) -> tuple[list[MessageOutcome], list[str]]:
        """``queued`` -> final ``cancelled`` (status ``CANCELLED``, reason ``cancelled by an
        operator``). Returns each message's outcome (``not_found`` for an id or custom naming
        none, ``not_cancellable`` with the reason for the others), except those ``submitted``
        with a scheduled delivery, whose ids are returned apart."""
        ...

    async def cancelled_at_smsc(self, message_id: str) -> bool:
        """``submitted`` -> final ``cancelled`` (the SMSC withdrew it); False if not submitted."""
        ...

    async def scheduled_parts(
        self, message_id: str
    ) -> tuple[SubmitRequest, list[tuple[int, str]]] | None:
        """A ``submitted`` message's request and (part, SMSC id) of its accepted parts."""
        ...

    async def retry_failed(self, selection: MessageFilter, limit: int) -> list[MessageOutcome]:
        """``failed``/``unknown`` -> ``queued`` under the same id: due now, ``retried`` + 1,
        ``possible_duplicate`` set when it was unknown; its parts without a DELIVRD receipt
        are forgotten (sent again), the others kept. Others: ``not_retriable``."""
        ...

    async def history(self, message_id: str, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events of one message in cursor order, by an index (not a scan)."""
        ...

    async def list_messages(
        self, selection: MessageFilter, limit: int, after: int | None
    ) -> ListPage:
        """Messages newest first (by acceptance order), older than key ``after``; ``next`` is
        the key of the next page (None: last page)."""
        ...

    async def add_admin_event(self, payload: AdminPayload) -> int:
        """Append an ``sms:admin`` event (no message); returns its cursor."""
        ...


class Store(
    MessageQueue,
    Correlation,
    EventLog,
    InboundParts,
    WebhookState,
    Housekeeping,
    StoreLifecycle,
    Protocol,
):
    """Everything the daemon needs of a store."""
