"""The typed requests of the operators' ops (:mod:`smppgw.gateway.intake.admin`)."""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

__all__ = [
    "ADMIN_OPS",
    "AdminRequest",
    "CancelRequest",
    "FilterFields",
    "HistoryRequest",
    "ListRequest",
    "PauseRequest",
    "RetryRequest",
    "Time",
]

_Limit = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
_Page = Annotated[int, msgspec.Meta(ge=1, le=1000)]
_Key = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Time = int | float | str
"""Unix seconds, or an ISO 8601 time (UTC unless it says otherwise)."""


class FilterFields(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``filter`` of ``cancel`` and ``retry``."""

    state: str | list[str] | None = None
    to: str | None = None
    custom_prefix: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    since: Time | None = None
    until: Time | None = None


class PauseRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``pause`` or ``resume`` (``op`` says which), of one server or all."""

    op: str
    server: str | None = None
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class CancelRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    id: str | list[str] | None = None
    custom: str | None = None
    filter: FilterFields | None = None
    limit: _Limit = 1000
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class RetryRequest(CancelRequest, kw_only=True):
    pass


class HistoryRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    id: str | None = None
    custom: str | None = None
    limit: _Limit = 1000
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class ListRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    op: str
    state: str | list[str] | None = None
    to: str | None = None
    custom_prefix: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    since: Time | None = None
    until: Time | None = None
    limit: _Page = 100
    after: _Key | None = None
    req: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


AdminRequest = PauseRequest | CancelRequest | RetryRequest | HistoryRequest | ListRequest
ADMIN_OPS: Final[dict[str, type[AdminRequest]]] = {
    "pause": PauseRequest,
    "resume": PauseRequest,
    "cancel": CancelRequest,
    "retry": RetryRequest,
    "history": HistoryRequest,
    "list": ListRequest,
}
