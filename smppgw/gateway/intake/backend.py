"""What the intake hands to the daemon and gets back: the :class:`Backend` seam.

The intake knows nothing of the store or SMPP sessions. It validates a message into a
:class:`SubmitRequest` and calls a :class:`Backend` (the daemon's store-backed one, or a fake
in the tests), which answers with a :class:`SubmitResult` per message or refuses them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from smppgw.codec.constants import DataCoding
from smppgw.codec.errors import SmppError
from smppgw.esme.numbers import Sender
from smppgw.gateway.events import ReceiptPayload, StatusPayload, StoredEvent

__all__ = [
    "Backend",
    "BackendOverloadedError",
    "BackendStorageFullError",
    "BackendStoreUnavailableError",
    "SubmitRequest",
    "SubmitResult",
]


class BackendOverloadedError(SmppError):
    """Raised by a backend that cannot take more messages now (answered ``overloaded``)."""


class BackendStorageFullError(SmppError):
    """Raised by a backend whose storage is full: nothing was stored (``storage_full``)."""


class BackendStoreUnavailableError(SmppError):
    """Raised by a backend whose store (a database shared by several instances) cannot be
    reached: nothing was stored (``store_unavailable``)."""


# --- what the backend receives and returns ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    """One validated message, ready to be stored.

    ``data_coding`` is the alphabet (DEFAULT = GSM 03.38, LATIN_1, UCS2, or
    OCTET_UNSPECIFIED_2 for binary ``hex`` payloads); :attr:`wire_coding` adds the flash
    class. Exactly one of ``text`` and ``payload`` is set. ``validity`` and ``schedule`` are
    SMPP time strings (section 7.1.1). ``parts`` is the number of SMS the message needs.
    """

    to: str
    sender: Sender
    text: str | None
    payload: bytes | None
    data_coding: DataCoding
    parts: int
    flash: bool = False
    registered_delivery: bool = True
    pe_id: str | None = None
    template_id: str | None = None
    tm_id: str | None = None
    validity: str | None = None
    schedule: str | None = None
    priority: int = 0
    custom: str | None = None

    @property
    def wire_coding(self) -> DataCoding:
        """The data_coding to send: message class 0 (0x10 / 0x18) when ``flash``."""
        if not self.flash:
            return self.data_coding
        return (
            DataCoding.UCS2_FLASH if self.data_coding == DataCoding.UCS2 else DataCoding.GSM_FLASH
        )


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What the backend did with one message: its id, part count, and whether it was a
    duplicate of an earlier message with the same ``custom`` (then ``id`` is that one's)."""

    id: str
    parts: int
    duplicate: bool = False


class Backend(Protocol):
    """What the intake needs from the daemon (a store-backed implementation, or a fake)."""

    async def submit(self, requests: Sequence[SubmitRequest]) -> Sequence[SubmitResult]:
        """Store the messages durably (one commit for all) and return a result for each,
        in order. Raise :class:`BackendOverloadedError` to refuse them all for now."""
        ...

    async def status(
        self, *, message_id: str | None = None, custom: str | None = None
    ) -> StatusPayload | None:
        """A message's current status, or None if unknown."""
        ...

    async def events_after(self, cursor: int, limit: int) -> Sequence[StoredEvent]:
        """Up to ``limit`` events with a cursor greater than ``cursor``, oldest first."""
        ...

    async def wait_events(self, cursor: int) -> None:
        """Return once an event after ``cursor`` may exist (at once if one does)."""
        ...

    async def last_cursor(self) -> int:
        """The cursor of the newest event (0 if there is none)."""
        ...

    async def unmatched(self, limit: int) -> tuple[int, Sequence[ReceiptPayload]]:
        """How many delivery receipts matched no message, and the oldest ``limit`` of them."""
        ...
