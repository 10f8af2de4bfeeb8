"""check-config refuses what run would refuse, and relative paths follow the config file.

Each case here once passed ``smppgw check-config`` ("configuration OK") and then failed at
``smppgw run`` (or, worse, ran and failed every bind): a NaN time, a password the wire cannot
carry, a CA bundle that is a folder or not PEM, a group that does not exist, a store that
cannot be created. And relative paths used to follow the working directory, so a client
command run from another folder looked for the socket in the wrong place.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smppgw.gateway.config import ConfigError, load_config, parse_config

ENV = {"SMPPGW_PASSWORD": "pw-12345"}
TIMEOUT = 60.0


def minimal(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "gateway": {"system_id": "acme", "password_env": "SMPPGW_PASSWORD"},
        "servers": [{"name": "smpp1", "host": "smpp1.example", "port": 3634}],
        "store": {"path": str(tmp_path / "gw.db")},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


def errors_of(data: dict[str, Any], environ: dict[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ=ENV if environ is None else environ)
    return info.value.errors


def smppgw(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real command line, in a child process, bounded in time."""
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "smppgw", *args],
        cwd=cwd,
        env={**os.environ, **ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


# --- numbers --------------------------------------------------------------------------------


def test_nan_and_infinite_times_and_rates_are_refused_with_their_keys(tmp_path: Path) -> None:
    """TOML has nan and inf. ``response_timeout = nan`` passed check-config and made run fail
    with an unnamed "must be >= 0, got nan"; ``rate = inf`` passed check-config too."""
    data = minimal(
        tmp_path,
        gateway={"response_timeout": float("nan"), "reconnect_max": float("inf")},
        store={"retention_days": float("inf")},
        simulator={"dlr_delay": [0, float("inf")]},
    )
    data["servers"][0]["rate"] = float("inf")
    assert errors_of(data) == (
        "simulator.dlr_delay: expected [min, max] seconds with 0 <= min <= max, got [0, inf]",
        "gateway.response_timeout: must be a finite number, got nan",
        "gateway.reconnect_max: must be a finite number, got inf",
        "servers[0].rate: must be a finite number, got inf",
        "store.retention_days: must be a finite number, got inf",
    )


# --- the account ----------------------------------------------------------------------------


def test_a_password_the_wire_cannot_carry_is_refused_by_its_key(tmp_path: Path) -> None:
    """The bind writes the password as Latin-1 octets: a password outside Latin-1 used to pass
    check-config and then fail every bind."""
    assert errors_of(minimal(tmp_path), {"SMPPGW_PASSWORD": "密码"}) == (
        "gateway.password_env: the password must be Latin-1 text (octets on the wire)",
    )
    password = tmp_path / "password"
    password.write_text("pass€\n", encoding="utf-8")
    data = minimal(tmp_path, gateway={"password_file": str(password)})
    del data["gateway"]["password_env"]
    assert errors_of(data, {}) == (
        "gateway.password_file: the password must be Latin-1 text (octets on the wire)",
    )
    # Latin-1 beyond ASCII is fine: it has octets.
    assert parse_config(minimal(tmp_path), environ={"SMPPGW_PASSWORD": "pässwö"})


def test_a_system_id_the_wire_cannot_carry_is_refused(tmp_path: Path) -> None:
    data = minimal(tmp_path, gateway={"system_id": "аккаунт"})
    assert errors_of(data) == (
        "gateway.system_id: must be Latin-1 text (octets on the wire), got 'аккаунт'",
    )


# --- files the daemon opens -----------------------------------------------------------------


def test_a_ca_file_that_is_a_folder_or_not_pem_is_refused(tmp_path: Path) -> None:
    """A folder named as ca_file was reported as "no such file"; a file that is not PEM
    passed check-config and failed every TLS bind."""
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("this is not a certificate\n")
    assert errors_of(minimal(tmp_path, tls={"ca_file": str(tmp_path)})) == (
        f"tls.ca_file: {tmp_path} is a directory, not a file",
    )
    (error,) = errors_of(minimal(tmp_path, tls={"ca_file": str(not_pem)}))
    assert error.startswith(f"tls.ca_file: {not_pem} holds no PEM certificate (")
    (error,) = errors_of(
        minimal(tmp_path, webhook={"url": "https://app.example/hook", "ca_file": str(not_pem)})
    )
    assert error.startswith(f"webhook.ca_file: {not_pem} holds no PEM certificate (")


def test_a_client_certificate_that_does_not_load_is_refused(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    (error,) = errors_of(minimal(tmp_path, tls={"cert_file": str(cert), "key_file": str(key)}))
    assert error.startswith("tls.cert_file: cannot load the certificate and key: ")


def test_an_intake_group_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    """run failed with "no such group" after opening the store and starting the binds."""
    data = minimal(tmp_path, intake={"group": "no-such-group-smppgw"})
    assert errors_of(data) == ("intake.group: no such group 'no-such-group-smppgw'",)


def test_a_store_or_log_file_that_cannot_be_opened_is_refused(tmp_path: Path) -> None:
    """The store creates missing folders, but not under a file, and is not a folder itself;
    the log file's folder must exist (it is not created)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be\n")
    store_under_file = str(blocker / "var" / "gw.db")
    assert errors_of(minimal(tmp_path, store={"path": store_under_file})) == (
        f"store.path: cannot create {store_under_file}: {blocker} is not a folder",
    )
    assert errors_of(minimal(tmp_path, store={"path": str(tmp_path)})) == (
        f"store.path: {tmp_path} is a directory, not a file",
    )
    log_file = str(tmp_path / "missing" / "gw.log")
    assert errors_of(minimal(tmp_path, log={"file": log_file})) == (
        f"log.file: the folder {tmp_path / 'missing'} does not exist",
    )
    # A store in folders that do not exist yet is fine: they are created.
    nested = str(tmp_path / "a" / "b" / "gw.db")
    assert parse_config(minimal(tmp_path, store={"path": nested}), environ=ENV).store.path == nested


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_store_folder_that_is_not_writable_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    path = str(locked / "gw.db")
    assert errors_of(minimal(tmp_path, store={"path": path})) == (
        f"store.path: cannot create {path}: the folder {locked} is not writable",
    )


# --- through the command line ---------------------------------------------------------------


BROKEN = """
[gateway]
system_id = "acme"
password_env = "SMPPGW_PASSWORD"
response_timeout = nan

[[servers]]
name = "smpp1"
host = "127.0.0.1"
port = 2775
tls = true

[tls]
ca_file = "ca-folder"

[store]
path = "blocker/gw.db"

[intake]
path = "gw.sock"
group = "no-such-group-smppgw"

[metrics]
enabled = false
"""


def test_check_config_and_run_name_every_problem_at_once_and_exit_2(tmp_path: Path) -> None:
    """Both commands refuse the same file with the same list, each line naming its key, and
    exit 2; run no longer gets as far as "cannot start" (exit 1) on any of them."""
    (tmp_path / "ca-folder").mkdir()
    (tmp_path / "blocker").write_text("")
    config = tmp_path / "gw.toml"
    config.write_text(BROKEN)
    expected = [
        "gateway.response_timeout: must be a finite number, got nan",
        (
            f"store.path: cannot create {tmp_path / 'blocker' / 'gw.db'}: "
            f"{tmp_path / 'blocker'} is not a folder"
        ),
        "intake.group: no such group 'no-such-group-smppgw'",
        f"tls.ca_file: {tmp_path / 'ca-folder'} is a directory, not a file",
    ]
    password = {"SMPPGW_PASSWORD": "pässwörd"}  # Latin-1: fine
    for command in ("check-config", "run"):
        result = smppgw(command, "--config", str(config), cwd=tmp_path, env=password)
        assert result.returncode == 2, (command, result.stderr)
        lines = [line.strip() for line in result.stderr.splitlines()]
        assert lines[0] == f"{config}: invalid configuration:", (command, result.stderr)
        assert lines[1:] == expected, command
        assert "configuration OK" not in result.stdout


# --- relative paths -------------------------------------------------------------------------


def test_relative_paths_are_relative_to_the_config_file_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config in /etc/x naming "var/gw.db" meant var/ under whatever folder the daemon or a
    client command was started from."""
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "password").write_text("filepw\n")
    config = folder / "gw.toml"
    config.write_text(
        '[gateway]\nsystem_id = "acme"\npassword_file = "password"\n'
        '[[servers]]\nname = "a"\nhost = "h"\nport = 1\n'
        '[store]\npath = "var/gw.db"\n[intake]\npath = "../run/gw.sock"\n'
        '[log]\nfile = "gw.log"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(Path("..") / "etc" / "gw.toml", environ={})
    assert loaded.store.path == str(folder / "var" / "gw.db")
    assert loaded.intake.path == str(tmp_path / "run" / "gw.sock")
    assert loaded.log.file == str(folder / "gw.log")
    assert loaded.gateway.password == "filepw"
    assert loaded.sources["gateway.password"] == f"file {folder / 'password'}"


def test_absolute_paths_and_parsed_data_are_left_alone(tmp_path: Path) -> None:
    data = minimal(tmp_path, intake={"path": "/run/smppgw/gw.sock"})
    config = parse_config(data, environ=ENV)
    assert config.intake.path == "/run/smppgw/gw.sock"
    assert config.store.path == str(tmp_path / "gw.db")


def test_client_commands_find_a_relative_socket_from_any_folder(tmp_path: Path) -> None:
    """``smppgw status --config etc/gw.toml`` looked for the socket relative to the folder it
    was run from, not where the daemon (reading the same file) made it."""
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "gw.toml").write_text('[intake]\npath = "gw.sock"\n')
    result = smppgw("status", "--ping", "--config", "etc/gw.toml", cwd=tmp_path)
    assert result.returncode == 3
    assert f"cannot reach the daemon at {folder / 'gw.sock'}:" in result.stderr


def test_make_run_keeps_its_store_and_socket_in_var_under_the_repository(tmp_path: Path) -> None:
    repository = Path(__file__).resolve().parent.parent
    result = smppgw(
        "check-config", "--config", str(repository / "config" / "local.toml"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert f"store: sqlite {repository / 'var' / 'smppgw.db'} " in result.stdout
    assert f"intake: {repository / 'var' / 'smppgw.sock'} " in result.stdout
