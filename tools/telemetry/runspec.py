"""What a run's checklist knows that its log does not: tokens per step and the GPU's name.

Why: HF Trainer and nanoGPT print step times but no tokens, so without the spec the throughput
trigger has nothing to compare with a tokens/s prediction; and a probe's JSON often leaves out the
GPU the checklist's estimate already named. The checklist is a separate component: when it is not
installed, or holds nothing, these answer None and the caller says so.
"""

from __future__ import annotations

import json
import re
from contextlib import closing
from typing import Any

from gpu_preflight.tools.common.errors import PreflightError

_COUNT_PREFIX = re.compile(r"^\s*\d+\s*x\s*", re.IGNORECASE)
_GPU_KEYS = ("gpu", "gpu_name", "gpu_option")


def checklist_spec(checklist_id: str) -> dict[str, Any] | None:
    """The spec the checklist holds, or None (no checklist component, unknown id, no spec)."""
    try:
        from gpu_preflight.checklist.store import get_checklist, open_db
    except ModuleNotFoundError:
        return None
    try:
        with closing(open_db()) as conn:
            row = get_checklist(conn, checklist_id)
    except PreflightError:
        return None
    if not row.spec_json:
        return None
    data: dict[str, Any] = json.loads(row.spec_json)
    return data


def spec_tokens_per_step(spec: dict[str, Any] | None) -> int | None:
    """micro_batch x seq_len x grad_accum x data-parallel GPUs, from the spec (None when it has none)."""
    if spec is None:
        return None
    from gpu_preflight.tools.estimator.spec import parse_spec

    try:
        return int(parse_spec(spec).training.tokens_per_step)
    except PreflightError:
        return None


def _find_gpu(node: Any) -> str | None:
    if isinstance(node, dict):
        for key in _GPU_KEYS:
            value = node.get(key)
            if isinstance(value, str) and value.strip():
                return _COUNT_PREFIX.sub("", value).split(" (")[0].strip() or None
        for value in node.values():
            found = _find_gpu(value)
            if found:
                return found
    if isinstance(node, list):
        for value in node:
            found = _find_gpu(value)
            if found:
                return found
    return None


def checklist_gpu(checklist_id: str) -> str | None:
    """The GPU name the checklist's latest estimate or option table recorded, or None."""
    try:
        from gpu_preflight.checklist.store import open_db
    except ModuleNotFoundError:
        return None
    with closing(open_db()) as conn:
        rows = conn.execute("SELECT evidence_json FROM evidence WHERE checklist_id = ? ORDER BY id DESC",
                            (checklist_id,)).fetchall()
    for (text,) in rows:
        found = _find_gpu(json.loads(text))
        if found:
            return found
    return None
