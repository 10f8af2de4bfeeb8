"""Every SMPP v3.4 PDU as a frozen, slotted dataclass, and :func:`encode` / :func:`decode`.

Field names and maximum sizes follow SMPP v3.4 issue 1.2 section 4; each mandatory field is
declared once, with its wire layout in the field metadata; :mod:`._fields` reads and writes any
layout (the reference codec) and :mod:`._fast` holds hand-written fast paths for the PDUs of
the hot path. C-octet strings are ``str`` decoded as Latin-1, so every octet survives a
round trip; ``short_message`` is ``bytes``. A 1-octet field whose values are a protocol table
(type of number, numbering plan, esm_class, registered_delivery, data_coding, message_state) is
typed with the codec's open enum and decodes to its members; a vendor value is passed as
``Ton(0x07)``, a member too (the enums are open). Optional parameters are kept raw in
``tlvs`` in wire order (typed accessors come from :class:`~smppgw.codec.tlv.TlvAccessors`).

A response whose ``command_status`` is not ESME_ROK may come without a body (section 4.4.2 and
others); such a PDU decodes with ``body_omitted=True`` and encodes back to a bare header.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar

from . import _fast
from ._fields import Field, Kind, decode_body, encode_body
from .constants import (
    CommandId,
    CommandStatus,
    DataCoding,
    EsmClass,
    MessageState,
    Npi,
    RegisteredDelivery,
    Ton,
)
from .errors import EncodeError, InvalidCommandIdError, InvalidCommandLengthError
from .tlv import Tlv, TlvAccessors

__all__ = [
    "DEFAULT_MAX_COMMAND_LENGTH",
    "HEADER_LENGTH",
    "AlertNotification",
    "BindReceiver",
    "BindReceiverResp",
    "BindTransceiver",
    "BindTransceiverResp",
    "BindTransmitter",
    "BindTransmitterResp",
    "CancelSm",
    "CancelSmResp",
    "DataSm",
    "DataSmResp",
    "DeliverSm",
    "DeliverSmResp",
    "DistributionList",
    "EnquireLink",
    "EnquireLinkResp",
    "GenericNack",
    "Outbind",
    "Pdu",
    "QuerySm",
    "QuerySmResp",
    "ReplaceSm",
    "ReplaceSmResp",
    "SmeAddress",
    "SubmitMulti",
    "SubmitMultiResp",
    "SubmitSm",
    "SubmitSmResp",
    "Unbind",
    "UnbindResp",
    "UnsuccessSme",
    "decode",
    "encode",
    "pdu_class",
]

HEADER_LENGTH: Final = 16
DEFAULT_MAX_COMMAND_LENGTH: Final = 64 * 1024
_HEADER = struct.Struct("!IIII")
_STATUS: Final[dict[int, CommandStatus]] = {int(s): s for s in CommandStatus}


def _u8(default: int = 0) -> Any:  # noqa: ANN401 - dataclasses.field() is typed as the field type
    return dataclasses.field(default=default, metadata={"wire": (Kind.U8, 0)})


def _enum(default: int) -> Any:  # noqa: ANN401 - dataclasses.field() is typed as the field type
    """A 1-octet field whose values are ``default``'s open enum: it decodes to its members."""
    return dataclasses.field(
        default=default, metadata={"wire": (Kind.U8, 0), "enum": type(default)}
    )


def _c(size: int, default: str = "", *, secret: bool = False) -> Any:  # noqa: ANN401 - dataclasses.field() is typed as the field type
    """A C-octet string of at most ``size`` octets, NUL included; secrets stay out of repr."""
    return dataclasses.field(
        default=default, metadata={"wire": (Kind.CSTRING, size)}, repr=not secret
    )


def _sm() -> Any:  # noqa: ANN401 - dataclasses.field() is typed as the field type
    return dataclasses.field(default=b"", metadata={"wire": (Kind.SHORT_MESSAGE, 0)})


def _list(kind: Kind) -> Any:  # noqa: ANN401 - dataclasses.field() is typed as the field type
    return dataclasses.field(default=(), metadata={"wire": (kind, 0)})


@dataclass(frozen=True, slots=True, kw_only=True)
class Pdu(TlvAccessors):
    """Base of every PDU: the header fields other than the length, and the TLVs."""

    command_id: ClassVar[CommandId]
    is_response: ClassVar[bool] = False
    # The mandatory fields in wire order, and the fast path if the PDU has one (see _register).
    _layout: ClassVar[tuple[Field, ...]] = ()
    _decode_fast: ClassVar[_fast.FastDecoder | None] = None
    _encode_fast: ClassVar[_fast.FastEncoder | None] = None
    _defaults: ClassVar[tuple[Any, ...]] = ()
    _wire_names: ClassVar[tuple[str, ...]] = ()

    sequence_number: int = 0
    command_status: CommandStatus = CommandStatus.ESME_ROK
    tlvs: tuple[Tlv, ...] = ()
    # Only meaningful on responses: the body was (or is to be) left off entirely.
    body_omitted: bool = dataclasses.field(default=False, repr=False)


