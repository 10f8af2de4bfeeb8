"""``[store] backend = "postgres"`` and ``[cluster]``: several daemons sharing one account.

The PostgreSQL store is named by a DSN, from the file (``dsn``, refused when it holds a
password), an environment variable (``dsn_env``) or a file (``dsn_file``); the password never
lives in the configuration file. ``[cluster]`` says how this instance leases its share of the
account's bind slots (:class:`~smppgw.gateway.cluster.leaser.LeaserSettings`): its name, the
lease's ``ttl``, the ``heartbeat`` renewing it, the ``margin`` before the lease's end at which
an instance that cannot renew gives its slots up, and the schema of the lease tables.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlsplit

from smppgw.esme.settings import default_of, setting

if TYPE_CHECKING:
    from smppgw.gateway.config.table import Table

__all__ = [
    "RATE_WINDOW",
    "ClusterSettings",
    "PostgresConfig",
    "dsn_has_password",
    "instance_name",
    "read_postgres",
]

RATE_WINDOW: Final = 1.0
"""The provider's rate window (seconds): ``margin`` must be longer than it."""

_IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_KV_PASSWORD: Final = re.compile(r"(?:^|\s)password\s*=", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """``[cluster]``: how this instance shares the account with the others (seconds).

    ``instance`` names this daemon among the instances (empty: ``<hostname>-<pid>``, see
    :func:`instance_name`). A dead instance's slots are taken over within ``ttl + heartbeat``;
    an instance that cannot renew its leases gives its slots up ``ttl - margin`` after its last
    renewal, so ``margin`` must exceed the rate window and ``heartbeat`` come before the give-up.
    """

    instance: str = ""
    ttl: float = setting(10.0, positive=True, high=3600)
    heartbeat: float = setting(2.0, positive=True, high=600)
    margin: float = setting(3.0, positive=True, high=3600)
    schema: str = "smppgw_cluster"

    @classmethod
    def problems(cls, values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Every problem of lease timings and names made of ``values``, as (field, problem)."""
        found = []
        schema = str(values.get("schema", ""))
        if not _IDENTIFIER.fullmatch(schema):
            found.append(("schema", f"must be a lower-case SQL identifier, got {schema!r}"))
        instance = str(values.get("instance", ""))
        if len(instance) > 200 or any(not c.isprintable() for c in instance):
            found.append(("instance", "at most 200 printable characters"))
        ttl, heartbeat, margin = (float(values.get(k, 0)) for k in ("ttl", "heartbeat", "margin"))
        if not math.isfinite(ttl + heartbeat + margin):
            return found
        if margin <= RATE_WINDOW:
            found.append(("margin", f"must be more than the rate window ({RATE_WINDOW:g} s)"))
        if heartbeat >= ttl - margin:
            found.append(
                (
                    "heartbeat",
                    (
                        f"must be less than ttl - margin ({ttl:g} - {margin:g}): "
                        "a renewal must come before the instance gives its slots up"
                    ),
                )
            )
        return found


def instance_name(settings: ClusterSettings) -> str:
    """The configured instance name, or ``<hostname>-<pid>``."""
    return settings.instance or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class PostgresConfig:
    """Where the PostgreSQL store is: its DSN (never shown) and where it came from."""

    dsn: str = field(repr=False)
    source: str
    schema: str = "smppgw"


def dsn_has_password(dsn: str) -> bool:
    """Whether a libpq DSN (URL or ``key=value`` form) carries a password."""
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
            if parts.password:
                return True
        except ValueError:
            return True  # unreadable: treat as secret, never echo it
        return any(k.lower() == "password" for k, _ in parse_qsl(parts.query))
    return _KV_PASSWORD.search(dsn) is not None


def read_postgres(t: Table, environ: Mapping[str, str]) -> PostgresConfig | None:
    """The DSN of ``[store] backend = "postgres"`` from ``dsn``, ``dsn_env`` or ``dsn_file``.

    A ``dsn`` written in the file must not hold a password (the error names ``dsn`` and never
    shows the value); give one of the three keys.
    """
    schema = t.text("schema", default_of(PostgresConfig, "schema"))
    if not _IDENTIFIER.fullmatch(schema):
        t.error("schema", f"must be a lower-case SQL identifier, got {schema!r}")
    if not t.has("dsn"):
        dsn, where = t.secret("dsn", environ, required=False)
        if where is None and not t.has("dsn_env") and not t.has("dsn_file"):
            t.error("dsn", 'required with backend = "postgres": set dsn, dsn_env or dsn_file')
        return None if dsn is None else PostgresConfig(dsn.strip(), where or "", schema)
    for other in ("dsn_env", "dsn_file"):
        if t.has(other):
            t.error(other, "give one of dsn, dsn_env and dsn_file, not both")
            t.opt_text(other)
    dsn = t.opt_text("dsn")
    problem = None
    if dsn is not None and dsn_has_password(dsn):
        problem = (
            "holds a password; a password is not written in the file: use dsn_env or "
            "dsn_file, or PostgreSQL's PGPASSWORD or ~/.pgpass"
        )
    elif dsn is not None and not dsn.strip():
        problem = "must not be empty"
    if problem is not None:
        t.error("dsn", problem)
    return None if dsn is None or problem is not None else PostgresConfig(dsn, "config", schema)
