"""Inbound: delivery receipts and MO messages from the SMSC, receipt recovery (query_sm for
overdue receipts) and housekeeping. Part of :class:`~smppgw.gateway.daemon.Gateway`."""

from __future__ import annotations

import asyncio
import logging
import uuid

import msgspec

from smppgw.codec.constants import CommandStatus, EsmClass
from smppgw.codec.pdu import DataSm, DeliverSm, GenericNack, QuerySmResp
from smppgw.codec.text import decode_text
from smppgw.codec.udh import parse_udh
from smppgw.esme.ratelimit import TokenBucket
from smppgw.esme.session import inbound_origin
from smppgw.gateway.correlate import Dlr, dlr_from_pdu, is_receipt, user_data
from smppgw.gateway.daemon_core import DAY, GatewayCore, receipt_key
from smppgw.gateway.events import (
    DeliveryState,
    InboundEvent,
    InboundPayload,
    encode_event,
    format_time,
)
from smppgw.gateway.recovery import Waiting, dlr_from_query
from smppgw.gateway.store import Store, StoreError

__all__ = ["Inbound", "mo_event"]

logger = logging.getLogger("smppgw.gateway.daemon")  # the daemon's parts log as the daemon


class Inbound(GatewayCore):
    """Answering deliver_sm / data_sm, and the ``receipt recovery`` and ``housekeeping``
    tasks."""

    async def _on_inbound(self, pdu: DeliverSm | DataSm) -> CommandStatus:
        """Record a deliver_sm / data_sm; the returned status answers it."""
        try:
            now = self._clock()
            origin = inbound_origin()
            server = origin.server if origin is not None else None
            if is_receipt(pdu):
                bind = origin.bind if origin is not None else None
                dlr = dlr_from_pdu(pdu, received_at=now, server=server, bind=bind)
                if dlr is not None:
                    await self._receipt(dlr)
                    return CommandStatus.ESME_ROK
                logger.warning("a delivery receipt without a message id was received and ignored")
                self.observer.dlr_received("", matched=False)
                return CommandStatus.ESME_ROK
            await self._mo(pdu, now, server)
        except StoreError as exc:
            self._store_log.error(
                "recording an inbound message failed (%s); the SMSC will resend it", exc
            )
            return CommandStatus.ESME_RX_T_APPN
        except Exception:
            logger.exception("recording an inbound message failed; the SMSC will resend it")
            return CommandStatus.ESME_RX_T_APPN
        return CommandStatus.ESME_ROK

    async def _receipt(self, dlr: Dlr) -> None:
        correlator = self.correlator
        assert correlator is not None
        match = await correlator.on_dlr(dlr)
        self._receipts.arrived(
            receipt_key(dlr), dlr.stat or "", matched=match is not None, now=dlr.received_at
        )
        if match is not None:
            await self._apply(match)

    # --- receipt recovery (query_sm) --------------------------------------------------------

    async def _start_recovery(self, store: Store) -> None:
        """Watch the parts that were waiting for receipts at the last stop, then start asking
        about overdue ones."""
        for message_id, part, smsc_id, registered_at, request in await store.waiting_parts():
            self._watch_part(message_id, part, smsc_id, registered_at, request)
        self._tasks.append(asyncio.create_task(self._recover_receipts(), name="receipt recovery"))

    async def _recover_receipts(self) -> None:
        """Ask about the parts whose receipts are overdue, at ``query_rate`` (see
        :mod:`smppgw.gateway.recovery`); each query also takes its server's token."""
        watch = self._watch
        bucket = self._query_bucket
        while True:
            settings = watch.settings  # a reload may change them
            longest = min(30.0, max(0.05, min(settings.query_after, settings.query_interval) / 2))
            now = self._clock()
            batch = watch.due(now, 100)
            if not batch:
                due = watch.next_due()
                await asyncio.sleep(longest if due is None else min(longest, max(0.01, due - now)))
                continue
            for part in batch:
                try:
                    await self._query(part, bucket)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("query_sm for message %s failed", part.message_id)
                    watch.retry(part, self._clock() + settings.query_interval)

    async def _query(self, part: Waiting, bucket: TokenBucket) -> None:
        store, manager, watch = self.store, self.manager, self._watch
        assert store is not None
        assert manager is not None
        if not await store.still_waiting(part.message_id, part.part):
            return  # its receipt came, or the message ended otherwise
        await bucket.acquire()
        resp = await manager.query(part.query())
        now = self._clock()
        if resp is None or resp.command_status == CommandStatus.ESME_RTHROTTLED:
            # Not sent, no answer, or the server is busy: not counted, try again later.
            watch.retry(part, now + min(30.0, watch.settings.query_interval))
            return
        if isinstance(resp, GenericNack) or resp.command_status == CommandStatus.ESME_RINVCMDID:
            if not self._query_unsupported:
                self._query_unsupported = True
                logger.warning(
                    "the SMSC does not support query_sm (%s): overdue receipts cannot be "
                    "asked for; set [receipts] query_after = 0 to stop trying",
                    resp.command_status.name,
                )
        elif isinstance(resp, QuerySmResp):
            dlr = dlr_from_query(part, resp, received_at=now)
            if dlr is not None:
                await self._recovered(dlr, part)
                return
        watch.answered(part, now)

    async def _recovered(self, dlr: Dlr, part: Waiting) -> None:
        correlator = self.correlator
        assert correlator is not None
        match = await correlator.on_dlr(dlr)
        if match is None:
            return  # the part stopped matching meanwhile; the receipt is kept as unmatched
        logger.info(
            "message %s part %d: no receipt came; query_sm says %s",
            part.message_id,
            part.part,
            dlr.stat,
        )
        await self._apply(match)

    async def _mo(self, pdu: DeliverSm | DataSm, now: float, server: str | None) -> None:
        store = self.store
        assert store is not None
        data = user_data(pdu)
        reference, total, seqnum = 0, 1, 1
        if pdu.esm_class & EsmClass.UDHI:
            udh, data = parse_udh(data)
            concat = udh.concat
            if concat is not None:
                reference, total, seqnum = concat.reference, concat.total, concat.seqnum
        else:
            ref, tot, seq = pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum
            if ref is not None and tot is not None and seq is not None and 1 <= seq <= tot:
                reference, total, seqnum = ref, tot, seq
        key = f"{pdu.source_addr}|{pdu.destination_addr}|{reference}|{total}"
        head = _mo_head_encoder.encode(
            _MoHead(pdu.source_addr, pdu.destination_addr, pdu.data_coding, now, server)
        )

        cursor = await store.add_inbound(key, seqnum, total, data, head=head, build=mo_event)
        if cursor is not None:
            self.observer.mo_received()
            self._event_written()

    # --- housekeeping -----------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        store, correlator = self.store, self.correlator
        assert store is not None
        assert correlator is not None
        while True:
            try:
                for state, count in (await store.counts()).items():
                    self.observer.queue_depth(state, count)
                await correlator.expire()
                self._receipts.sweep(self._clock())
                held = await correlator.count_unmatched()
                self.observer.unmatched_dlrs(max(0, held - self._receipts.parked))
                await self._end_waits()
                incomplete = await store.expire_inbound(
                    self._clock() - self.options.mo_parts_wait, mo_event
                )
                if incomplete:
                    logger.warning("%d long MO messages written out with parts missing", incomplete)
                    self._event_written()
                pruned = await store.prune()
                if pruned:
                    logger.info("pruned %d final messages past retention", pruned)
            except Exception:
                logger.exception("housekeeping failed; retrying at the next interval")
            await asyncio.sleep(self.options.housekeeping_interval)

    async def _end_waits(self) -> None:
        """Messages whose receipts did not come within the correlation TTL (no receipt can
        match them any more) end UNKNOWN, so they are reported and pruned."""
        store = self.store
        assert store is not None
        ttl = self.options.correlation_ttl
        ended = await store.expire_waiting(
            self._clock() - ttl, f"no delivery receipt within {_duration(ttl)}"
        )
        if ended:
            logger.info("%d messages got no delivery receipt in time: ended unknown", ended)
            for _ in range(ended):
                self.observer.message_final(DeliveryState.UNKNOWN.value)
            self._event_written()


