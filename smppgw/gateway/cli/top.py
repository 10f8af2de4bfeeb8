"""``smppgw top``: the options checked, then :mod:`smppgw.gateway.top` runs the view."""

from __future__ import annotations

import argparse
import math
from typing import TextIO

from smppgw.gateway.cli.client import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    CliError,
    find_intake,
)

__all__ = ["top_command"]

_MIN_INTERVAL = 0.1
_MAX_INTERVAL = 3600.0


async def top_command(args: argparse.Namespace, out: TextIO, _err: TextIO) -> int:
    """Run ``smppgw top``; the exit code (CliError for a usage error or an absent daemon)."""
    from smppgw.gateway.top import DaemonUnreachableError, run_top  # noqa: PLC0415 - rich

    if not (math.isfinite(args.interval) and _MIN_INTERVAL <= args.interval <= _MAX_INTERVAL):
        raise CliError("--interval must be 0.1 to 3600 seconds")
    if args.json and not args.once:
        raise CliError("--json needs --once")
    try:
        await run_top(
            find_intake(args).path,
            once=args.once,
            as_json=args.json,
            interval=args.interval,
            out=out,
        )
    except DaemonUnreachableError as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from exc
    except ValueError as exc:
        raise CliError(str(exc), EXIT_FAILED) from exc
    return EXIT_OK
