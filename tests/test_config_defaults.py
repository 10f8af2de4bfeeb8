"""Every default is written once, on its settings field, and README's tables say the same.

The configuration has no defaults of its own: a key left out takes the default of the settings
field it fills (or the one deliberate difference in ``GATEWAY_DEFAULTS``). These tests read
README's configuration tables and hold each documented default to that field, so a default
changed in one place and not the other fails here.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from smppgw.esme.binds import BindManagerSettings, ServerSettings
from smppgw.esme.session import SessionSettings
from smppgw.esme.settings import default_of
from smppgw.esme.tls import TlsSettings
from smppgw.gateway.config import LogSettings, SimulatorConfig, parse_config
from smppgw.gateway.config.sections import SECTIONS, MetricsSettings, file_defaults
from smppgw.gateway.intake import IntakeSettings
from smppgw.gateway.recovery import RecoverySettings
from smppgw.gateway.store import StoreSettings
from smppgw.testing.simulator import Account, FaultSettings, MoSettings, SimulatorSettings

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_defaults() -> dict[tuple[str, str], str]:
    """(table, key) -> the default column of README's configuration tables."""
    rows: dict[tuple[str, str], str] = {}
    table = None
    for line in README.read_text(encoding="utf-8").splitlines():
        if heading := re.match(r"### `\[\[?([\w.]+)\]\]?`", line):
            table = heading[1]
            continue
        if line.startswith("## "):
            table = None
        if table is None or not line.startswith("| `"):
            continue
        key_cell, default_cell = (c.strip() for c in line.strip("|").split("|")[:2])
        keys = [k.strip().strip("`") for k in key_cell.split(",")]
        values = [v.strip() for v in default_cell.split(",")]
        if len(values) != len(keys):  # one default for all (`cert_file`, `key_file` | none)
            values = [default_cell] * len(keys)
        for key, value in zip(keys, values, strict=True):
            rows[table, key] = value.strip("`")
    return rows


def literal(text: str) -> Any:
    """The TOML value ``text`` is, or None when it is prose (``required``, ``none``...)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return None


@pytest.mark.parametrize("table", sorted(SECTIONS))
def test_readme_documents_each_key_with_the_default_of_its_settings_field(table: str) -> None:
    documented = readme_defaults()
    for key, default in file_defaults(SECTIONS[table]).items():
        assert (table, key) in documented, f"README has no row for [{table}] {key}"
        value = literal(documented[table, key])
        if value is None:  # prose: required, none, ephemeral, system trust store...
            assert default in (dataclasses.MISSING, None, ()), (table, key, default)
        else:
            expected = tuple(value) if isinstance(value, list) else value
            assert expected == default, f"[{table}] {key}: README {value!r}, code {default!r}"


def test_readme_documents_the_retry_and_metrics_defaults() -> None:
    documented = readme_defaults()
    settings = dataclasses.fields(BindManagerSettings)
    default = {f.name: f.default for f in settings}
    assert literal(documented["retry", "unknown_policy"]) == default["unknown_policy"].value
    assert literal(documented["retry", "unknown_status"]) == default["unknown_status"].value
    metrics = MetricsSettings()
    assert literal(documented["metrics", "address"]) == f"{metrics.host}:{metrics.port}"
    assert literal(documented["metrics", "enabled"]) is metrics.enabled


def test_a_key_left_out_takes_the_default_of_its_settings_field() -> None:
    config = parse_config(
        {
            "gateway": {"system_id": "acme", "password_env": "PW"},
            "servers": [{"name": "a", "host": "h", "port": 1}],
        },
        environ={"PW": "pw"},
    )
    server = ServerSettings(name="a", host="h", port=1)
    assert config.servers == (server,)
    assert config.gateway == BindManagerSettings(servers=(server,), system_id="acme", password="pw")
    assert config.tls == TlsSettings(minimum_version="TLSv1.2")  # GATEWAY_DEFAULTS
    assert config.store == StoreSettings()
    assert config.intake == IntakeSettings()
    assert config.log == LogSettings()
    assert config.metrics == MetricsSettings()
    assert config.receipts == RecoverySettings()
    assert config.simulator == SimulatorConfig()
    assert config.webhook is None


# Fields whose value is handed on to another layer's settings field, which owns the default.
HANDED_ON: dict[tuple[str, str], dict[str, tuple[type[Any], str]]] = {
    ("esme/bind_settings.py", "BindManagerSettings"): {
        name: (SessionSettings, name)
        for name in (
            "system_type",
            "window",
            "response_timeout",
            "enquire_link_interval",
            "idle_timeout",
            "connect_timeout",
            "bind_timeout",
            "inbound_window",
        )
    },
    ("esme/bind_settings.py", "ServerSettings"): {"bind_type": (SessionSettings, "bind_type")},
    ("gateway/config/sections.py", "SimulatorConfig"): {
        **{
            name: (SimulatorSettings, name)
            for name in (
                "host",
                "servers",
                "plain_ports",
                "tls_ports",
                "message_id_format",
                "dlr_delay",
                "seed",
            )
        },
        "max_binds_per_server": (Account, "max_binds_per_server"),
        "rate_per_server": (Account, "rate_per_server"),
        "mo_rate": (MoSettings, "rate"),
        "mo_long_share": (MoSettings, "long_share"),
        "mo_ucs2_share": (MoSettings, "ucs2_share"),
        "mo_destination": (MoSettings, "destination"),
        "drop_receipts": (FaultSettings, "drop_receipts"),
    },
}
CLASSES: dict[str, type[Any]] = {
    "BindManagerSettings": BindManagerSettings,
    "ServerSettings": ServerSettings,
    "SimulatorConfig": SimulatorConfig,
}
PACKAGE = Path(__file__).resolve().parent.parent / "smppgw"


def default_sources(path: str, name: str) -> dict[str, str]:
    """Field -> the source text of its default, in class ``name`` of ``path``."""
    source = (PACKAGE / path).read_text(encoding="utf-8")
    (cls,) = (
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef) and node.name == name
    )
    return {
        node.target.id: ast.unparse(node.value)
        for node in cls.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.value is not None
    }


@pytest.mark.parametrize(("path", "name"), sorted(HANDED_ON))
def test_a_value_handed_on_to_another_layer_takes_that_layers_default(path: str, name: str) -> None:
    """The bind manager's window, timeouts and system_type were written both on
    BindManagerSettings and on the SessionSettings it builds for each bind (and the [simulator]
    defaults in the configuration and in the simulator): a second copy of a default that the
    two could disagree on. Each now reads the owner's default with ``default_of``."""
    sources = default_sources(path, name)
    for field, (owner, owner_field) in HANDED_ON[path, name].items():
        assert f"default_of({owner.__name__}, '{owner_field}')" in sources[field], (
            f"{name}.{field} writes its own default: {sources[field]}"
        )
        assert default_of(CLASSES[name], field) == default_of(owner, owner_field)


def test_a_default_path_is_written_in_one_module() -> None:
    """The command line had its own copy of the intake socket's default path (and of the
    request limits): a daemon built with another default would be looked for in the wrong
    place. Each default path of the file is now written once in the package."""
    paths = {
        default
        for cls in SECTIONS.values()
        for default in file_defaults(cls).values()
        if isinstance(default, str) and "/" in default
    }
    assert paths == {"/run/smppgw/smppgw.sock", "var/smppgw.db"}
    for path in paths:
        holders = [
            module.relative_to(PACKAGE)
            for module in PACKAGE.rglob("*.py")
            if f'"{path}"' in module.read_text(encoding="utf-8")
        ]
        assert len(holders) == 1, (path, holders)
