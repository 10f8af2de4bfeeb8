"""``smppgw send``: one message from the options, or many from a file (``--file``), or what
they would cost (``--dry-run``)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import BinaryIO, TextIO

import msgspec

from smppgw.gateway.cli.client import (
    EXIT_FAILED,
    EXIT_OK,
    Client,
    CliError,
    Intake,
    find_intake,
)
from smppgw.gateway.cli.filesend import FileSender, Progress
from smppgw.gateway.cli.output import error_text, preview_lines, printable
from smppgw.gateway.cli.rows import InputError, count_rows, open_rows, read_rows, time_value

__all__ = ["message_from_args", "send_command"]


def message_from_args(args: argparse.Namespace) -> dict[str, object]:
    """Message fields given as options (also the defaults for every row of --file)."""
    given = {
        "to": args.to,
        "from": args.sender,
        "text": args.text,
        "hex": args.hex,
        "coding": args.coding,
        "pe_id": args.pe_id,
        "template_id": args.template_id,
        "tm_id": args.tm_id,
        "validity": time_value(args.validity),
        "schedule": time_value(args.schedule),
        "max_parts": args.max_parts,
        "custom": args.custom,
        "priority": args.priority,
    }
    message: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    if args.flash:
        message["flash"] = True
    if args.no_dlr:
        message["registered_delivery"] = False
    if args.transliterate:
        message["transliterate"] = True
    return message


_ROW_OPTIONS = (("--to", "to"), ("--text", "text"), ("--hex", "hex"), ("--custom", "custom"))
_MAX_WINDOW = 1024


async def send_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    intake = find_intake(args)
    message = message_from_args(args)
    if args.file is None:
        if "to" not in message or not {"text", "hex"} & message.keys():
            raise CliError("give --to and --text (or --hex), or --file")
    else:
        _check_file_options(args, intake)
        return await _send_from_file(args, intake=intake, defaults=message, out=out, err=err)
    client = await Client.connect(intake.path)
    try:
        reply = await client.call({"op": "preview" if args.dry_run else "submit", **message})
        if args.json:
            out.write(msgspec.json.encode(reply).decode() + "\n")
        elif args.dry_run:
            (out if reply.get("ok") else err).writelines(preview_lines(reply))
        elif reply.get("ok"):
            kind = "duplicate of" if reply.get("duplicate") else "accepted"
            out.write(f"{kind} id={reply.get('id')} parts={reply.get('parts')}\n")
        else:
            err.write(f"rejected: {printable(error_text(reply))}\n")
        return EXIT_OK if reply.get("ok") else EXIT_FAILED
    finally:
        await client.close()


def _check_file_options(args: argparse.Namespace, intake: Intake) -> None:
    per_row = [flag for flag, name in _ROW_OPTIONS if getattr(args, name) is not None]
    if per_row:
        raise CliError(
            f"{', '.join(per_row)} cannot be used with --file: the value would be the same for "
            "every row (give it as a column or key of the file)"
        )
    if not 1 <= args.batch <= intake.max_batch:
        raise CliError(f"--batch must be 1..{intake.max_batch} messages, got {args.batch}")
    if not 1 <= args.window <= _MAX_WINDOW:
        raise CliError(f"--window must be 1..{_MAX_WINDOW} requests, got {args.window}")


async def _send_from_file(
    args: argparse.Namespace,
    *,
    intake: Intake,
    defaults: dict[str, object],
    out: TextIO,
    err: TextIO,
) -> int:
    name = str(args.file)
    fmt = args.format or ("csv" if name.lower().endswith(".csv") else "jsonl")
    async with contextlib.AsyncExitStack() as stack:
        total = None
        if name == "-":
            file: BinaryIO = sys.stdin.buffer
        else:
            path = Path(name)
            file = stack.enter_context(open_rows(path))
            total = count_rows(path, fmt, name, intake.max_line)
        progress = Progress(err, total, enabled=not args.quiet and (args.progress or err.isatty()))
        sender = FileSender(
            intake.path,
            read_rows(file, fmt, name, intake.max_line),
            defaults=defaults,
            batch=args.batch,
            window=args.window,
            max_line=intake.max_line,
            progress=progress,
            json_out=out if args.json else None,
            op="preview" if args.dry_run else "submit",
            preview_out=out if args.dry_run and not args.json else None,
        )
        stack.push_async_callback(sender.close)
        started = time.monotonic()
        try:
            totals = await sender.run()
        finally:
            progress.finish()
            _summary(
                sender,
                time.monotonic() - started,
                out if not args.json else err,
                err,
                dry_run=args.dry_run,
            )
    if sender.stopped is not None:
        raise InputError(f"{sender.stopped}; reading stopped there, the rows before it were sent")
    return EXIT_FAILED if totals.rejected or totals.malformed else EXIT_OK


def _summary(
    sender: FileSender, elapsed: float, out: TextIO, err: TextIO, *, dry_run: bool = False
) -> None:
    """The rows not accepted (the first 20), then one line of totals: printed however it ends."""
    totals = sender.totals
    err.writelines(f"{printable(text)}\n" for text in totals.problems)
    hidden = totals.rejected + totals.malformed - len(totals.problems)
    if hidden > 0:
        err.write(f"... and {hidden} more rows not accepted\n")
    rows = totals.accepted + totals.rejected + totals.malformed + totals.unanswered
    if dry_run:
        line = (
            f"{rows} messages previewed in {elapsed:.1f} s, nothing sent: {totals.accepted} "
            f"would be accepted ({totals.parts} parts), {totals.rejected} would be rejected, "
            f"{totals.malformed} malformed"
        )
    else:
        line = (
            f"{rows} messages in {elapsed:.1f} s: {totals.accepted} accepted "
            f"({totals.duplicates} duplicates), {totals.rejected} rejected, "
            f"{totals.malformed} malformed"
        )
    if totals.unanswered:
        line += f", {totals.unanswered} without an answer (resend them with the same custom)"
    out.write(line + "\n")
