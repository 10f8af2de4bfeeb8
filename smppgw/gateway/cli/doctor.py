"""``smppgw doctor``: check every configured bind slot (:mod:`smppgw.gateway.doctor`)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TextIO

import msgspec

from smppgw.gateway.cli.client import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError

__all__ = ["doctor_command"]


async def doctor_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from smppgw.esme.numbers import NumberError, validate_msisdn, validate_sender  # noqa: PLC0415
    from smppgw.gateway.config import ConfigError, bind_manager_settings, load_config  # noqa: PLC0415
    from smppgw.gateway.doctor import diagnose  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    sender = None
    try:
        if args.to is not None:
            validate_msisdn(args.to, field="--to")
            sender_id = args.sender or config.defaults.sender
            if sender_id is None:
                raise CliError("--to needs a sender: --from or [defaults] sender", EXIT_USAGE)
            sender = validate_sender(sender_id, field="--from")
    except NumberError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if args.receipt_timeout <= 0 or args.probes < 1:
        raise CliError("--receipt-timeout must be > 0 and --probes >= 1", EXIT_USAGE)
    if args.binds is not None and args.binds < 1:
        raise CliError("--binds must be >= 1", EXIT_USAGE)
    if config.simulator.enabled:
        err.write(
            "the servers are the simulator inside `smppgw run`: start the daemon first; its "
            "own binds count against the account's limit (use --binds 1)\n"
        )
    settings = bind_manager_settings(config)
    if args.binds is not None:
        servers = tuple(
            dataclasses.replace(
                server,
                binds=min(args.binds, server.binds),
                bind_type=server.bind_type
                if not isinstance(server.bind_type, tuple)
                else server.bind_type[: args.binds],
            )
            for server in settings.servers
            if server.binds > 0
        )
        settings = dataclasses.replace(settings, servers=servers)
    report = await diagnose(
        settings,
        test_to=args.to,
        sender=sender,
        receipt_timeout=args.receipt_timeout,
        probes=args.probes,
    )
    if args.json:
        out.write(msgspec.json.encode(report.to_json()).decode() + "\n")
    else:
        out.writelines(f"{line}\n" for line in report.lines())
    return EXIT_OK if report.ok else EXIT_FAILED
