"""PostgreSQL as the store shared by several daemons on one account (cluster mode).

:class:`PostgresStore` implements :class:`~smppgw.gateway.store.interfaces.Store` with the
SQLite store's contracts, across instances; :class:`PostgresSettings` says where the database
is; :func:`migrate` creates or migrates the schema ahead of a start (``smppgw migrate``).
"""

from __future__ import annotations

from smppgw.gateway.store.postgres.errors import StoreUnavailableError
from smppgw.gateway.store.postgres.schema import SCHEMA_VERSION, StoreSchemaError, migrate
from smppgw.gateway.store.postgres.settings import PostgresSettings, PostgresSettingsError
from smppgw.gateway.store.postgres.store import PostgresStore

__all__ = [
    "SCHEMA_VERSION",
    "PostgresSettings",
    "PostgresSettingsError",
    "PostgresStore",
    "StoreSchemaError",
    "StoreUnavailableError",
    "migrate",
]
