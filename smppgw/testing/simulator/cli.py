"""``smppgw simulate``: run the SMSC simulator until interrupted (it prints where it listens)."""

# ruff: noqa: T201 - a command-line program reports on stdout/stderr

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from smppgw.codec.split import SplitMethod

from .server import Simulator
from .settings import Account, FaultSettings, MoSettings, SimulatorSettings

__all__ = ["DEFAULT_PASSWORD", "build_parser", "main"]

# The gateway's simulator-mode default (config.SIMULATOR_PASSWORD): documented, not a secret.
DEFAULT_PASSWORD = "localsim"  # noqa: S105
_MAX_PORT = 65535
_MAX_PASSWORD = 8  # bind password: a C-octet string of at most 9 octets (SMPP v3.4 4.1.1)


class StartError(Exception):
    """The simulator cannot start (a port in use, an unreadable certificate)."""


def _share(value: str) -> float:
    """An argparse type: a fraction between 0 and 1."""
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not 0.0 <= share <= 1.0:
        msg = f"expected a share between 0 and 1, got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return share


def _rate(value: str) -> float:
    """An argparse type: a rate per second, 0 or more."""
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate < float("inf"):
        msg = f"expected a rate of 0 or more per second, got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return rate


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of ``minimum`` or more."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            msg = f"expected a whole number of {minimum} or more, got {value!r}"
            raise argparse.ArgumentTypeError(msg)
        return number

    return parse


def _port(value: str) -> int:
    """An argparse type: a TCP port, 0 for one the system chooses."""
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= _MAX_PORT:
        msg = f"expected a port 0..{_MAX_PORT} (0: any free one), got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return port


