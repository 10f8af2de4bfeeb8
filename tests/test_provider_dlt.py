"""The provider's DLT TLVs: built octet for octet from the ids given, and read back from a PDU."""

from __future__ import annotations

import pytest

from smppgw.codec import SubmitSm, Tlv, decode, encode
from smppgw.provider import DltIds, dlt_ids, dlt_tlvs


@pytest.mark.parametrize(
    ("ids", "tags"),
    [
        ((None, None, None), []),
        (("11", None, None), [0x1400]),
        ((None, "22", None), [0x1401]),
        ((None, None, "33"), [0x1402]),
        (("11", "", "33"), [0x1400, 0x1402]),
    ],
)
def test_dlt_tlvs_carry_only_the_ids_given(
    ids: tuple[str | None, str | None, str | None], tags: list[int]
) -> None:
    tlvs = dlt_tlvs(*ids)
    assert [tlv.tag for tlv in tlvs] == tags
    assert all(tlv.value.isdigit() for tlv in tlvs)


def test_the_ids_go_on_the_wire_as_digits_without_a_nul() -> None:
    assert dlt_tlvs("1201", "1207", "1702") == (
        Tlv(0x1400, b"1201"),
        Tlv(0x1401, b"1207"),
        Tlv(0x1402, b"1702"),
    )


def test_the_ids_read_back_from_a_decoded_pdu_with_or_without_a_nul() -> None:
    pdu = SubmitSm(
        tlvs=(Tlv(0x1400, b"1201"), Tlv(0x1401, b"1207\x00"), Tlv(0x7777, b"vendor")),
        sequence_number=1,
    )
    decoded = decode(encode(pdu))
    assert dlt_ids(decoded.tlvs) == DltIds(pe_id="1201", template_id="1207", tm_id=None)
    assert dlt_ids(()) == DltIds()
