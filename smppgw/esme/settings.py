"""What a settings field may hold, written once beside the field itself.

Every layer's settings dataclass (``SessionSettings``, ``BindManagerSettings``,
``IntakeSettings``...) carries its defaults as ordinary dataclass defaults; :func:`setting`
adds, in the field's metadata, the range or choices a configuration file may give it, the
file's key when it is not the field's name, and whether it is a path or a secret. A reader
(``smppgw.gateway.config``) walks the fields with :func:`spec_of`; the library itself never
reads configuration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Spec", "default_of", "setting", "spec_of"]

_KEY: Final = "smppgw.setting"


@dataclass(frozen=True, slots=True)
class Spec:
    """What a configuration file may write in one settings field.

    Attributes:
        low, high: the inclusive range of a number (None: unbounded).
        positive: the number must be > 0.
        choices: the only strings accepted.
        key: the configuration key, when it is not the field's name.
        path: a file path, relative to the configuration file's folder unless absolute.
        scale: the file writes ``value / scale`` (days for a field held in seconds).
        configurable: False for a field no configuration file may set.
    """

    low: float | None = None
    high: float | None = None
    positive: bool = False
    choices: tuple[str, ...] = ()
    key: str | None = None
    path: bool = False
    scale: float = 1.0
    configurable: bool = True


_PLAIN: Final = Spec()
_FIXED: Final = Spec(configurable=False)


def setting(
    default: Any = dataclasses.MISSING,  # noqa: ANN401 - any field's default
    *,
    low: float | None = None,
    high: float | None = None,
    positive: bool = False,
    choices: tuple[str, ...] = (),
    key: str | None = None,
    path: bool = False,
    scale: float = 1.0,
    configurable: bool = True,
    repr: bool = True,  # noqa: A002 - the dataclasses.field keyword
) -> Any:  # noqa: ANN401 - stands for the field's value, as dataclasses.field does
    """A dataclass field with its default and what a configuration file may write in it."""
    spec = Spec(low, high, positive, choices, key, path, scale, configurable)
    return dataclasses.field(default=default, repr=repr, metadata={_KEY: spec})


def spec_of(field: dataclasses.Field[Any]) -> Spec:
    """The field's :class:`Spec`: a plain one when it has none, a fixed one when it is not
    initialised by the constructor."""
    if not field.init:
        return _FIXED
    spec = field.metadata.get(_KEY)
    return spec if isinstance(spec, Spec) else _PLAIN


def default_of(cls: type[Any], name: str) -> Any:  # noqa: ANN401 - any field's value
    """The default of field ``name`` of the dataclass ``cls``, for a field of another settings
    class that takes the same value (the default stays written in one place)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            break
    msg = f"{cls.__name__}.{name} has no default"
    raise LookupError(msg)
