"""Codec benchmark: encode+decode per second, smppgw against aiosmpplib in the same run.

Run with ``make bench-codec`` (or ``python tests/bench/bench_codec.py [--profile]``).

Two workloads, each one encode plus one decode of a complete PDU:

* a typical submit_sm: a 100-character GSM 03.38 text (data_coding 0), alphanumeric sender,
  international destination, registered_delivery 1, and the three DLT TLVs with 19-digit ids;
* a delivery receipt deliver_sm: the Appendix B receipt text plus receipted_message_id and
  message_state TLVs.

Each figure is the best of several repeats (the least disturbed by the rest of the machine).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections.abc import Callable

from smppgw.codec import DeliverSm, SubmitSm, Tag, Tlv, c_string_tlv, decode, encode
from smppgw.codec.constants import EsmClass, Npi, RegisteredDelivery, Ton
from smppgw.codec.text import encode_text
from smppgw.provider import dlt_tlvs

TEXT = (
    "Dear customer, your OTP for login is 482913. It is valid for 10 minutes. "
    "Do not share it. -ACME"
)[:100].ljust(100, ".")
RECEIPT = (
    "id:7f3a9c2e01 sub:001 dlvrd:001 submit date:2611241530 done date:2611241531 "
    "stat:DELIVRD err:000 text:Dear customer, your"
)
PE_ID, TEMPLATE_ID, TM_ID = "1201159126541234567", "1207161234567890123", "1702157766554433221"


def ours_submit() -> Callable[[], object]:
    pdu = SubmitSm(
        sequence_number=1234,
        source_addr_ton=Ton.ALPHANUMERIC,
        source_addr="ACMEIN",
        dest_addr_ton=Ton.INTERNATIONAL,
        dest_addr_npi=Npi.ISDN,
        destination_addr="919876543210",
        registered_delivery=RegisteredDelivery.FINAL,
        short_message=encode_text(TEXT, 0),
        tlvs=dlt_tlvs(PE_ID, TEMPLATE_ID, TM_ID),
    )
    return lambda: decode(encode(pdu))


def ours_dlr() -> Callable[[], object]:
    pdu = DeliverSm(
        sequence_number=99,
        source_addr_ton=Ton.INTERNATIONAL,
        source_addr_npi=Npi.ISDN,
        source_addr="919876543210",
        dest_addr_ton=Ton.ALPHANUMERIC,
        destination_addr="ACMEIN",
        esm_class=EsmClass.DELIVERY_RECEIPT,
        short_message=RECEIPT.encode("ascii"),
        tlvs=(
            c_string_tlv(Tag.RECEIPTED_MESSAGE_ID, "7f3a9c2e01"),
            Tlv(Tag.MESSAGE_STATE, b"\x02"),
        ),
    )
    return lambda: decode(encode(pdu))


def aiosmpplib_cases() -> tuple[Callable[[], object], Callable[[], object]] | None:
    try:
        from aiosmpplib.protocol import DeliverSm as ADeliverSm  # noqa: PLC0415
        from aiosmpplib.protocol import SmppMessage  # noqa: PLC0415
        from aiosmpplib.protocol import SubmitSm as ASubmitSm  # noqa: PLC0415
        from aiosmpplib.state import NPI, TON, OptionalParam, PhoneNumber  # noqa: PLC0415
    except ImportError:
        return None

    submit = ASubmitSm(
        sequence_num=1234,
        short_message=TEXT,
        source=PhoneNumber("ACMEIN", TON.ALPHANUMERIC),
        destination=PhoneNumber("919876543210", TON.INTERNATIONAL, NPI.ISDN),
        registered_delivery=1,
        optional_params=[
            OptionalParam(0x1400, PE_ID),
            OptionalParam(0x1401, TEMPLATE_ID),
            OptionalParam(0x1402, TM_ID),
        ],
    )
    dlr = ADeliverSm(
        sequence_num=99,
        short_message=RECEIPT,
        source=PhoneNumber("919876543210", TON.INTERNATIONAL, NPI.ISDN),
        destination=PhoneNumber("ACMEIN", TON.ALPHANUMERIC),
        esm_class=0x04,
        registered_delivery=0,
        optional_params=[OptionalParam(0x001E, "7f3a9c2e01"), OptionalParam(0x0427, 2)],
    )

    def round_trip(message: ASubmitSm, cls: type[ASubmitSm]) -> Callable[[], object]:
        def run() -> object:
            wire = message.pdu()
            return cls.from_pdu(wire, SmppMessage.parse_header(wire))

        return run

    return round_trip(submit, ASubmitSm), round_trip(dlr, ADeliverSm)


def rate(fn: Callable[[], object], seconds: float, repeats: int) -> float:
    """Best operations per second over ``repeats`` timed runs of about ``seconds`` each."""
    n = 1000
    while True:  # calibrate the batch size to the target duration
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed > seconds / 4:
            break
        n *= 2
    batch = max(1, int(n * seconds / elapsed))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        best = max(best, batch / (time.perf_counter() - start))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of one repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; the best is kept")
    parser.add_argument("--profile", action="store_true", help="print where smppgw spends time")
    args = parser.parse_args(argv)

    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} CPUs, load {os.getloadavg()}")
    theirs = aiosmpplib_cases()
    rows = [("submit_sm, 100 GSM chars + DLT TLVs", ours_submit()), ("DLR deliver_sm", ours_dlr())]
    print(f"{'encode+decode of':40} {'smppgw ops/s':>14} {'aiosmpplib ops/s':>17} {'ratio':>7}")
    for index, (label, ours) in enumerate(rows):
        ours_rate = rate(ours, args.seconds, args.repeats)
        if theirs is None:
            print(f"{label:40} {ours_rate:14,.0f} {'(not installed)':>17}")
            continue
        their_rate = rate(theirs[index], args.seconds, args.repeats)
        print(f"{label:40} {ours_rate:14,.0f} {their_rate:17,.0f} {ours_rate / their_rate:6.1f}x")
    if args.profile:
        for label, fn in rows:
            print(f"\nprofile of 100,000 encode+decode, {label}:")
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(100_000):
                fn()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(8)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
