"""The codec is sans-IO: importing it pulls in no event loop, socket, logging or metrics code."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = ("asyncio", "socket", "ssl", "logging", "prometheus_client", "msgspec")


@pytest.mark.parametrize(
    "module",
    [
        "smppgw",
        "smppgw.codec",
        "smppgw.codec.text",
        "smppgw.codec.receipt",
        "smppgw.codec.smpp_time",
        "smppgw.codec.connection",
    ],
)
def test_importing_the_codec_imports_no_io_modules(module: str) -> None:
    code = f"import sys, {module}\nprint(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    result = subprocess.run(  # noqa: S603 - our own interpreter and a literal script
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