class _MoHead(msgspec.Struct, array_like=True, frozen=True):
    """What an MO message's event needs besides its parts, kept with each stored part."""

    source: str
    destination: str
    coding: int
    received_at: float
    server: str | None


_mo_head_encoder = msgspec.msgpack.Encoder()
_mo_head_decoder = msgspec.msgpack.Decoder(_MoHead)


def mo_event(head_bytes: bytes, parts: list[bytes], missing: tuple[int, ...]) -> bytes:
    """The ``sms:message:in`` event of an MO message from its parts (some missing, when the
    wait for them ran out)."""
    head = _mo_head_decoder.decode(head_bytes)
    body = b"".join(parts)
    try:
        text: str | None = decode_text(body, head.coding)
        hex_body = None
    except ValueError:
        text, hex_body = None, body.hex()
    return encode_event(
        InboundEvent(
            InboundPayload(
                id=uuid.uuid4().hex,
                from_=head.source,
                to=head.destination,
                text=text,
                hex=hex_body,
                coding=head.coding,
                parts=len(parts),
                received_time=format_time(head.received_at) or "",
                server=head.server,
                complete=not missing,
                missing=missing,
            )
        )
    )


def _duration(seconds: float) -> str:
    if seconds >= DAY:
        return f"{seconds / DAY:g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:g} hours"
    return f"{seconds:g} s"
