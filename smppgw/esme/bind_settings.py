"""The bind manager's settings: the servers, the account and the policies they share.

Invalid settings raise :class:`BindSettingsError` naming the key, at construction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smppgw.codec.errors import SmppError
from smppgw.esme.ratelimit import AdaptiveRate, TokenBucket
from smppgw.esme.retry_policy import StatusClass, UnknownPolicy
from smppgw.esme.session import BindType, SessionSettings
from smppgw.esme.settings import default_of, setting
from smppgw.esme.tls import TlsSettings

if TYPE_CHECKING:
    from smppgw.esme.bind_state import PartResult

__all__ = [
    "BindManagerError",
    "BindManagerSettings",
    "BindSettingsError",
    "ManagerStoppedError",
    "ServerSettings",
    "UnknownServerError",
]


class BindManagerError(SmppError):
    """Root of the bind manager's errors."""


class UnknownServerError(BindManagerError, ValueError):
    """A server name that is not configured."""


class BindSettingsError(BindManagerError, ValueError):
    """Settings that cannot work (no servers, a negative rate...); the message names the key."""


class ManagerStoppedError(BindManagerError):
    """The manager is stopping or stopped: a part was not sent (the caller keeps the message).

    Attributes:
        results: the results of the message's parts that finished before the stop (their
            ``on_part`` callbacks have run); the remaining parts were not sent.
    """

    def __init__(self, message: str, results: Sequence[PartResult] = ()) -> None:
        super().__init__(message)
        self.results = tuple(results)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """One SMSC server and the binds to keep to it.

    ``rate`` is the account's limit for this server in messages per second (0 = unlimited) and
    ``burst`` the tokens an idle server may take at once; keep it 1 so that no 1-second window
    exceeds ``rate``. ``jitter_allowance`` (seconds) is the safety margin for the SMSC counting
    arrival times rather than our send times: the bucket runs at ``rate / (1 + allowance)`` and
    lets a late-woken sender take its token ``allowance / 4`` early, so any ``rate + 1``
    consecutive sends span at least ``1 + 0.75 * allowance`` seconds and an SMSC that sees them
    skewed by up to that much (15 ms by default) still counts at most ``rate`` per window.
    """

    name: str
    host: str
    port: int = setting(low=1, high=65535)
    tls: TlsSettings | None = None  # a configuration file writes true, for its [tls] table
    binds: int = setting(3, low=0, high=100)
    bind_type: BindType | tuple[BindType, ...] = default_of(  # noqa: RUF009 - an enum member
        SessionSettings, "bind_type"
    )
    rate: float = setting(50.0, low=0)
    burst: int = setting(1, low=1, high=1000)
    jitter_allowance: float = setting(0.02, configurable=False)

    def __post_init__(self) -> None:
        where = f"server {self.name!r}"
        if self.binds < 0:
            raise BindSettingsError(f"{where}: binds must be >= 0, got {self.binds}")
        if isinstance(self.bind_type, tuple) and len(self.bind_type) != self.binds:
            raise BindSettingsError(
                f"{where}: bind_type lists {len(self.bind_type)} types for {self.binds} binds"
            )
        if not 0 <= self.rate < math.inf:
            raise BindSettingsError(f"{where}: rate must be >= 0 (0 = unlimited), got {self.rate}")
        if self.burst < 1:
            raise BindSettingsError(f"{where}: burst must be >= 1, got {self.burst}")
        if not 0 <= self.jitter_allowance < 1:
            raise BindSettingsError(
                f"{where}: jitter_allowance must be in [0, 1) s, got {self.jitter_allowance}"
            )

    @property
    def bind_types(self) -> tuple[BindType, ...]:
        """The type of each bind, in order."""
        if isinstance(self.bind_type, tuple):
            return self.bind_type
        return (self.bind_type,) * self.binds

    def adaptive_rate(self, bucket: TokenBucket) -> AdaptiveRate:
        """What learns the server's real limit, starting at (and never above) ``bucket``'s rate."""
        return AdaptiveRate(bucket.rate, floor=min(bucket.rate, 1.0))

    def token_bucket(self, clock: Callable[[], float] = time.monotonic) -> TokenBucket:
        """The server's bucket, with the jitter allowance applied (see the class docstring)."""
        if self.rate == 0:
            return TokenBucket(math.inf, 1, clock)
        return TokenBucket(
            self.rate / (1 + self.jitter_allowance),
            self.burst,
            clock,
            tolerance=self.jitter_allowance / 4,
        )


