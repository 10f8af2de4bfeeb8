"""The durable store: every message from acceptance to its final state, the correlation map,
unmatched receipts, inbound (MO) parts and the event log.

One implementation ships: :class:`~smppgw.gateway.store.sqlite.SqliteStore` (SQLite in WAL mode with
group commit), the embedded default for one machine. The daemon talks to the store only through
the methods documented there; the correlation part follows
:class:`smppgw.gateway.correlate.CorrelationStore`.
"""

from __future__ import annotations

from smppgw.gateway.store.health import (
    LogLimiter,
    StorageFullError,
    StoreCorruptError,
    StoreError,
    StoreHealth,
)
from smppgw.gateway.store.lock import StoreLockedError
from smppgw.gateway.store.sqlite import (
    ClaimedMessage,
    InboundBuilder,
    NotAStoreError,
    SqliteStore,
    StoreClosedError,
    StoreSettings,
)

__all__ = [
    "ClaimedMessage",
    "InboundBuilder",
    "LogLimiter",
    "NotAStoreError",
    "SqliteStore",
    "StorageFullError",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreHealth",
    "StoreLockedError",
    "StoreSettings",
]
