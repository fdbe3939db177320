"""QLoRA's loading phase (``training.quant_load``): the half-precision model on the GPU before it is quantized can
set the peak, where quantizing tensor by tensor never does.

Pinned on transformers #43032 (bench/cases/published_knobs.json): a 14.7 B phi-4 in NF4 on a 16 GB RTX 5080
"loads successfully in ~9GB with transformers 4.48" (tensor by tensor) "but OOMs at 15GB+ with v5" (whose loader
put the weights on the GPU at full precision first).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers_cases import load_bench_module
from helpers_spec import spec

from gpu_preflight.server.cli import main
from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.estimator.render import estimate_markdown
from gpu_preflight.tools.estimator.spec import parse_spec

CASE_ID = "hf-43032-phi4-nf4-per-tensor-load-rtx5080-mem"


@pytest.fixture(scope="module")
def phi4_case() -> dict[str, Any]:
    acc = load_bench_module("accuracy")
    path = next(p for p in acc.published_paths() if p.name == "published_knobs.json")
    return next(c for c in acc.load_cases(path) if c["id"] == CASE_ID)


def _estimate(case: dict[str, Any], **training: Any) -> Any:
    run = {k: case[k] for k in ("model", "training", "target")}
    run["training"] = {**run["training"], **training}
    return estimate_run(run, case["gpu"])


def test_per_tensor_load_is_the_reported_nine_gb_and_fits(phi4_case: dict[str, Any]) -> None:
    g = _estimate(phi4_case).memory.gpu
    assert g.breakdown.load_gb == pytest.approx(phi4_case["measured"]["value"], rel=0.15)
    assert g.breakdown.load_gb + g.breakdown.cuda_context_gb < 0.8 * g.gpu_ram_gb  # the 4.48 load fit the card
    assert g.peak_phase != "loading"  # tensor by tensor, training's own peak is larger


def test_full_model_load_does_not_fit_the_card(phi4_case: dict[str, Any]) -> None:
    """The v5 OOM: the whole half model (2 B x 14.66 B params) is on the 16 GB card before any weight is 4-bit."""
    g = _estimate(phi4_case, quant_load="full_model").memory.gpu
    assert g.peak_phase == "loading"
    assert g.breakdown.load_gb > 2 * 14.6
    assert g.verdict == "fail"
    assert g.allocated_peak_gb == g.breakdown.load_gb
    assert g.advice and "quant_load per_tensor" in g.advice[0]
    assert "while loading) -> fail" in estimate_markdown(_estimate(phi4_case, quant_load="full_model"))


def test_checkpointing_is_not_offered_for_a_loading_peak(phi4_case: dict[str, Any]) -> None:
    est = _estimate(phi4_case, quant_load="full_model")
    item = next(i for i in est.optimizations if i.key == "gradient_checkpointing")
    assert not item.applicable and "loads" in item.reason


def test_sharding_divides_the_per_tensor_load_not_the_full_model_one() -> None:
    """Each process puts its own copy of the half model on its GPU; tensor by tensor, only its shard stays."""
    def load_gb(quant_load: str, gpus: int) -> float:
        run = parse_spec(spec(model={"name": "llama-3.1-8b"}, method="qlora", lora_rank=8, seq_len=512,
                              quant_load=quant_load, num_gpus=gpus, sharding="fsdp" if gpus > 1 else None))
        return float(estimate_run(run, "RTX 4090").memory.gpu.breakdown.load_gb)

    assert load_gb("full_model", 4) == load_gb("full_model", 1)
    assert load_gb("full_model", 1) == pytest.approx(8.03e9 * 2 / 1e9, rel=0.01)
    assert load_gb("per_tensor", 4) < 0.5 * load_gb("per_tensor", 1)


def test_a_gptq_checkpoint_loads_without_a_half_copy() -> None:
    """GPTQ weights are 4-bit on disk: the load holds the quantized model and nothing more."""
    def breakdown(fmt: str) -> Any:
        run = parse_spec(spec(model={"name": "llama-3.1-8b"}, method="qlora", lora_rank=8, seq_len=512,
                              quant_format=fmt))
        return estimate_run(run, "RTX 4090").memory.gpu.breakdown

    gptq, nf4 = breakdown("gptq"), breakdown("nf4")
    assert gptq.load_gb == pytest.approx(gptq.frozen_weights_gb, abs=0.002)
    assert nf4.load_gb == pytest.approx(nf4.frozen_weights_gb + 4096 * 14336 * 2 / 1e9, abs=0.002)


def test_other_methods_have_no_loading_phase() -> None:
    g = estimate_run(parse_spec(spec(method="lora", lora_rank=8)), "RTX 4090").memory.gpu
    assert g.breakdown.load_gb == 0.0


@pytest.mark.parametrize(("training", "needle"), [
    ({"method": "qlora", "lora_rank": 8, "quant_load": "whole"}, "'per_tensor' or 'full_model'"),
    ({"method": "lora", "lora_rank": 8, "quant_load": "full_model"}, "applies only to method=qlora"),
    ({"method": "qlora", "lora_rank": 8, "quant_format": "gptq", "quant_load": "full_model"}, "already 4-bit"),
])
def test_bad_quant_load_is_one_clear_error(training: dict[str, Any], needle: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PreflightError) as err:
        parse_spec(spec(**training))
    assert "training.quant_load" in str(err.value) and needle in str(err.value)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec(**training)))
    assert main(["estimate", str(path), "--gpu", "RTX 4090"]) == 2
    err_text = capsys.readouterr().err.strip()
    assert len(err_text.splitlines()) == 1 and "spec.training.quant_load" in err_text and needle in err_text
