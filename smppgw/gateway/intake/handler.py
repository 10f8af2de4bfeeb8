"""Answering one request line: parse it, judge it, call the backend, encode the reply.

:class:`RequestHandler` holds what every connection shares: the backend, the message rules,
and the count of messages awaiting storage over all connections (``max_pending``). It knows
nothing of sockets; a connection gives it lines and writes back the :class:`Reply` bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import msgspec

from smppgw import __version__
from smppgw.gateway.events import stream_line
from smppgw.gateway.intake.admin import AdminBackend, Peer, answer_admin, check_allowed
from smppgw.gateway.intake.admin_requests import (
    AdminRequest,
    CancelRequest,
    HistoryRequest,
    ListRequest,
    PauseRequest,
)
from smppgw.gateway.intake.backend import (
    Backend,
    BackendOverloadedError,
    BackendStorageFullError,
    BackendStoreUnavailableError,
    SubmitRequest,
    SubmitResult,
)
from smppgw.gateway.intake.messages import MessageRules, coding_name, preview_split
from smppgw.gateway.intake.protocol import (
    MESSAGE_DECODER,
    ClusterRequest,
    ErrorCode,
    MessageFields,
    PingRequest,
    ReloadRequest,
    Request,
    RequestError,
    StatsRequest,
    StatusRequest,
    SubmitBatch,
    SubmitOne,
    SubscribeRequest,
    TraceRequest,
    UnmatchedRequest,
    error_line,
    parse_request,
    reply_line,
    validation_error,
)
from smppgw.gateway.intake.settings import IntakeSettings

__all__ = ["Reply", "RequestHandler", "StartStream"]

logger = logging.getLogger("smppgw.gateway.intake")

TraceSwitch = Callable[[TraceRequest], dict[str, object]]
"""``trace(request)``: switch the wire trace (or only read it); the reply's fields."""

StartStream = Callable[[int, frozenset[str]], None]
"""``stream(cursor, types)``: start writing the events after ``cursor`` to the client."""


@dataclass(slots=True)
class Reply:
    """One answered request: the reply line, and what the metrics count it as."""

    op: str
    data: bytes
    ok: bool
    after: Callable[[], None] | None = None  # run once the reply is written (start a stream)


def _result_fields(result: SubmitResult) -> dict[str, object]:
    return {"id": result.id, "parts": result.parts, "duplicate": result.duplicate}


class _EventHead(msgspec.Struct):
    """The one field of a stored event a subscription filters on."""

    event: str = ""


_EVENT_HEAD = msgspec.json.Decoder(_EventHead)