def _seconds(value: str) -> float:
    """An argparse type: a duration in seconds, 0 or more."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0.0 <= seconds < float("inf"):
        msg = f"expected seconds, 0 or more, got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return seconds


def _outage(value: str) -> tuple[int, float, float]:
    """An argparse type: ``SERVER:AFTER:SECONDS`` (server numbered from 1)."""
    try:
        server_text, after_text, seconds_text = value.split(":")
        server, after, seconds = int(server_text), float(after_text), float(seconds_text)
    except ValueError:
        server, after, seconds = 0, -1.0, -1.0
    if server < 1 or not 0 <= after < float("inf") or not 0 < seconds < float("inf"):
        msg = f"expected SERVER:AFTER:SECONDS (e.g. 1:30:60), got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return server, after, seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smppgw simulate",
        description=(
            "Run an SMSC simulator modelled on the provider: several servers, per-server bind "
            "and throughput limits, delivery receipts relayed on any receiver bind of the account, "
            "optional mobile-originated (MO) messages."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--servers", type=_count(1), default=2, help="number of servers (2)")
    parser.add_argument(
        "--plain-ports", type=_port, nargs="*", default=[], help="plain port per server (ephemeral)"
    )
    parser.add_argument(
        "--tls-ports", type=_port, nargs="*", default=[], help="TLS port per server (ephemeral)"
    )
    parser.add_argument("--no-tls", action="store_true", help="do not open TLS ports")
    parser.add_argument("--cert-file", help="server certificate (default: generated at start)")
    parser.add_argument("--key-file", help="key of --cert-file")
    parser.add_argument("--ca-out", help="write the generated CA certificate (PEM) here")
    parser.add_argument("--system-id", default="smppgw", help="account system_id (smppgw)")
    parser.add_argument(
        "--password-file",
        help=f"file holding the account password, at most 8 characters (default: the password "
        f"{DEFAULT_PASSWORD!r})",
    )
    parser.add_argument("--binds", type=_count(1), default=3, help="binds allowed per server (3)")
    parser.add_argument(
        "--rate", type=_rate, default=50.0, help="submits per second per server, 0 = unlimited"
    )
    parser.add_argument("--message-id-format", choices=["decimal", "hex", "uuid"], default="hex")
    parser.add_argument(
        "--dlr-delay",
        type=_seconds,
        nargs=2,
        default=[0.05, 0.5],
        metavar=("MIN", "MAX"),
        help="receipt delay range in seconds, after the schedule_delivery_time if any",
    )
    parser.add_argument("--queue-full-ratio", type=_share, default=0.0, help="ESME_RMSSQFUL share")
    parser.add_argument("--stall-ratio", type=_share, default=0.0, help="unanswered submit share")
    parser.add_argument("--dlr-before-resp", type=_share, default=0.0, help="early receipt share")
    parser.add_argument(
        "--drop-every", type=_count(0), default=0, help="close links every N PDUs (0 = never)"
    )
    parser.add_argument("--refuse-binds", action="store_true", help="refuse every bind")
    parser.add_argument(
        "--unbind-after-bind",
        action="store_true",
        help="accept every bind, then unbind it at once (as some SMSCs treat an unknown account)",
    )
    parser.add_argument(
        "--sliding-window",
        action="store_true",
        help="enforce --rate over any 1-second window (default: per clock second)",
    )
    parser.add_argument(
        "--drop-receipts",
        type=_share,
        default=0.0,
        help="share of receipts never sent (query_sm still answers for those messages)",
    )
    parser.add_argument(
        "--malformed-ratio",
        type=_share,
        default=0.0,
        help="share of submit_sm_resp preceded by a malformed PDU",
    )
    parser.add_argument(
        "--down",
        type=_outage,
        action="append",
        default=[],
        metavar="SERVER:AFTER:SECONDS",
        help="take server SERVER (1 = the first) down AFTER seconds from start for SECONDS, "
        "dropping its links and refusing connections, like the provider's maintenance "
        "(repeatable)",
    )
    parser.add_argument(
        "--freeze",
        type=_outage,
        action="append",
        default=[],
        metavar="SERVER:AFTER:SECONDS",
        help="freeze server SERVER (1 = the first) AFTER seconds from start for SECONDS: it "
        "reads and answers nothing while its TCP connections stay open, like a stopped "
        "process (repeatable)",
    )
    mo = parser.add_argument_group(
        "mobile-originated messages",
        "MO messages arrive as deliver_sm (esm_class type 0) on a random receiver or transceiver "
        "bind of the account, held until one binds and resent until answered ESME_ROK.",
    )
    mo.add_argument(
        "--mo-rate",
        type=_rate,
        default=0.0,
        metavar="PER_SECOND",
        help="MO messages generated per second over all servers, 0 = none (0)",
    )
    mo.add_argument(
        "--mo-long-share",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help="share of MO messages long enough to need 2-4 concatenated parts, 0-1 (0)",
    )
    mo.add_argument(
        "--mo-ucs2-share",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help="share of MO messages written outside GSM 03.38, sent as UCS-2, 0-1 (0)",
    )
    mo.add_argument(
        "--mo-source", metavar="NUMBER", help="fixed MO sender (default: a random number each)"
    )
    mo.add_argument(
        "--mo-destination",
        default="12345",
        metavar="NUMBER",
        help="the number or short code MO messages are sent to (12345)",
    )
    mo.add_argument(
        "--mo-split",
        choices=[m.value for m in SplitMethod],
        default=SplitMethod.UDH.value,
        help="how long MO messages travel: udh (UDHI + concatenation header), sar "
        "(sar_* TLVs) or payload (one message_payload TLV) (udh)",
    )
    mo.add_argument(
        "--mo-udh16",
        action="store_true",
        help="use the 16-bit reference concatenation header (06 08 04 ...)",
    )
    parser.add_argument("--seed", type=int, help="random seed, for repeatable runs")
    return parser


def _password(path: str) -> str:
    try:
        password = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"--password-file: cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
        raise ValueError(msg) from exc
    if not 1 <= len(password) <= _MAX_PASSWORD:
        msg = (
            f"--password-file: {path} holds a password of {len(password)} characters; "
            f"a bind password has 1 to {_MAX_PASSWORD}"
        )
        raise ValueError(msg)
    return password


def check_args(args: argparse.Namespace) -> None:
    """What argparse cannot check option by option.

    Raises:
        ValueError: with the message to print.
    """
    low, high = args.dlr_delay
    if low > high:
        msg = f"--dlr-delay: MIN {low:g} is above MAX {high:g}"
        raise ValueError(msg)
    for flag, ports in (("--plain-ports", args.plain_ports), ("--tls-ports", args.tls_ports)):
        if len(ports) > args.servers:
            msg = f"{flag}: {len(ports)} ports for {args.servers} servers"
            raise ValueError(msg)
    for flag, spells in (("--down", args.down), ("--freeze", args.freeze)):
        for server, _after, _seconds in spells:
            if server > args.servers:
                msg = f"{flag}: server {server} does not exist ({args.servers} servers)"
                raise ValueError(msg)


def settings_from_args(args: argparse.Namespace) -> SimulatorSettings:
    """The simulator's settings from checked arguments.

    Raises:
        ValueError: the password file cannot be read or holds no usable password.
    """
    password = _password(args.password_file) if args.password_file else DEFAULT_PASSWORD
    return SimulatorSettings(
        host=args.host,
        servers=args.servers,
        plain_ports=tuple(args.plain_ports),
        tls=not args.no_tls,
        tls_ports=tuple(args.tls_ports),
        cert_file=args.cert_file,
        key_file=args.key_file,
        accounts=(Account(args.system_id, password, args.binds, args.rate),),
        message_id_format=args.message_id_format,
        dlr_delay=(args.dlr_delay[0], args.dlr_delay[1]),
        faults=FaultSettings(
            dlr_before_resp=args.dlr_before_resp,
            drop_every=args.drop_every,
            stall_ratio=args.stall_ratio,
            queue_full_ratio=args.queue_full_ratio,
            refuse_binds=args.refuse_binds,
            malformed_ratio=args.malformed_ratio,
            unbind_after_bind=args.unbind_after_bind,
            drop_receipts=args.drop_receipts,
        ),
        mo=MoSettings(
            rate=args.mo_rate,
            long_share=args.mo_long_share,
            ucs2_share=args.mo_ucs2_share,
            source=args.mo_source,
            destination=args.mo_destination,
            method=SplitMethod(args.mo_split),
            udh_ref_bits=16 if args.mo_udh16 else 8,
        ),
        rate_window="sliding" if args.sliding_window else "fixed",
        seed=args.seed,
    )


async def run_outages(
    sim: Simulator,
    outages: Sequence[tuple[int, float, float]],
    freezes: Sequence[tuple[int, float, float]] = (),
) -> None:
    async def one(server: int, after: float, seconds: float) -> None:
        await asyncio.sleep(after)
        print(f"server {server} down for {seconds:g} s", file=sys.stderr, flush=True)
        await sim.server_down_for(server - 1, seconds)
        print(f"server {server} up", file=sys.stderr, flush=True)

    async def freeze(server: int, after: float, seconds: float) -> None:
        await asyncio.sleep(after)
        print(f"server {server} frozen for {seconds:g} s", file=sys.stderr, flush=True)
        await sim.server_frozen_for(server - 1, seconds)
        print(f"server {server} thawed", file=sys.stderr, flush=True)

    await asyncio.gather(
        *(one(*outage) for outage in outages), *(freeze(*spell) for spell in freezes)
    )


async def _run(
    settings: SimulatorSettings,
    ca_out: str | None,
    outages: Sequence[tuple[int, float, float]] = (),
    freezes: Sequence[tuple[int, float, float]] = (),
    password_source: str = f"{DEFAULT_PASSWORD!r} (the default)",
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim = Simulator(settings)
    try:
        await sim.start()
    except OSError as exc:
        await sim.stop()
        msg = f"cannot start: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        raise StartError(msg) from exc
    async with sim:
        for info in sim.servers:
            tls = f", TLS port {info.tls_port}" if info.tls_port else ""
            print(f"{info.name}: {info.host} plain port {info.plain_port}{tls}", flush=True)
        for account in settings.accounts:
            rate = f"{account.rate_per_server:g}" if account.rate_per_server else "unlimited"
            print(
                f"account: system_id {account.system_id}, password {password_source}; "
                f"{account.max_binds_per_server} binds and {rate} submits/s per server",
                flush=True,
            )
        if sim.ca_pem is not None and ca_out:
            Path(ca_out).write_bytes(sim.ca_pem)  # noqa: ASYNC240 - once, at start
            print(f"CA certificate written to {ca_out}", flush=True)
        schedule = asyncio.create_task(run_outages(sim, outages, freezes))
        await stop.wait()
        schedule.cancel()
        s = sim.stats
        print(
            f"submits {s.received_submits}, accepted {s.accepted}, throttled {s.throttled}, "
            f"receipts sent {s.dlrs_sent}, acknowledged {s.dlrs_acked}, "
            f"MO messages {s.mo_messages} in {s.mo_parts} parts, acknowledged {s.mo_acknowledged}",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until SIGINT or SIGTERM.

    Returns:
        0 when stopped by a signal, 1 when it cannot start (a port in use), 2 for bad options.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        try:
            check_args(args)
            settings = settings_from_args(args)
        except ValueError as exc:
            parser.error(str(exc))
    except SystemExit as exc:  # --help, or a usage error argparse has printed
        return exc.code if isinstance(exc.code, int) else 2
    source = (
        f"from {args.password_file}"
        if args.password_file
        else f"{DEFAULT_PASSWORD!r} (the default; --password-file to set another)"
    )
    try:
        asyncio.run(_run(settings, args.ca_out, args.down, args.freeze, source))
    except KeyboardInterrupt:
        pass
    except StartError as exc:
        print(f"smppgw simulate: {exc}", file=sys.stderr)
        return 1
    return 0
