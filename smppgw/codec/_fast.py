"""Hand-written fast paths for the PDUs on the hot path of a gateway.

submit_sm and deliver_sm (one layout), data_sm, the responses that carry only a message_id
(submit_sm_resp, deliver_sm_resp, data_sm_resp) and the header-only PDUs (enquire_link and
others) are encoded and decoded here in as few interpreted steps as possible: the mandatory
fields of a submit_sm are matched by one regular expression over the PDU read as Latin-1, so
the scan runs in C and each C-octet string comes out decoded; on the way out they are joined
into one ``str`` and encoded once.

Every function here returns None, instead of raising, on anything out of the ordinary (no
match, a truncated field, a value out of range, a wrong type); the caller then runs the
reference codec of :mod:`._fields`, which raises the precise error. The fast paths accept
exactly what the reference codec accepts and give the same result: the differential test
(tests/codec/test_fast_exact.py) holds them to it, on generated PDUs and on mutated
octets.

Instances are built without the frozen dataclass's ``__init__`` (about 0.2 us per field, more
than the rest of decoding put together): see :func:`builder`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._fields import HEADER_LENGTH, OCTET_MEMBERS, Field, Kind
from .constants import CommandStatus, DataCoding, EsmClass, Npi, RegisteredDelivery, Ton
from .tlv import Tlv

if TYPE_CHECKING:
    from .pdu import DataSm, DataSmResp, DeliverSm, DeliverSmResp, Pdu, SubmitSm, SubmitSmResp

__all__ = [
    "FastDecoder",
    "FastEncoder",
    "builder",
    "data_sm_codec",
    "header_only_codec",
    "message_id_codec",
    "short_message_codec",
]

FastDecoder = Callable[[bytes, CommandStatus, int], "Pdu | None"]
FastEncoder = Callable[[Any], "bytes | None"]

_HEADER_PACK = struct.Struct("!IIII").pack
_TLV_HEAD = struct.Struct("!HH").unpack_from
_TLV_PACK = struct.Struct("!HH").pack
_new = object.__new__
# What an out-of-range or mistyped field raises on the fast encoding path.
_ENCODE_FAILURES = (ValueError, TypeError, OverflowError, AttributeError, struct.error)


def builder(cls: type) -> type[Any]:
    """A private subclass of the frozen, slotted ``cls`` whose instances take plain assignment.

    A fast decoder creates an instance of it, assigns every slot (a specialised slot store,
    about ten times cheaper than calling the slot descriptor's ``__set__``) and then sets
    ``__class__`` to ``cls``. The subclass adds no slots, so the layouts are identical and the
    assignment is allowed; the result is exactly a ``cls`` instance, frozen again, and equal to
    ``cls(**fields)``. Both ``__setattr__`` and ``__delattr__`` must be ``object``'s for the
    interpreter to use its generic (specialisable) attribute store.
    """
    return type(
        f"_{cls.__name__}Builder",
        (cls,),
        {
            "__slots__": (),
            "__module__": cls.__module__,
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
        },
    )


_TLV_BUILDER = builder(Tlv)


def _by_char(enum: type[int]) -> dict[str, Any]:
    """The members of ``enum`` by the Latin-1 character of their octet, as the regular
    expressions below capture a 1-octet field: one dict lookup, cheaper than ``ord``."""
    return {chr(octet): member for octet, member in enumerate(OCTET_MEMBERS[enum])}


_TON = _by_char(Ton)
_NPI = _by_char(Npi)
_ESM = _by_char(EsmClass)
_REGISTERED = _by_char(RegisteredDelivery)
_CODING = _by_char(DataCoding)


def _read_tlvs(data: bytes, pos: int) -> tuple[Tlv, ...] | None:
    """The TLVs of data[pos:], or None when they do not fill it exactly (or pos is past it).

    The bounds are checked once, at the end: a value cut short only makes ``pos`` overshoot.
    """
    end = len(data)
    if pos == end:
        return ()
    out = []
    try:
        while pos < end:
            tag, length = _TLV_HEAD(data, pos)
            start = pos + 4
            pos = start + length
            tlv = _new(_TLV_BUILDER)
            tlv.tag = tag
            tlv.value = data[start:pos]
            tlv.__class__ = Tlv
            out.append(tlv)
    except struct.error:  # a truncated TLV header
        return None
    if pos != end:
        return None
    return tuple(out)


def _append_tlvs(parts: list[bytes], tlvs: tuple[Tlv, ...]) -> bytes:
    for tlv in tlvs:
        value = tlv.value
        parts.append(_TLV_PACK(tlv.tag, len(value)))
        parts.append(value)
    return b"".join(parts)


def _check_layout(cls: type, layout: tuple[Field, ...], expected: tuple[Field, ...]) -> None:
    """The hand-written code below spells out each field: refuse a class it does not fit."""
    if layout != expected:
        raise TypeError(f"{cls.__name__}: its layout is not the one this fast path is written for")


# --- submit_sm and deliver_sm (sections 4.4.1 and 4.6.1) -------------------------------------

SHORT_MESSAGE_LAYOUT = (
    Field("service_type", Kind.CSTRING, 6),
    Field("source_addr_ton", Kind.U8, enum=Ton),
    Field("source_addr_npi", Kind.U8, enum=Npi),
    Field("source_addr", Kind.CSTRING, 21),
    Field("dest_addr_ton", Kind.U8, enum=Ton),
    Field("dest_addr_npi", Kind.U8, enum=Npi),
    Field("destination_addr", Kind.CSTRING, 21),
    Field("esm_class", Kind.U8, enum=EsmClass),
    Field("protocol_id", Kind.U8),
    Field("priority_flag", Kind.U8),
    Field("schedule_delivery_time", Kind.CSTRING, 17),
    Field("validity_period", Kind.CSTRING, 17),
    Field("registered_delivery", Kind.U8, enum=RegisteredDelivery),
    Field("replace_if_present_flag", Kind.U8),
    Field("data_coding", Kind.U8, enum=DataCoding),
    Field("sm_default_msg_id", Kind.U8),
    Field("short_message", Kind.SHORT_MESSAGE),
)

# One group per field, over the PDU read as Latin-1: a 1-octet integer is any one character, a
# C-octet string up to its maximum length of non-NUL characters and then a NUL; the last group
# is sm_length, and the short_message octets follow the match.
_SHORT_MESSAGE_MATCH = re.compile(
    "".join(
        f"([^\\x00]{{0,{field.size - 1}}})\\x00" if field.kind is Kind.CSTRING else "(.)"
        for field in SHORT_MESSAGE_LAYOUT
    ),
    re.DOTALL,
).match


def short_message_codec(
    cls: type[Pdu], layout: tuple[Field, ...]
) -> tuple[FastDecoder, FastEncoder]:
    """The fast decoder and encoder of submit_sm or deliver_sm (``cls``)."""
    _check_layout(cls, layout, SHORT_MESSAGE_LAYOUT)
    build = builder(cls)
    command_id = int(cls.command_id)

    def decode(data: bytes, command_status: CommandStatus, sequence_number: int) -> Pdu | None:
        match = _SHORT_MESSAGE_MATCH(data.decode("latin-1"), HEADER_LENGTH)
        if match is None:
            return None
        (
            service_type,
            source_addr_ton,
            source_addr_npi,
            source_addr,
            dest_addr_ton,
            dest_addr_npi,
            destination_addr,
            esm_class,
            protocol_id,
            priority_flag,
            schedule_delivery_time,
            validity_period,
            registered_delivery,
            replace_if_present_flag,
            data_coding,
            sm_default_msg_id,
            sm_length,
        ) = match.groups()
        pos = match.end()
        end = pos + ord(sm_length)
        tlvs = _read_tlvs(data, end)
        if tlvs is None:
            return None
        pdu = _new(build)
        pdu.sequence_number = sequence_number
        pdu.command_status = command_status
        pdu.tlvs = tlvs
        pdu.body_omitted = False
        pdu.service_type = service_type
        pdu.source_addr_ton = _TON[source_addr_ton]
        pdu.source_addr_npi = _NPI[source_addr_npi]
        pdu.source_addr = source_addr
        pdu.dest_addr_ton = _TON[dest_addr_ton]
        pdu.dest_addr_npi = _NPI[dest_addr_npi]
        pdu.destination_addr = destination_addr
        pdu.esm_class = _ESM[esm_class]
        pdu.protocol_id = ord(protocol_id)
        pdu.priority_flag = ord(priority_flag)
        pdu.schedule_delivery_time = schedule_delivery_time
        pdu.validity_period = validity_period
        pdu.registered_delivery = _REGISTERED[registered_delivery]
        pdu.replace_if_present_flag = ord(replace_if_present_flag)
        pdu.data_coding = _CODING[data_coding]
        pdu.sm_default_msg_id = ord(sm_default_msg_id)
        pdu.short_message = data[pos:end]
        pdu.__class__ = cls
        result: Pdu = pdu
        return result

    def encode(pdu: SubmitSm | DeliverSm) -> bytes | None:
        try:
            service_type = pdu.service_type
            source_addr = pdu.source_addr
            destination_addr = pdu.destination_addr
            schedule_delivery_time = pdu.schedule_delivery_time
            validity_period = pdu.validity_period
            short_message = pdu.short_message
            if (
                len(service_type) > 5
                or "\0" in service_type
                or len(source_addr) > 20
                or "\0" in source_addr
                or len(destination_addr) > 20
                or "\0" in destination_addr
                or len(schedule_delivery_time) > 16
                or "\0" in schedule_delivery_time
                or len(validity_period) > 16
                or "\0" in validity_period
            ):
                return None
            # chr() of an integer over 255 does not encode as Latin-1: ValueError.
            head = "".join(
                (
                    service_type,
                    "\0",
                    chr(pdu.source_addr_ton),
                    chr(pdu.source_addr_npi),
                    source_addr,
                    "\0",
                    chr(pdu.dest_addr_ton),
                    chr(pdu.dest_addr_npi),
                    destination_addr,
                    "\0",
                    chr(pdu.esm_class),
                    chr(pdu.protocol_id),
                    chr(pdu.priority_flag),
                    schedule_delivery_time,
                    "\0",
                    validity_period,
                    "\0",
                    chr(pdu.registered_delivery),
                    chr(pdu.replace_if_present_flag),
                    chr(pdu.data_coding),
                    chr(pdu.sm_default_msg_id),
                    chr(len(short_message)),
                )
            ).encode("latin-1")
            tlvs = pdu.tlvs
            body = _append_tlvs([head, short_message], tlvs) if tlvs else head + short_message
            return (
                _HEADER_PACK(
                    HEADER_LENGTH + len(body), command_id, pdu.command_status, pdu.sequence_number
                )
                + body
            )
        except _ENCODE_FAILURES:
            return None

    return decode, encode


# --- data_sm (section 4.7.1): a submit or a delivery, with its payload in TLVs -------------------

DATA_SM_LAYOUT = (
    Field("service_type", Kind.CSTRING, 6),
    Field("source_addr_ton", Kind.U8, enum=Ton),
    Field("source_addr_npi", Kind.U8, enum=Npi),
    Field("source_addr", Kind.CSTRING, 65),
    Field("dest_addr_ton", Kind.U8, enum=Ton),
    Field("dest_addr_npi", Kind.U8, enum=Npi),
    Field("destination_addr", Kind.CSTRING, 65),
    Field("esm_class", Kind.U8, enum=EsmClass),
    Field("registered_delivery", Kind.U8, enum=RegisteredDelivery),
    Field("data_coding", Kind.U8, enum=DataCoding),
)

_DATA_SM_MATCH = re.compile(
    "".join(
        f"([^\\x00]{{0,{field.size - 1}}})\\x00" if field.kind is Kind.CSTRING else "(.)"
        for field in DATA_SM_LAYOUT
    ),
    re.DOTALL,
).match


def data_sm_codec(cls: type[Pdu], layout: tuple[Field, ...]) -> tuple[FastDecoder, FastEncoder]:
    """The fast decoder and encoder of data_sm."""
    _check_layout(cls, layout, DATA_SM_LAYOUT)
    build = builder(cls)
    command_id = int(cls.command_id)

    def decode(data: bytes, command_status: CommandStatus, sequence_number: int) -> Pdu | None:
        match = _DATA_SM_MATCH(data.decode("latin-1"), HEADER_LENGTH)
        if match is None:
            return None
        (
            service_type,
            source_addr_ton,
            source_addr_npi,
            source_addr,
            dest_addr_ton,
            dest_addr_npi,
            destination_addr,
            esm_class,
            registered_delivery,
            data_coding,
        ) = match.groups()
        tlvs = _read_tlvs(data, match.end())
        if tlvs is None:
            return None
        pdu = _new(build)
        pdu.sequence_number = sequence_number
        pdu.command_status = command_status
        pdu.tlvs = tlvs
        pdu.body_omitted = False
        pdu.service_type = service_type
        pdu.source_addr_ton = _TON[source_addr_ton]
        pdu.source_addr_npi = _NPI[source_addr_npi]
        pdu.source_addr = source_addr
        pdu.dest_addr_ton = _TON[dest_addr_ton]
        pdu.dest_addr_npi = _NPI[dest_addr_npi]
        pdu.destination_addr = destination_addr
        pdu.esm_class = _ESM[esm_class]
        pdu.registered_delivery = _REGISTERED[registered_delivery]
        pdu.data_coding = _CODING[data_coding]
        pdu.__class__ = cls
        result: Pdu = pdu
        return result

    def encode(pdu: DataSm) -> bytes | None:
        try:
            service_type = pdu.service_type
            source_addr = pdu.source_addr
            destination_addr = pdu.destination_addr
            if (
                len(service_type) > 5
                or "\0" in service_type
                or len(source_addr) > 64
                or "\0" in source_addr
                or len(destination_addr) > 64
                or "\0" in destination_addr
            ):
                return None
            head = "".join(
                (
                    service_type,
                    "\0",
                    chr(pdu.source_addr_ton),
                    chr(pdu.source_addr_npi),
                    source_addr,
                    "\0",
                    chr(pdu.dest_addr_ton),
                    chr(pdu.dest_addr_npi),
                    destination_addr,
                    "\0",
                    chr(pdu.esm_class),
                    chr(pdu.registered_delivery),
                    chr(pdu.data_coding),
                )
            ).encode("latin-1")
            tlvs = pdu.tlvs
            body = _append_tlvs([head], tlvs) if tlvs else head
            return (
                _HEADER_PACK(
                    HEADER_LENGTH + len(body), command_id, pdu.command_status, pdu.sequence_number
                )
                + body
            )
        except _ENCODE_FAILURES:
            return None

    return decode, encode


# --- submit_sm_resp, deliver_sm_resp, data_sm_resp (sections 4.4.2, 4.6.2, 4.7.2) ------------

MESSAGE_ID_LAYOUT = (Field("message_id", Kind.CSTRING, 65),)


def message_id_codec(cls: type[Pdu], layout: tuple[Field, ...]) -> tuple[FastDecoder, FastEncoder]:
    """The fast decoder and encoder of a response whose body is a message_id."""
    _check_layout(cls, layout, MESSAGE_ID_LAYOUT)
    build = builder(cls)
    command_id = int(cls.command_id)

    def decode(data: bytes, command_status: CommandStatus, sequence_number: int) -> Pdu | None:
        nul = data.find(b"\x00", HEADER_LENGTH, HEADER_LENGTH + 65)
        if nul < 0:
            return None
        tlvs = _read_tlvs(data, nul + 1)
        if tlvs is None:
            return None
        pdu = _new(build)
        pdu.sequence_number = sequence_number
        pdu.command_status = command_status
        pdu.tlvs = tlvs
        pdu.body_omitted = False
        pdu.message_id = data[HEADER_LENGTH:nul].decode("latin-1")
        pdu.__class__ = cls
        result: Pdu = pdu
        return result

    def encode(pdu: SubmitSmResp | DeliverSmResp | DataSmResp) -> bytes | None:
        try:
            message_id = pdu.message_id
            if len(message_id) > 64 or "\0" in message_id:
                return None
            head = message_id.encode("latin-1") + b"\x00"
            tlvs = pdu.tlvs
            body = _append_tlvs([head], tlvs) if tlvs else head
            return (
                _HEADER_PACK(
                    HEADER_LENGTH + len(body), command_id, pdu.command_status, pdu.sequence_number
                )
                + body
            )
        except _ENCODE_FAILURES:
            return None

    return decode, encode


# --- enquire_link, unbind, generic_nack and the other header-only PDUs -----------------------


def header_only_codec(cls: type[Pdu], layout: tuple[Field, ...]) -> tuple[FastDecoder, FastEncoder]:
    """The fast decoder and encoder of a PDU without mandatory fields (TLVs allowed)."""
    _check_layout(cls, layout, ())
    build = builder(cls)
    command_id = int(cls.command_id)

    def decode(data: bytes, command_status: CommandStatus, sequence_number: int) -> Pdu | None:
        tlvs = _read_tlvs(data, HEADER_LENGTH)
        if tlvs is None:
            return None
        pdu = _new(build)
        pdu.sequence_number = sequence_number
        pdu.command_status = command_status
        pdu.tlvs = tlvs
        pdu.body_omitted = False
        pdu.__class__ = cls
        result: Pdu = pdu
        return result

    def encode(pdu: Pdu) -> bytes | None:
        try:
            tlvs = pdu.tlvs
            body = _append_tlvs([], tlvs) if tlvs else b""
            return (
                _HEADER_PACK(
                    HEADER_LENGTH + len(body), command_id, pdu.command_status, pdu.sequence_number
                )
                + body
            )
        except _ENCODE_FAILURES:
            return None

    return decode, encode
