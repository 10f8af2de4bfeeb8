"""Reading a configuration file into the settings of each layer, every problem at once."""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from smppgw.esme.binds import BindManagerSettings, ServerSettings
from smppgw.esme.tls import TlsSettings
from smppgw.gateway.config.checks import check_files, check_simulator_ports
from smppgw.gateway.config.cluster import ClusterSettings, PostgresConfig, read_postgres
from smppgw.gateway.config.errors import SIMULATOR_PASSWORD, ConfigError
from smppgw.gateway.config.sections import (
    GATEWAY_DEFAULTS,
    LogSettings,
    MetricsSettings,
    SimulatorConfig,
    read_gateway,
    read_metrics,
    read_retry,
    read_servers,
    read_settings,
)
from smppgw.gateway.config.table import Table, default_of, show
from smppgw.gateway.intake import IntakeDefaults, IntakeSettings
from smppgw.gateway.recovery import RecoverySettings
from smppgw.gateway.store import StoreSettings
from smppgw.gateway.webhook import WebhookSettings

if TYPE_CHECKING:
    from smppgw.testing.simulator import SimulatorSettings

__all__ = [
    "Config",
    "bind_manager_settings",
    "load_config",
    "parse_config",
    "secrets",
    "servers_from_simulator",
    "simulator_settings",
]


def _gateway_tls() -> TlsSettings:
    return TlsSettings(**cast("dict[str, Any]", GATEWAY_DEFAULTS[TlsSettings]))


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, as the settings of each layer.

    ``gateway`` is the bind manager's settings (its servers are ``servers``, or in simulator
    mode without ``[[servers]]`` the simulator's, on their configured ports or 0 until it
    runs: see :func:`servers_from_simulator`). ``sources`` tells where each secret came from
    (``"gateway.password": "env SMPPGW_PASSWORD"``), never its value. ``postgres`` is the
    PostgreSQL store's DSN with ``[store] backend = "postgres"`` (None: the SQLite store at
    ``store.path``); ``cluster`` how this instance shares the account with the others then.
    """

    gateway: BindManagerSettings
    servers: tuple[ServerSettings, ...]
    tls: TlsSettings = field(default_factory=_gateway_tls)
    store: StoreSettings = field(default_factory=StoreSettings)
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    webhook: WebhookSettings | None = None
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    log: LogSettings = field(default_factory=LogSettings)
    receipts: RecoverySettings = field(default_factory=RecoverySettings)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    sources: Mapping[str, str] = field(default_factory=dict)
    source: str = ""
    postgres: PostgresConfig | None = None
    cluster: ClusterSettings = field(default_factory=ClusterSettings)

    @property
    def defaults(self) -> IntakeDefaults:
        """``[defaults]``: what a message takes when its request leaves a value out."""
        return self.intake.defaults


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and validate a TOML configuration file.

    Args:
        path: the file.
        environ: where ``*_env`` secrets are looked up (``os.environ`` by default).

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has invalid or unknown keys;
            ``errors`` names each one.
    """
    source = os.fspath(path)
    try:
        with Path(source).open("rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror or exc}"], source) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source) from exc
    return parse_config(
        data, environ=environ, source=source, base=str(Path(source).absolute().parent)
    )


