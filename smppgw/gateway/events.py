"""The events the gateway reports to applications: message status changes and inbound (MO) SMS.

Events are shaped like the provider's webhook payloads so that an application written against
the provider's HTTP API reads them unchanged: ``{"event": "sms:message:status", "payload":
{"id", "mobile", "status", "units", "submit_time", "sent_time", "deliv_time", "custom", "cid",
"err", ...}}`` (provider document, "SMS Example Request" and "Receive DLR Updates"). Times are
``YYYY-MM-DD HH:MM:SS`` in UTC. We add ``state`` (our aggregated outcome), ``final``, ``reason``
and per-part details.

The models are msgspec Structs (frozen, slotted) because they are encoded for every subscriber
and webhook call and decoded by the CLI; msgspec does both in one pass with typed errors.

Each stored event gets a *cursor*, a monotonically increasing integer assigned by the store's
append-only event log; subscribers resume from the last cursor they saw.
"""

from __future__ import annotations

import enum
import functools
import time
from dataclasses import dataclass

import msgspec

from smppgw.codec.errors import SmppError

__all__ = [
    "AdminEvent",
    "AdminPayload",
    "DeliveryState",
    "Event",
    "EventDecodeError",
    "EventType",
    "InboundEvent",
    "InboundPayload",
    "MessageRecord",
    "PartPayload",
    "ReceiptPayload",
    "StatusEvent",
    "StatusPayload",
    "StoredEvent",
    "decode_event",
    "encode_event",
    "format_time",
    "status_event",
    "status_payload",
    "stream_line",
]


class EventType(enum.StrEnum):
    """The ``event`` field of an event."""

    MESSAGE_STATUS = "sms:message:status"
    """A message's status changed: accepted by the SMSC, a delivery receipt, or a failure."""
    MESSAGE_IN = "sms:message:in"
    """A mobile-originated message arrived (long messages reassembled)."""
    ADMIN = "sms:admin"
    """An operator paused or resumed sending, cancelled or retried messages."""


class DeliveryState(enum.StrEnum):
    """A message's aggregated outcome over all its parts (the ``state`` payload field)."""

    QUEUED = "queued"
    """Stored, not yet accepted by an SMSC."""
    SUBMITTED = "submitted"
    """Every part was accepted by an SMSC; waiting for delivery receipts."""
    SENT = "sent"
    """Every part was accepted by an SMSC and no delivery receipt was asked for: final, as
    nothing more will be heard of it."""
    DELIVERED = "delivered"
    """Every part was delivered."""
    FAILED = "failed"
    """Refused by the SMSC, undeliverable, or given up after retries."""
    EXPIRED = "expired"
    """The validity period ran out before delivery."""
    REJECTED = "rejected"
    """Rejected by the SMSC or the network after acceptance (receipt stat REJECTD)."""
    UNKNOWN = "unknown"
    """The SMSC's answer was lost (timeout, link lost) and the policy did not resubmit."""
    CANCELLED = "cancelled"
    """An operator cancelled it while queued (or, scheduled, at the SMSC by cancel_sm)."""

    @property
    def is_final(self) -> bool:
        """Whether no further status change is expected."""
        return self not in (DeliveryState.QUEUED, DeliveryState.SUBMITTED)


class PartPayload(msgspec.Struct, frozen=True, kw_only=True):
    """One part of a message as seen by the SMSC."""

    part: int
    smsc_id: str | None = None
    status: str | None = None  # the receipt's stat (DELIVRD, UNDELIV...) when one came
    err: str | None = None


class StatusPayload(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of ``sms:message:status`` (and of the intake ``status`` reply).

    ``status`` is the provider's vocabulary where receipts decided the state (``DELIVRD``,
    ``UNDELIV``, ``EXPIRED``, ``REJECTD``, ``DND``...), else ours in upper case (``QUEUED``,
    ``SUBMITTED``, ``SENT``, ``FAILED``, ``UNKNOWN``). Over several parts, ``status`` and
    ``err`` are ``DELIVRD`` / ``000`` exactly when ``state`` is delivered, otherwise those of
    the part that decided the state (:func:`smppgw.gateway.correlate.outcome`). ``err`` is the
    receipt's error code (``000``...) or, for a submit the SMSC refused, the command_status
    name (``ESME_RINVDSTADR``). ``reason`` says in words why a final message was not
    delivered. ``cid`` repeats ``custom``: the provider's pull API names the client's
    reference ``cid``.
    """

    id: str
    mobile: str
    status: str
    state: DeliveryState
    final: bool
    units: int
    submit_time: str | None = None
    sent_time: str | None = None
    deliv_time: str | None = None
    custom: str | None = None
    cid: str | None = None
    err: str | None = None
    reason: str | None = None
    possible_duplicate: bool = False
    parts: tuple[PartPayload, ...] = ()
    # "query_sm" when the final state came from a query_sm answer (receipt recovery); absent
    # otherwise (msgspec leaves UNSET fields out of the JSON).
    via: str | msgspec.UnsetType = msgspec.UNSET
    # How many times an operator sent the message again after it failed (absent: never).
    retried: int | msgspec.UnsetType = msgspec.UNSET


class InboundPayload(msgspec.Struct, frozen=True, kw_only=True, rename={"from_": "from"}):
    """The payload of ``sms:message:in``: one mobile-originated message, reassembled.

    ``text`` is the decoded text when the data_coding is a text coding; otherwise it is None
    and ``hex`` holds the raw octets. A long message whose missing parts never came is written
    out after a while with ``complete`` false and the numbers of the ``missing`` parts (from 1);
    ``parts`` then counts the parts present.
    """

    id: str
    from_: str
    to: str
    text: str | None
    hex: str | None = None
    coding: int = 0
    parts: int = 1
    received_time: str
    server: str | None = None
    complete: bool = True
    missing: tuple[int, ...] = ()


class ReceiptPayload(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery receipt that matched no message (the intake's ``unmatched`` reply)."""

    smsc_id: str
    stat: str | None = None
    err: str | None = None
    done_date: str | None = None
    received_time: str | None = None
    server: str | None = None
    bind: str | None = None


