"""Reloading the configuration: what changed, what the running daemon takes, what waits.

:func:`plan` compares the running configuration with a new one, key by key (TOML names:
``servers[smpp1].rate``, ``webhook.url``, ``retry.status``), and splits the changes into those
the daemon applies live and those that need a restart (:data:`RESTART`). The configuration the
daemon then runs is the new one with every restart-only value kept as it was
(:attr:`Plan.config`), so a restart-only change is reported at every reload until the restart.

Applied live: servers (rates and bursts re-rate their token buckets; a server added binds; one
removed, or whose host, port, TLS or binds changed, unbinds once its submits in flight are
answered, and a changed one binds again), the retry policy and the bind manager's timings,
``[defaults]``, the intake's limits, ``[webhook]`` (added, removed or changed), ``[receipts]``
and the log level. :func:`reload_file` reads the file again and hands it to
:meth:`smppgw.gateway.daemon.Gateway.reload`; a file that does not load is refused with its
errors and the running configuration stays.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from smppgw.esme.binds import BindManagerSettings, ServerSettings
from smppgw.gateway.config import (
    Config,
    ConfigError,
    bind_manager_settings,
    load_config,
    servers_from_simulator,
)
from smppgw.gateway.config.sections import key_of
from smppgw.gateway.daemon_core import GatewayCore
from smppgw.gateway.intake.protocol import ErrorCode, RequestError
from smppgw.gateway.webhook import WebhookSender, WebhookSettings

if TYPE_CHECKING:
    from smppgw.gateway.intake import IntakeServer
    from smppgw.testing.simulator import Simulator

__all__ = [
    "RESTART",
    "Plan",
    "ReloadReport",
    "Reloading",
    "log_report",
    "plan",
    "reload_file",
    "reload_on_sighup",
    "reload_reply",
]

logger = logging.getLogger(__name__)

_SESSION_FIELDS: Final = (
    "system_id",
    "password",
    "system_type",
    "window",
    "response_timeout",
    "enquire_link_interval",
    "idle_timeout",
    "connect_timeout",
    "bind_timeout",
    "inbound_window",
)
_RETRY_FIELDS: Final = frozenset({"unknown_policy", "status_overrides", "unknown_status"})
_INTAKE_RESTART: Final = ("path", "mode", "group")
_LOG_RESTART: Final = ("format", "file")

RESTART: Final = (
    *(f"gateway.{name}" for name in _SESSION_FIELDS),
    *(f"intake.{name}" for name in _INTAKE_RESTART),
    *(f"log.{name}" for name in _LOG_RESTART),
    "store.*",
    "metrics.*",
    "simulator.*",
    "receipts.query_after (between 0 and more)",
)
"""What a reload does not apply (README's table says the same)."""


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """The outcome of a reload: the keys applied, those that need a restart, or why the new
    configuration was refused (then nothing changed)."""

    applied: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class Plan:
    """What a new configuration changes: :attr:`config` is what the daemon runs after it."""

    config: Config
    applied: tuple[str, ...]
    restart: tuple[str, ...]
    bind_manager: bool  # servers, the retry policy or the bind manager's timings
    webhook: bool
    receipts: bool
    intake: bool
    log_level: bool


def plan(old: Config, new: Config) -> Plan:
    """Compare the running configuration ``old`` with ``new``."""
    applied: list[str] = []
    restart: list[str] = []

    def note(keys: list[str], live: bool) -> bool:
        (applied if live else restart).extend(keys)
        return bool(keys) and live

    gateway_keys = list(_changed(old.gateway, new.gateway, "gateway", skip=("servers",)))
    session = [k for k in gateway_keys if k.split(".", 1)[1] in _session_keys()]
    note(session, live=False)
    policy = note([k for k in gateway_keys if k not in session], live=True)
    servers = note(list(_server_changes(old.gateway.servers, new.gateway.servers)), live=True)
    gateway = dataclasses.replace(
        new.gateway, **{name: getattr(old.gateway, name) for name in _SESSION_FIELDS}
    )

    intake_keys = list(_changed(old.intake, new.intake, "intake", skip=("defaults",)))
    intake_keys += _changed(old.intake.defaults, new.intake.defaults, "defaults")
    held = [f"intake.{key_of(type(old.intake), name)}" for name in _INTAKE_RESTART]
    note([k for k in intake_keys if k in held], live=False)
    intake = note([k for k in intake_keys if k not in held], live=True)
    intake_settings = dataclasses.replace(
        new.intake, **{name: getattr(old.intake, name) for name in _INTAKE_RESTART}
    )

    webhook = note(list(_optional_changes(old.webhook, new.webhook, "webhook")), live=True)

    receipts_config = new.receipts
    receipt_keys = list(_changed(old.receipts, new.receipts, "receipts"))
    if old.receipts.enabled != new.receipts.enabled:
        note(receipt_keys, live=False)  # the query task runs from the start, or not at all
        receipts_config = old.receipts
        receipts = False
    else:
        receipts = note(receipt_keys, live=True)

    log_keys = list(_changed(old.log, new.log, "log"))
    log_level = note([k for k in log_keys if k == "log.level"], live=True)
    note([k for k in log_keys if k != "log.level"], live=False)
    log = dataclasses.replace(new.log, **{name: getattr(old.log, name) for name in _LOG_RESTART})

    for name in ("store", "metrics", "simulator"):
        note(list(_changed(getattr(old, name), getattr(new, name), name)), live=False)

    config = dataclasses.replace(
        new,
        gateway=gateway,
        intake=intake_settings,
        receipts=receipts_config,
        log=log,
        store=old.store,
        metrics=old.metrics,
        simulator=old.simulator,
    )
    return Plan(
        config,
        tuple(applied),
        tuple(restart),
        bind_manager=policy or servers,
        webhook=webhook,
        receipts=receipts,
        intake=intake,
        log_level=log_level,
    )


class Reloading(GatewayCore):
    """The daemon's part that takes a new configuration (a mixin of
    :class:`~smppgw.gateway.daemon.Gateway`)."""

    simulator: Simulator | None
    intake: IntakeServer | None
    _ca_file: str | None  # the simulator's CA, in simulator mode
    _reloading: asyncio.Lock
    _task_done: Callable[[asyncio.Task[None]], None]

    def _start_webhook(self, settings: WebhookSettings) -> None:
        assert self.store is not None
        self.webhook = WebhookSender(settings, self.store, observer=self.observer)
        task = asyncio.create_task(self.webhook.run(), name="webhook")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _bind_settings(self, config: Config) -> BindManagerSettings:
        """The bind manager's settings of ``config`` (in simulator mode without
        ``[[servers]]``, on the simulator's servers and CA)."""
        servers = None
        if self.simulator is not None and not config.servers:
            servers = servers_from_simulator(
                config,
                [(s.name, s.host, s.plain_port, s.tls_port) for s in self.simulator.servers],
            )
        return bind_manager_settings(config, servers, ca_file=self._ca_file)

    async def reload(self, config: Config) -> ReloadReport:
        """Apply what can change live of a new, validated configuration; log and return what
        was applied and what needs a restart. Binds stay up but for servers removed or
        changed."""
        async with self._reloading:
            change = plan(self.config, config)
            if self._stopping or self.manager is None or self.store is None:
                return ReloadReport(errors=("the daemon is not running",))
            new = change.config
            if change.bind_manager:
                self.manager.apply(
                    self._bind_settings(new), unbind_timeout=self.options.drain_timeout
                )
            if change.webhook:
                await self._replace_webhook(new.webhook)
            if change.receipts:
                self._watch.settings = new.receipts
                self._query_bucket.set_rate(new.receipts.query_rate, time.monotonic())
            if change.intake and self.intake is not None:
                self.intake.apply(new.intake)
            if change.log_level:
                logging.getLogger().setLevel(new.log.level.upper())
            self.config = new
            report = ReloadReport(change.applied, change.restart)
            log_report(report)
            return report

    async def _replace_webhook(self, settings: WebhookSettings | None) -> None:
        """Stop the webhook sender (attempts under way are cut short and made again) and
        start one with ``settings``."""
        assert self.store is not None
        if self.webhook is not None:
            task = next(t for t in self._tasks if t.get_name() == "webhook")
            self._tasks.remove(task)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.webhook = None
        self.store.set_webhook(settings is not None)
        if settings is not None:
            self._start_webhook(settings)


def reload_on_sighup(loop: asyncio.AbstractEventLoop, gateway: Reloading) -> Callable[[], None]:
    """SIGHUP reloads the configuration file and, as before, reopens the log file (the
    handler :func:`smppgw.gateway.logs.install_sighup` set is called first). Returns what
    puts that handler back."""
    previous = signal.getsignal(signal.SIGHUP)
    reloads: set[asyncio.Task[ReloadReport]] = set()

    def on_hup() -> None:
        if callable(previous):
            previous(signal.SIGHUP, None)
        logger.info("SIGHUP: reloading the configuration from %s", gateway.config.source)
        task = asyncio.create_task(reload_file(gateway))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)

    def restore() -> None:
        loop.remove_signal_handler(signal.SIGHUP)
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)
        for task in reloads:
            task.cancel()

    return restore


