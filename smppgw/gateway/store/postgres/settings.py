"""Where the PostgreSQL store is and how it behaves: :class:`PostgresSettings`.

The DSN comes from exactly one place: ``dsn`` (a DSN without a password: the config file is
often world-readable or kept in version control), ``dsn_env`` (the name of an environment
variable holding it) or ``dsn_file`` (a file holding it, e.g. a container secret). A password
may also come from libpq's own ``PGPASSWORD`` or ``~/.pgpass``, which asyncpg reads.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from smppgw.gateway.store.health import StoreError

__all__ = ["PostgresSettings", "PostgresSettingsError"]

_IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# key=value DSNs: password=... anywhere, quoted or not.
_KV_PASSWORD: Final = re.compile(r"(^|\s)password\s*=", re.IGNORECASE)


class PostgresSettingsError(StoreError, ValueError):
    """Store settings that cannot work; the message names the key (never a secret's value)."""


def _default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _has_password(dsn: str) -> bool:
    if "://" in dsn:
        try:
            if urlsplit(dsn).password:
                return True
        except ValueError:
            return False
        return "password=" in dsn.partition("?")[2].lower()
    return _KV_PASSWORD.search(dsn) is not None


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """The PostgreSQL store's settings.

    ``schema`` holds the store's tables (created by the store); instances sharing one account
    share one schema. ``instance`` names this daemon among them: its claims (messages being
    submitted, webhook deliveries) are leased for ``claim_lease`` seconds and renewed every
    third of it; the claims of an instance that stops renewing are taken over by the others once
    the lease lapses. A stable name (the host's) lets a restarted daemon take its own claims back
    at once instead of after the lease. ``pool_size`` bounds the connections (one is the
    writer's at a time, the others serve reads); one more is kept for LISTEN. ``retention``,
    ``webhook``, ``max_batch`` and ``max_queue`` mean what they mean for the SQLite store.
    ``timeout`` bounds connecting and each statement; ``poll`` is how often a subscriber
    re-reads the newest cursor should a notification be lost (a reconnect).
    """

    dsn: str | None = field(default=None, repr=False)
    dsn_env: str | None = None
    dsn_file: str | None = None
    schema: str = "smppgw"
    instance: str = field(default_factory=_default_instance)
    pool_size: int = 4
    claim_lease: float = 30.0
    retention: float = 7 * 86400.0
    webhook: bool = False
    max_batch: int = 2000
    max_queue: int = 20000
    timeout: float = 10.0
    poll: float = 1.0

    def __post_init__(self) -> None:
        given = [k for k in ("dsn", "dsn_env", "dsn_file") if getattr(self, k)]
        if len(given) != 1:
            raise PostgresSettingsError(
                "store: give exactly one of dsn, dsn_env or dsn_file"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.dsn is not None and _has_password(self.dsn):
            raise PostgresSettingsError(
                "store.dsn must not hold a password: name an environment variable (dsn_env) or"
                " a file (dsn_file) holding the DSN, or use PGPASSWORD or ~/.pgpass"
            )
        if not _IDENTIFIER.fullmatch(self.schema):
            raise PostgresSettingsError(
                f"store.schema must be a lower-case SQL identifier, got {self.schema!r}"
            )
        if not self.instance or len(self.instance) > 200:
            raise PostgresSettingsError("store.instance must be 1 to 200 characters")
        if self.pool_size < 2:
            raise PostgresSettingsError(f"store.pool_size must be at least 2, got {self.pool_size}")
        for key in ("claim_lease", "retention", "timeout", "poll"):
            value = getattr(self, key)
            if not value > 0:
                raise PostgresSettingsError(f"store.{key} must be positive, got {value!r}")
        if self.max_batch < 1 or self.max_queue < self.max_batch:
            raise PostgresSettingsError("store: need 1 <= max_batch <= max_queue")

    @property
    def application_name(self) -> str:
        """How the instance's connections show in ``pg_stat_activity`` (63 bytes at most)."""
        return f"smppgw {self.instance}".encode()[:63].decode(errors="ignore")

    @property
    def heartbeat(self) -> float:
        """How often the instance renews its lease (a third of it)."""
        return self.claim_lease / 3

    def resolve_dsn(self, environ: Mapping[str, str] = os.environ) -> str:
        """The DSN, read from where the settings say.

        Raises:
            PostgresSettingsError: the variable is unset or empty, or the file cannot be read
                or is empty (the message names the variable or the file, not its content).
        """
        if self.dsn is not None:
            return self.dsn
        if self.dsn_env is not None:
            value = environ.get(self.dsn_env, "").strip()
            if not value:
                raise PostgresSettingsError(
                    f"store.dsn_env: the environment variable {self.dsn_env} is unset or empty"
                )
            return value
        assert self.dsn_file is not None
        try:
            value = Path(self.dsn_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeError) as exc:
            raise PostgresSettingsError(
                f"store.dsn_file: cannot read {self.dsn_file}: {exc.__class__.__name__}"
            ) from exc
        if not value:
            raise PostgresSettingsError(f"store.dsn_file: {self.dsn_file} is empty")
        return value
