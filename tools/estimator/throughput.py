"""Throughput: baseline-scaled (playbook 2.1) or cold from peak FLOPS and MFU (playbook 2.2).

Playbook figures stay reachable beside ours:

* baseline-scaled: ``scale = min(flops_ratio, bw_ratio)``, ``tokens_s = base * scale * eff`` with
  ``eff`` 0.9 (same architecture and stack), 0.7 (architecture or runtime changed), 0.5 (first
  multi-GPU attempt or a major stack change), chosen from the inputs. Refined: the geometric mean
  ``sqrt(flops_ratio * bw_ratio)`` instead of ``min``: llm-foundry's same-code H100/A100 rows
  (1B/7B/13B: 2.12-2.29x) sit at the geometric mean (2.28x) while ``min`` predicts 1.64x, 25% slow
  (``shared/notes/estimator-research.md`` §3.6).
* cold: ``tokens_s = peak_flops * MFU / flops_per_token`` with MFU 0.20/0.30/0.40 (untuned,
  normal, well-tuned) and ``flops_per_token = 6 * params_trainable`` (playbook). Refined FLOPs per
  token: ``6 * N`` for full training with N the matmul parameters (layers + LM head); LoRA and
  QLoRA still run the frozen weights forward and back through the inputs, ``4 * N + 6 * trainable``
  (the playbook's 6 * trainable would make LoRA look 50x faster than it is); attention adds
  ``12 * n_layers * q_dim * seq_len``; activation checkpointing re-runs the forward, which the
  playbook puts at "around 20% slower" (applied as x1/1.2; the extra FLOPs are reported). MFU is
  the playbook's by tuning level, times a factor where measurements show the path matters (A100
  tensor cores x1.35, V100 tensor cores x0.5, fp32 on CUDA cores x2), or the named framework's own
  stated MFU on that architecture (:func:`.frameworks.stated_mfu`: torchtitan 0.33 on H100). QLoRA's
  4-bit dequantization is a memory-bound step term (:func:`.steptime_terms.dequant_time_s`), not a
  factor on the matmuls. Cold estimates are low confidence.

Scenarios (playbook 3): optimistic ``x1.2``, base ``x1.0``, pessimistic ``x0.6``. Refined for cold
estimates only: optimistic ``x1.3`` (see ``SCENARIO_FACTORS_COLD``); the playbook's band stays in
``tokens_per_s_playbook_band``.

Imported by the offers and telemetry rooms on purpose: ``Scenarios`` and the playbook's scenario factors
are one definition, so a planned band and a calibrated band are the same thing.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.catalogue import ResolvedGpu, resolve_gpu
from gpu_preflight.tools.estimator.frameworks import framework_warning, mfu_prior_source, stated_mfu
from gpu_preflight.tools.estimator.modelshape import ResolvedModel
from gpu_preflight.tools.estimator.spec import BaselineSpec, TrainingSpec
from gpu_preflight.tools.estimator.steptime_terms import StepTimeTerms, step_time_terms

MFU_BY_TUNING = {"untuned": 0.20, "normal": 0.30, "well_tuned": 0.40}
SCENARIO_FACTORS = {"optimistic": 1.2, "base": 1.0, "pessimistic": 0.6}
"""Playbook §3, used as is where the rate comes from a measurement (baseline-scaled, live probe)."""
SCENARIO_FACTORS_COLD = {"optimistic": 1.3, "base": 1.0, "pessimistic": 0.6}
"""Cold estimates (peak x MFU, no measurement behind them) get a wider upside than the playbook's x1.2.

