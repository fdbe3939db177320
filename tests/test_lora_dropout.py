"""``training.lora_dropout`` and ``training.lora_qkv_merged``: what LoRA's input dropout keeps for backward.

Why: PEFT gives every adapted matrix its own ``nn.Dropout`` (``lora_B(lora_A(dropout(x)))``), so each ``lora_A``
keeps that adapter's dropped-out input and dropout keeps its mask, where without dropout every adapter of a group
keeps the one shared input. LitGPT's ``LoRAQKVLinear`` runs one dropout for its q/k/v parts. The memory side is
checked against real transformers + PEFT (saved tensors of one Llama decoder layer on CPU, where the unfused dropout
keeps a noise tensor of the input's dtype instead of CUDA's 1-byte mask); the effect is pinned on LitGPT's resource
tables (bench/cases/published_extra.json), whose LoRA runs use dropout 0.05.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers_cases import load_bench_module
from helpers_spec import spec
from helpers_torch import torch_python

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.estimator.memory_knobs import adapter_copy_bytes_per_token, frozen_unsaved_bytes_per_token
from gpu_preflight.tools.estimator.modelshape import resolve_model
from gpu_preflight.tools.estimator.spec import ModelSpec, TrainingSpec, parse_spec

PROGRAM = Path(__file__).resolve().parent / "realprograms" / "peft_saved_bytes.py"
HIDDEN, INTER, TOKENS, RANK, P = 256, 688, 2048, 8, 0.1
QV, MLP = ["q_proj", "v_proj"], ["gate_proj", "up_proj", "down_proj"]
# (targets, adapter dtype, autocast, bytes of the CPU dropout's kept noise: the dtype dropout runs in)
CASES = [(QV, "base", False, 2), (MLP, "base", False, 2), (QV, "fp32", False, 4), (QV, "fp32", True, 4)]


@pytest.fixture(scope="module")
def real_saved() -> dict[str, float]:
    """Saved bytes per token of every case with and without dropout, from one run of the real program."""
    python, why = torch_python("torch, transformers, peft")
    if python is None:
        pytest.skip(why)
    keys = [f"{','.join(t)}:{dtype}:{int(amp)}{drop}" for t, dtype, amp, _ in CASES for drop in ("", f":{P}")]
    out = subprocess.run([python, str(PROGRAM), str(HIDDEN), str(INTER), str(TOKENS), str(RANK), *keys],
                         capture_output=True, text=True, timeout=600, check=True)
    return dict(zip(keys, json.loads(out.stdout.strip().splitlines()[-1]), strict=True))


def _kept(t: TrainingSpec, mask_bytes: float) -> float:
    m = resolve_model(ModelSpec(family="llama", n_layers=1, hidden_size=HIDDEN, n_heads=4, n_kv_heads=4,
                                intermediate_size=INTER, vocab_size=256, tied_embeddings=False, mlp_gated=True))
    return adapter_copy_bytes_per_token(m, t, mask_bytes) - frozen_unsaved_bytes_per_token(m, t)


@pytest.mark.parametrize(("targets", "dtype", "amp", "cpu_mask"), CASES)
def test_dropout_bytes_match_real_peft(real_saved: dict[str, float], targets: list[str], dtype: str, amp: bool,
                                       cpu_mask: int) -> None:
    """What lora_dropout adds to one layer's saved tensors, measured with real PEFT, against the estimator's count
    with the CPU dropout's noise size: exact, since the rank-r intermediates are the same with and without."""
    key = f"{','.join(targets)}:{dtype}:{int(amp)}"
    measured = real_saved[f"{key}:{P}"] - real_saved[key]
    t = TrainingSpec(seq_len=TOKENS, micro_batch=1, method="lora", lora_rank=RANK, lora_targets=tuple(targets),
                     precision="bf16", master_weights_fp32=amp, lora_adapter_dtype=dtype, lora_dropout=P)
    predicted = _kept(t, cpu_mask) - _kept(t.model_copy(update={"lora_dropout": 0.0}), cpu_mask)
    assert predicted > 0
    assert measured == pytest.approx(predicted, abs=1.0)


