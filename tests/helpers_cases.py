"""The benchmark case format (bench/cases/*.json), checked the same way for published and measured cases."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.estimator.spec import parse_spec

BENCH = Path(__file__).resolve().parent.parent / "bench"
SPEC_KEYS = {"model", "training", "target", "overheads", "baseline"}
CASE_KEYS = SPEC_KEYS | {"id", "kind", "gpu", "measured", "source", "notes", "tags", "flops_basis", "quality",
                         "quality_note", "category"}
CATEGORIES = {"single_gpu_finetune", "multi_gpu_finetune", "multi_gpu_pretrain", "other"}
MEMORY = {"max_memory_allocated": {"GB", "GiB", "MB", "MiB"}, "max_memory_reserved": {"GB", "GiB", "MB", "MiB"},
          "nvidia-smi": {"GB", "GiB", "MB", "MiB"}, "load_max_memory_allocated": {"GB", "GiB", "MB", "MiB"}}
THROUGHPUT = {"tokens_per_s_per_gpu": {"tokens/s"}, "tokens_per_s_total": {"tokens/s"}, "mfu": {"fraction"},
              "gpu_hours": {"GPU-hours"}}


def check_case(case: dict[str, Any]) -> None:
    """One benchmark case is well formed: keys, citation, unit per measured kind, and a spec that estimates."""
    assert set(case) <= CASE_KEYS, set(case) - CASE_KEYS
    for key in ("id", "kind", "gpu", "measured", "source", "notes", "model", "training", "target"):
        assert key in case, key
    assert case["kind"] in ("memory", "throughput")
    assert case.get("category", "other") in CATEGORIES, case.get("category")
    assert isinstance(case["source"], str) and len(case["source"].strip()) >= 40, "cite paper+table / page+section"
    assert isinstance(case["notes"], str) and case["notes"].strip()
    measured = case["measured"]
    assert set(measured) == {"value", "unit", "what"}
    assert isinstance(measured["value"], int | float) and not isinstance(measured["value"], bool)
    assert measured["value"] > 0
    allowed = MEMORY if case["kind"] == "memory" else THROUGHPUT
    assert measured["what"] in allowed, measured["what"]
    assert measured["unit"] in allowed[measured["what"]], (measured["what"], measured["unit"])
    if measured["what"] == "mfu":
        assert measured["value"] <= 1.0
        assert case.get("flops_basis") in ("model", "hardware")
    if measured["what"].startswith("load_"):
        assert case["training"].get("method") == "qlora", "only QLoRA has a loading phase (quant_load)"
    if measured["what"] == "gpu_hours":
        assert "target_tokens" in case["target"], "GPU-hours are converted with the token count"
    if case.get("quality") is not None:  # suspect: the figure itself is doubtful; forum: one user's report
        assert case["quality"] in ("suspect", "forum") and case.get("quality_note")
    spec = {k: case[k] for k in SPEC_KEYS if k in case}
    parse_spec(spec)
    est = estimate_run(spec, case["gpu"])
    assert est.memory.gpu.peak_gb > 0
    assert (est.throughput.tokens_per_s.base or 0) > 0


def load_bench_module(name: str) -> ModuleType:
    """Import ``bench/<name>.py`` as a script would (bench/ is a folder of scripts, not a package)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module
