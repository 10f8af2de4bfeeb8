"""The intake's listener: the Unix socket, the accept loop, and the bound on clients.

Each accepted client is served by a :class:`~smppgw.gateway.intake.connection.Connection`
that hands its lines to the server's one
:class:`~smppgw.gateway.intake.handler.RequestHandler`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import msgspec

from smppgw.esme.observe import NULL_OBSERVER, Observer
from smppgw.gateway.intake.admin import AdminBackend
from smppgw.gateway.intake.backend import Backend
from smppgw.gateway.intake.connection import CHUNK, Connection
from smppgw.gateway.intake.handler import Reply, RequestHandler, StartStream, TraceSwitch
from smppgw.gateway.intake.messages import MessageRules, TextCoder, default_coder
from smppgw.gateway.intake.protocol import ErrorCode, IntakeError, error_line
from smppgw.gateway.intake.settings import IntakeSettings

__all__ = ["IntakeServer"]

logger = logging.getLogger("smppgw.gateway.intake")

_BACKLOG = 100  # the listen queue
_ACCEPT_RETRY = 0.1  # seconds between accepts while file descriptors are exhausted
_REPORT_EVERY = 60.0  # seconds between two warnings about the same condition


def _existing_socket(path: Path) -> bool:
    """Whether ``path`` is a socket; creates the parent directory when missing.

    Raises:
        IntakeError: something that is not a socket is at ``path`` (never removed).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        raise IntakeError(f"intake socket {path} exists and is not a socket; not removing it")
    return True


