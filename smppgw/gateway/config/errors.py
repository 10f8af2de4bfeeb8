"""The configuration's error, and the simulator mode's shared password."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from smppgw.codec.errors import SmppError

__all__ = ["SIMULATOR_PASSWORD", "SIMULATOR_SYSTEM_ID", "ConfigError"]

SIMULATOR_PASSWORD: Final = "localsim"  # noqa: S105 - a local test account, by design
"""The password the gateway and the built-in simulator share when no password is configured
(simulator mode only)."""

SIMULATOR_SYSTEM_ID: Final = "smppgw"
"""The account of simulator mode when ``[gateway]`` names none."""


class ConfigError(SmppError, ValueError):
    """The configuration is invalid; ``errors`` lists every problem as ``key: problem``."""

    def __init__(self, errors: Sequence[str], source: str = "") -> None:
        self.errors = tuple(errors)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}invalid configuration:\n  " + "\n  ".join(self.errors))
