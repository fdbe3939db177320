"""One error type for bad input, so the CLI and the MCP server can say the same clear thing.

Every refusal names the field, what was sent and what is allowed; the CLI prints
:meth:`PreflightError.one_line` and exits 2, the MCP server raises it as a ``ToolError``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

_PREVIEW_CHARS = 60


def preview(value: Any) -> str:
    """A short, single-line, printable rendering of a value a caller sent."""
    text = str(value) if isinstance(value, float) and not math.isfinite(value) else repr(value)
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 3] + "..."


class PreflightError(ValueError):
    """Bad input or a refused request: ``field``, what was ``got``, what is ``allowed``."""

    def __init__(self, field: str, got: Any, allowed: str, hint: str = "") -> None:
        self.field = field
        self.got = got
        self.allowed = allowed
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = f"{self.field}: got {preview(self.got)}; allowed: {self.allowed}"
        if self.hint:
            text += f" ({self.hint})"
        return text


def _loc(loc: tuple[int | str, ...], prefix: str) -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(item)
    return ".".join(parts) or "(input)"


def from_validation_error(exc: ValidationError, prefix: str = "") -> PreflightError:
    """Turn pydantic's multi-line report into one :class:`PreflightError` (first problem first).

    Pydantic's ``msg`` already says what is allowed ("Input should be greater than 0"); we keep
    it, name the dotted field and show the value sent. Further problems are counted, not listed,
    so the answer stays one line.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = _loc(tuple(first["loc"]), prefix)
    msg = str(first["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    more = len(errors) - 1
    hint = f"and {more} more problem{'s' if more > 1 else ''}" if more else ""
    got = first.get("input", None) if first["type"] != "missing" else "(missing)"
    return PreflightError(field, got, msg, hint)


def has_control_chars(text: str, allow_newlines: bool = False) -> bool:
    """True when ``text`` holds a control character (NUL included), which no name or reason needs.

    Why it matters beyond looks: SQLite's ``length()`` stops at the first NUL, so a name like
    ``"\\x00x"`` reads as empty to a CHECK constraint and the insert fails after validation passed.

    >>> has_control_chars("run-1"), has_control_chars("a\\x00b"), has_control_chars("a\\nb", allow_newlines=True)
    (False, True, False)
    """
    allowed = "\n\r\t" if allow_newlines else ""
    return any((ord(ch) < 32 or ord(ch) == 127) and ch not in allowed for ch in text)


def is_existing_file(path: str | os.PathLike[str]) -> bool:
    """``Path.is_file()`` that answers False instead of raising for a path the OS cannot even look up.

    Why: ``is_file()`` swallows only "not found"-like errors; a component over 255 bytes raises
    ``OSError(ENAMETOOLONG)`` and a NUL raises ``ValueError``, which would escape a tool as a bare error.

    >>> is_existing_file("A" * 10_000), is_existing_file("a\\x00b"), is_existing_file(__file__)
    (False, False, True)
    """
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False
