"""Receipts and MO parts on their way to an account's receivers: scheduled, queued until a
receiver binds, sent on a random receiver-capable bind of the account on any server that is up,
resent after a refusal or a lost link."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from smppgw.codec import CommandStatus, DataSm, MessageState, SubmitSm
from smppgw.codec.receipt import stat_to_message_state
from smppgw.codec.smpp_time import format_absolute
from smppgw.provider import is_rejection

from .link import Link, Receipt, receipt_timing
from .mo import MoPart

if TYPE_CHECKING:
    from .server import Simulator

__all__ = ["Outbox"]


class Outbox:
    """The simulator's receipts and MO parts in flight (see the module docstring)."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._pending: dict[str, deque[Receipt]] = {}
        self._scheduled = 0
        self._mo_pending: dict[str, deque[MoPart]] = {}
        self._mo_scheduled = 0

    def receipts_pending(self) -> int:
        """Receipts scheduled, queued for a receiver, or sent and not yet acknowledged."""
        queued = sum(len(q) for q in self._pending.values())
        return self._scheduled + queued + self._awaiting(Receipt)

    def mo_parts_pending(self) -> int:
        """MO parts waiting to be resent, queued for a receiver, or sent and not answered."""
        queued = sum(len(q) for q in self._mo_pending.values())
        return self._mo_scheduled + queued + self._awaiting(MoPart)

    def _awaiting(self, kind: type[Receipt | MoPart]) -> int:
        """Items of ``kind`` sent on a link and not yet answered."""
        return sum(
            1
            for s in self._sim.nodes
            for c in s.connections
            for item in c.awaiting.values()
            if isinstance(item, kind)
        )

    def queue_mo(self, system_id: str, parts: list[MoPart]) -> None:
        """Send the parts of an MO message (or hold them until a receiver binds)."""
        self._mo_pending.setdefault(system_id, deque()).extend(parts)
        self.flush_mo(system_id)

    def receipt_timing(self, pdu: SubmitSm | DataSm) -> tuple[float, bool]:
        """Seconds until the receipt of an accepted submit, and whether it reports EXPIRED.

        Raises:
            TimeFieldError: schedule_delivery_time or validity_period is malformed.
        """
        delay = self._sim.rng.uniform(*self._sim.settings.dlr_delay)
        if not isinstance(pdu, SubmitSm):  # data_sm has neither field
            return delay, False
        return receipt_timing(
            pdu.schedule_delivery_time, pdu.validity_period, datetime.now(UTC), delay
        )

    def make_receipt(
        self, system_id: str, message_id: str, pdu: SubmitSm | DataSm, *, expired: bool = False
    ) -> Receipt:
        outcomes = self._sim.settings.dlr_outcomes
        stat, err, _ = self._sim.rng.choices(outcomes, weights=[w for _, _, w in outcomes])[0]
        if expired:
            stat, err = "EXPIRED", next((e for st, e, _ in outcomes if st == "EXPIRED"), 0)
        text = pdu.short_message[:20].decode("latin-1") if isinstance(pdu, SubmitSm) else ""
        return Receipt(
            system_id,
            message_id,
            pdu.source_addr,
            pdu.destination_addr,
            stat,
            err,
            datetime.now(UTC),
            "".join(c if c.isprintable() else "." for c in text),
        )

    def schedule_receipt(self, receipt: Receipt, delay: float | None) -> asyncio.TimerHandle:
        if delay is None:
            delay = self._sim.rng.uniform(*self._sim.settings.dlr_delay)
        self._scheduled += 1
        return asyncio.get_running_loop().call_later(delay, self._due, receipt)

    def drop_receipt(self, timer: asyncio.TimerHandle | None) -> None:
        """Never send the receipt ``timer`` would (a message withdrawn by cancel_sm)."""
        if timer is not None and not timer.cancelled():
            timer.cancel()
            self._scheduled -= 1

    def _due(self, receipt: Receipt) -> None:
        self._scheduled -= 1
        if not receipt.attempts:
            # The message's outcome is decided now, whether or not its receipt ever goes out
            # (and too late for cancel_sm to take it back).
            message = self._sim.messages.get(receipt.message_id)
            if message is not None:
                message.receipt_timer = None
                message.state = (
                    stat_to_message_state(receipt.stat, rejection=is_rejection)
                    or MessageState.UNKNOWN
                )
                message.final_date = format_absolute(datetime.now(UTC))
                message.error_code = min(receipt.err, 0xFF)  # one octet (section 5.2.29)
            drop = self._sim.settings.faults.drop_receipts
            if drop and self._sim.rng.random() < drop:
                self._sim.stats.dlrs_dropped += 1
                return
        self._pending.setdefault(receipt.system_id, deque()).append(receipt)
        self.flush_receipts(receipt.system_id)

    def _receivers(self, system_id: str) -> list[Link]:
        # Bound by its engine too: a link unbinding (or unbound, its transport not yet gone)
        # may no longer carry a deliver_sm (section 2.3), and a receipt sent there is lost.
        return [
            c
            for s in self._sim.nodes
            if not s.down
            for c in s.connections
            if c.receiver
            and c.conn.bound
            and c.account is not None
            and c.account.system_id == system_id
        ]

    def flush_receipts(self, system_id: str) -> None:
        """Send queued receipts on random receiver binds of the account, on any server."""
        queue = self._pending.get(system_id)
        if not queue:
            return
        receivers = self._receivers(system_id)
        if not receivers:
            return  # kept until a receiver binds
        while queue:
            self._sim.rng.choice(receivers).send_receipt(queue.popleft())

    def flush_mo(self, system_id: str) -> None:
        """Send queued MO parts on random receiver binds of the account, on any server."""
        queue = self._mo_pending.get(system_id)
        if not queue:
            return
        receivers = self._receivers(system_id)
        if not receivers:
            return  # kept until a receiver binds
        while queue:
            self._sim.rng.choice(receivers).send_mo_part(queue.popleft())

    def mo_answered(self, part: MoPart, status: CommandStatus) -> None:
        if status == CommandStatus.ESME_ROK:
            self._sim.stats.mo_acknowledged += 1
            return
        self._sim.stats.mo_nacked += 1
        self._schedule_mo(part)

    def _schedule_mo(self, part: MoPart) -> None:
        self._mo_scheduled += 1
        asyncio.get_running_loop().call_later(self._sim.settings.dlr_retry, self._mo_due, part)

    def _mo_due(self, part: MoPart) -> None:
        self._mo_scheduled -= 1
        self._mo_pending.setdefault(part.record.system_id, deque()).append(part)
        self.flush_mo(part.record.system_id)

    def receipt_answered(self, receipt: Receipt, status: CommandStatus) -> None:
        if status == CommandStatus.ESME_ROK:
            self._sim.stats.dlrs_acked += 1
            return
        self._sim.stats.dlrs_nacked += 1
        self.schedule_receipt(receipt, self._sim.settings.dlr_retry)

    def requeue(self, item: Receipt | MoPart) -> None:
        if isinstance(item, Receipt):
            self.schedule_receipt(item, self._sim.settings.dlr_retry)
        else:
            self._schedule_mo(item)
