"""Requests from the SMSC (deliver_sm, data_sm) handled with flow control.

At most ``window`` handlers run at once; while that many are unanswered the session stops
reading from the socket, so TCP backpressure makes the SMSC wait for our responses instead of
every queued receipt becoming a task in memory (an SMSC flushes its whole backlog at a bind).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from smppgw.codec import CommandStatus, DataSm, DataSmResp, DeliverSm, DeliverSmResp, Pdu

__all__ = ["InboundHandler", "InboundWindow", "Origin", "inbound_origin"]

log = logging.getLogger("smppgw.esme.session")


InboundHandler = Callable[[DeliverSm | DataSm], Awaitable[CommandStatus]]
"""Called with each deliver_sm / data_sm; its result is the response's command_status. While
it runs, :func:`inbound_origin` tells which server and bind the PDU came on."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an inbound PDU arrived: the configured server and bind names."""

    server: str
    bind: str


_ORIGIN: contextvars.ContextVar[Origin | None] = contextvars.ContextVar(
    "smppgw_inbound_origin", default=None
)


def inbound_origin() -> Origin | None:
    """The server and bind of the PDU the current inbound handler is answering (None outside
    a handler, or for a session without names)."""
    return _ORIGIN.get()


class InboundWindow:
    """Runs the handler of each inbound PDU, at most ``window`` at once, and answers it.

    Args:
        handler: the owner's handler (None: every PDU is answered ESME_RX_T_APPN).
        origin: the server and bind it is for (what :func:`inbound_origin` tells).
        window: handlers that may run at once (at least 1).
        answer: writes the response to the PDU.
        reading: called with ``on=False`` to stop reading from the socket, ``on=True`` to
            read again.
    """

    def __init__(
        self,
        handler: InboundHandler | None,
        origin: Origin,
        *,
        window: int,
        answer: Callable[[Pdu], None],
        reading: Callable[..., None],
    ) -> None:
        self._handler = handler
        self._origin = origin
        self._window = max(1, window)
        self._answer = answer
        self._reading = reading
        self._tasks: set[asyncio.Task[None]] = set()
        # deliver_sm / data_sm read while window handlers ran: the rest of the socket read
        # they came in (reading is paused until the backlog is served).
        self._backlog: deque[DeliverSm | DataSm] = deque()
        self.paused = False
        self.closed = False

    def received(self, pdu: DeliverSm | DataSm) -> None:
        """Handle ``pdu`` now, or after the ones already waiting (reading paused meanwhile)."""
        if self._backlog or len(self._tasks) >= self._window:
            self._backlog.append(pdu)
            if not self.paused:
                self.paused = True
                self._reading(on=False)
        else:
            self._start(pdu)

    def close(self) -> None:
        """Answer nothing more: the PDUs waiting are never answered, so the SMSC sends them
        again (on another bind)."""
        self.closed = True
        self._backlog.clear()

    def _start(self, pdu: DeliverSm | DataSm) -> None:
        task = asyncio.get_running_loop().create_task(self._run(pdu))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        backlog = self._backlog
        if self.closed:
            backlog.clear()
            return
        while backlog and len(self._tasks) < self._window:
            self._start(backlog.popleft())
        if not backlog and self.paused:
            self.paused = False
            self._reading(on=True)

    async def _run(self, pdu: DeliverSm | DataSm) -> None:
        # This task runs in its own copy of the context: the handler sees this bind's origin.
        _ORIGIN.set(self._origin)
        status = CommandStatus.ESME_RX_T_APPN
        if self._handler is not None:
            try:
                status = await self._handler(pdu)
            except Exception:
                log.exception("inbound handler failed; answering ESME_RX_T_APPN")
        seq = pdu.sequence_number
        if isinstance(pdu, DeliverSm):
            self._answer(DeliverSmResp(sequence_number=seq, command_status=status))
        else:
            self._answer(DataSmResp(sequence_number=seq, command_status=status))