async def _accepts_connections(path: Path) -> bool:
    """Whether a live server holds the socket (a stale one refuses connections)."""
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Return once ``sock`` is readable (a listening socket: a client waits to be accepted)."""
    ready = loop.create_future()
    loop.add_reader(sock.fileno(), _set_once, ready)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


def _remove_stale(path: Path) -> None:
    if path.is_socket():
        logger.debug("intake: removing socket %s", path)
        path.unlink(missing_ok=True)


def _set_permissions(path: Path, mode: int, group: str | None) -> None:
    # The socket exists with umask permissions for the moment between bind() and chmod(); the
    # socket's directory (systemd RuntimeDirectory, mode 0750) is what closes that window.
    path.chmod(mode)
    if group is not None:
        shutil.chown(path, group=group)


async def _listen(path: Path, mode: int, group: str | None) -> socket.socket:
    """A listening socket at ``path`` (a stale one removed) with ``mode`` and ``group``.

    Raises:
        IntakeError: the path is held by a live server or is not a socket.
    """
    if _existing_socket(path) and await _accepts_connections(path):
        raise IntakeError(f"intake socket {path} is in use by a running server")
    _remove_stale(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen(_BACKLOG)
        listener.setblocking(False)  # noqa: FBT003 - the socket API
        _set_permissions(path, mode, group)
    except BaseException:
        listener.close()
        raise
    return listener


@dataclass(slots=True)
class _Reported:
    """A warning logged at most once per :data:`_REPORT_EVERY`, counting the times between."""

    what: str
    total: int = 0
    _unreported: int = 0
    _last: float | None = None

    def add(self, now: float, detail: str) -> None:
        self.total += 1
        self._unreported += 1
        if self._last is None:
            logger.warning("%s: %s", self.what, detail)
        elif now - self._last >= _REPORT_EVERY:
            logger.warning(
                "%s: %s (%d times since the last warning)", self.what, detail, self._unreported
            )
        else:
            return
        self._last = now
        self._unreported = 0


class IntakeServer:
    """The Unix-socket NDJSON server (the protocol: :mod:`smppgw.gateway.intake`).

    Args:
        backend: stores messages and serves status and events.
        settings: socket path, permissions and limits.
        observer: told of every answered request (``intake_request``).
        coder: text rules; :mod:`smppgw.codec.text` by default.
        clock: the time now in seconds since the epoch (absolute times must be later).
        health: what ``ping`` reports: None when the gateway can take messages, else the
            reason it cannot (a full disk, a damaged store).
        stats: the fields of a ``stats`` reply (None: the op is refused as unknown).
        trace: switches the wire trace (None: the ``trace`` op is refused as unknown).
        cluster: the fields of a ``cluster`` reply (None, or answering None: a lone instance).
        admin: serves the operators' ops (None: they are refused as unknown).
        reload: the fields of a ``reload`` reply, after reading the configuration file again
            (raises RequestError ``invalid_config`` for a file that does not load; None: the
            op is refused as unknown).
    """

    def __init__(
        self,
        backend: Backend,
        settings: IntakeSettings,
        *,
        observer: Observer = NULL_OBSERVER,
        coder: TextCoder | None = None,
        clock: Callable[[], float] = time.time,
        health: Callable[[], str | None] = lambda: None,
        stats: Callable[[], Awaitable[dict[str, object]]] | None = None,
        trace: TraceSwitch | None = None,
        cluster: Callable[[], dict[str, object] | None] | None = None,
        admin: AdminBackend | None = None,
        reload: Callable[[], Awaitable[dict[str, object]]] | None = None,
    ) -> None:
        self._settings = settings
        self._observer = observer
        self._handler = RequestHandler(
            backend,
            settings,
            MessageRules(settings.defaults, coder or default_coder()),
            clock=clock,
            health=health,
            stats=stats,
            trace=trace,
            cluster=cluster,
            admin=admin,
            reload=reload,
        )
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._admin_listener: socket.socket | None = None
        self._admin_accepting: asyncio.Task[None] | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._refused = _Reported("intake: refused clients over max_clients")
        self._accept_failed = _Reported("intake: cannot accept clients")

    def apply(self, settings: IntakeSettings) -> None:
        """Take new limits and ``[defaults]`` (a reload): requests from now on and connections
        accepted from now on follow them; the socket's path, mode and group stay."""
        self._settings = settings
        self._handler.apply(settings)

    @property
    def accept_errors(self) -> int:
        """How many accepts failed (out of file descriptors, most likely) since start."""
        return self._accept_failed.total

    @property
    def path(self) -> str:
        """The socket path."""
        return self._settings.path

    @property
    def connections(self) -> int:
        """The number of open client connections."""
        return len(self._connections)

    async def start(self) -> None:
        """Create the socket (removing a stale one), set its mode and group, and listen; the
        same for the admin socket when ``admin_path`` is set.

        Raises:
            IntakeError: the path is held by a live server or is not a socket.
            OSError: the directory is not writable, the group does not exist...
        """
        settings = self._settings
        listener = await _listen(Path(settings.path), settings.mode, settings.group)
        self._listener = listener
        self._accepting = asyncio.create_task(self._accept_loop(listener))
        logger.info("intake: listening on %s (mode %04o)", settings.path, settings.mode)
        if settings.admin_path is not None:
            group = settings.admin_group if settings.admin_group is not None else settings.group
            try:
                admin = await _listen(Path(settings.admin_path), settings.admin_mode, group)
            except BaseException:
                await self.stop()
                raise
            self._admin_listener = admin
            self._admin_accepting = asyncio.create_task(self._accept_loop(admin, admin=True))
            logger.info(
                "intake: admin ops on %s only (mode %04o)", settings.admin_path, settings.admin_mode
            )

    async def stop(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - bounds a drain
        """Stop listening, close every connection, and remove the socket file.

        Connections are closed for reading at once; submits already handed to the backend
        finish (they are committed either way) for up to ``timeout`` seconds, then the rest
        is cancelled.
        """
        if self._listener is None or self._accepting is None:
            return
        for task in (self._accepting, self._admin_accepting):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        # Clients still in the listen queue see the connection reset.
        for listener in (self._listener, self._admin_listener):
            if listener is not None:
                listener.close()
        self._listener = self._accepting = None
        self._admin_listener = self._admin_accepting = None
        for writer in self._connections.values():
            writer.transport.abort()
        tasks = list(self._connections)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await asyncio.sleep(0)  # aborted transports close in a callback: let it run
        _remove_stale(Path(self._settings.path))
        if self._settings.admin_path is not None:
            _remove_stale(Path(self._settings.admin_path))

    async def answer(self, line: bytes, stream: StartStream) -> Reply:
        """The reply to one request line, as a client connected to the socket gets it.

        ``stream(cursor, types)`` is called when the line subscribes to events.
        """
        return await self._handler.answer(line, stream)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _accept_loop(self, listener: socket.socket, *, admin: bool = False) -> None:
        """Accept clients until cancelled.

        Our own loop rather than the event loop's server: when file descriptors run out, the
        asyncio loop logs a traceback a second and uvloop closes the clients unseen; here the
        client waits in the listen queue and one warning a minute says why.
        """
        loop = asyncio.get_running_loop()
        while True:
            # Wait for a client, then accept it without yielding: a cancellation (stop())
            # can only come while nothing is accepted. With ``loop.sock_accept`` a stop that
            # came just after the kernel handed over a client dropped that client's socket
            # unclosed.
            await _readable(loop, listener)
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                continue  # another wake-up took the client, or it went away
            except OSError as exc:
                self._accept_failed.add(
                    loop.time(),
                    f"{exc.strerror or exc} ({len(self._connections)} clients connected); "
                    f"raise the file limit (LimitNOFILE) or lower [intake] max_clients",
                )
                await asyncio.sleep(_ACCEPT_RETRY)
                continue
            if len(self._connections) >= self._settings.max_clients:
                self._refuse(conn, loop.time())
                continue
            try:
                await self._connect(loop, conn, admin=admin)
            except OSError:
                conn.close()

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, conn: socket.socket, *, admin: bool
    ) -> None:
        conn.setblocking(False)  # noqa: FBT003 - the socket API
        # The stream buffers at most 2 * CHUNK before it stops reading the socket.
        protocol = asyncio.StreamReaderProtocol(
            asyncio.StreamReader(limit=CHUNK), functools.partial(self._accept, admin=admin)
        )
        await loop.connect_accepted_socket(lambda: protocol, sock=conn)

    def _refuse(self, conn: socket.socket, now: float) -> None:
        limit = self._settings.max_clients
        line = error_line(
            msgspec.UNSET,
            ErrorCode.TOO_MANY_CLIENTS,
            f"{limit} clients are connected, the most this gateway serves; retry later",
        )
        with contextlib.suppress(OSError):
            conn.send(line)  # a new socket's buffer has room for one line: never blocks
        conn.close()
        self._refused.add(now, f"{limit} clients are connected")

    def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, admin: bool = False
    ) -> None:
        # A plain (not async) callback: the stream protocol calls it from connection_made, so
        # each connection is registered the moment it is accepted and stop() can close it
        # even before its task first runs.
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer, admin=admin))
        self._connections[task] = writer
        task.add_done_callback(self._connections.pop)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, admin: bool
    ) -> None:
        try:
            await Connection(
                self._handler, self._settings, self._observer, reader, writer, admin_socket=admin
            ).run()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
