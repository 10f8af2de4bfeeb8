"""Correlation on PostgreSQL: parts by SMSC id, their receipts, receipts not matched yet.

A receipt may arrive on any instance's bind while another instance registers its part. Both
:meth:`CorrelationOps.register_part` and :meth:`CorrelationOps.match_dlr` first take a
transaction-level advisory lock on each of their keys (in one order, so two of them cannot
deadlock): the later of the two then sees what the earlier committed, and a receipt racing its
own submit_sm_resp is matched exactly once whichever instances they reach.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

from smppgw.gateway.correlate import Dlr, PartEntry, normalize_message_id
from smppgw.gateway.store.postgres.base import StoreBase, dlr_decoder, msgpack
from smppgw.gateway.store.postgres.writer import Conn, Tx

__all__ = ["CorrelationOps", "lock_keys"]

_UPSERT_PART: Final = (
    "INSERT INTO parts (message_id, part, parts, smsc_id, smsc_key, registered_at, expires_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (message_id, part) DO UPDATE SET"
    " smsc_id = excluded.smsc_id, smsc_key = excluded.smsc_key,"
    " registered_at = excluded.registered_at, expires_at = excluded.expires_at"
)
_ENTRY: Final = "message_id, part, parts, smsc_id, registered_at, expires_at"


def _signed32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


async def lock_keys(tx: Tx, schema: str, what: str, keys: Sequence[str]) -> None:
    """Take the advisory locks of ``keys`` (``what`` names the kind) until the commit, in
    ascending order."""
    space = _signed32(zlib.crc32(f"{schema}\0{what}".encode()))
    await tx.conn.execute(
        "SELECT pg_advisory_xact_lock($1::int, h) FROM (SELECT DISTINCT hashtext(k) AS h"
        " FROM unnest($2::text[]) AS k ORDER BY 1) AS x",
        space,
        list(keys),
    )


def _part_row(entry: PartEntry) -> tuple[object, ...]:
    return (
        entry.message_id,
        entry.part,
        entry.parts,
        entry.smsc_id,
        normalize_message_id(entry.smsc_id),
        entry.registered_at,
        entry.expires_at,
    )


async def _record_dlr(tx: Tx, entry: PartEntry, dlr: Dlr) -> tuple[Dlr | None, ...]:
    """Keep ``dlr`` as the part's latest receipt unless the part has a final one and ``dlr``
    is not final (SMSCs reorder receipts); return every part's latest."""
    final = dlr.final
    status = await tx.conn.execute(
        "UPDATE parts SET dlr = $1, dlr_final = $2, dlr_stat = $3, dlr_err = $4"
        " WHERE message_id = $5 AND part = $6 AND ($2 OR NOT dlr_final)",
        msgpack.encode(dlr),
        final,
        dlr.stat,
        dlr.err,
        entry.message_id,
        entry.part,
    )
    if entry.parts == 1 and status != "UPDATE 0":
        return (dlr,)
    latest: list[Dlr | None] = [None] * entry.parts
    for part, stored in await tx.conn.fetch(
        "SELECT part, dlr FROM parts WHERE message_id = $1", entry.message_id
    ):
        if stored is not None and 0 <= part < entry.parts:
            latest[part] = dlr_decoder.decode(stored)
    return tuple(latest)


async def _keep_previous_id(tx: Tx, entry: PartEntry, key: str) -> None:
    """Keep the id a part was registered under before (another accepted attempt) matchable
    as an alias, and flag the message."""
    prev = await tx.conn.fetchrow(
        "SELECT smsc_id, smsc_key, registered_at, expires_at FROM parts"
        " WHERE message_id = $1 AND part = $2",
        entry.message_id,
        entry.part,
    )
    if prev is None or not prev[1] or prev[1] == key:
        return
    await tx.conn.execute(
        "INSERT INTO part_aliases (smsc_key, message_id, part, parts, smsc_id, registered_at,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (smsc_key) DO UPDATE SET"
        " message_id = excluded.message_id, part = excluded.part, parts = excluded.parts,"
        " smsc_id = excluded.smsc_id, registered_at = excluded.registered_at,"
        " expires_at = excluded.expires_at",
        prev[1],
        entry.message_id,
        entry.part,
        entry.parts,
        prev[0],
        prev[2],
        prev[3],
    )
    await tx.conn.execute(
        "UPDATE messages SET possible_duplicate = true WHERE id = $1", entry.message_id
    )


