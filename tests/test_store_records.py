"""The store's on-disk records: an explicit, versioned format, and the upgrade of schema 3 stores
(which held the daemon's classes encoded as they were) in place."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import msgspec
import pytest

from smppgw.codec.constants import DataCoding, MessageState
from smppgw.esme.numbers import Sender, validate_sender
from smppgw.gateway.correlate import Dlr, PartEntry
from smppgw.gateway.events import DeliveryState
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store import SqliteStore, StoreError, StoreSettings
from smppgw.gateway.store.records import (
    RECORD_FORMAT,
    DlrRecord,
    RecordError,
    RequestRecord,
    SenderRecord,
    decode_dlr,
    decode_request,
    encode_dlr,
    encode_request,
)
from smppgw.gateway.store.schema import _SCHEMA, APPLICATION_ID, SCHEMA_VERSION

NOW = 1_700_000_000.0

REQUEST = SubmitRequest(
    to="919800000001",
    sender=validate_sender("ACMEIN"),
    text=None,
    payload=b"\x00\x01binary",
    data_coding=DataCoding.OCTET_UNSPECIFIED_2,
    parts=2,
    flash=True,
    registered_delivery=True,
    pe_id="1101",
    template_id="1107",
    tm_id="tm",
    validity="000001000000000R",
    schedule=None,
    priority=1,
    custom="ref-1",
)
RECEIPT = Dlr(
    smsc_id="0A1B",
    stat="DELIVRD",
    state=MessageState.DELIVERED,
    err="000",
    done_date="2311142213",
    received_at=NOW,
    server="s1",
    bind="s1#0",
)


def test_requests_and_receipts_round_trip_through_their_records() -> None:
    assert decode_request(encode_request(REQUEST)) == REQUEST
    assert decode_dlr(encode_dlr(RECEIPT)) == RECEIPT
    raw = msgspec.msgpack.decode(encode_request(REQUEST))
    assert raw["v"] == RECORD_FORMAT
    assert raw["sender"] == {"value": "ACMEIN", "kind": "alphanumeric"}
    assert raw["data_coding"] == int(DataCoding.OCTET_UNSPECIFIED_2)
    assert next(iter(raw)) == "v"  # first: read without decoding the record
    assert msgspec.msgpack.decode(encode_dlr(RECEIPT))["v"] == RECORD_FORMAT


def test_a_record_of_another_format_version_is_refused_by_name() -> None:
    raw = msgspec.msgpack.decode(encode_request(REQUEST))
    raw["v"] = RECORD_FORMAT + 1
    with pytest.raises(RecordError, match="record format 2"):
        decode_request(msgspec.msgpack.encode(raw))
    with pytest.raises(RecordError, match="not a record"):
        decode_dlr(b"\xc1")
    legacy = msgspec.msgpack.encode(RECEIPT)  # as schema 3 kept it: no version
    with pytest.raises(RecordError, match="not a record"):
        decode_dlr(legacy)


def test_every_field_of_the_daemon_s_classes_is_a_field_of_its_record() -> None:
    """Records are read straight into SubmitRequest, Sender and Dlr: a field renamed or added
    there without a new record format would be lost on disk."""
    assert {f.name for f in dataclasses.fields(SubmitRequest)} | {"v"} == set(
        RequestRecord.__struct_fields__
    )
    assert {f.name for f in dataclasses.fields(Sender)} == set(SenderRecord.__struct_fields__)
    assert {f.name for f in dataclasses.fields(Dlr)} | {"v"} == set(DlrRecord.__struct_fields__)


def write_schema_3_store(path: Path) -> None:
    """A store as schema 3 wrote it: the same tables, the request and the receipts encoded as
    the daemon's classes themselves (msgspec MessagePack of the dataclasses), no version."""
    legacy = msgspec.msgpack.Encoder()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(_SCHEMA)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("INSERT INTO meta VALUES ('schema', '3')")
    insert = (
        "INSERT INTO messages (id, custom, mobile, request, parts, priority, state, status,"
        " created_at, due_at, claims, sending) VALUES (?, ?, ?, ?, 2, 1, ?, ?, ?, ?, ?, ?)"
    )
    conn.execute(
        insert,
        (
            "queued-1",
            "ref-1",
            REQUEST.to,
            legacy.encode(REQUEST),
            "queued",
            "QUEUED",
            NOW,
            NOW,
            0,
            0,
        ),
    )
    claimed = dataclasses.replace(
        REQUEST, custom="ref-2", text="hello", payload=None, data_coding=DataCoding.DEFAULT
    )
    conn.execute(
        insert,
        (
            "claimed-1",
            "ref-2",
            claimed.to,
            legacy.encode(claimed),
            "submitting",
            "QUEUED",
            NOW,
            NOW,
            1,
            1,
        ),
    )
    conn.execute(
        "INSERT INTO parts (message_id, part, parts, smsc_id, smsc_key, registered_at,"
        " expires_at, dlr, dlr_final, dlr_stat, dlr_err) VALUES (?, 0, 2, ?, ?, ?, ?, ?, 0, ?, ?)",
        (
            "claimed-1",
            "77",
            "77",
            NOW,
            NOW + 3600,
            legacy.encode(Dlr("77", "ENROUTE", MessageState.ENROUTE, None, None, NOW)),
            "ENROUTE",
            None,
        ),
    )
    conn.execute(
        "INSERT INTO unmatched (key, dlr, expires_at) VALUES (?, ?, ?)",
        ("0a1b", legacy.encode(RECEIPT), NOW + 3600),
    )
    conn.close()


