"""Logging set up by the CLI: JSON and text lines, secret redaction, SIGHUP reopening."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from smppgw.gateway.logs import LogSetup, install_sighup, setup_logging

logger = logging.getLogger("smppgw.test")


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root")
def test_json_lines_carry_level_logger_message_and_extras() -> None:
    stream = io.StringIO()
    setup = setup_logging("debug", "json", stream=stream)
    logger.info("bound %s", "smpp1/trx-0", extra={"server": "smpp1", "in_flight": 3})
    setup.close()
    record = json.loads(stream.getvalue())
    assert record["level"] == "info"
    assert record["logger"] == "smppgw.test"
    assert record["msg"] == "bound smpp1/trx-0"
    assert record["server"] == "smpp1"
    assert record["in_flight"] == 3
    assert record["ts"].endswith("+00:00")


@pytest.mark.usefixtures("restore_root")
def test_json_lines_include_the_traceback() -> None:
    stream = io.StringIO()
    setup = setup_logging("info", "json", stream=stream)
    try:
        raise RuntimeError("boom")  # noqa: TRY301
    except RuntimeError:
        logger.exception("commit failed")
    setup.close()
    record = json.loads(stream.getvalue())
    assert record["msg"] == "commit failed"
    assert "RuntimeError: boom" in record["exc"]


@pytest.mark.usefixtures("restore_root")
def test_text_format_and_level_filtering() -> None:
    stream = io.StringIO()
    setup = setup_logging("warning", "text", stream=stream)
    logger.info("hidden")
    logger.warning("shown %d", 1)
    setup.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("WARNING smppgw.test: shown 1")


@pytest.mark.usefixtures("restore_root")
def test_secrets_are_redacted_from_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    setup = setup_logging("info", "text", secrets=["hunter2", ""], stream=stream)
    logger.info("bind with password %s refused", "hunter2")
    try:
        raise ValueError("password hunter2 rejected")  # noqa: TRY301
    except ValueError:
        logger.exception("failed")
    setup.close()
    text = stream.getvalue()
    assert "hunter2" not in text
    assert "bind with password *** refused" in text
    assert "ValueError: password *** rejected" in text


@pytest.mark.usefixtures("restore_root")
def test_bad_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        setup_logging("loud")
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        setup_logging("info", "xml")


@pytest.mark.usefixtures("restore_root")
def test_close_removes_the_handler() -> None:
    before = list(logging.getLogger().handlers)
    setup = setup_logging("info", stream=io.StringIO())
    assert setup.handler in logging.getLogger().handlers
    setup.close()
    assert logging.getLogger().handlers == before


def rotate_and_log(setup: LogSetup, path: Path, reopen: object) -> None:
    logger.info("before rotation")
    path.rename(path.with_suffix(".1"))
    if callable(reopen):
        reopen()
    logger.info("after rotation")


@pytest.mark.usefixtures("restore_root")
def test_the_log_file_is_reopened_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "smppgw.log"
    setup = setup_logging("info", "text", str(path))
    rotate_and_log(setup, path, setup.reopen)
    setup.close()
    assert "before rotation" in path.with_suffix(".1").read_text()
    assert "after rotation" not in path.with_suffix(".1").read_text()
    assert "after rotation" in path.read_text()


@pytest.mark.usefixtures("restore_root")
def test_sighup_reopens_the_log_file(tmp_path: Path) -> None:
    path = tmp_path / "smppgw.log"
    setup = setup_logging("info", "text", str(path))
    previous = signal.getsignal(signal.SIGHUP)
    restore = install_sighup(setup)
    try:
        rotate_and_log(setup, path, lambda: os.kill(os.getpid(), signal.SIGHUP))
    finally:
        restore()
        setup.close()
    assert signal.getsignal(signal.SIGHUP) is previous
    assert "after rotation" in path.read_text()
    assert "before rotation" in path.with_suffix(".1").read_text()
