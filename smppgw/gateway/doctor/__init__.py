"""Preflight against the configured SMPP servers (``smppgw doctor``).

For every server it opens every bind slot the configuration asks for, one after the other
(so a bind limit shows at the slot where it bites), and times each step on its own: name
resolution, TCP connect, TLS handshake, bind, and a few enquire_link round trips. Each
failure is put in words an operator can act on (DNS, refused, no answer, TLS version or
certificate, credentials, bind limit, a link the server drops right after the bind).
Optionally one test message goes to a number given on the command line, and its receipt
tells in which form the server writes message ids (the same, or the other base), which is
what receipt matching depends on. From the measured round trip and the server's rate it
recommends a window per bind: enough requests in flight to keep the rate busy, twice over.

The probes speak SMPP through the codec on plain asyncio streams, independent of the
session layer, so that every step can be timed and named separately.

The package in modules: :mod:`~smppgw.gateway.doctor.probe` (the probe link),
:mod:`~smppgw.gateway.doctor.steps` (the steps of a slot and their failures in words),
:mod:`~smppgw.gateway.doctor.message` (the test message and its receipt's id form) and
:mod:`~smppgw.gateway.doctor.report` (the results, as text and JSON).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from smppgw.esme.binds import BindManagerSettings
from smppgw.esme.numbers import Sender
from smppgw.gateway.doctor.message import id_form, send_test_message
from smppgw.gateway.doctor.report import (
    DoctorReport,
    ServerResult,
    SlotResult,
    Step,
    TestMessageResult,
    recommended_window,
)
from smppgw.gateway.doctor.steps import Context, check_server

__all__ = [
    "DoctorReport",
    "ServerResult",
    "SlotResult",
    "Step",
    "TestMessageResult",
    "diagnose",
    "id_form",
    "recommended_window",
]


async def diagnose(
    settings: BindManagerSettings,
    *,
    test_to: str | None = None,
    sender: Sender | None = None,
    receipt_timeout: float = 60.0,
    probes: int = 3,
    clock: Callable[[], float] = time.monotonic,
) -> DoctorReport:
    """Open every bind slot of every server, time each step, optionally send a test message.

    Servers are checked at once; the slots of one server one after the other. Every link is
    unbound and closed before this returns.

    Args:
        settings: the servers, account and timeouts (as the daemon's bind manager uses them).
        test_to: send one test message to this number and wait for its receipt.
        sender: the test message's sender (needed with ``test_to``).
        receipt_timeout: how long to wait for the test message's receipt.
        probes: enquire_link round trips measured per slot.
        clock: the clock timings are read from.

    Returns:
        The report; :attr:`DoctorReport.ok` is False when any step or the test message failed.
    """
    context = Context(settings, asyncio.Queue(), clock, probes)
    try:
        servers = list(
            await asyncio.gather(*(check_server(context, server) for server in settings.servers))
        )
        message = None
        if test_to is not None:
            if sender is None:
                raise ValueError("a test message needs a sender")
            message = await send_test_message(context, test_to, sender, receipt_timeout)
    finally:
        await asyncio.gather(
            *(probe.close(settings.response_timeout) for _, _, probe in context.probes_open)
        )
    return DoctorReport(servers, message)
