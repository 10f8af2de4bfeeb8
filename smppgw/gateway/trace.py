"""Wire trace on demand: the PDUs of one bind, one server or all, decoded, to the log.

Off by default. :meth:`WireTrace.switch` (the intake's ``trace`` op) turns it on for a scope,
optionally for ``duration`` seconds; each PDU of a traced bind becomes one INFO line of the
``smppgw.trace`` logger. Destination and source numbers are masked (the first two digits, the
country code, and the last two kept) and message text is shown by its length and coding only,
unless ``reveal`` was asked, which is logged as a WARNING.

One trace id follows a message: the id and part of the message a submit_sm carries
(:data:`smppgw.esme.trace.TRACE_LABEL`) is written on its line, on its response's (matched by
sequence number on that bind) and on its receipt's (matched by the SMSC message id of the
response), whichever bind the receipt comes on: ``grep`` the id to read the whole story. A
response or receipt of a traced message is logged even on a bind outside the scope.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from smppgw.codec import CommandId, DataSm, DeliverSm, GenericNack, Pdu, SubmitSm
from smppgw.codec.constants import EsmClass
from smppgw.codec.errors import SmppError
from smppgw.codec.receipt import parse_receipt
from smppgw.codec.text import decode_text
from smppgw.esme.bind_state import SessionFactory, SessionLike
from smppgw.esme.inbound import InboundHandler
from smppgw.esme.observe import NULL_OBSERVER, Observer
from smppgw.esme.session import Session, SessionSettings
from smppgw.esme.trace import Direction, WireTap
from smppgw.gateway.intake.protocol import ErrorCode, RequestError, TraceRequest

__all__ = ["TRACE_LOGGER", "TraceState", "WireTrace", "mask_number", "pdu_line", "trace_op"]

TRACE_LOGGER = "smppgw.trace"
_K = TypeVar("_K")
_MAX_REMEMBERED = 100_000  # submits awaiting their response, SMSC ids awaiting their receipt


def mask_number(number: str) -> str:
    """``919876543278`` -> ``91********78``: the country code and the last two digits kept.
    A short code or an alphanumeric sender is not a subscriber's number and stays."""
    if len(number) < 8 or not number.lstrip("+").isdigit():
        return number
    plus = "+" if number.startswith("+") else ""
    digits = number.lstrip("+")
    return f"{plus}{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"


def _text(pdu: SubmitSm | DeliverSm | DataSm, *, reveal: bool) -> str:
    data = pdu.short_message if not isinstance(pdu, DataSm) else (pdu.message_payload or b"")
    if not data and not isinstance(pdu, DataSm):
        data = pdu.message_payload or b""
    coding = pdu.data_coding
    if not reveal:
        return f"coding={coding} length={len(data)}"
    try:
        text = decode_text(data, coding)
    except (SmppError, ValueError):
        return f"coding={coding} length={len(data)} hex={data.hex()}"
    return f"coding={coding} length={len(data)} text={text!r}"


def _receipt_id(pdu: DeliverSm | DataSm) -> tuple[str | None, str]:
    """The SMSC message id a receipt is about, and its stat/err words."""
    try:
        parsed = parse_receipt(pdu.short_message if isinstance(pdu, DeliverSm) else b"")
    except (SmppError, ValueError):
        parsed = None
    rid = pdu.receipted_message_id or (parsed.id if parsed else None)
    words = f" stat={parsed.stat} err={parsed.err}" if parsed is not None else ""
    return rid, words


