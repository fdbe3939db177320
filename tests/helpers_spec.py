"""Small builders for run specs used across estimator tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def spec(model: dict[str, Any] | None = None, **training: Any) -> dict[str, Any]:
    """A minimal valid spec: GPT-2 124M, seq 1024, micro-batch 1, 10 steps, overridable."""
    base: dict[str, Any] = {
        "model": model or {"name": "gpt2"},
        "training": {"seq_len": 1024, "micro_batch": 1},
        "target": {"target_steps": 10},
        "overheads": {"setup_debug_hours": 1.0},
    }
    base["training"].update(training)
    return base


def with_change(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy with one dotted key set (``"training.micro_batch"``); value ``...`` deletes it."""
    out = copy.deepcopy(data)
    node = out
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return out
