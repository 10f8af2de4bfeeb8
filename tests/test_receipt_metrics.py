"""Receipts are counted once, by their fate: matched (at once or after parking) or unmatched.

A receipt may overtake its own submit_sm_resp; it is then parked until the resp arrives. Those
receipts are matched moments later and must not count as unmatched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from smppgw.esme.observe import ReceiptTally, RecordingObserver
from smppgw.gateway.config import parse_config
from smppgw.gateway.daemon import Gateway, GatewayOptions
from smppgw.testing.simulator import FaultSettings, Simulator

TIMEOUT = 30.0


def test_a_parked_receipt_matched_within_its_grace_counts_once_as_matched() -> None:
    observer = RecordingObserver()
    tally = ReceiptTally(observer, grace=60.0)
    tally.arrived("a", "DELIVRD", matched=False, now=100.0)
    assert tally.parked == 1
    tally.sweep(159.0)
    tally.matched_later("a")
    tally.sweep(1000.0)
    assert observer.counts[("dlr_received", ("DELIVRD", True))] == 1
    assert observer.counts[("dlr_received", ("DELIVRD", False))] == 0
    assert observer.total("dlr_parked") == 1
    assert tally.parked == 0


def test_a_receipt_still_parked_after_its_grace_counts_once_as_unmatched() -> None:
    observer = RecordingObserver()
    tally = ReceiptTally(observer, grace=60.0)
    tally.arrived("a", "UNDELIV", matched=False, now=100.0)
    tally.arrived("b", "DELIVRD", matched=False, now=130.0)
    tally.sweep(160.0)
    assert observer.counts[("dlr_received", ("UNDELIV", False))] == 1
    assert observer.counts[("dlr_received", ("DELIVRD", False))] == 0  # b is within its grace
    tally.matched_later("a")  # its resp came after all: already counted, not again
    tally.sweep(160.0)
    assert observer.total("dlr_received") == 1
    assert tally.parked == 1
    assert observer.counts[("parked_dlrs", (1,))] >= 1


def test_a_receipt_matched_at_arrival_is_never_parked() -> None:
    observer = RecordingObserver()
    tally = ReceiptTally(observer)
    tally.arrived("a", "DELIVRD", matched=True, now=0.0)
    assert observer.counts[("dlr_received", ("DELIVRD", True))] == 1
    assert observer.total("dlr_parked") == 0
    assert tally.parked == 0


async def request(path: str, line: dict[str, Any]) -> dict[str, Any]:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(json.dumps(line).encode() + b"\n")
    reply: dict[str, Any] = json.loads(await reader.readline())
    writer.close()
    await writer.wait_closed()
    return reply


async def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    text = (await reader.read()).decode().partition("\r\n\r\n")[2]
    writer.close()
    await writer.wait_closed()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_receipts_sent_before_their_resp_are_not_counted_unmatched(tmp_path: Path) -> None:
    """With the SMSC sending every receipt before its submit_sm_resp, receipts parked for a
    moment counted as unmatched (410 of 1,000 in a run where none really were), so the
    unmatched-receipts alert fired on a healthy link."""
    config = parse_config(
        {
            "gateway": {"response_timeout": 5},
            "simulator": {
                "enabled": True,
                "servers": 1,
                "max_binds_per_server": 2,
                "rate_per_server": 0,
                "dlr_delay": [0.0, 0.0],
            },
            "store": {"path": str(tmp_path / "gw.db"), "synchronous": "normal"},
            "intake": {"path": str(tmp_path / "gw.sock")},
            "defaults": {"sender": "ACME"},
            "metrics": {"enabled": True, "address": "127.0.0.1:0"},
        },
        environ={},
    )
    gw = Gateway(config, GatewayOptions(wait_bound=5, housekeeping_interval=0.05))
    count = 200
    try:
        async with asyncio.timeout(TIMEOUT):
            await gw.start()
            simulator = gw.simulator
            assert isinstance(simulator, Simulator)
            simulator.settings = dataclasses.replace(
                simulator.settings, faults=FaultSettings(dlr_before_resp=1.0)
            )
            ids = set()
            for n in range(count):
                reply = await request(
                    config.intake.path, {"op": "submit", "to": "919812345678", "text": f"m{n}"}
                )
                assert reply["ok"] is True, reply
                ids.add(reply["id"])
            assert gw.metrics is not None
            while True:  # every message final (bounded by TIMEOUT)
                samples = await scrape(gw.metrics.port)
                final = sum(
                    v for (name, _), v in samples.items() if name == "smppgw_messages_final_total"
                )
                if final == count:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            samples = await scrape(gw.metrics.port)
    finally:
        async with asyncio.timeout(TIMEOUT):
            await gw.stop(5)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    def receipts(matched: str) -> float:
        return sum(
            v
            for (name, labels), v in samples.items()
            if name == "smppgw_dlrs_total" and ("matched", matched) in labels
        )

    assert receipts(matched="false") == 0
    assert receipts(matched="true") == count
    assert 0 < value("smppgw_dlrs_parked_total") <= count
    assert value("smppgw_parked_dlrs") == 0
    assert value("smppgw_unmatched_dlrs") == 0
