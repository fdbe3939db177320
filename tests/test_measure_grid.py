"""bench/measure_grid.py: the grid the issue asks for, cases that the benchmark can score, and (where
torch is installed) models whose size is exactly what the estimator assumes.

Why: the grid is run on a lent GPU, rarely and at a cost; everything that can go wrong before the GPU
is reached (a wrong grid, a case the benchmark rejects, a model that is not the preset) is checked
here. The torch-backed tests skip where torch is absent (CI); they ran on the CPU build of torch
2.13 on the development machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers_cases import check_case, load_bench_module

from gpu_preflight.tools.estimator.modelshape import lora_trainable_params, preset_names

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


grid = load_bench_module("measure_grid")


def _result(point: Any, **over: Any) -> dict[str, Any]:
    """A gridrun result as bench/gridrun.py prints it (values of the size an H100 run gives)."""
    return {"point": grid.asdict(point), "device": "cuda", "torch": "2.9.1+cu128", "cuda": "12.8",
            "device_name": "NVIDIA H100 80GB HBM3", "params_total": 124_439_808, "params_trainable": 124_439_808,
            "params_trainable_expected": 124_439_808, "warmup_steps": 5, "timed_steps": 20, "step_time_s": 0.05,
            "tokens_per_s": 81_920.4, "loss_first": 10.9, "loss_last": 7.2,
            "max_memory_allocated_bytes": 6_100_000_000, "max_memory_reserved_bytes": 7_300_000_000,
            "nvml_used_bytes": 8_000_000_000} | over


def test_grid_is_the_issue_matrix() -> None:
    """GPT-2 124M and 355M and a ~1B Llama-shaped model; full and LoRA; AC on/off; two micro-batches."""
    points = grid.default_grid()
    assert {p.model for p in points} == {"gpt2", "gpt2-medium", "llama-3.2-1b"}
    assert len(points) == 24 and len({p.slug for p in points}) == 24
    for model in ("gpt2", "gpt2-medium", "llama-3.2-1b"):
        mine = [p for p in points if p.model == model]
        assert {(p.method, p.activation_checkpointing) for p in mine} == {
            ("full", False), ("full", True), ("lora", False), ("lora", True)}
        assert len({p.micro_batch for p in mine}) == 2
    assert all(grid.training_spec(p)["precision"] == "bf16" for p in points)


def test_cases_from_a_run_are_valid_benchmark_cases() -> None:
    for point in grid.default_grid():
        cases = grid.cases_for(_result(point), "H100 SXM", "abc1234", "2026-11-24")
        assert [c["kind"] for c in cases] == ["throughput", "memory", "memory", "memory"]
        assert [c["measured"]["what"] for c in cases[1:]] == ["max_memory_allocated", "max_memory_reserved",
                                                              "nvidia-smi"]
        assert cases[1]["measured"] == {"value": 6.1, "unit": "GB", "what": "max_memory_allocated"}
        for case in cases:
            check_case(case)
            assert case["source"].startswith("measured on NVIDIA H100 80GB HBM3 with torch 2.9.1+cu128")
            assert case["training"]["micro_batch"] == point.micro_batch


def test_a_counter_that_was_not_read_makes_no_case() -> None:
    point = grid.default_grid()[0]
    cases = grid.cases_for(_result(point, nvml_used_bytes=None), "H100 SXM", "abc1234", "2026-11-24")
    assert [c["id"].rsplit("-", 1)[1] for c in cases] == ["tps", "alloc", "reserved"]


def test_merge_replaces_same_ids_and_keeps_other_gpus() -> None:
    point = grid.default_grid()[0]
    h100 = grid.cases_for(_result(point), "H100 SXM", "a", "2026-11-24")
    a100 = grid.cases_for(_result(point, device_name="NVIDIA A100-SXM4-80GB"), "A100 SXM4", "a", "2026-11-24")
    first = grid.merge_cases(None, h100 + a100)
    again = grid.cases_for(_result(point, tokens_per_s=90_000.0), "H100 SXM", "b", "2026-11-25")
    merged = grid.merge_cases(json.loads(json.dumps(first)), again)
    assert [c["id"] for c in merged["cases"]] == [c["id"] for c in first["cases"]]
    assert merged["cases"][0]["measured"]["value"] == 90_000.0
    assert merged["cases"][4:] == a100


def test_device_names_map_onto_the_catalogue() -> None:
    assert grid.catalogue_gpu("NVIDIA H100 80GB HBM3") == "H100 SXM"
    with pytest.raises(SystemExit, match="pass --gpu"):
        grid.catalogue_gpu("Imaginary GPU 9000")


def test_cpu_without_smoke_is_refused() -> None:
    proc = subprocess.run([sys.executable, str(BENCH / "measure_grid.py"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "only with --smoke" in proc.stderr


# --- with torch -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gridrun() -> ModuleType:
    pytest.importorskip("torch", reason="torch is not installed (it is not a project dependency)")
    return load_bench_module("gridrun")


@pytest.mark.parametrize("name", preset_names())
def test_built_model_has_the_presets_parameter_count(gridrun: ModuleType, name: str) -> None:
    import torch

    m = gridrun.resolve(name)
    with torch.device("meta"):  # shapes only: a 72B model costs no memory
        model = gridrun.build_model(m)
        assert gridrun.count_params(model) == m.params_total
        gridrun.apply_lora(model, 16, "all_linear")
    assert gridrun.count_params(model, trainable_only=True) == lora_trainable_params(m, 16, "all_linear")


def test_a_tiny_cpu_run_reports_every_field(gridrun: ModuleType) -> None:
    point = {"model": "gpt2", "method": "lora", "activation_checkpointing": True, "micro_batch": 1,
             "seq_len": 32, "lora_rank": 8, "lora_targets": "attention"}
    result = gridrun.run_point(point, "cpu", warmup=1, steps=1)
    assert "error" not in result
    assert result["params_total"] == 124_439_808
    assert result["params_trainable"] == result["params_trainable_expected"] == 8 * 4 * 2 * 768 * 12
    assert result["tokens_per_s"] > 0 and result["step_time_s"] > 0
    assert 9.0 < result["loss_first"] < 12.0  # HF-style init: near ln(50257) = 10.8
    assert result["max_memory_allocated_bytes"] is None  # no CUDA counters on the CPU


@pytest.mark.gpu
def test_a_cuda_run_reports_every_counter(gridrun: ModuleType) -> None:
    """On a lent GPU: the smallest grid point, for real, with the memory counters the cases need."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    point = grid.asdict(grid.default_grid()[0]) | {"seq_len": 256}
    result = gridrun.run_point(point, "cuda", warmup=2, steps=3)
    assert "error" not in result
    alloc, reserved = result["max_memory_allocated_bytes"], result["max_memory_reserved_bytes"]
    assert 124_439_808 * 16 < alloc <= reserved  # weights + grads + Adam states, at least
    assert result["tokens_per_s"] > 0
    cases = grid.cases_for(result, grid.catalogue_gpu(result["device_name"]), "test", "today")
    for case in cases:
        check_case(case)