async def reload_file(gateway: Reloading, path: str | None = None) -> ReloadReport:
    """Read the configuration file again (``path``, else the one the daemon was started
    with) and apply it; a file that does not load is refused, logged with its errors, and the
    running configuration stays."""
    source = path or gateway.config.source
    if not source:
        report = ReloadReport(errors=("the daemon was not started from a configuration file",))
        logger.error("configuration not reloaded: %s", report.errors[0])
        return report
    try:
        config = load_config(source)
    except ConfigError as exc:
        logger.error(  # noqa: TRY400 - the errors are the whole story
            "configuration not reloaded, the running one stays: %s", exc
        )
        return ReloadReport(errors=exc.errors)
    return await gateway.reload(config)


async def reload_reply(gateway: Reloading) -> dict[str, object]:
    """The intake's ``reload`` op: :func:`reload_file`, as the fields of the reply; a refusal
    raises RequestError ``invalid_config`` carrying the ``errors``."""
    report = await reload_file(gateway)
    if not report.ok:
        raise RequestError(
            ErrorCode.INVALID_CONFIG,
            "configuration not reloaded, the running one stays: " + "; ".join(report.errors),
            errors=list(report.errors),
        )
    return {"applied": list(report.applied), "needs_restart": list(report.restart)}


def log_report(report: ReloadReport) -> None:
    """One INFO line for what was applied, one WARNING for what needs a restart."""
    if report.applied:
        logger.info("configuration reloaded: applied %s", ", ".join(report.applied))
    elif not report.restart:
        logger.info("configuration reloaded: nothing changed")
    if report.restart:
        logger.warning("changed but needs a restart: %s", ", ".join(report.restart))


