"""``smppgw status``: a message's status, the receipts that matched no message, or a ping."""

from __future__ import annotations

import argparse
from typing import TextIO

import msgspec

from smppgw.gateway.cli.client import EXIT_FAILED, EXIT_OK, Client, CliError, socket_path
from smppgw.gateway.cli.cluster import print_cluster
from smppgw.gateway.cli.output import error_text, fields_text, printable, text_value

__all__ = ["status_command"]


async def status_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    _one_choice(args)
    client = await Client.connect(socket_path(args))
    try:
        if args.cluster:
            reply = await client.call({"op": "cluster"})
            return print_cluster(reply, json=args.json, out=out, err=err)
        if args.ping:
            reply = await client.call({"op": "ping"})
            version = text_value(reply.get("version"))
            out.write(f"pong from smppgw {version} at {client.path}\n")
            out.write(_paused_line(reply.get("paused")))
            return EXIT_OK if reply.get("ok") else EXIT_FAILED
        if args.unmatched:
            reply = await client.call({"op": "unmatched", "limit": args.limit})
            return _print_unmatched(reply, args, out, err)
        query = {"id": args.id} if args.id is not None else {"custom": args.custom}
        reply = await client.call({"op": "status", **query})
    finally:
        await client.close()
    if not reply.get("ok"):
        err.write(f"{printable(error_text(reply))}\n")
        return EXIT_FAILED
    status = reply.get("status")
    if args.json:
        out.write(msgspec.json.encode(status).decode() + "\n")
        return EXIT_OK
    assert isinstance(status, dict)
    for key, value in status.items():
        if key == "parts" and isinstance(value, list):
            for part in value:
                assert isinstance(part, dict)
                number = part.pop("part", None)
                out.write(f"part {text_value(number)}: {fields_text(part)}\n")
        elif value is not None:
            out.write(f"{printable(key)}: {text_value(value)}\n")
    return EXIT_OK


def _one_choice(args: argparse.Namespace) -> None:
    chosen = args.ping + args.unmatched + args.cluster
    chosen += (args.id is not None) + (args.custom is not None)
    if chosen != 1:
        raise CliError("status: give a message id, --custom X, --unmatched, --cluster or --ping")


def _paused_line(paused: object) -> str:
    """A line naming the servers an operator paused (none: nothing)."""
    if not isinstance(paused, list) or not paused:
        return ""
    return f"sending paused by an operator: {', '.join(printable(str(p)) for p in paused)}\n"


def _print_unmatched(
    reply: dict[str, object], args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    if not reply.get("ok"):
        err.write(f"{printable(error_text(reply))}\n")
        return EXIT_FAILED
    receipts = reply.get("receipts")
    assert isinstance(receipts, list)
    if args.json:
        document = {"count": reply.get("count"), "receipts": receipts}
        out.write(msgspec.json.encode(document).decode() + "\n")
        return EXIT_OK
    out.write(f"{text_value(reply.get('count'))} delivery receipts matched no message\n")
    for receipt in receipts:
        assert isinstance(receipt, dict)
        out.write(fields_text(receipt) + "\n")
    return EXIT_OK