async def test_a_schema_3_store_is_upgraded_in_place_and_its_messages_go_out_unchanged(
    tmp_path: Path,
) -> None:
    """Schema 3 kept the intake's SubmitRequest and the correlator's Dlr as msgspec encoded
    them: renaming a field of either would have made every queued message of an existing
    store unreadable. Opening such a store rewrites its rows as versioned records, once, and
    its queued and claimed messages, part receipts and parked receipts read back unchanged."""
    path = tmp_path / "old.db"
    write_schema_3_store(path)
    store = await SqliteStore.open(StoreSettings(str(path)), clock=lambda: NOW)
    try:
        assert await store.requeue_claimed() == 1
        claimed = {m.id: m for m in await store.claim(10)}
        assert claimed["queued-1"].request == REQUEST
        assert claimed["claimed-1"].request.text == "hello"
        assert claimed["claimed-1"].request.custom == "ref-2"
        assert claimed["claimed-1"].accepted == frozenset({0})
        assert await store.unmatched(10) == [RECEIPT]
        final = Dlr("77", "DELIVRD", MessageState.DELIVERED, "000", None, NOW)
        matched = await store.match_dlr(["77"], final, NOW, NOW + 60)
        assert matched is not None
        assert matched[0] == PartEntry("claimed-1", 0, 2, "77", NOW, NOW + 3600)
        assert matched[1] == (final, None)
        await store.finish_submit("queued-1", DeliveryState.SUBMITTED)
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("4",)
        assert SCHEMA_VERSION == 4
        for (blob,) in conn.execute("SELECT request FROM messages"):
            assert msgspec.msgpack.decode(blob)["v"] == RECORD_FORMAT
        for (blob,) in conn.execute("SELECT dlr FROM parts UNION ALL SELECT dlr FROM unmatched"):
            assert msgspec.msgpack.decode(blob)["v"] == RECORD_FORMAT
    finally:
        conn.close()


async def test_a_schema_3_store_with_an_unreadable_row_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    write_schema_3_store(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE messages SET request = x'c1' WHERE id = 'claimed-1'")
    conn.close()
    with pytest.raises(StoreError, match="cannot upgrade the store's records to schema 4"):
        await SqliteStore.open(StoreSettings(str(path)), clock=lambda: NOW)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)
        [(blob,)] = conn.execute("SELECT request FROM messages WHERE id = 'queued-1'")
        assert "v" not in msgspec.msgpack.decode(blob)
    finally:
        conn.close()
