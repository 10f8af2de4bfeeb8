"""How the PostgreSQL store names database trouble: typed errors, one translation point."""

from __future__ import annotations

from typing import Final

import asyncpg

from smppgw.gateway.store.health import StoreError

__all__ = [
    "DATABASE_ERRORS",
    "StoreUnavailableError",
    "is_connection_error",
    "is_retryable",
    "unavailable",
]

# What a call of asyncpg may raise for the database's or the connection's sake. asyncpg's
# InternalClientError is a connection left mid-operation by a failure: it is unusable.
DATABASE_ERRORS: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


class StoreUnavailableError(StoreError):
    """PostgreSQL cannot be reached or dropped the connection: nothing of the call was
    committed (unless the message says the commit's outcome is unknown). The store reconnects
    by itself; the call may be made again."""


# SQLSTATE classes: 08 connection exception, 53 insufficient resources (too many
# connections), 57 operator intervention (shutdown, pg_terminate_backend, cannot connect now).
_UNAVAILABLE_CLASSES: Final = ("08", "53", "57")
# 40001 serialization failure, 40P01 deadlock detected: the transaction may run again.
_RETRYABLE: Final = ("40001", "40P01")


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the database or the connection went away (not a bad statement)."""
    if isinstance(
        exc,
        OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError,
    ):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return state[:2] in _UNAVAILABLE_CLASSES
    return False


def is_retryable(exc: BaseException) -> bool:
    """Whether the whole transaction may simply run again (deadlock, serialization)."""
    return isinstance(exc, asyncpg.PostgresError) and getattr(exc, "sqlstate", None) in _RETRYABLE


def unavailable(exc: BaseException, what: str) -> StoreUnavailableError:
    """``exc`` as a :class:`StoreUnavailableError` saying ``what`` failed (no DSN in it)."""
    detail = str(exc) or exc.__class__.__name__
    return StoreUnavailableError(f"{what}: PostgreSQL unavailable ({detail})")


def store_error(exc: BaseException, what: str) -> StoreError:
    """Any database failure as a typed store error."""
    if isinstance(exc, StoreError):
        return exc
    if is_connection_error(exc):
        return unavailable(exc, what)
    return StoreError(f"{what}: {exc.__class__.__name__}: {exc}")
