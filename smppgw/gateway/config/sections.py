"""Which TOML table fills which settings, and the few keys that are not a field's copy.

Each table is read by walking the fields of the settings dataclass it fills
(:func:`~smppgw.gateway.config.table.read_fields`): the key is the field's name unless the
field says otherwise, and the default and limits are the field's own. This table is the one
place that says where each TOML table goes:

================  ==========================================================================
TOML              settings field
================  ==========================================================================
``[gateway]``     :class:`~smppgw.esme.binds.BindManagerSettings` (account and timings; the
                  bind manager hands them to each :class:`~smppgw.esme.session.Session`)
``[[servers]]``   :class:`~smppgw.esme.binds.ServerSettings`; ``tls = true`` gives it the
                  ``[tls]`` table, ``bind_type = "tx"|"rx"|"trx"`` (or one per bind) its
                  :class:`~smppgw.esme.session.BindType`
``[tls]``         :class:`~smppgw.esme.tls.TlsSettings` (``min_version`` is
                  ``minimum_version``)
``[retry]``       ``BindManagerSettings.unknown_policy``, ``status_overrides`` (``status``),
                  ``unknown_status``
``[store]``       :class:`~smppgw.gateway.store.StoreSettings` (``retention_days`` is
                  ``retention`` in days); ``backend = "postgres"`` and its ``dsn``,
                  ``dsn_env`` or ``dsn_file`` are read apart into
                  :class:`~smppgw.gateway.config.cluster.PostgresConfig`
``[cluster]``     :class:`~smppgw.gateway.config.cluster.ClusterSettings` (postgres only)
``[intake]``      :class:`~smppgw.gateway.intake.IntakeSettings`
``[defaults]``    ``IntakeSettings.defaults``: :class:`~smppgw.gateway.intake.IntakeDefaults`
``[webhook]``     :class:`~smppgw.gateway.webhook.WebhookSettings` (absent: no webhook)
``[receipts]``    :class:`~smppgw.gateway.recovery.RecoverySettings`
``[metrics]``     :class:`MetricsSettings` (``address`` is ``host:port``)
``[log]``         :class:`LogSettings`
``[simulator]``   :class:`SimulatorConfig`, which makes the simulator's settings
================  ==========================================================================

:data:`SECTIONS` is this table for the reader, :data:`READ_APART` the fields it does not read
by their type alone. Where the daemon's default differs on purpose from the library's,
:data:`GATEWAY_DEFAULTS` says so, once; every other default is written on its field only
(``tests/test_config_defaults.py`` holds README's tables to them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from smppgw.codec.constants import CommandStatus
from smppgw.codec.errors import SmppError
from smppgw.esme.binds import BindManagerSettings, ServerSettings
from smppgw.esme.retry_policy import StatusClass, UnknownPolicy
from smppgw.esme.session import BindType
from smppgw.esme.settings import setting, spec_of
from smppgw.esme.tls import TlsSettings
from smppgw.gateway.config.cluster import ClusterSettings
from smppgw.gateway.config.errors import SIMULATOR_SYSTEM_ID
from smppgw.gateway.config.table import Table, default_of, read_fields, show
from smppgw.gateway.intake import IntakeDefaults, IntakeSettings
from smppgw.gateway.recovery import RecoverySettings
from smppgw.gateway.store import StoreSettings
from smppgw.gateway.webhook import WebhookSettings
from smppgw.testing.simulator import Account, FaultSettings, MoSettings, SimulatorSettings

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "GATEWAY_DEFAULTS",
    "READ_APART",
    "SECTIONS",
    "LogSettings",
    "MetricsSettings",
    "SimulatorConfig",
    "file_defaults",
    "read_gateway",
    "read_metrics",
    "read_retry",
    "read_servers",
    "read_settings",
]

GATEWAY_DEFAULTS: Final[Mapping[type[Any], Mapping[str, object]]] = {
    # The daemon offers no TLS older than 1.2 unless asked; the library allows 1.0 (the
    # provider still accepts it).
    TlsSettings: {"minimum_version": "TLSv1.2"},
}
"""Defaults of the configuration file that differ from the settings dataclass's, by field."""

S = TypeVar("S")

LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """``[metrics]``: the Prometheus endpoint (``address = "host:port"`` in the file)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9108


@dataclass(frozen=True, slots=True)
class LogSettings:
    """``[log]``."""

    level: str = setting("info", choices=LOG_LEVELS)
    format: str = setting("text", choices=("text", "json"))
    file: str | None = setting(None, path=True)


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """``[simulator]``: run the built-in SMSC simulator inside the daemon.

    Each key's default is the simulator's own (:class:`~smppgw.testing.simulator.
    SimulatorSettings`, its :class:`~smppgw.testing.simulator.Account`,
    :class:`~smppgw.testing.simulator.MoSettings` and
    :class:`~smppgw.testing.simulator.FaultSettings`), but for ``tls``: the daemon opens no TLS
    port unless asked. :func:`~smppgw.gateway.config.simulator_settings` gives the simulator
    these values and the ``[gateway]`` account.
    """

    enabled: bool = False
    host: str = default_of(SimulatorSettings, "host")
    servers: int = setting(default_of(SimulatorSettings, "servers"), low=1, high=16)
    plain_ports: tuple[int, ...] = setting(
        default_of(SimulatorSettings, "plain_ports"), low=0, high=65535
    )
    tls: bool = False
    tls_ports: tuple[int, ...] = setting(
        default_of(SimulatorSettings, "tls_ports"), low=0, high=65535
    )
    message_id_format: Literal["decimal", "hex", "uuid"] = setting(
        default_of(SimulatorSettings, "message_id_format"), choices=("decimal", "hex", "uuid")
    )
    dlr_delay: tuple[float, float] = setting(  # read apart: [min, max]
        default_of(SimulatorSettings, "dlr_delay"), configurable=False
    )
    max_binds_per_server: int = setting(
        default_of(Account, "max_binds_per_server"), low=1, high=100
    )
    rate_per_server: float = setting(default_of(Account, "rate_per_server"), low=0)
    seed: int | None = setting(default_of(SimulatorSettings, "seed"), configurable=False)
    mo_rate: float = setting(default_of(MoSettings, "rate"), low=0)
    mo_long_share: float = setting(default_of(MoSettings, "long_share"), low=0, high=1)
    mo_ucs2_share: float = setting(default_of(MoSettings, "ucs2_share"), low=0, high=1)
    mo_destination: str = default_of(MoSettings, "destination")
    drop_receipts: float = setting(default_of(FaultSettings, "drop_receipts"), low=0, high=1)

    @classmethod
    def problems(cls, values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Every problem of a simulator made of ``values``, as (field, problem)."""
        found = []
        destination = str(values.get("mo_destination", ""))
        # destination_addr of deliver_sm is a C-Octet String of at most 21 octets (4.6.1).
        if len(destination) > 20:
            found.append(("mo_destination", f"at most 20 characters, got {len(destination)}"))
        servers = values.get("servers", 0)
        for name in ("plain_ports", "tls_ports"):
            ports = values.get(name, ())
            if ports and len(ports) != servers:
                found.append((name, f"lists {len(ports)} ports for {servers} servers"))
        return found


SECTIONS: Final[Mapping[str, type[Any]]] = {
    "gateway": BindManagerSettings,
    "servers": ServerSettings,
    "tls": TlsSettings,
    "store": StoreSettings,
    "intake": IntakeSettings,
    "defaults": IntakeDefaults,
    "webhook": WebhookSettings,
    "log": LogSettings,
    "receipts": RecoverySettings,
    "simulator": SimulatorConfig,
    "cluster": ClusterSettings,
}
"""The settings each TOML table fills by its fields (``[retry]`` and ``[metrics]`` are read
apart: see :func:`read_retry` and :func:`read_metrics`)."""

READ_APART: Final[Mapping[type[Any], tuple[str, ...]]] = {
    BindManagerSettings: (
        "servers",  # [[servers]]
        "password",  # password_env / password_file
        "unknown_policy",  # [retry]
        "status_overrides",  # [retry.status]
        "unknown_status",  # [retry]
    ),
    ServerSettings: ("name", "tls", "bind_type"),  # unique; true for [tls]; "tx"|"rx"|"trx"
    WebhookSettings: ("secret",),  # secret_env / secret_file
    IntakeSettings: ("defaults",),  # [defaults]
    SimulatorConfig: ("dlr_delay", "seed"),  # [min, max]; an integer or none
}
"""Fields of a table's settings that are not read by their type alone."""


def file_defaults(cls: type[Any]) -> dict[str, object]:
    """TOML key -> the default a configuration file gets for it (``dataclasses.MISSING``:
    required), in the file's units; from the fields of ``cls`` and :data:`GATEWAY_DEFAULTS`."""
    overrides = GATEWAY_DEFAULTS.get(cls, {})
    found: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        spec = spec_of(f)
        if not spec.configurable or f.name in READ_APART.get(cls, ()):
            continue
        default = overrides.get(f.name, f.default)
        if spec.scale != 1.0 and isinstance(default, int | float):
            default = default / spec.scale
        found[spec.key or f.name] = default
    return found


def read_settings(t: Table, cls: type[S], **given: Any) -> S | None:  # noqa: ANN401
    """The settings ``cls`` read from ``t`` (``given``: fields read apart), or None when a
    problem was found; every problem is recorded under its key."""
    errors = len(t.errors)
    skip = (*READ_APART.get(cls, ()), *given)
    values = read_fields(t, cls, defaults=GATEWAY_DEFAULTS.get(cls), skip=skip)
    values.update(given)
    check: Callable[[Mapping[str, Any]], list[tuple[str, str]]] | None = getattr(
        cls, "problems", None
    )
    for name, problem in check(values) if check is not None else ():
        t.error(key_of(cls, name), problem)
    t.done()
    if len(t.errors) > errors:
        return None
    try:
        return cls(**values)
    except (ValueError, SmppError) as exc:  # a check of the dataclass's own (the webhook's URL)
        t.error(key_of(cls, next(iter(values), "")), str(exc))
        return None


