"""What the parts of :class:`~smppgw.gateway.store.postgres.store.PostgresStore` share, and
the rows they read back as status payloads."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Final

import asyncpg
import msgspec

from smppgw.gateway.correlate import Dlr
from smppgw.gateway.events import DeliveryState, PartPayload, StatusPayload, format_time
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store.postgres.settings import PostgresSettings
from smppgw.gateway.store.postgres.writer import Conn, Writer

__all__ = ["PAYLOAD_COLUMNS", "StoreBase", "payload", "status_payload", "with_parts"]

PAYLOAD_COLUMNS: Final = (
    "id, mobile, state, status, parts, created_at, sent_at, deliv_at, custom, err, reason,"
    " possible_duplicate"
)

_PART_COLUMNS: Final = ("part", "smsc_id", "dlr_stat", "dlr_err")


def with_parts(returning: str) -> str:
    """``returning`` (a statement ``RETURNING PAYLOAD_COLUMNS``) followed, in the same round
    trip, by the message's parts as four arrays in part order (what :func:`payload` reads)."""
    arrays = ", ".join(
        f"array(SELECT p.{c} FROM parts p WHERE p.message_id = m.id ORDER BY p.part)"
        for c in _PART_COLUMNS
    )
    return f"WITH m AS ({returning}) SELECT m.*, {arrays} FROM m"


msgpack: Final = msgspec.msgpack.Encoder()
request_decoder: Final = msgspec.msgpack.Decoder(SubmitRequest)
dlr_decoder: Final = msgspec.msgpack.Decoder(Dlr)


class StoreBase:
    """The state every part of the store uses."""

    _writer: Writer
    _settings: PostgresSettings
    _clock: Callable[[], float]

    def __init__(self) -> None:
        # Message ids: 80 random bits drawn once per process, then a counter (32 hex digits,
        # like a UUID's): unique across instances without asking the database.
        self._id_prefix = os.urandom(10).hex()
        self._id_counter = itertools.count()

    def _new_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):012x}"

    @property
    def _instance(self) -> str:
        return self._settings.instance


async def status_payload(conn: Conn, message_id: str) -> StatusPayload | None:
    row = await conn.fetchrow(f"SELECT {PAYLOAD_COLUMNS} FROM messages WHERE id = $1", message_id)
    return None if row is None else await payload(conn, row)


async def payload(
    conn: Conn,
    row: asyncpg.Record,
    parts: tuple[PartPayload, ...] | None = None,
) -> StatusPayload:
    """The status payload of a message row (``PAYLOAD_COLUMNS``); its parts are read unless
    given."""
    columns = tuple(row)
    mid, mobile, state, status, units, created_at, sent_at, deliv_at, custom, err, reason, dup = (
        columns[:12]
    )
    delivery = DeliveryState(state) if state != "submitting" else DeliveryState.QUEUED
    if parts is None and len(columns) > 12:
        parts = tuple(
            PartPayload(part=p, smsc_id=i, status=s, err=e)
            for p, i, s, e in zip(*columns[12:16], strict=True)
        )
    if parts is None:
        rows = await conn.fetch(
            "SELECT part, smsc_id, dlr_stat, dlr_err FROM parts WHERE message_id = $1"
            " ORDER BY part",
            mid,
        )
        parts = tuple(PartPayload(part=p, smsc_id=i, status=s, err=e) for p, i, s, e in rows)
    return StatusPayload(
        id=mid,
        mobile=mobile,
        status=status,
        state=delivery,
        final=delivery.is_final,
        units=units,
        submit_time=format_time(created_at),
        sent_time=format_time(sent_at),
        deliv_time=format_time(deliv_at),
        custom=custom,
        cid=custom,
        err=err,
        reason=reason,
        possible_duplicate=bool(dup),
        parts=parts,
    )