Why: the band should hold the run's real rate, and the cold path's measured spread says x1.2 is too
tight upward. On the published, non-suspect cases of ``bench/cases/published.json`` the measured /
base ratio of cold estimates runs from 0.71 to 1.28 (tuned 30-70B stacks with activation checkpointing
run faster than the flat MFU assumes: llm-foundry MPT-70B on 64 H100 is 1.28, torchtune Llama-3.1-70B
LoRA on 8 A100 1.23). x1.2 leaves those two outside; x1.3 holds all of them, and
``tests/test_bench_cases.py`` keeps checking that it still does as cases are added. The downside keeps
the playbook's x0.6: published rows come from tuned stacks, and a first run on a rented box is slower.
"""
EFFICIENCY_SAME = 0.9
EFFICIENCY_CHANGED = 0.7
EFFICIENCY_MAJOR = 0.5
MFU_ARCH_FACTOR = {"ampere": 1.35}
"""Refined MFU = playbook MFU x this. A100 runs reach 50-64% MFU (llm-foundry, torchtitan, TinyLlama)
where H100 runs reach 40-46%: Hopper's peak grew faster than its memory bandwidth. Other
architectures keep the playbook's figures until measurements say otherwise."""
MFU_FP32_CUDA_CORE_FACTOR = 2.2
"""Training in fp32 runs on CUDA cores, whose peak is far easier to approach than a tensor-core peak:
HF's bert-large on V100 (``bench/cases``: hf-bert-large fp32 rows, in sample) reached 0.6 of the FP32 peak over
the whole step. With the optimizer, fixed and eager-attention terms apart (:mod:`.steptime_terms`,
:mod:`.memory_traffic`), the matmul-only MFU of its three fp32 rows is 0.76, 0.65 and 0.59 (geometric mean 0.665
= 2.2 x the playbook's 0.30; it was 2.0 before the eager-attention term, issue 18 round 2). Out of sample:
LLMs-from-scratch's fp32 GPT-2 124M on an A100."""
MFU_VOLTA_TENSOR_FACTOR = 0.60
"""V100 tensor cores: the same bert-large in fp16 reached 0.15-0.16 of the 125 TFLOPS peak over the whole
step. With the optimizer, clipping, fixed time and eager attention's score traffic now their own terms
(:mod:`.steptime_terms`: 48 + 5 ms, and 18-25 ms of scores, of its 215-396 ms steps), the matmul-only MFU of
those two rows (in sample) is 0.25 (bs4) and 0.13 (bs1 + GA4 + checkpointing); their geometric mean, 0.18, is
0.60 x the playbook's 0.30 (0.55 before the eager-attention term, issue 18 round 2)."""
CHECKPOINTING_FACTOR = 1 / 1.2
"""Playbook §4: gradient checkpointing is "often around 20% slower". Measured tuned stacks lose less
than the full recompute FLOPs suggest (llm-foundry's checkpointed rows keep 38-43% MFU on H100).

Applied once, on the model FLOPs (``flops_per_token.model``, no recompute): the recompute FLOPs are reported
in ``flops_per_token.hardware`` but not charged as well. Charging them instead (x model/hardware: 1/1.33 for
full training, 1/1.5 for LoRA, whose 4N pass gains a 2N re-forward) was scored on ``bench/cases`` (issue 18,
second pass): trusted cases 15.4% -> 16.0% median, in range 100% -> 93% (llm-foundry MPT-70B on 64 H100
and A100 fell out of the band, torchtune's 70B LoRA went from -19% to -35%); only Megatron's rows, whose MFU
counts the recompute, gained. So the playbook's figure stays."""
TORCH_COMPILE_SPEEDUP = 6667 / 5762
"""x1.157 on the matmul time with ``torch_compile``: torchtitan's Llama-3.1-8B, FSDP, selective AC, on 8 H100,
5,762 -> 6,667 tokens/s/GPU (and on 128 H100 5,605 -> 6,514, x1.162), pytorch/torchtitan
benchmarks/llama3_h100_202412_torchtitan.md, Tables 1 and 3 (the 8-GPU row is the one used)."""
FP8_SPEEDUP = 8532 / 6667
"""x1.280 on the matmul time with ``precision = "fp8"``: the same table, compile -> compile + Float8 (torchao
tensorwise float8 linears), 6,667 -> 8,532 tokens/s/GPU on 8 H100 (128 H100: 6,514 -> 8,380, x1.286). Far
below the 2x of the FP8 tensor peak: only the linears run in fp8, and each pays its amax and casts. The
torchao float8 README puts it at "up to 1.25x at 8 GPU / 8B" and up to 1.5x at 405B (larger GEMMs gain
more); the 8B figure is taken for every size."""


