"""Field layouts of the mandatory PDU bodies and the code generator that turns them into codecs.

Each PDU class declares its mandatory fields, in wire order, as a tuple of :class:`Field`. At
import time :func:`build_codec` compiles that tuple into specialised functions per class (as
:mod:`dataclasses` does for ``__init__``): a generic field interpreter costs several
microseconds per PDU, which is most of the budget of the hot path. There are two tiers:

* the fast pair (:func:`_build_fast`) handles the well-formed PDU in as few interpreted steps
  as possible (one regular expression for the mandatory fields, one ``str.encode`` for them
  on the way out, plain slot stores to build the instance) and gives up, returning None, on
  anything unusual;
* the exact pair (:func:`_build_exact`) walks the fields one by one, checks each, and raises
  the typed error that names the field; it runs only when the fast pair gave up, or for the
  address lists of submit_multi.

The generated code is straight-line and only uses the names passed in ``namespace`` below.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

from .errors import EncodeError, InvalidCommandLengthError, InvalidFieldError, InvalidTlvError
from .tlv import Tlv

__all__ = ["Field", "Kind", "build_codec", "decode_tlvs", "encode_tlvs"]


class Kind(Enum):
    """How a mandatory field is laid out on the wire."""

    U8 = auto()  # 1-octet unsigned integer
    U32 = auto()  # 4-octet unsigned integer, big endian
    CSTRING = auto()  # C-octet string: octets then NUL, at most `size` octets including the NUL
    SHORT_MESSAGE = auto()  # sm_length (1 octet) then that many octets
    DEST_ADDRESSES = auto()  # submit_multi: number_of_dests then dest_address list (5.2.25)
    UNSUCCESS_SMES = auto()  # submit_multi_resp: no_unsuccess then unsuccess_sme list (5.2.26)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    size: int = 0  # the maximum octets of a C-octet string, NUL included


_TLV_HEADER = struct.Struct("!HH")


def decode_tlvs(data: bytes, pos: int, sequence_number: int, command_id: int) -> tuple[Tlv, ...]:
    """Decode the optional-parameter part data[pos:] (SMPP v3.4 section 3.2.4.1)."""
    end = len(data)
    if pos == end:
        return ()
    out = []
    unpack = _TLV_HEADER.unpack_from
    new = object.__new__
    set_tag = _SET_TAG
    set_value = _SET_VALUE
    while pos < end:
        if end - pos < 4:
            raise InvalidTlvError(
                f"truncated TLV header at offset {pos}",
                sequence_number=sequence_number,
                command_id=command_id,
            )
        tag, length = unpack(data, pos)
        pos += 4
        if pos + length > end:
            raise InvalidTlvError(
                f"TLV 0x{tag:04X} declares {length} octets, {end - pos} remain",
                sequence_number=sequence_number,
                command_id=command_id,
            )
        # Tlv(tag, value) without the frozen __init__'s cost; see build_codec.
        tlv = new(Tlv)
        set_tag(tlv, tag)
        set_value(tlv, data[pos : pos + length])
        out.append(tlv)
        pos += length
    return tuple(out)


_SET_TAG: Callable[[Any, Any], None] = Tlv.__dict__["tag"].__set__
_SET_VALUE: Callable[[Any, Any], None] = Tlv.__dict__["value"].__set__


def encode_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    parts = []
    pack = _TLV_HEADER.pack
    for tlv in tlvs:
        value = tlv.value
        try:
            parts.append(pack(tlv.tag, len(value)))
        except struct.error as exc:
            raise EncodeError(f"TLV 0x{tlv.tag:X}: tag or length out of range") from exc
        parts.append(value)
    return b"".join(parts)


def _cstring_error(name: str, size: int, seq: int, cid: int) -> InvalidFieldError:
    return InvalidFieldError(
        f"{name}: C-octet string unterminated within its {size}-octet maximum",
        sequence_number=seq,
        command_id=cid,
    )


def _short_error(seq: int, cid: int) -> InvalidCommandLengthError:
    return InvalidCommandLengthError(
        "PDU body ends inside a mandatory field", sequence_number=seq, command_id=cid
    )


def _encode_cstring(value: str, size: int, name: str) -> bytes:
    try:
        raw = value.encode("latin-1")
    except (UnicodeEncodeError, AttributeError) as exc:
        raise EncodeError(f"{name}: not a Latin-1 string: {value!r}") from exc
    if len(raw) >= size or b"\x00" in raw:
        raise EncodeError(f"{name}: {len(raw)} octets, at most {size - 1} allowed, no NUL")
    return raw + b"\x00"


def _decode_dest_addresses(
    data: bytes, pos: int, seq: int, cid: int
) -> tuple[tuple[Any, ...], int]:
    # Imported here: the address types live with the PDU classes.
    from .pdu import DistributionList, SmeAddress  # noqa: PLC0415

    count = data[pos]
    pos += 1
    out: list[SmeAddress | DistributionList] = []
    for _ in range(count):
        flag = data[pos]
        if flag == 1:
            ton, npi = data[pos + 1], data[pos + 2]
            pos += 3
            nul = data.find(b"\x00", pos, pos + 21)
            if nul < 0:
                raise _cstring_error("destination_addr", 21, seq, cid)
            out.append(SmeAddress(ton, npi, data[pos:nul].decode("latin-1")))
        elif flag == 2:
            pos += 1
            nul = data.find(b"\x00", pos, pos + 21)
            if nul < 0:
                raise _cstring_error("dl_name", 21, seq, cid)
            out.append(DistributionList(data[pos:nul].decode("latin-1")))
        else:
            raise InvalidFieldError(
                f"dest_flag {flag} is neither 1 (SME) nor 2 (distribution list)",
                status=None,
                sequence_number=seq,
                command_id=cid,
            )
        pos = nul + 1
    return tuple(out), pos


def _encode_dest_addresses(value: tuple[Any, ...]) -> bytes:
    from .pdu import DistributionList, SmeAddress  # noqa: PLC0415

    if len(value) > 254:
        raise EncodeError(f"dest_address: {len(value)} destinations, at most 254 allowed")
    parts = [bytes((len(value),))]
    for dest in value:
        if isinstance(dest, SmeAddress):
            parts.append(bytes((1, dest.dest_addr_ton, dest.dest_addr_npi)))
            parts.append(_encode_cstring(dest.destination_addr, 21, "destination_addr"))
        elif isinstance(dest, DistributionList):
            parts.append(b"\x02")
            parts.append(_encode_cstring(dest.dl_name, 21, "dl_name"))
        else:
            raise EncodeError(f"dest_address: {dest!r} is neither SmeAddress nor DistributionList")
    return b"".join(parts)


_U32 = struct.Struct("!I")


def _decode_unsuccess(data: bytes, pos: int, seq: int, cid: int) -> tuple[tuple[Any, ...], int]:
    from .pdu import UnsuccessSme  # noqa: PLC0415

    count = data[pos]
    pos += 1
    out = []
    for _ in range(count):
        ton, npi = data[pos], data[pos + 1]
        pos += 2
        nul = data.find(b"\x00", pos, pos + 21)
        if nul < 0:
            raise _cstring_error("destination_addr", 21, seq, cid)
        addr = data[pos:nul].decode("latin-1")
        (status,) = _U32.unpack_from(data, nul + 1)
        pos = nul + 5
        out.append(UnsuccessSme(ton, npi, addr, status))
    return tuple(out), pos


def _encode_unsuccess(value: tuple[Any, ...]) -> bytes:
    if len(value) > 255:
        raise EncodeError(f"unsuccess_sme: {len(value)} entries, at most 255 allowed")
    parts = [bytes((len(value),))]
    for sme in value:
        parts.append(bytes((sme.dest_addr_ton, sme.dest_addr_npi)))
        parts.append(_encode_cstring(sme.destination_addr, 21, "destination_addr"))
        parts.append(_U32.pack(sme.error_status_code))
    return b"".join(parts)


def _diagnose(pdu: object, fields: tuple[Field, ...]) -> None:
    """Find the field the fast encoder choked on and raise an EncodeError that names it."""
    for field in fields:
        value = getattr(pdu, field.name)
        if field.kind is Kind.CSTRING:
            _encode_cstring(value, field.size, field.name)
        elif field.kind is Kind.U8 and not (isinstance(value, int) and 0 <= value <= 0xFF):
            raise EncodeError(f"{field.name}: {value!r} is not an integer in 0..255")
        elif field.kind is Kind.U32 and not (isinstance(value, int) and 0 <= value <= 0xFFFFFFFF):
            raise EncodeError(f"{field.name}: {value!r} is not an integer in 0..2^32-1")
        elif field.kind is Kind.SHORT_MESSAGE and not (
            isinstance(value, bytes) and len(value) <= 0xFF
        ):
            raise EncodeError(f"{field.name}: must be bytes of at most 255 octets")
    for tlv in getattr(pdu, "tlvs", ()):
        if not isinstance(tlv, Tlv) or not isinstance(tlv.value, bytes):
            raise EncodeError(f"tlvs: {tlv!r} is not a Tlv with a bytes value")


def _groups(fields: tuple[Field, ...]) -> list[list[Field]]:
    """Split the layout into runs of 1-octet integers and single other fields."""
    groups: list[list[Field]] = []
    for field in fields:
        if field.kind is Kind.U8 and groups and groups[-1][0].kind is Kind.U8:
            groups[-1].append(field)
        else:
            groups.append([field])
    return groups


def slot_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """The slot descriptor's ``__set__`` for ``name``: it writes a frozen instance's slot."""
    for klass in cls.__mro__:
        descriptor = klass.__dict__.get(name)
        if descriptor is not None and hasattr(descriptor, "__set__"):
            setter: Callable[[Any, Any], None] = descriptor.__set__
            return setter
    raise AssertionError(f"{cls.__name__}.{name} is not a slot")


def build_codec(
    cls: type, command_id: int, fields: tuple[Field, ...]
) -> tuple[Callable[..., Any], Callable[..., bytes], Callable[..., Any], Callable[..., Any]]:
    """Compile a body layout into its exact and its fast codec functions.

    Returns ``(decode, encode, decode_fast, encode_fast)``. The exact pair is described in
    :func:`_build_exact`. The fast pair takes the same arguments but works on whole PDUs and
    returns None instead of raising whenever anything is out of the ordinary; the caller then
    runs the exact pair, which raises the precise error (see :func:`_build_fast`).
    """
    decode, encode = _build_exact(cls, command_id, fields)
    decode_fast, encode_fast = _build_fast(cls, command_id, fields)
    return decode, encode, decode_fast, encode_fast


def _build_exact(  # noqa: PLR0915 - a straight-line generator reads best in one piece
    cls: type, command_id: int, fields: tuple[Field, ...]
) -> tuple[Callable[..., Any], Callable[..., bytes]]:
    """Compile a body layout into ``decode(data, status, seq)`` and ``encode(pdu)``.

    ``decode`` reads the body of ``data`` (a whole PDU, header included, as bytes) and returns
    the constructed instance; ``encode`` returns the body octets (TLVs included).

    The instance is built by writing its slots directly rather than through the dataclass
    ``__init__``: a frozen dataclass's ``__init__`` costs about 0.2 us per field, more than
    the rest of decoding put together. Every field is written, so the result is exactly what
    ``cls(**fields)`` would build.
    """
    class_name = cls.__name__
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "cls": cls,
        "set_sequence_number": slot_setter(cls, "sequence_number"),
        "set_command_status": slot_setter(cls, "command_status"),
        "set_tlvs": slot_setter(cls, "tlvs"),
        "set_body_omitted": slot_setter(cls, "body_omitted"),
        "Struct": struct.Struct,
        "struct_error": struct.error,
        "decode_tlvs": decode_tlvs,
        "encode_tlvs": encode_tlvs,
        "cstring_error": _cstring_error,
        "short_error": _short_error,
        "encode_cstring": _encode_cstring,
        "EncodeError": EncodeError,
        "U32": _U32,
        "decode_dest_addresses": _decode_dest_addresses,
        "encode_dest_addresses": _encode_dest_addresses,
        "decode_unsuccess": _decode_unsuccess,
        "encode_unsuccess": _encode_unsuccess,
        "diagnose": _diagnose,
        "layout": fields,
    }
    dec = [
        "def decode(data, command_status, sequence_number):",
        "    pos = 16",
        f"    cid = {command_id}",
        "    try:",
    ]
    enc = ["        parts = ["]
    pre = ["def encode(pdu):", "    nul = b'\\x00'", "    try:"]
    names: list[str] = []
    for index, group in enumerate(_groups(fields)):
        first = group[0]
        if first.kind is Kind.U8:
            group_names = [f.name for f in group]
            names.extend(group_names)
            if len(group) == 1:
                dec.append(f"        {first.name} = data[pos]")
                dec.append("        pos += 1")
                enc.append(f"            bytes((pdu.{first.name},)),")
            else:
                namespace[f"S{index}"] = struct.Struct("!" + "B" * len(group))
                dec.append(f"        {', '.join(group_names)} = S{index}.unpack_from(data, pos)")
                dec.append(f"        pos += {len(group)}")
                args = ", ".join(f"pdu.{n}" for n in group_names)
                enc.append(f"            S{index}.pack({args}),")
            continue
        name = first.name
        names.append(name)
        if first.kind is Kind.U32:
            dec.append(f"        ({name},) = U32.unpack_from(data, pos)")
            dec.append("        pos += 4")
            enc.append(f"            U32.pack(pdu.{name}),")
        elif first.kind is Kind.CSTRING:
            dec.append(f"        nul = data.find(b'\\x00', pos, pos + {first.size})")
            dec.append("        if nul < 0:")
            dec.append(
                f"            raise cstring_error({name!r}, {first.size}, sequence_number, cid)"
            )
            dec.append(f"        {name} = data[pos:nul].decode('latin-1')")
            dec.append("        pos = nul + 1")
            # Inlined encode_cstring (its checks, its error) for the common case; any
            # exception falls back to encode_cstring below, which raises the precise error.
            pre.append(f"        {name} = pdu.{name}.encode('latin-1')")
            pre.append(f"        if len({name}) >= {first.size} or b'\\x00' in {name}:")
            pre.append(f"            encode_cstring(pdu.{name}, {first.size}, {name!r})")
            enc.append(f"            {name}, nul,")
        elif first.kind is Kind.SHORT_MESSAGE:
            dec.append("        sm_length = data[pos]")
            dec.append("        pos += 1")
            dec.append(f"        {name} = data[pos:pos + sm_length]")
            dec.append(f"        if len({name}) != sm_length:")
            dec.append("            raise short_error(sequence_number, cid)")
            dec.append("        pos += sm_length")
            enc.append(f"            bytes((len(pdu.{name}),)),")
            enc.append(f"            pdu.{name},")
        elif first.kind is Kind.DEST_ADDRESSES:
            dec.append(
                f"        {name}, pos = decode_dest_addresses(data, pos, sequence_number, cid)"
            )
            enc.append(f"            encode_dest_addresses(pdu.{name}),")
        else:
            assert first.kind is Kind.UNSUCCESS_SMES
            dec.append(f"        {name}, pos = decode_unsuccess(data, pos, sequence_number, cid)")
            enc.append(f"            encode_unsuccess(pdu.{name}),")
    if not names:
        dec.append("        pass")
    dec += [
        "    except (IndexError, struct_error):",
        "        raise short_error(sequence_number, cid) from None",
        "    tlvs = decode_tlvs(data, pos, sequence_number, cid)",
        "    obj = new(cls)",
        "    set_sequence_number(obj, sequence_number)",
        "    set_command_status(obj, command_status)",
        "    set_tlvs(obj, tlvs)",
        "    set_body_omitted(obj, False)",
    ]
    for name in names:
        namespace[f"set_{name}"] = slot_setter(cls, name)
        dec.append(f"    set_{name}(obj, {name})")
    dec.append("    return obj")
    enc += [
        "            encode_tlvs(pdu.tlvs) if pdu.tlvs else b'',",
        "        ]",
        "    except (struct_error, ValueError, TypeError, OverflowError, AttributeError) as exc:",
        "        if isinstance(exc, EncodeError):",
        "            raise",
        "        diagnose(pdu, layout)",
        f"        raise EncodeError(f'{class_name}: a field is out of range: {{exc}}') from exc",
        "    return b''.join(parts)",
    ]
    enc = pre + enc
    source = "\n".join(dec) + "\n\n" + "\n".join(enc) + "\n"
    code = compile(source, f"<smppgw.codec {class_name}>", "exec")
    exec(code, namespace)  # noqa: S102 - source is generated above from constant layouts
    return namespace["decode"], namespace["encode"]


_HEADER = struct.Struct("!IIII")


_FAST_KINDS = (Kind.U8, Kind.CSTRING)


def _fast_layout(fields: tuple[Field, ...]) -> bool:
    """Whether the fast codec handles this layout: 1-octet integers and C-octet strings, then
    optionally a short_message last (the address lists of submit_multi take the exact path)."""
    if fields and fields[-1].kind is Kind.SHORT_MESSAGE:
        fields = fields[:-1]
    return all(field.kind in _FAST_KINDS for field in fields)


def builder(cls: type) -> type:
    """A private subclass of the frozen, slotted ``cls`` whose instances take plain assignment.

    The generated decoders create an instance of it, assign every slot (a specialised slot
    store, about ten times cheaper than calling the slot descriptor's ``__set__``) and then set
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


def _build_fast(
    cls: type, command_id: int, fields: tuple[Field, ...]
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Compile the fast ``decode(data, status, seq)`` and ``encode(pdu)`` of a layout.

    Decoding matches the mandatory fields with one regular expression over the PDU read as
    Latin-1 (one group per field: a C-octet string is up to ``size - 1`` non-NUL characters and
    a NUL, a 1-octet integer any one character), so the whole scan runs in C and each string
    field comes out already decoded. The TLV loop checks its bounds once, at the end.

    Encoding joins the strings and the integers (as ``chr``) into one ``str`` and encodes it
    once; the length and NUL checks of the C-octet strings are plain comparisons.

    Both return None on anything unusual (no match, a truncated field, a value out of range,
    a wrong type); the exact functions then redo the work and raise the precise error. The two
    paths accept exactly the same inputs and produce the same results.
    """
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "cls": cls,
        "Builder": builder(cls),
        "Tlv": Tlv,
        "TlvBuilder": _TLV_BUILDER,
        "tlv_head": _TLV_HEADER.unpack_from,
        "tlv_pack": _TLV_HEADER.pack,
        "header_pack": _HEADER.pack,
        "struct_error": struct.error,
        "join": "".join,
    }
    if _fast_layout(fields):
        if fields:
            pattern = "".join(_PATTERN[f.kind].format(f.size - 1) for f in fields)
            namespace["match"] = re.compile(pattern, re.DOTALL).match
        source = _fast_decode_source(fields) + "\n" + _fast_encode_source(command_id, fields)
    else:
        source = (
            "def decode(data, command_status, sequence_number):\n    return None\n\n"
            "def encode(pdu):\n    return None\n"
        )
    code = compile(source, f"<smppgw.codec {cls.__name__} fast>", "exec")
    exec(code, namespace)  # noqa: S102 - source is generated here from constant layouts
    return namespace["decode"], namespace["encode"]


# The regular expression group of each kind of field; {0} is the C-octet string's size - 1.
_PATTERN = {
    Kind.U8: "(.)",
    Kind.CSTRING: "([^\\x00]{{0,{0}}})\\x00",
    Kind.SHORT_MESSAGE: "(.)",  # sm_length; the octets follow the match
}

_FAST_TLVS = """\
    end = len(data)
    if pos == end:
        tlvs = ()
    else:
        if pos > end:
            return None
        out = []
        try:
            while pos < end:
                tag, length = tlv_head(data, pos)
                start = pos + 4
                pos = start + length
                tlv = new(TlvBuilder)
                tlv.tag = tag
                tlv.value = data[start:pos]
                tlv.__class__ = Tlv
                out.append(tlv)
        except struct_error:
            return None
        if pos != end:
            return None
        tlvs = tuple(out)
    obj = new(Builder)
    obj.sequence_number = sequence_number
    obj.command_status = command_status
    obj.tlvs = tlvs
    obj.body_omitted = False
"""


def _fast_decode_source(fields: tuple[Field, ...]) -> str:
    lines = ["def decode(data, command_status, sequence_number):"]
    groups = [f.name for f in fields]
    sm_name = None
    if fields and fields[-1].kind is Kind.SHORT_MESSAGE:
        sm_name = groups[-1]
        groups[-1] = "sm_length"
    if groups:
        lines += [
            "    m = match(data.decode('latin-1'), 16)",
            "    if m is None:",
            "        return None",
            f"    {', '.join(groups)}, = m.groups()",
            "    pos = m.end()",
        ]
    else:
        lines.append("    pos = 16")
    if sm_name is not None:
        lines += [
            "    sm_length = ord(sm_length)",
            f"    {sm_name} = data[pos:pos + sm_length]",
            "    pos += sm_length",
        ]
    lines.append(_FAST_TLVS)
    for field in fields:
        value = f"ord({field.name})" if field.kind is Kind.U8 else field.name
        lines.append(f"    obj.{field.name} = {value}")
    lines += ["    obj.__class__ = cls", "    return obj\n"]
    return "\n".join(lines)


def _fast_encode_source(command_id: int, fields: tuple[Field, ...]) -> str:
    lines = ["def encode(pdu):", "    try:"]
    checks: list[str] = []
    pieces: list[str] = []
    body = ["head"]
    for field in fields:
        name = field.name
        if field.kind is Kind.U8:
            pieces.append(f"chr(pdu.{name})")
            continue
        lines.append(f"        {name} = pdu.{name}")
        if field.kind is Kind.CSTRING:
            checks.append(f"len({name}) > {field.size - 1} or '\\0' in {name}")
            pieces.append(f"{name}, '\\0'")
        else:  # the short_message, last
            pieces.append(f"chr(len({name}))")
            body.append(name)
    if checks:
        lines += ["        if " + " or ".join(checks) + ":", "            return None"]
    head = f"join(({', '.join(pieces)},)).encode('latin-1')" if pieces else "b''"
    lines += [
        f"        head = {head}",
        "        tlvs = pdu.tlvs",
        "        if tlvs:",
        f"            parts = [{', '.join(body)}]",
        "            for tlv in tlvs:",
        "                value = tlv.value",
        "                parts.append(tlv_pack(tlv.tag, len(value)))",
        "                parts.append(value)",
        "            body = b''.join(parts)",
        "        else:",
        f"            body = {' + '.join(body)}",
        "        return (",
        f"            header_pack(16 + len(body), {command_id}, pdu.command_status,",
        "                        pdu.sequence_number) + body",
        "        )",
        "    except (ValueError, TypeError, OverflowError, AttributeError, struct_error):",
        "        return None",
    ]
    return "\n".join(lines) + "\n"
