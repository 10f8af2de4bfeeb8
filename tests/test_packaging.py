"""Static checks of the Docker, compose, Prometheus and systemd files, and the sd_notify helper."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from smppgw import __version__
from smppgw.config import SIMULATOR_PASSWORD, load_config
from smppgw.sdnotify import Notifier

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker" / "compose.yaml"
PROMETHEUS = ROOT / "docker" / "prometheus.yml"
UNIT = ROOT / "config" / "smppgw.service"


# --- Dockerfile ---------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_dockerfile_uses_slim_python_311_images() -> None:
    bases = [args.split()[0] for keyword, args in instructions(DOCKERFILE) if keyword == "FROM"]
    assert bases
    assert all(base == "python:3.11-slim" for base in bases), bases


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [args for keyword, args in instructions(DOCKERFILE) if keyword == "USER"]
    assert users, "no USER instruction: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # The user is created in the image.
    assert "useradd --system --uid 10001 --gid smppgw" in DOCKERFILE.read_text().replace(
        "\\\n", " "
    )


def health_check() -> list[str]:
    """The HEALTHCHECK command (exec form) of the runtime image."""
    (check,) = [args for keyword, args in instructions(DOCKERFILE) if keyword == "HEALTHCHECK"]
    _, _, command = check.partition("CMD ")
    argv = json.loads(command)
    assert isinstance(argv, list)
    return [str(arg) for arg in argv]


def test_dockerfile_health_check_pings_the_daemon_socket() -> None:
    argv = health_check()
    assert argv[:2] == ["sh", "-c"]
    assert "smppgw status --ping --socket /run/smppgw/smppgw.sock" in argv[2]
    # Docker reads exit 1 as unhealthy and reserves other codes; `status` exits 3 unreachable.
    assert argv[2].endswith("|| exit 1")
    # The socket is the one the image's configuration listens on.
    config = load_config(ROOT / "config" / "smppgw.example.toml", environ={"SMPPGW_PASSWORD": "x"})
    assert f"--socket {config.intake.path} " in argv[2]
    exposed = [args for keyword, args in instructions(DOCKERFILE) if keyword == "EXPOSE"]
    assert exposed == ["9108"]
    (entrypoint,) = [args for keyword, args in instructions(DOCKERFILE) if keyword == "ENTRYPOINT"]
    assert entrypoint == '["smppgw"]'


class _PongServer:
    """A Unix socket answering each line with the daemon's ping reply (for the health check)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(30)
                if conn.recv(4096).endswith(b"\n"):
                    conn.sendall(b'{"ok":true,"pong":true,"version":"test"}\n')

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=30)


def run_health_check(socket_path: Path, tmp_path: Path) -> int:
    """Run the image's health check command here, against ``socket_path``."""
    script = health_check()[2].replace("/run/smppgw/smppgw.sock", str(socket_path))
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "smppgw").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m smppgw "$@"\n')
    (shim / "smppgw").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(  # noqa: S603 - the Dockerfile's own command
        ["sh", "-c", script],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=env,
    )
    return result.returncode


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_health_check_is_healthy_when_the_daemon_answers_and_unhealthy_otherwise(
    tmp_path: Path,
) -> None:
    path = tmp_path / "smppgw.sock"
    assert run_health_check(path, tmp_path) == 1  # no socket: unhealthy (1, not 3)
    server = _PongServer(path)
    try:
        assert run_health_check(path, tmp_path) == 0
    finally:
        server.close()


def test_dockerignore_keeps_the_venv_git_and_local_state_out_of_the_context() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "var", "*.db"} <= patterns
    assert {"**/__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"} <= patterns
    # Nothing the Dockerfile copies is ignored.
    for keyword, args in instructions(DOCKERFILE):
        if keyword == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                top = source.rstrip("/").split("/")[0]
                assert top not in patterns, source
    assert not any(p.startswith("!") for p in patterns)


def test_dockerfile_copies_only_files_that_exist() -> None:
    for keyword, args in instructions(DOCKERFILE):
        if keyword == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source


# --- compose and Prometheus ---------------------------------------------------------------


def compose_services(text: str) -> dict[str, str]:
    """Each top-level service's block of text (a structural read: there is no YAML parser)."""
    services: dict[str, str] = {}
    current = None
    in_services = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            in_services = line.rstrip() == "services:"
            current = None
            continue
        if in_services and re.fullmatch(r"  [a-z][\w-]*:", line):
            current = line.strip().rstrip(":")
            services[current] = ""
        elif in_services and current is not None:
            services[current] += line + "\n"
    return services


