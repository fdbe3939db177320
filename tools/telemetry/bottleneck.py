"""Name the bottleneck behind a trigger from the evidence, and show the reasoning.

The playbook's action on a contradiction is "reclassify bottleneck (compute, memory, input,
sync, logging)"; ``infra`` is added for what the job cannot fix (a GPU off the bus, a hot or
power-capped host, a hung process). Each rule below reads numbers already in the windows and the
log; the first rule whose evidence holds wins, in the order that makes the most specific
explanation come first, and every observation (also the ones that did not decide) is listed.

Why utilization is read carefully: ``utilization.gpu`` is the share of time *any* kernel ran, so
100% can hide a GPU spinning in NCCL waits or running tiny kernels. High utilization with low
power and low throughput therefore points at synchronisation (several GPUs) or launch-bound
small kernels (one GPU), not at a saturated GPU; only high utilization *and* high power with low
throughput says the GPU is really busy (``compute``).
"""

from __future__ import annotations

import statistics
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .throttle import INFRA_THROTTLE_REASONS
from .timeline import TimedLog
from .triggers import TriggerResult
from .windows import Window, WindowSeries

BottleneckClass = Literal["compute", "memory", "input", "sync", "logging", "infra"]
Confidence = Literal["low", "medium", "high"]

SPIKE_FACTOR = 3.0  # a step this many times the median step time is a spike
SPIKE_SHARE_MIN = 0.10  # spikes must cost at least this share of the time to blame logging/eval
HIGH_UTIL_PCT = 90.0
HIGH_POWER_FRAC = 0.70
LOW_POWER_FRAC = 0.50
IMBALANCE_PCT = 20.0
CPU_BOUND_PCT = 90.0

SUGGESTIONS: dict[BottleneckClass, str] = {
    "input": "tune the input pipeline (DataLoader num_workers, pin_memory=True, pre-tokenised data)"
    " so the GPU is not waiting",
    "memory": "lower the micro-batch (keep the global batch with gradient accumulation)"
    " or enable gradient checkpointing",
    "logging": "log, evaluate and checkpoint less often; drop expensive per-step callbacks",
    "compute": "confirm bf16/fp16 and a larger micro-batch, consider torch.compile,"
    " and lower the MFU assumed in the estimate",
    "sync": "check the interconnect and per-GPU balance; avoid a distributed stack where one GPU suffices",
    "infra": "check the host: throttling, driver and GPU health; move to another offer if it persists",
}


class HostEvidence(BaseModel):
    """Optional facts from outside the GPU and the log (e.g. ``top`` on the box)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_util_pct: float | None = Field(default=None, ge=0)
    infra_events: list[str] = []


class Bottleneck(BaseModel):
    """The class, how sure, why, and the first thing to change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bottleneck_class: BottleneckClass
    confidence: Confidence
    reasoning: list[str]
    suggestion: str


def step_time_spikes(logs: list[TimedLog]) -> tuple[list[int], float, bool]:
    """Steps whose time exceeds ``SPIKE_FACTOR`` x median (first record skipped as warm-up).

    Returns the spike steps, the share of all step time the spikes added above the median, and
    whether any spike came right after an eval record (nanoGPT's eval + checkpoint iteration).
    """
    train = [(i, p.sample) for i, p in enumerate(logs) if p.sample.kind == "train" and p.sample.step_time_s]
    if len(train) < 3:
        return [], 0.0, False
    train = train[1:]
    times = [s.step_time_s or 0.0 for _, s in train]
    median = statistics.median(times)
    spikes = [(i, s) for i, s in train if (s.step_time_s or 0.0) > SPIKE_FACTOR * median]
    extra = sum((s.step_time_s or 0.0) - median for _, s in spikes)
    share = extra / sum(times) if sum(times) else 0.0
    after_eval = any(i > 0 and logs[i - 1].sample.kind == "eval" for i, _ in spikes)
    return [s.step for _, s in spikes if s.step is not None], share, after_eval


def _focus(series: WindowSeries, fired: list[TriggerResult]) -> list[Window]:
    """Windows the fired triggers point at; else every active window with data."""
    wanted: set[int] = set()
    for result in fired:
        listed = result.evidence.get("windows")
        if isinstance(listed, list):
            wanted.update(int(i) for i in listed)
        if result.window_index is not None:
            wanted.add(result.window_index)
    chosen = [w for w in series.windows if w.index in wanted]
    return chosen or [w for w in series.windows if w.active and (w.gpu_sample_count or w.log_sample_count)]