class CorrelationOps(StoreBase):
    """The correlation map and the unmatched receipts, shared by every instance."""

    async def add_part(self, entry: PartEntry) -> None:
        """Record a part the SMSC accepted (no receipt matching: see :meth:`register_part`)."""
        row = _part_row(entry)

        async def op(tx: Tx) -> None:
            await tx.conn.execute(_UPSERT_PART, *row)

        await self._writer.call(op)

    async def register_part(
        self, entry: PartEntry, keys: Sequence[str], *, keep_previous: bool = False
    ) -> list[tuple[Dlr, tuple[Dlr | None, ...]]]:
        """Record an accepted part and take the receipts parked for it, on any instance."""
        row = _part_row(entry)
        key = normalize_message_id(entry.smsc_id)
        keys = tuple(dict.fromkeys(keys))
        schema = self._settings.schema

        async def op(tx: Tx) -> list[tuple[Dlr, tuple[Dlr | None, ...]]]:
            await lock_keys(tx, schema, "dlr", (*keys, key))
            if keep_previous:
                await _keep_previous_id(tx, entry, key)
            await tx.conn.execute(_UPSERT_PART, *row)
            rows = await tx.conn.fetch(
                "DELETE FROM unmatched WHERE key = ANY($1::text[]) RETURNING id, dlr", list(keys)
            )
            taken = [dlr_decoder.decode(r[1]) for r in sorted(rows, key=lambda r: r[0])]
            return [(dlr, await _record_dlr(tx, entry, dlr)) for dlr in taken]

        return await self._writer.call(op)

    async def match_dlr(
        self, keys: Sequence[str], dlr: Dlr, now: float, unmatched_expires: float
    ) -> tuple[PartEntry, tuple[Dlr | None, ...]] | None:
        """Record a receipt for its part (registered by any instance), or park it."""
        keys = tuple(keys)
        schema = self._settings.schema

        async def op(tx: Tx) -> tuple[PartEntry, tuple[Dlr | None, ...]] | None:
            await lock_keys(tx, schema, "dlr", keys)
            for table, order in (("parts", ", registered_at DESC"), ("part_aliases", "")):
                row = await tx.conn.fetchrow(
                    f"SELECT {_ENTRY} FROM {table} WHERE smsc_key = ANY($1::text[])"
                    f" AND expires_at > $2 ORDER BY array_position($1::text[], smsc_key){order}"
                    " LIMIT 1",
                    list(keys),
                    now,
                )
                if row is not None:
                    entry = PartEntry(*row)
                    return entry, await _record_dlr(tx, entry, dlr)
            await tx.conn.execute(
                "INSERT INTO unmatched (key, dlr, expires_at) VALUES ($1, $2, $3)",
                keys[0],
                msgpack.encode(dlr),
                unmatched_expires,
            )
            return None

        return await self._writer.call(op)

    async def unmatched(self, limit: int) -> list[Dlr]:
        """Up to ``limit`` unmatched receipts, oldest first (not removed)."""

        async def read(conn: Conn) -> list[Dlr]:
            rows = await conn.fetch("SELECT dlr FROM unmatched ORDER BY id LIMIT $1", limit)
            return [dlr_decoder.decode(r[0]) for r in rows]

        return await self._writer.read(read)

    async def count_unmatched(self) -> int:
        """How many receipts are held unmatched."""

        async def read(conn: Conn) -> int:
            return int(await conn.fetchval("SELECT count(*) FROM unmatched"))

        return await self._writer.read(read)

    async def expire(self, now: float) -> tuple[int, int]:
        """Forget correlation entries and unmatched receipts whose time is up.

        Returns:
            (parts forgotten, unmatched receipts removed).
        """

        async def op(tx: Tx) -> tuple[int, int]:
            parts = await tx.conn.execute(
                "UPDATE parts SET smsc_key = NULL WHERE smsc_key IS NOT NULL AND expires_at <= $1",
                now,
            )
            await tx.conn.execute("DELETE FROM part_aliases WHERE expires_at <= $1", now)
            unmatched = await tx.conn.execute("DELETE FROM unmatched WHERE expires_at <= $1", now)
            return _count(parts), _count(unmatched)

        return await self._writer.call(op)


def _count(status: str) -> int:
    """The row count of a command status (``UPDATE 3``)."""
    return int(status.rpartition(" ")[2])