def key_of(cls: type[Any], name: str) -> str:
    """The TOML key of field ``name`` of ``cls``."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return spec_of(f).key or name
    return name


def read_gateway(t: Table, *, password: str, password_key: str, simulator: bool) -> dict[str, Any]:
    """``[gateway]``: the constructor arguments of :class:`BindManagerSettings` but its
    servers and the ``[retry]`` fields."""
    account = {"system_id": SIMULATOR_SYSTEM_ID} if simulator else None
    values = read_fields(
        t, BindManagerSettings, defaults=account, skip=READ_APART[BindManagerSettings]
    )
    values["password"] = password
    for name, problem in BindManagerSettings.problems(values):
        t.error(password_key if name == "password" else name, problem)
    t.done()
    return values


_BIND_TYPES: Final = {b.value: b for b in BindType}


def read_servers(root: Table, tls: TlsSettings, *, simulator: bool) -> list[ServerSettings]:
    """``[[servers]]``: one :class:`ServerSettings` each, with ``tls`` (for ``tls = true``)."""
    tables = root.tables("servers")
    if not tables and not simulator:
        root.error("servers", "at least one [[servers]] entry is required")
    servers = []
    names: set[str] = set()
    for t in tables:
        name = t.opt_text("name", required=True) or ""
        if name in names:
            t.error("name", f"duplicate server name {name!r}")
        names.add(name)
        binds = t.peek("binds")
        if not isinstance(binds, int) or isinstance(binds, bool):
            binds = default_of(ServerSettings, "binds")
        bind_type = _bind_type(t, t.raw("bind_type"), binds)
        use_tls = t.flag("tls", default=False)
        server = read_settings(
            t, ServerSettings, name=name, bind_type=bind_type, tls=tls if use_tls else None
        )
        if server is not None:
            servers.append(server)
    return servers


def _bind_type(t: Table, raw: object, binds: int) -> BindType | tuple[BindType, ...]:
    names: tuple[str, ...] = ("trx",)
    if isinstance(raw, str):
        names = (raw,)
    elif isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        names = tuple(raw)
        if len(names) != binds:
            t.error("bind_type", f"lists {len(names)} types for {binds} binds")
    elif raw is not None:
        t.error("bind_type", f"expected a string or a list of strings, got {show(raw)}")
    for name in names:
        if name not in _BIND_TYPES:
            t.error("bind_type", f"must be tx, rx or trx, got {name!r}")
    kinds = tuple(_BIND_TYPES.get(n, BindType.TRANSCEIVER) for n in names)
    return kinds[0] if isinstance(raw, str | None) else kinds


def read_retry(t: Table) -> dict[str, Any]:
    """``[retry]``: the ``unknown_policy``, ``status_overrides`` and ``unknown_status`` of
    :class:`BindManagerSettings`."""
    classes = {c.value: c for c in (StatusClass.THROTTLED, StatusClass.TRANSIENT)}
    classes[StatusClass.PERMANENT.value] = StatusClass.PERMANENT
    overrides: dict[int, StatusClass] = {}
    status = t.table("status")
    for key in status.names():  # a free-form table: every key is a status
        value = status.choice(key, StatusClass.TRANSIENT.value, tuple(classes))
        code = _status_key(key)
        if code is None or not 0 < code <= 0xFFFFFFFF:
            status.error(key, "not a command_status name (ESME_...) or number (0x58)")
            continue
        overrides[code] = classes[value]
    policies = {p.value: p for p in UnknownPolicy}
    policy = t.choice("unknown_policy", UnknownPolicy.RESUBMIT_ONCE.value, tuple(policies))
    unknown = t.choice("unknown_status", StatusClass.TRANSIENT.value, tuple(classes))
    t.done()
    return {
        "unknown_policy": policies[policy],
        "status_overrides": overrides,
        "unknown_status": classes[unknown],
    }


def _status_key(text: str) -> int | None:
    if text in CommandStatus.__members__:
        return int(CommandStatus[text])
    try:
        return int(text, 0)
    except ValueError:
        return None


def read_metrics(t: Table) -> MetricsSettings:
    """``[metrics]``: ``enabled`` and ``address = "host:port"``."""
    default = MetricsSettings()
    enabled = t.flag("enabled", default=default.enabled)
    address = t.text("address", f"{default.host}:{default.port}")
    host, sep, port_text = address.rpartition(":")
    host = host.strip("[]")
    port = int(port_text) if sep and port_text.isdigit() else -1
    if not 0 <= port <= 65535:
        t.error("address", f"expected host:port (e.g. 127.0.0.1:9108), got {address!r}")
        port = default.port
    t.done()
    return MetricsSettings(enabled=enabled, host=host or "0.0.0.0", port=port)  # noqa: S104