_P = TypeVar("_P", bound=Pdu)
_BY_ID: dict[int, type[Pdu]] = {}


def pdu_class(command_id: int) -> type[Pdu] | None:
    """The PDU class for a command_id, or None when the codec does not know it."""
    return _BY_ID.get(command_id)


_FastCodec = Callable[[type["Pdu"], tuple[Field, ...]], tuple[_fast.FastDecoder, _fast.FastEncoder]]


def _register(
    command_id: CommandId, fast: _FastCodec | None = None
) -> Callable[[type[_P]], type[_P]]:
    """Register a PDU class for ``command_id``; ``fast`` makes its fast decoder and encoder."""

    def wrap(cls: type[_P]) -> type[_P]:
        wire = [
            (f.name, f.metadata["wire"], f.metadata.get("enum"))
            for f in dataclasses.fields(cls)
            if "wire" in f.metadata
        ]
        cls.command_id = command_id
        cls.is_response = bool(command_id & 0x80000000)
        cls._layout = tuple(Field(name, kind, size, enum) for name, (kind, size), enum in wire)
        if fast is not None:
            cls._decode_fast, cls._encode_fast = fast(cls, cls._layout)
        cls._wire_names = tuple(name for name, _, _ in wire)
        cls._defaults = tuple(f.default for f in dataclasses.fields(cls) if "wire" in f.metadata)
        _BY_ID[command_id] = cls
        return cls

    return wrap


# --- Address list entries of submit_multi / submit_multi_resp (section 4.5) -------------------


@dataclass(frozen=True, slots=True)
class SmeAddress:
    """A submit_multi destination that is an SME address (dest_flag 1)."""

    dest_addr_ton: Ton
    dest_addr_npi: Npi
    destination_addr: str


@dataclass(frozen=True, slots=True)
class DistributionList:
    """A submit_multi destination that is a distribution list name (dest_flag 2)."""

    dl_name: str


@dataclass(frozen=True, slots=True)
class UnsuccessSme:
    """One failed destination in a submit_multi_resp."""

    dest_addr_ton: Ton
    dest_addr_npi: Npi
    destination_addr: str
    error_status_code: CommandStatus


# --- Session management (section 4.1, 4.2, 4.3, 4.11) --------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bind(Pdu):
    system_id: str = _c(16)
    password: str = _c(9, secret=True)
    system_type: str = _c(13)
    interface_version: int = _u8(0x34)
    addr_ton: Ton = _enum(Ton.UNKNOWN)
    addr_npi: Npi = _enum(Npi.UNKNOWN)
    address_range: str = _c(41)


@_register(CommandId.BIND_TRANSMITTER)
@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitter(_Bind):
    pass


@_register(CommandId.BIND_RECEIVER)
@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiver(_Bind):
    pass


@_register(CommandId.BIND_TRANSCEIVER)
@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiver(_Bind):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class _BindResp(Pdu):
    system_id: str = _c(16)


@_register(CommandId.BIND_TRANSMITTER_RESP)
@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitterResp(_BindResp):
    pass


@_register(CommandId.BIND_RECEIVER_RESP)
@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiverResp(_BindResp):
    pass


@_register(CommandId.BIND_TRANSCEIVER_RESP)
@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiverResp(_BindResp):
    pass


@_register(CommandId.OUTBIND)
@dataclass(frozen=True, slots=True, kw_only=True)
class Outbind(Pdu):
    system_id: str = _c(16)
    password: str = _c(9, secret=True)


