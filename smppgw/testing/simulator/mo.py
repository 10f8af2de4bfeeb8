"""Mobile-originated messages: their parts as deliver_sm, and generated ones."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from smppgw.codec import DeliverSm, EsmClass, encode
from smppgw.codec.constants import DataCoding, Npi, Ton
from smppgw.codec.errors import SmppError
from smppgw.codec.split import Part, SplitMethod, split_message, split_octets
from smppgw.codec.text import choose_coding, encode_text

from .settings import MoRecord

if TYPE_CHECKING:
    from .server import Simulator

__all__ = ["MoPart", "build_mo_parts", "generate_mo", "mo_record"]

log = logging.getLogger("smppgw.testing.simulator.server")


@dataclass(slots=True)
class MoPart:
    """One deliver_sm of an MO message on its way, with how often it was sent."""

    record: MoRecord
    pdu: DeliverSm
    attempts: int = 0


# Octets of user data: (one plain message, a part after an 8-bit ref UDH, after a 16-bit one).
# GSM 03.38 is counted in unpacked septets: 160 alone, 153 / 152 after a 6 / 7-octet UDH.
def build_mo_parts(
    text: str | bytes,
    data_coding: int,
    *,
    reference: int = 0,
    concatenated: bool | None = None,
    udh16: bool = False,
    method: SplitMethod = SplitMethod.UDH,
) -> tuple[Part, ...]:
    """The short_message, TLVs and esm_class bits of each deliver_sm of an MO message.

    A text is encoded and split by :func:`smppgw.codec.split.split_message`; octets given as
    ``bytes`` are taken as already encoded in ``data_coding`` and cut at the same sizes.

    Args:
        text: the message, as text or as encoded user data.
        data_coding: the data_coding of the parts.
        reference: the concatenation reference (8 bits, or 16 with udh16 or SAR).
        concatenated: None: concatenate only when one message is too short; True: always mark
            the parts as concatenated (a short text becomes part 1 of 1); False: refuse a text
            needing more than one message.
        udh16: use the 16-bit reference UDH ``06 08 04 refhi reflo total seq``.
        method: UDH (esm_class UDHI), SAR TLVs, or the whole text in message_payload.

    Returns:
        One :class:`~smppgw.codec.split.Part` per deliver_sm.

    Raises:
        TextEncodeError, UnsupportedCodingError: text the data_coding cannot carry.
        MessageTooLongError: more than one part with concatenated=False, or over 255 parts.
        EncodeError: a reference out of range.
    """
    if isinstance(text, str) and not concatenated:
        return split_message(
            text,
            data_coding,
            method=method,
            reference=reference,
            udh16=udh16,
            max_parts=1 if concatenated is False else None,
        )
    data = encode_text(text, data_coding) if isinstance(text, str) else text
    return split_octets(
        data,
        data_coding,
        method=method,
        reference=reference,
        udh16=udh16,
        max_parts=1 if concatenated is False else None,
        always_concatenate=bool(concatenated) and method is not SplitMethod.PAYLOAD,
    )


def mo_record(
    system_id: str,
    source_addr: str,
    destination_addr: str,
    text: str | bytes,
    *,
    number: int,
    reference: int,
    data_coding: int | None,
    concatenated: bool | None,
    udh_ref_bits: Literal[8, 16],
    method: SplitMethod,
    addressing: tuple[int, int, int, int],
) -> tuple[MoRecord, bool]:
    """The MO message :meth:`Simulator.send_mo` delivers, and whether it used ``reference``.

    Args:
        addressing: source TON and NPI, destination TON and NPI.
    """
    if data_coding is None:
        data_coding = choose_coding(text) if isinstance(text, str) else 0x04
    wide = udh_ref_bits == 16 or method is SplitMethod.SAR
    reference %= 0x10000 if wide else 0x100
    parts = build_mo_parts(
        text,
        data_coding,
        reference=reference,
        concatenated=concatenated,
        udh16=udh_ref_bits == 16,
        method=method,
    )
    source_ton, source_npi, dest_ton, dest_npi = addressing
    pdus = tuple(
        DeliverSm(
            source_addr_ton=Ton(source_ton),
            source_addr_npi=Npi(source_npi),
            source_addr=source_addr,
            dest_addr_ton=Ton(dest_ton),
            dest_addr_npi=Npi(dest_npi),
            destination_addr=destination_addr,
            esm_class=EsmClass(part.esm_class),
            data_coding=DataCoding(data_coding),
            short_message=part.short_message,
            tlvs=part.tlvs,
        )
        for part in parts
    )
    for pdu in pdus:
        encode(pdu)  # refuse now what could not go on the wire later
    marked = len(pdus) > 1 or bool(pdus[0].esm_class & EsmClass.UDHI) or bool(pdus[0].tlvs)
    used = marked and method is not SplitMethod.PAYLOAD
    record = MoRecord(
        number=number,
        system_id=system_id,
        source_addr=source_addr,
        destination_addr=destination_addr,
        data_coding=data_coding,
        reference=reference if used else None,
        pdus=pdus,
    )
    return record, used


async def generate_mo(sim: Simulator) -> None:
    """Inject MO messages at the rate of the simulator's MO settings, until cancelled."""
    mo = sim.settings.mo
    rng = sim.rng
    while True:
        await asyncio.sleep(rng.expovariate(mo.rate))
        if sim.mo_pending >= mo.max_pending:
            sim.stats.mo_skipped += 1
            continue
        system_id = mo.system_id or rng.choice(list(sim.accounts))
        source = mo.source or f"1415555{rng.randrange(10_000):04d}"
        text = _random_text(
            rng, long=rng.random() < mo.long_share, ucs2=rng.random() < mo.ucs2_share
        )
        try:
            sim.send_mo(
                system_id,
                source,
                mo.destination,
                text,
                udh_ref_bits=mo.udh_ref_bits,
                method=mo.method,
            )
        except SmppError:
            # A sender or destination that cannot go in a deliver_sm: every MO would fail.
            log.exception("MO generation stopped")
            return


_GSM_WORDS = ("hello", "STOP", "yes", "no", "balance?", "info", "thanks", "order 42", "help")
_UCS2_WORDS = ("привет", "नमस्ते", "你好", "ありがとう", "مرحبا", "😀", "€5 ok")


def _random_text(rng: random.Random, *, long: bool, ucs2: bool) -> str:
    """A plausible MO text: one message, or 2 to 4 parts when ``long``."""
    words = _GSM_WORDS + _UCS2_WORDS if ucs2 else _GSM_WORDS
    single, part = (70, 67) if ucs2 else (160, 153)
    size = rng.randint(single + 1, 4 * part - 4) if long else rng.randint(2, single // 2)
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(words)
        out.append(word)
        length += len(word) + 1
    text = " ".join(out)
    if ucs2 and text.isascii():
        text = "привет " + text
    return text[:size] if not ucs2 else text[: size - 2]