@dataclass(frozen=True, slots=True)
class BindManagerSettings:
    """The account and the policies shared by all servers.

    Times are in seconds. ``throttle_backoff`` is the first pause of a server that answered
    ESME_RTHROTTLED; each further throttle (on a submit sent after the pause) doubles it, up to
    ``throttle_backoff_max``. ``max_attempts`` bounds the sends of one part for transient
    statuses and unknown outcomes (throttling is not counted: it never fails a message).
    ``inbound_window`` bounds the deliver_sm of one bind being recorded at once (see
    :class:`smppgw.esme.session.Session`). ``system_id``, ``password``, ``system_type``,
    ``window``, ``response_timeout``, ``enquire_link_interval``, ``idle_timeout``,
    ``connect_timeout``, ``bind_timeout`` and ``inbound_window`` go to every bind's
    :class:`~smppgw.esme.session.SessionSettings` as they are (with the server's ``host``,
    ``port`` and ``tls``, and the bind's type); their defaults are the session's.
    A bind lost less than ``stable_after`` seconds after it bound counts as a failed connection
    attempt for the reconnect backoff (an SMSC that unbinds every bind at once must not get a
    reconnect storm).
    """

    servers: tuple[ServerSettings, ...]
    system_id: str
    password: str = field(repr=False)
    # Handed to each bind's SessionSettings, whose defaults they are:
    system_type: str = default_of(SessionSettings, "system_type")
    window: int = setting(default_of(SessionSettings, "window"), low=1, high=1000)
    response_timeout: float = setting(
        default_of(SessionSettings, "response_timeout"), positive=True
    )
    enquire_link_interval: float = setting(
        default_of(SessionSettings, "enquire_link_interval"), positive=True
    )
    idle_timeout: float = setting(default_of(SessionSettings, "idle_timeout"), positive=True)
    connect_timeout: float = setting(default_of(SessionSettings, "connect_timeout"), positive=True)
    bind_timeout: float = setting(default_of(SessionSettings, "bind_timeout"), positive=True)
    inbound_window: int = setting(default_of(SessionSettings, "inbound_window"), low=1, high=10000)
    # The bind manager's own:
    reconnect_min: float = setting(1.0, positive=True)
    reconnect_max: float = setting(60.0, positive=True)
    stable_after: float = setting(10.0, configurable=False)
    throttle_backoff: float = setting(1.0, positive=True)
    throttle_backoff_max: float = setting(60.0, positive=True)
    throttle_report_interval: float = setting(10.0, configurable=False)
    retry_delay: float = setting(5.0, low=0)
    max_attempts: int = setting(10, low=1, high=1000)
    unknown_policy: UnknownPolicy = UnknownPolicy.RESUBMIT_ONCE
    status_overrides: Mapping[int, StatusClass] = field(default_factory=dict)
    unknown_status: StatusClass = StatusClass.TRANSIENT

    @classmethod
    def problems(cls, values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Every problem of the account and timings in ``values`` (field: value), as
        (field, problem); the servers are checked by :class:`ServerSettings`."""
        found = []
        # system_id, password and system_type are C-Octet Strings of at most 16, 9 and 13
        # octets (SMPP v3.4 5.2.1-5.2.3), written as Latin-1 octets by the codec.
        for name, most in (("system_id", 15), ("system_type", 12), ("password", 8)):
            value = values.get(name)
            if not isinstance(value, str):
                continue
            secret = name == "password"
            if len(value) > most:
                what = "the password must be " if secret else ""
                found.append((name, f"{what}at most {most} characters, got {len(value)}"))
            if not _is_latin1(value):
                what = "the password must be" if secret else "must be"
                shown = "" if secret else f", got {value!r}"
                found.append((name, f"{what} Latin-1 text (octets on the wire){shown}"))
        for low, high in (
            ("reconnect_min", "reconnect_max"),
            ("throttle_backoff", "throttle_backoff_max"),
        ):
            if values.get(high, math.inf) < values.get(low, 0):
                found.append((high, f"must be >= {low} ({values[low]:g})"))
        if values.get("idle_timeout", math.inf) <= values.get("enquire_link_interval", 0):
            found.append(("idle_timeout", "must be longer than enquire_link_interval"))
        return found

    def __post_init__(self) -> None:
        if not self.servers:
            raise BindSettingsError("servers: at least one server is needed")
        names = [s.name for s in self.servers]
        if len(set(names)) != len(names):
            raise BindSettingsError(f"servers: names must be unique, got {names}")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise BindSettingsError(
                f"reconnect_min ({self.reconnect_min}) must be > 0 and <= reconnect_max "
                f"({self.reconnect_max})"
            )
        if not 0 < self.throttle_backoff <= self.throttle_backoff_max:
            raise BindSettingsError(
                f"throttle_backoff ({self.throttle_backoff}) must be > 0 and <= "
                f"throttle_backoff_max ({self.throttle_backoff_max})"
            )
        for key in ("window", "max_attempts", "inbound_window", "throttle_report_interval"):
            if not 0 < getattr(self, key) < math.inf:  # the counts are ints: >= 1
                raise BindSettingsError(f"{key} must be > 0, got {getattr(self, key)}")
        for key in (
            "response_timeout",
            "connect_timeout",
            "bind_timeout",
            "retry_delay",
            "stable_after",
        ):
            if not getattr(self, key) >= 0:
                raise BindSettingsError(f"{key} must be >= 0, got {getattr(self, key)}")


def _is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
