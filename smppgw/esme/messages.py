"""A text message in one call: coding chosen, split into parts, DLT ids attached, submitted.

:func:`text_parts` builds the submit_sm of each part; :func:`submit_text` sends them through one
bind (a :class:`~smppgw.esme.session.Session`) or a :class:`~smppgw.esme.binds.BindManager`
and returns a :class:`TextResult` with each part's outcome and SMSC message id, ready for a
:class:`~smppgw.esme.tracker.ReceiptTracker`.

Parts go out one after another, each after the previous one's response; after a part that
failed, the others are not sent (a partial long message is useless to the reader and still
costs money), as :meth:`BindManager.submit <smppgw.esme.binds.BindManager.submit>` does.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from typing import Protocol

from smppgw.codec.constants import CommandStatus, DataCoding, Npi, RegisteredDelivery, Ton
from smppgw.codec.errors import EncodeError
from smppgw.codec.pdu import DataSm, DataSmResp, SubmitSm, SubmitSmResp
from smppgw.codec.split import SplitMethod, split_message
from smppgw.codec.text import choose_coding
from smppgw.esme.bind_state import PartResult, PartStatus
from smppgw.esme.binds import BindManager
from smppgw.esme.numbers import Sender, validate_msisdn, validate_sender
from smppgw.esme.session import LinkLostError, ResponseTimeoutError, SessionClosedError
from smppgw.provider.dlt import dlt_tlvs

__all__ = ["Coding", "PduSubmitter", "TextResult", "submit_text", "text_parts"]


class Coding(enum.Enum):
    """How the text is encoded (its data_coding)."""

    AUTO = "auto"
    """GSM 03.38 when every character has a GSM code, else UCS-2."""
    GSM = "gsm"
    """GSM 03.38 default alphabet (data_coding 0), 160 characters in one message."""
    LATIN1 = "latin1"
    """ISO-8859-1 (data_coding 3), 140 characters in one message."""
    UCS2 = "ucs2"
    """UTF-16BE (data_coding 8), 70 characters in one message; any text."""

    def data_coding(self, text: str) -> DataCoding:
        """The data_coding this choice gives for ``text``."""
        if self is Coding.AUTO:
            return choose_coding(text)
        return _DATA_CODINGS[self]


_DATA_CODINGS = {
    Coding.GSM: DataCoding.DEFAULT,
    Coding.LATIN1: DataCoding.LATIN_1,
    Coding.UCS2: DataCoding.UCS2,
}


class PduSubmitter(Protocol):
    """One bind that submits a PDU and returns its response (a :class:`Session`)."""

    async def submit(self, pdu: SubmitSm | DataSm) -> SubmitSmResp | DataSmResp: ...


@dataclass(frozen=True, slots=True)
class TextResult:
    """What happened to a text: its coding, the PDUs of its parts and each part's result."""

    data_coding: DataCoding
    parts: tuple[SubmitSm, ...]
    results: tuple[PartResult, ...]

    @property
    def accepted(self) -> bool:
        """Whether the SMSC accepted every part."""
        return all(r.status is PartStatus.ACCEPTED for r in self.results)

    @property
    def message_ids(self) -> tuple[str | None, ...]:
        """The SMSC message id of each part (None for a part not accepted)."""
        return tuple(r.smsc_message_id for r in self.results)