class Scenarios(BaseModel):
    optimistic: float | None
    base: float | None
    pessimistic: float | None

    @classmethod
    def scaled(cls, base: float, digits: int = 1, factors: dict[str, float] | None = None) -> Scenarios:
        """``base`` times each scenario's rate factor (the playbook's unless ``factors`` is given).

        >>> Scenarios.scaled(1000.0).model_dump()
        {'optimistic': 1200.0, 'base': 1000.0, 'pessimistic': 600.0}
        >>> Scenarios.scaled(1000.0, factors=SCENARIO_FACTORS_COLD).optimistic
        1300.0
        """
        return cls(**{k: round(base * f, digits) for k, f in (factors or SCENARIO_FACTORS).items()})


class FlopsPerToken(BaseModel):
    model: float = Field(description="Model FLOPs per token (what MFU counts).")
    hardware: float = Field(description="Model FLOPs plus activation-checkpointing recompute.")
    playbook: float = Field(description="6 * params_trainable.")
    attention: float


class ThroughputEstimate(BaseModel):
    method: Literal["baseline_scaled", "cold"]
    confidence: Literal["low", "medium", "high"]
    tokens_per_s: Scenarios = Field(
        description="Whole-run tokens/s over all GPUs: x1.2 / x1.0 / x0.6 (cold: x1.3 / x1.0 / x0.6).")
    tokens_per_s_playbook_band: Scenarios = Field(description="The base rate with the playbook's x1.2 / x1.0 / x0.6.")
    scenario_factors: dict[str, float] = Field(description="Rate factors behind tokens_per_s.")
    tokens_per_s_playbook: float = Field(description="The playbook rule's base figure (min() or 6*trainable).")
    step_time_s: float = Field(description="Base seconds per optimizer step (global batch).")
    step_time_terms_s: StepTimeTerms | None = Field(
        default=None, description="Cold estimates: step_time_s split by cause (compute, optimizer, comm, ...).")
    flops_per_token: FlopsPerToken
    peak_tflops_total: float = Field(description="Dense tensor peak used, summed over the run's GPUs.")
    tflops_source: str
    mfu_assumed: float | None = None
    mfu_playbook: float | None = None
    mfu_prior_source: str | None = Field(
        default=None, description="Cold: where the MFU prior came from (mfu, tuning, or training.framework).")
    efficiency_factor: float | None = None
    efficiency_factor_playbook: float | None = None
    efficiency_reason: str | None = None
    flops_ratio: float | None = None
    bw_ratio: float | None = None
    scale_ratio: float | None = Field(default=None, description="Refined: sqrt(flops_ratio * bw_ratio).")
    scale_ratio_playbook: float | None = Field(default=None, description="Playbook: min(flops_ratio, bw_ratio).")
    notes: list[str] = Field(default_factory=list)


OVERHEAD_BOUND_STEP_S = 0.005
"""Below this predicted step time a cold estimate is overhead-bound (a tiny model, a small batch): the
FLOPs model says microseconds, while launch and framework costs alone take milliseconds per step."""


def flops_per_token(m: ResolvedModel, t: TrainingSpec, params_trainable: int) -> FlopsPerToken:
    n = m.matmul_params
    # Keys per query: the padded length, or the sliding window on the layers that have one (Mistral-7B-v0.1,
    # Gemma 2's local layers): attention FLOPs use min(seq_len, window) there.
    window = min(t.padded_seq_len, m.attention_window or t.padded_seq_len)
    keys = (m.n_layers - m.windowed_layers) * t.padded_seq_len + m.windowed_layers * window
    attention = 12.0 * m.q_dim * keys
    # LoRA/QLoRA: frozen weights still run forward (2N) and pass gradients to their inputs (2N).
    model = 6.0 * n + attention if t.method == "full" else 4.0 * n + 6.0 * params_trainable + attention
    if t.activation_checkpointing == "selective":
        recompute = 0.1 * (2.0 * n + attention / 3)  # cheap element-wise ops only
    elif t.activation_checkpointing:
        recompute = 2.0 * n + attention / 3
    else:
        recompute = 0.0
    return FlopsPerToken(model=model, hardware=model + recompute, playbook=6.0 * params_trainable, attention=attention)


