"""``smppgw top``: the daemon's live figures in a terminal, refreshed from the ``stats`` op.

The screen fits 80 columns (names and errors are cut with an ellipsis, numbers abbreviated):
servers and their binds first, then the queue, receipts, intake and webhook, and the cluster
when instances share the account. ``q`` or Ctrl-C ends it. A daemon that cannot be reached at
the start ends it with exit 3; one lost while it runs is retried every interval, said on the
first line, and the last figures stay on the screen until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import termios
import tty
from collections.abc import Iterator, Mapping, Sequence
from typing import TextIO

import msgspec
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = ["DaemonUnreachableError", "fetch_stats", "render", "run_top"]

_LIMIT = 4 * 1024 * 1024
_FIXED_LINES = 12  # the lines of a screen that are not binds (title, tables' heads, sections)
_QUEUE_ORDER = (
    "queued",
    "submitting",
    "submitted",
    "sent",
    "delivered",
    "failed",
    "expired",
    "rejected",
    "unknown",
)


class DaemonUnreachableError(Exception):
    """The daemon's socket does not answer (the message says where and why)."""


async def fetch_stats(path: str) -> dict[str, object]:
    """One ``stats`` reply from the daemon at ``path``.

    Raises:
        DaemonUnreachableError: nothing answers there, or the connection was lost.
        ValueError: the daemon refused the op (an older daemon without ``stats``).
    """
    try:
        reader, writer = await asyncio.open_unix_connection(path, limit=_LIMIT)
    except OSError as exc:
        msg = f"cannot reach the daemon at {path}: {exc.strerror or exc}"
        raise DaemonUnreachableError(msg) from exc
    try:
        writer.write(b'{"op":"stats"}\n')
        await writer.drain()
        line = await reader.readline()
    except OSError as exc:
        msg = f"lost the connection to the daemon at {path}: {exc.strerror or exc}"
        raise DaemonUnreachableError(msg) from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not line:
        msg = f"the daemon at {path} closed the connection"
        raise DaemonUnreachableError(msg)
    reply = msgspec.json.decode(line, type=dict[str, object])
    if reply.get("ok") is not True:
        raise ValueError(f"the daemon refused stats: {reply.get('message')}")
    return reply


# --- formatting -------------------------------------------------------------------------------


def duration(seconds: object) -> str:
    """``45s``, ``12m05s``, ``3h07m``, ``2d04h``; ``-`` when unknown."""
    if not isinstance(seconds, int | float):
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def millis(value: object) -> str:
    """A latency in milliseconds, abbreviated: ``3.1ms``, ``312ms``, ``4.2s``, ``-``."""
    if not isinstance(value, int | float):
        return "-"
    if value < 10:
        return f"{value:.1f}ms"
    if value < 1000:
        return f"{value:.0f}ms"
    if value < 60000:
        return f"{value / 1000:.1f}s"
    return duration(value / 1000)


def count(value: object) -> str:
    """A count in at most 6 characters: ``999999``, ``1.2M``."""
    if not isinstance(value, int | float):
        return "-"
    number = int(value)
    if number < 1_000_000:
        return str(number)
    if number < 1_000_000_000:
        return f"{number / 1_000_000:.1f}M"
    return f"{number / 1_000_000_000:.1f}G"


