"""The playbooks' "Required Output": one option table over real offers.

Per offer: hard fit checks first (GPU memory, CPU RAM, disk, network); offers that fail are left
out of the ranking but listed with their reasons, so an agent sees why a cheap offer is missing.
Rows carry exactly the playbook's columns (GPU option, $/h, VRAM, CPU RAM, TFLOPS, HBM BW, pred
tokens/s, time and cost opt/base/pess, setup/debug tax %, optimization effort, major risks), plus
the memory verdict. Costs include the run's disk (each offer repriced for the planned size) and
the download volume at the offer's bandwidth price; time includes the download, which is billed.

Speed: offers repeat a few GPU models, so the estimator runs once per (GPU, count, VRAM) group
and each offer only adds arithmetic; 5,000 offers plan in well under a second (``bench/plan.py``).

Imported by the telemetry room on purpose: calibration's "switch" re-plans this same option table with
the probe's measured throughput (run-calibrated Stage C) instead of keeping a second ranking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.nextstep import call
from gpu_preflight.tools.estimator.catalogue import ResolvedGpu, TflopsSource, from_catalogue, lookup_gpu
from gpu_preflight.tools.estimator.estimate import RunEstimate, estimate_run
from gpu_preflight.tools.estimator.memory_host import cpu_verdict
from gpu_preflight.tools.estimator.spec import RunSpec, parse_spec
from gpu_preflight.tools.estimator.throughput import Scenarios
from gpu_preflight.tools.offers.market_notes import MarketNotes
from gpu_preflight.tools.offers.records import Offer, OfferSet, dph_total_for_storage

Rank = Literal["cost", "time"]
Effort = Literal["low", "med", "high"]
MIN_RELIABILITY = 0.97
MIN_INET_DOWN_MBPS = 10.0
MIN_CUDA = 12.1
"""PyTorch 2.4+ wheels are built for CUDA 12.1 and newer; older drivers force an old stack."""
SAMPLE_NOTE = (
    "bundled sample of {n} real offers captured {span}, not today's market: plan over today's with {live} "
    "(needs VAST_API_KEY) or {saved} from `vastai search offers --raw`")


class Risk(BaseModel):
    code: str
    message: str


class OptionRow(BaseModel):
    rank: int
    offer_id: int
    gpu_option: str
    num_gpus: int
    dph_total_usd: float = Field(description="$/h repriced for the run's disk.")
    vram_gb: float = Field(description="Per GPU, GB = 1e9 bytes.")
    cpu_ram_gb: float | None
    tflops: float = Field(description="Dense bf16/fp16 tensor peak used, all the offer's GPUs.")
    tflops_source: TflopsSource
    hbm_bw_gbps: float
    pred_tokens_per_s: float
    time_hours: Scenarios
    cost_usd: Scenarios
    setup_debug_tax: float
    optimization_effort: Effort
    major_risks: list[Risk]
    memory_verdict: str
    reliability: float | None
    inet_down_mbps: float | None
    download_hours: float | None
    transfer_usd: float = Field(description="Download volume at the offer's $/TB, included in cost_usd.")
    captured_on: str | None = Field(default=None, description="UTC date Vast served this offer (YYYY-MM-DD).")


class Rejected(BaseModel):
    offer_id: int
    gpu_option: str
    reasons: list[str]


class PlanResult(BaseModel):
    offers_captured_at: str | None
    offers_age: str
    offers_source: str
    ranked_by: Rank
    rows: list[OptionRow]
    rejected: list[Rejected]
    skipped_records: int
    recommendation: str
    rows_omitted: int = Field(default=0, description="Fitting offers beyond `limit`, not shown.")
    warnings: list[str] = Field(default_factory=list, description="One line per kind of note, with counts.")
    offers_sample: bool = Field(default=False, description="True: planned over the bundled old sample.")


@dataclass(frozen=True)
class _Fit:
    key: float
    offer: Offer
    group: _Group
    dph: float
    times: dict[str, float]
    costs: dict[str, float]
    download_h: float | None
    cpu_state: str
    transfer_usd: float


@dataclass(frozen=True)
class _Group:
    estimate: RunEstimate
    gpu: ResolvedGpu


def _gpu_for(offer: Offer) -> ResolvedGpu | None:
    """Datasheet figures from the catalogue (Vast's measured bandwidth is only noted, see market_notes);
    Vast's FP32 total_flops for a GPU the catalogue lacks."""
    row = lookup_gpu(offer.gpu_name)
    if row is not None:
        gpu = from_catalogue(row, offer.gpu_ram_gb_per_gpu)
        # The comm term of a multi-GPU offer reads the bandwidth this host measured (NVLink comes from the row).
        pcie = offer.pcie_bw_gbps if offer.num_gpus > 1 else None
        return gpu.model_copy(update={"gpu_ram_gb": offer.gpu_ram_gb_per_gpu, "pcie_measured_gbps": pcie})
    if not offer.total_flops_fp32_tflops:
        return None
    return ResolvedGpu(
        name=offer.gpu_name, architecture="unknown", gpu_ram_gb=offer.gpu_ram_gb_per_gpu, bf16_tflops=None,
        fp16_tflops=None, fp32_tflops=offer.total_flops_fp32_tflops / offer.num_gpus,
        hbm_bw_gbps=offer.gpu_mem_bw_gbps or 500.0, tflops_source="vast_fp32",
        source="Vast offer total_flops (FP32 CUDA cores) / num_gpus",
    )


def _group_for(offer: Offer, run: RunSpec) -> _Group | str:
    """The estimate for an offer's GPU and count, or why there is none."""
    gpu = _gpu_for(offer)
    if gpu is None:
        return f"unknown GPU {offer.gpu_name!r} and no total_flops to fall back on"
    if run.training.precision == "fp8" and not gpu.fp8_tflops:
        return f"precision: fp8 needs FP8 tensor cores, {offer.gpu_name} has none"
    return _Group(estimate_run(_spec_for(run, offer.num_gpus), gpu), gpu)


def _spec_for(spec: RunSpec, num_gpus: int) -> RunSpec:
    """The spec on an offer's GPU count; sharding becomes ddp when a 1-GPU plan lands on more."""
    t = spec.training
    if t.num_gpus == num_gpus:
        return spec
    sharding = t.sharding if t.sharding not in (None, "none") else ("ddp" if num_gpus > 1 else "none")
    if num_gpus == 1 and sharding == "ddp":
        sharding = "none"
    training = t.model_copy(update={"num_gpus": num_gpus, "sharding": sharding, "global_batch": None})
    return spec.model_copy(update={"training": training})


def _risks(offer: Offer, e: RunEstimate, gpu: ResolvedGpu, spec: RunSpec, download_h: float | None,
           setup_h: float, cpu_state: str, min_cuda: float) -> list[Risk]:
    risks: list[Risk] = []
    g = e.memory.gpu
    if g.verdict == "high_oom_risk":
        risks.append(Risk(code="oom_risk", message=f"memory at {g.utilization_ratio:.0%} of VRAM (0.8-0.9 band): "
                          "reduce micro_batch or seq_len first"))
    if cpu_state == "close_to_limit":
        risks.append(Risk(code="cpu_ram_tight", message="host RAM close to the limit"))
    if offer.reliability is not None and offer.reliability < MIN_RELIABILITY:
        risks.append(Risk(code="low_reliability", message=f"reliability {offer.reliability:.3f} < {MIN_RELIABILITY}"))
    if download_h is not None and download_h > 0.5 * setup_h:
        risks.append(Risk(code="slow_download", message=f"{e.memory.network.download_gb:.1f} GB download takes "
                          f"{download_h:.2f} h at {offer.inet_down_mbps:.0f} Mbit/s"))
    if e.tax.setup_debug_tax > 0.25:
        risks.append(Risk(code="setup_tax_high", message=f"setup/debug is {e.tax.setup_debug_tax:.0%} of wall time "
                          "(> 25%): debug on cheap hardware first"))
    if gpu.tflops_source == "vast_fp32":
        risks.append(Risk(code="unknown_gpu", message=f"{offer.gpu_name} not in the catalogue: FP32 fallback"))
    if offer.num_gpus > 1 and (spec.baseline is None or spec.baseline.num_gpus == 1) and spec.training.num_gpus == 1:
        risks.append(Risk(code="multi_gpu_first_attempt", message=f"first run on {offer.num_gpus} GPUs "
                          "(playbook efficiency 0.5): expect setup friction"))
    if offer.cuda_max_good is not None and offer.cuda_max_good < min_cuda:
        risks.append(Risk(code="old_cuda", message=f"driver supports CUDA {offer.cuda_max_good} < {min_cuda}"))
    if offer.interruptible:
        risks.append(Risk(code="interruptible", message="interruptible pricing: checkpoint often, expect preemption"))
    return risks


def _row(rank: int, f: _Fit, run: RunSpec, setup_h: float, min_cuda: float) -> OptionRow:
    e, offer, gpu = f.group.estimate, f.offer, f.group.gpu
    peak, _ = gpu.peak_tflops(run.training.precision)
    tax = e.tax.setup_debug_hours / f.times["base"] if f.times["base"] else 0.0
    return OptionRow(
        rank=rank, offer_id=offer.offer_id, gpu_option=f"{offer.num_gpus}x {offer.gpu_name}",
        num_gpus=offer.num_gpus, dph_total_usd=round(f.dph, 4), vram_gb=round(offer.gpu_ram_gb_per_gpu, 2),
        cpu_ram_gb=offer.cpu_ram_gb, tflops=round(peak * offer.num_gpus, 1), tflops_source=gpu.tflops_source,
        hbm_bw_gbps=gpu.hbm_bw_gbps, pred_tokens_per_s=e.throughput.tokens_per_s.base or 0.0,
        time_hours=Scenarios(**f.times), cost_usd=Scenarios(**f.costs), setup_debug_tax=round(tax, 4),
        optimization_effort=_effort(run, e.memory.gpu.verdict),
        major_risks=_risks(offer, e, gpu, run, f.download_h, setup_h, f.cpu_state, min_cuda),
        memory_verdict=e.memory.gpu.verdict, reliability=offer.reliability, inet_down_mbps=offer.inet_down_mbps,
        download_hours=round(f.download_h, 3) if f.download_h is not None else None,
        transfer_usd=f.transfer_usd,
        captured_on=offer.captured_at.date().isoformat() if offer.captured_at else None,
    )


def _effort(spec: RunSpec, verdict: str) -> Effort:
    t = spec.training
    if t.activation_checkpointing or t.offload != "none" or t.sharding_resolved in ("zero3", "fsdp"):
        return "high"
    return "med" if verdict == "high_oom_risk" else "low"


def plan_options(spec: RunSpec | dict[str, Any], offers: OfferSet, *, rank: Rank = "cost",
                 max_usd: float | None = None, max_hours: float | None = None, limit: int = 20,
                 min_cuda: float = MIN_CUDA) -> PlanResult:
    """Rank the offers that fit; list the rest with reasons."""
    run = parse_spec(spec)
    if rank not in ("cost", "time"):
        raise PreflightError("rank", rank, "'cost' or 'time'")
    for name, value in (("max_usd", max_usd), ("max_hours", max_hours)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise PreflightError(name, value, "a positive number")
    if not 1 <= limit <= 1000:
        raise PreflightError("limit", limit, "1..1000")
    groups: dict[tuple[str, int, float, float], _Group | str] = {}
    fits: list[_Fit] = []
    rejected: list[Rejected] = []
    notes = MarketNotes()
    setup_h = run.overheads.setup_debug_hours if run.overheads.setup_debug_hours is not None else 1.0
    for offer in offers.offers:
        label = f"{offer.num_gpus}x {offer.gpu_name}"
        pcie = round(offer.pcie_bw_gbps or 0.0) if offer.num_gpus > 1 else 0.0
        key = (offer.gpu_name, offer.num_gpus, round(offer.gpu_ram_gb_per_gpu, 1), pcie)
        if key not in groups:
            groups[key] = _group_for(offer, run)
        group = groups[key]
        if isinstance(group, str):
            rejected.append(Rejected(offer_id=offer.offer_id, gpu_option=label, reasons=[group]))
            continue
        e = group.estimate
        notes.add(offer, group.gpu)
        reasons: list[str] = []
        g = e.memory.gpu
        if g.verdict == "fail":
            reasons.append(f"gpu_memory: needs {g.nvml_used_gb:.1f} GB of {g.gpu_ram_gb:.1f} GB per GPU "
                           f"({g.utilization_ratio:.0%} > 90%)")
        cpu_state = cpu_verdict(e.memory.cpu.required_gb, offer.cpu_ram_gb)
        if cpu_state == "fail":
            reasons.append(f"cpu_ram: needs {e.memory.cpu.required_gb:.1f} GB, offer has {offer.cpu_ram_gb:.1f} GB")
        disk_need = e.memory.disk.required_gb
        if offer.disk_space_gb is not None and offer.disk_space_gb < disk_need:
            reasons.append(f"disk: needs {disk_need:.0f} GB, offer has {offer.disk_space_gb:.0f} GB")
        down = offer.inet_down_mbps
        if down is not None and down < MIN_INET_DOWN_MBPS:
            reasons.append(f"network: inet_down {down:.1f} Mbit/s < {MIN_INET_DOWN_MBPS:.0f}")
        dph = dph_total_for_storage(offer, disk_need)
        dl_h = e.memory.network.download_gb * 8000 / down / 3600 if down else None
        dl_usd = e.memory.network.download_gb / 1000 * (offer.inet_down_cost_usd_per_tb or 0.0)
        times = {k: round(getattr(e.time_hours, k) + (dl_h or 0.0), 3) for k in ("optimistic", "base", "pessimistic")}
        costs = {k: round(v * dph + dl_usd, 2) for k, v in times.items()}
        if max_usd is not None and costs["base"] > max_usd:
            reasons.append(f"budget: base cost ${costs['base']:.2f} > max_usd ${max_usd:.2f}")
        if max_hours is not None and times["base"] > max_hours:
            reasons.append(f"budget: base time {times['base']:.1f} h > max_hours {max_hours:.1f} h")
        if reasons:
            rejected.append(Rejected(offer_id=offer.offer_id, gpu_option=label, reasons=reasons))
            continue
        fits.append(_Fit(costs["base"] if rank == "cost" else times["base"], offer, group, dph, times, costs,
                         dl_h, cpu_state, round(dl_usd, 4)))
    fits.sort(key=lambda f: (f.key, f.times["base"], f.offer.offer_id))
    # Rows are built for the shown offers only: pydantic rows for 5,000 offers would dominate the time.
    ordered = [_row(i + 1, f, run, setup_h, min_cuda) for i, f in enumerate(fits[:limit])]
    from gpu_preflight.tools.offers.records import age_text

    captured = offers.captured_at
    age = age_text(captured, _now(), source=offers.captured_at_source)
    span = capture_span(offers)
    warnings = notes.lines()
    if offers.bundled_sample:
        warnings.insert(0, SAMPLE_NOTE.format(n=len(offers.offers), span=span or "at an unknown time",
                                              live=call("live_offers"), saved=call("offers_file")))
    if span:
        age = f"captured {span} (the oldest {age.removeprefix('captured ')}; each row has its date)"
    return PlanResult(
        offers_captured_at=captured.isoformat() if captured else None,
        offers_age=age, offers_source=offers.source,
        ranked_by=rank, rows=ordered, rejected=rejected, skipped_records=len(offers.skipped),
        recommendation=recommend(ordered, fits), rows_omitted=max(0, len(fits) - limit),
        warnings=warnings, offers_sample=offers.bundled_sample,
    )


def capture_span(offers: OfferSet) -> str | None:
    """"2022-11-04 to 2025-07-26" when the offers were captured on different days, else None."""
    days = sorted({o.captured_at.date() for o in offers.offers if o.captured_at is not None})
    return f"{days[0].isoformat()} to {days[-1].isoformat()}" if len(days) > 1 else None


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def recommend(rows: list[OptionRow], fits: list[_Fit]) -> str:
    """One line applying the playbook's decision rules: cheap hardware first while the tax is high;
    upgrade only when it improves total time materially (here: at least 20% less base time)."""
    if not rows:
        return "no offer fits: see `rejected` for why; reduce micro_batch/seq_len, use LoRA, or widen the search"
    best = rows[0]
    cheapest = min(fits, key=lambda f: f.costs["base"])
    fastest = min(fits, key=lambda f: f.times["base"])

    def name(f: _Fit) -> str:
        return f"{f.offer.num_gpus}x {f.offer.gpu_name} (id {f.offer.offer_id})"

    if best.setup_debug_tax > 0.25:
        return (f"setup/debug tax {best.setup_debug_tax:.0%} > 25%: debug on the cheapest fitting offer, "
                f"{name(cheapest)} at ${cheapest.dph:.2f}/h, first, then move up")
    line = f"rent {best.gpu_option} (id {best.offer_id}): base {best.time_hours.base:.1f} h, ${best.cost_usd.base:.2f}"
    if fastest.offer.offer_id != best.offer_id and fastest.times["base"] < 0.8 * (best.time_hours.base or 0):
        line += (f"; {name(fastest)} is materially faster ({fastest.times['base']:.1f} h for "
                 f"${fastest.costs['base']:.2f}) if time matters more")
    else:
        line += "; upgrading would not improve total time materially"
    return line
