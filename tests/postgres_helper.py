"""PostgreSQL for the cluster tests: a fresh schema per test, and a proxy that can lose it.

The server is the machine's PostgreSQL at 127.0.0.1:5432 (trust authentication), or
``SMPPGW_TEST_POSTGRES``. When it cannot be reached the tests fail under CI (which installs and
starts it, see .ci/run) and are skipped elsewhere with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

DSN = os.environ.get("SMPPGW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True, slots=True)
class Database:
    dsn: str
    schema: str


@contextlib.asynccontextmanager
async def fresh_schema() -> AsyncIterator[Database]:
    """A schema of its own for one test, dropped after it."""
    try:
        admin = await asyncpg.connect(DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL at {urlsplit(DSN).netloc} unreachable: {exc!r}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI installs and starts it: see .ci/run)")
        pytest.skip(reason)
    schema = f"test_{secrets.token_hex(6)}"
    try:
        yield Database(DSN, schema)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@dataclass(eq=False)
class FreezableProxy:
    """A TCP relay to PostgreSQL that can go silent, as a lost network does: connections stay
    open, bytes stop flowing both ways, new connections are accepted and hang."""

    target: tuple[str, int]
    frozen: bool = False
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def dsn(self, dsn: str) -> str:
        parts = urlsplit(dsn)
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.append(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                if self.frozen:
                    continue  # lost on the way
                sink.write(data)
                await sink.drain()
        sink.transport.abort()


def target() -> tuple[str, int]:
    parts = urlsplit(DSN)
    return (parts.hostname or "127.0.0.1", parts.port or 5432)