def per_second(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _rate_text(server: Mapping[str, object]) -> Text:
    rate, current = server.get("rate"), server.get("current_rate")
    if not isinstance(rate, int | float) or rate == 0:
        return Text("unlim")
    text = Text(f"{rate:g}")
    if isinstance(current, int | float) and current < rate - 0.5:
        text = Text(f"{current:.0f}<{rate:g}", style="yellow")  # lowered by throttling
    if server.get("paused") is True:
        text.append(" P", style="bold red")
    return text


def _dicts(value: object) -> Iterator[Mapping[str, object]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _table(*columns: tuple[str, int, str]) -> Table:
    table = Table(
        box=None,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        show_edge=False,
        header_style="bold",
        expand=False,
    )
    for header, width, justify in columns:
        table.add_column(
            header,
            width=width,
            justify="right" if justify == "r" else "left",
            no_wrap=True,
            overflow="ellipsis",
        )
    return table


def _servers_table(servers: Sequence[Mapping[str, object]]) -> Table:
    table = _table(
        ("SERVER", 12, "l"),
        ("BOUND", 5, "r"),
        ("SUB/S", 6, "r"),
        ("RATE", 8, "r"),
        ("THR 1m", 6, "r"),
        ("THR", 6, "r"),
        ("FLIGHT", 6, "r"),
        ("P50", 7, "r"),
        ("P99", 7, "r"),
    )
    for server in servers:
        binds = list(_dicts(server.get("binds")))
        bound = server.get("bound")
        style = "red" if bound == 0 else ""
        last_minute = server.get("throttles_last_minute")
        table.add_row(
            Text(str(server.get("name")), style="bold"),
            Text(f"{bound}/{len(binds)}", style=style),
            per_second(server.get("submits_per_s")),
            _rate_text(server),
            Text(count(last_minute), style="yellow" if last_minute else ""),
            count(server.get("throttles")),
            count(server.get("in_flight")),
            millis(server.get("latency_p50_ms")),
            millis(server.get("latency_p99_ms")),
        )
    return table


_STATE_STYLE = {"bound": "green", "connecting": "yellow", "backoff": "red", "closed": "dim"}


def _binds_table(servers: Sequence[Mapping[str, object]], room: int | None) -> list[RenderableType]:
    table = _table(
        ("BIND", 14, "l"),
        ("TYPE", 4, "l"),
        ("STATE", 10, "l"),
        ("FOR", 6, "r"),
        ("FLIGHT", 6, "r"),
        ("LAST ERROR", 34, "l"),
    )
    binds = [bind for server in servers for bind in _dicts(server.get("binds"))]
    shown = binds if room is None or len(binds) <= room else binds[: max(room - 1, 0)]
    for bind in shown:
        state = str(bind.get("state"))
        table.add_row(
            str(bind.get("name")),
            str(bind.get("type")),
            Text(state, style=_STATE_STYLE.get(state, "")),
            duration(bind.get("seconds")),
            count(bind.get("in_flight")),
            Text(_one_line(bind.get("last_error")), style="red"),
        )
    if len(shown) < len(binds):
        return [table, Text(f"... {len(binds) - len(shown)} more binds", style="dim")]
    return [table]


def _one_line(value: object) -> str:
    """Text a remote party may have chosen, on one line and without control characters."""
    if value is None:
        return ""
    return "".join(c if c.isprintable() else " " for c in str(value))


def _queue_lines(queue: Mapping[str, object]) -> list[Text]:
    names = [name for name in _QUEUE_ORDER if name in queue] + sorted(
        name for name in queue if name not in _QUEUE_ORDER
    )
    cells = [f"{name} {count(queue[name])}" for name in names]
    lines: list[Text] = []
    line = Text("QUEUE    ", style="bold")
    for cell in cells:
        if len(line) + len(cell) + 2 > 80:
            lines.append(line)
            line = Text("         ")
        line.append(cell + "  ")
    lines.append(line)
    return lines


def _section(title: str, fields: Sequence[tuple[str, str]]) -> Text:
    text = Text(f"{title:<9}", style="bold")
    text.append("  ".join(f"{name} {value}" for name, value in fields))
    text.truncate(80, overflow="ellipsis")
    return text


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _cluster_lines(cluster: Mapping[str, object]) -> list[Text]:
    me = cluster.get("instance")
    lines = [Text("CLUSTER  ", style="bold")]
    lines[0].append(f"this instance {_one_line(me)}")
    for member in _dicts(cluster.get("instances")):
        slots = _mapping(member.get("slots"))
        rates = _mapping(member.get("rates"))
        parts = [
            f"{name} {','.join(str(s) for s in _list(held))} @{_rate(rates.get(name))}"
            for name, held in slots.items()
        ]
        mark = "*" if member.get("instance") == me else " "
        line = Text(f" {mark} {_one_line(member.get('instance'))[:24]:<24} " + "  ".join(parts))
        line.truncate(80, overflow="ellipsis")
        lines.append(line)
    return lines


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _rate(value: object) -> str:
    return f"{value:g}/s" if isinstance(value, int | float) else "-"


def render(stats: Mapping[str, object], *, height: int | None = None, problem: str = "") -> Group:
    """The screen for one ``stats`` reply (``height``: the terminal's rows, to cut the binds to;
    ``problem``: a line to put first, e.g. that the daemon cannot be reached)."""
    servers = list(_dicts(stats.get("servers")))
    title = Text("smppgw top", style="bold")
    uptime = duration(stats.get("uptime"))
    title.append(f"  {stats.get('version', '?')}  up {uptime}  {stats.get('time')} UTC")
    if stats.get("healthy") is False:
        title.append(f"  UNHEALTHY: {_one_line(stats.get('reason'))}", style="bold red")
    title.append("  q quits", style="dim")
    title.truncate(80, overflow="ellipsis")
    parts: list[RenderableType] = []
    if problem:
        parts.append(Text(problem, style="bold red", overflow="ellipsis", no_wrap=True))
    parts.append(title)
    receipts = _mapping(stats.get("receipts"))
    intake = _mapping(stats.get("intake"))
    webhook = stats.get("webhook")
    cluster = stats.get("cluster")
    queue = _queue_lines(_mapping(stats.get("queue")))
    bottom = len(queue) + 3 + (len(_list(_mapping(cluster).get("instances"))) + 1 if cluster else 0)
    room = None if height is None else max(height - len(servers) - bottom - _FIXED_LINES + 4, 1)
    parts += [_servers_table(servers), Text(""), *_binds_table(servers, room), Text("")]
    parts += queue
    parts.append(
        _section(
            "RECEIPTS",
            [
                ("/s", per_second(receipts.get("per_s"))),
                ("p50", millis(receipts.get("latency_p50_ms"))),
                ("p99", millis(receipts.get("latency_p99_ms"))),
                ("parked", count(receipts.get("parked"))),
                ("unmatched", count(receipts.get("unmatched"))),
            ],
        )
    )
    intake_fields = [
        ("req/s", per_second(intake.get("requests_per_s"))),
        ("rejected/s", per_second(intake.get("rejections_per_s"))),
    ]
    webhook_text = (
        "off"
        if not isinstance(webhook, dict)
        else f"backlog {count(webhook.get('backlog'))}, "
        f"{per_second(webhook.get('failures_per_s'))} failed/s"
    )
    parts.append(_section("INTAKE", [*intake_fields, ("| WEBHOOK", webhook_text)]))
    if isinstance(cluster, dict):
        parts += _cluster_lines(cluster)
    return Group(*parts)


# --- the command ------------------------------------------------------------------------------


@contextlib.contextmanager
def _keys(loop: asyncio.AbstractEventLoop, quit_: asyncio.Event) -> Iterator[None]:
    """Read single keys from a terminal on stdin (``q`` sets ``quit_``); nothing otherwise."""
    try:
        fd = sys.stdin.fileno()
        interactive = os.isatty(fd)
    except (OSError, ValueError):
        interactive = False
    if not interactive:
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)  # keys one at a time, no echo; Ctrl-C still interrupts

    def read() -> None:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b"q"
        if not data or b"q" in data.lower():
            quit_.set()

    loop.add_reader(fd, read)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def run_top(
    path: str,
    *,
    once: bool,
    as_json: bool,
    interval: float,
    out: TextIO,
) -> None:
    """Show the figures of the daemon at ``path`` until ``q`` (once with ``once``).

    Raises:
        DaemonUnreachableError: the daemon cannot be reached at the start.
        ValueError: the daemon does not answer ``stats``.
    """
    stats = await fetch_stats(path)
    if once:
        if as_json:
            out.write(json.dumps(stats, ensure_ascii=False) + "\n")
        else:
            Console(file=out, width=80, highlight=False).print(render(stats))
        return
    console = Console(highlight=False)
    loop = asyncio.get_running_loop()
    quit_ = asyncio.Event()
    problem = ""
    with (
        _keys(loop, quit_),
        Live(console=console, screen=True, auto_refresh=False, transient=True) as live,
    ):
        while not quit_.is_set():
            live.update(render(stats, height=console.size.height, problem=problem), refresh=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await quit_.wait()
            if quit_.is_set():
                break
            try:
                stats = await fetch_stats(path)
                problem = ""
            except DaemonUnreachableError as exc:
                problem = f"retrying every {interval:g} s: {exc}"
