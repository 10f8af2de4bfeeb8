"""Which messages an operator's ``cancel``, ``retry`` or ``list`` is about, and what became
of each.

A :class:`MessageFilter` is either a list of ids, one ``custom``, or conditions on the state,
the destination, a ``custom`` prefix and the time the message was accepted; the store turns
it into one indexed query.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from smppgw.gateway.events import StatusPayload

__all__ = ["AdminOutcome", "ListPage", "MessageFilter", "MessageOutcome"]


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """A selection of messages; every condition given must hold.

    ``since`` and ``until`` bound the time the message was accepted (Unix seconds, ``since``
    inclusive, ``until`` exclusive).
    """

    ids: tuple[str, ...] = ()
    custom: str | None = None
    states: tuple[str, ...] = ()
    to: str | None = None
    custom_prefix: str | None = None
    since: float | None = None
    until: float | None = None

    @property
    def by_key(self) -> bool:
        """Whether the selection names its messages (ids or custom) rather than describes them."""
        return bool(self.ids) or self.custom is not None

    @property
    def described(self) -> bool:
        """Whether a condition other than the state is given."""
        return any(v is not None for v in (self.to, self.custom_prefix, self.since, self.until))

    def as_dict(self) -> dict[str, object]:
        """The conditions given, as the audit event's ``filter`` carries them."""
        found: dict[str, object] = {}
        if self.ids:
            found["id"] = list(self.ids)
        for name in ("custom", "to", "custom_prefix", "since", "until"):
            value = getattr(self, name)
            if value is not None:
                found[name] = value
        if self.states:
            found["state"] = list(self.states)
        return found


class AdminOutcome(enum.StrEnum):
    """What a ``cancel`` or ``retry`` did to one message."""

    CANCELLED = "cancelled"  # queued (or scheduled at the SMSC): now final ``cancelled``
    NOT_CANCELLABLE = "not_cancellable"  # sent for immediate delivery, or already final
    RETRIED = "retried"  # failed or unknown: queued again under the same id
    NOT_RETRIABLE = "not_retriable"  # not failed or unknown
    NOT_FOUND = "not_found"  # no message with that id or custom


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """One message of a ``cancel`` or ``retry``: its id, the outcome, and why (in words) when
    nothing was done. ``state`` is the message's state after the operation."""

    id: str
    outcome: AdminOutcome
    state: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        found: dict[str, object] = {"id": self.id, "outcome": self.outcome.value}
        if self.state is not None:
            found["state"] = self.state
        if self.reason is not None:
            found["reason"] = self.reason
        return found


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of ``list``, newest first; ``next`` is the ``after`` key of the next page
    (None: this is the last one)."""

    messages: tuple[StatusPayload, ...]
    next: int | None
