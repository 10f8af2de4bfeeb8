"""SQLite in WAL mode, with group commit: the daemon's durable store on one machine.

:class:`SqliteStore` implements :class:`~smppgw.gateway.store.interfaces.Store`, one module per
interface: :mod:`.queue`, :mod:`.correlation`, :mod:`.eventlog`, :mod:`.inbound`,
:mod:`.webhook_state`, :mod:`.housekeeping`; all of them run their statements as operations of
the group-commit writer (:mod:`.engine`) on the database :mod:`.schema` opens. Requests and
receipts are stored as the store's own versioned records (:mod:`.records`).

Message life cycle (``messages.state``): ``queued`` -> ``submitting`` (claimed by the
dispatcher) -> ``submitted`` (every part accepted by an SMSC) -> a final state from the
receipts (``delivered``, ``failed``, ``expired``, ``rejected``), or straight to ``sent`` (every
part accepted, no receipt asked for), ``failed`` or ``unknown`` when the submit itself ended.
A crash leaves claimed messages in ``submitting``; :meth:`SqliteStore.requeue_claimed` puts
them back in the queue at start, and their parts already accepted by an SMSC (a row in
``parts`` with an SMSC id) are not sent again.
"""

from __future__ import annotations

from smppgw.gateway.store.admin import SqliteOperators
from smppgw.gateway.store.correlation import SqliteCorrelation
from smppgw.gateway.store.health import StoreClosedError, StoreError
from smppgw.gateway.store.housekeeping import SqliteHousekeeping
from smppgw.gateway.store.inbound import SqliteInbound
from smppgw.gateway.store.interfaces import ClaimedMessage, InboundBuilder
from smppgw.gateway.store.queue import SqliteQueue
from smppgw.gateway.store.schema import SCHEMA_VERSION, NotAStoreError, StoreSettings
from smppgw.gateway.store.webhook_state import SqliteWebhookState

__all__ = [
    "SCHEMA_VERSION",
    "ClaimedMessage",
    "InboundBuilder",
    "NotAStoreError",
    "SqliteStore",
    "StoreClosedError",
    "StoreError",
    "StoreSettings",
]


class SqliteStore(
    SqliteQueue,
    SqliteCorrelation,
    SqliteInbound,
    SqliteWebhookState,
    SqliteHousekeeping,
    SqliteOperators,
):
    """The store. Create with :meth:`open`; every method may be awaited from any task.

    Args:
        settings: path and durability.
        observer: gets commit latency and batch sizes.
        clock: wall-clock time (Unix seconds) for timestamps.
    """
