"""What ``mypy --strict`` sees of the ESME library's public API (``make test`` runs mypy on this
file): each ``assert_type`` must hold, and each ``# type: ignore[...]`` must still be needed
(``warn_unused_ignores``), so a change that loosens or breaks a public type fails the build.
The same calls run under pytest, so the types describe values the library really returns."""

from __future__ import annotations

from typing import assert_type

from smppgw.codec import CommandStatus, DataCoding, DeliverSm, MessageState, SubmitSm
from smppgw.codec.constants import EsmClass
from smppgw.esme import (
    BindManager,
    BindManagerSettings,
    Coding,
    Dlr,
    PartResult,
    PartStatus,
    ReceiptMatch,
    ReceiptTracker,
    Sender,
    ServerSettings,
    TextResult,
    dlr_from_pdu,
    id_candidates,
    text_parts,
    validate_sender,
)
from smppgw.provider import DltIds, dlt_ids, dlt_tlvs


def test_text_parts_are_submit_sm_with_typed_coding() -> None:
    parts = text_parts("919876543210", "Hi", source="ACMEIN", coding=Coding.AUTO)
    assert_type(parts, tuple[SubmitSm, ...])
    assert_type(Coding.UCS2.data_coding("x"), DataCoding)
    assert parts[0].data_coding == DataCoding.DEFAULT


def test_a_text_result_gives_part_results_and_their_ids() -> None:
    result = TextResult(
        DataCoding.UCS2, (), (PartResult(PartStatus.ACCEPTED, "1a", CommandStatus.ESME_ROK),)
    )
    assert_type(result.data_coding, DataCoding)
    assert_type(result.results, tuple[PartResult, ...])
    assert_type(result.message_ids, tuple[str | None, ...])
    assert_type(result.accepted, bool)
    part = result.results[0]
    assert_type(part.status, PartStatus)
    assert_type(part.smsc_message_id, str | None)
    assert_type(part.command_status, CommandStatus | None)
    assert result.message_ids == ("1a",)


async def test_the_tracker_hands_out_typed_receipts() -> None:
    tracker = ReceiptTracker()
    assert_type(tracker.track("m", [PartResult(PartStatus.ACCEPTED, "5")]), list[ReceiptMatch])
    assert_type(tracker.receipts("m"), tuple[Dlr | None, ...])
    status = await tracker.handle(DeliverSm(short_message=b"hello"))
    assert_type(status, CommandStatus)
    dlr = dlr_from_pdu(
        DeliverSm(esm_class=EsmClass.DELIVERY_RECEIPT, short_message=b"id:5 stat:DELIVRD"),
        received_at=0,
    )
    assert_type(dlr, Dlr | None)
    assert dlr is not None
    assert_type(dlr.state, MessageState | None)
    assert_type(id_candidates("5"), tuple[str, ...])
    assert dlr.state is MessageState.DELIVERED


def test_settings_senders_and_dlt_ids_are_typed() -> None:
    settings = BindManagerSettings(
        servers=(ServerSettings(name="a", host="127.0.0.1", port=2775),),
        system_id="acme",
        password="secret",
    )
    assert_type(settings.servers, tuple[ServerSettings, ...])
    assert_type(validate_sender("ACMEIN"), Sender)
    assert_type(dlt_ids(dlt_tlvs("1", "2")), DltIds)
    assert dlt_ids(dlt_tlvs("1", "2")) == DltIds("1", "2", None)


async def _misuse_is_refused(manager: BindManager) -> None:
    """Never run: each line must stay a type error."""
    text_parts("919876543210", "Hi", source=5)  # type: ignore[arg-type]
    text_parts("919876543210", "Hi", source="A", coding="gsm")  # type: ignore[arg-type]
    await manager.submit(SubmitSm())  # type: ignore[arg-type]
    ReceiptTracker().track("m", ["1a"])  # type: ignore[list-item]
