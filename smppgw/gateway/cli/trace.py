"""``smppgw trace``: switch the daemon's wire trace on or off, or show its state."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import TextIO

from smppgw.gateway.cli.client import EXIT_FAILED, EXIT_OK, Client, CliError, socket_path
from smppgw.gateway.cli.output import error_text, printable

__all__ = ["state_text", "trace_command"]


def _request(args: argparse.Namespace) -> dict[str, object]:
    scoped = args.bind is not None or args.server is not None
    if args.action != "on" and (scoped or args.reveal or args.duration is not None):
        raise CliError(f"trace {args.action}: --bind, --server, --reveal and --for go with on")
    if args.action == "status":
        return {"op": "trace"}
    if args.action == "off":
        return {"op": "trace", "on": False}
    request: dict[str, object] = {"op": "trace", "on": True, "reveal": args.reveal}
    if args.bind is not None:
        request["bind"] = args.bind
    if args.server is not None:
        request["server"] = args.server
    if args.duration is not None:
        if args.duration <= 0:
            raise CliError("trace on: --for takes a number of seconds above 0")
        request["duration"] = args.duration
    return request


def state_text(reply: dict[str, object]) -> str:
    """``trace on for smpp1 (masked) until 2026-11-28T19:00:00Z`` or ``trace off``."""
    if not reply.get("on"):
        return "trace off"
    text = f"trace on for {printable(str(reply.get('scope')))}"
    text += " (REVEALING numbers and text)" if reply.get("reveal") else " (masked)"
    until = reply.get("until")
    if isinstance(until, int | float):
        stamp = dt.datetime.fromtimestamp(until, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text += f" until {stamp}"
    return text


async def trace_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    request = _request(args)
    client = await Client.connect(socket_path(args))
    try:
        reply = await client.call(request)
    finally:
        await client.close()
    if not reply.get("ok"):
        err.write(f"{printable(error_text(reply))}\n")
        return EXIT_FAILED
    out.write(state_text(reply) + "\n")
    return EXIT_OK
