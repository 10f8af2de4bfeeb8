"""Configuration: one TOML file read into frozen dataclasses, validated once at start.

Every problem is reported with the key that holds it (``servers[1].port: must be 1..65535, got
0``), all problems at once, and unknown keys are rejected by name, so a typo never silently
falls back to a default. Secrets (the SMPP password, the webhook secret) are never written in
the file: they come from an environment variable (``password_env``) or a file
(``password_file``), and neither ``repr`` nor :func:`summary` shows them.

Relative paths in a configuration file are relative to the folder holding that file (so a
daemon and its client commands agree from any working directory); :func:`resolve_path` is the
rule. Files the daemon will open are checked as it would open them (a CA bundle must be PEM, the
store's folder writable, the intake group must exist), so ``smppgw check-config`` refuses
whatever ``smppgw run`` would.

The builders at the end turn a :class:`Config` into the settings each layer takes
(:class:`~smppgw.esme.binds.BindManagerSettings`,
:class:`~smppgw.gateway.intake.IntakeSettings`, ...);
layer modules never read configuration themselves.
"""

from __future__ import annotations

import grp
import math
import os
import ssl
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, cast

from smppgw.codec.constants import CommandStatus
from smppgw.codec.errors import SmppError
from smppgw.esme.retry_policy import StatusClass, UnknownPolicy
from smppgw.gateway.intake import IntakeDefaults, IntakeSettings
from smppgw.gateway.webhook import WebhookError, WebhookSettings

if TYPE_CHECKING:
    from smppgw.esme.binds import BindManagerSettings
    from smppgw.gateway.recovery import RecoverySettings
    from smppgw.testing.simulator import SimulatorSettings

__all__ = [
    "SIMULATOR_PASSWORD",
    "Config",
    "ConfigError",
    "DefaultsConfig",
    "GatewayConfig",
    "IntakeConfig",
    "LogConfig",
    "MetricsConfig",
    "ReceiptsConfig",
    "RetryConfig",
    "ServerConfig",
    "SimulatorConfig",
    "StoreConfig",
    "TlsConfig",
    "WebhookConfig",
    "bind_manager_settings",
    "intake_settings",
    "load_config",
    "parse_config",
    "recovery_settings",
    "resolve_path",
    "secrets",
    "servers_from_simulator",
    "simulator_settings",
    "startup_warnings",
    "summary",
    "webhook_settings",
]

SIMULATOR_PASSWORD: Final = "localsim"  # noqa: S105 - a local test account, by design
"""The password the gateway and the built-in simulator share when no password is configured
(simulator mode only)."""

BIND_TYPES: Final = ("tx", "rx", "trx")
TLS_VERSIONS: Final = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")


class ConfigError(SmppError, ValueError):
    """The configuration is invalid; ``errors`` lists every problem as ``key: problem``."""

    def __init__(self, errors: Sequence[str], source: str = "") -> None:
        self.errors = tuple(errors)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}invalid configuration:\n  " + "\n  ".join(self.errors))


