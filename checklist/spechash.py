"""The fingerprint that ties evidence to the run spec it was computed for.

Why canonical JSON: the same spec sent by the CLI (from TOML) and by an MCP client (from JSON) must
hash the same, whatever the key order or whitespace, so evidence only goes stale when a value
changes (say, micro-batch doubled), never because a file was reformatted.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gpu_preflight.tools.common.errors import PreflightError

NO_SPEC_HASH = hashlib.sha256(b"null").hexdigest()


def canonical_spec_json(spec: object) -> str | None:
    """Sorted keys, no whitespace, finite numbers only; ``None`` for "no spec yet"."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise PreflightError("spec", spec, "a JSON object (the run spec) or null")
    try:
        return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PreflightError("spec", spec, "JSON values only (no NaN/Infinity, no objects)", str(exc)) from None


def spec_hash(spec: dict[str, Any] | None) -> str:
    """sha256 hex of :func:`canonical_spec_json`; a fixed value when there is no spec."""
    text = canonical_spec_json(spec)
    return NO_SPEC_HASH if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()
