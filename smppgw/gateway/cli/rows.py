"""The rows of a message file for ``send --file``: CSV with a header, or JSON lines.

A malformed row is yielded as its line number and why, so the others go on; input that is
no message file at all (a line over the daemon's ``max_line``, bytes not UTF-8, unknown CSV
columns) stops the reading with :class:`InputError`.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from smppgw.gateway.cli.client import CliError

__all__ = [
    "FIELDS",
    "InputError",
    "Row",
    "RowError",
    "count_rows",
    "open_rows",
    "read_rows",
    "time_value",
]

# Message fields a file row may hold, with how a CSV cell is converted.
_INT_FIELDS = frozenset({"max_parts", "priority"})
_BOOL_FIELDS = frozenset({"flash", "registered_delivery", "transliterate"})
_TIME_FIELDS = frozenset({"validity", "schedule"})
FIELDS = frozenset(
    {"to", "from", "text", "hex", "coding", "pe_id", "template_id", "tm_id", "custom"}
    | _INT_FIELDS
    | _BOOL_FIELDS
    | _TIME_FIELDS
)
_TRUE = frozenset({"1", "true", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "no", "n", "off"})


def time_value(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


class RowError(ValueError):
    """A malformed file row: reported with its line number while the other rows go on."""


class InputError(CliError):
    """Input that is no message file (a line too long, bytes not UTF-8): reading stops."""


def _csv_value(name: str, cell: str) -> object:
    if name in _INT_FIELDS:
        if not cell.isdigit():
            raise RowError(f"{name} must be an integer, got {cell!r}")
        return int(cell)
    if name in _BOOL_FIELDS:
        if cell.lower() in _TRUE:
            return True
        if cell.lower() in _FALSE:
            return False
        raise RowError(f"{name} must be true or false, got {cell!r}")
    if name in _TIME_FIELDS:
        return time_value(cell)
    return cell


def _lines(file: BinaryIO, name: str, limit: int) -> Iterator[tuple[int, str]]:
    """(number, text) of every line of ``file``; a UTF-8 byte order mark is dropped.

    Raises:
        InputError: a line longer than ``limit`` bytes (no more of it is read, so that an
            endless line, ``--file - < /dev/zero``, costs ``limit`` bytes of memory, not all of
            it), or a line that is not UTF-8.
    """
    number = 0
    while raw := file.readline(limit + 1):
        number += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            raise InputError(
                f"{name}:{number}: line longer than {limit} bytes (the daemon's [intake] max_line)"
            )
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{name}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte "
                f"{exc.start + 1} of the line); save the file as UTF-8"
            ) from None
        yield number, text


# A file row: (line number, the message) or (line number, why the row is malformed).
Row = tuple[int, dict[str, object] | str]


def read_rows(file: BinaryIO, fmt: str, name: str, limit: int) -> Iterator[Row]:
    """Every row of a CSV file (with a header) or a JSONL file; blank lines are skipped.

    Raises:
        InputError: see :func:`_lines`; also a CSV header naming unknown columns, or a CSV
            structure error (an unclosed quote running past the field size limit).
    """
    lines = _lines(file, name, limit)
    if fmt == "jsonl":
        yield from _jsonl_rows(lines)
        return
    reader = csv.reader(text for _, text in lines)
    try:
        header = next(reader, None)
        if header is None:
            return
        unknown = sorted(set(header) - FIELDS)
        if unknown:
            raise InputError(f"{name}:1: unknown column(s) {', '.join(unknown)}")
        last = reader.line_num
        for cells in reader:
            first, last = last + 1, reader.line_num
            if not any(cells):
                continue
            if len(cells) > len(header):
                yield first, f"{len(cells)} cells where the header has {len(header)}"
                continue
            try:
                yield first, {k: _csv_value(k, v) for k, v in zip(header, cells, strict=False) if v}
            except RowError as exc:
                yield first, str(exc)
    except csv.Error as exc:
        raise InputError(f"{name}:{reader.line_num}: {exc}") from None


def _jsonl_rows(lines: Iterator[tuple[int, str]]) -> Iterator[Row]:
    decoder = msgspec.json.Decoder(dict[str, object])
    for number, text in lines:
        if not text.strip():
            continue
        try:
            message = decoder.decode(text)
        except msgspec.DecodeError as exc:
            yield number, f"not a JSON object: {exc}"
            continue
        unknown = sorted(set(message) - FIELDS)
        if unknown:
            yield number, f"unknown field(s) {', '.join(unknown)}"
            continue
        yield number, message


def open_rows(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}") from exc


def count_rows(path: Path, fmt: str, name: str, limit: int) -> int | None:
    """The rows of a regular file (for the progress bar); None for a pipe or a device.

    The file is read through once before anything is sent, so that a line too long or not
    UTF-8 stops the run with nothing sent (from a pipe, the rows before such a line have gone).

    Raises:
        InputError: the file is no message file; nothing has been sent.
    """
    try:
        if not path.is_file():
            return None
        with path.open("rb") as file:
            return sum(1 for _ in read_rows(file, fmt, name, limit))
    except InputError as exc:
        raise InputError(f"{exc}; nothing was sent") from None
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}") from exc
