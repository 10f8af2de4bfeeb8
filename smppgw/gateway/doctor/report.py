"""What ``smppgw doctor`` found: each slot's steps and timings, each server's summary and
recommended window, the test message, as text or as JSON."""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field

from smppgw.codec import CommandStatus

__all__ = [
    "DoctorReport",
    "ServerResult",
    "SlotResult",
    "Step",
    "TestMessageResult",
    "recommended_window",
]


class Step(enum.Enum):
    """The steps of opening one bind slot, in order."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    BIND = "bind"
    ENQUIRE_LINK = "enquire_link"


@dataclass(slots=True)
class SlotResult:
    """One bind slot: how long each step took, and the first problem in words."""

    server: str
    slot: int
    bind_type: str
    timings: dict[Step, float] = field(default_factory=dict)
    enquire_link_rtts: list[float] = field(default_factory=list)
    failed_step: Step | None = None
    problem: str | None = None
    status: CommandStatus | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(slots=True)
class ServerResult:
    """One server: its slots and what they tell."""

    name: str
    endpoint: str
    rate: float
    slots: list[SlotResult] = field(default_factory=list)

    @property
    def bound(self) -> int:
        return sum(1 for slot in self.slots if slot.ok)

    @property
    def round_trip(self) -> float | None:
        """The median enquire_link round trip over every slot, in seconds."""
        rtts = [rtt for slot in self.slots for rtt in slot.enquire_link_rtts]
        return statistics.median(rtts) if rtts else None

    @property
    def recommended_window(self) -> int | None:
        rtt = self.round_trip
        if rtt is None or not self.slots:
            return None
        return recommended_window(self.rate, len(self.slots), rtt)


@dataclass(slots=True)
class TestMessageResult:
    """The test message: where it went, its ids, and what the receipt taught."""

    to: str
    server: str | None = None
    message_id: str | None = None
    submit_status: CommandStatus | None = None
    receipt_id: str | None = None
    receipt_stat: str | None = None
    receipt_after: float | None = None
    id_forms: dict[str, str] = field(default_factory=dict)  # where in the receipt -> form
    problem: str | None = None

    def lines(self) -> Iterator[str]:
        if self.message_id is not None:
            yield f"test message to {self.to} via {self.server}: id {self.message_id}"
        if self.receipt_id is not None:
            after = self.receipt_after or 0.0
            yield f"  receipt {self.receipt_stat} after {after:.1f} s, id {self.receipt_id}"
            for where, form in self.id_forms.items():
                yield f"  ids in the receipt's {where}: {form}"
        if self.problem is not None:
            yield f"  test message: {self.problem}"


@dataclass(slots=True)
class DoctorReport:
    servers: list[ServerResult]
    test_message: TestMessageResult | None = None

    @property
    def ok(self) -> bool:
        slots_ok = all(slot.ok for server in self.servers for slot in server.slots)
        return slots_ok and (self.test_message is None or self.test_message.problem is None)

    def to_json(self) -> dict[str, object]:
        """The report as plain JSON values (seconds as floats, statuses by name)."""
        servers: list[object] = [
            {
                "name": server.name,
                "endpoint": server.endpoint,
                "rate": server.rate,
                "binds": len(server.slots),
                "bound": server.bound,
                "round_trip": server.round_trip,
                "recommended_window": server.recommended_window,
                "slots": [_slot_json(slot) for slot in server.slots],
            }
            for server in self.servers
        ]
        message = self.test_message
        return {
            "ok": self.ok,
            "servers": servers,
            "test_message": None
            if message is None
            else {
                "to": message.to,
                "server": message.server,
                "message_id": message.message_id,
                "submit_status": None
                if message.submit_status is None
                else message.submit_status.name,
                "receipt_id": message.receipt_id,
                "receipt_stat": message.receipt_stat,
                "receipt_after": message.receipt_after,
                "id_forms": message.id_forms,
                "problem": message.problem,
            },
        }

    def lines(self) -> Iterator[str]:
        """The report as text, one line per slot, server summary and test message."""
        for server in self.servers:
            yield f"{server.name} {server.endpoint}: {server.bound} of {len(server.slots)} binds"
            for slot in server.slots:
                steps = "  ".join(
                    f"{step.value} {_ms(seconds)}" for step, seconds in slot.timings.items()
                )
                if slot.enquire_link_rtts:
                    steps += f"  enquire_link {_ms(statistics.median(slot.enquire_link_rtts))}"
                verdict = "ok" if slot.ok else f"FAILED at {_step_name(slot.failed_step)}"
                yield f"  slot {slot.slot} ({slot.bind_type}): {verdict}  {steps}".rstrip()
                if slot.problem is not None:
                    yield f"    {slot.problem}"
            window = server.recommended_window
            if window is not None:
                rtt = server.round_trip
                assert rtt is not None
                basis = f"{server.rate:g} msg/s" if server.rate > 0 else "no rate limit"
                yield (
                    f"  recommended window per bind: {window} "
                    f"({basis} over {len(server.slots)} binds, round trip {_ms(rtt)})"
                )
        if self.test_message is not None:
            yield from self.test_message.lines()
        yield "all checks passed" if self.ok else "some checks FAILED"


def _slot_json(slot: SlotResult) -> dict[str, object]:
    return {
        "slot": slot.slot,
        "bind_type": slot.bind_type,
        "ok": slot.ok,
        "timings": {step.value: seconds for step, seconds in slot.timings.items()},
        "enquire_link_rtts": slot.enquire_link_rtts,
        "failed_step": None if slot.failed_step is None else slot.failed_step.value,
        "status": None if slot.status is None else slot.status.name,
        "problem": slot.problem,
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _step_name(step: Step | None) -> str:
    return "?" if step is None else step.value


def recommended_window(rate: float, binds: int, round_trip: float) -> int:
    """Requests in flight per bind that keep ``rate`` busy over ``round_trip``, twice over.

    A bind sends ``rate / binds`` per second; each waits ``round_trip`` for its response, so
    that many per second times the round trip are in flight at once (Little's law). Twice that
    absorbs jitter. An unlimited rate (0) gets the largest window the gateway advises (100).
    """
    if rate <= 0:
        return 100
    return max(1, min(100, math.ceil(2 * rate / max(binds, 1) * round_trip)))
