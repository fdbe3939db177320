"""``training.lora_adapter_dtype``: PEFT's fp32 adapters (``autocast_adapter_dtype``, its default since 0.12).

Why a knob: PEFT upcasts bf16/fp16 adapter weights to fp32, and ``lora.Linear.forward`` casts each adapted
matrix's input to fp32 before ``lora_A`` (peft@5d602fdb src/peft/tuners/lora/layer.py#L1061). That costs
memory (each adapter keeps its own fp32 copy of its input for backward, instead of the shared half input) and
time (the casts and the fp32 element-wise passes). torchtune and litgpt keep adapters in the model's dtype.
The memory side is checked against real transformers + PEFT (saved tensors of one decoder layer); the speed
side on PEFT's own L40S method comparison (bench/cases/published_peft.json).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers_spec import spec
from helpers_torch import torch_python

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.estimator.memory_gpu import activations_bytes
from gpu_preflight.tools.estimator.memory_knobs import adapter_copy_bytes_per_token, frozen_unsaved_bytes_per_token
from gpu_preflight.tools.estimator.modelshape import resolve_model
from gpu_preflight.tools.estimator.spec import ModelSpec, TrainingSpec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "tests" / "realprograms" / "peft_saved_bytes.py"
LLAMA32_3B = {"name": "llama-3.2-3b"}
QV, MLP = ["q_proj", "v_proj"], ["gate_proj", "up_proj", "down_proj"]


def _peft(targets: list[str], rank: int, **extra: Any) -> dict[str, Any]:
    """PEFT's MetaMathQA harness as the case files map it: 4 x 210 tokens, pure bf16, no checkpointing."""
    training: dict[str, Any] = {"method": "lora", "lora_rank": rank, "lora_targets": targets, "seq_len": 210,
                                "micro_batch": 4, "precision": "bf16", "master_weights_fp32": False,
                                "attention": "sdpa", "framework": "peft"}
    return spec(model=LLAMA32_3B, **{**training, **extra})


@pytest.mark.parametrize("name", ["peft", "hf_trainer", "trl", "axolotl", "llama_factory"])
def test_peft_based_stacks_default_to_fp32_adapters(name: str) -> None:
    assert TrainingSpec(seq_len=512, micro_batch=1, method="lora", lora_rank=8, framework=name).lora_adapter_dtype \
        == "fp32"


@pytest.mark.parametrize("name", ["torchtune", "litgpt", "custom", None])
def test_own_lora_layers_keep_the_model_dtype(name: str | None) -> None:
    assert TrainingSpec(seq_len=512, micro_batch=1, method="lora", lora_rank=8, framework=name).lora_adapter_dtype \
        == "base"


def test_the_spec_wins_over_the_framework() -> None:
    t = TrainingSpec(seq_len=512, micro_batch=1, method="lora", lora_rank=8, framework="peft",
                     lora_adapter_dtype="base")
    assert t.lora_adapter_dtype == "base"


def test_the_estimate_says_what_the_framework_set() -> None:
    """An agent reads the assumptions: fp32 adapters change a LoRA peak by gigabytes, and a script that passes
    ``autocast_adapter_dtype=False`` must know to say ``base``. Knobs that do not apply are not listed."""
    lora = estimate_run(_peft(QV, 64), "L40S").assumptions
    assert any(a.startswith("training.framework peft set") and "lora_adapter_dtype=fp32" in a for a in lora)
    assert not any("kbit_upcast_fp32" in a for a in lora)  # a qlora knob
    full = estimate_run(spec(model=LLAMA32_3B, method="full", seq_len=210, micro_batch=4, framework="peft"),
                        "L40S").assumptions
    assert not any("lora_adapter_dtype" in a for a in full)
    assert any("optimizer_impl=fused" in a for a in full)
    given = estimate_run(_peft(QV, 64, lora_adapter_dtype="base"), "L40S").assumptions
    assert not any("lora_adapter_dtype" in a for a in given)  # the spec said it: not the framework's


