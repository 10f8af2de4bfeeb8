"""Wire trace: every PDU a session sends and receives, decoded, to a :class:`Tracer`.

A session holds no tap until one is given (:meth:`smppgw.esme.session.Session.trace`); then it
hands its octets both ways to a :class:`WireTap`, which frames and decodes them on its own
(the connection's framing is untouched) and calls the tracer once per PDU. Untraced, a session
pays one attribute check per read and nothing per write.

:data:`TRACE_LABEL` names what the current task is sending (a message id and part): a request
written while it is set carries it to the tracer.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Protocol

from smppgw.codec import Framer, Pdu, decode
from smppgw.codec.errors import SmppError

__all__ = ["TRACE_LABEL", "Direction", "Tracer", "WireTap"]

log = logging.getLogger(__name__)

TRACE_LABEL: ContextVar[str | None] = ContextVar("smppgw_trace_label", default=None)
"""What the current task is sending (``message-id/part``), for the tracer's submit line."""


class Direction(enum.StrEnum):
    SENT = "sent"
    RECEIVED = "received"


class Tracer(Protocol):
    """Told of each PDU on a traced bind. ``label`` is :data:`TRACE_LABEL` as it was when a
    PDU was written (None for what the peer sent and for what the link itself answers)."""

    def __call__(
        self, direction: Direction, server: str, bind: str, pdu: Pdu, label: str | None
    ) -> None: ...

    def undecodable(self, direction: Direction, server: str, bind: str, problem: str) -> None:
        """Octets on the wire that are not a PDU (the tap stops reading that direction)."""


class WireTap:
    """One session's tap: its own framer per direction, decoding for the tracer."""

    __slots__ = ("_bind", "_broken", "_framers", "_server", "tracer")

    def __init__(self, tracer: Tracer, server: str, bind: str) -> None:
        self.tracer = tracer
        self._server, self._bind = server, bind
        self._framers = {Direction.SENT: Framer(), Direction.RECEIVED: Framer()}
        self._broken: set[Direction] = set()

    def received(self, data: bytes) -> None:
        """Octets read from the peer (any chunk: PDUs may span reads)."""
        self._octets(Direction.RECEIVED, data, None)

    def sending(self, write: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """``write`` that shows its octets to the tracer first."""

        def traced(data: bytes) -> None:
            self._octets(Direction.SENT, data, TRACE_LABEL.get())
            write(data)

        return traced

    def _octets(self, direction: Direction, data: bytes, label: str | None) -> None:
        if direction in self._broken:
            return
        try:
            frames = self._framers[direction].feed(data)
        except SmppError as exc:
            self._broken.add(direction)
            self.tracer.undecodable(direction, self._server, self._bind, str(exc))
            return
        for frame in frames:
            try:
                pdu = decode(frame)
            except SmppError as exc:
                self.tracer.undecodable(direction, self._server, self._bind, str(exc))
                continue
            try:
                self.tracer(direction, self._server, self._bind, pdu, label)
            except Exception:  # a tracer's fault must never reach the link
                log.exception("wire trace: the tracer failed on %s", type(pdu).__name__)
