"""The published-measurement cases stay well formed, cited and runnable.

Why: the accuracy figures in the README are only as good as the case file behind them. A case
without a source cannot be checked again, a unit typo silently shifts an error by 7% (GB vs GiB) or
1000x, and a spec that no longer parses would drop out of the benchmark unnoticed. These tests run
offline and without a GPU, like the benchmark itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers_cases import check_case, load_bench_module

from gpu_preflight.tools.estimator.spec import parse_spec
from gpu_preflight.tools.estimator.throughput import SCENARIO_FACTORS

ROOT = Path(__file__).resolve().parent.parent
CASE_FILES = sorted((ROOT / "bench" / "cases").glob("published*.json"))  # one file per batch of sources
MEASURED_FILE = ROOT / "bench" / "cases" / "measured.json"  # bench/measure_grid.py's output, once a GPU ran it


def _cases(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    cases = data["cases"]
    assert isinstance(cases, list)
    return cases


PUBLISHED = [c for path in CASE_FILES for c in _cases(path)]
CASES = PUBLISHED + _cases(MEASURED_FILE)


def _load_accuracy() -> ModuleType:
    return load_bench_module("accuracy")


def test_enough_cases_of_both_kinds() -> None:
    kinds = [c["kind"] for c in PUBLISHED]
    assert len(PUBLISHED) >= 25
    assert kinds.count("memory") >= 10
    assert kinds.count("throughput") >= 10


def test_ids_are_unique() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_schema_and_spec(case: dict[str, Any]) -> None:
    check_case(case)


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


@pytest.fixture(scope="module")
def scored_rows() -> list[Any]:
    accuracy = _load_accuracy()
    return [accuracy.evaluate_case(c)[0] for c in PUBLISHED]


def test_issue_goals_hold_on_the_published_cases(scored_rows: list[Any]) -> None:
    """Issue 8's goals, kept as a regression check: a change that makes the estimator worse fails here."""
    accuracy = _load_accuracy()
    memory = accuracy.score([r for r in scored_rows if r.kind == "memory"], "ours")
    # The band is judged on cases whose figure is physically possible: a suspect row (implied utilisation
    # above the card's peak, or a rate averaged over the first 2-3 steps) says nothing about the band.
    throughput = accuracy.score([r for r in scored_rows if r.kind == "throughput" and not r.suspect], "ours")
    assert memory.median_abs <= 12.0
    assert throughput.median_abs <= 25.0
    assert throughput.in_range >= 0.80
    # The refinement is worth having: the playbook's own rule scores worse on both kinds.
    assert memory.median_abs < accuracy.score([r for r in scored_rows if r.kind == "memory"], "playbook").median_abs
    playbook_tp = accuracy.score([r for r in scored_rows if r.kind == "throughput" and not r.suspect], "playbook")
    assert throughput.median_abs < playbook_tp.median_abs and throughput.in_range > playbook_tp.in_range


def test_three_small_step_runs_within_thirty_percent(scored_rows: list[Any]) -> None:
    """Issue 18: at least three published runs with under 2,000 tokens per optimizer step, each within 30 %.

    Before the step had its optimizer, adapter and host terms, PEFT's ~840-token full fine-tune of Llama-3.2-3B
    on an L40S came out +141 % (FLOPs alone). Tokens per step are the spec's own (micro-batch x accumulation x
    tokens per sample x GPUs)."""
    accuracy = _load_accuracy()
    small = []
    for case, row in zip(PUBLISHED, scored_rows, strict=True):
        if row.kind != "throughput" or row.suspect:
            continue
        tokens = parse_spec(accuracy.spec_of(case)).training.tokens_per_step
        if tokens < 2000:
            small.append((case["id"], tokens, round(row.err(row.ours), 1)))
    within = [s for s in small if abs(s[2]) <= 30.0]
    assert len(within) >= 3, small
    assert any("full" in case_id for case_id, _, _ in within), "the issue's full fine-tune case must be among them"


def test_cold_band_holds_nine_in_ten_trusted_cold_measurements(scored_rows: list[Any]) -> None:
    """SCENARIO_FACTORS_COLD's x1.3 upside is derived from these cases; it must keep holding >= 90 % of them.

    A new case outside the band means the band (or the cold MFU behind it) needs another look.
    """
    cold = [r for r in scored_rows if r.kind == "throughput" and "cold" in r.path and not r.suspect]
    assert len(cold) >= 25
    outside = [(r.case_id, round(r.measured / r.ours, 3)) for r in cold if not r.in_range]
    # Issue 18's goal is >= 90 % inside; the known misses (Qwen's 256-token LoRA steps, a per-micro-batch cost
    # we do not model; Phi-3-mini at 8k on H100, one developer's report) stay visible in the message.
    assert len(outside) <= 0.1 * len(cold), outside
    # ... and the playbook's x1.2 alone would not: the refinement changes something real.
    assert any(r.measured > SCENARIO_FACTORS["optimistic"] * r.ours for r in cold)
