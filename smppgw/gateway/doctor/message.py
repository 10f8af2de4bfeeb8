"""The doctor's test message: one submit_sm on a bound link, then its receipt, whose ids tell
in which form the server writes message ids (the same, or the other base), which is what
receipt matching depends on."""

from __future__ import annotations

import asyncio
import contextlib

from smppgw.codec import (
    CommandStatus,
    DataCoding,
    DeliverSm,
    RegisteredDelivery,
    SubmitSm,
    SubmitSmResp,
    Tag,
    find_tlv,
)
from smppgw.codec.constants import Npi, Ton
from smppgw.codec.receipt import ReceiptInfo, ReceiptParseError, receipt_info
from smppgw.codec.text import encode_text
from smppgw.esme.numbers import Sender
from smppgw.gateway.doctor.probe import LinkClosedError
from smppgw.gateway.doctor.report import TestMessageResult
from smppgw.gateway.doctor.steps import Context

__all__ = ["TEST_TEXT", "id_form", "send_test_message"]

TEST_TEXT = "smppgw doctor: test message"


def _id_forms(message_id: str, deliver: DeliverSm, info: ReceiptInfo) -> dict[str, str | None]:
    """The id form of each place a receipt writes the id: its TLV and its text."""
    ids: dict[str, str] = {}
    raw = find_tlv(deliver.tlvs, Tag.RECEIPTED_MESSAGE_ID)
    if raw:
        ids["receipted_message_id"] = raw.rstrip(b"\x00").decode("latin-1")
    if info.receipt is not None and info.receipt.id:
        ids["text"] = info.receipt.id
    return {where: id_form(message_id, receipt_id) for where, receipt_id in ids.items()}


def id_form(message_id: str, receipt_id: str) -> str | None:
    """How a receipt writes the message id the submit_sm_resp gave, or None if unrelated."""
    if receipt_id == message_id:
        if message_id.isdigit() and int(message_id) < 10:
            return "the same id in receipts as in responses (too short to tell hex from decimal)"
        return "the same id in receipts as in responses"
    a, b = message_id.strip().lower().lstrip("0"), receipt_id.strip().lower().lstrip("0")
    if a == b:
        return "the same id in receipts, in another letter case or with leading zeros"
    with contextlib.suppress(ValueError):
        if int(receipt_id, 10) == int(message_id, 16):
            return "hex ids in responses, the same ids in decimal in receipts"
    with contextlib.suppress(ValueError):
        if int(receipt_id, 16) == int(message_id, 10):
            return "decimal ids in responses, the same ids in hex in receipts"
    return None


# --- probing ---------------------------------------------------------------------------------


async def send_test_message(
    context: Context, to: str, sender: Sender, receipt_timeout: float
) -> TestMessageResult:
    """Send the test message to ``to`` on the first bound link that can submit, and wait up
    to ``receipt_timeout`` for its receipt on any link."""
    result = TestMessageResult(to)
    senders = [(name, probe) for name, kind, probe in context.probes_open if kind.can_submit]
    if not senders:
        result.problem = "no bound bind can submit (transmitter or transceiver)"
        return result
    if not any(kind.can_receive for _, kind, _ in context.probes_open):
        result.problem = "no bound bind can receive receipts (receiver or transceiver)"
    result.server, probe = senders[0]
    pdu = SubmitSm(
        source_addr_ton=sender.ton,
        source_addr_npi=sender.npi,
        source_addr=sender.value,
        dest_addr_ton=Ton.INTERNATIONAL,
        dest_addr_npi=Npi.ISDN,
        destination_addr=to,
        registered_delivery=RegisteredDelivery.FINAL,
        data_coding=DataCoding.DEFAULT,
        short_message=encode_text(TEST_TEXT, DataCoding.DEFAULT),
    )
    sent = context.clock()
    try:
        resp = await probe.request(pdu, context.settings.response_timeout)
    except (LinkClosedError, TimeoutError) as exc:
        result.problem = f"submit_sm: no response ({type(exc).__name__})"
        return result
    result.submit_status = resp.command_status
    if not isinstance(resp, SubmitSmResp) or resp.command_status != CommandStatus.ESME_ROK:
        status = resp.command_status
        result.problem = f"submit_sm refused: {status.name} ({status.description})"
        return result
    result.message_id = resp.message_id
    if result.problem is not None:
        return result
    await _await_receipt(context, result, resp.message_id, receipt_timeout, sent)
    return result


async def _await_receipt(
    context: Context,
    result: TestMessageResult,
    message_id: str,
    receipt_timeout: float,
    sent: float,
) -> None:
    """Wait for the test message's receipt, on any bind; note its id form in ``result``."""
    try:
        async with asyncio.timeout(receipt_timeout):
            while True:
                _, deliver = await context.receipts.get()
                try:
                    info = receipt_info(deliver.short_message, deliver.tlvs)
                except ReceiptParseError:
                    continue  # an MO message, not a receipt
                forms = _id_forms(message_id, deliver, info)
                if any(form is not None for form in forms.values()):
                    break
                result.receipt_id = info.message_id  # the latest unrelated one, for the report
    except TimeoutError:
        if result.receipt_id is not None:
            result.problem = (
                f"receipts arrived (the latest for id {result.receipt_id}) but none for "
                f"{message_id} in {receipt_timeout:g} s: ids in a form the gateway "
                "cannot match, or the receipt is late"
            )
        else:
            result.problem = f"no receipt in {receipt_timeout:g} s"
        return
    result.receipt_id = info.message_id
    result.receipt_stat = info.stat or (info.state.name if info.state is not None else None)
    result.receipt_after = context.clock() - sent
    result.id_forms = {where: form or "an unrelated id" for where, form in forms.items()}