class RequestHandler:
    """The replies to a connection's request lines (see :mod:`smppgw.gateway.intake`).

    Args:
        backend: stores messages and serves status and events.
        settings: the limits (``max_batch``, ``max_pending``, ``event_batch``).
        rules: judges each message.
        clock: the time now in seconds since the epoch (absolute times must be later).
        health: what ``ping`` reports: None when the gateway can take messages, else why not.
        stats: the fields of a ``stats`` reply (None: the op is refused as unknown).
        trace: switches the wire trace (None: the ``trace`` op is refused as unknown).
        cluster: the fields of a ``cluster`` reply (None, or answering None: a lone instance).
        admin: serves the operators' ops (None: they are refused as unknown).
        reload: reads the configuration file again and applies it; the fields of a
            ``reload`` reply, or RequestError ``invalid_config`` (None: the op is refused as
            unknown).
    """

    def __init__(
        self,
        backend: Backend,
        settings: IntakeSettings,
        rules: MessageRules,
        *,
        clock: Callable[[], float],
        health: Callable[[], str | None],
        stats: Callable[[], Awaitable[dict[str, object]]] | None = None,
        trace: TraceSwitch | None = None,
        cluster: Callable[[], dict[str, object] | None] | None = None,
        admin: AdminBackend | None = None,
        reload: Callable[[], Awaitable[dict[str, object]]] | None = None,
    ) -> None:
        self._backend = backend
        self._trace = trace
        self._admin = admin
        self._stats = stats
        self._cluster = cluster
        self._reload = reload
        self._settings = settings
        self._rules = rules
        self._clock = clock
        self._health = health
        self._pending = 0

    def apply(self, settings: IntakeSettings) -> None:
        """Take new limits and message defaults for the requests from now on."""
        self._settings = settings
        self._rules = dataclasses.replace(self._rules, defaults=settings.defaults)

    async def answer(self, line: bytes, stream: StartStream, peer: Peer | None = None) -> Reply:
        """The reply to one line. ``stream(cursor, types)`` starts an event subscription;
        ``peer`` is the client (who may use the admin ops)."""
        req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
        op = "invalid"
        try:
            request, req = parse_request(line)
            op = request.op
            return await self._dispatch(request, req, stream, peer)
        except RequestError as exc:
            if isinstance(req, msgspec.UnsetType):
                req = exc.req  # the line failed to parse: its req, if readable, is here
            return Reply(op, error_line(req, exc.code, exc.message, **exc.details), ok=False)
        except BackendOverloadedError as exc:
            return Reply(
                op, error_line(req, ErrorCode.OVERLOADED, str(exc) or "overloaded"), ok=False
            )
        except BackendStorageFullError as exc:
            return Reply(op, error_line(req, ErrorCode.STORAGE_FULL, str(exc)), ok=False)
        except BackendStoreUnavailableError as exc:
            return Reply(op, error_line(req, ErrorCode.STORE_UNAVAILABLE, str(exc)), ok=False)
        except Exception:
            logger.exception("intake: %s request failed", op)
            return Reply(
                op,
                error_line(req, ErrorCode.INTERNAL, "internal error; see the gateway log"),
                ok=False,
            )

    async def _dispatch(
        self,
        request: Request,
        req: msgspec.Raw | msgspec.UnsetType,
        stream: StartStream,
        peer: Peer | None,
    ) -> Reply:
        if isinstance(
            request, PauseRequest | CancelRequest | HistoryRequest | ListRequest | ReloadRequest
        ):
            return await self._admin_op(request, req, peer)
        if isinstance(request, SubmitOne):
            return await self._one_message(request, req)
        if isinstance(request, SubmitBatch):
            return await self._submit_batch(request, req)
        if isinstance(request, StatusRequest):
            if (request.id is None) == (request.custom is None):
                raise RequestError(ErrorCode.INVALID_REQUEST, "id: give exactly one of id, custom")
            found = await self._backend.status(message_id=request.id, custom=request.custom)
            if found is None:
                key = (
                    f"id {request.id!r}" if request.id is not None else f"custom {request.custom!r}"
                )
                raise RequestError(ErrorCode.NOT_FOUND, f"no message with {key}")
            return Reply("status", reply_line(req, status=found), ok=True)
        if isinstance(request, SubscribeRequest):
            last = await self._backend.last_cursor()
            start = last if request.cursor is None else request.cursor
            if start > last:
                # Cursors only grow, so the client's cursor comes from another store (a
                # restored or replaced database): waiting would skip events silently.
                raise RequestError(
                    ErrorCode.INVALID_REQUEST,
                    f"cursor: {start} is beyond the newest event ({last}); subscribe again "
                    f"with a cursor of at most {last}",
                    last=last,
                )
            types = frozenset(request.events or ())
            return Reply(
                "subscribe",
                reply_line(req, cursor=start, last=last),
                ok=True,
                after=lambda: stream(start, types),
            )
        return await self._inspect(request, req)

    async def _admin_op(
        self,
        request: AdminRequest | ReloadRequest,
        req: msgspec.Raw | msgspec.UnsetType,
        peer: Peer | None,
    ) -> Reply:
        """The operators' ops, ``reload`` among them (``admin_group``, ``admin_path``)."""
        settings = self._settings
        if isinstance(request, ReloadRequest):
            if self._reload is None:
                raise RequestError(ErrorCode.UNKNOWN_OP, "op: reload: this server has no file")
            check_allowed(peer, admin_group=settings.admin_group, admin_path=settings.admin_path)
            return Reply("reload", reply_line(req, **await self._reload()), ok=True)
        if self._admin is None:
            raise RequestError(
                ErrorCode.UNKNOWN_OP, f"op: {request.op}: this server has no admin ops"
            )
        check_allowed(peer, admin_group=settings.admin_group, admin_path=settings.admin_path)
        return Reply(request.op, await answer_admin(self._admin, request, req, peer), ok=True)

    async def _inspect(
        self,
        request: UnmatchedRequest | StatsRequest | ClusterRequest | PingRequest | TraceRequest,
        req: msgspec.Raw | msgspec.UnsetType,
    ) -> Reply:
        """The ops that look at the gateway rather than at messages."""
        if isinstance(request, TraceRequest):
            if self._trace is None:
                raise RequestError(ErrorCode.UNKNOWN_OP, "op: trace: this server has no wire trace")
            return Reply("trace", reply_line(req, **self._trace(request)), ok=True)
        if isinstance(request, UnmatchedRequest):
            count, receipts = await self._backend.unmatched(request.limit)
            return Reply("unmatched", reply_line(req, count=count, receipts=receipts), ok=True)
        if isinstance(request, StatsRequest):
            if self._stats is None:
                raise RequestError(ErrorCode.UNKNOWN_OP, "op: stats: this server keeps no figures")
            fields = await self._stats()
            if self._admin is not None:
                fields["paused"] = list(self._admin.paused())
            return Reply("stats", reply_line(req, **fields), ok=True)
        if isinstance(request, ClusterRequest):
            view = None if self._cluster is None else self._cluster()
            return Reply("cluster", reply_line(req, cluster=view), ok=True)
        return self._ping(req)

    def _ping(self, req: msgspec.Raw | msgspec.UnsetType) -> Reply:
        unhealthy = self._health()
        health: dict[str, object] = (
            {"healthy": True} if unhealthy is None else {"healthy": False, "reason": unhealthy}
        )
        if self._admin is not None:
            health["paused"] = list(self._admin.paused())
        return Reply("ping", reply_line(req, pong=True, version=__version__, **health), ok=True)

    async def _one_message(self, request: SubmitOne, req: msgspec.Raw | msgspec.UnsetType) -> Reply:
        if request.op == "preview":
            return Reply(
                "preview", reply_line(req, **self._preview(request, "", self._now())), ok=True
            )
        submit = self._rules.message(request, "", self._now())
        (result,) = await self._submit([submit])
        return Reply("submit", reply_line(req, **_result_fields(result)), ok=True)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    def _preview(self, m: MessageFields, where: str, now: dt.datetime) -> dict[str, object]:
        """The fields of a preview's reply: the message judged as a submit, then cut as the
        dispatcher will cut it. A ``too_long`` error carries the transliterated cost too."""
        transliterated = self._rules.transliterated(m, where)
        try:
            request = self._rules.message(m, where, now)
        except RequestError as exc:
            if exc.code is ErrorCode.TOO_LONG and transliterated is not None:
                exc.details["transliterated"] = transliterated
            raise
        fields: dict[str, object] = {
            "coding": coding_name(request.data_coding),
            "parts": request.parts,
            "split": preview_split(request),
        }
        if transliterated is not None:
            fields["transliterated"] = transliterated
        return fields

    async def _submit(self, requests: list[SubmitRequest]) -> Sequence[SubmitResult]:
        if self._pending + len(requests) > self._settings.max_pending:
            raise BackendOverloadedError(
                f"{self._pending} messages are awaiting storage (limit "
                f"{self._settings.max_pending}); retry later"
            )
        self._pending += len(requests)
        try:
            results = await self._backend.submit(requests)
        finally:
            self._pending -= len(requests)
        if len(results) != len(requests):
            raise RuntimeError(f"backend returned {len(results)} results for {len(requests)}")
        return results

    async def _submit_batch(
        self, request: SubmitBatch, req: msgspec.Raw | msgspec.UnsetType
    ) -> Reply:
        count = len(request.messages)
        if not 1 <= count <= self._settings.max_batch:
            raise RequestError(
                ErrorCode.INVALID_REQUEST,
                f"messages: must hold 1..{self._settings.max_batch} messages, got {count}",
            )
        results: list[dict[str, object] | None] = [None] * count
        valid: list[tuple[int, SubmitRequest]] = []
        previewed = 0
        now = self._now()
        for index, raw in enumerate(request.messages):
            where = f"messages[{index}]"
            try:
                try:
                    message = MESSAGE_DECODER.decode(raw)
                except msgspec.ValidationError as exc:
                    raise validation_error(exc, where) from exc
                if request.op == "preview":
                    results[index] = {"ok": True, **self._preview(message, f"{where}.", now)}
                    previewed += 1
                else:
                    valid.append((index, self._rules.message(message, f"{where}.", now)))
            except RequestError as exc:
                results[index] = {
                    "ok": False,
                    "error": exc.code,
                    "message": exc.message,
                    **exc.details,
                }
        if request.op == "preview":
            return Reply(
                "preview",
                reply_line(req, accepted=previewed, rejected=count - previewed, results=results),
                ok=True,
            )
        if valid:
            stored = await self._submit([m for _, m in valid])
            for (index, _), result in zip(valid, stored, strict=True):
                results[index] = {"ok": True, **_result_fields(result)}
        rejected = count - len(valid)
        return Reply(
            "submit",
            reply_line(req, accepted=len(valid), rejected=rejected, results=results),
            ok=True,
        )

    async def stream_events(
        self, writer: asyncio.StreamWriter, cursor: int, types: frozenset[str]
    ) -> None:
        """Write every event after ``cursor`` (of ``types``, if any) to ``writer``, forever."""
        backend = self._backend
        while True:
            batch = await backend.events_after(cursor, self._settings.event_batch)
            if not batch:
                await backend.wait_events(cursor)
                continue
            lines = []
            for event in batch:
                cursor = event.cursor
                if types and _EVENT_HEAD.decode(event.body).event not in types:
                    continue
                lines.append(stream_line(event.cursor, event.body))
            writer.write(b"".join(lines))  # one write (one system call) per batch
            await writer.drain()
