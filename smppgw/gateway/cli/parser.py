"""The ``smppgw`` command line: its options, and running the command they name."""

from __future__ import annotations

import argparse
import asyncio
import io
import platform
import sys
from collections.abc import Sequence

from smppgw import __version__
from smppgw.gateway.cli.admin import ADMIN_COMMANDS, add_admin_commands, admin_command
from smppgw.gateway.cli.client import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CliError
from smppgw.gateway.cli.doctor import doctor_command
from smppgw.gateway.cli.events import EVENT_TYPES, events_command
from smppgw.gateway.cli.migrate import migrate_command
from smppgw.gateway.cli.reload import reload_command
from smppgw.gateway.cli.run import (
    check_config_command,
    run_command,
    simulator_main,
    version_command,
)
from smppgw.gateway.cli.send import send_command
from smppgw.gateway.cli.status import status_command
from smppgw.gateway.cli.top import top_command
from smppgw.gateway.cli.trace import trace_command

__all__ = ["build_parser", "main"]


def _add_socket(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("daemon socket")
    group.add_argument("--socket", metavar="PATH", help="the intake socket path")
    group.add_argument("--config", metavar="PATH", help="read the socket path from a config")


def _add_doctor(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = commands.add_parser(
        "doctor", help="check every configured bind slot, and optionally send a test message"
    )
    doctor.add_argument("--config", required=True, metavar="PATH", help="TOML configuration")
    doctor.add_argument("--to", help="send one test message to this number, await its receipt")
    doctor.add_argument("--from", dest="sender", help="the test message's sender")
    doctor.add_argument(
        "--receipt-timeout", type=float, default=60.0, help="seconds to await the receipt (60)"
    )
    doctor.add_argument(
        "--probes", type=int, default=3, help="enquire_link round trips per bind (3)"
    )
    doctor.add_argument(
        "--binds", type=int, help="check at most this many slots per server (default: all)"
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_send(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser("send", help="submit one message, or many from a file")
    send.add_argument("--to", help="destination, E.164 digits without + (e.g. 14155550101)")
    send.add_argument("--from", dest="sender", help="sender id (default: [defaults] sender)")
    send.add_argument("--text", help="message text")
    send.add_argument("--hex", help="raw payload octets in hex (instead of --text)")
    send.add_argument("--coding", choices=["auto", "gsm", "latin1", "ucs2"])
    send.add_argument("--pe-id", help="DLT principal entity id")
    send.add_argument("--template-id", help="DLT template id")
    send.add_argument("--tm-id", help="DLT telemarketer id")
    send.add_argument("--flash", action="store_true", help="flash SMS (message class 0)")
    send.add_argument("--no-dlr", action="store_true", help="request no delivery receipt")
    send.add_argument("--validity", help="seconds, SMPP time or ISO 8601 time")
    send.add_argument("--schedule", help="seconds, SMPP time or ISO 8601 time")
    send.add_argument("--max-parts", type=int, help="refuse texts needing more parts")
    send.add_argument("--custom", help="your reference (idempotency key)")
    send.add_argument("--priority", type=int, choices=range(4), help="0..3")
    send.add_argument("--file", help="CSV (with header) or JSONL file of messages; - = stdin")
    send.add_argument("--format", choices=["csv", "jsonl"], help="file format (by extension)")
    send.add_argument("--batch", type=int, default=100, help="messages per request (100)")
    send.add_argument("--window", type=int, default=8, help="requests in flight (8)")
    send.add_argument("--progress", action="store_true", help="progress bar even off a tty")
    send.add_argument("--quiet", action="store_true", help="no progress bar")
    send.add_argument("--json", action="store_true", help="print replies as JSON lines")
    send.add_argument(
        "--transliterate",
        action="store_true",
        help="replace typographic quotes, dashes... with GSM look-alikes before coding",
    )
    send.add_argument(
        "--dry-run",
        action="store_true",
        help="only show the coding, parts and split each message would have; send nothing",
    )
    _add_socket(send)


def _add_trace(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trace = commands.add_parser(
        "trace", help="log the PDUs on the wire, decoded (trace on|off|status)"
    )
    trace.add_argument("action", choices=("on", "off", "status"))
    scope = trace.add_mutually_exclusive_group()
    scope.add_argument("--bind", metavar="B", help="with on: only this bind (server/bind)")
    scope.add_argument("--server", metavar="S", help="with on: only this server's binds")
    trace.add_argument(
        "--reveal", action="store_true", help="with on: numbers and text unmasked (audited)"
    )
    trace.add_argument(
        "--for", dest="duration", type=float, metavar="SECONDS", help="with on: then off by itself"
    )
    _add_socket(trace)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smppgw",
        description="SMPP v3.4 gateway: daemon, client and simulator.",
        epilog="Exit codes: 0 ok, 1 refused by the daemon, 2 usage or configuration error, "
        "3 daemon unreachable, 130 interrupted.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"smppgw {__version__} (Python {platform.python_version()})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", required=True, metavar="PATH", help="TOML configuration")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument("--log-format", choices=["text", "json"])

    commands.add_parser("simulate", help="run the SMSC simulator (simulate --help)", add_help=False)

    _add_send(commands)

    status = commands.add_parser("status", help="a message's status, or --ping the daemon")
    status.add_argument("id", nargs="?", help="the message id returned by send")
    status.add_argument("--custom", help="look up by your reference instead")
    status.add_argument("--ping", action="store_true", help="only check the daemon answers")
    status.add_argument(
        "--unmatched",
        action="store_true",
        help="list the delivery receipts that matched no message (kept, never dropped)",
    )
    status.add_argument(
        "--limit", type=int, default=100, help="with --unmatched: how many to list (100)"
    )
    status.add_argument(
        "--cluster",
        action="store_true",
        help="the instances sharing the account: slots held per server, rate share",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    _add_socket(status)

    events = commands.add_parser("events", help="print events as JSON lines")
    events.add_argument(
        "--cursor", type=int, help="start after this cursor, 0 = the stored history (default: now)"
    )
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument(
        "--type",
        action="append",
        choices=EVENT_TYPES,
        help="only this event type (repeatable)",
    )
    _add_socket(events)

    top = commands.add_parser("top", help="the daemon's live figures, refreshed every second")
    top.add_argument("--once", action="store_true", help="print one screen (or --json) and exit")
    top.add_argument("--json", action="store_true", help="with --once: the stats reply as JSON")
    top.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="seconds between refreshes (1)"
    )
    _add_socket(top)

    reload = commands.add_parser(
        "reload", help="the daemon reads its configuration file again (as SIGHUP does)"
    )
    reload.add_argument("--json", action="store_true", help="print the daemon's reply as JSON")
    _add_socket(reload)

    check = commands.add_parser("check-config", help="validate a configuration")
    check.add_argument("--config", required=True, metavar="PATH")

    migrate = commands.add_parser(
        "migrate", help="create or migrate the PostgreSQL schemas of a cluster"
    )
    migrate.add_argument("--config", required=True, metavar="PATH")

    add_admin_commands(commands)
    _add_doctor(commands)
    _add_trace(commands)
    commands.add_parser("version", help="print the version")
    return parser


_ASYNC_COMMANDS = {
    "send": send_command,
    "status": status_command,
    "events": events_command,
    "top": top_command,
    "reload": reload_command,
    "doctor": doctor_command,
    "trace": trace_command,
    "migrate": migrate_command,
    **dict.fromkeys(ADMIN_COMMANDS, admin_command),
}
_SYNC_COMMANDS = {
    "check-config": check_config_command,
    "run": run_command,
    "version": version_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``smppgw`` command line; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["simulate"]:
        try:
            return simulator_main()(args_list[1:])
        except CliError as exc:
            sys.stderr.write(f"smppgw simulate: {exc}\n")
            return exc.code
    try:
        args = build_parser().parse_args(args_list)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    try:
        if args.command in _ASYNC_COMMANDS:
            return asyncio.run(_ASYNC_COMMANDS[args.command](args, out, err))
        return _SYNC_COMMANDS[args.command](args, out, err)
    except CliError as exc:
        err.write(f"smppgw {args.command}: {exc}\n")
        return exc.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `smppgw events | head`: the reader went away; not an error of ours. Point stdout at
        # nothing so the interpreter's final flush does not fail again.
        sys.stdout = io.TextIOWrapper(io.BytesIO())
        return EXIT_OK