def parse_config(
    data: Mapping[str, object],
    *,
    environ: Mapping[str, str] | None = None,
    source: str = "",
    base: str | None = None,
) -> Config:
    """Validate already-parsed TOML data (see :func:`load_config`).

    Args:
        data: the parsed TOML.
        environ: where ``*_env`` secrets are looked up (``os.environ`` by default).
        source: the file name, to lead error messages.
        base: the folder relative paths are relative to (None: the working directory).
    """
    env = os.environ if environ is None else environ
    errors: list[str] = []
    root = Table(data, "", errors, base)
    simulator = _simulator(root.table("simulator")) or SimulatorConfig()
    sources: dict[str, str] = {}
    g = root.table("gateway")
    password, where = g.secret("password", env, required=not simulator.enabled)
    if password is None:
        password, where = SIMULATOR_PASSWORD, "simulator default"
    sources["gateway.password"] = where or ""
    account = read_gateway(
        g,
        password=password,
        password_key="password_env" if (where or "").startswith("env") else "password_file",
        simulator=simulator.enabled,
    )
    tls = read_settings(root.table("tls"), TlsSettings) or _gateway_tls()
    servers = read_servers(root, tls, simulator=simulator.enabled)
    store_table = root.table("store")
    backend = store_table.choice("backend", "sqlite", ("sqlite", "postgres"))
    store, postgres = _store(store_table, env, postgres=backend == "postgres")
    if postgres is not None:
        sources["store.dsn"] = postgres.source
    cluster = _cluster(root, postgres=backend == "postgres")
    intake = read_settings(root.table("intake"), IntakeSettings, defaults=IntakeDefaults())
    defaults = read_settings(root.table("defaults"), IntakeDefaults)
    webhook = None
    if root.has("webhook"):
        w = root.table("webhook")
        secret, where = w.secret("secret", env, required=False)
        if where is not None:
            sources["webhook.secret"] = where
        webhook = read_settings(w, WebhookSettings, secret=secret)
    metrics = read_metrics(root.table("metrics"))
    log = read_settings(root.table("log"), LogSettings)
    account.update(read_retry(root.table("retry")))
    receipts = read_settings(root.table("receipts"), RecoverySettings)
    root.done()
    check_simulator_ports(simulator, servers, errors)
    check_files(errors, store=store, log=log, intake=intake, tls=tls, webhook=webhook)
    if errors or store is None or intake is None or defaults is None:
        raise ConfigError(errors, source)
    if log is None or receipts is None or cluster is None:
        raise ConfigError(errors, source)
    try:
        gateway = BindManagerSettings(
            servers=tuple(servers) or _simulator_servers(simulator, tls), **account
        )
    except ValueError as exc:
        raise ConfigError([f"gateway: {exc}"], source) from exc
    return Config(
        gateway=gateway,
        servers=tuple(servers),
        tls=tls,
        store=store,
        intake=dataclasses.replace(intake, defaults=defaults),
        webhook=webhook,
        metrics=metrics,
        log=log,
        receipts=receipts,
        simulator=simulator,
        sources=sources,
        source=source,
        postgres=postgres,
        cluster=cluster,
    )


_DSN_KEYS = ("dsn", "dsn_env", "dsn_file", "schema")


def _store(
    t: Table, env: Mapping[str, str], *, postgres: bool
) -> tuple[StoreSettings | None, PostgresConfig | None]:
    found = None
    if postgres:
        found = read_postgres(t, env)
    else:
        for key in _DSN_KEYS:
            if t.has(key):
                t.error(key, 'only with backend = "postgres"')
                t.raw(key)
    return read_settings(t, StoreSettings), found


def _cluster(root: Table, *, postgres: bool) -> ClusterSettings | None:
    if root.has("cluster") and not postgres:
        root.error("cluster", 'needs [store] backend = "postgres" (the instances share it)')
    return read_settings(root.table("cluster"), ClusterSettings)


def _simulator(t: Table) -> SimulatorConfig | None:
    dlr_delay = default_of(SimulatorConfig, "dlr_delay")
    raw = t.raw("dlr_delay")
    if raw is not None:
        if (
            isinstance(raw, list)
            and len(raw) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw)
            and 0 <= raw[0] <= raw[1] < math.inf
        ):
            dlr_delay = (float(raw[0]), float(raw[1]))
        else:
            t.error("dlr_delay", f"expected [min, max] seconds with 0 <= min <= max, got {raw!r}")
    seed_raw = t.raw("seed")
    seed = None
    if isinstance(seed_raw, int) and not isinstance(seed_raw, bool):
        seed = seed_raw
    elif seed_raw is not None:
        t.error("seed", f"expected an integer, got {show(seed_raw)}")
    return read_settings(t, SimulatorConfig, dlr_delay=dlr_delay, seed=seed)