def test_compose_declares_the_daemon_the_simulator_and_prometheus() -> None:
    text = COMPOSE.read_text()
    assert "\t" not in text
    top = [line.split(":")[0] for line in text.splitlines() if re.fullmatch(r"[a-z]\w*:.*", line)]
    assert top == ["name", "services", "volumes"]
    services = compose_services(text)
    assert set(services) == {"simulator", "smppgw", "prometheus", "grafana"}
    assert "dockerfile: docker/Dockerfile" in services["simulator"]
    assert "condition: service_healthy" in services["smppgw"]
    assert "SMPPGW_PASSWORD" in services["smppgw"]
    assert "/run/smppgw" in services["smppgw"]
    assert '"127.0.0.1:9108:9108"' in services["smppgw"]


def test_compose_gives_the_daemon_the_simulator_accounts_password() -> None:
    services = compose_services(COMPOSE.read_text())
    (password,) = re.findall(r"SMPPGW_PASSWORD: (\S+)", services["smppgw"])
    assert "--password-file" not in services["simulator"]  # the simulator keeps its default
    assert password == SIMULATOR_PASSWORD
    config = load_config(ROOT / "config" / "compose.toml", environ={"SMPPGW_PASSWORD": password})
    ports = re.search(r'"--plain-ports", ((?:"\d+",? ?)+)', services["simulator"])
    assert ports is not None
    assert sorted(s.port for s in config.servers) == sorted(
        int(p) for p in re.findall(r"\d+", ports[1])
    )
    assert {s.host for s in config.servers} == {"simulator"}


def test_compose_mounts_files_that_exist() -> None:
    for source in re.findall(r"^\s*- (\.\.?/[^:]+):", COMPOSE.read_text(), re.MULTILINE):
        assert (COMPOSE.parent / source).resolve().exists(), source


def test_compose_parses_as_yaml() -> None:
    data = yaml.safe_load(COMPOSE.read_text())
    assert set(data["services"]) == {"simulator", "smppgw", "prometheus", "grafana"}


def test_prometheus_scrapes_the_port_the_compose_config_serves() -> None:
    config = load_config(ROOT / "config" / "compose.toml", environ={"SMPPGW_PASSWORD": "secret"})
    targets = re.findall(r'targets: \["([^"]+)"\]', PROMETHEUS.read_text())
    assert targets == [f"smppgw:{config.metrics.port}"]
    assert config.metrics.host == "0.0.0.0"  # reachable from the prometheus container
    assert "job_name: smppgw" in PROMETHEUS.read_text()


# --- systemd ------------------------------------------------------------------------------


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_unit_is_a_hardened_notify_service() -> None:
    service = unit()["Service"]
    required = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "RuntimeDirectory": "smppgw",
        "StateDirectory": "smppgw",
        "User": "smppgw",
    }
    for key, value in required.items():
        assert service.get(key) == value, key
    assert "run --config /etc/smppgw/smppgw.toml" in service["ExecStart"]
    assert set(service["ReadWritePaths"].split()) == {"/var/lib/smppgw", "/run/smppgw"}
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_directories_match_the_example_config() -> None:
    config = load_config(ROOT / "config" / "smppgw.example.toml", environ={"SMPPGW_PASSWORD": "x"})
    service = unit()["Service"]
    assert Path(config.intake.path).parent == Path("/run") / service["RuntimeDirectory"]
    assert Path(config.store.path).parent == Path("/var/lib") / service["StateDirectory"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart exists; point it at a binary this machine has.
    copy = tmp_path / "smppgw.service"
    copy.write_text(UNIT.read_text().replace("/opt/smppgw/bin/smppgw", "/bin/true"))
    result = subprocess.run(  # noqa: S603 - fixed arguments
        ["systemd-analyze", "verify", "--man=no", str(copy)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = [line for line in result.stderr.splitlines() if str(copy) in line]
    assert result.returncode == 0, result.stderr
    assert problems == []


# --- python -m smppgw and the entry point -------------------------------------------------


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "smppgw", "version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"smppgw {__version__} ")


def test_the_console_script_points_at_cli_main() -> None:
    with (ROOT / "pyproject.toml").open("rb") as file:
        scripts = tomllib.load(file)["project"]["scripts"]
    assert scripts == {"smppgw": "smppgw.cli:main"}


# --- sd_notify ----------------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def test_notifier_sends_ready_watchdog_status_and_stopping(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("3 binds up")
    assert sock.recv(4096) == b"READY=1\nSTATUS=3 binds up"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.status("draining")
    assert sock.recv(4096) == b"STATUS=draining"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_notifier_supports_abstract_socket_names() -> None:
    name = f"smppgw-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(4096) == b"READY=1"


def test_notifier_is_a_no_op_outside_systemd() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog_interval is None


def test_a_failed_notification_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.watchdog() is False
    assert "sd_notify to" in caplog.text


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], interval: float | None) -> None:
    assert Notifier(environ).watchdog_interval == interval
