"""`possible_duplicate` is precise: after a crash only messages that may be on the wire are
flagged.

Every claimed message used to be flagged when the daemon restarted after a crash (596 flagged,
0 sent twice, in one fault run): the dispatcher claims twice the binds' windows ahead, and most
of those wait for a token or a window slot, never written. A message is now marked
``sending`` (durably, the marks of a burst in one statement) with a bind slot held, right
before its first part is written; only marked messages with a part not yet recorded as
accepted are flagged.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_daemon_crash import PASSWORD, Daemon, final_ids, submit_all, unfinished, write_config

from smppgw.codec.constants import DataCoding
from smppgw.esme.numbers import validate_sender
from smppgw.gateway.correlate import PartEntry
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store import SqliteStore, StoreSettings
from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

TIMEOUT = 90.0
MESSAGES = 3000
SLOTS = 2 * 2 * 10  # servers x binds x window: parts that can be on the wire at once


def request(n: int, parts: int = 1) -> SubmitRequest:
    return SubmitRequest(
        to=f"9198{n:08d}",
        sender=validate_sender("ACME"),
        text=f"message {n}",
        payload=None,
        data_coding=DataCoding.DEFAULT,
        parts=parts,
    )


async def test_only_claimed_messages_with_an_unrecorded_part_on_the_wire_are_flagged(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.db")
    store = await SqliteStore.open(StoreSettings(path))
    results = await store.add_messages([request(0), request(1), request(2), request(3, parts=2)])
    waiting, on_wire, accepted, half = (r.id for r in results)
    await store.claim(4)
    await asyncio.gather(*(store.mark_sending(i) for i in (on_wire, accepted, half)))
    await store.add_part(PartEntry(accepted, 0, 1, "a-0", 1.0, 2.0))
    await store.add_part(PartEntry(half, 0, 2, "h-0", 1.0, 2.0))
    await store.close()  # the process dies: every message is still claimed

    store = await SqliteStore.open(StoreSettings(path))
    try:
        assert await store.requeue_claimed() == 4
        flags = {}
        for message_id in (waiting, on_wire, accepted, half):
            status = await store.status(message_id=message_id)
            assert status is not None
            flags[message_id] = status.possible_duplicate
        # Claimed again after a clean release: the mark does not outlive the claim.
        await store.claim(4)
        await store.release(waiting)
        await store.mark_sending(on_wire)
        await store.release(on_wire)
    finally:
        await store.close()
    assert flags == {waiting: False, on_wire: True, accepted: False, half: True}
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT sum(sending) FROM messages").fetchone()[0] == 0
    conn.close()


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    settings = SimulatorSettings(
        servers=2,
        tls=False,
        accounts=(Account("smppgw", PASSWORD, max_binds_per_server=2, rate_per_server=400),),
        dlr_delay=(0.0, 0.2),
        record_destinations=True,
        seed=11,
    )
    async with Simulator(settings) as sim:
        yield sim


def claimed(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT mobile FROM messages WHERE state = 'submitting'").fetchall()
    conn.close()
    return {r[0] for r in rows}


async def test_sigkill_flags_only_what_may_have_been_written(
    tmp_path: Path, simulator: Simulator
) -> None:
    config = write_config(tmp_path, simulator)
    socket_path = tmp_path / "gw.sock"
    daemon = Daemon(config, socket_path)
    async with asyncio.timeout(TIMEOUT):
        await daemon.start()
        ids = await submit_all(socket_path, MESSAGES)
        while simulator.stats.accepted < MESSAGES // 3:  # noqa: ASYNC110 - a counter, no event
            await asyncio.sleep(0.01)
        await daemon.kill()
        # What the daemon wrote before it died still reaches the SMSC: wait for it to settle.
        seen = -1
        while simulator.stats.accepted != seen:
            seen = simulator.stats.accepted
            await asyncio.sleep(0.2)
        reached = set(simulator.stats.accepted_by_destination)
        at_kill = claimed(tmp_path / "gw.db")
        assert seen < MESSAGES, "the run finished before the kill"

        await daemon.start()
        finals = await final_ids(socket_path, ids)
        late = await unfinished(socket_path, ids - finals.keys())
        assert await daemon.terminate() == 0

    # Not final yet but waiting in the queue for its retry time is late, not lost.
    lost = {message_id: state for message_id, state in late.items() if state != "queued"}
    flagged = {p["mobile"] for p in finals.values() if p["possible_duplicate"]}
    twice = {to for to, n in simulator.stats.accepted_by_destination.items() if n > 1}
    print(
        f"\nSIGKILL after {seen} accepted: {len(at_kill)} claimed, "
        f"{len(at_kill & reached)} of them reached the SMSC, {len(flagged)} flagged, "
        f"{len(twice)} sent twice, {len(lost)} lost, {len(late) - len(lost)} late in the queue"
    )
    assert not lost, lost
    assert twice <= flagged  # every real duplicate is flagged
    assert flagged <= at_kill
    # Flagged: at most what the binds' windows can hold on the wire, not every claim.
    assert len(flagged) <= SLOTS < len(at_kill)
