"""Receipts matched to the messages an application sent, in memory, for a library user.

:class:`ReceiptTracker` is the inbound handler of a session or bind manager: a receipt arriving
on any bind is matched to the message and part whose submit_sm_resp gave its id (hex or decimal,
padded or not: :func:`smppgw.esme.receipts.id_candidates`), and a mobile-originated message goes
to ``on_message``. A receipt that arrives before its part is tracked (it can beat the response
to another bind) is parked and matched when the part is. Nothing survives a restart: the
gateway's durable correlator does that for the daemon.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from smppgw.codec.constants import CommandStatus
from smppgw.codec.pdu import DataSm, DeliverSm
from smppgw.esme.bind_state import PartResult
from smppgw.esme.messages import TextResult
from smppgw.esme.receipts import Dlr, dlr_from_pdu, id_candidates, normalize_message_id
from smppgw.esme.session import inbound_origin

__all__ = ["DEFAULT_MAX_UNMATCHED", "OnMessage", "OnReceipt", "ReceiptMatch", "ReceiptTracker"]

DEFAULT_MAX_UNMATCHED: Final = 10_000
"""Receipts kept while no tracked part claims them; the oldest go first beyond it."""


@dataclass(frozen=True, slots=True)
class ReceiptMatch:
    """A receipt matched to part ``part`` (0-based) of the message tracked as ``key``."""

    key: str
    part: int
    parts: int
    dlr: Dlr


OnReceipt = Callable[[ReceiptMatch], Awaitable[None]]
"""Awaited with each receipt matched to a tracked part."""
OnMessage = Callable[[DeliverSm | DataSm], Awaitable[CommandStatus]]
"""Awaited with each inbound PDU that is not a receipt (a mobile-originated message); its
result answers the PDU."""


@dataclass(slots=True)
class _Message:
    receipts: list[Dlr | None]
    done: asyncio.Event
    ids: dict[str, int]  # normalised SMSC id -> part, for the parts that got one


class ReceiptTracker:
    """Matches receipts arriving on any bind to tracked messages and parts.

    Args:
        on_receipt: awaited with each match (after it is recorded).
        on_message: awaited with each mobile-originated message; without it they are answered
            ESME_ROK and dropped.
        clock: Unix time for :attr:`Dlr.received_at`.
        max_unmatched: receipts kept for parts not (yet) tracked.
    """

    def __init__(
        self,
        *,
        on_receipt: OnReceipt | None = None,
        on_message: OnMessage | None = None,
        clock: Callable[[], float] = time.time,
        max_unmatched: int = DEFAULT_MAX_UNMATCHED,
    ) -> None:
        if max_unmatched < 0:
            raise ValueError(f"max_unmatched must be >= 0, got {max_unmatched}")
        self._on_receipt = on_receipt
        self._on_message = on_message
        self._clock = clock
        self._max_unmatched = max_unmatched
        self._messages: dict[str, _Message] = {}
        self._ids: dict[str, tuple[str, int]] = {}  # normalised SMSC id -> (key, part)
        self._unmatched: OrderedDict[str, list[Dlr]] = OrderedDict()
        self._unmatched_count = 0
        self.dropped = 0
        """Unmatched receipts let go beyond ``max_unmatched``."""

    def track(self, key: str, sent: TextResult | Sequence[PartResult]) -> list[ReceiptMatch]:
        """Expect receipts for the parts of ``sent`` that got an SMSC message id.

        Returns:
            The receipts that had arrived for them already (now matched, in part order;
            ``on_receipt`` is not called for them).

        Raises:
            ValueError: ``key`` is already tracked.
        """
        if key in self._messages:
            raise ValueError(f"message {key!r} is already tracked")
        results = sent.results if isinstance(sent, TextResult) else tuple(sent)
        message = _Message([None] * len(results), asyncio.Event(), {})
        self._messages[key] = message
        matched: list[ReceiptMatch] = []
        for part, result in enumerate(results):
            if not result.smsc_message_id:
                continue
            smsc_id = normalize_message_id(result.smsc_message_id)
            message.ids[smsc_id] = part
            self._ids[smsc_id] = (key, part)
            for candidate in id_candidates(result.smsc_message_id):
                for dlr in self._unmatched.pop(candidate, ()):
                    self._unmatched_count -= 1
                    matched.append(self._record(key, part, dlr))
        self._check_done(key)
        return matched

    def receipts(self, key: str) -> tuple[Dlr | None, ...]:
        """The latest receipt of each part of ``key`` (None: none yet).

        Raises:
            KeyError: ``key`` is not tracked.
        """
        return tuple(self._messages[key].receipts)

    async def wait(self, key: str, timeout: float | None = None) -> tuple[Dlr | None, ...]:  # noqa: ASYNC109
        """Wait until every part of ``key`` that got an SMSC id has a final receipt.

        Raises:
            KeyError: ``key`` is not tracked.
            TimeoutError: not within ``timeout`` seconds.
        """
        message = self._messages[key]
        async with asyncio.timeout(timeout):
            await message.done.wait()
        return tuple(message.receipts)

    def forget(self, key: str) -> None:
        """Stop tracking ``key`` (its later receipts are unmatched)."""
        message = self._messages.pop(key, None)
        if message is not None:
            for smsc_id, part in message.ids.items():
                if self._ids.get(smsc_id) == (key, part):  # not since reused by another
                    del self._ids[smsc_id]

    @property
    def unmatched(self) -> tuple[Dlr, ...]:
        """The receipts no tracked part has claimed, oldest first."""
        return tuple(dlr for dlrs in self._unmatched.values() for dlr in dlrs)

    async def handle(self, pdu: DeliverSm | DataSm) -> CommandStatus:
        """The inbound handler (``on_inbound``) of a Session or BindManager."""
        origin = inbound_origin()
        dlr = dlr_from_pdu(
            pdu,
            received_at=self._clock(),
            server=origin.server if origin else None,
            bind=origin.bind if origin else None,
        )
        if dlr is None:
            if self._on_message is not None:
                return await self._on_message(pdu)
            return CommandStatus.ESME_ROK
        match = self._match(dlr)
        if match is not None and self._on_receipt is not None:
            await self._on_receipt(match)
        return CommandStatus.ESME_ROK

    def _match(self, dlr: Dlr) -> ReceiptMatch | None:
        for candidate in id_candidates(dlr.smsc_id):
            found = self._ids.get(candidate)
            if found is not None:
                match = self._record(*found, dlr)
                self._check_done(found[0])
                return match
        self._park(dlr)
        return None

    def _record(self, key: str, part: int, dlr: Dlr) -> ReceiptMatch:
        receipts = self._messages[key].receipts
        latest = receipts[part]
        if latest is None or not latest.final or dlr.final:
            receipts[part] = dlr  # a late intermediate notification never hides a final one
        return ReceiptMatch(key, part, len(receipts), dlr)

    def _check_done(self, key: str) -> None:
        message = self._messages[key]
        receipts = message.receipts
        if all((dlr := receipts[part]) is not None and dlr.final for part in message.ids.values()):
            message.done.set()

    def _park(self, dlr: Dlr) -> None:
        if self._max_unmatched == 0:
            self.dropped += 1
            return
        while self._unmatched_count >= self._max_unmatched:
            _, oldest = self._unmatched.popitem(last=False)
            self._unmatched_count -= len(oldest)
            self.dropped += len(oldest)
        self._unmatched.setdefault(normalize_message_id(dlr.smsc_id), []).append(dlr)
        self._unmatched_count += 1
