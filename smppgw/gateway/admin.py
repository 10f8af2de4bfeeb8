"""What the daemon does for an operator: pause and resume sending, cancel and retry messages,
a message's history and pages of messages (:class:`AdminOps`, the intake's
:class:`~smppgw.gateway.intake.admin.AdminBackend`).

Pausing is not kept across a restart: a daemon starts sending, and says loudly in its log
that an operator had paused it when it stopped (a paused daemon logs so at every pause and
at its stop). A paused server's binds stay up: enquire_link, receipts and MO keep flowing;
the parts waiting for it go to a server not paused, or wait. Pausing all servers also stops
claiming from the queue: new messages stay ``queued``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from smppgw.codec.constants import CommandStatus
from smppgw.codec.pdu import CancelSm, CancelSmResp, GenericNack
from smppgw.gateway.events import AdminPayload, StoredEvent, format_time
from smppgw.gateway.intake.backend import SubmitRequest
from smppgw.gateway.selection import (
    AdminOutcome,
    ListPage,
    MessageFilter,
    MessageOutcome,
)
from smppgw.gateway.store import OperatorStore, Store

__all__ = ["AdminOps", "AdminStore", "CancellingManager"]

logger = logging.getLogger("smppgw.gateway.admin")

_HISTORY_LIMIT: Final = 10_000


class AdminStore(Store, OperatorStore, Protocol):
    """A store with the operators' queries (the SQLite store)."""


class CancellingManager(Protocol):
    """What :class:`AdminOps` needs of the bind manager
    (:class:`~smppgw.esme.binds.BindManager`)."""

    def pause_sending(self, server: str | None = None) -> tuple[str, ...]: ...

    def resume_sending(self, server: str | None = None) -> tuple[str, ...]: ...

    def paused_servers(self) -> tuple[str, ...]: ...

    def server_names(self) -> tuple[str, ...]: ...

    async def cancel(self, pdu: CancelSm) -> CancelSmResp | GenericNack | None: ...


class AdminOps:
    """The operators' ops on the daemon's store and bind manager.

    Args:
        store: the messages and the event log.
        manager: the binds (pausing, cancel_sm).
        wake: wakes the dispatcher (a message queued again, sending resumed).
        on_paused: told each server's paused state after a change (the metric).
        clock: wall-clock time for the audit event.
    """

    def __init__(
        self,
        store: AdminStore,
        manager: CancellingManager,
        *,
        wake: Callable[[], None],
        on_paused: Callable[[str, bool], None],
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._manager = manager
        self._wake = wake
        self._on_paused = on_paused
        self._clock = clock
        for server in manager.server_names():
            on_paused(server, False)  # noqa: FBT003 - a gauge's value

    @property
    def all_paused(self) -> bool:
        """Whether no server may be sent to: the dispatcher claims nothing."""
        return set(self._manager.paused_servers()) == set(self._manager.server_names())

    def pause(self, server: str | None) -> tuple[str, ...]:
        paused = self._manager.pause_sending(server)
        self._tell_paused()
        return paused

    def resume(self, server: str | None) -> tuple[str, ...]:
        paused = self._manager.resume_sending(server)
        self._tell_paused()
        self._wake()
        return paused

    def paused(self) -> tuple[str, ...]:
        return self._manager.paused_servers()

    def _tell_paused(self) -> None:
        paused = set(self._manager.paused_servers())
        for server in self._manager.server_names():
            self._on_paused(server, server in paused)

    async def cancel(self, selection: MessageFilter, limit: int) -> list[MessageOutcome]:
        outcomes, at_smsc = await self._store.cancel_queued(selection, limit)
        for message_id in at_smsc:
            outcomes.append(await self._cancel_at_smsc(message_id))
        return outcomes

    async def _cancel_at_smsc(self, message_id: str) -> MessageOutcome:
        """Withdraw a message scheduled at the SMSC with one cancel_sm per part."""
        found = await self._store.scheduled_parts(message_id)
        if found is None:
            return MessageOutcome(
                message_id, AdminOutcome.NOT_CANCELLABLE, None, "no longer waiting at the SMSC"
            )
        request, parts = found
        for _part, smsc_id in parts:
            resp = await self._manager.cancel(_cancel_pdu(request, smsc_id))
            if resp is None or resp.command_status != CommandStatus.ESME_ROK:
                answer = "no answer" if resp is None else resp.command_status.name
                return MessageOutcome(
                    message_id,
                    AdminOutcome.NOT_CANCELLABLE,
                    "submitted",
                    f"the SMSC did not cancel it (cancel_sm: {answer})",
                )
        if not await self._store.cancelled_at_smsc(message_id):
            return MessageOutcome(
                message_id,
                AdminOutcome.NOT_CANCELLABLE,
                None,
                "cancelled at the SMSC, but its state changed meanwhile",
            )
        return MessageOutcome(message_id, AdminOutcome.CANCELLED, "cancelled")

    async def retry(self, selection: MessageFilter, limit: int) -> list[MessageOutcome]:
        outcomes = await self._store.retry_failed(selection, limit)
        if any(o.outcome is AdminOutcome.RETRIED for o in outcomes):
            self._wake()
        return outcomes

    async def history(
        self, *, message_id: str | None, custom: str | None, limit: int
    ) -> tuple[str, Sequence[StoredEvent]] | None:
        status = await self._store.status(message_id=message_id, custom=custom)
        if status is None:
            return None
        return status.id, await self._store.history(status.id, min(limit, _HISTORY_LIMIT))

    async def list_messages(
        self, selection: MessageFilter, limit: int, after: int | None
    ) -> ListPage:
        return await self._store.list_messages(selection, limit, after)

    async def audit(self, payload: AdminPayload) -> None:
        """Log the action (WARNING for what stops or drops traffic, else INFO) and write it
        to the event log as ``sms:admin``."""
        payload = AdminPayload(
            op=payload.op,
            uid=payload.uid,
            pid=payload.pid,
            server=payload.server,
            counts=payload.counts,
            filter=payload.filter,
            time=format_time(self._clock()),
        )
        level = logging.WARNING if payload.op in {"pause", "cancel"} else logging.INFO
        target = (
            f"server {payload.server}"
            if payload.server is not None
            else ("all servers" if payload.op in {"pause", "resume"} else "")
        )
        counts = ", ".join(f"{n} {what}" for what, n in payload.counts.items()) or ""
        logger.log(
            level,
            "admin: %s%s%s by uid %s (pid %s)%s%s",
            payload.op,
            f" {target}" if target else "",
            f" ({counts})" if counts else "",
            payload.uid if payload.uid is not None else "unknown",
            payload.pid if payload.pid is not None else "unknown",
            f"; filter {payload.filter}" if payload.filter else "",
            "; paused now: " + (", ".join(self.paused()) or "none")
            if payload.op in {"pause", "resume"}
            else "",
        )
        await self._store.add_admin_event(payload)

    def log_stop(self) -> None:
        """At stop: say loudly that sending was paused (a restart does not keep it)."""
        paused = self.paused()
        if paused:
            logger.warning(
                "admin: stopping while sending to %s is paused; the next start sends again",
                ", ".join(paused),
            )


def _cancel_pdu(request: SubmitRequest, smsc_id: str) -> CancelSm:
    sender = request.sender
    return CancelSm(
        message_id=smsc_id,
        source_addr_ton=sender.ton,
        source_addr_npi=sender.npi,
        source_addr=sender.value,
    )
