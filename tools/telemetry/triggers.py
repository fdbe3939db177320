"""The playbook's four contradiction triggers, each with its exact rule and the numbers that fired it.

From pre-estimation.md section 5 ("act immediately"):

- actual throughput ``< 70%`` of predicted for 2 consecutive windows;
- GPU utilization ``< 60%`` while the job is active;
- memory usage ``> 92%`` sustained (OOM risk);
- no meaningful metric movement by a pre-defined early checkpoint.

Comparisons are strict, as written: exactly 70% of predicted, exactly 60% utilization or exactly
92% memory do not fire. Definitions the playbook leaves open are fixed here and stated in each
result: *consecutive* means adjacent windows in time (a window without a measurement breaks
the run); *sustained* means every reading of one GPU in the window is above the line, with at
least two readings; *meaningful movement* means the step advanced and the loss fell by at least
1% of its first value (a NaN loss is no movement).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .models import TokensScope
from .timeline import TimedLog
from .windows import Window, WindowSeries

TriggerName = Literal["throughput_below_predicted", "gpu_util_low", "memory_pressure", "no_metric_movement"]
TriggerStatus = Literal["fired", "clear", "no_data", "pending"]
Evidence = dict[str, float | int | str | bool | list[int] | list[float] | None]


class Prediction(BaseModel):
    """What the estimate promised: tokens/s (in ``tokens_per_s_scope``) and/or seconds per step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens_per_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    tokens_per_s_scope: TokensScope = "job"
    step_time_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_figure(self) -> Prediction:
        if self.tokens_per_s is None and self.step_time_s is None:
            raise ValueError("give tokens_per_s or step_time_s (or both)")
        return self


class TriggerConfig(BaseModel):
    """Thresholds; the defaults are the playbook's numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    throughput_ratio_min: float = Field(default=0.70, gt=0, le=1)
    throughput_consecutive_windows: int = Field(default=2, ge=1)
    gpu_util_min_pct: float = Field(default=60.0, ge=0, le=100)
    mem_used_max_pct: float = Field(default=92.0, gt=0, le=100)
    mem_sustained_min_samples: int = Field(default=2, ge=1)
    early_checkpoint_s: float = Field(default=600.0, gt=0, allow_inf_nan=False)
    min_loss_drop_frac: float = Field(default=0.01, ge=0, lt=1)
    gpu_count: int | None = Field(default=None, ge=1)
    wall_elapsed_s: float | None = Field(
        default=None, ge=0, allow_inf_nan=False,
        description="Wall seconds since the run started: a run whose log stopped still reaches its checkpoint.")


class TriggerResult(BaseModel):
    """One trigger's verdict: its rule, status, the first window it fired in, and the numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TriggerName
    rule: str
    status: TriggerStatus
    window_index: int | None = None
    evidence: Evidence = {}
    message: str


def _throughput_ratio(window: Window, prediction: Prediction, gpu_count: int | None) -> tuple[float, Evidence] | None:
    """measured / predicted throughput for one window, in the prediction's terms, or ``None``."""
    measured = window.tokens_per_s_median
    if prediction.tokens_per_s is not None and measured is not None and math.isfinite(measured):
        scope = window.tokens_per_s_scope or prediction.tokens_per_s_scope
        gpus = gpu_count or window.gpu_count or 1
        if scope == "device" and prediction.tokens_per_s_scope == "job":
            measured *= gpus
        elif scope == "job" and prediction.tokens_per_s_scope == "device":
            measured /= gpus
        ratio = measured / prediction.tokens_per_s
        return ratio, {"measured_tokens_per_s": round(measured, 6), "predicted_tokens_per_s": prediction.tokens_per_s}
    step_time = window.step_time_median_s
    if prediction.step_time_s is not None and step_time is not None and step_time > 0 and math.isfinite(step_time):
        ratio = prediction.step_time_s / step_time
        return ratio, {"measured_step_time_s": step_time, "predicted_step_time_s": prediction.step_time_s}
    return None


