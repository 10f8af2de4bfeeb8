"""The operators' ops: ``pause`` / ``resume`` sending, ``cancel`` and ``retry`` messages, a
message's ``history`` and ``list``.

Who may use them: anyone who may connect to the socket, unless ``[intake] admin_group`` names
a group (then only a client whose peer credentials, read with SO_PEERCRED, put it in that
group), and only on the separate ``admin_path`` socket when one is configured. Every operation
that changes something is told to the backend's :meth:`AdminBackend.audit` with the client's
uid and pid: it is logged and written to the event log as ``sms:admin``.
"""

from __future__ import annotations

import datetime as dt
import grp
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import msgspec

from smppgw.esme.bind_settings import UnknownServerError
from smppgw.gateway.events import AdminPayload, DeliveryState, StoredEvent
from smppgw.gateway.intake.admin_requests import (
    AdminRequest,
    CancelRequest,
    HistoryRequest,
    ListRequest,
    PauseRequest,
    RetryRequest,
    Time,
)
from smppgw.gateway.intake.protocol import ErrorCode, RequestError, reply_line
from smppgw.gateway.selection import AdminOutcome, ListPage, MessageFilter, MessageOutcome

__all__ = ["AdminBackend", "Peer", "answer_admin", "check_allowed", "peer_of"]

_STATES: Final = frozenset(s.value for s in DeliveryState)
_CANCEL_STATES: Final = ("queued", "submitted")  # what a cancel by filter looks at
_RETRY_STATES: Final = ("failed", "unknown")


@dataclass(frozen=True, slots=True)
class Peer:
    """The client at the other end of a connection: its process, user and group (from
    SO_PEERCRED; None when unknown), and whether it came through the admin socket."""

    pid: int | None = None
    uid: int | None = None
    gid: int | None = None
    admin_socket: bool = False


def peer_of(sock: socket.socket | None, *, admin_socket: bool = False) -> Peer:
    """The peer credentials of a connected Unix socket."""
    so_peercred = getattr(socket, "SO_PEERCRED", None)
    if sock is None or so_peercred is None or sock.family != socket.AF_UNIX:
        return Peer(admin_socket=admin_socket)
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, so_peercred, struct.calcsize("3i"))
    except OSError:
        return Peer(admin_socket=admin_socket)
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid, admin_socket)


class AdminBackend(Protocol):
    """What the operators' ops need of the daemon."""

    def pause(self, server: str | None) -> tuple[str, ...]:
        """Stop sending (to ``server``, or to all); returns the servers paused now.

        Raises:
            UnknownServerError: no such server.
        """
        ...

    def resume(self, server: str | None) -> tuple[str, ...]:
        """Send again (to ``server``, or to all); returns the servers still paused."""
        ...

    def paused(self) -> tuple[str, ...]:
        """The servers paused now."""
        ...

    async def cancel(self, selection: MessageFilter, limit: int) -> Sequence[MessageOutcome]: ...

    async def retry(self, selection: MessageFilter, limit: int) -> Sequence[MessageOutcome]: ...

    async def history(
        self, *, message_id: str | None, custom: str | None, limit: int
    ) -> tuple[str, Sequence[StoredEvent]] | None:
        """The message's id and its events oldest first; None when there is no such message."""
        ...

    async def list_messages(
        self, selection: MessageFilter, limit: int, after: int | None
    ) -> ListPage: ...

    async def audit(self, payload: AdminPayload) -> None:
        """Log an operator's action and write it to the event log."""
        ...


