"""New settings for a running bind manager: which servers keep their binds and are re-rated,
which are added, and which are retired. Internal to :mod:`smppgw.esme.binds`.

A server keeps its binds when only its ``rate`` or ``burst`` changed: its token bucket takes
the new values from now on, keeping the tokens already granted (no burst, no gap). A server
whose link changed (``host``, ``port``, ``tls``, ``binds``, ``bind_type``) is replaced: the
old one is retired like a removed server and the new one binds like an added one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from smppgw.esme._dispatch import BindEntry, ServerEntry
from smppgw.esme.bind_settings import ServerSettings

__all__ = ["ServerPlan", "plan_servers", "rerate", "server_entry"]

_LINK_FIELDS = ("host", "port", "tls", "binds", "bind_type")


def server_entry(settings: ServerSettings, clock: Callable[[], float]) -> ServerEntry:
    """A server's entry with its bucket, adaptive rate and (not yet connected) binds."""
    bucket = settings.token_bucket(clock)
    server = ServerEntry(settings, bucket, settings.adaptive_rate(bucket))
    server.binds = [
        BindEntry(server, f"{settings.name}/{bind_type.value}-{i}", bind_type)
        for i, bind_type in enumerate(settings.bind_types)
    ]
    return server


@dataclass(slots=True)
class ServerPlan:
    """What new servers settings do to the running ones."""

    rerate: list[tuple[ServerEntry, ServerSettings]] = field(default_factory=list)
    retire: list[ServerEntry] = field(default_factory=list)
    add: list[ServerSettings] = field(default_factory=list)


def plan_servers(running: Sequence[ServerEntry], servers: Sequence[ServerSettings]) -> ServerPlan:
    """Compare the running servers with ``servers`` (matched by name)."""
    plan = ServerPlan()
    by_name = {s.name: s for s in servers}
    for entry in running:
        new = by_name.get(entry.name)
        if new is None or any(
            getattr(new, name) != getattr(entry.settings, name) for name in _LINK_FIELDS
        ):
            plan.retire.append(entry)
        elif new != entry.settings:
            plan.rerate.append((entry, new))
    kept = {entry.name for entry, _ in plan.rerate} | {
        e.name for e in running if e not in plan.retire
    }
    plan.add = [s for s in servers if s.name not in kept]
    return plan


def rerate(server: ServerEntry, settings: ServerSettings, now: float) -> None:
    """Give a running server its new rate and burst; what the bucket granted so far stands.

    What the server's throttles taught is forgotten: the adaptive rate starts again at the new
    configured rate (and learns again if the server still throttles).
    """
    fresh = settings.token_bucket()
    bucket = server.bucket
    bucket.set_burst(fresh.burst)
    bucket.set_rate(fresh.rate, now)
    server.settings = settings
    server.adaptive = settings.adaptive_rate(bucket)
