"""Delivery-receipt correlation: id normalisation, matching on any bind, parking, aggregation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.codec import (
    DataSm,
    DeliverSm,
    EsmClass,
    MessageState,
    Tag,
    Tlv,
    c_string_tlv,
    decode,
    encode,
    octet_tlv,
)
from smppgw.codec.receipt import format_receipt
from smppgw.codec.tlv import u8_tlv
from smppgw.gateway.correlate import (
    CorrelationError,
    CorrelationStore,
    Correlator,
    Dlr,
    MemoryCorrelationStore,
    PartEntry,
    aggregate,
    dlr_from_pdu,
    id_candidates,
    normalize_message_id,
)
from smppgw.gateway.events import DeliveryState

STATES = {
    "DELIVRD": MessageState.DELIVERED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "EXPIRED": MessageState.EXPIRED,
    "REJECTD": MessageState.REJECTED,
    "DELETED": MessageState.DELETED,
    "ENROUTE": MessageState.ENROUTE,
    "ACCEPTD": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
}


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def dlr(
    smsc_id: str,
    stat: str = "DELIVRD",
    *,
    at: float = 1_700_000_000.0,
    server: str | None = "smpp1",
    bind: str | None = "smpp1/trx-0",
) -> Dlr:
    return Dlr(
        smsc_id=smsc_id,
        stat=stat,
        state=STATES[stat],
        err="000",
        done_date="2401011200",
        received_at=at,
        server=server,
        bind=bind,
    )


def correlator(clock: Clock | None = None, **kwargs: float) -> Correlator:
    return Correlator(MemoryCorrelationStore(), clock=clock or Clock(), **kwargs)


def test_memory_store_satisfies_the_protocol() -> None:
    store: CorrelationStore = MemoryCorrelationStore()
    assert store is not None


# --- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("", ""),
        ("   ", ""),
        ("123", "123"),
        ("000123", "123"),
        (" 000123\t", "123"),
        ("0000", "0"),
        ("0", "0"),
        ("1A2B", "1a2b"),
        ("001A2b", "1a2b"),
        ("ABC-DEF-0001", "abc-def-0001"),
        ("0a0", "a0"),
    ],
)
def test_normalize_message_id(raw: str, normal: str) -> None:
    assert normalize_message_id(raw) == normal


@pytest.mark.parametrize(
    ("raw", "candidates"),
    [
        ("", ("",)),
        ("6699", ("6699", "1a2b", "26265")),
        ("1A2B", ("1a2b", "6699")),
        ("000123", ("123", "7b", "291")),
        ("0", ("0",)),
        ("10", ("10", "a", "16")),
        ("ff", ("ff", "255")),
        ("550e8400-e29b-41d4-a716-446655440000", ("550e8400-e29b-41d4-a716-446655440000",)),
        ("xyz", ("xyz",)),
        ("1" * 65, ("1" * 65,)),
        ("f" * 65, ("f" * 65,)),
    ],
)
def test_id_candidates(raw: str, candidates: tuple[str, ...]) -> None:
    assert id_candidates(raw) == candidates


def test_id_candidates_converts_ids_up_to_the_c65_limit() -> None:
    assert len(id_candidates("1" * 64)) == 3
    assert len(id_candidates("f" * 64)) == 2


@given(n=st.integers(min_value=0, max_value=2**200), pad=st.integers(0, 3), upper=st.booleans())
def test_id_candidates_convert_both_ways(n: int, pad: int, upper: bool) -> None:
    decimal, hexa = str(n), format(n, "x")
    written_hex = "0" * pad + (hexa.upper() if upper else hexa)
    assert decimal in id_candidates(written_hex)
    assert hexa in id_candidates("0" * pad + decimal)


@given(
    a=st.text("0123456789abcdefABCDEF-x ", max_size=12), b=st.text("0123456789abcdef", max_size=12)
)
def test_id_candidates_are_symmetric(a: str, b: str) -> None:
    forward = normalize_message_id(b) in id_candidates(a)
    backward = normalize_message_id(a) in id_candidates(b)
    assert forward == backward


# --- matching ----------------------------------------------------------------------------------


async def test_receipt_after_resp_matches_the_part() -> None:
    c = correlator()
    assert await c.register("m1", 0, 1, "abc123") == []
    match = await c.on_dlr(dlr("abc123"))
    assert match is not None
    assert (match.entry.message_id, match.entry.part) == ("m1", 0)
    assert match.state is DeliveryState.DELIVERED
    assert match.final
    assert match.applied
    assert await c.count_unmatched() == 0


async def test_receipt_on_another_server_and_bind_matches() -> None:
    c = correlator()
    await c.register("m1", 0, 1, "77")
    receipt = dlr("77", server="smpp2", bind="smpp2/rx-1")
    match = await c.on_dlr(receipt)
    assert match is not None
    assert match.entry.message_id == "m1"
    assert (match.dlr.server, match.dlr.bind) == ("smpp2", "smpp2/rx-1")


async def test_receipt_before_resp_is_parked_then_matched_on_register() -> None:
    c = correlator()
    early = dlr("0000ABCD", "ENROUTE")
    late = dlr("abcd", "DELIVRD", at=1_700_000_001.0)
    assert await c.on_dlr(early) is None
    assert await c.on_dlr(late) is None
    assert await c.count_unmatched() == 2
    matches = await c.register("m1", 0, 1, "ABCD")
    assert [m.dlr for m in matches] == [early, late]  # arrival order
    assert matches[-1].state is DeliveryState.DELIVERED
    assert matches[-1].final
    assert await c.count_unmatched() == 0


@pytest.mark.parametrize(
    ("resp_id", "receipt_id"),
    [
        ("6699", "1a2b"),
        ("1A2B", "6699"),
        ("000123", "123"),
        ("123", "000123"),
        ("4096", "1000"),  # hex without letters
        ("1000", "4096"),
        ("AbCdEf-01", "abcdef-01"),
    ],
)
async def test_ids_in_another_form_match_either_order(resp_id: str, receipt_id: str) -> None:
    first = correlator()
    await first.register("m1", 0, 1, resp_id)
    assert await first.on_dlr(dlr(receipt_id)) is not None
    second = correlator()
    assert await second.on_dlr(dlr(receipt_id)) is None
    assert len(await second.register("m1", 0, 1, resp_id)) == 1


async def test_exact_match_wins_over_a_converted_one() -> None:
    c = correlator()
    await c.register("hex", 0, 1, "1a2b")  # 0x1a2b == 6699
    await c.register("dec", 0, 1, "6699")
    match = await c.on_dlr(dlr("6699"))
    assert match is not None
    assert match.entry.message_id == "dec"
    match = await c.on_dlr(dlr("1A2B"))
    assert match is not None
    assert match.entry.message_id == "hex"


async def test_unrelated_receipt_is_kept_counted_and_queryable() -> None:
    c = correlator()
    await c.register("m1", 0, 1, "111")
    stray = [dlr(f"zz-{i}", at=1_700_000_000.0 + i) for i in range(5)]
    for receipt in stray:
        assert await c.on_dlr(receipt) is None
    assert await c.count_unmatched() == 5
    assert await c.unmatched(3) == stray[:3]
    assert await c.unmatched() == stray
    assert await c.count_unmatched() == 5  # querying does not remove


async def test_register_rejects_an_empty_id_and_a_bad_part_index() -> None:
    c = correlator()
    with pytest.raises(CorrelationError):
        await c.register("m1", 0, 1, "  ")
    with pytest.raises(CorrelationError):
        await c.register("m1", 2, 2, "abc")


class YieldingStore(MemoryCorrelationStore):
    """Gives the event loop a turn before every call, as a store on a thread or a server does."""

    __slots__ = ()

    async def register_part(
        self, entry: PartEntry, keys: Sequence[str], *, keep_previous: bool = False
    ) -> list[tuple[Dlr, tuple[Dlr | None, ...]]]:
        await asyncio.sleep(0)
        return await super().register_part(entry, keys, keep_previous=keep_previous)

    async def match_dlr(
        self, keys: Sequence[str], dlr: Dlr, now: float, unmatched_expires: float
    ) -> tuple[PartEntry, tuple[Dlr | None, ...]] | None:
        await asyncio.sleep(0)
        return await super().match_dlr(keys, dlr, now, unmatched_expires)


@pytest.mark.parametrize("receipt_first", [True, False])
async def test_receipt_racing_its_resp_in_one_process_is_matched_once(
    *, receipt_first: bool
) -> None:
    c = Correlator(YieldingStore(), clock=Clock())
    calls = [c.register("m1", 0, 1, "abc"), c.on_dlr(dlr("ABC"))]
    async with asyncio.timeout(1):
        if receipt_first:
            on_dlr, registered = await asyncio.gather(calls[1], calls[0])
        else:
            registered, on_dlr = await asyncio.gather(*calls)
    assert isinstance(registered, list)
    assert len(registered) + (on_dlr is not None) == 1
    assert await c.count_unmatched() == 0


async def test_receipt_arriving_at_one_instance_is_matched_by_another_s_register() -> None:
    """Two daemons share the store: a receipt parked by one is matched when the other, which
    sent the part, records its submit_sm_resp."""
    store = MemoryCorrelationStore()
    receiving = Correlator(store, clock=Clock())
    sending = Correlator(store, clock=Clock())
    assert await receiving.on_dlr(dlr("abc")) is None
    [match] = await sending.register("m1", 0, 1, "ABC")
    assert match.entry.message_id == "m1"
    assert match.final
    assert await receiving.count_unmatched() == 0


# --- multipart and ordering --------------------------------------------------------------------


async def test_multipart_all_delivered_is_delivered_and_final_at_the_last_part() -> None:
    c = correlator()
    for part in range(3):
        await c.register("m1", part, 3, f"p{part}")
    states = []
    for part in range(3):
        match = await c.on_dlr(dlr(f"p{part}"))
        assert match is not None
        states.append((match.state, match.final))
    assert states == [
        (DeliveryState.SUBMITTED, False),
        (DeliveryState.SUBMITTED, False),
        (DeliveryState.DELIVERED, True),
    ]


async def test_multipart_with_one_undelivered_part_is_final_only_when_all_parts_are() -> None:
    c = correlator()
    for part in range(3):
        await c.register("m1", part, 3, f"p{part}")
    match = await c.on_dlr(dlr("p1", "UNDELIV"))
    assert match is not None
    assert (match.state, match.final) == (DeliveryState.SUBMITTED, False)
    match = await c.on_dlr(dlr("p0", "DELIVRD"))
    assert match is not None
    assert not match.final
    match = await c.on_dlr(dlr("p2", "DELIVRD"))
    assert match is not None
    assert (match.state, match.final) == (DeliveryState.FAILED, True)
    assert [d.stat if d else None for d in match.parts] == ["DELIVRD", "UNDELIV", "DELIVRD"]


async def test_intermediate_then_final_receipt() -> None:
    c = correlator()
    await c.register("m1", 0, 1, "42")
    match = await c.on_dlr(dlr("42", "ENROUTE"))
    assert match is not None
    assert (match.state, match.final, match.applied) == (DeliveryState.SUBMITTED, False, True)
    match = await c.on_dlr(dlr("42", "DELIVRD", at=1_700_000_010.0))
    assert match is not None
    assert (match.state, match.final, match.applied) == (DeliveryState.DELIVERED, True, True)


async def test_late_intermediate_receipt_does_not_overwrite_a_final_one() -> None:
    """SMSCs reorder: an ENROUTE sent before the DELIVRD may arrive after it."""
    c = correlator()
    await c.register("m1", 0, 1, "42")
    final = dlr("42", "DELIVRD")
    await c.on_dlr(final)
    match = await c.on_dlr(dlr("42", "ENROUTE", at=1_700_000_010.0))
    assert match is not None
    assert not match.applied
    assert match.parts == (final,)
    assert (match.state, match.final) == (DeliveryState.DELIVERED, True)


async def test_a_later_final_receipt_replaces_an_earlier_final_one() -> None:
    c = correlator()
    await c.register("m1", 0, 1, "42")
    await c.on_dlr(dlr("42", "UNDELIV"))
    match = await c.on_dlr(dlr("42", "DELIVRD", at=1_700_000_010.0))
    assert match is not None
    assert match.applied
    assert match.state is DeliveryState.DELIVERED


def test_dlr_final_states() -> None:
    finals = {stat for stat in STATES if dlr("1", stat).final}
    assert finals == {"DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED"}
    vendor = Dlr("1", None, MessageState(0x42), None, None, 0.0)
    assert not vendor.final
    assert not Dlr("1", None, None, "001", None, 0.0).final


@pytest.mark.parametrize(
    ("stats", "state"),
    [
        ([], DeliveryState.SUBMITTED),
        (["DELIVRD", None], DeliveryState.SUBMITTED),
        (["DELIVRD", "ENROUTE"], DeliveryState.SUBMITTED),
        (["DELIVRD", "UNKNOWN"], DeliveryState.SUBMITTED),
        (["DELIVRD", "DELIVRD"], DeliveryState.DELIVERED),
        (["DELIVRD", "UNDELIV"], DeliveryState.FAILED),
        (["DELETED", "DELIVRD"], DeliveryState.FAILED),
        (["EXPIRED", "UNDELIV"], DeliveryState.EXPIRED),
        (["EXPIRED", "REJECTD", "UNDELIV"], DeliveryState.REJECTED),
        (["REJECTD", "ENROUTE"], DeliveryState.SUBMITTED),
    ],
)
def test_aggregate(stats: list[str | None], state: DeliveryState) -> None:
    assert aggregate([None if s is None else dlr("1", s) for s in stats]) is state


# --- expiry ------------------------------------------------------------------------------------


async def test_entries_and_unmatched_receipts_expire_after_their_ttl() -> None:
    clock = Clock()
    c = correlator(clock, ttl=100.0, unmatched_ttl=50.0)
    await c.register("m1", 0, 1, "aa")
    assert await c.on_dlr(dlr("stray")) is None
    clock.now += 49.0
    assert await c.expire() == (0, 0)
    clock.now += 1.0
    assert await c.expire() == (0, 1)
    assert await c.count_unmatched() == 0
    clock.now += 49.0
    assert await c.on_dlr(dlr("aa", "ENROUTE")) is not None
    clock.now += 1.0  # now == registered_at + ttl: the entry is gone even before expire()
    assert await c.on_dlr(dlr("aa")) is None
    assert await c.expire() == (1, 0)
    assert await c.count_unmatched() == 1


async def test_receipt_days_later_still_matches_with_the_default_ttl() -> None:
    clock = Clock()
    c = correlator(clock)
    await c.register("m1", 0, 1, "aa")
    clock.now += 6 * 86400.0
    assert await c.expire() == (0, 0)
    assert await c.on_dlr(dlr("aa")) is not None


async def test_expired_parked_receipt_is_removed_from_its_key() -> None:
    clock = Clock()
    store = MemoryCorrelationStore()
    c = Correlator(store, clock=clock, unmatched_ttl=10.0)
    await c.on_dlr(dlr("aa"))
    clock.now += 5.0
    await c.on_dlr(dlr("aa", "ENROUTE"))
    clock.now += 5.0
    assert await c.expire() == (0, 1)
    matches = await c.register("m1", 0, 1, "aa")
    assert [m.dlr.stat for m in matches] == ["ENROUTE"]


async def test_store_find_part_ignores_expired_entries() -> None:
    store = MemoryCorrelationStore()
    entry = PartEntry("m1", 0, 1, "00AB", registered_at=0.0, expires_at=10.0)
    store.add_part(entry)
    assert store.find_part(["ab"], 9.9) == entry
    assert store.find_part(["zz", "ab"], 9.9) == entry
    assert store.find_part(["ab"], 10.0) is None


# --- from PDUs ---------------------------------------------------------------------------------

SUBMIT = datetime(2024, 1, 1, 12, 0)
DONE = datetime(2024, 1, 1, 12, 5)


def deliver(esm_class: int, text: bytes, tlvs: tuple[Tlv, ...] = ()) -> DeliverSm:
    pdu = DeliverSm(
        sequence_number=7,
        source_addr="919876543210",
        destination_addr="TXTSMS",
        esm_class=EsmClass(esm_class),
        short_message=text,
        tlvs=tlvs,
    )
    decoded = decode(encode(pdu))
    assert isinstance(decoded, DeliverSm)
    return decoded


def test_dlr_from_a_receipt_text() -> None:
    text = format_receipt("1A2B", stat="DELIVRD", submit_date=SUBMIT, done_date=DONE)
    got = dlr_from_pdu(
        deliver(EsmClass.DELIVERY_RECEIPT, text), received_at=5.0, server="s", bind="b"
    )
    assert got == Dlr("1A2B", "DELIVRD", MessageState.DELIVERED, "000", "2401011205", 5.0, "s", "b")
    assert got.final


def test_dlr_from_pdu_tlvs_win_over_the_text() -> None:
    text = format_receipt("999", stat="UNDELIV", err=5, submit_date=SUBMIT, done_date=DONE)
    tlvs = (
        c_string_tlv(Tag.RECEIPTED_MESSAGE_ID, "3e7"),
        u8_tlv(Tag.MESSAGE_STATE, MessageState.DELIVERED),
    )
    got = dlr_from_pdu(deliver(EsmClass.DELIVERY_RECEIPT | 0x03, text, tlvs), received_at=1.0)
    assert got is not None
    assert (got.smsc_id, got.state, got.stat, got.err) == (
        "3e7",
        MessageState.DELIVERED,
        "UNDELIV",
        "005",
    )


def test_dlr_from_pdu_lower_case_stat_is_upper_cased() -> None:
    got = dlr_from_pdu(
        deliver(EsmClass.DELIVERY_RECEIPT, b"Id:77 Stat:delivrd Err:0"), received_at=1.0
    )
    assert got is not None
    assert (got.smsc_id, got.stat, got.state) == ("77", "DELIVRD", MessageState.DELIVERED)


def test_mobile_originated_deliver_sm_is_not_a_receipt() -> None:
    text = format_receipt("123", stat="DELIVRD", submit_date=SUBMIT, done_date=DONE)
    assert dlr_from_pdu(deliver(EsmClass.DEFAULT, b"hello"), received_at=1.0) is None
    assert dlr_from_pdu(deliver(EsmClass.DEFAULT, text), received_at=1.0) is None
    assert dlr_from_pdu(deliver(EsmClass.SME_DELIVERY_ACK, text), received_at=1.0) is None


def test_intermediate_notification_is_a_non_final_receipt() -> None:
    got = dlr_from_pdu(
        deliver(EsmClass.INTERMEDIATE_NOTIFICATION, b"id:5 stat:ENROUTE err:000"), received_at=1.0
    )
    assert got is not None
    assert (got.smsc_id, got.state, got.final) == ("5", MessageState.ENROUTE, False)


@pytest.mark.parametrize(
    "text",
    [b"", b"garbage", b"\xff\x00\xfe id:", b"stat:DELIVRD", b"id: stat: err:", b"id:  stat:X"],
)
def test_garbage_receipt_text_does_not_crash(text: bytes) -> None:
    assert dlr_from_pdu(deliver(EsmClass.DELIVERY_RECEIPT, text), received_at=1.0) is None


def test_garbage_text_with_receipt_tlvs_still_gives_a_receipt() -> None:
    tlvs = (
        c_string_tlv(Tag.RECEIPTED_MESSAGE_ID, "abc"),
        u8_tlv(Tag.MESSAGE_STATE, MessageState.UNDELIVERABLE),
    )
    got = dlr_from_pdu(deliver(EsmClass.DELIVERY_RECEIPT, b"\xff garbage", tlvs), received_at=1.0)
    assert got is not None
    assert (got.smsc_id, got.stat, got.state, got.err) == (
        "abc",
        None,
        MessageState.UNDELIVERABLE,
        None,
    )


def test_data_sm_receipt_in_message_payload() -> None:
    pdu = DataSm(
        esm_class=EsmClass.DELIVERY_RECEIPT,
        tlvs=(octet_tlv(Tag.MESSAGE_PAYLOAD, b"id:0042 stat:EXPIRED err:001"),),
    )
    got = dlr_from_pdu(pdu, received_at=1.0)
    assert got is not None
    assert (got.smsc_id, got.stat, got.state) == ("0042", "EXPIRED", MessageState.EXPIRED)


async def test_receipt_from_a_pdu_is_matched_end_to_end() -> None:
    c = correlator()
    await c.register("m1", 0, 1, "6699")
    text = format_receipt("1A2B", stat="DELIVRD", submit_date=SUBMIT, done_date=DONE)
    got = dlr_from_pdu(deliver(EsmClass.DELIVERY_RECEIPT, text), received_at=1.0)
    assert got is not None
    match = await c.on_dlr(got)
    assert match is not None
    assert match.entry.message_id == "m1"
    assert match.state is DeliveryState.DELIVERED
