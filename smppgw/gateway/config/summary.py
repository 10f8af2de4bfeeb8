"""The ``smppgw check-config`` summary: every section in a line, without a secret value."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smppgw.codec.constants import CommandStatus
from smppgw.esme.session import BindType
from smppgw.gateway.config.cluster import instance_name

if TYPE_CHECKING:
    from smppgw.gateway.config.loader import Config

__all__ = ["summary"]

_DAY = 86400.0


def summary(config: Config) -> str:
    """A human-readable summary without secret values (``smppgw check-config``)."""
    g = config.gateway
    lines = [
        f"config: {config.source or '(inline)'}",
        (
            f"gateway: system_id={g.system_id} password from {config.sources['gateway.password']} "
            f"system_type={g.system_type} window={g.window} "
            f"enquire_link_interval={g.enquire_link_interval:g}s "
            f"response_timeout={g.response_timeout:g}s"
        ),
    ]
    if config.servers:
        for s in config.servers:
            kinds = s.bind_type if isinstance(s.bind_type, tuple) else (s.bind_type,)
            types = "/".join(BindType(k).value for k in kinds)
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
            f"tls: min_version={t.minimum_version} verify={t.verify} "
            f"ca_file={t.ca_file or '(system)'}"
        )
    st = config.store
    if config.postgres is None:
        lines.append(
            f"store: sqlite {st.path} synchronous={st.synchronous} "
            f"retention={st.retention / _DAY:g} days"
        )
    else:
        c = config.cluster
        lines.append(
            f"store: postgres, dsn from {config.postgres.source} "
            f"retention={st.retention / _DAY:g} days"
        )
        lines.append(
            f"cluster: instance={instance_name(c)} ttl={c.ttl:g}s heartbeat={c.heartbeat:g}s "
            f"margin={c.margin:g}s schema={c.schema}"
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
        signed = f"signed, secret from {config.sources.get('webhook.secret')}"
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
    if g.status_overrides:
        overrides = ", ".join(
            f"{CommandStatus(k).name}={v.value}" for k, v in sorted(g.status_overrides.items())
        )
        lines.append(f"retry: unknown_policy={g.unknown_policy.value} {overrides}")
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