# --- the configuration --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """``[gateway]``: the SMPP account and the session/bind-manager timings (seconds)."""

    system_id: str
    password: str = field(repr=False)
    password_source: str  # "env SMPPGW_PASSWORD", "file /etc/...", "simulator default"
    system_type: str = "smpp"
    window: int = 10
    inbound_window: int = 64
    response_timeout: float = 30.0
    connect_timeout: float = 10.0
    bind_timeout: float = 10.0
    enquire_link_interval: float = 60.0
    idle_timeout: float = 300.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    throttle_backoff: float = 1.0
    throttle_backoff_max: float = 60.0
    retry_delay: float = 5.0
    max_attempts: int = 10


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One ``[[servers]]`` entry."""

    name: str
    host: str
    port: int
    tls: bool = False
    binds: int = 3
    bind_types: tuple[str, ...] = ("trx",)  # one type for all binds, or one per bind
    rate: float = 50.0
    burst: int = 1


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """``[tls]``: applies to every server with ``tls = true``."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    verify: bool = True
    min_version: str = "TLSv1.2"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """``[store]``."""

    backend: str = "sqlite"
    path: str = "var/smppgw.db"
    synchronous: str = "full"
    retention_days: float = 7.0


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    """``[intake]``: the Unix socket."""

    path: str = "/run/smppgw/smppgw.sock"
    mode: int = 0o660
    group: str | None = None
    max_line: int = 65536
    max_batch: int = 1000
    max_pending: int = 10000
    max_clients: int = 256
    line_timeout: float = 30.0
    max_connection_buffer: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DefaultsConfig:
    """``[defaults]``: per-message values used when a request leaves them out."""

    sender: str | None = None
    pe_id: str | None = None
    template_id: str | None = None
    tm_id: str | None = None
    registered_delivery: bool = True
    max_parts: int = 10
    transliterate: bool = False


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """``[webhook]`` (absent: no webhook)."""

    url: str
    secret: str | None = field(default=None, repr=False)
    secret_source: str | None = None
    timeout: float = 3.0
    max_attempts: int = 10
    concurrency: int = 32
    ca_file: str | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """``[metrics]``: the Prometheus endpoint."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9108


@dataclass(frozen=True, slots=True)
class LogConfig:
    """``[log]``."""

    level: str = "info"
    format: str = "text"
    file: str | None = None


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """``[retry]``: how submit response statuses are treated.

    ``status`` maps a command_status (name such as ``ESME_RSYSERR``, or a number) to
    ``throttled``, ``transient`` or ``permanent``, overriding the built-in table.
    """

    status: Mapping[int, StatusClass] = field(default_factory=dict)
    unknown_policy: UnknownPolicy = UnknownPolicy.RESUBMIT_ONCE
    unknown_status: StatusClass = StatusClass.TRANSIENT


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """``[simulator]``: run the built-in SMSC simulator inside the daemon."""

    enabled: bool = False
    host: str = "127.0.0.1"
    servers: int = 2
    plain_ports: tuple[int, ...] = ()
    tls: bool = False
    tls_ports: tuple[int, ...] = ()
    message_id_format: Literal["decimal", "hex", "uuid"] = "hex"
    dlr_delay: tuple[float, float] = (0.05, 0.5)
    max_binds_per_server: int = 3
    rate_per_server: float = 50.0
    seed: int | None = None
    mo_rate: float = 0.0  # MO messages generated per second over all servers; 0 = none
    mo_long_share: float = 0.0  # share of MO messages needing 2 to 4 concatenated parts
    mo_ucs2_share: float = 0.0  # share of MO messages outside GSM 03.38 (sent as UCS-2)
    mo_destination: str = "12345"  # the number or short code the mobiles write to
    drop_receipts: float = 0.0  # share of receipts never sent (query_sm still knows them)


@dataclass(frozen=True, slots=True)
class ReceiptsConfig:
    """``[receipts]``: asking for overdue delivery receipts with query_sm (seconds)."""

    query_after: float = 1800.0  # 0 = never query
    query_interval: float = 3600.0
    max_queries: int = 3
    query_rate: float = 1.0  # query_sm per second over all servers


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration. ``servers`` may be empty only in simulator mode (then the
    servers are the simulator's: see :func:`servers_from_simulator`)."""

    gateway: GatewayConfig
    servers: tuple[ServerConfig, ...]
    tls: TlsConfig = field(default_factory=TlsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    defaults: DefaultsConfig = field(default_factory=DefaultsConfig)
    webhook: WebhookConfig | None = None
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    receipts: ReceiptsConfig = field(default_factory=ReceiptsConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    source: str = ""


# --- reading ------------------------------------------------------------------------------


class _Table:
    """Typed access to one TOML table, recording problems instead of raising."""

    def __init__(
        self,
        data: Mapping[str, object],
        where: str,
        errors: list[str],
        base: str | None = None,
    ) -> None:
        self._data = data
        self._where = where
        self._errors = errors
        self._base = base  # relative paths are relative to this folder (the file's)
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._where}.{name}" if self._where else name

    def error(self, name: str, problem: str) -> None:
        self._errors.append(f"{self.key(name)}: {problem}")

    def has(self, name: str) -> bool:
        return name in self._data

    def _get(self, name: str) -> object:
        self._seen.add(name)
        return self._data.get(name)

    def text(self, name: str, default: str) -> str:
        value = self.opt_text(name)
        return default if value is None else value

    def opt_text(self, name: str, *, required: bool = False) -> str | None:
        value = self._get(name)
        if value is None:
            if required:
                self.error(name, "required")
            return None
        if not isinstance(value, str):
            self.error(name, f"expected a string, got {_show(value)}")
            return None
        if not value:
            self.error(name, "must not be empty")
            return None
        return value

    def path(self, name: str, default: str) -> str:
        """A file path, relative to the configuration file's folder unless absolute."""
        return resolve_path(self._base, self.text(name, default))

    def opt_path(self, name: str) -> str | None:
        value = self.opt_text(name)
        return None if value is None else resolve_path(self._base, value)

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        value = self.text(name, default)
        if value not in choices:
            self.error(name, f"must be one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(name, f"expected true or false, got {_show(value)}")
            return default
        return value

    def integer(
        self, name: str, default: int, low: int | None = None, high: int | None = None
    ) -> int:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(name, f"expected an integer, got {_show(value)}")
            return default
        return value if self._in_range(name, value, low, high) else default

    def number(
        self, name: str, default: float, low: float | None = None, high: float | None = None
    ) -> float:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(name, f"expected a number, got {_show(value)}")
            return default
        if not math.isfinite(value):  # TOML has nan and inf; no time, rate or share is either
            self.error(name, f"must be a finite number, got {value}")
            return default
        return float(value) if self._in_range(name, value, low, high) else default

    def positive(self, name: str, default: float) -> float:
        value = self.number(name, default)
        if value <= 0:
            self.error(name, f"must be > 0, got {value:g}")
            return default
        return value

    def _in_range(self, name: str, value: float, low: float | None, high: float | None) -> bool:
        if low is not None and high is not None and not low <= value <= high:
            self.error(name, f"must be {low}..{high}, got {value}")
            return False
        if low is not None and value < low:
            self.error(name, f"must be >= {low}, got {value}")
            return False
        if high is not None and value > high:
            self.error(name, f"must be <= {high}, got {value}")
            return False
        return True

    def int_list(self, name: str, low: int, high: int) -> tuple[int, ...]:
        value = self._get(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            self.error(name, f"expected a list of integers, got {_show(value)}")
            return ()
        bad = [v for v in value if not low <= v <= high]
        if bad:
            self.error(name, f"values must be {low}..{high}, got {bad[0]}")
            return ()
        return tuple(value)

    def table(self, name: str) -> _Table:
        value = self._get(name)
        if value is None:
            value = {}
        elif not isinstance(value, dict):
            self.error(name, f"expected a table, got {_show(value)}")
            value = {}
        return _Table(value, self.key(name), self._errors, self._base)

    def tables(self, name: str) -> list[_Table]:
        value = self._get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(name, "expected an array of tables ([[" + name + "]])")
            return []
        return [
            _Table(v, f"{self.key(name)}[{i}]", self._errors, self._base)
            for i, v in enumerate(value)
        ]

    def _secret_from_env(
        self, key: str, variable: str, environ: Mapping[str, str]
    ) -> tuple[str | None, str | None]:
        value = environ.get(variable)
        if not value:
            self.error(key, f"environment variable {variable} is not set or empty")
            return None, None
        return value, f"env {variable}"

    def _secret_from_file(self, key: str, path: str) -> tuple[str | None, str | None]:
        try:
            value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            self.error(key, f"cannot read {path}: {exc.strerror or exc}")
            return None, None
        if not value:
            self.error(key, f"{path} is empty")
            return None, None
        return value, f"file {path}"

    def names(self) -> list[str]:
        return list(self._data)

    def raw(self, name: str) -> object:
        return self._get(name)

    def done(self) -> None:
        """Report every key that was never read as unknown."""
        for name in self._data:
            if name not in self._seen:
                self.error(name, "unknown key")

    def secret(
        self, name: str, environ: Mapping[str, str], *, required: bool
    ) -> tuple[str | None, str | None]:
        """``<name>_env`` or ``<name>_file``; returns (value, where it came from)."""
        self._seen.add(name)
        if name in self._data:
            self.error(
                name,
                f"secrets are not written in the file; use {name}_env or {name}_file",
            )
        env = self.opt_text(f"{name}_env")
        path = self.opt_path(f"{name}_file")
        if env is not None and path is not None:
            self.error(f"{name}_env", f"give one of {name}_env and {name}_file, not both")
            return None, None
        if env is not None:
            return self._secret_from_env(f"{name}_env", env, environ)
        if path is not None:
            return self._secret_from_file(f"{name}_file", path)
        if required:
            self.error(f"{name}_env", f"required: set {name}_env or {name}_file")
        return None, None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
    root = _Table(data, "", errors, base)
    simulator = _simulator(root.table("simulator"))
    config = Config(
        gateway=_gateway(root.table("gateway"), env, simulator=simulator.enabled),
        servers=_servers(root, simulator=simulator.enabled),
        tls=_tls(root.table("tls")),
        store=_store(root.table("store")),
        intake=_intake(root.table("intake")),
        defaults=_defaults(root.table("defaults")),
        webhook=_webhook(root, env),
        metrics=_metrics(root.table("metrics")),
        log=_log(root.table("log")),
        retry=_retry(root.table("retry")),
        receipts=_receipts(root.table("receipts")),
        simulator=simulator,
        source=source,
    )
    root.done()
    _check_simulator_ports(config, errors)
    _check_files(config, errors)
    if errors:
        raise ConfigError(errors, source)
    return config


def resolve_path(base: str | None, value: str) -> str:
    """``value`` taken relative to the folder ``base`` (a configuration file's), unless it is
    absolute, ``base`` is None, or it is SQLite's ``:memory:``."""
    if base is None or value == ":memory:" or Path(value).is_absolute():
        return value
    return os.path.normpath(Path(base) / value)


def _check_files(config: Config, errors: list[str]) -> None:
    """What the daemon opens at start, checked the way it opens it, so that a configuration
    ``check-config`` accepts does not fail at ``run``."""
    store = config.store.path
    if store != ":memory:" and (problem := _writable_problem(store, create_folders=True)):
        errors.append(f"store.path: {problem}")
    if config.log.file is not None and (problem := _writable_problem(config.log.file)):
        errors.append(f"log.file: {problem}")
    group = config.intake.group
    if group is not None and (problem := _group_problem(group)):
        errors.append(f"intake.group: {problem}")
    t = config.tls
    if t.ca_file is not None and (problem := _ca_problem(t.ca_file)):
        errors.append(f"tls.ca_file: {problem}")
    if t.cert_file is not None and t.key_file is not None:
        problem = _file_problem(t.cert_file) or _file_problem(t.key_file)
        if problem is None:
            try:
                ssl.create_default_context().load_cert_chain(t.cert_file, t.key_file)
            except (ssl.SSLError, OSError) as exc:
                problem = f"cannot load the certificate and key: {_ssl_reason(exc)}"
        if problem is not None:
            errors.append(f"tls.cert_file: {problem}")
    hook = config.webhook
    if hook is not None and hook.ca_file is not None and (problem := _ca_problem(hook.ca_file)):
        errors.append(f"webhook.ca_file: {problem}")


def _file_problem(path: str) -> str | None:
    target = Path(path)
    if target.is_dir():
        return f"{path} is a directory, not a file"
    if not target.is_file():
        return f"no such file: {path}"
    if not os.access(target, os.R_OK):
        return f"{path} is not readable"
    return None


def _ca_problem(path: str) -> str | None:
    """Why ``path`` is not a CA bundle TLS can load (PEM certificates), or None."""
    problem = _file_problem(path)
    if problem is not None:
        return problem
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:
        return f"{path} holds no PEM certificate ({_ssl_reason(exc)})"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return None


def _ssl_reason(exc: OSError) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str):
        return reason.lower().replace("_", " ")
    return exc.strerror or str(exc)


def _writable_problem(path: str, *, create_folders: bool = False) -> str | None:
    """Why the daemon could not open ``path`` for writing (creating it, and with
    ``create_folders`` its missing folders, as the store does), or None."""
    target = Path(path)
    folder = target.parent
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    problem = None
    if target.is_dir():
        problem = f"{path} is a directory, not a file"
    elif existing != folder and not create_folders:
        problem = f"the folder {folder} does not exist"
    elif not existing.is_dir():
        problem = f"cannot create {path}: {existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"cannot create {path}: the folder {existing} is not writable"
    elif target.exists() and not os.access(target, os.R_OK | os.W_OK):
        problem = f"{path} is not writable"
    return problem


def _group_problem(group: str) -> str | None:
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return f"no such group {group!r}"
    # Only root may give a file to a group its user is not a member of (chown(2)).
    if os.geteuid() != 0 and gid != os.getegid() and gid not in os.getgroups():
        return f"this user is not a member of group {group!r}, so cannot give it the socket"
    return None


def startup_warnings(config: Config) -> list[str]:
    """What the daemon warns about at start: settings that weaken security on purpose."""
    warnings = []
    tls_servers = [s.name for s in config.servers if s.tls]
    if config.simulator.enabled and config.simulator.tls and not config.servers:
        tls_servers = ["the simulator's"]
    if tls_servers and not config.tls.verify:
        warnings.append(
            "[tls] verify = false: the certificates and host names of "
            f"{', '.join(tls_servers)} servers are not checked"
        )
    hook = config.webhook
    if hook is not None and not hook.verify and hook.url.startswith("https:"):
        warnings.append(
            "[webhook] verify = false: the certificate of the webhook server is not checked"
        )
    return warnings


def _check_simulator_ports(config: Config, errors: list[str]) -> None:
    """In simulator mode, configured servers must point at the simulator's fixed ports."""
    sim = config.simulator
    if not sim.enabled or not (sim.plain_ports or sim.tls_ports):
        return
    for index, server in enumerate(config.servers):
        ports = sim.tls_ports if server.tls else sim.plain_ports
        if server.port not in ports:
            key = "tls_ports" if server.tls else "plain_ports"
            errors.append(
                f"servers[{index}].port: {server.port} is not a simulator port "
                f"(simulator.{key} = {list(ports)})"
            )


def _gateway(t: _Table, environ: Mapping[str, str], *, simulator: bool) -> GatewayConfig:
    system_id = t.opt_text("system_id", required=not simulator) or "smppgw"
    if len(system_id) > 15:  # system_id is a C-Octet String of at most 16 octets (5.2.1)
        t.error("system_id", f"at most 15 characters, got {len(system_id)}")
    password, source = t.secret("password", environ, required=not simulator)
    if password is None:
        password, source = SIMULATOR_PASSWORD, "simulator default"
    else:
        key = "password_env" if (source or "").startswith("env") else "password_file"
        if len(password) > 8:  # password is a C-Octet String of at most 9 octets (5.2.2)
            t.error(key, f"the password must be at most 8 characters, got {len(password)}")
        if not _is_latin1(password):
            # The codec writes C-Octet Strings as Latin-1 octets; the bind could not be sent.
            t.error(key, "the password must be Latin-1 text (octets on the wire)")
    system_type = t.text("system_type", "smpp")
    if len(system_type) > 12:
        t.error("system_type", f"at most 12 characters, got {len(system_type)}")
    _check_octets(t, system_id=system_id, system_type=system_type)
    reconnect_min = t.positive("reconnect_min", 1.0)
    reconnect_max = t.positive("reconnect_max", 60.0)
    if reconnect_max < reconnect_min:
        t.error("reconnect_max", f"must be >= reconnect_min ({reconnect_min:g})")
    throttle = t.positive("throttle_backoff", 1.0)
    throttle_max = t.positive("throttle_backoff_max", 60.0)
    if throttle_max < throttle:
        t.error("throttle_backoff_max", f"must be >= throttle_backoff ({throttle:g})")
    config = GatewayConfig(
        system_id=system_id,
        password=password,
        password_source=source or "",
        system_type=system_type,
        window=t.integer("window", 10, 1, 1000),
        inbound_window=t.integer("inbound_window", 64, 1, 10000),
        response_timeout=t.positive("response_timeout", 30.0),
        connect_timeout=t.positive("connect_timeout", 10.0),
        bind_timeout=t.positive("bind_timeout", 10.0),
        enquire_link_interval=t.positive("enquire_link_interval", 60.0),
        idle_timeout=t.positive("idle_timeout", 300.0),
        reconnect_min=reconnect_min,
        reconnect_max=reconnect_max,
        throttle_backoff=throttle,
        throttle_backoff_max=throttle_max,
        retry_delay=t.number("retry_delay", 5.0, 0),
        max_attempts=t.integer("max_attempts", 10, 1, 1000),
    )
    if config.idle_timeout <= config.enquire_link_interval:
        t.error("idle_timeout", "must be longer than enquire_link_interval")
    t.done()
    return config


def _check_octets(t: _Table, **values: str) -> None:
    for name, value in values.items():
        if not _is_latin1(value):
            t.error(name, f"must be Latin-1 text (octets on the wire), got {value!r}")


def _is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _servers(root: _Table, *, simulator: bool) -> tuple[ServerConfig, ...]:
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
        binds = t.integer("binds", 3, 0, 100)
        bind_types: tuple[str, ...] = ("trx",)
        raw = t.raw("bind_type")
        if isinstance(raw, str):
            bind_types = (raw,)
        elif isinstance(raw, list) and all(isinstance(v, str) for v in raw):
            bind_types = tuple(raw)
            if len(bind_types) != binds:
                t.error("bind_type", f"lists {len(bind_types)} types for {binds} binds")
        elif raw is not None:
            t.error("bind_type", f"expected a string or a list of strings, got {_show(raw)}")
        for bind_type in bind_types:
            if bind_type not in BIND_TYPES:
                t.error("bind_type", f"must be tx, rx or trx, got {bind_type!r}")
        servers.append(
            ServerConfig(
                name=name,
                host=t.opt_text("host", required=True) or "",
                port=t.integer("port", 0, 1, 65535) if t.has("port") else _required(t, "port"),
                tls=t.flag("tls", default=False),
                binds=binds,
                bind_types=bind_types,
                rate=t.number("rate", 50.0, 0),
                burst=t.integer("burst", 1, 1, 1000),
            )
        )
        t.done()
    return tuple(servers)


def _required(t: _Table, name: str) -> int:
    t.error(name, "required")
    return 0


def _tls(t: _Table) -> TlsConfig:
    config = TlsConfig(
        ca_file=t.opt_path("ca_file"),
        cert_file=t.opt_path("cert_file"),
        key_file=t.opt_path("key_file"),
        server_name=t.opt_text("server_name"),
        verify=t.flag("verify", default=True),
        min_version=t.choice("min_version", "TLSv1.2", TLS_VERSIONS),
    )
    if (config.cert_file is None) != (config.key_file is None):
        t.error("cert_file", "cert_file and key_file go together")
    t.done()
    return config


def _store(t: _Table) -> StoreConfig:
    backend = t.text("backend", "sqlite")
    if backend != "sqlite":
        # One daemon per account, with its embedded store: a shared (Redis) store for several
        # daemons on one account is not part of this version.
        t.error("backend", f"only 'sqlite' is supported, got {backend!r}")
        backend = "sqlite"
    config = StoreConfig(
        backend=backend,
        path=t.path("path", "var/smppgw.db"),
        synchronous=t.choice("synchronous", "full", ("full", "normal")),
        retention_days=t.positive("retention_days", 7.0),
    )
    t.done()
    return config


def _intake(t: _Table) -> IntakeConfig:
    config = IntakeConfig(
        path=t.path("path", "/run/smppgw/smppgw.sock"),
        mode=t.integer("mode", 0o660, 0, 0o777),
        group=t.opt_text("group"),
        max_line=t.integer("max_line", 65536, 1024, 16 * 1024 * 1024),
        max_batch=t.integer("max_batch", 1000, 1, 100_000),
        max_pending=t.integer("max_pending", 10000, 1, 10_000_000),
        max_clients=t.integer("max_clients", 256, 1, 100_000),
        line_timeout=t.number("line_timeout", 30.0, 0.1, 86400),
        max_connection_buffer=t.integer(
            "max_connection_buffer", 1024 * 1024, 64 * 1024, 1024 * 1024 * 1024
        ),
    )
    # sockaddr_un.sun_path holds 108 bytes including the NUL (unix(7)).
    if len(os.fsencode(config.path)) > 107:
        t.error("path", f"a Unix socket path has at most 107 bytes, got {len(config.path)}")
    t.done()
    return config


def _defaults(t: _Table) -> DefaultsConfig:
    config = DefaultsConfig(
        sender=t.opt_text("sender"),
        pe_id=t.opt_text("pe_id"),
        template_id=t.opt_text("template_id"),
        tm_id=t.opt_text("tm_id"),
        registered_delivery=t.flag("registered_delivery", default=True),
        max_parts=t.integer("max_parts", 10, 1, 255),
        transliterate=t.flag("transliterate", default=False),
    )
    for name in ("pe_id", "template_id", "tm_id"):
        value = getattr(config, name)
        if value is not None and not value.isdigit():
            t.error(name, f"must be digits only, got {value!r}")
    if config.sender is not None:
        from smppgw.esme.numbers import NumberError, validate_sender  # noqa: PLC0415

        try:
            validate_sender(config.sender, field=t.key("sender"))
        except NumberError as exc:
            t.error("sender", exc.problem)
    t.done()
    return config


def _webhook(root: _Table, environ: Mapping[str, str]) -> WebhookConfig | None:
    if not root.has("webhook"):
        return None
    t = root.table("webhook")
    url = t.opt_text("url", required=True) or "http://invalid"
    secret, source = t.secret("secret", environ, required=False)
    config = WebhookConfig(
        url=url,
        secret=secret,
        secret_source=source,
        timeout=t.positive("timeout", 3.0),
        max_attempts=t.integer("max_attempts", 10, 1, 100),
        concurrency=t.integer("concurrency", 32, 1, 1000),
        ca_file=t.opt_path("ca_file"),
        verify=t.flag("verify", default=True),
    )
    try:
        WebhookSettings(url=url)
    except WebhookError as exc:
        t.error("url", str(exc))
    t.done()
    return config


def _metrics(t: _Table) -> MetricsConfig:
    enabled = t.flag("enabled", default=True)
    address = t.text("address", "127.0.0.1:9108")
    host, sep, port_text = address.rpartition(":")
    host = host.strip("[]")
    port = int(port_text) if sep and port_text.isdigit() else -1
    if not 0 <= port <= 65535:
        t.error("address", f"expected host:port (e.g. 127.0.0.1:9108), got {address!r}")
        port = 9108
    t.done()
    return MetricsConfig(enabled=enabled, host=host or "0.0.0.0", port=port)  # noqa: S104


def _log(t: _Table) -> LogConfig:
    config = LogConfig(
        level=t.choice("level", "info", LOG_LEVELS),
        format=t.choice("format", "text", ("text", "json")),
        file=t.opt_path("file"),
    )
    t.done()
    return config


def _status_key(text: str) -> int | None:
    if text in CommandStatus.__members__:
        return int(CommandStatus[text])
    try:
        return int(text, 0)
    except ValueError:
        return None


def _retry(t: _Table) -> RetryConfig:
    classes = {"throttled": StatusClass.THROTTLED, "transient": StatusClass.TRANSIENT}
    classes["permanent"] = StatusClass.PERMANENT
    overrides: dict[int, StatusClass] = {}
    status = t.table("status")
    for key in status.names():  # a free-form table: every key is a status
        value = status.choice(key, "transient", tuple(classes))
        code = _status_key(key)
        if code is None or not 0 < code <= 0xFFFFFFFF:
            status.error(key, "not a command_status name (ESME_...) or number (0x58)")
            continue
        overrides[code] = classes[value]
    policies = {p.value: p for p in UnknownPolicy}
    config = RetryConfig(
        status=overrides,
        unknown_policy=policies[t.choice("unknown_policy", "resubmit_once", tuple(policies))],
        unknown_status=classes[t.choice("unknown_status", "transient", tuple(classes))],
    )
    t.done()
    return config


def _receipts(t: _Table) -> ReceiptsConfig:
    config = ReceiptsConfig(
        query_after=t.number("query_after", 1800.0, 0),
        query_interval=t.positive("query_interval", 3600.0),
        max_queries=t.integer("max_queries", 3, 1, 100),
        query_rate=t.positive("query_rate", 1.0),
    )
    t.done()
    return config


def _simulator(t: _Table) -> SimulatorConfig:
    dlr_delay = (0.05, 0.5)
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
        t.error("seed", f"expected an integer, got {_show(seed_raw)}")
    config = SimulatorConfig(
        enabled=t.flag("enabled", default=False),
        host=t.text("host", "127.0.0.1"),
        servers=t.integer("servers", 2, 1, 16),
        plain_ports=t.int_list("plain_ports", 0, 65535),
        tls=t.flag("tls", default=False),
        tls_ports=t.int_list("tls_ports", 0, 65535),
        message_id_format=cast(
            'Literal["decimal", "hex", "uuid"]',
            t.choice("message_id_format", "hex", ("decimal", "hex", "uuid")),
        ),
        dlr_delay=dlr_delay,
        max_binds_per_server=t.integer("max_binds_per_server", 3, 1, 100),
        rate_per_server=t.number("rate_per_server", 50.0, 0),
        seed=seed,
        mo_rate=t.number("mo_rate", 0.0, 0),
        mo_long_share=t.number("mo_long_share", 0.0, 0, 1),
        mo_ucs2_share=t.number("mo_ucs2_share", 0.0, 0, 1),
        mo_destination=t.text("mo_destination", "12345"),
        drop_receipts=t.number("drop_receipts", 0.0, 0, 1),
    )
    # destination_addr of deliver_sm is a C-Octet String of at most 21 octets (SMPP v3.4 4.6.1).
    if len(config.mo_destination) > 20:
        t.error("mo_destination", f"at most 20 characters, got {len(config.mo_destination)}")
    for name in ("plain_ports", "tls_ports"):
        ports = getattr(config, name)
        if ports and len(ports) != config.servers:
            t.error(name, f"lists {len(ports)} ports for {config.servers} servers")
    t.done()
    return config


# --- builders -----------------------------------------------------------------------------


def secrets(config: Config) -> tuple[str, ...]:
    """Every secret value in ``config`` (for log redaction)."""
    values = [config.gateway.password]
    if config.webhook is not None and config.webhook.secret:
        values.append(config.webhook.secret)
    return tuple(v for v in values if v)


def intake_settings(config: Config) -> IntakeSettings:
    """The intake server's settings."""
    i, d = config.intake, config.defaults
    return IntakeSettings(
        path=i.path,
        mode=i.mode,
        group=i.group,
        max_line=i.max_line,
        max_batch=i.max_batch,
        max_pending=i.max_pending,
        max_clients=i.max_clients,
        line_timeout=i.line_timeout,
        max_connection_buffer=i.max_connection_buffer,
        defaults=IntakeDefaults(
            sender=d.sender,
            pe_id=d.pe_id,
            template_id=d.template_id,
            tm_id=d.tm_id,
            registered_delivery=d.registered_delivery,
            max_parts=d.max_parts,
            transliterate=d.transliterate,
        ),
    )


def webhook_settings(config: Config) -> WebhookSettings | None:
    """The webhook sender's settings, or None when no webhook is configured."""
    w = config.webhook
    if w is None:
        return None
    return WebhookSettings(
        url=w.url,
        secret=w.secret,
        timeout=w.timeout,
        max_attempts=w.max_attempts,
        concurrency=w.concurrency,
        ca_file=w.ca_file,
        verify=w.verify,
    )


def servers_from_simulator(
    config: Config, servers: Sequence[tuple[str, str, int | None, int | None]]
) -> tuple[ServerConfig, ...]:
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
            ServerConfig(
                name=name,
                host=host,
                port=port,
                tls=use_tls,
                binds=sim.max_binds_per_server,
                rate=sim.rate_per_server,
            )
        )
    return tuple(result)


def bind_manager_settings(
    config: Config,
    servers: Sequence[ServerConfig] | None = None,
    *,
    ca_file: str | None = None,
) -> BindManagerSettings:
    """The bind manager's settings.

    Args:
        config: the configuration.
        servers: servers to use instead of ``config.servers`` (simulator mode).
        ca_file: a CA bundle to use instead of ``[tls] ca_file`` (the simulator's CA).
    """
    from smppgw.esme.binds import BindManagerSettings, ServerSettings  # noqa: PLC0415
    from smppgw.esme.session import BindType, TlsSettings  # noqa: PLC0415

    g, t = config.gateway, config.tls
    kinds = {"tx": BindType.TRANSMITTER, "rx": BindType.RECEIVER, "trx": BindType.TRANSCEIVER}
    built = []
    for s in servers if servers is not None else config.servers:
        tls = None
        if s.tls:
            tls = TlsSettings(
                ca_file=ca_file if ca_file is not None else t.ca_file,
                cert_file=t.cert_file,
                key_file=t.key_file,
                server_name=t.server_name,
                verify=t.verify,
                minimum_version=t.min_version,
            )
        bind_type = (
            kinds[s.bind_types[0]]
            if len(s.bind_types) == 1
            else tuple(kinds[b] for b in s.bind_types)
        )
        built.append(
            ServerSettings(
                name=s.name,
                host=s.host,
                port=s.port,
                tls=tls,
                binds=s.binds,
                bind_type=bind_type,
                rate=s.rate,
                burst=s.burst,
            )
        )
    return BindManagerSettings(
        servers=tuple(built),
        system_id=g.system_id,
        password=g.password,
        system_type=g.system_type,
        window=g.window,
        inbound_window=g.inbound_window,
        response_timeout=g.response_timeout,
        enquire_link_interval=g.enquire_link_interval,
        idle_timeout=g.idle_timeout,
        connect_timeout=g.connect_timeout,
        bind_timeout=g.bind_timeout,
        reconnect_min=g.reconnect_min,
        reconnect_max=g.reconnect_max,
        throttle_backoff=g.throttle_backoff,
        throttle_backoff_max=g.throttle_backoff_max,
        retry_delay=g.retry_delay,
        max_attempts=g.max_attempts,
        unknown_policy=config.retry.unknown_policy,
        status_overrides=dict(config.retry.status),
        unknown_status=config.retry.unknown_status,
    )


def recovery_settings(config: Config) -> RecoverySettings:
    """When overdue receipts are asked for with query_sm."""
    from smppgw.gateway.recovery import RecoverySettings  # noqa: PLC0415

    r = config.receipts
    return RecoverySettings(
        query_after=r.query_after,
        query_interval=r.query_interval,
        max_queries=r.max_queries,
        query_rate=r.query_rate,
    )


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


def summary(config: Config) -> str:
    """A human-readable summary without secret values (``smppgw check-config``)."""
    g = config.gateway
    lines = [
        f"config: {config.source or '(inline)'}",
        (
            f"gateway: system_id={g.system_id} password from {g.password_source} "
            f"system_type={g.system_type} window={g.window} "
            f"enquire_link_interval={g.enquire_link_interval:g}s "
            f"response_timeout={g.response_timeout:g}s"
        ),
    ]
    if config.servers:
        for s in config.servers:
            types = "/".join(s.bind_types)
            rate = "unlimited" if s.rate == 0 else f"{s.rate:g} msg/s"
            lines.append(
                f"server {s.name}: {s.host}:{s.port} {'tls' if s.tls else 'plain'} "
                f"{s.binds} x {types}, {rate}"
            )
    else:
        lines.append("servers: taken from the built-in simulator")
    if any(s.tls for s in config.servers):
        t = config.tls
        lines.append(
            f"tls: min_version={t.min_version} verify={t.verify} ca_file={t.ca_file or '(system)'}"
        )
    st = config.store
    where = st.path
    lines.append(
        f"store: {st.backend} {where} synchronous={st.synchronous} "
        f"retention={st.retention_days:g} days"
    )
    i = config.intake
    lines.append(f"intake: {i.path} mode={i.mode:04o} group={i.group or '-'} max_line={i.max_line}")
    d = config.defaults
    lines.append(
        f"defaults: sender={d.sender or '-'} pe_id={d.pe_id or '-'} "
        f"template_id={d.template_id or '-'} tm_id={d.tm_id or '-'} "
        f"registered_delivery={d.registered_delivery} max_parts={d.max_parts} "
        f"transliterate={d.transliterate}"
    )
    if config.webhook is None:
        lines.append("webhook: off")
    else:
        signed = f"signed, secret from {config.webhook.secret_source}"
        lines.append(
            f"webhook: {_redact_url(config.webhook.url)} "
            f"({signed if config.webhook.secret else 'unsigned'})"
        )
    m = config.metrics
    lines.append(f"metrics: {'http://' + m.host + ':' + str(m.port) if m.enabled else 'off'}")
    lines.append(
        f"log: level={config.log.level} format={config.log.format} "
        f"file={config.log.file or 'stderr'}"
    )
    if config.retry.status:
        overrides = ", ".join(
            f"{CommandStatus(k).name}={v.value}" for k, v in sorted(config.retry.status.items())
        )
        lines.append(f"retry: unknown_policy={config.retry.unknown_policy.value} {overrides}")
    if config.simulator.enabled:
        sim = config.simulator
        lines.append(
            f"simulator: on, {sim.servers} servers on {sim.host} "
            f"ports={list(sim.plain_ports) or 'ephemeral'} tls={sim.tls}"
            + (f" mo_rate={sim.mo_rate:g}/s" if sim.mo_rate else "")
        )
    return "\n".join(lines)


def _redact_url(url: str) -> str:
    """The URL without userinfo (a password may hide there)."""
    from urllib.parse import urlsplit, urlunsplit  # noqa: PLC0415

    parts = urlsplit(url)
    if parts.username is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc="***@" + netloc))