def test_advice_offers_base_adapters_when_their_copies_matter() -> None:
    """Llama-3.1-8B, LoRA on every linear, 2 x 4,096 tokens, no checkpointing, PEFT's default on a 24 GB card:
    the fp32 input copies are (6 x 4096 + 14336) x 4 - (2 x 4096 + 14336) x 2 = 110,592 B per token and layer
    more than bf16 adapters keep, x 32 layers x 8,192 tokens = 29.0 GB. The advice names the knob and the PEFT
    call, with that figure; with base adapters it does not."""
    lora8b = {"method": "lora", "lora_rank": 16, "lora_targets": "all_linear", "seq_len": 4096, "micro_batch": 2,
              "framework": "peft", "precision": "bf16", "master_weights_fp32": False}
    advice = estimate_run(spec(model={"name": "llama-3.1-8b"}, **lora8b), "RTX 4090").memory.gpu.advice
    tip = [a for a in advice if a.startswith("lora_adapter_dtype base")]
    assert len(tip) == 1 and "autocast_adapter_dtype=False" in tip[0]
    assert f"{110_592 * 32 * 8192 / 1e9:.1f} GB" in tip[0]
    base = estimate_run(spec(model={"name": "llama-3.1-8b"}, **lora8b, lora_adapter_dtype="base"), "RTX 4090")
    assert not any("lora_adapter_dtype" in a for a in base.memory.gpu.advice)


def test_bad_value_is_one_line_naming_the_field() -> None:
    with pytest.raises(PreflightError) as info:
        parse_spec(spec(method="lora", lora_rank=8, lora_adapter_dtype="fp16"))
    line = info.value.one_line()
    assert line.startswith("spec.training.lora_adapter_dtype") and "'fp32' or 'base'" in line and "\n" not in line


def test_fp32_adapter_states_by_hand() -> None:
    """fp32 adapters: weights 4 + gradients 4 + AdamW's two fp32 moments 8 = 16 B per trainable parameter on a
    pure-bf16 run (bf16 adapters: 2 + 2 + 4 = 8)."""
    fp32 = estimate_run(_peft(QV, 64), "L40S")
    base = estimate_run(_peft(QV, 64, lora_adapter_dtype="base"), "L40S")
    trainable = 18_350_080  # PEFT's own count for r64 on q/v (the results file's num_trainable_params)
    extra_gb = (fp32.memory.gpu.breakdown.weights_gb + fp32.memory.gpu.breakdown.gradients_gb
                + fp32.memory.gpu.breakdown.optimizer_gb) - (base.memory.gpu.breakdown.weights_gb
                + base.memory.gpu.breakdown.gradients_gb + base.memory.gpu.breakdown.optimizer_gb)
    assert extra_gb == pytest.approx(trainable * 8 / 1e9, abs=0.01)


def test_fp32_adapters_keep_their_input_copies_on_the_mlp_case() -> None:
    """r10 on gate/up/down of Llama-3.2-3B: each adapter keeps an fp32 copy of its input, (3072 + 3072 + 8192)
    x 4 B, and the half inputs (the MLP norm's output and down_proj's input) are no longer kept: 57,344 -
    (3072 + 8192) x 2 = 34,816 B more per token and layer, x 28 layers x 4 x 768 padded tokens."""
    m = resolve_model(ModelSpec(**LLAMA32_3B))
    pad = {"seq_len": 768, "mean_seq_len": 210, "packing": False}
    fp32 = parse_spec(_peft(MLP, 10, **pad)).training
    base = fp32.model_copy(update={"lora_adapter_dtype": "base"})
    assert adapter_copy_bytes_per_token(m, fp32) == (3072 + 3072 + 8192) * 4
    assert frozen_unsaved_bytes_per_token(m, fp32) - frozen_unsaved_bytes_per_token(m, base) == (3072 + 8192) * 2
    assert activations_bytes(m, fp32) - activations_bytes(m, base) == 34_816 * 28 * 4 * 768


