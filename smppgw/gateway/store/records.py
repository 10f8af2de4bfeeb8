"""The store's on-disk records: a message's request and a receipt, in an explicit format.

Each record is a MessagePack map of the fields of :class:`RequestRecord` or :class:`DlrRecord`,
``v`` (the record format's version) first. The format is the store's own and is written
through those classes; a change of it is a new ``v`` and an upgrade of the stored rows
(:mod:`.schema`). For speed, a record of the current format is read straight into the class
the daemon uses (the intake's :class:`~smppgw.gateway.intake.SubmitRequest`, the correlator's
:class:`~smppgw.gateway.correlate.Dlr`: one decoding pass, no copy), so their field names are
the record's; ``tests/test_store_records.py`` holds every field of both to its record, and a
class that renames a field needs a new format and its upgrade.

Stores of schema 3 and older held those classes encoded as msgspec did (the same maps, without
``v``): :func:`upgrade_request` and :func:`upgrade_dlr` read
them once, when such a store is opened and upgraded in place.
"""

from __future__ import annotations

from typing import Final

import msgspec

from smppgw.gateway.correlate import Dlr
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store.health import StoreError

__all__ = [
    "RECORD_FORMAT",
    "DlrRecord",
    "RecordError",
    "RequestRecord",
    "SenderRecord",
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


class SenderRecord(msgspec.Struct, frozen=True, gc=False):
    """A sender id as stored: ``kind`` is ``alphanumeric``, ``international`` or
    ``short_code``."""

    value: str
    kind: str


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A message's request as stored (format 1); ``data_coding`` is the alphabet's SMPP
    value."""

    v: int
    to: str
    sender: SenderRecord
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
# A record of the current format has the fields of these classes (and ``v``, which they skip).
_request_decoder = msgspec.msgpack.Decoder(SubmitRequest)
_dlr_decoder = msgspec.msgpack.Decoder(Dlr)
# The key ``v`` as MessagePack (a one-character string), first in every record.
_V: Final = b"\xa1v"


def _version(blob: bytes) -> int | None:
    """The format version of a record: its first key must be ``v`` holding a small
    non-negative integer (read from the bytes: no decoding pass for it)."""
    head = blob[:1]
    if head and 0x80 <= head[0] <= 0x8F:  # fixmap
        start = 1
    elif head == b"\xde":  # map 16
        start = 3
    else:
        return None
    if blob[start : start + 2] != _V or len(blob) <= start + 2 or blob[start + 2] > 0x7F:
        return None
    return blob[start + 2]


def encode_request(request: SubmitRequest) -> bytes:
    """The stored form of ``request``."""
    return _encoder.encode(
        RequestRecord(
            v=RECORD_FORMAT,
            to=request.to,
            sender=SenderRecord(request.sender.value, request.sender.kind.value),
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
    version = _version(blob)
    if version is None:
        raise RecordError("a stored request is not a record (no format version)")
    if version != RECORD_FORMAT:
        raise RecordError(f"a stored request has record format {version}, not {RECORD_FORMAT}")
    try:
        return _request_decoder.decode(blob)
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
    version = _version(blob)
    if version is None:
        raise RecordError("a stored receipt is not a record (no format version)")
    if version != RECORD_FORMAT:
        raise RecordError(f"a stored receipt has record format {version}, not {RECORD_FORMAT}")
    try:
        return _dlr_decoder.decode(blob)
    except (msgspec.DecodeError, ValueError) as exc:
        raise RecordError(f"a stored receipt cannot be read: {exc}") from exc


def upgrade_request(blob: bytes) -> bytes:
    """A request as a schema 3 store held it, in the current format."""
    return encode_request(_request_decoder.decode(blob))


def upgrade_dlr(blob: bytes) -> bytes:
    """A receipt as a schema 3 store held it, in the current format."""
    return encode_dlr(_dlr_decoder.decode(blob))
