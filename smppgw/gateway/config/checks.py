"""What ``smppgw run`` would refuse at start, checked at load: files, the intake group, the
simulator's ports; and the warnings the daemon gives about settings weakening security."""

from __future__ import annotations

import grp
import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smppgw.esme.binds import ServerSettings
    from smppgw.esme.tls import TlsSettings
    from smppgw.gateway.config.loader import Config
    from smppgw.gateway.config.sections import LogSettings, SimulatorConfig
    from smppgw.gateway.intake import IntakeSettings
    from smppgw.gateway.store import StoreSettings
    from smppgw.gateway.webhook import WebhookSettings

__all__ = ["check_files", "check_simulator_ports", "startup_warnings"]


def check_files(
    errors: list[str],
    *,
    store: StoreSettings | None,
    log: LogSettings | None,
    intake: IntakeSettings | None,
    tls: TlsSettings | None,
    webhook: WebhookSettings | None,
) -> None:
    """What the daemon opens at start, checked the way it opens it, so that a configuration
    ``check-config`` accepts does not fail at ``run``."""
    path = store.path if store is not None else ":memory:"
    if path != ":memory:" and (problem := _writable_problem(path, create_folders=True)):
        errors.append(f"store.path: {problem}")
    if log is not None and log.file is not None and (problem := _writable_problem(log.file)):
        errors.append(f"log.file: {problem}")
    group = intake.group if intake is not None else None
    if group is not None and (problem := _group_problem(group)):
        errors.append(f"intake.group: {problem}")
    if tls is not None:
        _check_tls(tls, errors)
    hook = webhook
    if hook is not None and hook.ca_file is not None and (problem := _ca_problem(hook.ca_file)):
        errors.append(f"webhook.ca_file: {problem}")


def _check_tls(t: TlsSettings, errors: list[str]) -> None:
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


def check_simulator_ports(
    sim: SimulatorConfig, servers: Sequence[ServerSettings], errors: list[str]
) -> None:
    """In simulator mode, configured servers must point at the simulator's fixed ports."""
    if not sim.enabled or not (sim.plain_ports or sim.tls_ports):
        return
    for index, server in enumerate(servers):
        ports = sim.tls_ports if server.tls else sim.plain_ports
        if server.port not in ports:
            key = "tls_ports" if server.tls else "plain_ports"
            errors.append(
                f"servers[{index}].port: {server.port} is not a simulator port "
                f"(simulator.{key} = {list(ports)})"
            )
