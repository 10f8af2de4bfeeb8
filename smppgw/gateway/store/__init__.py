"""The durable store: every message from acceptance to its final state, the correlation map,
unmatched receipts, inbound (MO) parts and the event log.

What the daemon needs of a store is :class:`~smppgw.gateway.store.interfaces.Store`, the union
of small protocols (queue, correlation, event log, inbound parts, webhook state, housekeeping,
life cycle) whose contracts every backend keeps. One implementation ships here:
:class:`~smppgw.gateway.store.sqlite.SqliteStore` (SQLite in WAL mode with group commit), the
embedded default for one machine.
"""

from __future__ import annotations

from smppgw.gateway.store.health import (
    LogLimiter,
    StorageFullError,
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreHealth,
)
from smppgw.gateway.store.interfaces import (
    ClaimedMessage,
    Correlation,
    EventLog,
    Housekeeping,
    InboundBuilder,
    InboundParts,
    MessageQueue,
    OperatorStore,
    Store,
    StoreLifecycle,
    WaitingPart,
    WebhookState,
)
from smppgw.gateway.store.lock import StoreLockedError
from smppgw.gateway.store.sqlite import (
    NotAStoreError,
    SqliteStore,
    StoreSettings,
)

__all__ = [
    "ClaimedMessage",
    "Correlation",
    "EventLog",
    "Housekeeping",
    "InboundBuilder",
    "InboundParts",
    "LogLimiter",
    "MessageQueue",
    "NotAStoreError",
    "OperatorStore",
    "SqliteStore",
    "StorageFullError",
    "Store",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreHealth",
    "StoreLifecycle",
    "StoreLockedError",
    "StoreSettings",
    "WaitingPart",
    "WebhookState",
]
