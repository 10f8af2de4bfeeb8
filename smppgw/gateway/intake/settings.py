"""The intake's settings: the socket, its limits, and the defaults a message takes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smppgw.esme.numbers import NumberError, validate_sender
from smppgw.esme.settings import setting

__all__ = ["IntakeDefaults", "IntakeSettings"]


@dataclass(frozen=True, slots=True)
class IntakeDefaults:
    """Values a message takes when the request leaves them out (from ``[defaults]``)."""

    sender: str | None = None
    pe_id: str | None = None
    template_id: str | None = None
    tm_id: str | None = None
    registered_delivery: bool = True
    max_parts: int = setting(10, low=1, high=255)
    transliterate: bool = False

    @classmethod
    def problems(cls, values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Every problem of defaults made of ``values`` (field: value), as (field, problem)."""
        found = [
            (name, f"must be digits only, got {value!r}")
            for name in ("pe_id", "template_id", "tm_id")
            if (value := values.get(name)) is not None and not value.isdigit()
        ]
        sender = values.get("sender")
        if sender is not None:
            try:
                validate_sender(sender, field="sender")
            except NumberError as exc:
                found.append(("sender", exc.problem))
        return found


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    """The socket and its limits.

    ``max_line`` bounds one request line in bytes (newline excluded); ``max_pending`` bounds
    the messages awaiting storage over all connections (beyond it: ``overloaded``);
    ``pipeline`` bounds the requests of one connection processed at once, and
    ``max_connection_buffer`` the bytes of its requests not yet answered plus its replies not
    yet written (beyond either the connection is not read: back-pressure). ``max_clients``
    bounds the connections (one more is told ``too_many_clients`` and closed);
    ``line_timeout`` is how long a line may stay unfinished (seconds from its first byte).
    The operators' ops (pause, resume, cancel, retry, history, list) are taken only from a
    client in ``admin_group`` when it is set, and only on the socket ``admin_path`` (mode
    ``admin_mode``, group ``admin_group`` or else ``group``) when that is set.
    """

    path: str = setting("/run/smppgw/smppgw.sock", path=True)
    mode: int = setting(0o660, low=0, high=0o777)
    group: str | None = None
    max_line: int = setting(65536, low=1024, high=16 * 1024 * 1024)
    max_batch: int = setting(1000, low=1, high=100_000)
    max_pending: int = setting(10000, low=1, high=10_000_000)
    pipeline: int = setting(64, configurable=False)
    max_clients: int = setting(256, low=1, high=100_000)
    line_timeout: float = setting(30.0, low=0.1, high=86400)
    max_connection_buffer: int = setting(1024 * 1024, low=64 * 1024, high=1024 * 1024 * 1024)
    event_batch: int = setting(500, configurable=False)
    admin_group: str | None = None
    admin_path: str | None = setting(None, path=True)
    admin_mode: int = setting(0o660, low=0, high=0o777)
    defaults: IntakeDefaults = field(default_factory=IntakeDefaults)  # the [defaults] table

    @classmethod
    def problems(cls, values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Every problem of settings made of ``values`` (field: value), as (field, problem)."""
        path = str(values.get("path", ""))
        # sockaddr_un.sun_path holds 108 bytes including the NUL (unix(7)).
        if len(os.fsencode(path)) > 107:
            return [("path", f"a Unix socket path has at most 107 bytes, got {len(path)}")]
        return []