def test_one_merged_qkv_module_keeps_one_dropout() -> None:
    m = resolve_model(ModelSpec(name="llama-3.2-3b"))
    t = TrainingSpec(seq_len=512, micro_batch=1, method="lora", lora_rank=8, lora_targets=("q_proj", "v_proj"),
                     lora_dropout=0.05)
    apart, merged = (adapter_copy_bytes_per_token(m, t.model_copy(update={"lora_qkv_merged": merge}))
                     for merge in (False, True))
    assert apart == 2 * merged == 2 * 3072 * 3


def test_litgpt_sets_its_lora_defaults_and_says_so() -> None:
    est = estimate_run(parse_spec(spec(model={"name": "llama-3.2-1b"}, method="qlora", lora_rank=8,
                                       framework="litgpt")), "A100 SXM4")
    line = next(a for a in est.assumptions if a.startswith("training.framework litgpt"))
    for knob in ("lora_dropout=0.05", "lora_qkv_merged=True", "quant_lm_head=True", "loss=chunked"):
        assert knob in line
    lora = parse_spec(spec(model={"name": "llama-3.2-1b"}, method="lora", lora_rank=8, framework="litgpt"))
    assert lora.training.lora_dropout == 0.05 and not lora.training.quant_lm_head  # qlora-only knobs stay off


@pytest.fixture(scope="module")
def litgpt_rows() -> list[dict[str, Any]]:
    acc = load_bench_module("accuracy")
    path = next(p for p in acc.published_paths() if p.name == "published_extra.json")
    return [c for c in acc.load_cases(path) if c["id"].startswith("litgpt-rt-") and c["kind"] == "memory"]


def _error(acc_case: dict[str, Any], **training: Any) -> float:
    case = json.loads(json.dumps(acc_case))
    case["training"].update(training)
    unit = {"GB": 1.0, "GiB": 2**30 / 1e9}[case["measured"]["unit"]]
    est = estimate_run({k: case[k] for k in ("model", "training", "target") if k in case}, case["gpu"])
    return est.memory.gpu.allocated_peak_gb / (case["measured"]["value"] * unit) - 1


def test_litgpt_resource_tables_with_its_dropout(litgpt_rows: list[dict[str, Any]]) -> None:
    """LitGPT's 2023 resource tables (dropout 0.05, one q/v module): the LoRA rows stay within 3 %, and every QLoRA
    row is nearer its measurement with the dropout counted than without."""
    assert len(litgpt_rows) == 6
    for case in litgpt_rows:
        with_dropout = _error(case)
        if case["training"]["method"] == "lora":
            assert abs(with_dropout) < 0.03, case["id"]
        else:
            assert abs(with_dropout) < abs(_error(case, lora_dropout=0.0)), case["id"]


@pytest.mark.parametrize("value", [1.0, -0.1, "high"])
def test_bad_lora_dropout_is_one_clear_error(value: Any) -> None:
    with pytest.raises(PreflightError) as err:
        parse_spec(spec(method="lora", lora_rank=8, lora_dropout=value))
    assert "lora_dropout" in str(err.value)


@pytest.mark.parametrize(("field", "value", "methods"), [
    ("lora_dropout", 0.1, "method=lora or qlora"), ("lora_qkv_merged", True, "method=lora or qlora"),
    ("lora_adapter_dtype", "fp32", "method=lora or qlora"), ("kbit_upcast_fp32", True, "method=qlora")])
def test_an_adapter_knob_on_a_full_fine_tune_is_refused_not_ignored(field: str, value: Any, methods: str) -> None:
    with pytest.raises(PreflightError) as err:
        parse_spec(spec(**{field: value}))
    assert err.value.one_line().startswith(f"spec.training.{field}") and methods in err.value.one_line()


def test_a_framework_offers_adapter_defaults_only_to_adapter_runs() -> None:
    """LitGPT's LoRA defaults (dropout 0.05, merged q/k/v) would be refused on a full fine-tune: not offered."""
    full = parse_spec(spec(framework="litgpt")).training
    lora = parse_spec(spec(framework="litgpt", method="lora", lora_rank=8)).training
    assert "lora_dropout" not in full.from_framework and full.lora_dropout == 0.0
    assert lora.lora_dropout == 0.05 and lora.lora_qkv_merged
