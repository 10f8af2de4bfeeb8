"""SQLite store: parts by SMSC id, their receipts and the receipts not matched yet
(:class:`~smppgw.gateway.store.interfaces.Correlation`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from smppgw.gateway.correlate import Dlr, PartEntry, normalize_message_id
from smppgw.gateway.store.engine import SqliteEngine
from smppgw.gateway.store.records import decode_dlr, encode_dlr

__all__ = ["SqliteCorrelation"]


class SqliteCorrelation(SqliteEngine):
    """Correlation: each writing method one operation, so one transaction."""

    async def add_part(self, entry: PartEntry) -> None:
        """Record a part the SMSC accepted (no receipt matching: see :meth:`register_part`)."""
        row = _part_row(entry)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT_PART, row)

        await self._call(op)

    async def register_part(
        self, entry: PartEntry, keys: Sequence[str], *, keep_previous: bool = False
    ) -> list[tuple[Dlr, tuple[Dlr | None, ...]]]:
        """Record an accepted part and match the receipts that came before it (one step).

        With ``keep_previous`` an earlier id of the part stays matchable, in ``part_aliases``.
        """
        row = _part_row(entry)
        keys = tuple(dict.fromkeys(keys))
        key = normalize_message_id(entry.smsc_id)

        def op(conn: sqlite3.Connection) -> list[tuple[Dlr, tuple[Dlr | None, ...]]]:
            if keep_previous:
                _keep_previous_id(conn, entry, key)
            conn.execute(_UPSERT_PART, row)
            if not self._unmatched_rows:
                return []
            taken = _take_unmatched(conn, keys)
            self._unmatched_rows -= len(taken)
            return [(dlr, _record_dlr(conn, entry, dlr)) for dlr in taken]

        return await self._call(op)

    async def match_dlr(
        self, keys: Sequence[str], dlr: Dlr, now: float, unmatched_expires: float
    ) -> tuple[PartEntry, tuple[Dlr | None, ...]] | None:
        """Record a receipt for its part, or keep it as unmatched (one step)."""
        keys = tuple(keys)

        def op(conn: sqlite3.Connection) -> tuple[PartEntry, tuple[Dlr | None, ...]] | None:
            for key in keys:
                row = conn.execute(
                    "SELECT message_id, part, parts, smsc_id, registered_at, expires_at"
                    " FROM parts WHERE smsc_key = ? AND expires_at > ?"
                    " ORDER BY registered_at DESC LIMIT 1",
                    (key, now),
                ).fetchone()
                if row is not None:
                    entry = PartEntry(*row)
                    return entry, _record_dlr(conn, entry, dlr)
            for key in keys:  # an earlier accepted attempt of a part (see register_part)
                row = conn.execute(
                    "SELECT message_id, part, parts, smsc_id, registered_at, expires_at"
                    " FROM part_aliases WHERE smsc_key = ? AND expires_at > ?",
                    (key, now),
                ).fetchone()
                if row is not None:
                    entry = PartEntry(*row)
                    return entry, _record_dlr(conn, entry, dlr)
            conn.execute(
                "INSERT INTO unmatched (key, dlr, expires_at) VALUES (?, ?, ?)",
                (keys[0], encode_dlr(dlr), unmatched_expires),
            )
            self._unmatched_rows += 1
            return None

        return await self._call(op)

    async def unmatched(self, limit: int) -> list[Dlr]:
        """Up to ``limit`` unmatched receipts, oldest first (not removed)."""

        def op(conn: sqlite3.Connection) -> list[Dlr]:
            rows = conn.execute("SELECT dlr FROM unmatched ORDER BY id LIMIT ?", (limit,))
            return [decode_dlr(r[0]) for r in rows]

        return await self._call(op)

    async def count_unmatched(self) -> int:
        """How many receipts are held unmatched."""

        def op(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM unmatched").fetchone()[0])

        return await self._call(op)

    async def expire(self, now: float) -> tuple[int, int]:
        """Forget correlation entries and unmatched receipts whose time is up.

        Returns:
            (parts forgotten, unmatched receipts removed). A part's row stays (it is the
            message's history); only its SMSC id stops matching.
        """

        def op(conn: sqlite3.Connection) -> tuple[int, int]:
            parts = conn.execute(
                "UPDATE parts SET smsc_key = NULL WHERE smsc_key IS NOT NULL AND expires_at <= ?",
                (now,),
            ).rowcount
            conn.execute("DELETE FROM part_aliases WHERE expires_at <= ?", (now,))
            unmatched = conn.execute("DELETE FROM unmatched WHERE expires_at <= ?", (now,)).rowcount
            self._unmatched_rows -= unmatched
            return parts, unmatched

        return await self._call(op)


_UPSERT_PART: Final = (
    "INSERT INTO parts (message_id, part, parts, smsc_id, smsc_key, registered_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id, part) DO UPDATE SET"
    " smsc_id = excluded.smsc_id, smsc_key = excluded.smsc_key,"
    " registered_at = excluded.registered_at, expires_at = excluded.expires_at"
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


def _keep_previous_id(conn: sqlite3.Connection, entry: PartEntry, key: str) -> None:
    """Before a part is registered under ``key``: keep the id it was registered under before
    (another accepted attempt) matchable as an alias, and flag the message."""
    prev = conn.execute(
        "SELECT smsc_id, smsc_key, registered_at, expires_at FROM parts"
        " WHERE message_id = ? AND part = ?",
        (entry.message_id, entry.part),
    ).fetchone()
    if prev is None or not prev[1] or prev[1] == key:
        return
    conn.execute(
        "INSERT OR REPLACE INTO part_aliases (smsc_key, message_id, part, parts, smsc_id,"
        " registered_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (prev[1], entry.message_id, entry.part, entry.parts, prev[0], prev[2], prev[3]),
    )
    conn.execute("UPDATE messages SET possible_duplicate = 1 WHERE id = ?", (entry.message_id,))


def _take_unmatched(conn: sqlite3.Connection, keys: Sequence[str]) -> list[Dlr]:
    rows: list[tuple[int, bytes]] = []
    for key in keys:  # one cached statement per key, not a new IN (...) each time
        rows.extend(conn.execute("SELECT id, dlr FROM unmatched WHERE key = ?", (key,)))
    if not rows:
        return []
    rows.sort()
    conn.executemany("DELETE FROM unmatched WHERE id = ?", [(r[0],) for r in rows])
    return [decode_dlr(r[1]) for r in rows]


def _record_dlr(conn: sqlite3.Connection, entry: PartEntry, dlr: Dlr) -> tuple[Dlr | None, ...]:
    """Keep ``dlr`` as the part's latest receipt, unless the part already has a final one and
    ``dlr`` is not final (SMSCs reorder receipts); return every part's latest."""
    final = dlr.final
    updated = conn.execute(
        "UPDATE parts SET dlr = ?, dlr_final = ?, dlr_stat = ?, dlr_err = ?"
        " WHERE message_id = ? AND part = ? AND (? OR NOT dlr_final)",
        (
            encode_dlr(dlr),
            final,
            dlr.stat,
            dlr.err,
            entry.message_id,
            entry.part,
            final,
        ),
    ).rowcount
    if entry.parts == 1 and updated:
        return (dlr,)
    latest: list[Dlr | None] = [None] * entry.parts
    for part, stored in conn.execute(
        "SELECT part, dlr FROM parts WHERE message_id = ?", (entry.message_id,)
    ):
        if stored is not None and 0 <= part < entry.parts:
            latest[part] = decode_dlr(stored)
    return tuple(latest)
