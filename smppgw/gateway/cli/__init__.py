"""The ``smppgw`` command: run the daemon, talk to it, check a configuration.

Commands::

    smppgw run --config PATH                 run the daemon
    smppgw simulate [OPTIONS]                run the SMSC simulator (see simulate --help)
    smppgw send --to N --text T [...]        submit one message
    smppgw send --file FILE.csv|.jsonl       submit many, with a progress bar on stderr
    smppgw send --dry-run [...]              what the message(s) would cost; nothing is sent
    smppgw status ID | --custom X | --ping   a message's status, or check the daemon answers
    smppgw status --unmatched                receipts that matched no message
    smppgw events [--cursor N] [--follow]    print events; --follow tails, across restarts
    smppgw top [--once] [--json]             the daemon's live figures, refreshed every second
    smppgw reload [--json]                   the daemon reads its configuration file again
    smppgw check-config --config PATH        validate a configuration and print a summary
    smppgw doctor --config PATH [--to N]     check every bind slot; optionally a test message
    smppgw version | --version

Exit codes: 0 success; 1 the daemon refused something (a rejected message, an unknown id);
2 usage or configuration error; 3 the daemon cannot be reached; 130 interrupted.

Client commands find the socket with ``--socket``, else ``[intake] path`` of ``--config``,
else ``$SMPPGW_SOCKET``, else ``/run/smppgw/smppgw.sock``.

The package in modules: :mod:`~smppgw.gateway.cli.parser` (the options, running a command),
:mod:`~smppgw.gateway.cli.client` (exit codes, the socket and its client),
:mod:`~smppgw.gateway.cli.send` with :mod:`~smppgw.gateway.cli.rows` and
:mod:`~smppgw.gateway.cli.filesend` (``--file``), :mod:`~smppgw.gateway.cli.status`,
:mod:`~smppgw.gateway.cli.events`, :mod:`~smppgw.gateway.cli.top`,
:mod:`~smppgw.gateway.cli.reload`,
:mod:`~smppgw.gateway.cli.run` (run, check-config, simulate, version),
:mod:`~smppgw.gateway.cli.doctor`, and
:mod:`~smppgw.gateway.cli.output` (how replies are printed).
"""

from smppgw.gateway.cli.client import (
    DEFAULT_SOCKET,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
)
from smppgw.gateway.cli.parser import build_parser, main

__all__ = [
    "DEFAULT_SOCKET",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "CliError",
    "build_parser",
    "main",
]