# --- comparing settings -----------------------------------------------------------------------


def _session_keys() -> frozenset[str]:
    return frozenset(key_of(BindManagerSettings, name) for name in _SESSION_FIELDS)


def _changed(old: Any, new: Any, table: str, *, skip: tuple[str, ...] = ()) -> Iterator[str]:  # noqa: ANN401
    """The TOML keys (``table.key``) of the fields of two settings that differ."""
    for f in dataclasses.fields(old):
        if f.name in skip or getattr(old, f.name) == getattr(new, f.name):
            continue
        if table == "gateway" and f.name in _RETRY_FIELDS:
            yield "retry.status" if f.name == "status_overrides" else f"retry.{f.name}"
        else:
            yield f"{table}.{key_of(type(old), f.name)}"


def _optional_changes(old: Any, new: Any, table: str) -> Iterator[str]:  # noqa: ANN401
    if old is None and new is None:
        return
    if old is None:
        yield f"{table} added"
    elif new is None:
        yield f"{table} removed"
    else:
        yield from _changed(old, new, table)


def _server_changes(
    old: tuple[ServerSettings, ...], new: tuple[ServerSettings, ...]
) -> Iterator[str]:
    before = {s.name: s for s in old}
    after = {s.name: s for s in new}
    for name, server in before.items():
        if name not in after:
            yield f"servers[{name}] removed"
        else:
            for key in _changed(server, after[name], "servers"):
                yield key.replace("servers.", f"servers[{name}].", 1)
    for name in after:
        if name not in before:
            yield f"servers[{name}] added"
