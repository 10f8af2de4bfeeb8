"""``smppgw status --cluster``: the instances sharing the account, as the ``cluster`` op says."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from smppgw.gateway.cli.client import EXIT_FAILED, EXIT_OK
from smppgw.gateway.cli.output import error_text, printable, text_value

if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["print_cluster"]


def print_cluster(reply: dict[str, object], *, json: bool, out: TextIO, err: TextIO) -> int:
    """Print a ``cluster`` reply: one line per live instance with its slots and rate share."""
    if not reply.get("ok"):
        err.write(f"{printable(error_text(reply))}\n")
        return EXIT_FAILED
    view = reply.get("cluster")
    if json:
        out.write(msgspec.json.encode(view).decode() + "\n")
        return EXIT_OK
    if not isinstance(view, dict):
        out.write("no cluster: this daemon holds every bind of the account alone\n")
        return EXIT_OK
    me = view.get("instance")
    instances = view.get("instances")
    members = instances if isinstance(instances, list) else []
    out.write(
        f"account {text_value(view.get('account'))}: {len(members)} live instances, "
        f"this one {text_value(me)}\n"
    )
    servers = view.get("servers")
    if isinstance(servers, dict):
        for name, limits in servers.items():
            if isinstance(limits, dict):
                out.write(
                    f"server {printable(name)}: {text_value(limits.get('binds'))} binds, "
                    f"{_rate(limits.get('rate'))}\n"
                )
    for member in members:
        if isinstance(member, dict):
            out.write(_member_line(member, me) + "\n")
    return EXIT_OK


def _member_line(member: dict[str, object], me: object) -> str:
    name = member.get("instance")
    slots, rates = member.get("slots"), member.get("rates")
    held = []
    if isinstance(slots, dict) and isinstance(rates, dict):
        for server, numbers in slots.items():
            listed = ",".join(str(n) for n in numbers) if isinstance(numbers, list) else "?"
            held.append(
                f"{printable(server)} slots [{listed or '-'}] at {_rate(rates.get(server))}"
            )
    expires = member.get("expires_in")
    lease = "" if expires is None else f", lease {text_value(expires)} s"
    mark = " (this one)" if name == me else ""
    return f"instance {text_value(name)}{mark}{lease}: {'; '.join(held) or 'no slots'}"


def _rate(value: object) -> str:
    if isinstance(value, int | float) and value:
        return f"{value:g} msg/s"
    return "unlimited" if value == 0 else text_value(value)
