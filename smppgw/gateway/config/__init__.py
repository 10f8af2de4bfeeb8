"""Configuration: one TOML file read into the settings of each layer, validated once at start.

Every problem is reported with the key that holds it (``servers[1].port: must be 1..65535, got
0``), all problems at once, and unknown keys are rejected by name, so a typo never silently
falls back to a default. Secrets (the SMPP password, the webhook secret) are never written in
the file: they come from an environment variable (``password_env``) or a file
(``password_file``), and neither ``repr`` nor :func:`summary` shows them.

There is no configuration model of its own: each TOML table fills the settings dataclass of
the layer it configures (:mod:`smppgw.gateway.config.sections` says which), whose fields carry
the defaults and limits (:mod:`smppgw.esme.settings`). Relative paths in a configuration file
are relative to the folder holding that file (:func:`resolve_path` is the rule). Files the
daemon will open are checked as it would open them (a CA bundle must be PEM, the store's
folder writable, the intake group must exist), so ``smppgw check-config`` refuses whatever
``smppgw run`` would.
"""

from smppgw.gateway.config.checks import startup_warnings
from smppgw.gateway.config.errors import SIMULATOR_PASSWORD, ConfigError
from smppgw.gateway.config.loader import (
    Config,
    bind_manager_settings,
    load_config,
    parse_config,
    secrets,
    servers_from_simulator,
    simulator_settings,
)
from smppgw.gateway.config.sections import LogSettings, MetricsSettings, SimulatorConfig
from smppgw.gateway.config.summary import summary
from smppgw.gateway.config.table import resolve_path

__all__ = [
    "SIMULATOR_PASSWORD",
    "Config",
    "ConfigError",
    "LogSettings",
    "MetricsSettings",
    "SimulatorConfig",
    "bind_manager_settings",
    "load_config",
    "parse_config",
    "resolve_path",
    "secrets",
    "servers_from_simulator",
    "simulator_settings",
    "startup_warnings",
    "summary",
]