@_register(CommandId.UNBIND, _fast.header_only_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class Unbind(Pdu):
    pass


@_register(CommandId.UNBIND_RESP, _fast.header_only_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindResp(Pdu):
    pass


@_register(CommandId.GENERIC_NACK, _fast.header_only_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class GenericNack(Pdu):
    pass


@_register(CommandId.ENQUIRE_LINK, _fast.header_only_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLink(Pdu):
    pass


@_register(CommandId.ENQUIRE_LINK_RESP, _fast.header_only_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    pass


# --- Message submission and delivery (section 4.4, 4.5, 4.6, 4.7) ---------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _ShortMessage(Pdu):
    """submit_sm and deliver_sm share one layout (sections 4.4.1 and 4.6.1)."""

    service_type: str = _c(6)
    source_addr_ton: Ton = _enum(Ton.UNKNOWN)
    source_addr_npi: Npi = _enum(Npi.UNKNOWN)
    source_addr: str = _c(21)
    dest_addr_ton: Ton = _enum(Ton.UNKNOWN)
    dest_addr_npi: Npi = _enum(Npi.UNKNOWN)
    destination_addr: str = _c(21)
    esm_class: EsmClass = _enum(EsmClass.DEFAULT)
    protocol_id: int = _u8()
    priority_flag: int = _u8()
    schedule_delivery_time: str = _c(17)
    validity_period: str = _c(17)
    registered_delivery: RegisteredDelivery = _enum(RegisteredDelivery.NONE)
    replace_if_present_flag: int = _u8()
    data_coding: DataCoding = _enum(DataCoding.DEFAULT)
    sm_default_msg_id: int = _u8()
    short_message: bytes = _sm()


@_register(CommandId.SUBMIT_SM, _fast.short_message_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSm(_ShortMessage):
    pass


@_register(CommandId.DELIVER_SM, _fast.short_message_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm(_ShortMessage):
    pass


@_register(CommandId.SUBMIT_SM_RESP, _fast.message_id_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSmResp(Pdu):
    message_id: str = _c(65)


@_register(CommandId.DELIVER_SM_RESP, _fast.message_id_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSmResp(Pdu):
    message_id: str = _c(65)  # unused by the spec, set to NULL; some SMSCs fill it


@_register(CommandId.SUBMIT_MULTI)
@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitMulti(Pdu):
    service_type: str = _c(6)
    source_addr_ton: Ton = _enum(Ton.UNKNOWN)
    source_addr_npi: Npi = _enum(Npi.UNKNOWN)
    source_addr: str = _c(21)
    dest_address: tuple[SmeAddress | DistributionList, ...] = _list(Kind.DEST_ADDRESSES)
    esm_class: EsmClass = _enum(EsmClass.DEFAULT)
    protocol_id: int = _u8()
    priority_flag: int = _u8()
    schedule_delivery_time: str = _c(17)
    validity_period: str = _c(17)
    registered_delivery: RegisteredDelivery = _enum(RegisteredDelivery.NONE)
    replace_if_present_flag: int = _u8()
    data_coding: DataCoding = _enum(DataCoding.DEFAULT)
    sm_default_msg_id: int = _u8()
    short_message: bytes = _sm()


@_register(CommandId.SUBMIT_MULTI_RESP)
@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitMultiResp(Pdu):
    message_id: str = _c(65)
    unsuccess_sme: tuple[UnsuccessSme, ...] = _list(Kind.UNSUCCESS_SMES)


@_register(CommandId.DATA_SM, _fast.data_sm_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class DataSm(Pdu):
    service_type: str = _c(6)
    source_addr_ton: Ton = _enum(Ton.UNKNOWN)
    source_addr_npi: Npi = _enum(Npi.UNKNOWN)
    source_addr: str = _c(65)
    dest_addr_ton: Ton = _enum(Ton.UNKNOWN)
    dest_addr_npi: Npi = _enum(Npi.UNKNOWN)
    destination_addr: str = _c(65)
    esm_class: EsmClass = _enum(EsmClass.DEFAULT)
    registered_delivery: RegisteredDelivery = _enum(RegisteredDelivery.NONE)
    data_coding: DataCoding = _enum(DataCoding.DEFAULT)


@_register(CommandId.DATA_SM_RESP, _fast.message_id_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class DataSmResp(Pdu):
    message_id: str = _c(65)


# --- Ancillary operations (section 4.8, 4.9, 4.10, 4.12) -------------------------------------


@_register(CommandId.QUERY_SM)
@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySm(Pdu):
    message_id: str = _c(65)
    source_addr_ton: Ton = _enum(Ton.UNKNOWN)
    source_addr_npi: Npi = _enum(Npi.UNKNOWN)
    source_addr: str = _c(21)


@_register(CommandId.QUERY_SM_RESP)
@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySmResp(Pdu):
    message_id: str = _c(65)
    final_date: str = _c(17)
    message_state: MessageState = _enum(MessageState(0))  # shadows the TLV view
    error_code: int = _u8()


@_register(CommandId.CANCEL_SM)
@dataclass(frozen=True, slots=True, kw_only=True)
class CancelSm(Pdu):
    service_type: str = _c(6)
    message_id: str = _c(65)
    source_addr_ton: Ton = _enum(Ton.UNKNOWN)
    source_addr_npi: Npi = _enum(Npi.UNKNOWN)
    source_addr: str = _c(21)
    dest_addr_ton: Ton = _enum(Ton.UNKNOWN)
    dest_addr_npi: Npi = _enum(Npi.UNKNOWN)
    destination_addr: str = _c(21)


@_register(CommandId.CANCEL_SM_RESP, _fast.header_only_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class CancelSmResp(Pdu):
    pass


@_register(CommandId.REPLACE_SM)
@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceSm(Pdu):
    message_id: str = _c(65)
    source_addr_ton: Ton = _enum(Ton.UNKNOWN)
    source_addr_npi: Npi = _enum(Npi.UNKNOWN)
    source_addr: str = _c(21)
    schedule_delivery_time: str = _c(17)
    validity_period: str = _c(17)
    registered_delivery: RegisteredDelivery = _enum(RegisteredDelivery.NONE)
    sm_default_msg_id: int = _u8()
    short_message: bytes = _sm()


@_register(CommandId.REPLACE_SM_RESP, _fast.header_only_codec)
@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceSmResp(Pdu):
    pass


@_register(CommandId.ALERT_NOTIFICATION)
@dataclass(frozen=True, slots=True, kw_only=True)
class AlertNotification(Pdu):
    source_addr_ton: Ton = _enum(Ton.UNKNOWN)
    source_addr_npi: Npi = _enum(Npi.UNKNOWN)
    source_addr: str = _c(65)
    esme_addr_ton: Ton = _enum(Ton.UNKNOWN)
    esme_addr_npi: Npi = _enum(Npi.UNKNOWN)
    esme_addr: str = _c(65)


# --- encode / decode -------------------------------------------------------------------------


def encode(pdu: Pdu) -> bytes:
    """Serialise a PDU, header included.

    Args:
        pdu: any PDU instance.

    Returns:
        The PDU's octets; ``command_length`` is computed.

    Raises:
        EncodeError: a field is out of range (an integer over its width, a C-octet string
            longer than its spec maximum or not Latin-1, a short_message over 255 octets).
    """
    cls = type(pdu)
    if not pdu.body_omitted and cls._encode_fast is not None:
        wire = cls._encode_fast(pdu)
        if wire is not None:
            return wire
        # A value out of range or of the wrong type: the reference codec names it.
    return encode_reference(pdu)


def encode_reference(pdu: Pdu) -> bytes:
    """:func:`encode` by the reference codec only, without the fast paths."""
    cls = type(pdu)
    if not pdu.body_omitted:
        body = encode_body(pdu, cls._layout)
    else:
        if pdu.tlvs or tuple(getattr(pdu, n) for n in cls._wire_names) != cls._defaults:
            raise EncodeError(f"{cls.__name__}: body_omitted with non-default fields or TLVs")
        body = b""
    try:
        header = _HEADER.pack(
            HEADER_LENGTH + len(body), cls.command_id, pdu.command_status, pdu.sequence_number
        )
    except struct.error as exc:
        raise EncodeError(
            f"{cls.__name__}: command_status or sequence_number out of range"
        ) from exc
    return header + body


def decode(data: bytes | bytearray | memoryview) -> Pdu:
    """Decode one complete PDU (as returned by :class:`~smppgw.codec.Framer`).

    Args:
        data: exactly one PDU, header included.

    Returns:
        The PDU instance of the class registered for its command_id.

    Raises:
        DecodeError: any malformation; its ``status`` is what to answer with and its
            ``sequence_number`` is the PDU's when the header was readable.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    size = len(data)
    if size < HEADER_LENGTH:
        raise InvalidCommandLengthError(f"{size} octets is shorter than a PDU header")
    length, command_id, status, sequence_number = _HEADER.unpack_from(data)
    if length != size:
        raise InvalidCommandLengthError(
            f"command_length {length} but {size} octets given",
            sequence_number=sequence_number,
            command_id=command_id,
        )
    cls = _BY_ID.get(command_id)
    if cls is None:
        raise InvalidCommandIdError(
            f"unknown command_id 0x{command_id:08X}",
            sequence_number=sequence_number,
            command_id=command_id,
        )
    command_status = _STATUS.get(status)
    if command_status is None:
        command_status = CommandStatus(status)
    if length == HEADER_LENGTH and cls.is_response and cls._wire_names:
        return cls(
            sequence_number=sequence_number, command_status=command_status, body_omitted=True
        )
    if cls._decode_fast is not None:
        pdu = cls._decode_fast(data, command_status, sequence_number)
        if pdu is not None:
            return pdu
        # Malformed: the reference codec raises the precise error.
    return decode_body(cls, cls._layout, data, command_status, sequence_number)
