"""Issue 18 part 3, the remaining knobs: QLoRA's 4-bit format, fp8, torch_compile, sliding-window attention,
eval inside the peak, and an offer's measured PCIe bandwidth in the comm term.

Expected figures are arithmetic on the published shapes and formats, written out here; the two measured
speed-ups are the torchtitan table's own rows (pytorch/torchtitan benchmarks/llama3_h100_202412_torchtitan.md,
Table 1), not read back from the estimator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers_spec import spec

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.catalogue import resolve_gpu
from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.estimator.modelshape import resolve_model
from gpu_preflight.tools.estimator.spec import ModelSpec, parse_spec
from gpu_preflight.tools.offers.options import plan_options
from gpu_preflight.tools.offers.records import offers_from_json

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf_configs"
GPU_100 = {"name": "flat", "gpu_ram_gb": 200, "bf16_tflops": 100, "hbm_bw_gbps": 2000}
L1B = {"name": "llama-3.2-1b"}
L8B = {"name": "llama-3.1-8b"}
# Llama-3.2-1B: h 2048, 16 layers, 32 q heads / 8 kv heads of 64, MLP 8192 (gated), vocab 128,256 tied.
P_1B = 1_235_814_400
MATRIX_1B = 16 * (2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 8192)  # the layers' linears: quantized
P_8B = 8_030_261_248
MATRIX_8B = 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336)
HEAD_8B = 128_256 * 4096  # untied LM head
ACT_1B = 2 * (2 * 2048 + 2 * 2048 + 2 * 512 + (2048 + 512) + 2 * 2048 + 4 * 8192)  # bf16 saved, per token, layer
NORM_UPCAST_1B = 8 * 2048  # fp32 norm inputs under autocast


def _frozen_gb(model: dict[str, Any], **training: Any) -> float:
    run = spec(model=model, method="qlora", lora_rank=8, **training)
    return estimate_run(run, GPU_100).memory.gpu.breakdown.frozen_weights_gb


@pytest.mark.parametrize(("fmt", "bytes_per_param"), [
    ("nf4", 0.5 + 4 / 64),                                   # fp32 absmax per 64 weights
    ("nf4_double_quant", 0.5 + (8 / 64 + 32 / 64 / 256) / 8),  # QLoRA paper: 0.127 bit/param of constants
    ("gptq", 0.5 + (2 + 0.5) / 128),                          # fp16 scale + 4-bit zero per 128
    ("torchao_int4", 0.5 + (2 + 2) / 128),                    # bf16 scale + bf16 zero per 128
])
def test_quant_format_sets_the_frozen_bytes(fmt: str, bytes_per_param: float) -> None:
    # Llama-3.2-1B: the layers' linears quantized; embeddings (= the tied head) and norms stay bf16.
    expected = (MATRIX_1B * bytes_per_param + (P_1B - MATRIX_1B) * 2) / 1e9
    assert _frozen_gb(L1B, quant_format=fmt) == pytest.approx(expected, abs=2e-3)


def test_default_format_is_todays_nf4_double_quant_and_the_head_can_be_quantized() -> None:
    assert _frozen_gb(L8B) == _frozen_gb(L8B, quant_format="nf4_double_quant")
    # Llama-3.1-8B's untied head: 2 B -> 0.5159 B per weight with quant_lm_head (525M weights, -0.78 GB).
    saved = HEAD_8B * (2 - (0.5 + (8 / 64 + 32 / 64 / 256) / 8)) / 1e9
    assert _frozen_gb(L8B) - _frozen_gb(L8B, quant_lm_head=True) == pytest.approx(saved, abs=2e-3)
    expected = (MATRIX_8B + HEAD_8B) * 0.5159 + (P_8B - MATRIX_8B - HEAD_8B) * 2
    assert _frozen_gb(L8B, quant_lm_head=True) == pytest.approx(expected / 1e9, abs=5e-3)


def _step(gpu: Any, model: dict[str, Any] | None = None, **training: Any) -> tuple[float, float]:
    e = estimate_run(spec(model=model or L1B, mfu=0.4, **training), gpu)
    terms = e.throughput.step_time_terms_s
    assert terms is not None
    return terms.compute, e.memory.gpu.peak_gb


def test_fp8_speeds_the_matmuls_by_the_torchtitan_row_and_keeps_memory() -> None:
    bf16_s, bf16_peak = _step("H100 SXM", torch_compile=True)
    fp8_s, fp8_peak = _step("H100 SXM", torch_compile=True, precision="fp8")
    assert bf16_s / fp8_s == pytest.approx(8532 / 6667, rel=1e-3)  # compile -> compile + Float8, 8 H100
    assert fp8_peak == bf16_peak  # 77.0 vs 76.8 GiB measured: the same saved tensors


@pytest.mark.parametrize("gpu", ["A100 SXM4", "RTX 3090", "V100"])
def test_fp8_is_refused_on_cards_without_fp8_tensor_cores(gpu: str) -> None:
    with pytest.raises(PreflightError) as info:
        estimate_run(spec(model=L1B, precision="fp8"), gpu)
    line = info.value.one_line()
    assert line.startswith("spec.training.precision") and "bf16, fp16 or fp32" in line and "\n" not in line


def test_torch_compile_speed_and_the_norm_copies_it_does_not_save() -> None:
    plain_s, _ = _step(GPU_100)
    compiled_s, _ = _step(GPU_100, torch_compile=True)
    assert plain_s / compiled_s == pytest.approx(6667 / 5762, rel=1e-3)  # torchtitan FSDP -> FSDP + compile
    act = {c: estimate_run(spec(model=L1B, torch_compile=c), GPU_100).memory.gpu.breakdown.activations_gb
           for c in (False, True)}
    tokens, layers = 1024, 16
    assert act[False] == pytest.approx(tokens * layers * (ACT_1B + NORM_UPCAST_1B) / 1e9, abs=1e-3)
    assert act[True] == pytest.approx(tokens * layers * ACT_1B / 1e9, abs=1e-3)


def test_attention_window_caps_the_keys_per_query() -> None:
    def attention(model: dict[str, Any], seq: int) -> float:
        return estimate_run(spec(model=model, seq_len=seq), GPU_100).throughput.flops_per_token.attention

    # Mistral-7B-v0.1 (preset window 4096, 32 layers, q_dim 4096): 12 * L * q_dim * min(seq, 4096).
    assert attention({"name": "mistral-7b-v0.1"}, 8192) == 12 * 32 * 4096 * 4096
    assert attention({"name": "mistral-7b-v0.1"}, 2048) == 12 * 32 * 4096 * 2048
    # Gemma-2-2B: 13 of 26 layers local (4096), 13 global; q_dim 8 * 256.
    assert attention({"name": "gemma-2-2b"}, 8192) == 12 * 2048 * (13 * 8192 + 13 * 4096)
    # An explicit window on a model without one; flash keeps no score matrix, so memory is unchanged.
    assert attention({**L1B, "attention_window": 512}, 2048) == 12 * 16 * 2048 * 512
    mem = [estimate_run(spec(model=m, seq_len=2048), GPU_100).memory.gpu.peak_gb
           for m in (L1B, {**L1B, "attention_window": 512})]
    assert mem[0] == mem[1]
    # A window does not make the preset's parameter count a custom shape.
    assert resolve_model(ModelSpec(name="llama-3.2-1b", attention_window=512)).params_total == P_1B


def test_hf_config_window_is_read_unless_disabled() -> None:
    def window(name: str) -> int | None:
        return resolve_model(ModelSpec(hf_config=str(FIXTURES / f"{name}.json"))).attention_window

    assert window("mistral-7b-v0.1") == 4096
    assert window("gemma-2-2b") == 4096
    assert window("qwen2.5-0.5b") is None  # sliding_window 32768 with use_sliding_window false


def test_eval_batch_sets_the_peak_over_the_resident_training_state() -> None:
    # Llama-3.2-1B full AdamW, mixed precision: resident 2 + 4 + 8 = 14 B/param; an eval batch of 8 x 1024
    # adds one layer's intermediates and the standard loss's 10 B per logit.
    tokens = 8 * 1024
    evaluation = tokens * (ACT_1B + NORM_UPCAST_1B) + tokens * 128_256 * 10
    g = estimate_run(spec(model=L1B, eval_micro_batch=8), GPU_100).memory.gpu
    assert g.breakdown.eval_gb == pytest.approx(evaluation / 1e9, abs=1e-3)
    assert g.peak_phase == "eval"
    assert g.allocated_peak_gb == pytest.approx((14 * P_1B + evaluation) / 1e9, abs=2e-3)
    without = estimate_run(spec(model=L1B), GPU_100).memory.gpu
    assert without.breakdown.eval_gb == 0 and without.peak_phase == "optimizer_step"  # 22 B/param at the step


def test_generation_kv_cache_at_eval_batch() -> None:
    # KV = 2 * layers * kv_heads * head_dim * 2 B * (seq + gen) * batch; a generation eval holds one layer
    # of the prefill, the KV cache and the last position's fp32 logits and scores (8 B x vocab per sample).
    kv = 2 * 16 * 8 * 64 * 2 * (1024 + 4096) * 8
    run = spec(model=L1B, loss="fused", eval_micro_batch=8, eval_generation_tokens=4096)
    g = estimate_run(run, GPU_100).memory.gpu
    expected = 8 * 1024 * (ACT_1B + NORM_UPCAST_1B) + kv + 8 * 128_256 * 8
    assert g.breakdown.eval_gb == pytest.approx(expected / 1e9, abs=1e-3)


def test_measured_pcie_bandwidth_sets_the_comm_term() -> None:
    # GPT-2 124M, DDP on 2 RTX 4090 (PCIe, no NVLink): all-reduce 2 * 1/2 * 4 B * params over 0.75 x measured.
    row = resolve_gpu("RTX 4090")
    params = resolve_model(ModelSpec(name="gpt2")).params_total
    volume = 2 * 0.5 * 4 * params
    for measured in (6.0, 24.0):
        gpu = row.model_copy(update={"pcie_measured_gbps": measured})
        terms = estimate_run(spec(num_gpus=2), gpu).throughput.step_time_terms_s
        assert terms is not None
        expected = max(0.05 * volume / (measured * 0.75e9), volume / (measured * 0.75e9) - terms.compute * 2 / 3)
        assert terms.comm == pytest.approx(expected, rel=1e-3)
        assert terms.comm_link == f"PCIe {measured:g} GB/s (offer pcie_bw)"
    catalogue = estimate_run(spec(num_gpus=2), "RTX 4090").throughput.step_time_terms_s
    assert catalogue is not None and catalogue.comm_link == "PCIe Gen4"


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("quant_format", "int3", "'nf4', 'nf4_double_quant', 'gptq' or 'torchao_int4'"),
    ("precision", "fp4", "'bf16', 'fp16', 'fp32' or 'fp8'"),
    ("torch_compile", "maybe", "valid boolean"),
    ("eval_micro_batch", 0, "greater than 0"),
    ("eval_generation_tokens", -1, "greater than or equal to 0"),
])
def test_bad_knob_values_are_one_line_naming_the_field(key: str, value: Any, allowed: str) -> None:
    training = {"method": "qlora", "lora_rank": 8} if key == "quant_format" else {}
    with pytest.raises(PreflightError) as info:
        parse_spec(spec(model=L1B, **training, **{key: value}))
    line = info.value.one_line()
    assert line.startswith(f"spec.training.{key}") and allowed in line and "\n" not in line


@pytest.mark.parametrize(("key", "value"), [("quant_format", "gptq"), ("quant_lm_head", True)])
def test_quant_knobs_need_qlora(key: str, value: Any) -> None:
    with pytest.raises(PreflightError) as info:
        parse_spec(spec(model=L1B, method="lora", lora_rank=8, **{key: value}))
    assert info.value.one_line().startswith(f"spec.training.{key}") and "qlora" in info.value.one_line()


def test_bad_attention_window_names_the_model_field() -> None:
    with pytest.raises(PreflightError) as info:
        parse_spec(spec(model={**L1B, "attention_window": 0}))
    assert info.value.one_line().startswith("spec.model.attention_window")


def test_option_table_prices_comm_with_each_offers_pcie_and_rejects_fp8_on_old_cards() -> None:
    raw = json.loads((Path(__file__).resolve().parent / "fixtures" / "vast" /
                      "rtx4090_guangxi_cli_raw_2024.json").read_text())[0]
    two_gpus = spec(model={"name": "gpt2-large"}, num_gpus=2, seq_len=1024, micro_batch=1)
    records = [{**raw, "id": 1, "num_gpus": 2, "pcie_bw": 3.0}, {**raw, "id": 2, "num_gpus": 2, "pcie_bw": 24.0}]
    plan = plan_options(two_gpus, offers_from_json(records, source="test"), rank="time")
    assert [r.offer_id for r in plan.rows] == [2, 1]  # the slow host link costs time
    fp8 = plan_options(spec(precision="fp8"), offers_from_json([{**raw, "gpu_name": "RTX 3090"}], source="test"))
    assert fp8.rows == [] and "fp8 needs FP8 tensor cores" in fp8.rejected[0].reasons[0]


def test_cuda_context_gb_is_what_nvidia_smi_adds_over_the_reserved_peak() -> None:
    """The HF perf doc's V100 stack (torch 1.x, CUDA 11.2, eager module loading) measured its context at
    1,343 MiB; a lazily loading stack is about 0.6 GB. nvidia-smi's figure is the reserved peak plus it."""
    base = {"model": L1B, "training": {"seq_len": 1024, "micro_batch": 1}, "target": {"target_tokens": 10**8}}
    default = estimate_run(base, "A100 SXM4").memory.gpu
    measured = estimate_run(base | {"overheads": {"cuda_context_gb": 1343 * 2**20 / 1e9}}, "A100 SXM4").memory.gpu
    assert default.nvml_used_gb == pytest.approx(default.peak_gb + 0.6, abs=0.01)
    assert measured.nvml_used_gb == pytest.approx(measured.peak_gb + 1.408, abs=0.01)
    assert measured.peak_gb == default.peak_gb  # the allocator's figures do not move
    with pytest.raises(PreflightError) as info:
        estimate_run(base | {"overheads": {"cuda_context_gb": 40}}, "A100 SXM4")
    assert "overheads.cuda_context_gb" in str(info.value) and "40" in str(info.value)
