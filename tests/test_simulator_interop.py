"""Interop: aiosmpplib's ESME binds to our simulator, submits, and receives its receipts."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import pytest

from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

try:
    from aiosmpplib import ESME, PhoneNumber, SubmitSm
    from aiosmpplib.broker import SimpleBroker
    from aiosmpplib.hook import AbstractHook
    from aiosmpplib.protocol import DeliverSm, SubmitSmResp
    from aiosmpplib.state import TON
except ImportError:  # pragma: no cover - CI installs the dev extras
    if os.environ.get("CI"):
        raise
    pytest.skip("aiosmpplib is not installed", allow_module_level=True)

N = 20


class CountingHook(AbstractHook):  # type: ignore[misc]
    def __init__(self) -> None:
        self.resp_ids: list[str] = []
        self.receipt_ids: list[str] = []
        self.errors: list[Exception] = []

    async def sending(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
        return None

    async def received(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
        if isinstance(smpp_message, SubmitSmResp):
            self.resp_ids.append(smpp_message.message_id)
        elif isinstance(smpp_message, DeliverSm) and smpp_message.is_receipt():
            self.receipt_ids.append(str(smpp_message.parse_receipt()["id"]))

    async def send_error(self, smpp_message: Any, error: Exception, client_id: str) -> None:
        if error is not None:
            self.errors.append(error)


# aiosmpplib's ESME.stop() leaves its StreamWriter to the garbage collector, which warns.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_aiosmpplib_esme_submits_and_gets_every_receipt() -> None:
    settings = SimulatorSettings(
        servers=1,
        tls=False,
        accounts=(Account("acme", "secret", rate_per_server=0),),
        dlr_delay=(0.0, 0.05),
        dlr_outcomes=(("DELIVRD", 0, 1.0),),
        seed=3,
    )
    async with Simulator(settings) as sim:
        hook = CountingHook()
        broker = SimpleBroker()
        esme = ESME(
            smsc_host="127.0.0.1",
            smsc_port=sim.servers[0].plain_port,
            system_id="acme",
            password="secret",
            broker=broker,
            hook=hook,
            log_level="ERROR",
        )
        task = asyncio.create_task(esme.start())
        try:
            for i in range(N):
                await broker.enqueue(
                    SubmitSm(
                        short_message=f"message {i}",
                        source=PhoneNumber("ACMEIN", TON.ALPHANUMERIC),
                        destination=PhoneNumber("14155550101", TON.INTERNATIONAL),
                        log_id=f"m{i}",
                    )
                )
            async with asyncio.timeout(15):
                while len(hook.receipt_ids) < N:  # noqa: ASYNC110 - the hook has no event
                    await asyncio.sleep(0.02)
            await sim.wait_dlrs_settled(5)
        finally:
            await esme.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        assert hook.errors == []
        assert sorted(hook.resp_ids) == sorted(hook.receipt_ids)
        assert len(set(hook.resp_ids)) == N
        assert (sim.stats.accepted, sim.stats.dlrs_sent, sim.stats.dlrs_acked) == (N, N, N)
