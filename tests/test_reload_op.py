"""The ``reload`` op of the intake socket and ``smppgw reload``.

The daemon runs in-process against the simulator on loopback, started from a TOML file; the
file is rewritten and the daemon asked to read it again, through the socket or the command.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

import pytest
from test_daemon import Client
from test_reload import TIMEOUT, daemon, send_all, sessions, simulator

from smppgw.gateway.cli import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, build_parser, main
from smppgw.gateway.cli.reload import reload_command
from smppgw.gateway.config import load_config
from smppgw.testing.simulator import Simulator

BAD = '[gateway]\nsystem_id = "acme"\nwindow = 0\n[[servers]]\nname = "x"\n'


def write(path: Path, sim: Simulator, *, rate: int, window: int = 10, intake: str = "") -> None:
    """A configuration of the simulator's smpp1 at ``rate``."""
    port = next(s.plain_port for s in sim.servers if s.name == "smpp1")
    path.write_text(
        f"""
[gateway]
system_id = "acme"
password_env = "SMPPGW_PASSWORD"
window = {window}
response_timeout = 5
retry_delay = 0.2

[[servers]]
name = "smpp1"
host = "127.0.0.1"
port = {port}
binds = 2
rate = {rate}

[store]
path = "{path.parent / "gw.db"}"
synchronous = "normal"

[intake]
path = "{path.parent / "gw.sock"}"
{intake}

[defaults]
sender = "ACME"

[metrics]
enabled = false
"""
    )


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMPPGW_PASSWORD", "secret")


async def reload_op(path: str) -> dict[str, object]:
    client = await Client.connect(path)
    try:
        return await client.call({"op": "reload", "req": 7})
    finally:
        await client.close()


async def test_the_reload_op_applies_a_new_rate_and_reports_a_restart_only_change(
    tmp_path: Path,
) -> None:
    async with simulator() as sim, asyncio.timeout(TIMEOUT):
        path = tmp_path / "gw.toml"
        write(path, sim, rate=50)
        async with daemon(load_config(path)) as gw:
            before = sessions(gw)
            write(path, sim, rate=20, window=5)
            reply = await reload_op(gw.config.intake.path)
            assert reply == {
                "ok": True,
                "req": 7,
                "applied": ["servers[smpp1].rate"],
                "needs_restart": ["gateway.window"],
            }
            assert gw.manager is not None
            assert [r.rate for r in gw.manager.rates()] == [20]
            assert gw.config.gateway.window == 10
            assert sessions(gw) == before


async def test_the_reload_op_refuses_a_bad_file_and_the_daemon_keeps_sending(
    tmp_path: Path,
) -> None:
    async with simulator() as sim, asyncio.timeout(TIMEOUT):
        path = tmp_path / "gw.toml"
        write(path, sim, rate=50)
        cfg = load_config(path)
        async with daemon(cfg) as gw:
            path.write_text(BAD)
            reply = await reload_op(gw.config.intake.path)
            assert reply["ok"] is False
            assert reply["error"] == "invalid_config"
            errors = reply["errors"]
            assert isinstance(errors, list)
            assert any(e.startswith("gateway.window") for e in errors)
            assert str(reply["message"]).startswith(
                "configuration not reloaded, the running one stays: "
            )
            assert gw.config is cfg
            assert gw.manager is not None
            assert [r.rate for r in gw.manager.rates()] == [50]
            finals = await send_all(gw, 3)
            assert {p["state"] for p in finals.values()} == {"delivered"}


async def test_the_reload_op_is_forbidden_outside_the_admin_group(tmp_path: Path) -> None:
    ours = {os.getgid(), *os.getgroups()}
    outside = next(gid for gid in range(64000, 65000) if gid not in ours)
    async with simulator() as sim, asyncio.timeout(TIMEOUT):
        path = tmp_path / "gw.toml"
        write(path, sim, rate=50, intake=f'admin_group = "{outside}"')
        async with daemon(load_config(path)) as gw:
            write(path, sim, rate=20, intake=f'admin_group = "{outside}"')
            reply = await reload_op(gw.config.intake.path)
            assert (reply["ok"], reply["error"], reply["req"]) == (False, "forbidden", 7)
            assert gw.manager is not None
            assert [r.rate for r in gw.manager.rates()] == [50]


async def test_smppgw_reload_prints_what_was_applied_and_exits_1_on_a_bad_file(
    tmp_path: Path,
) -> None:
    async with simulator() as sim, asyncio.timeout(TIMEOUT):
        path = tmp_path / "gw.toml"
        write(path, sim, rate=50)
        async with daemon(load_config(path)) as gw:
            socket = gw.config.intake.path

            async def command(*extra: str) -> tuple[int, str, str]:
                args = build_parser().parse_args(["reload", "--socket", socket, *extra])
                out, err = io.StringIO(), io.StringIO()
                code = await reload_command(args, out, err)
                return code, out.getvalue(), err.getvalue()

            write(path, sim, rate=20, window=5)
            assert await command() == (
                EXIT_OK,
                "applied: servers[smpp1].rate\nneeds a restart: gateway.window\n",
                "",
            )
            code, out, _ = await command("--json")
            assert code == EXIT_OK
            assert json.loads(out) == {
                "ok": True,
                "applied": [],
                "needs_restart": ["gateway.window"],
            }
            path.write_text(BAD)
            code, out, err = await command()
            assert (code, out) == (EXIT_FAILED, "")
            assert err.startswith("invalid_config: configuration not reloaded")
            assert "gateway.window" in err
            code, out, _ = await command("--json")
            assert code == EXIT_FAILED
            assert json.loads(out)["error"] == "invalid_config"
            assert gw.manager is not None
            assert [r.rate for r in gw.manager.rates()] == [20]


def test_smppgw_reload_exits_3_when_the_daemon_cannot_be_reached(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reload", "--socket", str(tmp_path / "absent.sock")]) == EXIT_UNAVAILABLE
    assert "cannot reach the daemon" in capsys.readouterr().err