def check_throughput(series: WindowSeries, prediction: Prediction, config: TriggerConfig) -> TriggerResult:
    """Throughput below ``throughput_ratio_min`` of predicted in N adjacent complete windows.

    Only complete windows count: the rule compares window medians, and a window still filling may
    hold a single record. The other triggers look at every window, since they say "immediately".
    """
    ratio_min, needed = config.throughput_ratio_min, config.throughput_consecutive_windows
    rule = f"Actual throughput < {ratio_min:.0%} of predicted for {needed} consecutive windows."
    streak: list[tuple[int, float, Evidence]] = []
    measured_any = False
    for window in series.windows:
        if not window.complete:
            break  # a window still filling is judged when it closes
        found = _throughput_ratio(window, prediction, config.gpu_count)
        if found is None:
            streak = []
            continue
        measured_any = True
        ratio, numbers = found
        if ratio < ratio_min:
            streak.append((window.index, ratio, numbers))
        else:
            streak = []
        if len(streak) >= needed:
            run = streak[-needed:]
            evidence: Evidence = {
                "windows": [i for i, _, _ in run],
                "ratios": [round(r, 4) for _, r, _ in run],
                "ratio_min": ratio_min,
                **run[-1][2],
            }
            ratios = ", ".join(f"{r:.0%}" for _, r, _ in run)
            return TriggerResult(
                name="throughput_below_predicted",
                rule=rule,
                status="fired",
                window_index=window.index,
                evidence=evidence,
                message=f"throughput at {ratios} of predicted in windows {[i for i, _, _ in run]}",
            )
    if streak:  # the latest complete windows are below the line, but fewer than the rule needs: not clear
        ratios = ", ".join(f"{r:.0%}" for _, r, _ in streak)
        return TriggerResult(
            name="throughput_below_predicted", rule=rule, status="pending", window_index=streak[-1][0],
            evidence={"windows": [i for i, _, _ in streak], "ratios": [round(r, 4) for _, r, _ in streak],
                      "ratio_min": ratio_min},
            message=f"throughput at {ratios} of predicted in windows {[i for i, _, _ in streak]}; the rule "
                    f"needs {needed} adjacent complete windows below {ratio_min:.0%}",
        )
    status: TriggerStatus = "clear" if measured_any else "no_data"
    message = (
        "throughput at or above the line"
        if measured_any
        else "no complete window had a throughput comparable to the prediction"
    )
    return TriggerResult(name="throughput_below_predicted", rule=rule, status=status, message=message)


def check_gpu_util(series: WindowSeries, config: TriggerConfig) -> TriggerResult:
    """The least busy GPU's window average below ``gpu_util_min_pct`` while the job is active."""
    line = config.gpu_util_min_pct
    rule = f"GPU utilization < {line:g}% while job is active."
    seen = False
    for window in series.windows:
        low = window.gpu_util_low_gpu_avg_pct
        if not window.active or low is None:
            continue
        seen = True
        if low < line:
            return TriggerResult(
                name="gpu_util_low",
                rule=rule,
                status="fired",
                window_index=window.index,
                evidence={
                    "gpu_index": window.gpu_util_low_gpu_index,
                    "gpu_util_avg_pct": low,
                    "all_gpus_util_avg_pct": window.gpu_util_avg_pct,
                    "line_pct": line,
                    "active_reason": window.active_reason,
                },
                message=f"GPU {window.gpu_util_low_gpu_index} averaged {low:g}% busy in window {window.index}"
                f" while active ({window.active_reason}); utilization.gpu says idle, not slow",
            )
    status: TriggerStatus = "clear" if seen else "no_data"
    return TriggerResult(
        name="gpu_util_low",
        rule=rule,
        status=status,
        message="no active window with GPU readings" if not seen else "GPUs busy while active",
    )


