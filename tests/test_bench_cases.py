"""The published-measurement cases stay well formed, cited and runnable.

Why: the accuracy figures in the README are only as good as the case file behind them. A case
without a source cannot be checked again, a unit typo silently shifts an error by 7% (GB vs GiB) or
1000x, and a spec that no longer parses would drop out of the benchmark unnoticed. These tests run
offline and without a GPU, like the benchmark itself.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gpu_preflight.tools.estimate import estimate_run
from gpu_preflight.tools.spec import parse_spec

ROOT = Path(__file__).resolve().parent.parent
CASES_FILE = ROOT / "bench" / "cases" / "published.json"
SPEC_KEYS = {"model", "training", "target", "overheads", "baseline"}
CASE_KEYS = SPEC_KEYS | {"id", "kind", "gpu", "measured", "source", "notes", "tags", "flops_basis", "quality",
                         "quality_note"}
MEMORY = {"max_memory_allocated": {"GB", "GiB", "MB", "MiB"}, "max_memory_reserved": {"GB", "GiB", "MB", "MiB"},
          "nvidia-smi": {"GB", "GiB", "MB", "MiB"}}
THROUGHPUT = {"tokens_per_s_per_gpu": {"tokens/s"}, "tokens_per_s_total": {"tokens/s"}, "mfu": {"fraction"},
              "gpu_hours": {"GPU-hours"}}


def _cases() -> list[dict[str, Any]]:
    data = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    cases = data["cases"]
    assert isinstance(cases, list)
    return cases


CASES = _cases()


def _load_accuracy() -> ModuleType:
    """Import bench/accuracy.py as a script would (bench/ is not an installed package)."""
    bench = str(ROOT / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    spec = importlib.util.spec_from_file_location("bench_accuracy", ROOT / "bench" / "accuracy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def test_enough_cases_of_both_kinds() -> None:
    kinds = [c["kind"] for c in CASES]
    assert len(CASES) >= 25
    assert kinds.count("memory") >= 10
    assert kinds.count("throughput") >= 10


def test_ids_are_unique() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_schema(case: dict[str, Any]) -> None:
    assert set(case) <= CASE_KEYS, set(case) - CASE_KEYS
    for key in ("id", "kind", "gpu", "measured", "source", "notes", "model", "training", "target"):
        assert key in case, key
    assert case["kind"] in ("memory", "throughput")
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
    if measured["what"] == "gpu_hours":
        assert "target_tokens" in case["target"], "GPU-hours are converted with the token count"
    if case.get("quality") is not None:
        assert case["quality"] == "suspect" and case.get("quality_note")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_spec_parses_and_estimates(case: dict[str, Any]) -> None:
    spec = {k: case[k] for k in SPEC_KEYS if k in case}
    parse_spec(spec)
    est = estimate_run(spec, case["gpu"])
    assert est.memory.gpu.peak_gb > 0
    assert (est.throughput.tokens_per_s.base or 0) > 0


def test_benchmark_runs_and_scores_both_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    accuracy = _load_accuracy()
    assert accuracy.main(["--peers"]) == 0
    out = capsys.readouterr().out
    assert "memory summary, all cases" in out
    assert "throughput summary, all cases" in out
    for name in ("ours", "playbook", "deepspeed", "eleuther"):
        assert f"  {name} " in out


def test_deepspeed_transcription_matches_its_documented_formulas() -> None:
    """ZeRO-2 no offload is 4P + 16P/N; ZeRO-3 no offload 4*largest + 18P/N (DeepSpeed's estimators)."""
    _load_accuracy()
    import peers  # type: ignore[import-not-found]

    p = 1_000_000_000
    assert peers.ds_estimate_zero2_model_states_mem_needs(p, 8, 1, cpu_offload=False)[1] == 4 * p + 2 * p
    assert peers.ds_estimate_zero3_model_states_mem_needs(p, 10, 8, 1, cpu_offload=False)[1] == 40 + int(18 * p / 8)
