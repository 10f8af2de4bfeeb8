"""How replies are printed: control characters escaped for a terminal, error replies and
preview results in words, status fields as ``key=value``."""

from __future__ import annotations

import msgspec

__all__ = ["error_text", "fields_text", "preview_lines", "printable", "text_value"]


def error_text(reply: dict[str, object]) -> str:
    """An error reply as ``code: message`` (not yet made printable)."""
    return f"{reply.get('error')}: {reply.get('message')}"


def preview_lines(result: dict[str, object]) -> list[str]:
    """A preview result in words: ``would be accepted: gsm, 2 parts`` (or ``would be
    rejected: ERROR: ...``), a line per part, then the cost transliterated when there is one."""
    if result.get("ok"):
        lines = [f"would be accepted: {_cost(result)}"]
        split = result.get("split")
        for number, part in enumerate(split if isinstance(split, list) else [], 1):
            assert isinstance(part, dict)
            sizes = [f"{part[k]} {k}" for k in ("chars", "septets", "octets") if k in part]
            content = str(part["text"] if "text" in part else part.get("hex"))
            lines.append(f'  part {number}: {", ".join(sizes)}: "{printable(content)}"')
    else:
        lines = [f"would be rejected: {printable(error_text(result))}"]
    alternative = result.get("transliterated")
    if isinstance(alternative, dict):
        lines.append(f"  transliterated (--transliterate): {_cost(alternative)}")
    return [f"{line}\n" for line in lines]


def _cost(result: dict[str, object]) -> str:
    parts = result.get("parts")
    return f"{result.get('coding')}, {parts} part{'' if parts == 1 else 's'}"


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\u001b``...) for a terminal.

    A payload field may hold anything a remote party sent; printed raw, an escape sequence
    would drive the terminal and a newline would forge a line of output.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_ESCAPES.get(c) or (c if c.isprintable() else _escape(c)) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def text_value(value: object) -> str:
    """A payload value as ``status`` prints it: ``true``/``false``, numbers, strings with
    control characters escaped, anything nested as compact JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, int | float):
        return str(value)
    return printable(msgspec.json.encode(value).decode())


def fields_text(fields: dict[str, object]) -> str:
    """``key=value`` pairs of the fields that are not null."""
    return " ".join(f"{printable(k)}={text_value(v)}" for k, v in fields.items() if v is not None)