def check_memory(series: WindowSeries, config: TriggerConfig) -> TriggerResult:
    """Every reading of one GPU in a window above ``mem_used_max_pct`` of its memory (capacity)."""
    line = config.mem_used_max_pct
    rule = f"Memory usage > {line:g}% sustained (OOM risk)."
    seen = False
    for window in series.windows:
        floor = window.mem_used_floor_pct
        if floor is None:
            continue
        seen = True
        if floor > line and window.mem_used_floor_sample_count >= config.mem_sustained_min_samples:
            return TriggerResult(
                name="memory_pressure",
                rule=rule,
                status="fired",
                window_index=window.index,
                evidence={
                    "gpu_index": window.mem_used_floor_gpu_index,
                    "mem_used_min_pct": floor,
                    "mem_used_peak_pct": window.mem_used_peak_pct,
                    "mem_used_peak_mib": window.mem_used_peak_mib,
                    "mem_total_mib": window.mem_total_mib,
                    "sample_count": window.mem_used_floor_sample_count,
                    "line_pct": line,
                },
                message=f"GPU {window.mem_used_floor_gpu_index} never went below {floor:.2f}% of its memory"
                f" over {window.mem_used_floor_sample_count} readings in window {window.index}",
            )
    status: TriggerStatus = "clear" if seen else "no_data"
    return TriggerResult(
        name="memory_pressure",
        rule=rule,
        status=status,
        message="memory below the line" if seen else "no memory capacity readings",
    )


def check_movement(logs: list[TimedLog], data_end_s: float, config: TriggerConfig) -> TriggerResult:
    """By ``early_checkpoint_s``: the step advanced and the loss fell by ``min_loss_drop_frac``."""
    checkpoint = config.early_checkpoint_s
    rule = f"No meaningful metric movement (loss, step) by the early checkpoint at {checkpoint:g} s."
    wall = config.wall_elapsed_s
    reached = max(data_end_s, wall or 0.0)  # wall time counts: a hung run's log stops, the clock does not
    if reached < checkpoint:
        clock = f"the run is {wall:.0f} s old (wall clock)" if wall is not None else f"data reaches {data_end_s:g} s"
        return TriggerResult(
            name="no_metric_movement",
            rule=rule,
            status="pending",
            evidence={"data_end_s": data_end_s, "wall_elapsed_s": wall, "checkpoint_s": checkpoint},
            message=f"{clock}; the checkpoint is at {checkpoint:g} s",
        )
    train = [p.sample for p in logs if p.t_s <= checkpoint and p.sample.kind == "train"]
    steps = [s.step for s in train if s.step is not None]
    losses = [s.loss for s in train if s.loss is not None]
    evidence: Evidence = {"checkpoint_s": checkpoint, "records": len(train), "wall_elapsed_s": wall,
                          "data_end_s": data_end_s}
    reasons: list[str] = []
    if not train:
        reasons.append("no training record by the checkpoint")
    if len(steps) >= 2:
        evidence.update(step_first=steps[0], step_last=steps[-1])
        if steps[-1] <= steps[0]:
            reasons.append(f"step stuck at {steps[-1]}")
    if any(math.isnan(x) for x in losses):
        reasons.append("loss is NaN")
    finite = [x for x in losses if math.isfinite(x)]
    if len(finite) >= 2 and finite[0] != 0:
        drop = (finite[0] - min(finite[1:])) / abs(finite[0])
        evidence.update(
            loss_first=finite[0],
            loss_min=min(finite[1:]),
            loss_drop_frac=round(drop, 6),
            min_loss_drop_frac=config.min_loss_drop_frac,
        )
        if drop < config.min_loss_drop_frac:
            reasons.append(f"loss fell {drop:.2%} (< {config.min_loss_drop_frac:.0%})")
    if train and len(steps) < 2 and len(finite) < 2:
        reasons.append("a single record: no movement to see")
    if reasons:
        return TriggerResult(
            name="no_metric_movement", rule=rule, status="fired", evidence=evidence, message="; ".join(reasons)
        )
    return TriggerResult(
        name="no_metric_movement",
        rule=rule,
        status="clear",
        evidence=evidence,
        message="step and loss moved by the checkpoint",
    )
