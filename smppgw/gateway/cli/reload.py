"""``smppgw reload``: the daemon reads its configuration file again (the ``reload`` op)."""

from __future__ import annotations

import argparse
from typing import TextIO

import msgspec

from smppgw.gateway.cli.client import EXIT_FAILED, EXIT_OK, Client, socket_path
from smppgw.gateway.cli.output import error_text, printable, text_value

__all__ = ["reload_command"]


async def reload_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Ask the daemon to reload; print what it applied and what needs a restart."""
    client = await Client.connect(socket_path(args))
    try:
        reply = await client.call({"op": "reload"})
    finally:
        await client.close()
    if args.json:
        out.write(msgspec.json.encode(reply).decode() + "\n")
    if not reply.get("ok"):
        if not args.json:
            err.write(f"{printable(error_text(reply))}\n")
        return EXIT_FAILED
    if not args.json:
        for key, title in (("applied", "applied"), ("needs_restart", "needs a restart")):
            keys = reply.get(key)
            listed = ", ".join(text_value(k) for k in keys) if isinstance(keys, list) else ""
            out.write(f"{title}: {listed or '-'}\n")
    return EXIT_OK
