"""The dispatcher: claims due messages from the store as window slots free up, submits their
parts through the bind manager, records each accepted part before the next goes out, and each
message's outcome. Part of :class:`~smppgw.gateway.daemon.Gateway`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections.abc import Awaitable, Sequence
from typing import Final

from smppgw.codec.constants import CommandStatus, Npi, RegisteredDelivery, Ton
from smppgw.codec.errors import EncodeError
from smppgw.codec.pdu import DataSmResp, Pdu, SubmitSm, SubmitSmResp
from smppgw.codec.split import split_message, split_octets
from smppgw.esme.binds import ManagerStoppedError, PartResult, PartStatus
from smppgw.esme.trace import TRACE_LABEL
from smppgw.gateway.correlate import PartEntry
from smppgw.gateway.daemon_core import (
    STORE_RETRY_MAX,
    STORE_RETRY_MIN,
    GatewayCore,
    receipt_key,
)
from smppgw.gateway.events import DeliveryState
from smppgw.gateway.intake import SubmitRequest
from smppgw.gateway.store import ClaimedMessage, StoreClosedError, StoreError
from smppgw.provider import dlt_tlvs

__all__ = ["NO_RECEIPT_REASON", "Dispatcher", "build_parts"]

logger = logging.getLogger("smppgw.gateway.daemon")  # the daemon's parts log as the daemon

_REQUEUE_STATUSES: Final = frozenset({CommandStatus.ESME_RMSSQFUL, CommandStatus.ESME_RTHROTTLED})


def _reference(message_id: str) -> int:
    """The concatenation reference of a message: stable across restarts (same UDH on resend)."""
    return hashlib.blake2b(message_id.encode(), digest_size=1).digest()[0]


def build_parts(message_id: str, request: SubmitRequest) -> list[SubmitSm]:
    """The submit_sm of each part of a stored message, in order.

    Text, or a binary (``hex``) payload, is split with a concatenation UDH (8-bit reference
    derived from the message id) by :mod:`smppgw.codec.text`.

    Raises:
        EncodeError: the text cannot be encoded (the intake checked it, so only a store written
            by another version could hold such a message).
    """
    coding = request.wire_coding
    reference = _reference(message_id)
    if request.text is not None:
        parts = split_message(request.text, coding, reference=reference)
    else:
        parts = split_octets(request.payload or b"", coding, reference=reference)
    dlt = dlt_tlvs(request.pe_id, request.template_id, request.tm_id)
    sender = request.sender
    return [
        SubmitSm(
            source_addr_ton=sender.ton,
            source_addr_npi=sender.npi,
            source_addr=sender.value,
            dest_addr_ton=Ton.INTERNATIONAL,
            dest_addr_npi=Npi.ISDN,
            destination_addr=request.to,
            esm_class=part.esm_class,
            priority_flag=request.priority,
            schedule_delivery_time=request.schedule or "",
            validity_period=request.validity or "",
            registered_delivery=(
                RegisteredDelivery.FINAL if request.registered_delivery else RegisteredDelivery.NONE
            ),
            data_coding=coding,
            short_message=part.short_message,
            tlvs=(*part.tlvs, *dlt),
        )
        for part in parts
    ]


class Dispatcher(GatewayCore):
    """Claiming and submitting (the ``dispatcher`` task)."""

    async def _resume(self) -> None:
        """Put back in the queue what a previous run left claimed, before claiming anything.
        Retried (not fatal) while the store cannot write: a daemon restarted on a full disk
        starts, answers ``storage_full``, and resumes once there is room."""
        store = self.store
        assert store is not None
        delay = STORE_RETRY_MIN
        while True:
            try:
                requeued = await store.requeue_claimed()
            except StoreClosedError:
                raise
            except StoreError as exc:
                self._store_log.error("resuming claimed messages: %s; retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX)
                continue
            if requeued:
                logger.info("resuming %d messages claimed before the last stop", requeued)
            return

    async def _dispatch(self, limit: int) -> None:
        await self._resume()
        while not self._stopping:
            try:
                await self._dispatch_once(limit)
            except StoreClosedError:
                return
            except StoreError as exc:
                # The disk is full or gone: nothing is lost (claims and sends wait in the
                # store); try again in a moment rather than stop dispatching for good.
                self._store_log.error("dispatcher: %s; retrying every second", exc)
                await asyncio.sleep(1.0)

    async def _dispatch_once(self, limit: int) -> None:
        """Claim what the free slots allow, or wait for a slot, a new message or a due one."""
        store = self.store
        assert store is not None
        free = limit - len(self._in_flight)
        if self.admin is not None and self.admin.all_paused:
            free = 0  # an operator paused every server: claim nothing until resumed
        if free > 0:
            claimed = await store.claim(free)
            for message in claimed:
                task = asyncio.create_task(self._send_or_requeue(message))
                self._in_flight.add(task)
                task.add_done_callback(self._sent)
            if claimed and len(claimed) < free:
                return  # the queue may hold more that came meanwhile: look again
            if claimed:
                free = 0
        self._wake.clear()
        if free == 0:
            await self._wake.wait()  # a message finished: a slot is free
            return
        due = await store.next_due()
        delay = 1.0 if due is None else min(1.0, due - self._clock())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(delay, 0.01)):
                await self._wake.wait()  # intake woke us, or a slot freed

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _send_or_requeue(self, message: ClaimedMessage) -> None:
        """Send a claimed message; if that fails unexpectedly, give it back to the queue (as
        after a crash, flagged only if a part may be on the wire unrecorded) rather than leave
        it claimed until the next start. It waits longer after each such failure."""
        try:
            await self._send(message)
        except StoreClosedError:
            return  # stopping: the message stays claimed and is resumed at the next start
        except Exception:
            delay = min(2.0**message.claims, 3600.0)
            logger.exception(
                "sending message %s failed unexpectedly; back in the queue for %.0f s",
                message.id,
                delay,
            )
            store = self.store
            assert store is not None
            with contextlib.suppress(StoreClosedError):
                await self._durably(
                    "requeueing a message", lambda: store.requeue(message.id, delay)
                )

    async def _send(self, message: ClaimedMessage) -> None:
        store, manager = self.store, self.manager
        assert store is not None
        assert manager is not None
        try:
            pdus = build_parts(message.id, message.request)
        except EncodeError as exc:
            reason = str(exc)
            await self._durably(
                "recording a message that cannot be encoded",
                lambda: store.finish_submit(message.id, DeliveryState.FAILED, reason=reason),
            )
            self.observer.message_final(DeliveryState.FAILED.value)
            return
        todo = [i for i in range(len(pdus)) if i not in message.accepted]

        done = 0

        async def on_part(index: int, result: PartResult) -> None:
            nonlocal done
            done = index + 1
            await self._part_done(message, todo[index], len(pdus), result)

        marked = False

        async def on_send() -> None:
            if self.trace.on:  # the wire trace's id for the part about to be written
                TRACE_LABEL.set(f"{message.id}/{todo[min(done, len(todo) - 1)]}")
            # Before the message's first write: durably "may be on the wire", so that after a
            # crash only messages that may have reached the SMSC are flagged possible_duplicate.
            nonlocal marked
            if not marked:
                await self._durably("marking a message as sending", mark)
                marked = True

        def mark() -> Awaitable[None]:
            return store.mark_sending(message.id)

        try:
            results = await manager.submit(
                [pdus[i] for i in todo], on_part=on_part, on_send=on_send
            )
        except StoreClosedError:
            return  # stopping: the message stays claimed and is resumed at the next start
        except ManagerStoppedError as exc:
            results = list(exc.results)
            if not any(r.status is not PartStatus.ACCEPTED for r in results):
                await self._durably("releasing a message", lambda: store.release(message.id))
                return
        await self._finish(message, results)

    async def _part_done(
        self, message: ClaimedMessage, part: int, parts: int, result: PartResult
    ) -> None:
        for late in result.late:
            task = asyncio.create_task(self._late_response(message, part, parts, late))
            self._late.add(task)
            task.add_done_callback(self._late.discard)
        if result.status is not PartStatus.ACCEPTED:
            return
        correlator, store = self.correlator, self.store
        assert correlator is not None
        assert store is not None
        if not result.smsc_message_id:
            # Accepted without an id: remember the part as sent; no receipt can match it.
            now = self._clock()
            entry = PartEntry(message.id, part, parts, "", now, now)
            await self._durably("recording an accepted part", lambda: store.add_part(entry))
            return
        # The SMSC accepted the part: its answer is kept here until the store has it (a part
        # whose acceptance is not recorded would be sent again after a restart). An earlier
        # attempt that timed out may still be answered: keep both ids matchable.
        smsc_id, keep_previous = result.smsc_message_id, bool(result.late)
        matches = await self._durably(
            "recording an accepted part",
            lambda: correlator.register(
                message.id, part, parts, smsc_id, keep_previous=keep_previous
            ),
        )
        for match in matches:
            self._receipts.matched_later(receipt_key(match.dlr))
            await self._durably("applying a receipt", functools.partial(self._apply, match))
        if message.request.registered_delivery and not any(m.dlr.final for m in matches):
            self._watch_part(message.id, part, smsc_id, self._clock(), message.request)

    async def _late_response(
        self, message: ClaimedMessage, part: int, parts: int, late: asyncio.Future[Pdu]
    ) -> None:
        """A part's submit timed out; if its response still comes and accepts it, the part is
        registered under that id all the same (its receipt then matches), and a message that
        had ended ``unknown`` for want of it is resolved."""
        await asyncio.wait([late])
        if late.cancelled():
            return  # the link closed first: the outcome stays unknown
        resp = late.result()
        if not isinstance(resp, SubmitSmResp | DataSmResp):
            return
        if resp.command_status != CommandStatus.ESME_ROK or not resp.message_id:
            logger.warning(
                "message %s part %d: a late response refused an attempt that timed out (%s)",
                message.id,
                part,
                resp.command_status.name,
            )
            return
        correlator, store = self.correlator, self.store
        assert correlator is not None
        assert store is not None
        logger.warning(
            "message %s part %d: accepted as %s by a response after the timeout",
            message.id,
            part,
            resp.message_id,
        )
        try:
            matches = await correlator.register(
                message.id, part, parts, resp.message_id, keep_previous=True
            )
            for match in matches:
                self._receipts.matched_later(receipt_key(match.dlr))
                await self._apply(match)
            if not message.request.registered_delivery:
                cursor = await store.resolve_unknown(
                    message.id, DeliveryState.SENT, NO_RECEIPT_REASON
                )
                if cursor is not None:
                    self.observer.message_final(DeliveryState.SENT.value)
                    self._event_written()
        except StoreError:
            logger.exception("message %s: recording a late response failed", message.id)

    async def _finish(self, message: ClaimedMessage, results: Sequence[PartResult]) -> None:
        store = self.store
        assert store is not None
        duplicate = any(r.possible_duplicate for r in results)
        failed = next((r for r in results if r.status is PartStatus.FAILED), None)
        unknown = next((r for r in results if r.status is PartStatus.UNKNOWN), None)
        if failed is not None and failed.command_status in _REQUEUE_STATUSES:
            # The SMSC's queue is full: a capacity problem, never a reason to fail the
            # message. It goes back to the queue (its accepted parts stay sent).
            delay = self.options.queue_full_delay
            logger.warning(
                "message %s: %s after every retry; back in the queue for %.0f s",
                message.id,
                failed.reason,
                delay,
            )
            await self._durably("releasing a message", lambda: store.release(message.id, delay))
            return
        if failed is not None:
            status = failed.command_status
            state = DeliveryState.FAILED
            err = status.name if isinstance(status, CommandStatus) else None
            reason = _refusal_reason(failed, _part_number(message, results.index(failed)))
            cursor = await self._durably(
                "recording a submit's outcome",
                lambda: store.finish_submit(
                    message.id, state, err=err, reason=reason, possible_duplicate=duplicate
                ),
            )
        elif unknown is not None:
            # A late response may have registered the part meanwhile: the store then records
            # the state an accepted message has instead.
            unknown_reason = unknown.reason or None
            cursor = await self._durably(
                "recording a submit's outcome",
                lambda: store.finish_submit(
                    message.id,
                    DeliveryState.UNKNOWN,
                    reason=unknown_reason,
                    possible_duplicate=duplicate,
                    accepted=_accepted_state(message),
                ),
            )
            recorded = (
                await self._durably(
                    "reading a message's state", lambda: store.status(message_id=message.id)
                )
                if cursor is not None
                else None
            )
            state = DeliveryState.UNKNOWN if recorded is None else recorded.state
        else:
            state, reason = _accepted_state(message)
            cursor = await self._durably(
                "recording a submit's outcome",
                lambda: store.finish_submit(
                    message.id, state, reason=reason, possible_duplicate=duplicate
                ),
            )
        if cursor is not None:
            if state.is_final:
                self.observer.message_final(state.value)
            self._event_written()


NO_RECEIPT_REASON: Final = "accepted by the SMSC; no delivery receipt was requested"


def _accepted_state(message: ClaimedMessage) -> tuple[DeliveryState, str | None]:
    """The state and reason of a message whose every part the SMSC accepted. Without a
    receipt request nothing more will be heard of it: its acceptance is its outcome."""
    if message.request.registered_delivery:
        return DeliveryState.SUBMITTED, None
    return DeliveryState.SENT, NO_RECEIPT_REASON


def _part_number(message: ClaimedMessage, index: int) -> tuple[int, int]:
    """(part number, parts) of the ``index``-th part sent this time (accepted ones are not)."""
    todo = [i for i in range(message.parts) if i not in message.accepted]
    return (todo[index] if index < len(todo) else index), message.parts


def _refusal_reason(failed: PartResult, where: tuple[int, int]) -> str | None:
    """A refused part in words: the command_status name and its description from the
    provider's table, what the bind manager adds (retries), and the part when there are
    several."""
    index, parts = where
    status = failed.command_status
    if status is None:
        reason = failed.reason or None  # not a refusal: an encoding failure, say
    else:
        reason = f"{status.name}: {status.description}"
        extra = failed.reason.removeprefix(status.name).strip()
        if extra:
            reason = f"{reason} ({extra})"
    if reason is not None and parts > 1 and failed.attempts:
        reason = f"part {index} of {parts}: {reason}"
    return reason
