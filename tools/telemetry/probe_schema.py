"""The probe measurements ``calibrate`` takes, published: a JSON schema, a field list, every problem.

Why: ``preflight calibrate --probe JSON`` and the MCP ``probe`` argument were documented nowhere but
in the code, and a bad probe said only its first problem and "and 1 more problem", so fixing a probe
took one round trip per mistake. Now the schema is the MCP resource ``preflight://schema/probe`` and
the tail of ``preflight calibrate --help``, both built from the :class:`~.calibrate.Probe` model (so
they cannot drift from what is validated), and a refusal lists every problem at once.

>>> from gpu_preflight.tools.telemetry.calibrate import parse_probe
>>> try:
...     parse_probe({"gpu": "RTX 4090", "gpu_util_pct": 140, "speed": 3})
... except Exception as exc:
...     print(exc.hint)  # doctest: +NORMALIZE_WHITESPACE
4 problems: probe.steps_measured: Field required; probe.gpu_util_pct: Input should be less than or equal
to 100 (got 140); probe.speed: Extra inputs are not permitted (got 3); probe: give median_step_time_s or
tokens_per_s (or both); the fields: the probe measurement fields
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from gpu_preflight.tools.common.errors import preview
from gpu_preflight.tools.common.nextstep import call

RATE_RULE = "give median_step_time_s or tokens_per_s (or both)"


def probe_json_schema() -> dict[str, Any]:
    """The Probe model's JSON schema, plus the one rule a field bound cannot say (a rate is required)."""
    from gpu_preflight.tools.telemetry.calibrate import Probe

    schema = Probe.model_json_schema()
    schema["anyOf"] = [{"required": ["median_step_time_s"]}, {"required": ["tokens_per_s"]}]
    schema["description"] = f"{schema.get('description', '').strip()} Rule: {RATE_RULE}.".strip()
    return schema


def probe_fields_help() -> str:
    """One line per probe field for ``calibrate --help``: name, type, bounds, default, meaning."""
    schema = probe_json_schema()
    required = set(schema.get("required", []))
    lines = ["probe JSON (--probe TEXT or FILE; also the MCP resource preflight://schema/probe):",
             f"  {RATE_RULE}; every other field is optional unless marked required"]
    for name, prop in schema["properties"].items():
        lines.append(f"  {name} ({_type(prop)}{'' if name in required else _default(prop)}"
                     f"{', required' if name in required else ''}){_bounds(prop)}"
                     f"{': ' + prop['description'] if prop.get('description') else ''}")
    return "\n".join(lines)


def probe_problems(exc: ValidationError, prefix: str = "probe") -> list[str]:
    """Every validation problem as ``probe.field: message (got value)``, in pydantic's order."""
    out = []
    for err in exc.errors(include_url=False):
        where = ".".join([prefix, *(str(p) for p in err["loc"])])
        msg = str(err["msg"]).removeprefix("Value error, ")
        got = "" if err["type"] == "missing" or err["loc"] == () else f" (got {preview(err.get('input'))})"
        out.append(f"{where}: {msg}{got}")
    return out


def problems_hint(exc: ValidationError, data: dict[str, Any]) -> str:
    """The hint a refused probe carries: all its problems, then where the fields are described.

    The rate rule is a model check, which pydantic skips while a field is wrong; it is added here
    so the list is complete in one answer."""
    problems = probe_problems(exc)
    if data.get("median_step_time_s") is None and data.get("tokens_per_s") is None \
            and not any(RATE_RULE in p for p in problems):
        problems.append(f"probe: {RATE_RULE}")
    return f"{len(problems)} problem{'s' if len(problems) > 1 else ''}: {'; '.join(problems)}; the fields: " \
           f"{call('probe_schema')}"


def _type(prop: dict[str, Any]) -> str:
    kinds = [p.get("type") for p in prop.get("anyOf", [prop]) if p.get("type") not in (None, "null")]
    return "/".join(str(k) for k in kinds) or "any"


def _default(prop: dict[str, Any]) -> str:
    return f", default {json.dumps(prop['default'])}" if prop.get("default") is not None else ""


def _bounds(prop: dict[str, Any]) -> str:
    found = [p for p in prop.get("anyOf", [prop]) if p.get("type") not in (None, "null")]
    first = found[0] if found else prop
    marks = [f"{sign} {first[key]:g}" for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                          ("maximum", "<="), ("exclusiveMaximum", "<"))
             if isinstance(first.get(key), int | float)]
    return f" [{', '.join(marks)}]" if marks else ""
