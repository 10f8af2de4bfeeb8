"""The operators' commands: ``pause``, ``resume``, ``cancel``, ``retry``, ``history`` and
``list``, each one request on the socket (the admin socket of ``--config`` when it has one).
"""

from __future__ import annotations

import argparse
import os
import tomllib
from pathlib import Path
from typing import TextIO

import msgspec

from smppgw.gateway.cli.client import EXIT_FAILED, EXIT_OK, Client, CliError, socket_path
from smppgw.gateway.cli.output import error_text, fields_text, printable, text_value

__all__ = ["ADMIN_COMMANDS", "add_admin_commands", "admin_command"]

ADMIN_COMMANDS = ("pause", "resume", "cancel", "retry", "history", "list")
_STATES = (
    "queued",
    "submitted",
    "sent",
    "delivered",
    "failed",
    "expired",
    "rejected",
    "unknown",
    "cancelled",
)
_SUBCOMMANDS = argparse._SubParsersAction  # noqa: SLF001 - argparse's own type for add_parser


def _socket_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("daemon socket")
    group.add_argument("--socket", metavar="PATH", help="the intake (or admin) socket path")
    group.add_argument(
        "--config", metavar="PATH", help="read the socket path (admin_path first) from a config"
    )
    parser.add_argument("--json", action="store_true", help="print the reply as JSON")


def _filter_options(parser: argparse.ArgumentParser, states: str) -> None:
    parser.add_argument("id", nargs="*", help="message ids")
    parser.add_argument("--custom", help="the message with this reference")
    parser.add_argument("--filter", action="store_true", help="select by the options below")
    parser.add_argument("--state", action="append", choices=_STATES, help=f"({states})")
    parser.add_argument("--to", help="destination number")
    parser.add_argument("--custom-prefix", help="references starting with this")
    parser.add_argument("--since", help="accepted at or after (Unix seconds or ISO 8601, UTC)")
    parser.add_argument("--until", help="accepted before (Unix seconds or ISO 8601, UTC)")
    parser.add_argument(
        "--limit", type=int, default=1000, help="messages looked at, oldest first (1000)"
    )


def add_admin_commands(commands: _SUBCOMMANDS[argparse.ArgumentParser]) -> None:
    """Add the operators' commands to the ``smppgw`` parser."""
    for name, what in (("pause", "stop sending"), ("resume", "send again")):
        parser = commands.add_parser(name, help=f"{what} (to one server, or all)")
        parser.add_argument("--server", help="only this server (a [[servers]] name)")
        _socket_options(parser)
    cancel = commands.add_parser("cancel", help="cancel queued (or scheduled) messages")
    _filter_options(cancel, "repeatable; default queued and submitted")
    _socket_options(cancel)
    retry = commands.add_parser("retry", help="send failed or unknown messages again")
    _filter_options(retry, "repeatable; default failed and unknown")
    _socket_options(retry)
    history = commands.add_parser("history", help="every event of one message, oldest first")
    history.add_argument("id", nargs="?", help="the message id")
    history.add_argument("--custom", help="look up by your reference instead")
    _socket_options(history)
    listing = commands.add_parser("list", help="messages, newest first, a page at a time")
    listing.add_argument("--state", action="append", choices=_STATES, help="(repeatable)")
    listing.add_argument("--since", help="accepted at or after (Unix seconds or ISO 8601, UTC)")
    listing.add_argument("--until", help="accepted before (Unix seconds or ISO 8601, UTC)")
    listing.add_argument("--to", help="destination number")
    listing.add_argument("--custom-prefix", help="references starting with this")
    listing.add_argument("--limit", type=int, default=100, help="messages per page (100)")
    listing.add_argument("--after", type=int, help="the next key a previous page printed")
    _socket_options(listing)


