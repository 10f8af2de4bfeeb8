"""submit_text and text_parts: one call builds every part octet for octet (coding, UDH / SAR /
payload, DLT TLVs, receipt request, TON/NPI) and sends it through a bind or a bind manager."""

from __future__ import annotations

import pytest

from smppgw.codec import CommandStatus, SubmitSm, SubmitSmResp, Tlv, encode
from smppgw.codec.split import SplitMethod
from smppgw.codec.text import MessageTooLongError, TextEncodeError
from smppgw.esme import (
    Coding,
    NumberError,
    PartStatus,
    ResponseTimeoutError,
    submit_text,
    text_parts,
)


class FakeBind:
    """Answers each submit with the next status (ids 'a0', 'a1'...); records what it got."""

    def __init__(self, *answers: CommandStatus | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[SubmitSm] = []

    async def submit(self, pdu: object) -> SubmitSmResp:
        assert isinstance(pdu, SubmitSm)
        self.sent.append(pdu)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        message_id = f"a{len(self.sent) - 1}" if answer == CommandStatus.ESME_ROK else ""
        return SubmitSmResp(command_status=answer, message_id=message_id)


def test_a_short_gsm_text_is_one_submit_sm_with_the_dlt_tlvs_and_a_receipt_request() -> None:
    (pdu,) = text_parts(
        "919876543210", "Hi", source="ACMEIN", pe_id="12", template_id="34", tm_id="56"
    )
    assert encode(pdu) == bytes.fromhex(
        "00000047"
        "00000004"
        "00000000"
        "00000000"  # header, sequence_number 0
        "00"
        "0500"
        "41434d45494e00"  # service_type, ton 5 npi 0, ACMEIN
        "0101"
        "39313938373635343332313000"  # ton 1 npi 1, destination
        "00"
        "00"
        "00"
        "00"
        "00"  # esm_class, protocol_id, priority, schedule, validity
        "01"
        "00"
        "00"
        "00"  # registered_delivery 1, replace, data_coding 0, sm id 0
        "02"
        "4869"  # sm_length 2, "Hi" in GSM 03.38
        "1400"
        "0002"
        "3132"
        "1401"
        "0002"
        "3334"
        "1402"
        "0002"
        "3536"  # DLT TLVs
    )


@pytest.mark.parametrize(
    ("coding", "text", "data_coding"),
    [
        (Coding.AUTO, "hello", 0),
        (Coding.AUTO, "привет", 8),
        (Coding.GSM, "hello", 0),
        (Coding.LATIN1, "grüße", 3),
        (Coding.UCS2, "hello", 8),
    ],
)
def test_the_coding_sets_data_coding(coding: Coding, text: str, data_coding: int) -> None:
    (pdu,) = text_parts("919876543210", text, source="12345", coding=coding)
    assert pdu.data_coding == data_coding
    assert (pdu.source_addr_ton, pdu.source_addr_npi) == (3, 0)  # a short code


def test_a_long_text_splits_with_a_udh_sar_tlvs_or_one_payload() -> None:
    text = "x" * 200
    udh = text_parts("919876543210", text, source="ACMEIN", reference=0x42)
    assert [p.short_message[:6] for p in udh] == [bytes((5, 0, 3, 0x42, 2, n)) for n in (1, 2)]
    assert all(p.esm_class == 0x40 for p in udh)
    sar = text_parts("919876543210", text, source="ACMEIN", split=SplitMethod.SAR, reference=7)
    assert [p.tlvs[:3] for p in sar] == [
        (Tlv(0x020C, b"\x00\x07"), Tlv(0x020E, b"\x02"), Tlv(0x020F, bytes((n,)))) for n in (1, 2)
    ]
    (payload,) = text_parts("919876543210", text, source="ACMEIN", split=SplitMethod.PAYLOAD)
    assert payload.short_message == b""
    assert payload.tlvs == (Tlv(0x0424, b"x" * 200),)


def test_no_receipt_is_asked_when_registered_delivery_is_off() -> None:
    (pdu,) = text_parts("919876543210", "Hi", source="ACMEIN", registered_delivery=False)
    assert pdu.registered_delivery == 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"destination": "+919876543210"}, NumberError),
        ({"source": "A" * 12}, NumberError),
        ({"text": "привет", "coding": Coding.GSM}, TextEncodeError),
        ({"text": "x" * 400, "max_parts": 2}, MessageTooLongError),
    ],
)
async def test_bad_input_raises_before_anything_is_sent(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    bind = FakeBind()
    args: dict[str, object] = {"destination": "919876543210", "text": "Hi", "source": "ACMEIN"}
    args.update(kwargs)
    with pytest.raises(error):
        await submit_text(bind, **args)  # type: ignore[arg-type]
    assert bind.sent == []


async def test_through_one_bind_each_part_gets_its_smsc_message_id() -> None:
    bind = FakeBind(CommandStatus.ESME_ROK, CommandStatus.ESME_ROK)
    sent = await submit_text(bind, "919876543210", "x" * 200, source="ACMEIN")
    assert sent.accepted
    assert sent.message_ids == ("a0", "a1")
    assert [r.attempts for r in sent.results] == [1, 1]
    assert bind.sent == list(sent.parts)


async def test_after_a_refused_part_the_rest_are_not_sent() -> None:
    bind = FakeBind(CommandStatus.ESME_RINVSRCADR)
    sent = await submit_text(bind, "919876543210", "x" * 400, source="ACMEIN")
    assert [r.status for r in sent.results] == [PartStatus.FAILED] * 3
    assert sent.results[0].command_status == CommandStatus.ESME_RINVSRCADR
    assert [r.attempts for r in sent.results] == [1, 0, 0]
    assert len(bind.sent) == 1
    assert not sent.accepted


async def test_a_part_left_unanswered_is_unknown_and_stops_the_rest() -> None:
    bind = FakeBind(CommandStatus.ESME_ROK, ResponseTimeoutError("no response in 1 s"))
    sent = await submit_text(bind, "919876543210", "x" * 400, source="ACMEIN")
    assert [r.status for r in sent.results] == [
        PartStatus.ACCEPTED,
        PartStatus.UNKNOWN,
        PartStatus.FAILED,
    ]
    assert len(bind.sent) == 2