def cold_estimate(m: ResolvedModel, t: TrainingSpec, gpu: ResolvedGpu, params_trainable: int) -> ThroughputEstimate:
    fpt = flops_per_token(m, t, params_trainable)
    peak, note = gpu.peak_tflops(t.precision)
    peak_total = peak * t.num_gpus
    mfu_playbook = MFU_BY_TUNING[t.tuning]
    stated = stated_mfu(t, gpu.architecture)
    if t.mfu is not None:
        mfu = t.mfu
    elif stated is not None and t.precision != "fp32":
        mfu = stated  # the framework's own figure on this architecture (:func:`.frameworks.stated_mfu`)
    elif t.precision == "fp32" or (not gpu.bf16_tflops and not gpu.fp16_tflops):
        mfu = mfu_playbook * MFU_FP32_CUDA_CORE_FACTOR
    else:
        tensor_factor = MFU_VOLTA_TENSOR_FACTOR if gpu.architecture == "volta" else 1.0
        mfu = mfu_playbook * MFU_ARCH_FACTOR.get(gpu.architecture, 1.0) * tensor_factor
    base = peak_total * 1e12 * mfu / fpt.model
    notes = [note] if note else []
    if t.torch_compile:
        base *= TORCH_COMPILE_SPEEDUP
        notes.append(f"torch_compile: x{TORCH_COMPILE_SPEEDUP:.3f} on matmul time (torchtitan, 8 H100)")
    if t.precision == "fp8":
        base *= FP8_SPEEDUP
        notes.append(f"fp8: x{FP8_SPEEDUP:.2f} on the bf16 matmul time (torchtitan float8, 8 H100), not the "
                     f"{(gpu.fp8_tflops or 0) / (gpu.bf16_tflops or 1):.1f}x of the FP8 tensor peak")
    if t.activation_checkpointing is True:
        base *= CHECKPOINTING_FACTOR
        notes.append(f"activation checkpointing: about 20% slower (playbook §4); recompute adds "
                     f"{fpt.hardware / fpt.model - 1:.0%} FLOPs")
    playbook = peak_total * 1e12 * mfu_playbook / fpt.playbook
    compute_s = t.compute_tokens_per_step / base
    if compute_s < OVERHEAD_BOUND_STEP_S:
        notes.append(
            f"cold compute time {compute_s * 1000:.3g} ms per step (< {OVERHEAD_BOUND_STEP_S * 1000:g} ms): kernel "
            "launches, the data loader and Python overhead dominate a step this small, not FLOPs, so the "
            "real rate can be 10-1000x lower; measure a probe before trusting time or cost")
    terms, step_s, terms_note = step_time_terms(t, gpu, m, params_trainable, compute_s, peak_total * 1e12 * mfu)
    base = t.tokens_per_step / step_s
    if t.tokens_per_step < t.compute_tokens_per_step:
        notes.append(f"packing=false: {t.padded_seq_len} tokens computed per sample for {t.mean_seq_len} real "
                     "(mean_seq_len); tokens_per_s counts real tokens")
    if (step_s - compute_s) > 0.1 * step_s:
        notes.append(f"{(step_s - compute_s) / step_s:.0%} of a step is not matmuls ({terms_note})")
    return ThroughputEstimate(
        method="cold", confidence="low", tokens_per_s=Scenarios.scaled(base, factors=SCENARIO_FACTORS_COLD),
        tokens_per_s_playbook_band=Scenarios.scaled(base), scenario_factors=SCENARIO_FACTORS_COLD,
        tokens_per_s_playbook=round(playbook, 1), step_time_s=round(step_s, 4), step_time_terms_s=terms,
        flops_per_token=fpt, peak_tflops_total=round(peak_total, 1), tflops_source=gpu.tflops_source,
        mfu_assumed=mfu, mfu_playbook=mfu_playbook,
        mfu_prior_source=mfu_prior_source(t, t.from_framework, gpu.architecture), notes=notes,
    )


