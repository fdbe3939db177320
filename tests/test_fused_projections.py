"""Fused projections (``model.fused_qkv``, ``model.fused_gate_up``): one matrix where Llama has two or three.

Why: Phi-3 (qkv_proj, gate_up_proj), GPT-2 and Qwen v1 (c_attn) and GPT-NeoX (query_key_value) compute q, k and v
with one matmul, and PEFT adapts that matrix once: a rank-r adapter there trains r x (h + q + 2 kv) parameters, not
r x (3h + q + 2 kv), keeps one copy of its input, not three, and launches one adapter path. The counts are checked
against real transformers + PEFT on tiny models of each family (CPU).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers_spec import spec
from helpers_torch import torch_python

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.estimator.modelshape import adapted_names, lora_trainable_params, resolve_model
from gpu_preflight.tools.estimator.spec import ModelSpec, parse_spec

PROGRAM = Path(__file__).resolve().parent / "realprograms" / "peft_fused_counts.py"
RANK = 8
# The tiny configs of the real program, as specs.
TINY = {
    "phi3": ModelSpec(family="phi3", n_layers=2, hidden_size=256, n_heads=4, n_kv_heads=2, intermediate_size=688,
                      vocab_size=512, tied_embeddings=False),
    "gpt2": ModelSpec(name="gpt2", n_layers=2, hidden_size=256, n_heads=4, n_kv_heads=4, intermediate_size=1024,
                      vocab_size=512),
    "gpt_neox": ModelSpec(family="gpt_neox", n_layers=2, hidden_size=256, n_heads=4, intermediate_size=1024,
                          vocab_size=512, tied_embeddings=False),
}
OURS = {"all": "all_linear", "attn": ("qkv_proj",), "mlp": ("gate_up_proj", "down_proj")}


@pytest.fixture(scope="module")
def real_counts() -> dict[str, dict[str, int]]:
    python, why = torch_python("torch, transformers, peft")
    if python is None:
        pytest.skip(why)
    out = subprocess.run([python, str(PROGRAM), str(RANK)], capture_output=True, text=True, timeout=600, check=True)
    counts: dict[str, dict[str, int]] = json.loads(out.stdout.strip().splitlines()[-1])
    return counts


@pytest.mark.parametrize("family", sorted(TINY))
def test_lora_trainable_params_match_real_peft(real_counts: dict[str, dict[str, int]], family: str) -> None:
    m = resolve_model(TINY[family])
    assert m.fused_qkv
    assert m.params_total == real_counts[family]["total"]
    for key, real in real_counts[family].items():
        if key != "total":
            targets = OURS[key]
            assert lora_trainable_params(m, RANK, targets) == real, (family, key)


def test_unfused_counting_would_be_wrong(real_counts: dict[str, dict[str, int]]) -> None:
    """The check has teeth: counting Phi-3's q, k and v as three adapted matrices overstates PEFT's count."""
    unfused = resolve_model(TINY["phi3"].model_copy(update={"fused_qkv": False, "fused_gate_up": False}))
    assert lora_trainable_params(unfused, RANK, "all_linear") > real_counts["phi3"]["all"]


def test_family_defaults_and_attention_targets() -> None:
    phi3, llama = resolve_model(TINY["phi3"]), resolve_model(ModelSpec(name="llama-3.2-1b"))
    assert (phi3.fused_qkv, phi3.fused_gate_up) == (True, True)
    assert (llama.fused_qkv, llama.fused_gate_up) == (False, False)
    assert adapted_names(phi3, "attention") == ("qkv_proj", "o_proj")
    qwen1 = resolve_model(ModelSpec(family="qwen2", fused_qkv=True, n_layers=2, hidden_size=256, n_heads=4,
                                    intermediate_size=688, vocab_size=512))
    assert (qwen1.fused_qkv, qwen1.fused_gate_up) == (True, False)


def test_unfused_names_on_a_fused_model_are_refused_by_name() -> None:
    with pytest.raises(PreflightError) as err:
        estimate_run(parse_spec(spec(model={"family": "phi3", "n_layers": 32, "hidden_size": 3072, "n_heads": 32,
                                            "intermediate_size": 8192, "vocab_size": 32064},
                                     method="lora", lora_rank=16, lora_targets=["q_proj", "v_proj"])), "A100 SXM4")
    text = str(err.value)
    assert "spec.training.lora_targets" in text and "qkv_proj" in text and "gate_up_proj" in text


def test_fused_qkv_adapter_is_cheaper_in_memory_and_time() -> None:
    """Qwen v1's c_attn under PEFT's fp32 adapters (the case it was added for, bench/cases qwen1-*): one fp32 input
    copy instead of three, so the 7B LoRA at 2,048 tokens peaks lower and steps faster than the unfused count."""
    qwen7 = {"name": "qwen-7b", "family": "qwen2", "n_layers": 32, "hidden_size": 4096, "n_heads": 32,
             "intermediate_size": 11008, "vocab_size": 151936, "tied_embeddings": False}
    training = {"method": "lora", "lora_rank": 64, "lora_targets": "all_linear", "seq_len": 2048,
                "micro_batch": 1, "grad_accum": 8, "activation_checkpointing": True, "attention": "flash",
                "framework": "hf_trainer"}
    fused = estimate_run(parse_spec(spec(model={**qwen7, "fused_qkv": True}, **training)), "A100 SXM4")
    split = estimate_run(parse_spec(spec(model=qwen7, **training)), "A100 SXM4")
    assert fused.memory.gpu.peak_gb < split.memory.gpu.peak_gb
    assert fused.throughput.tokens_per_s.base > split.throughput.tokens_per_s.base  # type: ignore[operator]


def test_fused_gate_up_without_a_gate_is_refused_by_name() -> None:
    with pytest.raises(PreflightError) as err:
        resolve_model(ModelSpec(name="gpt2", fused_gate_up=True))
    assert err.value.field == "spec.model.fused_gate_up"


def test_bad_fused_value_is_one_clear_error() -> None:
    with pytest.raises(PreflightError) as err:
        parse_spec(spec(model={"name": "llama-3.2-1b", "fused_qkv": "sometimes"}))
    assert "fused_qkv" in str(err.value)