def pdu_line(pdu: Pdu, *, reveal: bool) -> str:
    """The fields that matter of one PDU: command, sequence, status, then its own."""
    name = CommandId(pdu.command_id).name.lower()
    head = f"{name} seq={pdu.sequence_number} status={pdu.command_status.name}"
    show = (lambda n: n) if reveal else mask_number
    if isinstance(pdu, SubmitSm | DeliverSm | DataSm):
        fields = (
            f"from={show(pdu.source_addr)} to={show(pdu.destination_addr)} "
            f"esm_class={pdu.esm_class:#04x} dlr={pdu.registered_delivery}"
        )
        if isinstance(pdu, DeliverSm | DataSm) and pdu.esm_class & EsmClass.DELIVERY_RECEIPT:
            rid, words = _receipt_id(pdu)
            return f"{head} receipt {fields} smsc_id={rid}{words}"
        return f"{head} {fields} {_text(pdu, reveal=reveal)} tlvs={len(pdu.tlvs)}"
    message_id = getattr(pdu, "message_id", None)
    if isinstance(message_id, str) and message_id:
        return f"{head} smsc_id={message_id}"
    if isinstance(pdu, GenericNack):
        return f"{head} (refused)"
    return head


@dataclass(slots=True, frozen=True)
class TraceState:
    """What is traced: ``on``, its scope (``server``/``bind``, both None: all), ``reveal``,
    and when it switches itself off (seconds since the epoch, None: not by itself)."""

    on: bool = False
    server: str | None = None
    bind: str | None = None
    reveal: bool = False
    until: float | None = None

    def reply(self) -> dict[str, object]:
        scope = self.bind or self.server or "all"
        return {
            "on": self.on,
            "scope": scope if self.on else None,
            "reveal": self.reveal,
            "until": self.until,
        }


