"""One spec on one GPU: memory fit, throughput, time and cost, tax, menu, first-10-minute gates.

This is the single code path behind ``preflight estimate``, the MCP ``estimate_*`` tools, the
option table and the accuracy benchmark, so a number means the same thing everywhere.

Imported by the offers room (each option row is an estimate on that offer) and telemetry (calibration
re-estimates with the probe's measured throughput): one estimate path, never two that drift.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.catalogue import GpuSpec, ResolvedGpu, resolve_gpu
from gpu_preflight.tools.estimator.costing import SetupTax, TimeCost, time_and_cost
from gpu_preflight.tools.estimator.memory_gpu import GpuMemoryFit, estimate_gpu_memory
from gpu_preflight.tools.estimator.memory_host import (
    CpuMemoryFit,
    DiskFit,
    NetworkFit,
    estimate_cpu_memory,
    estimate_disk,
    estimate_network,
)
from gpu_preflight.tools.estimator.modelshape import ResolvedModel, lora_trainable_params, resolve_model
from gpu_preflight.tools.estimator.optimizations import MenuItem, optimization_menu
from gpu_preflight.tools.estimator.spec import RunSpec, parse_spec
from gpu_preflight.tools.estimator.throughput import Scenarios, ThroughputEstimate, estimate_throughput

GpuInput = str | dict[str, Any] | GpuSpec | ResolvedGpu


class ModelSummary(BaseModel):
    name: str
    family: str
    params_total: int
    params_trainable: int
    shape_source: str
    n_layers: int
    hidden_size: int
    vocab_size: int


class GpuSummary(BaseModel):
    name: str
    num_gpus: int
    gpu_ram_gb: float
    bf16_tflops: float | None
    hbm_bw_gbps: float
    tflops_source: str


class MemoryEstimate(BaseModel):
    gpu: GpuMemoryFit
    cpu: CpuMemoryFit
    disk: DiskFit
    network: NetworkFit


class ValidationGates(BaseModel):
    """Playbook §5: what the first 10-minute windows must show, and when to abort."""

    window_minutes: int = 10
    expected_tokens_per_s: float
    min_throughput_ratio: float = 0.7
    min_tokens_per_s: float = Field(description="0.7 x expected; below it for 2 consecutive windows: act.")
    consecutive_windows: int = 2
    min_gpu_util_pct: float = 60.0
    max_mem_used_pct: float = 92.0
    early_checkpoint_minutes: int = 10
    early_checkpoint_step: int = Field(description="Loss and step must have moved by this step (10 min, pessimistic).")
    abort_rules: list[str]


class RunEstimate(BaseModel):
    model: ModelSummary
    gpu: GpuSummary
    memory: MemoryEstimate
    throughput: ThroughputEstimate
    time_hours: Scenarios
    cost_usd: Scenarios
    setup_debug_tax: float
    tax: SetupTax
    train: TimeCost
    optimizations: list[MenuItem]
    validation_gates: ValidationGates
    formula_paths: list[str]
    assumptions: list[str]
    warnings: list[str]
    next_step: str


def trainable_params(spec: RunSpec, m: ResolvedModel) -> tuple[int, str]:
    t = spec.training
    given = spec.model.params_trainable
    if given is not None:
        if given > m.params_total:
            raise PreflightError("spec.model.params_trainable", given, f"at most params_total ({m.params_total})")
        return given, "given"
    if t.method == "full":
        return m.params_total, "full fine-tune: all parameters"
    assert t.lora_rank is not None  # the spec validator guarantees it
    count = lora_trainable_params(m, t.lora_rank, t.lora_targets)
    targets = t.lora_targets if isinstance(t.lora_targets, str) else "+".join(t.lora_targets)
    return count, f"LoRA rank {t.lora_rank} on {targets} matrices: r*(in+out) each"


def estimate_run(
    spec: RunSpec | dict[str, Any],
    gpu: GpuInput,
    dph_total_usd: float | None = None,
    *,
    cpu_ram_gb: float | None = None,
    disk_gb: float | None = None,
    inet_down_mbps: float | None = None,
) -> RunEstimate:
    """Everything for one spec on one GPU type (``training.num_gpus`` of them)."""
    run = parse_spec(spec)
    if dph_total_usd is not None and not (0 < dph_total_usd < 10_000):
        raise PreflightError("dph_total_usd", dph_total_usd, "a price in USD per hour, > 0 and < 10000")
    for name, value in (("cpu_ram_gb", cpu_ram_gb), ("disk_gb", disk_gb), ("inet_down_mbps", inet_down_mbps)):
        if value is not None and not (0 < value < 1e9):  # also refuses NaN, which fails every comparison
            raise PreflightError(name, value, "a positive finite number")
    g = resolve_gpu(gpu)
    m = resolve_model(run.model)
    p_train, p_train_note = trainable_params(run, m)
    t = run.training

    assumptions = [f"params_trainable: {p_train_note}"]
    warnings: list[str] = []
    if m.shape_source == "inferred":
        warnings.append("model shape inferred from params_total (no preset, hf_config or shape): activations are rough")
    if m.params_total and abs(m.params_computed - m.params_total) > 0.03 * m.params_total:
        warnings.append(f"params_total {m.params_total:,} differs from the shape's count {m.params_computed:,} by >3%")
    assumptions.append(
        "regime: " + ("fp32 weights/grads/Adam" if t.precision == "fp32" else
                      "mixed precision with fp32 master weights and fp32 grads/optimizer states"
                      if t.master_weights_fp32 else f"pure {t.precision} weights and optimizer states")
    )

    filled = [k for k in t.from_framework if k != "tuning"]  # tuning: mfu_prior_source says it
    if filled:  # say what the framework decided, so a caller can override what its script does differently
        assumptions.append(f"training.framework {t.framework} set " + ", ".join(f"{k}={getattr(t, k)}" for k in filled))

    context = {} if run.overheads.cuda_context_gb is None else {"cuda_context_gb": run.overheads.cuda_context_gb}
    gpu_fit = estimate_gpu_memory(m, t, p_train, g.gpu_ram_gb, **context)
    ckpt_peak = None
    if t.activation_checkpointing is not True and gpu_fit.verdict != "pass":
        with_ac = t.model_copy(update={"activation_checkpointing": True})
        ckpt_peak = estimate_gpu_memory(m, with_ac, p_train, g.gpu_ram_gb, **context).nvml_used_gb

    throughput = estimate_throughput(m, t, g, p_train, run.baseline)
    warnings.extend(throughput.notes)
    tc = time_and_cost(run, throughput.tokens_per_s, dph_total_usd)
    if run.overheads.setup_debug_hours is None:
        assumptions.append(f"setup_debug_hours not given: assumed {tc.setup_debug_hours} h")
    cpu = estimate_cpu_memory(run, m, p_train, cpu_ram_gb if cpu_ram_gb is not None else g.cpu_ram_gb)
    disk = estimate_disk(run, m, p_train, tc.target_tokens, disk_gb if disk_gb is not None else g.disk_gb)
    net = estimate_network(disk, inet_down_mbps if inet_down_mbps is not None else g.inet_down_mbps,
                           tc.setup_debug_hours)
    menu = optimization_menu(run, gpu_fit, run.baseline is not None, ckpt_peak)

    base_tps = throughput.tokens_per_s.base or 0.0
    pess_tps = throughput.tokens_per_s.pessimistic or 0.0
    gates = ValidationGates(
        expected_tokens_per_s=round(base_tps, 1), min_tokens_per_s=round(0.7 * base_tps, 1),
        early_checkpoint_step=max(1, int(pess_tps * 600 / t.tokens_per_step)),
        abort_rules=[
            "throughput < 70% of expected for 2 consecutive 10-minute windows: pause, reclassify, re-estimate",
            "GPU utilization < 60% while the job is active: input/sync/logging bottleneck, pause and fix",
            "memory used > 92% sustained: OOM risk, reduce micro_batch or seq_len",
            "no loss/step movement by the early checkpoint: stop and debug on cheap hardware",
        ],
    )
    paths = [
        "memory.gpu: refined component model (verdict) + playbook 18 B/param x1.2 (required_gb)",
        f"throughput: {throughput.method}" + (" (geometric scale; playbook min() kept)" if throughput.method ==
                                              "baseline_scaled" else " (peak x MFU / FLOPs per token; low confidence)"),
        "time/cost: playbook 3 scenarios x1.2/x1.0/x0.6" if throughput.method == "baseline_scaled" else
        "time/cost: 3 scenarios x1.3/x1.0/x0.6 (cold: wider upside; playbook x1.2/x1.0/x0.6)",
    ]
    if dph_total_usd is None:
        warnings.append("no price given: cost_usd is null (pass dph_total_usd / --dph)")
    return RunEstimate(
        model=ModelSummary(name=m.name, family=m.family, params_total=m.params_total, params_trainable=p_train,
                           shape_source=m.shape_source, n_layers=m.n_layers, hidden_size=m.hidden_size,
                           vocab_size=m.vocab_size),
        gpu=GpuSummary(name=g.name, num_gpus=t.num_gpus, gpu_ram_gb=g.gpu_ram_gb, bf16_tflops=g.bf16_tflops,
                       hbm_bw_gbps=g.hbm_bw_gbps, tflops_source=g.tflops_source),
        memory=MemoryEstimate(gpu=gpu_fit, cpu=cpu, disk=disk, network=net),
        throughput=throughput, time_hours=tc.time_hours, cost_usd=tc.cost_usd,
        setup_debug_tax=tc.tax.setup_debug_tax, tax=tc.tax, train=tc, optimizations=menu, validation_gates=gates,
        formula_paths=paths, assumptions=assumptions + disk.assumed, warnings=warnings,
        next_step=_next_step(gpu_fit, cpu, tc.tax, throughput),
    )


def _next_step(gpu: GpuMemoryFit, cpu: CpuMemoryFit, tax: SetupTax, tp: ThroughputEstimate) -> str:
    if gpu.verdict == "fail":
        return "does not fit: " + "; ".join(gpu.advice[:2])
    if cpu.verdict == "fail":
        return "host RAM too small: " + cpu.advice[0]
    if gpu.verdict == "high_oom_risk":
        return "high OOM risk: reduce micro_batch or seq_len first, then re-estimate"
    if not tax.expensive_hardware_justified:
        return "setup/debug tax over 25%: debug on a cheap GPU first, then move up"
    if tp.method == "cold":
        return "cold estimate (low confidence): run a 50-200 step probe and re-estimate from its tokens/s"
    return "fits; publish the option table and the 10-minute validation gates, then launch"
