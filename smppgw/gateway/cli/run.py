"""The commands that need no daemon: ``run`` (the daemon itself), ``check-config``,
``simulate`` and ``version``."""

from __future__ import annotations

import argparse
import importlib
import logging
import platform
from collections.abc import Callable, Sequence
from typing import TextIO

from smppgw import __version__
from smppgw.gateway.cli.client import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError

__all__ = ["check_config_command", "run_command", "simulator_main", "version_command"]


def check_config_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from smppgw.gateway.config import ConfigError, load_config, summary  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    out.write(summary(config) + "\nconfiguration OK\n")
    return EXIT_OK


def run_command(args: argparse.Namespace, _out: TextIO, err: TextIO) -> int:
    from smppgw.codec.errors import SmppError  # noqa: PLC0415
    from smppgw.gateway.config import (  # noqa: PLC0415
        ConfigError,
        load_config,
        secrets,
        startup_warnings,
    )
    from smppgw.gateway.logs import install_sighup, setup_logging  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    try:
        setup = setup_logging(
            args.log_level or config.log.level,
            args.log_format or config.log.format,
            config.log.file,
            secrets=secrets(config),
            stream=err,
        )
    except (OSError, ValueError) as exc:
        err.write(f"cannot set up logging: {exc}\n")
        return EXIT_USAGE
    restore = install_sighup(setup)
    try:
        for warning in startup_warnings(config):
            logging.getLogger("smppgw").warning("%s", warning)
        daemon = importlib.import_module("smppgw.gateway.daemon")
        run: Callable[[object], int] = daemon.run
        return run(config)
    except SmppError as exc:  # the daemon's StartupError, logged already
        if config.log.file is not None:
            # A log file is not where someone starting the daemon looks first.
            err.write(f"smppgw run: {exc}\n")
        if isinstance(exc.__cause__, ConfigError):
            return EXIT_USAGE
        code = getattr(exc, "exit_code", EXIT_FAILED)
        return code if isinstance(code, int) else EXIT_FAILED
    finally:
        restore()
        setup.close()


def simulator_main() -> Callable[[Sequence[str] | None], int]:
    # The simulator's entry point lives in smppgw.testing.simulator.cli or
    # smppgw.testing.simulator.__main__.
    for name in ("smppgw.testing.simulator.cli", "smppgw.testing.simulator.__main__"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        entry: Callable[[Sequence[str] | None], int] = module.main
        return entry
    raise CliError("the simulator is not installed", EXIT_FAILED)


def version_command(_args: argparse.Namespace, out: TextIO, _err: TextIO) -> int:
    out.write(f"smppgw {__version__} (Python {platform.python_version()})\n")
    return EXIT_OK
