"""Fold a timeline into fixed windows: the playbook's "every 10 minutes, record ..." as data.

Per window (default 600 s): average GPU utilization, average and peak memory utilization, peak
memory used, median tokens/s and step time from the log, and the ETA; across windows, the ETA
trend. Windows with no data are kept, so "two consecutive windows" means consecutive in time.

Two kinds of "memory" are kept apart on purpose: ``mem_util_*`` is ``utilization.memory`` (how
busy the memory bus was), while ``mem_used_*`` is capacity (MiB held, and its share of the
total). Only capacity predicts an OOM. ``gpu_util_*`` (``utilization.gpu``) only says that some
kernel was running; it separates an alive GPU from an idle one and says nothing about efficiency,
which comes from tokens/s and MFU.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from gpu_preflight.tools.common.errors import PreflightError

from .models import TokensScope
from .timeline import TimedGpu, TimedLog, Timeline

DEFAULT_WINDOW_S = 600.0
DEFAULT_ACTIVE_MEM_USED_MIN_MIB = 1024.0
EtaTrend = Literal["improving", "stable", "slipping", "unknown"]


class Window(BaseModel):
    """One window's aggregates; every figure is ``None`` when the window had no data for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    start_s: float
    end_s: float
    complete: bool
    gpu_sample_count: int
    log_sample_count: int
    active: bool
    active_reason: str
    gpu_count: int
    gpu_util_avg_pct: float | None = None
    gpu_util_low_gpu_index: int | None = None
    gpu_util_low_gpu_avg_pct: float | None = None
    gpu_util_high_gpu_avg_pct: float | None = None
    mem_util_avg_pct: float | None = None
    mem_util_peak_pct: float | None = None
    mem_used_peak_mib: float | None = None
    mem_total_mib: float | None = None
    mem_used_peak_pct: float | None = None
    mem_used_floor_pct: float | None = None
    mem_used_floor_gpu_index: int | None = None
    mem_used_floor_sample_count: int = 0
    power_avg_w: float | None = None
    power_limit_w: float | None = None
    throttle_reasons: list[str] = []
    tokens_per_s_median: float | None = None
    tokens_per_s_scope: TokensScope | None = None
    step_time_median_s: float | None = None
    step_time_max_s: float | None = None
    step_time_source: str | None = None  # log, log_timestamps, write_times (joined by + when mixed): writetimes
    mfu_median_pct: float | None = None
    step_first: int | None = None
    step_last: int | None = None
    total_steps: int | None = None
    loss_first: float | None = None
    loss_last: float | None = None
    eta_s: float | None = None
    projected_finish_s: float | None = None  # time of the window's last step + eta_s, on the shared axis


