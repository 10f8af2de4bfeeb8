"""``smppgw events``: the daemon's events as JSON lines, from now or a cursor, and with
``--follow`` for ever, across daemon restarts."""

from __future__ import annotations

import argparse
import asyncio
from typing import TextIO

from smppgw.gateway.cli.client import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    Client,
    CliError,
    socket_path,
)
from smppgw.gateway.cli.output import error_text, printable
from smppgw.gateway.events import EventType

__all__ = ["EVENT_TYPES", "events_command"]

EVENT_TYPES = tuple(t.value for t in EventType)
_RECONNECT_FIRST = 0.1  # seconds before the first attempt to reconnect, doubling up to:
_RECONNECT_MAX = 5.0


class _EventStream:
    """One subscription, followed across reconnects: the cursor is the last event seen."""

    def __init__(
        self, path: str, types: frozenset[str], out: TextIO, err: TextIO, client: Client
    ) -> None:
        self.path = path
        self.cursor = 0
        self._types = types
        self._out = out
        self._err = err
        self._client = client

    async def subscribe(self, cursor: int | None) -> int:
        """Subscribe after ``cursor`` (None: now); returns the newest event's cursor."""
        request: dict[str, object] = {"op": "subscribe"}
        if cursor is not None:
            request["cursor"] = cursor
        # Types are filtered here, not by the daemon: every event's cursor must arrive for
        # the command to know when it has caught up, and to resume after the last one.
        reply = await self._client.call(request)
        if not reply.get("ok"):
            raise CliError(printable(error_text(reply)), EXIT_FAILED)
        start, last = reply.get("cursor"), reply.get("last")
        assert isinstance(start, int)
        assert isinstance(last, int)
        self.cursor = start
        return last

    async def print_until(self, last: int | None) -> None:
        """Print events until the one at ``last`` (None: for ever).

        Raises:
            CliError: EXIT_UNAVAILABLE when the connection is lost, EXIT_FAILED when the
                daemon ends the stream with an error.
        """
        client = self._client
        while last is None or self.cursor < last:
            line = await client.receive_line()
            event = client.decode(line)
            cursor = event.get("cursor")
            if not isinstance(cursor, int):  # an error line: the daemon ends the stream
                raise CliError(printable(error_text(event)), EXIT_FAILED)
            if not self._types or event.get("event") in self._types:
                self._out.write(line.decode("utf-8"))
                self._out.flush()
            self.cursor = cursor

    async def reconnect(self, why: CliError) -> None:
        """Connect and subscribe again after the last cursor seen, backing off up to 5 s."""
        self.say(f"{why}; reconnecting, to resume after cursor {self.cursor}")
        await self._client.close()
        delay = _RECONNECT_FIRST
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX)
            try:
                self._client = await Client.connect(self.path)
            except CliError:
                continue
            try:
                await self.subscribe(self.cursor)
            except CliError as exc:
                await self._client.close()
                if exc.code != EXIT_UNAVAILABLE:
                    raise
                continue
            self.say(f"reconnected to {self.path}; resuming after cursor {self.cursor}")
            return

    def say(self, text: str) -> None:
        self._err.write(f"smppgw events: {text}\n")
        self._err.flush()

    async def close(self) -> None:
        await self._client.close()


async def events_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.cursor is not None and args.cursor < 0:
        raise CliError(f"--cursor must be 0 or more, got {args.cursor}")
    path = socket_path(args)
    stream = _EventStream(path, frozenset(args.type or ()), out, err, await Client.connect(path))
    try:
        last = await stream.subscribe(args.cursor)
        if args.cursor is None:
            verb, more = (
                ("following", "") if args.follow else ("printing", ", --follow to keep going")
            )
            stream.say(
                f"{verb} events from now (cursor {stream.cursor}); --cursor 0 for the stored "
                f"history{more}"
            )
        elif args.follow:
            stream.say(f"following events after cursor {stream.cursor}")
        while True:
            try:
                await stream.print_until(None if args.follow else last)
            except CliError as exc:
                if not args.follow or exc.code != EXIT_UNAVAILABLE:
                    raise
                await stream.reconnect(exc)
            else:
                return EXIT_OK
    finally:
        await stream.close()