def _group_id(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise RequestError(
            ErrorCode.FORBIDDEN,
            f"admin ops are restricted to group {group!r}, which does not exist",
        ) from None


def _in_group(peer: Peer, gid: int) -> bool:
    """Whether the peer's primary or supplementary groups hold ``gid`` (the supplementary
    ones from /proc/<pid>/status, read while the client is connected)."""
    if peer.gid == gid:
        return True
    if peer.pid is None:
        return False
    try:
        with open(f"/proc/{peer.pid}/status", encoding="ascii") as status:  # noqa: PTH123
            for line in status:
                if line.startswith("Groups:"):
                    return str(gid) in line.split()[1:]
    except OSError:
        return False
    return False


def check_allowed(peer: Peer | None, *, admin_group: str | None, admin_path: str | None) -> None:
    """Refuse an admin op the peer may not use.

    Raises:
        RequestError: ``forbidden``, saying what would allow it.
    """
    if admin_path is not None and (peer is None or not peer.admin_socket):
        raise RequestError(
            ErrorCode.FORBIDDEN, f"admin ops are taken only on the admin socket {admin_path}"
        )
    if admin_group is None:
        return
    gid = _group_id(admin_group)
    if peer is None or peer.uid is None or not _in_group(peer, gid):
        who = "unknown" if peer is None or peer.uid is None else f"uid {peer.uid}"
        raise RequestError(
            ErrorCode.FORBIDDEN,
            f"admin ops are restricted to group {admin_group!r}; the client ({who}) is not in it",
        )


def _when(value: Time | None, name: str) -> float | None:
    """Unix seconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    if value is None or isinstance(value, int | float):
        return value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise RequestError(
            ErrorCode.INVALID_REQUEST,
            f"{name}: not a time: {value!r} (Unix seconds or YYYY-MM-DD[ HH:MM:SS])",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _states(value: str | list[str] | None, name: str) -> tuple[str, ...]:
    states = (value,) if isinstance(value, str) else tuple(value or ())
    for state in states:
        if state not in _STATES:
            raise RequestError(
                ErrorCode.INVALID_REQUEST,
                f"{name}: unknown state {state!r} ({', '.join(sorted(_STATES))})",
            )
    return states


def _selection(request: CancelRequest, default_states: tuple[str, ...]) -> MessageFilter:
    ids = (request.id,) if isinstance(request.id, str) else tuple(request.id or ())
    given = sum((bool(ids), request.custom is not None, request.filter is not None))
    if given != 1:
        raise RequestError(ErrorCode.INVALID_REQUEST, "id: give exactly one of id, custom, filter")
    if request.filter is None:
        return MessageFilter(ids=ids, custom=request.custom)
    f = request.filter
    selection = MessageFilter(
        states=_states(f.state, "filter.state") or default_states,
        to=f.to,
        custom_prefix=f.custom_prefix,
        since=_when(f.since, "filter.since"),
        until=_when(f.until, "filter.until"),
    )
    if not selection.described:
        raise RequestError(
            ErrorCode.INVALID_REQUEST,
            "filter: give at least one of to, custom_prefix, since, until",
        )
    return selection


def _counts(outcomes: Sequence[MessageOutcome]) -> dict[str, int]:
    counts = {o.value: 0 for o in AdminOutcome}
    for outcome in outcomes:
        counts[outcome.outcome.value] += 1
    return {k: v for k, v in counts.items() if v}


async def answer_admin(
    backend: AdminBackend,
    request: AdminRequest,
    req: msgspec.Raw | msgspec.UnsetType,
    peer: Peer | None,
) -> bytes:
    """The reply line to an admin request the peer may use."""
    uid = None if peer is None else peer.uid
    pid = None if peer is None else peer.pid
    if isinstance(request, PauseRequest):
        try:
            if request.op == "pause":
                paused = backend.pause(request.server)
            else:
                paused = backend.resume(request.server)
        except UnknownServerError as exc:
            raise RequestError(ErrorCode.INVALID_REQUEST, str(exc)) from None
        await backend.audit(AdminPayload(op=request.op, uid=uid, pid=pid, server=request.server))
        return reply_line(req, paused=list(paused))
    if isinstance(request, HistoryRequest):
        if (request.id is None) == (request.custom is None):
            raise RequestError(ErrorCode.INVALID_REQUEST, "id: give exactly one of id, custom")
        found = await backend.history(
            message_id=request.id, custom=request.custom, limit=request.limit
        )
        if found is None:
            key = f"id {request.id!r}" if request.id is not None else f"custom {request.custom!r}"
            raise RequestError(ErrorCode.NOT_FOUND, f"no message with {key}")
        message_id, events = found
        return reply_line(
            req,
            id=message_id,
            events=[{"cursor": e.cursor, **msgspec.json.decode(e.body)} for e in events],
        )
    if isinstance(request, ListRequest):
        selection = MessageFilter(
            states=_states(request.state, "state"),
            to=request.to,
            custom_prefix=request.custom_prefix,
            since=_when(request.since, "since"),
            until=_when(request.until, "until"),
        )
        page = await backend.list_messages(selection, request.limit, request.after)
        return reply_line(req, messages=page.messages, next=page.next)
    retry = isinstance(request, RetryRequest)
    selection = _selection(request, _RETRY_STATES if retry else _CANCEL_STATES)
    if retry:
        outcomes = await backend.retry(selection, request.limit)
    else:
        outcomes = await backend.cancel(selection, request.limit)
    counts = _counts(outcomes)
    await backend.audit(
        AdminPayload(op=request.op, uid=uid, pid=pid, counts=counts, filter=selection.as_dict())
    )
    return reply_line(req, counts=counts, messages=[o.as_dict() for o in outcomes])