def _time(value: str | None) -> float | str | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _conditions(args: argparse.Namespace) -> dict[str, object]:
    found: dict[str, object] = {
        "to": args.to,
        "custom_prefix": args.custom_prefix,
        "since": _time(args.since),
        "until": _time(args.until),
    }
    if args.state:
        found["state"] = args.state
    return {k: v for k, v in found.items() if v is not None}


def _request(args: argparse.Namespace) -> dict[str, object]:
    command = args.command
    if command in {"pause", "resume"}:
        return {"op": command, "server": args.server}
    if command == "history":
        if (args.id is None) == (args.custom is None):
            raise CliError("history: give a message id or --custom X")
        return {"op": "history", **({"id": args.id} if args.id else {"custom": args.custom})}
    if command == "list":
        request: dict[str, object] = {"op": "list", "limit": args.limit, **_conditions(args)}
        if args.after is not None:
            request["after"] = args.after
        return request
    chosen = bool(args.id) + (args.custom is not None) + args.filter
    if chosen != 1:
        raise CliError(f"{command}: give message ids, --custom X or --filter (with conditions)")
    request = {"op": command, "limit": args.limit}
    if args.id:
        request["id"] = args.id
    elif args.custom is not None:
        request["custom"] = args.custom
    else:
        request["filter"] = _conditions(args)
    return request


def admin_socket(args: argparse.Namespace) -> str:
    """``--socket``, else the ``admin_path`` of ``--config``, else the intake socket."""
    if not args.socket and args.config:
        try:
            with Path(args.config).open("rb") as file:
                section = tomllib.load(file).get("intake", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CliError(f"{args.config}: {exc}") from exc
        admin = section.get("admin_path") if isinstance(section, dict) else None
        if isinstance(admin, str) and admin:
            return os.path.normpath(Path(args.config).absolute().parent / admin)
    return socket_path(args)


async def admin_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Send the command's request and print its reply."""
    request = _request(args)
    client = await Client.connect(admin_socket(args))
    try:
        reply = await client.call(request)
    finally:
        await client.close()
    if not reply.get("ok"):
        err.write(f"{printable(error_text(reply))}\n")
        return EXIT_FAILED
    if args.json:
        reply.pop("ok", None)
        out.write(msgspec.json.encode(reply).decode() + "\n")
    else:
        _print(args.command, reply, out)
    return _exit_code(args.command, reply)


def _exit_code(command: str, reply: dict[str, object]) -> int:
    """1 when a cancel or retry left a message it was asked about untouched."""
    if command not in {"cancel", "retry"}:
        return EXIT_OK
    done = "cancelled" if command == "cancel" else "retried"
    messages = reply.get("messages")
    assert isinstance(messages, list)
    ok = all(isinstance(m, dict) and m.get("outcome") == done for m in messages)
    return EXIT_OK if ok else EXIT_FAILED


def _print(command: str, reply: dict[str, object], out: TextIO) -> None:
    if command in {"pause", "resume"}:
        paused = reply.get("paused")
        assert isinstance(paused, list)
        names = ", ".join(printable(str(p)) for p in paused) or "none"
        out.write(f"sending paused: {names}\n")
        return
    if command == "history":
        events = reply.get("events")
        assert isinstance(events, list)
        out.writelines(printable(msgspec.json.encode(event).decode()) + "\n" for event in events)
        return
    if command == "list":
        messages = reply.get("messages")
        assert isinstance(messages, list)
        for message in messages:
            assert isinstance(message, dict)
            message.pop("parts", None)
            out.write(fields_text({k: v for k, v in message.items() if v is not None}) + "\n")
        if reply.get("next") is not None:
            out.write(f"more: --after {text_value(reply.get('next'))}\n")
        return
    counts = reply.get("counts")
    assert isinstance(counts, dict)
    out.write(
        ", ".join(f"{text_value(n)} {printable(str(k))}" for k, n in counts.items())
        or "no message matched"
    )
    out.write("\n")
    messages = reply.get("messages")
    assert isinstance(messages, list)
    for message in messages:
        assert isinstance(message, dict)
        out.write(fields_text(message) + "\n")
