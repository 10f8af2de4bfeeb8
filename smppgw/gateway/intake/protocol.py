"""The intake's wire protocol: error codes, the typed requests, parsing a line with limits,
and encoding a reply line.

A request line is read twice: first for its envelope (``op``, ``req``, ``messages``), then
by the decoder of its op, which refuses unknown fields. Nesting is bounded before any
decoding (:data:`MAX_DEPTH`), and every error names the field it is about.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Literal

import msgspec

from smppgw.codec.errors import SmppError
from smppgw.gateway.intake.admin_requests import ADMIN_OPS, AdminRequest

__all__ = [
    "MAX_DEPTH",
    "MESSAGE_DECODER",
    "ClusterRequest",
    "ErrorCode",
    "IntakeError",
    "MessageFields",
    "PingRequest",
    "ReloadRequest",
    "Request",
    "RequestError",
    "StatsRequest",
    "StatusRequest",
    "SubmitBatch",
    "SubmitOne",
    "SubscribeRequest",
    "TraceRequest",
    "UnmatchedRequest",
    "error_line",
    "parse_request",
    "reply_line",
    "validation_error",
]


class ErrorCode(enum.StrEnum):
    """The ``error`` field of a failed reply."""

    INVALID_REQUEST = "invalid_request"  # malformed JSON, wrong type, bad value
    TOO_LONG = "too_long"  # the text needs more parts than max_parts
    UNKNOWN_FIELD = "unknown_field"  # a field this op does not have (typo protection)
    INVALID_NUMBER = "invalid_number"  # to/from not in the accepted format
    OVERLOADED = "overloaded"  # too many messages awaiting storage: retry later
    UNKNOWN_OP = "unknown_op"
    LINE_TOO_LONG = "line_too_long"
    LINE_TIMEOUT = "line_timeout"  # a line left unfinished for line_timeout: connection closed
    TOO_MANY_CLIENTS = "too_many_clients"  # max_clients are connected: connection closed
    NOT_FOUND = "not_found"  # status of an unknown id/custom
    STORAGE_FULL = "storage_full"  # the gateway's disk is full; nothing was accepted
    STORE_UNAVAILABLE = "store_unavailable"  # the shared store cannot be reached; nothing accepted
    INTERNAL = "internal"  # the backend failed; nothing was accepted
    FORBIDDEN = "forbidden"  # an admin op from a client not allowed to (admin_group, admin_path)
    INVALID_CONFIG = "invalid_config"  # reload: the file does not load; the running one stays


class IntakeError(SmppError):
    """The intake cannot start (the socket is in use by a live daemon, or not a socket)."""


class RequestError(SmppError):
    """A request (or one message of a batch) that cannot be accepted; becomes an error reply."""

    def __init__(self, code: ErrorCode, message: str, **details: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details  # extra fields of the error reply (``last`` of subscribe)
        self.req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET  # the request's ``req``


# --- request models -------------------------------------------------------------------------

_Priority = Annotated[int, msgspec.Meta(ge=0, le=3)]
_MaxParts = Annotated[int, msgspec.Meta(ge=1, le=255)]
_Custom = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# Cursors are SQLite INTEGERs: signed 64 bits.
_Cursor = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class _Envelope(msgspec.Struct):
    """The fields every request line is first read for (unknown fields ignored here)."""

    op: str | None = None
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    messages: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class MessageFields(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, rename={"from_": "from"}
):
    """One message as a client writes it."""

    to: str
    from_: str | None = None
    text: str | None = None
    hex: str | None = None
    coding: Literal["auto", "gsm", "latin1", "ucs2"] = "auto"
    pe_id: str | None = None
    template_id: str | None = None
    tm_id: str | None = None
    flash: bool = False
    registered_delivery: bool | None = None
    validity: int | str | None = None
    schedule: int | str | None = None
    max_parts: _MaxParts | None = None
    custom: _Custom | None = None
    priority: _Priority = 0
    transliterate: bool | None = None


class SubmitOne(MessageFields, kw_only=True):
    """One message of ``submit`` or ``preview`` (``op`` says which)."""

    op: str
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class SubmitBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A ``messages`` batch of ``submit`` or ``preview`` (``op`` says which)."""

    op: str
    messages: list[msgspec.Raw]  # each decoded on its own: one bad message rejects only itself
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class StatusRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    id: str | None = None
    custom: str | None = None
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class SubscribeRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    cursor: _Cursor | None = None
    events: list[str] | None = None
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class PingRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class UnmatchedRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class StatsRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class TraceRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``trace``: the wire trace on (for ``bind``, ``server`` or all) or off; without ``on``,
    its state."""

    op: str
    on: bool | None = None
    server: str | None = None
    bind: str | None = None
    reveal: bool = False
    duration: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class ClusterRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class ReloadRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


Request = (
    SubmitOne
    | SubmitBatch
    | StatusRequest
    | SubscribeRequest
    | PingRequest
    | UnmatchedRequest
    | StatsRequest
    | TraceRequest
    | ClusterRequest
    | AdminRequest
    | ReloadRequest
)
_MESSAGE_OPS = frozenset({"submit", "preview"})  # one message, or a batch in ``messages``
_OPS: dict[str, type[Request]] = {
    "status": StatusRequest,
    "subscribe": SubscribeRequest,
    "ping": PingRequest,
    "unmatched": UnmatchedRequest,
    "stats": StatsRequest,
    "trace": TraceRequest,
    "cluster": ClusterRequest,
    **ADMIN_OPS,
    "reload": ReloadRequest,
}
_ENVELOPE = msgspec.json.Decoder(_Envelope)
_DECODERS: dict[type[Request], msgspec.json.Decoder[Request]] = {
    t: msgspec.json.Decoder(t)
    for t in (
        SubmitOne,
        SubmitBatch,
        StatusRequest,
        SubscribeRequest,
        PingRequest,
        UnmatchedRequest,
        StatsRequest,
        TraceRequest,
        ClusterRequest,
        *ADMIN_OPS.values(),
        ReloadRequest,
    )
}
MESSAGE_DECODER = msgspec.json.Decoder(MessageFields)
_ENCODER = msgspec.json.Encoder()

MAX_DEPTH = 32
"""Arrays and objects nest at most this deep in a request line (``req`` included). The JSON
decoder recurses on nesting; a line of ten thousand ``[`` must be a clear error, not a stack
overflow."""
# A JSON string, escapes included (the unrolled form: no backtracking on long strings).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# A high surrogate escape not followed by a low one (the decoder reports it as truncation).
_LONE_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")

_AT = re.compile(r"^(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")


def validation_error(exc: msgspec.ValidationError, where: str = "") -> RequestError:
    """Turn msgspec's message into ours, naming the field (``messages[1].to: ...``).

    ``where`` is the path of the decoded value within the request (``messages[1]``).
    """
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any string
    text = match["text"]
    path = (match["path"] or "").lstrip(".")
    if where:
        path = f"{where}.{path}" if path else where
    if unknown := _UNKNOWN.match(text):
        name = f"{path}.{unknown['name']}" if path else unknown["name"]
        return RequestError(ErrorCode.UNKNOWN_FIELD, f"{name}: unknown field")
    if missing := _MISSING.match(text):
        name = f"{path}.{missing['name']}" if path else missing["name"]
        return RequestError(ErrorCode.INVALID_REQUEST, f"{name}: required")
    if not path:
        return RequestError(ErrorCode.INVALID_REQUEST, f"request: {text[:1].lower()}{text[1:]}")
    return RequestError(ErrorCode.INVALID_REQUEST, f"{path}: {text[:1].lower()}{text[1:]}")


def parse_request(line: bytes) -> tuple[Request, msgspec.Raw | msgspec.UnsetType]:
    """Decode one request line into its typed request.

    Returns:
        The request and its ``req`` value (UNSET when absent).

    Raises:
        RequestError: with the ``req`` value (when readable) in its ``req`` attribute.
    """
    _check_depth(line)
    if not line.isascii():  # the common all-ASCII line costs one scan in C
        try:
            line.decode()
        except UnicodeDecodeError as exc:
            error = RequestError(
                ErrorCode.INVALID_REQUEST, f"malformed JSON: invalid UTF-8 at byte {exc.start}"
            )
            error.req = _readable_req(line)
            raise error from None
    try:
        envelope = _ENVELOPE.decode(line)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from exc
    except msgspec.DecodeError as exc:
        raise RequestError(
            ErrorCode.INVALID_REQUEST, f"malformed JSON: {_decode_problem(exc, line)}"
        ) from exc
    try:
        kind = _request_kind(envelope)
        try:
            return _DECODERS[kind].decode(line), envelope.req
        except msgspec.ValidationError as exc:
            raise validation_error(exc) from exc
    except RequestError as exc:
        exc.req = envelope.req
        raise


def _check_depth(line: bytes) -> None:
    """Refuse a line nesting arrays/objects deeper than :data:`MAX_DEPTH`."""
    if line.count(b"[") + line.count(b"{") <= MAX_DEPTH:
        return  # cannot nest deeper: the usual case, two scans in C
    depth = 0
    for bracket in _JSON_STRING.sub(b"", line).translate(None, _NOT_BRACKETS):
        if bracket in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise RequestError(
                    ErrorCode.INVALID_REQUEST, f"request: nested deeper than {MAX_DEPTH} levels"
                )
        else:
            depth -= 1


def _decode_problem(exc: msgspec.DecodeError, line: bytes) -> str:
    """The decoder's complaint, except that it calls a lone high surrogate escape truncation."""
    problem = str(exc)
    if problem == "Input data was truncated" and (lone := _LONE_SURROGATE.search(line)):
        return f"unpaired UTF-16 surrogate escape (byte {lone.start()})"
    return problem


def _readable_req(line: bytes) -> msgspec.Raw | msgspec.UnsetType:
    """The ``req`` of a line that is not valid UTF-8, if ``req`` itself is (else UNSET)."""
    try:
        req = _ENVELOPE.decode(line).req
    except (msgspec.DecodeError, UnicodeDecodeError):
        return msgspec.UNSET
    if isinstance(req, msgspec.Raw):
        try:
            bytes(req).decode()
        except UnicodeDecodeError:
            return msgspec.UNSET
    return req


def _request_kind(envelope: _Envelope) -> type[Request]:
    if envelope.op is None:
        raise RequestError(ErrorCode.INVALID_REQUEST, "op: required")
    if envelope.op in _MESSAGE_OPS:
        if isinstance(envelope.messages, msgspec.UnsetType):
            return SubmitOne
        return SubmitBatch
    if envelope.op in _OPS:
        return _OPS[envelope.op]
    raise RequestError(
        ErrorCode.UNKNOWN_OP,
        f"op: unknown operation {envelope.op!r} "
        "(submit, preview, status, subscribe, ping, unmatched, stats, trace, cluster, pause,"
        " resume, cancel, retry, history, list, reload)",
    )


# --- replies --------------------------------------------------------------------------------


def reply_line(req: msgspec.Raw | msgspec.UnsetType, **fields: object) -> bytes:
    """One reply line: ``ok`` (true unless given), the request's ``req`` if it had one, then
    ``fields``."""
    body: dict[str, object] = {"ok": fields.pop("ok", True)}
    if not isinstance(req, msgspec.UnsetType):
        body["req"] = req
    body.update(fields)
    return _ENCODER.encode(body) + b"\n"


def error_line(
    req: msgspec.Raw | msgspec.UnsetType, code: ErrorCode, message: str, **details: object
) -> bytes:
    """One error reply line: ``{"ok": false, "error": code, "message": message, ...}``."""
    return reply_line(req, ok=False, error=code, message=message, **details)
