"""ReceiptTracker: receipts from any bind matched to the tracked message and part, ids hex or
decimal; early receipts parked and claimed; MO messages passed on; memory bounded."""

from __future__ import annotations

import asyncio

import pytest

from smppgw.codec import CommandStatus, DeliverSm, EsmClass, Tlv
from smppgw.esme import (
    PartResult,
    PartStatus,
    ReceiptMatch,
    ReceiptTracker,
)


def accepted(*ids: str | None) -> list[PartResult]:
    return [PartResult(PartStatus.ACCEPTED, i) if i else PartResult(PartStatus.FAILED) for i in ids]


def receipt(smsc_id: str, stat: str = "DELIVRD") -> DeliverSm:
    text = (
        f"id:{smsc_id} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 "
        f"stat:{stat} err:000 text:"
    )
    return DeliverSm(esm_class=EsmClass.DELIVERY_RECEIPT, short_message=text.encode())


async def test_a_receipt_in_hex_finds_the_part_whose_resp_gave_its_id_in_decimal() -> None:
    matches: list[ReceiptMatch] = []

    async def on_receipt(match: ReceiptMatch) -> None:
        matches.append(match)

    tracker = ReceiptTracker(on_receipt=on_receipt, clock=lambda: 100.0)
    tracker.track("m1", accepted("4096", "4097"))
    assert await tracker.handle(receipt("1001")) == CommandStatus.ESME_ROK
    assert [(m.key, m.part, m.parts, m.dlr.stat) for m in matches] == [("m1", 1, 2, "DELIVRD")]
    assert tracker.receipts("m1")[0] is None
    assert tracker.unmatched == ()


async def test_wait_returns_once_every_part_with_an_id_has_a_final_receipt() -> None:
    tracker = ReceiptTracker()
    tracker.track("m1", accepted("0A", None, "0b"))
    waiter = asyncio.ensure_future(tracker.wait("m1", timeout=5))
    await tracker.handle(receipt("a", stat="ACCEPTD"))  # intermediate: not final
    await tracker.handle(receipt("B"))
    await asyncio.sleep(0)
    assert not waiter.done()
    await tracker.handle(receipt("a"))
    receipts = await waiter
    assert [r.stat if r else None for r in receipts] == ["DELIVRD", None, "DELIVRD"]


async def test_a_receipt_that_beats_track_is_parked_and_claimed_by_it() -> None:
    tracker = ReceiptTracker()
    await tracker.handle(receipt("77"))
    assert [d.smsc_id for d in tracker.unmatched] == ["77"]
    (match,) = tracker.track("m1", accepted("77"))
    assert (match.key, match.part) == ("m1", 0)
    assert tracker.unmatched == ()
    assert (await tracker.wait("m1", timeout=1))[0] is not None


async def test_a_late_intermediate_notification_never_hides_the_final_receipt() -> None:
    tracker = ReceiptTracker()
    tracker.track("m1", accepted("5"))
    await tracker.handle(receipt("5", stat="UNDELIV"))
    await tracker.handle(receipt("5", stat="ENROUTE"))
    (dlr,) = tracker.receipts("m1")
    assert dlr is not None
    assert dlr.stat == "UNDELIV"


async def test_a_message_that_is_no_receipt_goes_to_on_message_which_answers_it() -> None:
    seen: list[DeliverSm] = []

    async def on_message(pdu: object) -> CommandStatus:
        assert isinstance(pdu, DeliverSm)
        seen.append(pdu)
        return CommandStatus.ESME_RX_T_APPN

    tracker = ReceiptTracker(on_message=on_message)
    mo = DeliverSm(short_message=b"id:5 stat:DELIVRD")  # receipt-like text, but an MO
    assert await tracker.handle(mo) == CommandStatus.ESME_RX_T_APPN
    assert seen == [mo]
    assert tracker.unmatched == ()


async def test_unmatched_receipts_are_bounded_oldest_let_go_first() -> None:
    tracker = ReceiptTracker(max_unmatched=2)
    for smsc_id in ("1", "2", "3"):
        await tracker.handle(receipt(smsc_id))
    assert [d.smsc_id for d in tracker.unmatched] == ["2", "3"]
    assert tracker.dropped == 1


async def test_a_forgotten_message_no_longer_claims_receipts_and_keys_are_unique() -> None:
    tracker = ReceiptTracker()
    tracker.track("m1", accepted("9"))
    with pytest.raises(ValueError, match="already tracked"):
        tracker.track("m1", accepted("10"))
    tracker.forget("m1")
    await tracker.handle(receipt("9"))
    assert [d.smsc_id for d in tracker.unmatched] == ["9"]
    with pytest.raises(KeyError):
        tracker.receipts("m1")


async def test_a_receipt_carried_by_tlvs_alone_is_matched() -> None:
    tracker = ReceiptTracker()
    tracker.track("m1", accepted("abc"))
    await tracker.handle(
        DeliverSm(
            esm_class=EsmClass.DELIVERY_RECEIPT,
            tlvs=(Tlv(0x001E, b"ABC\x00"), Tlv(0x0427, b"\x02")),
        )
    )
    (dlr,) = await tracker.wait("m1", timeout=1)
    assert dlr is not None
    assert dlr.final
