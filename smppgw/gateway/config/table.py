"""Typed access to one TOML table: every problem recorded by its key, never raised.

:class:`Table` reads one key at a time (``integer``, ``choice``, ``secret``...) and remembers
which keys were read, so :meth:`Table.done` can refuse the others by name; :func:`read_fields`
walks a settings dataclass's fields and reads each with the default and the limits written on
the field (:mod:`smppgw.esme.settings`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from smppgw.esme.settings import Spec, default_of, spec_of

__all__ = ["Table", "default_of", "read_fields", "resolve_path", "show"]


def resolve_path(base: str | None, value: str) -> str:
    """``value`` taken relative to the folder ``base`` (a configuration file's), unless it is
    absolute, ``base`` is None, or it is SQLite's ``:memory:``."""
    if base is None or value == ":memory:" or Path(value).is_absolute():
        return value
    return os.path.normpath(Path(base) / value)


def show(value: object) -> str:
    """``value`` for an error message, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Table:
    """Typed access to one TOML table, recording problems instead of raising."""

    def __init__(
        self,
        data: Mapping[str, object],
        where: str,
        errors: list[str],
        base: str | None = None,
    ) -> None:
        self._data = data
        self._where = where
        self._errors = errors
        self._base = base  # relative paths are relative to this folder (the file's)
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._where}.{name}" if self._where else name

    def error(self, name: str, problem: str) -> None:
        self._errors.append(f"{self.key(name)}: {problem}")

    def has(self, name: str) -> bool:
        return name in self._data

    def peek(self, name: str) -> object:
        """The raw value, without marking the key as read."""
        return self._data.get(name)

    @property
    def errors(self) -> list[str]:
        """Every problem recorded so far (shared by all tables of one file)."""
        return self._errors

    def _get(self, name: str) -> object:
        self._seen.add(name)
        return self._data.get(name)

    def text(self, name: str, default: str) -> str:
        value = self.opt_text(name)
        return default if value is None else value

    def opt_text(self, name: str, *, required: bool = False) -> str | None:
        value = self._get(name)
        if value is None:
            if required:
                self.error(name, "required")
            return None
        if not isinstance(value, str):
            self.error(name, f"expected a string, got {show(value)}")
            return None
        if not value:
            self.error(name, "must not be empty")
            return None
        return value

    def path(self, name: str, default: str) -> str:
        """A file path, relative to the configuration file's folder unless absolute."""
        return resolve_path(self._base, self.text(name, default))

    def opt_path(self, name: str) -> str | None:
        value = self.opt_text(name)
        return None if value is None else resolve_path(self._base, value)

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        value = self.text(name, default)
        if value not in choices:
            self.error(name, f"must be one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(name, f"expected true or false, got {show(value)}")
            return default
        return value

    def integer(
        self, name: str, default: int, low: int | None = None, high: int | None = None
    ) -> int:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(name, f"expected an integer, got {show(value)}")
            return default
        return value if self._in_range(name, value, low, high) else default

    def number(
        self, name: str, default: float, low: float | None = None, high: float | None = None
    ) -> float:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(name, f"expected a number, got {show(value)}")
            return default
        if not math.isfinite(value):  # TOML has nan and inf; no time, rate or share is either
            self.error(name, f"must be a finite number, got {value}")
            return default
        return float(value) if self._in_range(name, value, low, high) else default

    def positive(self, name: str, default: float) -> float:
        value = self.number(name, default)
        if value <= 0:
            self.error(name, f"must be > 0, got {value:g}")
            return default
        return value

    def _in_range(self, name: str, value: float, low: float | None, high: float | None) -> bool:
        if low is not None and high is not None and not low <= value <= high:
            self.error(name, f"must be {low}..{high}, got {value}")
            return False
        if low is not None and value < low:
            self.error(name, f"must be >= {low}, got {value}")
            return False
        if high is not None and value > high:
            self.error(name, f"must be <= {high}, got {value}")
            return False
        return True

    def int_list(self, name: str, low: int, high: int) -> tuple[int, ...]:
        value = self._get(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            self.error(name, f"expected a list of integers, got {show(value)}")
            return ()
        bad = [v for v in value if not low <= v <= high]
        if bad:
            self.error(name, f"values must be {low}..{high}, got {bad[0]}")
            return ()
        return tuple(value)

    def table(self, name: str) -> Table:
        value = self._get(name)
        if value is None:
            value = {}
        elif not isinstance(value, dict):
            self.error(name, f"expected a table, got {show(value)}")
            value = {}
        return Table(value, self.key(name), self._errors, self._base)

    def tables(self, name: str) -> list[Table]:
        value = self._get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(name, "expected an array of tables ([[" + name + "]])")
            return []
        return [
            Table(v, f"{self.key(name)}[{i}]", self._errors, self._base)
            for i, v in enumerate(value)
        ]

    def _secret_from_env(
        self, key: str, variable: str, environ: Mapping[str, str]
    ) -> tuple[str | None, str | None]:
        value = environ.get(variable)
        if not value:
            self.error(key, f"environment variable {variable} is not set or empty")
            return None, None
        return value, f"env {variable}"

    def _secret_from_file(self, key: str, path: str) -> tuple[str | None, str | None]:
        try:
            value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            self.error(key, f"cannot read {path}: {exc.strerror or exc}")
            return None, None
        if not value:
            self.error(key, f"{path} is empty")
            return None, None
        return value, f"file {path}"

    def names(self) -> list[str]:
        return list(self._data)

    def raw(self, name: str) -> object:
        return self._get(name)

    def done(self) -> None:
        """Report every key that was never read as unknown."""
        for name in self._data:
            if name not in self._seen:
                self.error(name, "unknown key")

    def secret(
        self, name: str, environ: Mapping[str, str], *, required: bool
    ) -> tuple[str | None, str | None]:
        """``<name>_env`` or ``<name>_file``; returns (value, where it came from)."""
        self._seen.add(name)
        if name in self._data:
            self.error(
                name,
                f"secrets are not written in the file; use {name}_env or {name}_file",
            )
        env = self.opt_text(f"{name}_env")
        path = self.opt_path(f"{name}_file")
        if env is not None and path is not None:
            self.error(f"{name}_env", f"give one of {name}_env and {name}_file, not both")
            return None, None
        if env is not None:
            return self._secret_from_env(f"{name}_env", env, environ)
        if path is not None:
            return self._secret_from_file(f"{name}_file", path)
        if required:
            self.error(f"{name}_env", f"required: set {name}_env or {name}_file")
        return None, None


def read_fields(
    t: Table,
    cls: type[Any],
    *,
    defaults: Mapping[str, object] | None = None,
    skip: Sequence[str] = (),
) -> dict[str, Any]:
    """The constructor arguments of the settings dataclass ``cls`` read from table ``t``.

    Each configurable field is read under its key (its name unless its spec says otherwise)
    by the type its annotation names, with the field's own default (or ``defaults[name]``,
    a deliberate difference of the configuration file from the library) and the spec's
    limits. A value in error is replaced by its default, so that the other checks still run.
    Fields in ``skip`` are left to the caller.
    """
    overrides = defaults or {}
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        spec = spec_of(f)
        if not spec.configurable or f.name in skip:
            continue
        key = spec.key or f.name
        default = overrides.get(f.name, f.default)
        if default is dataclasses.MISSING and not t.has(key):
            t.error(key, "required")
            continue
        if spec.scale != 1.0 and isinstance(default, int | float):
            default = default / spec.scale
        kind = str(f.type).replace(" ", "")
        reader = _text if spec.choices else _READERS.get(kind)
        if reader is None:  # pragma: no cover - a field of a type no file can write
            msg = f"{cls.__name__}.{f.name}: no reader for {kind}"
            raise TypeError(msg)
        value = reader(t, key, spec, default)
        if spec.scale != 1.0 and isinstance(value, int | float):
            value = value * spec.scale
        values[f.name] = value
    return values


def _text(t: Table, key: str, spec: Spec, default: Any) -> Any:  # noqa: ANN401
    if spec.path:
        return t.opt_path(key) if default in (None, dataclasses.MISSING) else t.path(key, default)
    if spec.choices:
        return t.choice(key, default, spec.choices)
    if default is dataclasses.MISSING:
        return t.opt_text(key, required=True)
    return t.opt_text(key) if default is None else t.text(key, default)


def _flag(t: Table, key: str, _spec: Spec, default: Any) -> Any:  # noqa: ANN401
    return t.flag(key, default=default)


def _integer(t: Table, key: str, spec: Spec, default: Any) -> Any:  # noqa: ANN401
    low, high = _ints(spec.low, spec.high)
    return t.integer(key, default, low, high)


def _number(t: Table, key: str, spec: Spec, default: Any) -> Any:  # noqa: ANN401
    if spec.positive:
        return t.positive(key, default)
    return t.number(key, default, spec.low, spec.high)


def _int_list(t: Table, key: str, spec: Spec, _default: Any) -> Any:  # noqa: ANN401
    low, high = _ints(spec.low, spec.high)
    return t.int_list(key, low or 0, high or 0)


_READERS: Final[Mapping[str, Callable[[Table, str, Spec, Any], Any]]] = {
    "str": _text,
    "str|None": _text,
    "bool": _flag,
    "int": _integer,
    "float": _number,
    "tuple[int,...]": _int_list,
}
"""How a field is read, by its annotation (written without spaces)."""


def _ints(low: float | None, high: float | None) -> tuple[int | None, int | None]:
    return (
        None if low is None else int(low),
        None if high is None else int(high),
    )