def _simulator_servers(sim: SimulatorConfig, tls: TlsSettings) -> tuple[ServerSettings, ...]:
    """The simulator's servers as configured (port 0 until it runs and has chosen)."""
    ports = sim.tls_ports if sim.tls else sim.plain_ports
    return tuple(
        ServerSettings(
            name=f"smpp{i + 1}",
            host=sim.host,
            port=ports[i] if ports else 0,
            tls=tls if sim.tls else None,
            binds=sim.max_binds_per_server,
            rate=sim.rate_per_server,
        )
        for i in range(sim.servers)
    )


def secrets(config: Config) -> tuple[str, ...]:
    """Every secret value in ``config`` (for log redaction)."""
    values = [config.gateway.password]
    if config.webhook is not None and config.webhook.secret:
        values.append(config.webhook.secret)
    return tuple(v for v in values if v)


def servers_from_simulator(
    config: Config, servers: Sequence[tuple[str, str, int | None, int | None]]
) -> tuple[ServerSettings, ...]:
    """Servers pointing at a running simulator, for simulator mode without ``[[servers]]``.

    Args:
        config: the configuration (its ``[simulator]`` section gives binds and rate).
        servers: (name, host, plain_port, tls_port) of each simulator server.
    """
    sim = config.simulator
    result = []
    for name, host, plain_port, tls_port in servers:
        use_tls = sim.tls and tls_port is not None
        port = tls_port if use_tls else plain_port
        if port is None:
            raise ConfigError([f"simulator server {name!r} has no usable port"], config.source)
        result.append(
            ServerSettings(
                name=name,
                host=host,
                port=port,
                tls=config.tls if use_tls else None,
                binds=sim.max_binds_per_server,
                rate=sim.rate_per_server,
            )
        )
    return tuple(result)


def bind_manager_settings(
    config: Config,
    servers: Sequence[ServerSettings] | None = None,
    *,
    ca_file: str | None = None,
) -> BindManagerSettings:
    """The bind manager's settings, on other servers (simulator mode) or another CA.

    Args:
        config: the configuration.
        servers: servers to use instead of ``config.gateway.servers`` (simulator mode).
        ca_file: a CA bundle to use instead of ``[tls] ca_file`` (the simulator's CA).
    """
    chosen = tuple(servers) if servers is not None else config.gateway.servers
    if ca_file is not None:
        chosen = tuple(
            s
            if s.tls is None
            else dataclasses.replace(s, tls=dataclasses.replace(s.tls, ca_file=ca_file))
            for s in chosen
        )
    return dataclasses.replace(config.gateway, servers=chosen)


def simulator_settings(config: Config) -> SimulatorSettings:
    """The built-in simulator's settings: one account, the gateway's own credentials."""
    from smppgw.testing.simulator import (  # noqa: PLC0415
        Account,
        FaultSettings,
        MoSettings,
        SimulatorSettings,
    )

    s, g = config.simulator, config.gateway
    return SimulatorSettings(
        host=s.host,
        servers=s.servers,
        plain_ports=s.plain_ports,
        tls=s.tls,
        tls_ports=s.tls_ports,
        accounts=(
            Account(
                system_id=g.system_id,
                password=g.password,
                max_binds_per_server=s.max_binds_per_server,
                rate_per_server=s.rate_per_server,
            ),
        ),
        message_id_format=s.message_id_format,
        dlr_delay=s.dlr_delay,
        mo=MoSettings(
            rate=s.mo_rate,
            long_share=s.mo_long_share,
            ucs2_share=s.mo_ucs2_share,
            destination=s.mo_destination,
        ),
        faults=FaultSettings(drop_receipts=s.drop_receipts),
        seed=s.seed,
    )