def text_parts(
    destination: str,
    text: str,
    *,
    source: str | Sender,
    coding: Coding = Coding.AUTO,
    split: SplitMethod = SplitMethod.UDH,
    reference: int | None = None,
    udh16: bool = False,
    registered_delivery: bool = True,
    pe_id: str | None = None,
    template_id: str | None = None,
    tm_id: str | None = None,
    max_parts: int | None = None,
) -> tuple[SubmitSm, ...]:
    """The submit_sm of each part of ``text`` to ``destination``, in order.

    Args:
        destination: an E.164 number without ``+`` (ton 1, npi 1).
        text: the message.
        source: the sender id: digits (a number or short code) or a name; its TON/NPI follow
            from it (:func:`smppgw.esme.numbers.validate_sender`).
        coding: see :class:`Coding`.
        split: how a long text travels: a concatenation UDH, SAR TLVs, or one message_payload
            TLV (:class:`smppgw.codec.split.SplitMethod`).
        reference: the concatenation reference shared by the parts (default: random).
        udh16: a 16-bit reference UDH.
        registered_delivery: ask for a final delivery receipt.
        pe_id, template_id, tm_id: the provider's DLT ids (:mod:`smppgw.provider.dlt`).
        max_parts: refuse texts needing more parts.

    Raises:
        NumberError: a destination or source the provider does not accept.
        TextEncodeError: a character the chosen coding cannot encode.
        MessageTooLongError: more parts than ``max_parts`` (or 255).
    """
    to = validate_msisdn(destination, field="destination")
    sender = source if isinstance(source, Sender) else validate_sender(source, field="source")
    data_coding = coding.data_coding(text)
    if reference is None:
        reference = secrets.randbelow(0x10000 if udh16 or split is SplitMethod.SAR else 0x100)
    pieces = split_message(
        text, data_coding, method=split, reference=reference, udh16=udh16, max_parts=max_parts
    )
    dlt = dlt_tlvs(pe_id, template_id, tm_id)
    receipt = RegisteredDelivery.FINAL if registered_delivery else RegisteredDelivery.NONE
    return tuple(
        SubmitSm(
            source_addr_ton=sender.ton,
            source_addr_npi=sender.npi,
            source_addr=sender.value,
            dest_addr_ton=Ton.INTERNATIONAL,
            dest_addr_npi=Npi.ISDN,
            destination_addr=to,
            esm_class=piece.esm_class,
            registered_delivery=receipt,
            data_coding=data_coding,
            short_message=piece.short_message,
            tlvs=(*piece.tlvs, *dlt),
        )
        for piece in pieces
    )


async def submit_text(
    target: BindManager | PduSubmitter,
    destination: str,
    text: str,
    *,
    source: str | Sender,
    coding: Coding = Coding.AUTO,
    split: SplitMethod = SplitMethod.UDH,
    reference: int | None = None,
    udh16: bool = False,
    registered_delivery: bool = True,
    pe_id: str | None = None,
    template_id: str | None = None,
    tm_id: str | None = None,
    max_parts: int | None = None,
) -> TextResult:
    """Build the parts of ``text`` (:func:`text_parts`) and submit them through ``target``.

    Through a :class:`BindManager` the parts take its rate limits, retries and failover
    (:meth:`BindManager.submit`); through one bind each part is sent once: ESME_ROK is
    ACCEPTED, any other status FAILED, no response (timeout, link lost) UNKNOWN.

    Raises:
        NumberError, TextEncodeError, MessageTooLongError: as :func:`text_parts`; nothing sent.
        ManagerStoppedError: the bind manager is not running or stopped before every part was
            sent.
    """
    data_coding = coding.data_coding(text)
    parts = text_parts(
        destination,
        text,
        source=source,
        coding=coding,
        split=split,
        reference=reference,
        udh16=udh16,
        registered_delivery=registered_delivery,
        pe_id=pe_id,
        template_id=template_id,
        tm_id=tm_id,
        max_parts=max_parts,
    )
    if isinstance(target, BindManager):
        results = await target.submit(parts)
    else:
        results = []
        for index, pdu in enumerate(parts):
            if results and results[-1].status is not PartStatus.ACCEPTED:
                reason = f"not sent: part {index - 1} was not accepted"
                results.append(PartResult(PartStatus.FAILED, reason=reason))
                continue
            results.append(await _submit_once(target, pdu))
    return TextResult(data_coding, parts, tuple(results))


async def _submit_once(target: PduSubmitter, pdu: SubmitSm) -> PartResult:
    try:
        resp = await target.submit(pdu)
    except SessionClosedError as exc:  # NotSentError included: it never left
        return PartResult(PartStatus.FAILED, reason=f"not sent: {exc}")
    except (ResponseTimeoutError, LinkLostError) as exc:
        late = (exc.late,) if isinstance(exc, ResponseTimeoutError) and exc.late else ()
        return PartResult(PartStatus.UNKNOWN, attempts=1, reason=f"no response: {exc}", late=late)
    except EncodeError as exc:
        return PartResult(PartStatus.FAILED, reason=f"cannot encode: {exc}")
    status = resp.command_status
    if status == CommandStatus.ESME_ROK:
        return PartResult(
            PartStatus.ACCEPTED, resp.message_id or None, status, attempts=1, reason=""
        )
    return PartResult(PartStatus.FAILED, None, status, attempts=1, reason=status.name)
