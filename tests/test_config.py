"""Configuration: TOML in, frozen dataclasses out, every problem named by its key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from smppgw.codec.constants import CommandStatus
from smppgw.esme.retry_policy import StatusClass, UnknownPolicy
from smppgw.esme.session import BindType
from smppgw.gateway.config import (
    SIMULATOR_PASSWORD,
    Config,
    ConfigError,
    bind_manager_settings,
    load_config,
    parse_config,
    secrets,
    servers_from_simulator,
    simulator_settings,
    summary,
)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
ENV = {"SMPPGW_PASSWORD": "pw-12345", "HOOK_SECRET": "hook-secret-value"}


def minimal(**sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "gateway": {"system_id": "acme", "password_env": "SMPPGW_PASSWORD"},
        "servers": [{"name": "smpp1", "host": "smpp1.example", "port": 3634}],
    }
    data.update(sections)
    return data


def errors_of(data: dict[str, Any], environ: dict[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ=ENV if environ is None else environ)
    return info.value.errors


# --- the shipped files --------------------------------------------------------------------


def test_the_provider_example_describes_both_servers() -> None:
    config = load_config(CONFIG_DIR / "smppgw.example.toml", environ=ENV)
    assert [(s.name, s.host, s.port, s.tls is not None) for s in config.servers] == [
        ("smpp1", "smpp1.txtsms.me", 3635, True),
        ("smpp2", "smpp2.txtsms.me", 3635, True),
    ]
    assert {(s.binds, s.rate, s.burst, s.bind_type) for s in config.servers} == {
        (3, 50.0, 1, BindType.TRANSCEIVER)
    }
    g = config.gateway
    assert (g.system_type, g.enquire_link_interval, g.idle_timeout) == ("smpp", 60.0, 300.0)
    assert g.password == "pw-12345"
    assert config.sources["gateway.password"] == "env SMPPGW_PASSWORD"
    assert config.tls.verify is True
    assert config.intake.mode == 0o660
    assert config.simulator.enabled is False


def test_the_local_config_runs_the_simulator_without_secrets() -> None:
    config = load_config(CONFIG_DIR / "local.toml", environ={})
    assert config.simulator.enabled is True
    assert config.simulator.plain_ports == (2775, 2776)
    assert [(s.host, s.port) for s in config.servers] == [("127.0.0.1", 2775), ("127.0.0.1", 2776)]
    assert config.gateway.password == SIMULATOR_PASSWORD
    # Relative to the file's folder: var/ under the repository root, wherever make runs it.
    assert config.intake.path == str(CONFIG_DIR.parent / "var" / "smppgw.sock")
    assert config.store.path == str(CONFIG_DIR.parent / "var" / "smppgw.db")
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9108)


def test_the_compose_config_points_at_the_simulator_service() -> None:
    config = load_config(CONFIG_DIR / "compose.toml", environ=ENV)
    assert {s.host for s in config.servers} == {"simulator"}
    assert (config.metrics.host, config.metrics.port) == ("0.0.0.0", 9108)


# --- errors name their key ----------------------------------------------------------------


def test_errors_name_the_key_and_the_problem() -> None:
    data = minimal()
    data["servers"].append({"name": "smpp2", "host": "h", "port": 0})
    assert errors_of(data) == ("servers[1].port: must be 1..65535, got 0",)


def test_unknown_keys_are_rejected_by_name() -> None:
    data = minimal(gatway={}, metrics={"adress": "x"})
    data["servers"][0]["hots"] = "typo"
    assert set(errors_of(data)) == {
        "servers[0].hots: unknown key",
        "metrics.adress: unknown key",
        "gatway: unknown key",
    }


def test_every_problem_is_reported_at_once() -> None:
    data = minimal(intake={"max_line": "big", "mode": 0o1777}, log={"level": "loud"})
    data["gateway"]["window"] = 0
    data["servers"][0]["rate"] = -5
    assert errors_of(data) == (
        "gateway.window: must be 1..1000, got 0",
        "servers[0].rate: must be >= 0, got -5",
        "intake.mode: must be 0..511, got 1023",
        "intake.max_line: expected an integer, got 'big'",
        "log.level: must be one of debug, info, warning, error, critical, got 'loud'",
    )


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"servers": []}, "servers: at least one [[servers]] entry is required"),
        ({"servers": {"name": "x"}}, "servers: expected an array of tables ([[servers]])"),
        ({"gateway": {"password_env": "SMPPGW_PASSWORD"}}, "gateway.system_id: required"),
        (
            {"gateway": {"system_id": "a" * 16, "password_env": "SMPPGW_PASSWORD"}},
            "gateway.system_id: at most 15 characters, got 16",
        ),
        (
            {"gateway": {"system_id": "a", "password_env": "SMPPGW_PASSWORD", "idle_timeout": 30}},
            "gateway.idle_timeout: must be longer than enquire_link_interval",
        ),
        (
            {"gateway": {"system_id": "a", "password_env": "SMPPGW_PASSWORD", "window": True}},
            "gateway.window: expected an integer, got True",
        ),
        (
            {
                "gateway": {
                    "system_id": "a",
                    "password_env": "SMPPGW_PASSWORD",
                    "reconnect_min": 9,
                    "reconnect_max": 2,
                }
            },
            "gateway.reconnect_max: must be >= reconnect_min (9)",
        ),
        (
            {"tls": {"min_version": "SSLv3"}},
            "tls.min_version: must be one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, got 'SSLv3'",
        ),
        (
            {"tls": {"cert_file": "/nonexistent/c.pem"}},
            "tls.cert_file: cert_file and key_file go together",
        ),
        (
            {"tls": {"ca_file": "/nonexistent/ca.pem"}},
            "tls.ca_file: no such file: /nonexistent/ca.pem",
        ),
        (
            {"store": {"backend": "redis"}},
            "store.backend: must be one of sqlite, postgres, got 'redis'",
        ),
        ({"store": {"retention_days": 0}}, "store.retention_days: must be > 0, got 0"),
        ({"intake": {"path": "/" + "d" * 120}}, "intake.path: a Unix socket path has at most 107"),
        ({"defaults": {"pe_id": "12ab"}}, "defaults.pe_id: must be digits only, got '12ab'"),
        ({"defaults": {"sender": "+14155550101"}}, "defaults.sender: must not start with '+'"),
        ({"defaults": {"max_parts": 300}}, "defaults.max_parts: must be 1..255, got 300"),
        (
            {"metrics": {"address": "localhost"}},
            "metrics.address: expected host:port (e.g. 127.0.0.1:9108), got 'localhost'",
        ),
        ({"webhook": {"secret_env": "HOOK_SECRET"}}, "webhook.url: required"),
        ({"webhook": {"url": "ftp://x/"}}, "webhook.url: webhook url must be http:// or https://"),
        (
            {"retry": {"unknown_policy": "sometimes"}},
            "retry.unknown_policy: must be one of resubmit_once, never, always, got 'sometimes'",
        ),
        (
            {"retry": {"status": {"ESME_RNOPE": "transient"}}},
            "retry.status.ESME_RNOPE: not a command_status name (ESME_...) or number (0x58)",
        ),
        (
            {"retry": {"status": {"0x58": "ignore"}}},
            "retry.status.0x58: must be one of throttled, transient, permanent, got 'ignore'",
        ),
        (
            {"simulator": {"dlr_delay": [2, 1]}},
            "simulator.dlr_delay: expected [min, max] seconds with 0 <= min <= max, got [2, 1]",
        ),
        (
            {"simulator": {"plain_ports": [1, 2, 3]}},
            "simulator.plain_ports: lists 3 ports for 2 servers",
        ),
        ({"simulator": "on"}, "simulator: expected a table, got 'on'"),
    ],
)
def test_invalid_values(change: dict[str, Any], error: str) -> None:
    found = errors_of(minimal(**change))
    assert any(e.startswith(error) for e in found), found


@pytest.mark.parametrize(
    ("server", "error"),
    [
        ({"host": "h", "port": 1}, "servers[0].name: required"),
        ({"name": "s", "port": 1}, "servers[0].host: required"),
        ({"name": "s", "host": "h"}, "servers[0].port: required"),
        (
            {"name": "s", "host": "h", "port": 1, "bind_type": "both"},
            "servers[0].bind_type: must be tx, rx or trx, got 'both'",
        ),
        (
            {"name": "s", "host": "h", "port": 1, "binds": 2, "bind_type": ["tx", "rx", "trx"]},
            "servers[0].bind_type: lists 3 types for 2 binds",
        ),
        (
            {"name": "s", "host": "h", "port": 1, "tls": "yes"},
            "servers[0].tls: expected true or false, got 'yes'",
        ),
        ({"name": "s", "host": "h", "port": 1, "burst": 0}, "servers[0].burst: must be 1..1000"),
    ],
)
def test_invalid_servers(server: dict[str, Any], error: str) -> None:
    found = errors_of(minimal(servers=[server]))
    assert any(e.startswith(error) for e in found), found


def test_duplicate_server_names_are_refused() -> None:
    server = {"name": "smpp1", "host": "h", "port": 1}
    assert errors_of(minimal(servers=[server, server])) == (
        "servers[1].name: duplicate server name 'smpp1'",
    )


def test_a_server_outside_the_simulator_ports_is_refused() -> None:
    data = minimal(simulator={"enabled": True, "plain_ports": [2775, 2776]})
    data["servers"][0]["port"] = 2777
    assert errors_of(data) == (
        "servers[0].port: 2777 is not a simulator port (simulator.plain_ports = [2775, 2776])",
    )


def test_the_file_name_leads_the_message(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[gateway]\nsystem_id = "x"\n[[servers]]\nname = "a"\nhost = "h"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value).startswith(f"{path}: invalid configuration:\n  ")
    assert "servers[0].port: required" in info.value.errors


def test_toml_syntax_errors_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[gateway\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read the file: No such file"):
        load_config(tmp_path / "missing.toml")


# --- secrets ------------------------------------------------------------------------------


def test_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("fromfile\n")
    config = parse_config(
        minimal(gateway={"system_id": "acme", "password_file": str(secret)}), environ={}
    )
    assert config.gateway.password == "fromfile"
    assert config.sources["gateway.password"] == f"file {secret}"


@pytest.mark.parametrize(
    ("gateway", "environ", "error"),
    [
        (
            {"password_env": "NOPE"},
            {},
            "gateway.password_env: environment variable NOPE is not set",
        ),
        ({"password_env": "EMPTY"}, {"EMPTY": ""}, "gateway.password_env: environment variable"),
        ({"password_file": "/nonexistent/pw"}, {}, "gateway.password_file: cannot read"),
        ({}, {}, "gateway.password_env: required: set password_env or password_file"),
        ({"password": "inline"}, {}, "gateway.password: secrets are not written in the file"),
        (
            {"password_env": "A", "password_file": "/x"},
            {"A": "x"},
            "gateway.password_env: give one of password_env and password_file",
        ),
        (
            {"password_env": "LONG"},
            {"LONG": "123456789"},
            "gateway.password_env: the password must be at most 8 characters, got 9",
        ),
    ],
)
def test_password_problems(gateway: dict[str, str], environ: dict[str, str], error: str) -> None:
    found = errors_of(minimal(gateway={"system_id": "acme", **gateway}), environ)
    assert any(e.startswith(error) for e in found), found


def test_secrets_never_appear_in_repr_or_summary() -> None:
    config = parse_config(
        minimal(webhook={"url": "https://u:urlpass@hooks.example/x", "secret_env": "HOOK_SECRET"}),
        environ=ENV,
    )
    assert config.webhook is not None
    assert config.webhook.secret == "hook-secret-value"
    for text in (repr(config), summary(config)):
        assert "pw-12345" not in text
        assert "hook-secret-value" not in text
    assert "urlpass" not in summary(config)
    assert "password from env SMPPGW_PASSWORD" in summary(config)
    assert "signed, secret from env HOOK_SECRET" in summary(config)
    assert set(secrets(config)) == {"pw-12345", "hook-secret-value"}


# --- values -------------------------------------------------------------------------------


def test_defaults_of_an_almost_empty_config() -> None:
    config = parse_config(minimal(), environ=ENV)
    assert config == Config(
        gateway=config.gateway,
        servers=config.servers,
        sources=config.sources,
        source="",
    )
    g = config.gateway
    assert (g.window, g.response_timeout, g.max_attempts) == (10, 30.0, 10)
    assert config.servers[0].binds == 3
    assert config.intake.path == "/run/smppgw/smppgw.sock"
    assert config.store.synchronous == "full"
    assert config.webhook is None


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("127.0.0.1:9108", "127.0.0.1", 9108),
        ("[::1]:9200", "::1", 9200),
        (":9300", "0.0.0.0", 9300),
    ],
)
def test_metrics_address(address: str, host: str, port: int) -> None:
    config = parse_config(minimal(metrics={"address": address}), environ=ENV)
    assert (config.metrics.host, config.metrics.port) == (host, port)


def test_retry_overrides_by_name_and_number() -> None:
    config = parse_config(
        minimal(
            retry={
                "unknown_policy": "never",
                "status": {
                    "ESME_RSUBMITFAIL": "permanent",
                    "0x458": "transient",
                    "88": "throttled",
                },
            }
        ),
        environ=ENV,
    )
    assert config.gateway.unknown_policy is UnknownPolicy.NEVER
    assert config.gateway.status_overrides == {
        CommandStatus.ESME_RSUBMITFAIL: StatusClass.PERMANENT,
        0x458: StatusClass.TRANSIENT,
        88: StatusClass.THROTTLED,
    }


# --- builders -----------------------------------------------------------------------------


def test_intake_settings_carry_the_defaults() -> None:
    config = parse_config(
        minimal(
            intake={"path": "/run/app/x.sock", "mode": 0o600, "max_line": 4096},
            defaults={"sender": "ACME", "tm_id": "17", "registered_delivery": False},
        ),
        environ=ENV,
    )
    settings = config.intake
    assert (settings.path, settings.mode, settings.max_line) == ("/run/app/x.sock", 0o600, 4096)
    assert settings.defaults.sender == "ACME"
    assert settings.defaults.tm_id == "17"
    assert settings.defaults.registered_delivery is False


def test_webhook_settings() -> None:
    config = parse_config(
        minimal(webhook={"url": "https://h/x", "secret_env": "HOOK_SECRET", "timeout": 2}),
        environ=ENV,
    )
    settings = config.webhook
    assert settings is not None
    assert (settings.url, settings.secret, settings.timeout) == (
        "https://h/x",
        "hook-secret-value",
        2,
    )
    assert parse_config(minimal(), environ=ENV).webhook is None


def test_bind_manager_settings() -> None:
    session = pytest.importorskip("smppgw.esme.session")
    config = load_config(CONFIG_DIR / "smppgw.example.toml", environ=ENV)
    settings = bind_manager_settings(config)
    assert settings.system_id == "your-system-id"
    assert settings.password == "pw-12345"
    assert "pw-12345" not in repr(settings)
    first = settings.servers[0]
    assert (first.name, first.host, first.port, first.binds, first.rate) == (
        "smpp1",
        "smpp1.txtsms.me",
        3635,
        3,
        50.0,
    )
    assert first.bind_type is session.BindType.TRANSCEIVER
    assert first.tls is not None
    assert first.tls.verify is True
    assert first.tls.minimum_version == "TLSv1.2"
    assert settings.enquire_link_interval == 60.0
    assert settings.idle_timeout == config.gateway.idle_timeout


def test_servers_from_a_simulator() -> None:
    config = parse_config(
        {"gateway": {}, "simulator": {"enabled": True, "rate_per_server": 20}}, environ={}
    )
    assert config.servers == ()
    servers = servers_from_simulator(config, [("smpp1", "127.0.0.1", 40001, None)])
    assert [(s.name, s.host, s.port, s.tls is not None, s.rate) for s in servers] == [
        ("smpp1", "127.0.0.1", 40001, False, 20.0)
    ]
    with pytest.raises(ConfigError, match="has no usable port"):
        servers_from_simulator(config, [("smpp1", "127.0.0.1", None, None)])


def test_simulator_settings_use_the_gateway_account() -> None:
    config = load_config(CONFIG_DIR / "local.toml", environ={})
    settings = simulator_settings(config)
    assert settings.plain_ports == (2775, 2776)
    (account,) = settings.accounts
    assert (account.system_id, account.password) == ("smppgw", SIMULATOR_PASSWORD)


def test_example_files_are_valid_toml() -> None:
    for path in CONFIG_DIR.glob("*.toml"):
        with path.open("rb") as file:
            assert isinstance(tomllib.load(file), dict)


# --- simulator MO keys --------------------------------------------------------------------


def test_simulator_mo_keys_reach_the_simulator_settings() -> None:
    data = {
        "gateway": {},
        "simulator": {
            "enabled": True,
            "mo_rate": 2.5,
            "mo_long_share": 0.25,
            "mo_ucs2_share": 1,
            "mo_destination": "56789",
        },
    }
    config = parse_config(data, environ={})
    mo = simulator_settings(config).mo
    assert (mo.rate, mo.long_share, mo.ucs2_share, mo.destination) == (2.5, 0.25, 1.0, "56789")
    assert "mo_rate=2.5/s" in summary(config)


def test_simulator_mo_is_off_by_default() -> None:
    config = load_config(CONFIG_DIR / "local.toml", environ={})
    mo = simulator_settings(config).mo
    assert (mo.rate, mo.long_share, mo.ucs2_share, mo.destination) == (0.0, 0.0, 0.0, "12345")
    assert "mo_rate" not in summary(config)


@pytest.mark.parametrize(
    ("simulator", "error"),
    [
        ({"mo_rate": -1}, "simulator.mo_rate: must be >= 0, got -1"),
        ({"mo_rate": float("inf")}, "simulator.mo_rate: must be a finite number, got inf"),
        ({"mo_rate": "fast"}, "simulator.mo_rate: expected a number, got 'fast'"),
        ({"mo_long_share": 1.5}, "simulator.mo_long_share: must be 0..1, got 1.5"),
        ({"mo_ucs2_share": -0.1}, "simulator.mo_ucs2_share: must be 0..1, got -0.1"),
        ({"mo_ucs2_share": True}, "simulator.mo_ucs2_share: expected a number, got True"),
        ({"mo_destination": ""}, "simulator.mo_destination: must not be empty"),
        ({"mo_destination": 12345}, "simulator.mo_destination: expected a string, got 12345"),
        ({"mo_destination": "1" * 21}, "simulator.mo_destination: at most 20 characters, got 21"),
        ({"mo_sender": "1"}, "simulator.mo_sender: unknown key"),
    ],
)
def test_invalid_simulator_mo_keys(simulator: dict[str, Any], error: str) -> None:
    found = errors_of(minimal(simulator=simulator))
    assert any(e.startswith(error) for e in found), found


def uncommented(name: str) -> dict[str, Any]:
    """A shipped file with its commented-out keys and tables (``# key = value``) switched on."""
    lines = []
    for line in (CONFIG_DIR / name).read_text().splitlines():
        match = re.fullmatch(r"# ?((?:\[\w+\])|(?:\"?[\w.]+\"? = .*))", line)
        lines.append(match[1] if match else line)
    return tomllib.loads("\n".join(lines))


def test_every_key_shown_in_the_shipped_files_is_known() -> None:
    data = uncommented("smppgw.example.toml")
    assert "webhook" in data
    # Both secret sources at once and example file paths are errors, but no key is unknown.
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ=ENV | {"SMPPGW_WEBHOOK_SECRET": "s"})
    assert [e for e in info.value.errors if "unknown key" in e] == []
    assert parse_config(uncommented("local.toml"), environ={}).simulator.enabled


def test_every_key_in_the_shipped_files_has_a_comment() -> None:
    for name in ("smppgw.example.toml", "local.toml"):
        previous = ""
        seen: set[str] = set()
        for line in (CONFIG_DIR / name).read_text().splitlines():
            key = re.match(r"(\w+) = ", line)
            # A key is explained on its line, on the comment line above, or at its first use.
            if key and key[1] not in seen:
                assert "#" in line or previous.startswith("#"), f"{name}: {line}"
                seen.add(key[1])
            previous = line