def test_fp32_adapters_on_peft_l40s_cases() -> None:
    """PEFT's method comparison on one L40S, ~840 tokens per step: LoRA r64 on q/v measured 6,659 tokens/s and r10
    on the MLP 5,777. With bf16 adapters both were predicted 11-15 % fast; PEFT's fp32 adapters put each within
    10 %. The MLP-to-q/v ratio (measured 0.87) lies between bf16 adapters (every pass half, 0.90) and fp32 ones
    counted all from DRAM (0.77): on a 96 MB-L2 card a 840-token step's casts partly stay in cache."""
    rates = {}
    for key, targets, rank in (("qv", QV, 64), ("mlp", MLP, 10)):
        for dtype in ("fp32", "base"):
            rate = estimate_run(_peft(targets, rank, lora_adapter_dtype=dtype), "L40S").throughput.tokens_per_s.base
            assert rate is not None
            rates[key, dtype] = rate
    measured = {"qv": 6659.2, "mlp": 5777.1}
    for key in measured:
        assert abs(rates[key, "fp32"] / measured[key] - 1) < 0.10
        assert rates[key, "base"] / measured[key] - 1 > 0.10
    assert rates["mlp", "fp32"] / rates["qv", "fp32"] < 5777.1 / 6659.2 < rates["mlp", "base"] / rates["qv", "base"]


HIDDEN, INTER, TOKENS, RANK = 256, 688, 2048, 8
CASES = [(QV, False), (MLP, False), (QV, True), (MLP, True)]


@pytest.fixture(scope="module")
def real_saved() -> dict[tuple[str, str, bool], float]:
    """Saved bytes per token of every case, fp32 and base adapters, from one run of the real program."""
    python, why = torch_python("torch, transformers, peft")
    if python is None:
        pytest.skip(why)
    keys = [(",".join(t), adapter, amp) for t, amp in CASES for adapter in ("fp32", "base")]
    args = [f"{targets}:{adapter}:{int(amp)}" for targets, adapter, amp in keys]
    out = subprocess.run([python, str(PROGRAM), str(HIDDEN), str(INTER), str(TOKENS), str(RANK), *args],
                         capture_output=True, text=True, timeout=600, check=True)
    return dict(zip(keys, json.loads(out.stdout.strip().splitlines()[-1]), strict=True))


@pytest.mark.parametrize(("targets", "amp"), CASES)
def test_saved_bytes_match_real_peft(real_saved: dict[tuple[str, str, bool], float], targets: list[str],
                                     amp: bool) -> None:
    """What fp32 adapters add to one layer's saved tensors, measured with real transformers + PEFT (CPU, one
    Llama decoder layer, hidden 256, MLP 688, 2,048 tokens), against the estimator's count. The estimator
    leaves out the rank-r intermediates and autocast's weight copies: at most 4 x r x 2 B per adapter and
    token, plus the weights over 2,048 tokens."""
    key = ",".join(targets)
    measured = real_saved[key, "fp32", amp] - real_saved[key, "base", amp]
    m = resolve_model(ModelSpec(family="llama", n_layers=1, hidden_size=HIDDEN, n_heads=4, n_kv_heads=4,
                                intermediate_size=INTER, vocab_size=256, tied_embeddings=False, mlp_gated=True))
    fp32 = TrainingSpec(seq_len=TOKENS, micro_batch=1, method="lora", lora_rank=RANK, lora_targets=tuple(targets),
                        precision="bf16", master_weights_fp32=amp, lora_adapter_dtype="fp32")
    base = fp32.model_copy(update={"lora_adapter_dtype": "base"})
    predicted = (adapter_copy_bytes_per_token(m, fp32) - frozen_unsaved_bytes_per_token(m, fp32)
                 + frozen_unsaved_bytes_per_token(m, base))
    assert predicted > 0
    slack = len(targets) * (4 * RANK * 2 + 4 * RANK * (HIDDEN + INTER) * 2 / TOKENS)
    assert 0 <= measured - predicted <= slack