def _avg(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def classify_bottleneck(
    series: WindowSeries,
    logs: list[TimedLog],
    fired: list[TriggerResult],
    host: HostEvidence | None = None,
    *,
    gpu_util_min_pct: float = 60.0,
) -> Bottleneck:
    """Pick the bottleneck class behind the fired triggers, with the observations that decided."""
    host = host or HostEvidence()
    names = {r.name for r in fired}
    focus = _focus(series, fired)
    util = _avg([w.gpu_util_avg_pct for w in focus])
    low_util = _avg([w.gpu_util_low_gpu_avg_pct for w in focus])
    high_util = _avg([w.gpu_util_high_gpu_avg_pct for w in focus])
    power = _avg([w.power_avg_w for w in focus])
    limit = _avg([w.power_limit_w for w in focus])
    power_frac = power / limit if power is not None and limit else None
    mfu = _avg([w.mfu_median_pct for w in focus])
    gpus = max((w.gpu_count for w in focus), default=0)
    throttles = sorted({r for w in focus for r in w.throttle_reasons} & INFRA_THROTTLE_REASONS)
    spikes, spike_share, after_eval = step_time_spikes(logs)
    stalled = [w.index for w in focus if w.active and w.log_sample_count == 0 and (w.gpu_util_avg_pct or 0) < 5]

    notes: list[str] = []
    if util is not None:
        notes.append(
            f"GPU utilization averaged {util:.1f}% (lowest GPU {low_util:.1f}%) in windows {[w.index for w in focus]}"
        )
    if power_frac is not None:
        notes.append(f"power averaged {power:.0f} W of a {limit:.0f} W limit ({power_frac:.0%})")
    if mfu is not None:
        notes.append(f"the log reports MFU {mfu:.1f}%")
    if spikes:
        notes.append(
            f"{len(spikes)} step-time spikes (> {SPIKE_FACTOR:g}x median) at steps {spikes}"
            f" cost {spike_share:.0%} of step time"
        )

    def verdict(cls: BottleneckClass, confidence: Confidence, why: str) -> Bottleneck:
        return Bottleneck(
            bottleneck_class=cls, confidence=confidence, reasoning=[why, *notes], suggestion=SUGGESTIONS[cls]
        )

    if host.infra_events:
        return verdict("infra", "high", f"infrastructure events: {'; '.join(host.infra_events)}")
    if throttles:
        return verdict("infra", "high", f"clocks held down by the host: {', '.join(throttles)}")
    if stalled and "no_metric_movement" in names:
        return verdict(
            "infra",
            "medium",
            f"windows {stalled}: job counted active but no log records and GPUs idle (hung or dead process)",
        )
    if "memory_pressure" in names:
        return verdict("memory", "high", "memory held above the line for a whole window: one allocation spike from OOM")
    if spikes and spike_share >= SPIKE_SHARE_MIN:
        confidence: Confidence = "high" if after_eval else "medium"
        where = "right after eval/checkpoint records" if after_eval else "at logging intervals"
        return verdict("logging", confidence, f"step time spikes {where} cost {spike_share:.0%} of the time")
    if low_util is not None and ("gpu_util_low" in names or low_util < gpu_util_min_pct):
        if gpus > 1 and high_util is not None and high_util - low_util >= IMBALANCE_PCT:
            return verdict(
                "sync",
                "medium",
                f"GPUs unbalanced: {high_util:.1f}% vs {low_util:.1f}% busy; the fast ones wait for the slow one",
            )
        if host.cpu_util_pct is not None and host.cpu_util_pct >= CPU_BOUND_PCT:
            return verdict(
                "input",
                "high",
                f"GPU idle {100 - low_util:.0f}% of the time while the host CPU is {host.cpu_util_pct:.0f}% busy:"
                " the data loader cannot keep up",
            )
        return verdict(
            "input", "medium", f"GPU idle {100 - low_util:.0f}% of the time while the job runs: it is waiting for input"
        )
    if util is not None and util >= HIGH_UTIL_PCT and power_frac is not None:
        if power_frac < LOW_POWER_FRAC:
            if gpus > 1:
                return verdict(
                    "sync", "medium", "kernels always running yet power low: GPUs spinning in communication waits"
                )
            return verdict(
                "compute",
                "low",
                "kernels always running yet power low: small, launch-bound kernels (raise the micro-batch)",
            )
        if power_frac >= HIGH_POWER_FRAC:
            return verdict(
                "compute",
                "high",
                "GPU busy at high power and still below prediction:"
                " the estimate assumed more FLOPs than the model reaches",
            )
    if "throughput_below_predicted" in names:
        return verdict(
            "compute", "low", "throughput below prediction with no sign of waiting, memory or logging overhead"
        )
    return verdict("compute", "low", "no distinguishing evidence; compute is the default assumption")