class StatusEvent(msgspec.Struct, frozen=True, tag_field="event", tag="sms:message:status"):
    """A status change of one message."""

    payload: StatusPayload

    @property
    def type(self) -> EventType:
        """The event type (the ``event`` field)."""
        return EventType.MESSAGE_STATUS


class InboundEvent(msgspec.Struct, frozen=True, tag_field="event", tag="sms:message:in"):
    """An inbound (mobile-originated) message."""

    payload: InboundPayload

    @property
    def type(self) -> EventType:
        """The event type (the ``event`` field)."""
        return EventType.MESSAGE_IN


class AdminPayload(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of ``sms:admin``: who did what to how many messages.

    ``uid`` and ``pid`` are the peer credentials of the socket client (None when the
    operation did not come through the socket); ``counts`` says how many messages each
    outcome had (``cancelled``, ``not_cancellable``, ``retried``...); ``filter`` is the
    selection as the request gave it.
    """

    op: str
    uid: int | None = None
    pid: int | None = None
    server: str | None = None
    counts: dict[str, int] = msgspec.field(default_factory=dict)
    filter: dict[str, object] | None = None
    time: str | None = None


class AdminEvent(msgspec.Struct, frozen=True, tag_field="event", tag="sms:admin"):
    """An operator's action (pause, resume, cancel, retry)."""

    payload: AdminPayload

    @property
    def type(self) -> EventType:
        """The event type (the ``event`` field)."""
        return EventType.ADMIN


Event = StatusEvent | InboundEvent | AdminEvent


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as kept in the store's log: its cursor and its encoded body.

    The body is :func:`encode_event`'s output, stored once and sent as is to every subscriber
    and to the webhook (no re-encoding per recipient).
    """

    cursor: int
    body: bytes


class EventDecodeError(SmppError, ValueError):
    """Bytes that are not a known event."""


_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[StatusEvent | InboundEvent | AdminEvent] = msgspec.json.Decoder(
    Event
)


def encode_event(event: Event) -> bytes:
    """Encode an event as compact JSON: ``{"event": ..., "payload": {...}}``."""
    return _encoder.encode(event)


def decode_event(body: bytes) -> Event:
    """Decode an event encoded by :func:`encode_event`.

    Raises:
        EventDecodeError: the bytes are not JSON, or not an event type this version knows.
    """
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise EventDecodeError(f"not an event: {exc}") from exc


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A message as a store keeps it, from which its status payload is rendered.

    ``state`` is the store's life-cycle state (``submitting`` included); times are Unix
    seconds; ``parts`` is the number of parts (the payload's ``units``).
    """

    id: str
    mobile: str
    state: str
    status: str
    parts: int
    created_at: float
    sent_at: float | None
    deliv_at: float | None
    custom: str | None
    err: str | None
    reason: str | None
    possible_duplicate: bool
    retried: int = 0  # times an operator queued it again after it failed


def status_payload(
    message: MessageRecord,
    parts: tuple[PartPayload, ...],
    *,
    via: str | msgspec.UnsetType = msgspec.UNSET,
) -> StatusPayload:
    """The status payload of a stored message and its parts (a claimed message is queued to
    the client: ``submitting`` is the store's own state)."""
    state = message.state
    delivery = DeliveryState(state) if state != "submitting" else DeliveryState.QUEUED
    return StatusPayload(
        id=message.id,
        mobile=message.mobile,
        status=message.status,
        state=delivery,
        final=delivery.is_final,
        units=message.parts,
        submit_time=format_time(message.created_at),
        sent_time=format_time(message.sent_at),
        deliv_time=format_time(message.deliv_at),
        custom=message.custom,
        cid=message.custom,
        err=message.err,
        reason=message.reason,
        possible_duplicate=bool(message.possible_duplicate),
        parts=parts,
        via=via,
        retried=message.retried or msgspec.UNSET,
    )


def status_event(payload: StatusPayload) -> bytes:
    """The stored body of an ``sms:message:status`` event carrying ``payload``."""
    return _encoder.encode(StatusEvent(payload))


def stream_line(cursor: int, body: bytes) -> bytes:
    """The line sent to a subscriber: the event with its cursor, newline-terminated.

    The cursor is spliced in front of the stored body's first key, which avoids decoding and
    re-encoding every event for every subscriber: ``{"cursor":7,"event":...,"payload":...}``.

    Raises:
        ValueError: ``body`` is not a non-empty JSON object.
    """
    if not body.startswith(b"{") or body.startswith(b"{}"):
        raise ValueError("an event body must be a non-empty JSON object")
    return b'{"cursor":%d,%s\n' % (cursor, body[1:])


def format_time(timestamp: float | None) -> str | None:
    """Format a Unix timestamp as the provider does: ``YYYY-MM-DD HH:MM:SS`` (UTC here)."""
    if timestamp is None:
        return None
    return _format_second(int(timestamp))


@functools.lru_cache(maxsize=256)
def _format_second(second: int) -> str:
    # Events come in bursts stamped with the same few seconds: a small memo of a pure function.
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
