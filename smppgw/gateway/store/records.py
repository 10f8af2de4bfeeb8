"""The store's on-disk records: a message's request and a receipt, in an explicit format.

Each record is a MessagePack map of the fields below with ``v``, the record format's version.
The format is the store's own: the classes the rest of the daemon uses (the intake's
:class:`~smppgw.gateway.intake.SubmitRequest`, the correlator's
:class:`~smppgw.gateway.correlate.Dlr`) may change without changing what is on disk; a change
of the format is a new ``v`` and an upgrade of the stored rows (:mod:`.schema`).

Stores of schema 3 and older held those classes encoded as they were (a map of their fields,
the sender as a nested map, no version): :func:`upgrade_request` and :func:`upgrade_dlr` read
them once, when such a store is opened and upgraded in place.
"""

from __future__ import annotations

from typing import Final

import msgspec

from smppgw.codec.constants import DataCoding, MessageState
from smppgw.esme.numbers import Sender, SenderKind
from smppgw.gateway.correlate import Dlr
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store.health import StoreError

__all__ = [
    "RECORD_FORMAT",
    "DlrRecord",
    "RecordError",
    "RequestRecord",
    "decode_dlr",
    "decode_request",
    "encode_dlr",
    "encode_request",
    "upgrade_dlr",
    "upgrade_request",
]

RECORD_FORMAT: Final = 1


class RecordError(StoreError):
    """A stored record cannot be read (another format version, or damaged)."""


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A message's request as stored (format 1). ``sender_kind`` is ``alphanumeric``,
    ``international`` or ``short_code``; ``data_coding`` the alphabet's SMPP value."""

    v: int
    to: str
    sender: str
    sender_kind: str
    data_coding: int
    parts: int
    text: str | None = None
    payload: bytes | None = None
    flash: bool = False
    registered_delivery: bool = True
    pe_id: str | None = None
    template_id: str | None = None
    tm_id: str | None = None
    validity: str | None = None
    schedule: str | None = None
    priority: int = 0
    custom: str | None = None


class DlrRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A delivery receipt as stored (format 1). ``state`` is the message_state value."""

    v: int
    smsc_id: str
    received_at: float
    stat: str | None = None
    state: int | None = None
    err: str | None = None
    done_date: str | None = None
    server: str | None = None
    bind: str | None = None
    via: str | None = None


_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(RequestRecord)
_dlr_decoder = msgspec.msgpack.Decoder(DlrRecord)
# What schema 3 stores held: the classes themselves, encoded as maps of their fields.
_legacy_request_decoder = msgspec.msgpack.Decoder(SubmitRequest)
_legacy_dlr_decoder = msgspec.msgpack.Decoder(Dlr)


def encode_request(request: SubmitRequest) -> bytes:
    """The stored form of ``request``."""
    return _encoder.encode(
        RequestRecord(
            v=RECORD_FORMAT,
            to=request.to,
            sender=request.sender.value,
            sender_kind=request.sender.kind.value,
            data_coding=int(request.data_coding),
            parts=request.parts,
            text=request.text,
            payload=request.payload,
            flash=request.flash,
            registered_delivery=request.registered_delivery,
            pe_id=request.pe_id,
            template_id=request.template_id,
            tm_id=request.tm_id,
            validity=request.validity,
            schedule=request.schedule,
            priority=request.priority,
            custom=request.custom,
        )
    )


def decode_request(blob: bytes) -> SubmitRequest:
    """The request stored as ``blob`` (by :func:`encode_request`).

    Raises:
        RecordError: not a request record of a format this version reads.
    """
    try:
        r = _request_decoder.decode(blob)
        if r.v != RECORD_FORMAT:
            raise RecordError(f"a stored request has record format {r.v}, not {RECORD_FORMAT}")
        return SubmitRequest(
            to=r.to,
            sender=Sender(r.sender, SenderKind(r.sender_kind)),
            text=r.text,
            payload=r.payload,
            data_coding=DataCoding(r.data_coding),
            parts=r.parts,
            flash=r.flash,
            registered_delivery=r.registered_delivery,
            pe_id=r.pe_id,
            template_id=r.template_id,
            tm_id=r.tm_id,
            validity=r.validity,
            schedule=r.schedule,
            priority=r.priority,
            custom=r.custom,
        )
    except (msgspec.DecodeError, ValueError) as exc:
        raise RecordError(f"a stored request cannot be read: {exc}") from exc


def encode_dlr(dlr: Dlr) -> bytes:
    """The stored form of a receipt."""
    return _encoder.encode(
        DlrRecord(
            v=RECORD_FORMAT,
            smsc_id=dlr.smsc_id,
            received_at=dlr.received_at,
            stat=dlr.stat,
            state=None if dlr.state is None else int(dlr.state),
            err=dlr.err,
            done_date=dlr.done_date,
            server=dlr.server,
            bind=dlr.bind,
            via=dlr.via,
        )
    )


def decode_dlr(blob: bytes) -> Dlr:
    """The receipt stored as ``blob`` (by :func:`encode_dlr`).

    Raises:
        RecordError: not a receipt record of a format this version reads.
    """
    try:
        r = _dlr_decoder.decode(blob)
        if r.v != RECORD_FORMAT:
            raise RecordError(f"a stored receipt has record format {r.v}, not {RECORD_FORMAT}")
        return Dlr(
            smsc_id=r.smsc_id,
            stat=r.stat,
            state=None if r.state is None else MessageState(r.state),
            err=r.err,
            done_date=r.done_date,
            received_at=r.received_at,
            server=r.server,
            bind=r.bind,
            via=r.via,
        )
    except (msgspec.DecodeError, ValueError) as exc:
        raise RecordError(f"a stored receipt cannot be read: {exc}") from exc


def upgrade_request(blob: bytes) -> bytes:
    """A request as a schema 3 store held it, in the current format."""
    return encode_request(_legacy_request_decoder.decode(blob))


def upgrade_dlr(blob: bytes) -> bytes:
    """A receipt as a schema 3 store held it, in the current format."""
    return encode_dlr(_legacy_dlr_decoder.decode(blob))