class WindowSeries(BaseModel):
    """All windows of a timeline, with the ETA trend between the last two that had an ETA."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: float
    data_end_s: float
    windows: list[Window]
    eta_trend: EtaTrend
    eta_drift_s: float | None


def _finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _mean(values: Iterable[float | None]) -> float | None:
    kept = _finite(values)
    return round(statistics.fmean(kept), 6) if kept else None


def _median(values: Iterable[float | None]) -> float | None:
    kept = _finite(values)
    return round(statistics.median(kept), 9) if kept else None


def _gpu_aggregates(points: list[TimedGpu]) -> dict[str, object]:
    out: dict[str, object] = {"gpu_count": len({p.sample.gpu_index for p in points})}
    if not points:
        return out
    samples = [p.sample for p in points]
    per_gpu_util: dict[int, list[float | None]] = defaultdict(list)
    per_gpu_used_pct: dict[int, list[float]] = defaultdict(list)
    for s in samples:
        per_gpu_util[s.gpu_index].append(s.gpu_util_pct)
        if s.mem_used_mib is not None and s.mem_total_mib:
            per_gpu_used_pct[s.gpu_index].append(100.0 * s.mem_used_mib / s.mem_total_mib)
    util_by_gpu = {gpu: avg for gpu, vals in per_gpu_util.items() if (avg := _mean(vals)) is not None}
    out["gpu_util_avg_pct"] = _mean(s.gpu_util_pct for s in samples)
    if util_by_gpu:
        low = min(util_by_gpu, key=lambda g: (util_by_gpu[g], g))
        out["gpu_util_low_gpu_index"] = low
        out["gpu_util_low_gpu_avg_pct"] = util_by_gpu[low]
        out["gpu_util_high_gpu_avg_pct"] = max(util_by_gpu.values())
    out["mem_util_avg_pct"] = _mean(s.mem_util_pct for s in samples)
    mem_util = _finite(s.mem_util_pct for s in samples)
    out["mem_util_peak_pct"] = max(mem_util) if mem_util else None
    used = _finite(s.mem_used_mib for s in samples)
    out["mem_used_peak_mib"] = max(used) if used else None
    totals = _finite(s.mem_total_mib for s in samples)
    out["mem_total_mib"] = max(totals) if totals else None
    if per_gpu_used_pct:
        out["mem_used_peak_pct"] = round(max(max(v) for v in per_gpu_used_pct.values()), 6)
        floor_gpu = max(per_gpu_used_pct, key=lambda g: (min(per_gpu_used_pct[g]), -g))
        out["mem_used_floor_gpu_index"] = floor_gpu
        out["mem_used_floor_pct"] = round(min(per_gpu_used_pct[floor_gpu]), 6)
        out["mem_used_floor_sample_count"] = len(per_gpu_used_pct[floor_gpu])
    out["power_avg_w"] = _mean(s.power_w for s in samples)
    limits = _finite(s.power_limit_w for s in samples)
    out["power_limit_w"] = max(limits) if limits else None
    reasons = sorted({r for s in samples for r in (s.throttle_reasons or [])})
    out["throttle_reasons"] = reasons
    return out


def _log_aggregates(points: list[TimedLog]) -> dict[str, object]:
    train = [p.sample for p in points if p.sample.kind == "train"]
    out: dict[str, object] = {}
    if not train:
        return out
    tokens = [s for s in train if s.tokens_per_s is not None]
    out["tokens_per_s_median"] = _median(s.tokens_per_s for s in tokens)
    out["tokens_per_s_scope"] = tokens[-1].tokens_per_s_scope if tokens else None
    out["step_time_median_s"] = _median(s.step_time_s for s in train)
    step_times = _finite(s.step_time_s for s in train)
    out["step_time_max_s"] = max(step_times) if step_times else None
    sources = {s.step_time_source or "log" for s in train if s.step_time_s is not None}
    out["step_time_source"] = "+".join(sorted(sources)) if sources else None
    out["mfu_median_pct"] = _median(s.mfu_pct for s in train)
    steps = [s.step for s in train if s.step is not None]
    out["step_first"] = steps[0] if steps else None
    out["step_last"] = steps[-1] if steps else None
    losses = [s.loss for s in train if s.loss is not None]
    out["loss_first"] = losses[0] if losses else None
    out["loss_last"] = losses[-1] if losses else None
    return out


def _eta_trend(windows: list[Window]) -> tuple[EtaTrend, float | None]:
    """Compare the projected finish of the last two windows that had one.

    Within 5% of the earlier remaining time (at least 60 s) counts as stable: step times jitter.
    """
    with_eta = [w for w in windows if w.projected_finish_s is not None and w.eta_s is not None]
    if len(with_eta) < 2:
        return "unknown", None
    prev, last = with_eta[-2], with_eta[-1]
    assert prev.projected_finish_s is not None and last.projected_finish_s is not None and prev.eta_s is not None
    drift = round(last.projected_finish_s - prev.projected_finish_s, 6)
    tolerance = max(60.0, 0.05 * prev.eta_s)
    if drift > tolerance:
        return "slipping", drift
    if drift < -tolerance:
        return "improving", drift
    return "stable", drift


def fold_windows(
    timeline: Timeline,
    *,
    window_s: float = DEFAULT_WINDOW_S,
    total_steps: int | None = None,
    active_mem_used_min_mib: float = DEFAULT_ACTIVE_MEM_USED_MIN_MIB,
) -> WindowSeries:
    """Windows ``[k*window_s, (k+1)*window_s)`` from 0 to the last sample.

    A window is *active* when the log shows progress in it (a training record whose step moved,
    or any training record when the log prints no step), else when a GPU holds at least
    ``active_mem_used_min_mib`` (a loaded model), else idle. ``total_steps`` overrides the total
    the log printed, for the ETA.
    """
    if not (window_s > 0 and math.isfinite(window_s)):
        raise PreflightError("window_s", window_s, "a window length in seconds, > 0")
    end = timeline.end_s
    count = int(end // window_s) + 1
    gpu_by: dict[int, list[TimedGpu]] = defaultdict(list)
    log_by: dict[int, list[TimedLog]] = defaultdict(list)
    for gp in timeline.gpu:
        gpu_by[int(gp.t_s // window_s)].append(gp)
    for lp in timeline.logs:
        log_by[int(lp.t_s // window_s)].append(lp)
    totals = [p.sample.total_steps for p in timeline.logs if p.sample.total_steps is not None]
    total = total_steps if total_steps is not None else (totals[-1] if totals else None)
    windows: list[Window] = []
    last_step: int | None = None
    for k in range(count):
        start, stop = k * window_s, (k + 1) * window_s
        gpu_points, log_points = gpu_by.get(k, []), log_by.get(k, [])
        fields: dict[str, object] = {**_gpu_aggregates(gpu_points), **_log_aggregates(log_points)}
        progressed = False
        for p in log_points:
            if p.sample.kind != "train":
                continue
            if p.sample.step is None or last_step is None or p.sample.step > last_step:
                progressed = True
            if p.sample.step is not None:
                last_step = p.sample.step if last_step is None else max(last_step, p.sample.step)
        held = [p.sample.mem_used_mib for p in gpu_points if p.sample.mem_used_mib is not None]
        if progressed:
            active, reason = True, "log shows training progress"
        elif held and max(held) >= active_mem_used_min_mib:
            active, reason = True, f"a GPU holds {max(held):.0f} MiB (>= {active_mem_used_min_mib:.0f} MiB)"
        else:
            active, reason = False, "no log progress and no GPU memory held"
        step_last = fields.get("step_last")
        step_time = fields.get("step_time_median_s")
        eta: float | None = None
        if total is not None and isinstance(step_last, int) and isinstance(step_time, float):
            eta = round(max(total - step_last, 0) * step_time, 6)
        train_times = [p.t_s for p in log_points if p.sample.kind == "train"]
        as_of = max(train_times) if train_times else stop
        windows.append(
            Window.model_validate(
                {
                    **fields,
                    "index": k,
                    "start_s": start,
                    "end_s": stop,
                    "complete": stop <= end,
                    "gpu_sample_count": len(gpu_points),
                    "log_sample_count": len(log_points),
                    "active": active,
                    "active_reason": reason,
                    "total_steps": total,
                    "eta_s": eta,
                    "projected_finish_s": round(as_of + eta, 6) if eta is not None else None,
                }
            )
        )
    trend, drift = _eta_trend(windows)
    return WindowSeries(window_s=window_s, data_end_s=end, windows=windows, eta_trend=trend, eta_drift_s=drift)
