"""The state the daemon's parts share, and what more than one of them does.

:class:`~smppgw.gateway.daemon.Gateway` is made of :class:`~smppgw.gateway.dispatcher.Dispatcher`
(claiming messages and submitting them) and :class:`~smppgw.gateway.inbound.Inbound` (receipts,
MO messages, receipt recovery and housekeeping), both on :class:`GatewayCore`: the attributes the
gateway sets up in ``__init__`` and ``start``, writing durably, applying a receipt, and waking
the webhook sender.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from smppgw.esme.binds import BindManager
from smppgw.esme.observe import Observer, ReceiptTally
from smppgw.esme.ratelimit import TokenBucket
from smppgw.gateway.admin import AdminOps
from smppgw.gateway.config import Config
from smppgw.gateway.correlate import Correlator, Dlr, Match
from smppgw.gateway.events import PartPayload
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.recovery import ReceiptWatch, Waiting
from smppgw.gateway.store import LogLimiter, Store, StoreClosedError, StoreError
from smppgw.gateway.trace import WireTrace
from smppgw.gateway.webhook import WebhookSender

__all__ = [
    "DAY",
    "STORE_RETRY_MAX",
    "STORE_RETRY_MIN",
    "GatewayCore",
    "GatewayOptions",
    "receipt_key",
]

# The daemon's parts log as the daemon: one logger name for operators to filter on.
logger = logging.getLogger("smppgw.gateway.daemon")

T = TypeVar("T")

STORE_RETRY_MIN: Final = 0.05  # seconds before a failed store write is tried again, doubling
STORE_RETRY_MAX: Final = 5.0
DAY: Final = 86400.0


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """Knobs that are not in the configuration file (tests and benchmarks set them).

    ``max_in_flight`` bounds the messages claimed from the queue at once (0: twice the total
    window of every bind). ``drain_timeout`` bounds the wait for responses at shutdown.
    ``housekeeping_interval`` paces queue-depth metrics, correlation expiry and pruning.
    ``mo_parts_wait``: a long MO message still missing parts this long after its first part
    arrived is written out as it is (``complete`` false).
    ``queue_full_delay``: a message whose part was still refused with ESME_RMSGQFUL after the
    bind manager's retries goes back to the queue for this long (it is never failed for it).
    """

    max_in_flight: int = 0
    drain_timeout: float = 10.0
    housekeeping_interval: float = 10.0
    correlation_ttl: float = 7 * DAY
    wait_bound: float = 0.0  # seconds to wait for the first bind before serving intake
    queue_full_delay: float = 60.0  # a message refused ESME_RMSGQFUL after every retry waits
    mo_parts_wait: float = 3600.0  # how long the parts of a long MO message are awaited


class GatewayCore:
    """What the daemon's parts share (set by :class:`~smppgw.gateway.daemon.Gateway`)."""

    config: Config
    options: GatewayOptions
    observer: Observer
    store: Store | None
    manager: BindManager | None
    correlator: Correlator | None
    webhook: WebhookSender | None
    trace: WireTrace
    admin: AdminOps | None
    failed: asyncio.Event
    failure: str | None
    _clock: Callable[[], float]
    _receipts: ReceiptTally
    _watch: ReceiptWatch
    _query_unsupported: bool
    _query_bucket: TokenBucket  # query_sm's rate ([receipts] query_rate)
    _tasks: list[asyncio.Task[None]]
    _in_flight: set[asyncio.Task[None]]
    _late: set[asyncio.Task[None]]
    _wake: asyncio.Event
    _stopping: bool
    _store_log: LogLimiter

    async def _durably(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``await call()``, again and again (with back-off) while the store fails: what the
        SMSC answered is kept in memory until the store has it, never lost to a full disk
        and never sent again for it. Only a closed store (shutdown) ends the retries.

        Raises:
            StoreClosedError: the store closed before the write went through.
        """
        delay = STORE_RETRY_MIN
        while True:
            try:
                return await call()
            except StoreClosedError:
                logger.error("%s: the store closed before it could be written", what)  # noqa: TRY400
                raise
            except StoreError as exc:
                self._store_log.error("%s: %s; retrying until the store takes it", what, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, STORE_RETRY_MAX)

    def _watch_part(
        self, message_id: str, part: int, smsc_id: str, registered_at: float, request: SubmitRequest
    ) -> None:
        sender = request.sender
        self._watch.watch(
            Waiting(message_id, part, smsc_id, sender.ton, sender.npi, sender.value),
            registered_at,
        )

    async def _apply(self, match: Match) -> None:
        store = self.store
        assert store is not None
        entry, dlr = match.entry, match.dlr
        parts = None
        if entry.parts == 1 and match.applied:
            # The message's only part and its receipt are all the payload needs.
            parts = (PartPayload(part=0, smsc_id=entry.smsc_id, status=dlr.stat, err=dlr.err),)
        if dlr.final:
            self._watch.done(entry.message_id, entry.part)
        cursor = await store.apply_receipt(
            entry.message_id, match.state, match.outcome, parts, via=dlr.via
        )
        if cursor is not None:
            self.observer.message_final(match.state.value)
            if dlr.via is None:  # a query_sm answer's delay is ours, not the receipt's
                self.observer.dlr_latency(max(0.0, dlr.received_at - entry.registered_at))
            self._event_written()

    def _event_written(self) -> None:
        if self.webhook is not None:
            self.webhook.wake()


def receipt_key(dlr: Dlr) -> tuple[str, float, str | None]:
    """What tells one receipt from another while it is parked (the store returns a copy)."""
    return (dlr.smsc_id, dlr.received_at, dlr.stat)