def efficiency_for(base_gpu: ResolvedGpu, base: BaselineSpec, gpu: ResolvedGpu,
                   num_gpus: int) -> tuple[float, float, str]:
    """The playbook's factor chosen from facts, as (refined, playbook, reason).

    They differ in one case: a GPU-architecture change with the same code and stack. The playbook
    takes 0.7; the refined path keeps 0.9 because the geometric FLOPs/bandwidth scale already
    carries the hardware change (llm-foundry's same-code A100 -> H100 rows land within 8% with 0.9
    and 25-30% low with 0.7; ``bench/accuracy.py``).
    """
    if base.stack_change == "major":
        return EFFICIENCY_MAJOR, EFFICIENCY_MAJOR, "major stack change (baseline.stack_change=major)"
    if num_gpus > 1 and base.num_gpus == 1:
        return EFFICIENCY_MAJOR, EFFICIENCY_MAJOR, f"first multi-GPU attempt ({num_gpus} GPUs, baseline on 1)"
    if base.stack_change == "runtime":
        return EFFICIENCY_CHANGED, EFFICIENCY_CHANGED, "runtime/framework changed since the baseline"
    if "unknown" in (base_gpu.architecture, gpu.architecture) or base_gpu.architecture != gpu.architecture:
        return EFFICIENCY_SAME, EFFICIENCY_CHANGED, (
            f"GPU architecture changed ({base_gpu.architecture} -> {gpu.architecture}), same stack: "
            "0.9 (playbook: 0.7)")
    return EFFICIENCY_SAME, EFFICIENCY_SAME, f"same architecture ({gpu.architecture}) and stack"


def baseline_estimate(
    m: ResolvedModel, t: TrainingSpec, gpu: ResolvedGpu, params_trainable: int, base: BaselineSpec
) -> ThroughputEstimate:
    base_gpu = resolve_gpu(base.gpu, "spec.baseline.gpu")  # a name only (the spec says so); refusal lists candidates
    cand_peak, note = gpu.peak_tflops(t.precision)
    base_peak, _ = base_gpu.peak_tflops(t.precision)
    flops_ratio = (cand_peak * t.num_gpus) / (base_peak * base.num_gpus)
    bw_ratio = (gpu.hbm_bw_gbps * t.num_gpus) / (base_gpu.hbm_bw_gbps * base.num_gpus)
    scale_playbook = min(flops_ratio, bw_ratio)
    scale = math.sqrt(flops_ratio * bw_ratio)
    eff, eff_playbook, reason = efficiency_for(base_gpu, base, gpu, t.num_gpus)
    tokens = base.tokens_per_s * scale * eff
    fpt = flops_per_token(m, t, params_trainable)
    return ThroughputEstimate(
        method="baseline_scaled", confidence="medium" if eff_playbook < EFFICIENCY_SAME else "high",
        tokens_per_s=Scenarios.scaled(tokens), tokens_per_s_playbook_band=Scenarios.scaled(tokens),
        scenario_factors=SCENARIO_FACTORS,
        tokens_per_s_playbook=round(base.tokens_per_s * scale_playbook * eff_playbook, 1),
        step_time_s=round(t.tokens_per_step / tokens, 4), flops_per_token=fpt,
        peak_tflops_total=round(cand_peak * t.num_gpus, 1), tflops_source=gpu.tflops_source,
        efficiency_factor=eff, efficiency_factor_playbook=eff_playbook, efficiency_reason=reason,
        flops_ratio=round(flops_ratio, 4),
        bw_ratio=round(bw_ratio, 4), scale_ratio=round(scale, 4), scale_ratio_playbook=round(scale_playbook, 4),
        notes=[note] if note else [],
    )


def estimate_throughput(
    m: ResolvedModel, t: TrainingSpec, gpu: ResolvedGpu, params_trainable: int, baseline: BaselineSpec | None
) -> ThroughputEstimate:
    if t.precision == "fp8" and not gpu.fp8_tflops:
        raise PreflightError("spec.training.precision", "fp8", f"bf16, fp16 or fp32 on {gpu.name}",
                             "fp8 needs FP8 tensor cores (catalogue fp8_tflops: Ada, Hopper, Blackwell)")
    estimate = (baseline_estimate(m, t, gpu, params_trainable, baseline) if baseline is not None
                else cold_estimate(m, t, gpu, params_trainable))
    warning = framework_warning(t)
    if warning:
        estimate.notes.append(warning)
    return estimate
