"""What every client command shares: exit codes, the error they end with, finding the
daemon's socket and its request limits, and the newline-delimited JSON client."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeGuard

import msgspec

from smppgw.esme.settings import default_of
from smppgw.gateway.intake.settings import IntakeSettings

__all__ = [
    "DEFAULT_SOCKET",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "CliError",
    "Client",
    "Intake",
    "find_intake",
    "socket_path",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

DEFAULT_SOCKET: Final[str] = default_of(IntakeSettings, "path")
_REPLY_LIMIT = 16 * 1024 * 1024  # a batch reply lists one result per message
# [intake] max_line and max_batch of a daemon configured without them
_DEFAULT_MAX_LINE: Final[int] = default_of(IntakeSettings, "max_line")
_DEFAULT_MAX_BATCH: Final[int] = default_of(IntakeSettings, "max_batch")


class CliError(Exception):
    """A problem to report on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# --- the socket client ------------------------------------------------------------------------


class Client:
    """A newline-delimited JSON connection to the daemon's intake socket."""

    def __init__(
        self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.path = path
        self._reader = reader
        self._writer = writer
        self._decoder = msgspec.json.Decoder(dict[str, object])

    @classmethod
    async def connect(cls, path: str) -> Client:
        try:
            reader, writer = await asyncio.open_unix_connection(path, limit=_REPLY_LIMIT)
        except OSError as exc:
            raise CliError(
                f"cannot reach the daemon at {path}: {exc.strerror or exc}", EXIT_UNAVAILABLE
            ) from exc
        return cls(path, reader, writer)

    def send(self, request: dict[str, object]) -> None:
        self._writer.write(msgspec.json.encode(request) + b"\n")

    def send_raw(self, line: bytes) -> None:
        self._writer.write(line)

    async def drain(self) -> None:
        await self._writer.drain()

    async def receive_line(self) -> bytes:
        try:
            return await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise CliError(
                f"the daemon at {self.path} closed the connection", EXIT_UNAVAILABLE
            ) from exc
        except OSError as exc:
            raise CliError(
                f"lost the connection to the daemon at {self.path}: {exc.strerror or exc}",
                EXIT_UNAVAILABLE,
            ) from exc

    def decode(self, line: bytes) -> dict[str, object]:
        return self._decoder.decode(line)

    async def receive(self) -> dict[str, object]:
        return self.decode(await self.receive_line())

    async def call(self, request: dict[str, object]) -> dict[str, object]:
        self.send(request)
        await self.drain()
        return await self.receive()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


@dataclass(frozen=True, slots=True)
class Intake:
    """Where the daemon listens, and the limits of its requests (the daemon's defaults)."""

    path: str
    max_line: int = _DEFAULT_MAX_LINE
    max_batch: int = _DEFAULT_MAX_BATCH


def find_intake(args: argparse.Namespace) -> Intake:
    """The socket (see the module's docstring) and, from ``--config``, its request limits."""
    section: dict[str, object] = {}
    if args.config:
        # Only [intake] is read: a client needs neither the secrets nor full validation.
        try:
            with Path(args.config).open("rb") as file:
                data = tomllib.load(file)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CliError(f"{args.config}: {exc}") from exc
        found = data.get("intake", {})
        section = found if isinstance(found, dict) else {}
    path = section.get("path")
    if isinstance(path, str) and path:
        # Relative to the file's folder, as the daemon reads it: any working directory works.
        path = os.path.normpath(Path(args.config).absolute().parent / path)
    if args.socket:
        path = str(args.socket)
    elif not args.config:
        path = os.environ.get("SMPPGW_SOCKET")
    max_line = section.get("max_line")
    max_batch = section.get("max_batch")
    return Intake(
        path if isinstance(path, str) and path else DEFAULT_SOCKET,
        max_line if _is_count(max_line) else _DEFAULT_MAX_LINE,
        max_batch if _is_count(max_batch) else _DEFAULT_MAX_BATCH,
    )


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def socket_path(args: argparse.Namespace) -> str:
    return find_intake(args).path
