"""Field layouts of the mandatory PDU bodies and the reference codec that walks them.

Each PDU class declares its mandatory fields, in wire order, as a tuple of :class:`Field`.
:func:`decode_body` and :func:`encode_body` read and write any layout one field at a time,
check each, and raise the typed error that names the field. They are the reference codec:
every PDU goes through them unless a hand-written fast path (:mod:`._fast`) handles it, and a
differential test holds the fast paths to them (tests/codec/test_fast_exact.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum, auto
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .constants import (
    CommandStatus,
    DataCoding,
    EsmClass,
    MessageState,
    Npi,
    RegisteredDelivery,
    Ton,
)
from .errors import EncodeError, InvalidCommandLengthError, InvalidFieldError, InvalidTlvError
from .tlv import Tlv

if TYPE_CHECKING:
    from .pdu import DistributionList, Pdu, SmeAddress, UnsuccessSme

_E = TypeVar("_E", bound=int)

__all__ = [
    "OCTET_MEMBERS",
    "Field",
    "Kind",
    "command_status",
    "decode_body",
    "decode_tlvs",
    "encode_body",
    "encode_tlvs",
]


class Kind(Enum):
    """How a mandatory field is laid out on the wire."""

    U8 = auto()  # 1-octet unsigned integer
    CSTRING = auto()  # C-octet string: octets then NUL, at most `size` octets including the NUL
    SHORT_MESSAGE = auto()  # sm_length (1 octet) then that many octets
    DEST_ADDRESSES = auto()  # submit_multi: number_of_dests then dest_address list (5.2.25)
    UNSUCCESS_SMES = auto()  # submit_multi_resp: no_unsuccess then unsuccess_sme list (5.2.26)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    size: int = 0  # the maximum octets of a C-octet string, NUL included
    # A 1-octet field whose values are this open enum's: it decodes to the enum's members.
    enum: type[int] | None = None


def _octets(enum: type[_E]) -> tuple[_E, ...]:
    """Every octet as a member of ``enum`` (a value it does not name is its pseudo-member)."""
    return tuple(enum(octet) for octet in range(256))


# The members of each open enum a 1-octet field takes, built once: decoding such a field is one
# index, no call.
_TON: Final = _octets(Ton)
_NPI: Final = _octets(Npi)
OCTET_MEMBERS: Final[dict[type[int], tuple[int, ...]]] = {
    Ton: _TON,
    Npi: _NPI,
    EsmClass: _octets(EsmClass),
    RegisteredDelivery: _octets(RegisteredDelivery),
    DataCoding: _octets(DataCoding),
    MessageState: _octets(MessageState),
}
_STATUS: Final[dict[int, CommandStatus]] = {int(s): s for s in CommandStatus}


def command_status(value: int) -> CommandStatus:
    """``value`` as a CommandStatus member, named or not (the enum is open)."""
    status = _STATUS.get(value)
    return CommandStatus(value) if status is None else status


HEADER_LENGTH = 16
# The C-octet strings inside the address lists of submit_multi and submit_multi_resp.
_DESTINATION_ADDR = Field("destination_addr", Kind.CSTRING, 21)
_DL_NAME = Field("dl_name", Kind.CSTRING, 21)
_TLV_HEADER = struct.Struct("!HH")
_U32 = struct.Struct("!I")


# --- decoding --------------------------------------------------------------------------------


def decode_body(
    cls: type[Pdu],
    layout: tuple[Field, ...],
    data: bytes,
    command_status: CommandStatus,
    sequence_number: int,
) -> Pdu:
    """Decode the body of ``data`` (a whole PDU, header included) into a ``cls`` instance.

    Raises:
        InvalidCommandLengthError: the body ends inside a mandatory field, or sm_length
            claims more octets than follow.
        InvalidFieldError: a C-octet string is unterminated within its maximum size, or a
            submit_multi dest_flag is neither 1 nor 2.
        InvalidTlvError: the optional-parameter part is malformed.
    """
    cid = cls.command_id
    values: dict[str, Any] = {}
    pos = HEADER_LENGTH
    try:
        for field in layout:
            values[field.name], pos = _decode_field(field, data, pos, sequence_number, cid)
    except (IndexError, struct.error):
        raise _short_error(sequence_number, cid) from None
    tlvs = decode_tlvs(data, pos, sequence_number, cid)
    return cls(sequence_number=sequence_number, command_status=command_status, tlvs=tlvs, **values)


def _decode_field(field: Field, data: bytes, pos: int, seq: int, cid: int) -> tuple[Any, int]:
    """One mandatory field at ``pos``: its value and the offset after it.

    A read past the end raises IndexError or struct.error, which :func:`decode_body` turns
    into the typed error.
    """
    kind = field.kind
    if kind is Kind.U8:
        octet = data[pos]
        return (octet if field.enum is None else OCTET_MEMBERS[field.enum][octet]), pos + 1
    if kind is Kind.CSTRING:
        return _decode_cstring(data, pos, field, seq, cid)
    if kind is Kind.SHORT_MESSAGE:
        sm_length = data[pos]
        pos += 1
        value = data[pos : pos + sm_length]
        if len(value) != sm_length:
            raise _short_error(seq, cid)
        return value, pos + sm_length
    if kind is Kind.DEST_ADDRESSES:
        return _decode_dest_addresses(data, pos, seq, cid)
    return _decode_unsuccess(data, pos, seq, cid)


def _decode_cstring(data: bytes, pos: int, field: Field, seq: int, cid: int) -> tuple[str, int]:
    nul = data.find(b"\x00", pos, pos + field.size)
    if nul < 0:
        raise InvalidFieldError(
            f"{field.name}: C-octet string unterminated within its {field.size}-octet maximum",
            sequence_number=seq,
            command_id=cid,
        )
    return data[pos:nul].decode("latin-1"), nul + 1


def _short_error(seq: int, cid: int) -> InvalidCommandLengthError:
    return InvalidCommandLengthError(
        "PDU body ends inside a mandatory field", sequence_number=seq, command_id=cid
    )


def _decode_dest_addresses(
    data: bytes, pos: int, seq: int, cid: int
) -> tuple[tuple[SmeAddress | DistributionList, ...], int]:
    # Imported here: the address types live with the PDU classes, which import this module.
    from .pdu import DistributionList, SmeAddress  # noqa: PLC0415

    count = data[pos]
    pos += 1
    out: list[SmeAddress | DistributionList] = []
    for _ in range(count):
        flag = data[pos]
        if flag == 1:
            ton, npi = data[pos + 1], data[pos + 2]
            addr, pos = _decode_cstring(data, pos + 3, _DESTINATION_ADDR, seq, cid)
            out.append(SmeAddress(_TON[ton], _NPI[npi], addr))
        elif flag == 2:
            name, pos = _decode_cstring(data, pos + 1, _DL_NAME, seq, cid)
            out.append(DistributionList(name))
        else:
            raise InvalidFieldError(
                f"dest_flag {flag} is neither 1 (SME) nor 2 (distribution list)",
                sequence_number=seq,
                command_id=cid,
            )
    return tuple(out), pos


def _decode_unsuccess(
    data: bytes, pos: int, seq: int, cid: int
) -> tuple[tuple[UnsuccessSme, ...], int]:
    from .pdu import UnsuccessSme  # noqa: PLC0415

    count = data[pos]
    pos += 1
    out = []
    for _ in range(count):
        ton, npi = data[pos], data[pos + 1]
        addr, pos = _decode_cstring(data, pos + 2, _DESTINATION_ADDR, seq, cid)
        (status,) = _U32.unpack_from(data, pos)
        pos += 4
        out.append(UnsuccessSme(_TON[ton], _NPI[npi], addr, command_status(status)))
    return tuple(out), pos


def decode_tlvs(data: bytes, pos: int, sequence_number: int, command_id: int) -> tuple[Tlv, ...]:
    """Decode the optional-parameter part data[pos:] (SMPP v3.4 section 3.2.4.1)."""
    end = len(data)
    out = []
    while pos < end:
        if end - pos < 4:
            raise InvalidTlvError(
                f"truncated TLV header at offset {pos}",
                sequence_number=sequence_number,
                command_id=command_id,
            )
        tag, length = _TLV_HEADER.unpack_from(data, pos)
        pos += 4
        if pos + length > end:
            raise InvalidTlvError(
                f"TLV 0x{tag:04X} declares {length} octets, {end - pos} remain",
                sequence_number=sequence_number,
                command_id=command_id,
            )
        out.append(Tlv(tag, data[pos : pos + length]))
        pos += length
    return tuple(out)


# --- encoding --------------------------------------------------------------------------------


def encode_body(pdu: Pdu, layout: tuple[Field, ...]) -> bytes:
    """The body octets of ``pdu`` (mandatory fields, then TLVs), without the header.

    Raises:
        EncodeError: a field is out of range or of the wrong type; the message names the
            field and what it must be, never its value (a password is a field).
    """
    parts = []
    for field in layout:
        value = getattr(pdu, field.name)
        try:
            parts.append(_encode_field(field, value))
        except EncodeError:
            raise
        except (TypeError, ValueError, AttributeError, OverflowError, struct.error) as exc:
            wanted = _WANTED[field.kind].format(field.size - 1)
            raise EncodeError(
                f"{type(pdu).__name__}.{field.name} must be {wanted} (got {type(value).__name__})"
            ) from exc
    if pdu.tlvs:
        parts.append(encode_tlvs(pdu.tlvs))
    return b"".join(parts)


# What each kind of field must hold, for the error message; {0} is a C-octet string's maximum
# length without its NUL.
_WANTED = {
    Kind.U8: "an integer in 0..255",
    Kind.CSTRING: "a Latin-1 string of at most {0} characters, no NUL",
    Kind.SHORT_MESSAGE: "bytes of at most 255 octets",
    Kind.DEST_ADDRESSES: "a sequence of SmeAddress and DistributionList",
    Kind.UNSUCCESS_SMES: "a sequence of UnsuccessSme",
}


def _encode_field(field: Field, value: Any) -> bytes:  # noqa: ANN401 - checked here, at runtime
    """One mandatory field's octets; a value out of range or of the wrong type raises
    TypeError, ValueError or struct.error, which :func:`encode_body` names."""
    kind = field.kind
    if kind is Kind.U8:
        return bytes((value,))
    if kind is Kind.CSTRING:
        return _encode_cstring(value, field.size)
    if kind is Kind.SHORT_MESSAGE:
        octets: bytes = value
        return bytes((len(octets),)) + octets
    if kind is Kind.DEST_ADDRESSES:
        return _encode_dest_addresses(value)
    return _encode_unsuccess(value)


def _encode_cstring(value: str, size: int) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) >= size or b"\x00" in raw:
        raise ValueError("too long or holds a NUL")
    return raw + b"\x00"


def _encode_dest_addresses(value: tuple[SmeAddress | DistributionList, ...]) -> bytes:
    from .pdu import DistributionList, SmeAddress  # noqa: PLC0415

    if len(value) > 254:
        raise EncodeError(f"dest_address: {len(value)} destinations, at most 254 allowed")
    parts = [bytes((len(value),))]
    for dest in value:
        if isinstance(dest, SmeAddress):
            parts.append(bytes((1, dest.dest_addr_ton, dest.dest_addr_npi)))
            parts.append(_encode_cstring(dest.destination_addr, 21))
        elif isinstance(dest, DistributionList):
            parts.append(b"\x02")
            parts.append(_encode_cstring(dest.dl_name, 21))
        else:
            raise TypeError("neither SmeAddress nor DistributionList")
    return b"".join(parts)


def _encode_unsuccess(value: tuple[UnsuccessSme, ...]) -> bytes:
    if len(value) > 255:
        raise EncodeError(f"unsuccess_sme: {len(value)} entries, at most 255 allowed")
    parts = [bytes((len(value),))]
    for sme in value:
        parts.append(bytes((sme.dest_addr_ton, sme.dest_addr_npi)))
        parts.append(_encode_cstring(sme.destination_addr, 21))
        parts.append(_U32.pack(sme.error_status_code))
    return b"".join(parts)


def encode_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    """The optional-parameter part: each TLV's tag, length and value, in order.

    Raises:
        EncodeError: an entry that is not a TLV, a tag or a length out of 0..65535, or a
            value that is not bytes.
    """
    parts = []
    try:
        for tlv in tlvs:
            value = tlv.value
            parts.append(_TLV_HEADER.pack(tlv.tag, len(value)))
            parts.append(value)
        return b"".join(parts)
    except (TypeError, AttributeError, struct.error) as exc:
        raise EncodeError(
            "tlvs: each must be a Tlv with a tag in 0..65535 and bytes of at most 65535 octets"
        ) from exc
