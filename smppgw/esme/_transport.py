"""A session's transport: opening it (TCP or TLS, failures named), and writing to it
coalesced per turn of the event loop, counted.

The first PDU of a turn goes at once (no added latency), the next ones together at the end of
the turn: under load one write (one system call) carries a window of PDUs. The count of octets
handed to the kernel tells whether a request was ever written (see
:class:`~smppgw.esme.session_types.NotSentError`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from smppgw.codec import Pdu
from smppgw.esme.session_types import MAX_LATE, ConnectError, SessionSettings
from smppgw.esme.tls import is_handshake_failure

if TYPE_CHECKING:
    from smppgw.esme.observe import Observer

__all__ = ["LateResponses", "Writer", "open_transport"]

log = logging.getLogger("smppgw.esme.session")


class LateResponses:
    """Futures for the responses of requests that timed out: an SMSC slower than the response
    timeout still decided them. At most :data:`MAX_LATE` (the oldest beyond it give up)."""

    __slots__ = ("_futures", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._futures: dict[int, asyncio.Future[Pdu]] = {}

    def expect(self, seq: int) -> asyncio.Future[Pdu]:
        """A future for the response to ``seq``, should it still come."""
        late: asyncio.Future[Pdu] = self._loop.create_future()
        self._futures[seq] = late
        if len(self._futures) > MAX_LATE:
            self._futures.pop(next(iter(self._futures))).cancel()
        return late

    def take(self, response: Pdu, endpoint: str) -> None:
        """Hand a response whose request awaits nothing to whoever still waits for it."""
        seq = response.sequence_number
        late = self._futures.pop(seq, None)
        if late is None:
            log.warning("%s: response for unknown sequence %d dropped", endpoint, seq)
            return
        log.warning("%s: response to sequence %d came after the response timeout", endpoint, seq)
        if not late.done():
            late.set_result(response)

    def cancel(self) -> None:
        """The link closed: no response can come any more."""
        futures, self._futures = self._futures, {}
        for future in futures.values():
            future.cancel()


class Writer:
    """Writes to one transport (set :attr:`transport` once it is made)."""

    __slots__ = ("_in_turn", "_loop", "_out", "queued", "transport")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._out: list[bytes] = []  # written at the end of this turn of the loop
        self._in_turn = False  # something was written in this turn: queue the rest
        self.queued = 0  # octets given to write() since the transport was made

    def write(self, data: bytes) -> None:
        """Write ``data`` now, or at the end of this turn after what came before it."""
        self.queued += len(data)
        if self._in_turn:
            self._out.append(data)
            return
        self._in_turn = True
        self._loop.call_soon(self.flush)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def flush(self) -> None:
        """Write what this turn queued."""
        self._in_turn = False
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def written(self) -> int:
        """Octets handed to the kernel so far (over TLS, octets still being encrypted count as
        written: that only errs towards "the peer may have them")."""
        unsent = sum(map(len, self._out))
        transport = self.transport
        if transport is not None and not transport.is_closing():
            unsent += transport.get_write_buffer_size()
        return self.queued - unsent

    def abort(self) -> int:
        """Flush what this turn queued and abort the transport; return :meth:`written` before
        the abort discarded the rest."""
        transport = self.transport
        if transport is None:
            return self.written()
        if transport.is_closing():
            written = self.written()  # the transport's buffer is gone: count it as written
            self._out.clear()
        else:
            self.flush()  # responses already given (deliver_sm_resp, unbind_resp) still go
            written = self.written()
        transport.abort()
        return written


async def open_transport(
    settings: SessionSettings, session: asyncio.Protocol, observer: Observer
) -> None:
    """Open the TCP or TLS connection with ``session`` as its protocol.

    Raises:
        ConnectError: not in ``connect_timeout``, refused, or the TLS handshake failed (named).
    """
    ssl_context = None
    if settings.tls is not None:
        try:
            ssl_context = settings.tls.context()
        except (OSError, ValueError) as exc:
            raise ConnectError(f"TLS settings for {settings.endpoint}: {exc}") from exc
    server_hostname = None if settings.tls is None else settings.tls.server_name or settings.host
    try:
        async with asyncio.timeout(settings.connect_timeout):
            await asyncio.get_running_loop().create_connection(
                lambda: session,
                settings.host,
                settings.port,
                ssl=ssl_context,
                server_hostname=server_hostname,
            )
    except (OSError, TimeoutError) as exc:
        observer.bind_state(settings.server, settings.name, "closed")
        if settings.tls is not None and is_handshake_failure(exc):
            reason = await settings.tls.explain_failure(
                exc, settings.host, settings.port, settings.connect_timeout
            )
            raise ConnectError(
                f"TLS handshake with {settings.host}:{settings.port} failed: {reason}"
            ) from exc
        cause = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise ConnectError(f"connect to {settings.endpoint} failed: {cause}") from exc
