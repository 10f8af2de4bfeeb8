"""The intake: a Unix-socket server speaking newline-delimited JSON.

Applications write one JSON object per line and read one JSON object per line back. Every
request has an ``op`` and may carry ``req``, any JSON value echoed verbatim in the reply so a
client can match replies to requests. Ops:

``submit``
    One message (fields at the top level) or a batch (``messages: [...]``). The reply comes
    only after the backend says the messages are durably stored: an ``ok`` reply means the
    gateway owns the message. ``custom`` is the client's reference and idempotency key: a
    resubmission with the same ``custom`` returns the first message's id with
    ``duplicate: true`` and sends nothing.
``status``
    A message's status by ``id`` or ``custom``, in the ``sms:message:status`` payload shape.
``subscribe``
    Turns the connection into an event stream as well: after the ``ok`` reply every event
    after ``cursor`` (or, without one, every new event) is written as a line
    ``{"cursor": n, "event": ..., "payload": {...}}``. A client that reconnects with the last
    cursor it saw misses nothing the store still holds.
``preview``
    What a ``submit`` of the same message (or ``messages`` batch) would cost, storing nothing:
    per message its coding, parts and the text of each part, and what it would cost
    transliterated (:mod:`smppgw.codec.transliterate`) when that changes the text. Judged as
    ``submit`` judges it, with the same errors.
``ping``
    ``{"ok": true, "pong": true, "healthy": true}``; ``healthy`` is false, with a ``reason``,
    when the gateway cannot take messages (its store cannot write).
``unmatched``
    The delivery receipts that matched no message (kept, never dropped): ``count`` and the
    oldest ``limit`` (default 100) as ``receipts``.
``stats``
    The daemon's live figures (binds, rates, latency, queue, receipts, intake, webhook) as one
    JSON object, for ``smppgw top`` (:mod:`smppgw.gateway.stats_reply`).
``trace``
    The daemon's wire trace (:mod:`smppgw.gateway.trace`): ``on`` true or false, for a
    ``bind``, a ``server`` or all, with ``reveal`` and ``duration``; without ``on``, its state.
    Every reply is the state (``on``, ``scope``, ``reveal``, ``until``).
``reload``
    Reads the configuration file again and applies what can change live, as SIGHUP does
    (:mod:`smppgw.gateway.reload`): ``applied`` and ``needs_restart`` list the keys; a file
    that does not load is ``invalid_config`` with its ``errors``, and the running
    configuration stays.

Errors are replies, never disconnections: ``{"ok": false, "error": <code>, "message": <text
naming the field>}`` with the codes of :class:`ErrorCode`. A line longer than ``max_line``
bytes is discarded up to its newline and answered ``line_too_long``; a line that is not UTF-8,
or nests deeper than :data:`MAX_DEPTH`, is ``invalid_request``. Blank lines are ignored.
A batch's messages are decoded and judged one by one: a bad message rejects only itself.
A connection may pipeline requests: up to ``pipeline`` are processed concurrently, and replies
are written in request order. Connections are bounded in number (``max_clients``), in the
bytes each holds (``max_connection_buffer``: beyond it the connection is not read) and in the
time a started line may take (``line_timeout``).


The package in modules: :mod:`~smppgw.gateway.intake.protocol` (error codes, the typed
requests, parsing a line with limits), :mod:`~smppgw.gateway.intake.messages` (the rules of a
message's fields, and a preview's split), :mod:`~smppgw.gateway.intake.handler` (answering a
line), :mod:`~smppgw.gateway.intake.connection` (framing, pipelining, event streams) and
:mod:`~smppgw.gateway.intake.server` (the listener and its limits).
"""

from smppgw.gateway.intake.backend import (
    Backend,
    BackendOverloadedError,
    BackendStorageFullError,
    BackendStoreUnavailableError,
    SubmitRequest,
    SubmitResult,
)
from smppgw.gateway.intake.messages import (
    PartPreview,
    TextCoder,
    TransliteratedPreview,
    relative_time,
)
from smppgw.gateway.intake.protocol import (
    MAX_DEPTH,
    ErrorCode,
    IntakeError,
    RequestError,
    parse_request,
)
from smppgw.gateway.intake.server import IntakeServer
from smppgw.gateway.intake.settings import IntakeDefaults, IntakeSettings

__all__ = [
    "MAX_DEPTH",
    "Backend",
    "BackendOverloadedError",
    "BackendStorageFullError",
    "BackendStoreUnavailableError",
    "ErrorCode",
    "IntakeDefaults",
    "IntakeError",
    "IntakeServer",
    "IntakeSettings",
    "PartPreview",
    "RequestError",
    "SubmitRequest",
    "SubmitResult",
    "TextCoder",
    "TransliteratedPreview",
    "parse_request",
    "relative_time",
]
