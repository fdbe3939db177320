"""Parsed data within limits: JSON and TOML that cannot overflow the stack, and numbers that are physical.

Why: a spec or evidence nested 1,000 deep raised RecursionError (a traceback); a 4,301-digit integer
raised Python's int-conversion ValueError; ``NaN``/``Infinity``/``1e308`` flowed into arithmetic. The
same rules serve the CLI (these parsers) and the MCP server (``server._errors`` calls
:func:`check_value` on every argument), so both refuse the same input with the same one line.
Errors quote the source's name and where it broke, never the text itself.
"""

from __future__ import annotations

import argparse
import json
import math
import tomllib
from collections.abc import Callable
from typing import Any

from gpu_preflight.tools.common.errors import PreflightError, preview

MAX_DEPTH = 32
"""Deepest nesting any input needs (a spec is 3 levels, checklist evidence 4)."""
MAX_MAGNITUDE = 1e15
"""Largest magnitude of any number anywhere: above every physical quantity taken (token counts reach ~1e14).
Per-field ranges are tighter and checked by each model."""


def field_name(key: Any) -> str:
    """A dict key as it may appear in a one-line field path (controls and blanks shown escaped)."""
    text = str(key)
    plain = text.isprintable() and text.isascii() and text.strip() == text != "" and not set(text) & set(".:;[")
    return text if plain else preview(key).replace(":", "\\x3a")  # ": got" ends the field in a one-line error


def check_value(value: Any, field: str, *, numbers: bool = True) -> None:
    """Refuse nesting past :data:`MAX_DEPTH` and non-physical numbers anywhere in ``value``, naming the path.

    Iterative, so the check itself cannot overflow the stack it protects.

    >>> check_value({"a": [1, 2.5, {"b": "x"}]}, "spec")
    >>> check_value({"a": [float("inf")]}, "spec")
    Traceback (most recent call last):
    ...
    gpu_preflight.tools.common.errors.PreflightError: spec.a[0]: got inf; allowed: a finite number within ±1e+15
    """
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PreflightError(field, f"nesting deeper than {MAX_DEPTH} levels", f"at most {MAX_DEPTH} levels")
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if not numbers and isinstance(item, int | float):
            continue  # the caller judges numbers itself (an offers file skips a bad record, with its reason)
        if isinstance(item, int):
            if abs(item) > MAX_MAGNITUDE:
                shown: Any = item if item.bit_length() < 64 else f"an integer of {len(str(abs(item)))} digits"
                raise PreflightError(path, shown, f"a number within ±{MAX_MAGNITUDE:g}")
        elif isinstance(item, float):
            if not math.isfinite(item) or abs(item) > MAX_MAGNITUDE:
                raise PreflightError(path, item, f"a finite number within ±{MAX_MAGNITUDE:g}")
        elif isinstance(item, dict):
            stack.extend((v, f"{path}.{field_name(k)}", depth + 1) for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))


def loads_json(text: str, *, field: str, source: str, allowed: str, numbers: bool = True) -> Any:
    """``json.loads`` with every failure as one line naming ``field`` and ``source`` (a name, never the text).

    >>> loads_json("[" * 1000, field="--evidence", source="inline", allowed="a JSON object")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    gpu_preflight.tools.common.errors.PreflightError: --evidence: got 'inline: nested too deeply'; ...
    """
    try:
        data = json.loads(text)  # NaN / Infinity parse, then check_value refuses them naming the exact field
    except json.JSONDecodeError as exc:
        raise PreflightError(field, source, allowed, f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") \
            from None
    except RecursionError:
        raise PreflightError(field, f"{source}: nested too deeply", allowed) from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise PreflightError(field, f"{source}: a number too long to read", allowed, str(exc).split(":")[0]) \
            from None
    check_value(data, field, numbers=numbers)
    return data


def loads_toml(text: str, *, field: str, source: str, allowed: str) -> dict[str, Any]:
    """``tomllib.loads`` with the same guarantees as :func:`loads_json` (TOML's ``nan``/``inf`` refused too)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PreflightError(field, source, allowed, f"not TOML: {exc}") from None
    except RecursionError:
        raise PreflightError(field, f"{source}: nested too deeply", allowed) from None
    except ValueError as exc:
        raise PreflightError(field, f"{source}: a number too long to read", allowed, str(exc).split(":")[0]) \
            from None
    check_value(data, field)
    return data


def quantity(lo: float, hi: float, unit: str, *, integer: bool = False, lo_open: bool = True) -> Callable[[str], Any]:
    """An argparse ``type=`` for a physical quantity: finite, within ``(lo, hi]`` (``[lo, hi]`` unless ``lo_open``).

    Why not ``type=float``: it takes ``inf``, ``nan``, ``-5`` and 400-digit numbers, which then fail deep
    inside arithmetic (a traceback) or silently price nothing. argparse turns the ``ArgumentTypeError``
    into one line naming the flag, exit 2.

    >>> quantity(0, 100, "GB")("12.5"), quantity(0, 10, "rows", integer=True, lo_open=False)("3")
    (12.5, 3)
    """
    low = f"> {lo:g}" if lo_open else f">= {lo:g}"
    allowed = f"{'a whole number' if integer else 'a number'} of {unit}, {low} and <= {hi:g}"

    def parse(text: str) -> Any:
        value: float | int
        try:
            if len(text) > 40:
                raise ValueError("too long")
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {preview(text)}; allowed: {allowed}") from None
        if not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
            raise argparse.ArgumentTypeError(f"got {preview(text)}; allowed: {allowed}")
        return value

    parse.__name__ = unit  # argparse names the type in some messages
    return parse