class WireTrace:
    """The daemon's wire trace: a session factory that taps what it opens, and the switch.

    Args:
        connect: opens one bound session (:meth:`Session.connect`).
        clock: seconds since the epoch (for ``until``).
        logger: where the lines go (``smppgw.trace``).
    """

    def __init__(
        self,
        connect: SessionFactory = Session.connect,
        *,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self._connect = connect
        self._clock = clock
        self._log = logger or logging.getLogger(TRACE_LOGGER)
        self._sessions: list[Session] = []
        self.state = TraceState()
        self._timer: asyncio.TimerHandle | None = None
        self._submits: dict[tuple[str, str, int], str] = {}  # (server, bind, seq) -> trace id
        self._smsc_ids: dict[str, str] = {}  # SMSC message id -> trace id

    @property
    def on(self) -> bool:
        return self.state.on

    async def connect(
        self,
        settings: SessionSettings,
        *,
        on_inbound: InboundHandler | None = None,
        observer: Observer = NULL_OBSERVER,
        clock: Callable[[], float] = time.monotonic,
    ) -> SessionLike:
        """Open a session (the bind manager's factory) and tap it if a trace is on."""
        session = await self._connect(
            settings, on_inbound=on_inbound, observer=observer, clock=clock
        )
        if not isinstance(session, Session):
            return session  # a stand-in (tests): nothing on a wire to show
        self._sessions = [s for s in self._sessions if not s.closed]
        self._sessions.append(session)
        if self.state.on:
            session.trace(WireTap(self, session.server, session.name))
        return session

    def switch(
        self,
        *,
        on: bool,
        server: str | None = None,
        bind: str | None = None,
        reveal: bool = False,
        duration: float | None = None,
    ) -> TraceState:
        """Turn the trace on (for ``bind``, ``server`` or all) or off; return the new state."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not on:
            if self.state.on:
                self._log.info("wire trace off")
            self.state = TraceState()
            self._submits.clear()
            self._smsc_ids.clear()
            for session in self._sessions:
                session.trace(None)
            return self.state
        until = None
        if duration is not None:
            until = self._clock() + duration
            self._timer = asyncio.get_running_loop().call_later(duration, self._expire)
        self.state = TraceState(on=True, server=server, bind=bind, reveal=reveal, until=until)
        scope = bind or server or "all binds"
        if reveal:
            self._log.warning("wire trace on for %s REVEALING numbers and message text", scope)
        else:
            self._log.info("wire trace on for %s", scope)
        self._sessions = [s for s in self._sessions if not s.closed]
        for session in self._sessions:
            session.trace(WireTap(self, session.server, session.name))
        return self.state

    def _expire(self) -> None:
        self._timer = None
        self._log.info("wire trace: its duration is over")
        self.switch(on=False)

    def _in_scope(self, server: str, bind: str) -> bool:
        s = self.state
        if s.bind is not None:
            return s.bind in (f"{server}/{bind}", bind)
        return s.server is None or s.server == server

    def __call__(
        self, direction: Direction, server: str, bind: str, pdu: Pdu, label: str | None
    ) -> None:
        if not self.state.on:
            return  # a tap still held somewhere: off is off
        in_scope = self._in_scope(server, bind)
        if direction is Direction.SENT and not in_scope:
            return  # what we write outside the scope starts no story
        trace_id = self._trace_id(direction, server, bind, pdu, label)
        if trace_id is None and not in_scope:
            return
        line = pdu_line(pdu, reveal=self.state.reveal)
        tail = f" trace={trace_id}" if trace_id is not None else ""
        self._log.info("%s %s %s%s", direction.value, _where(server, bind), line, tail)

    def undecodable(self, direction: Direction, server: str, bind: str, problem: str) -> None:
        if self._in_scope(server, bind):
            self._log.info("%s %s undecodable: %s", direction.value, _where(server, bind), problem)

    def _trace_id(
        self, direction: Direction, server: str, bind: str, pdu: Pdu, label: str | None
    ) -> str | None:
        command = pdu.command_id
        if direction is Direction.SENT:
            if label is not None and command in (CommandId.SUBMIT_SM, CommandId.DATA_SM):
                _remember(self._submits, (server, bind, pdu.sequence_number), label)
                return label
            return None
        if command in (CommandId.SUBMIT_SM_RESP, CommandId.DATA_SM_RESP, CommandId.GENERIC_NACK):
            found = self._submits.pop((server, bind, pdu.sequence_number), None)
            message_id = getattr(pdu, "message_id", "")
            if found is not None and message_id:
                _remember(self._smsc_ids, message_id, found)
            return found
        if isinstance(pdu, DeliverSm | DataSm) and pdu.esm_class & EsmClass.DELIVERY_RECEIPT:
            rid, _ = _receipt_id(pdu)
            return self._smsc_ids.get(rid) if rid else None
        return None


def trace_op(
    trace: WireTrace, request: TraceRequest, binds: Callable[[], Iterable[tuple[str, str]]]
) -> dict[str, object]:
    """The ``trace`` op: switch ``trace`` as asked (``binds()``: the configured
    ``(server, bind)`` pairs, to refuse a scope naming none); the reply's fields.

    Raises:
        RequestError: ``server`` and ``bind`` both given, or naming no configured bind.
    """
    if request.on is None:
        return trace.state.reply()
    if not request.on:
        return trace.switch(on=False).reply()
    if request.server is not None and request.bind is not None:
        raise RequestError(ErrorCode.INVALID_REQUEST, "bind: give at most one of bind, server")
    pairs = list(binds())
    if request.server is not None and all(s != request.server for s, _ in pairs):
        raise RequestError(ErrorCode.NOT_FOUND, f"server: no server {request.server!r}")
    if request.bind is not None and all(request.bind not in (b, f"{s}/{b}") for s, b in pairs):
        raise RequestError(ErrorCode.NOT_FOUND, f"bind: no bind {request.bind!r}")
    state = trace.switch(
        on=True,
        server=request.server,
        bind=request.bind,
        reveal=request.reveal,
        duration=request.duration,
    )
    return state.reply()


def _where(server: str, bind: str) -> str:
    """``smpp1/trx-0``: the daemon's bind names already start with their server's."""
    return bind if bind.startswith(f"{server}/") else f"{server}/{bind}"


def _remember(table: dict[_K, str], key: _K, value: str) -> None:
    table[key] = value
    if len(table) > _MAX_REMEMBERED:
        del table[next(iter(table))]
