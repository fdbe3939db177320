"""One call from samples to a verdict: windows, the four triggers, the bottleneck and the action.

This is the runtime validation loop of pre-estimation.md section 5 as a function, so a recorded
run can be replayed through exactly what the live watcher does. On any fired trigger the answer
carries the playbook's action (pause, reclassify, update the estimate before relaunch) plus the
run-calibrated playbook's "change one variable": the bottleneck's first suggestion.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from .bottleneck import Bottleneck, HostEvidence, classify_bottleneck
from .models import GpuSample, LogSample
from .timeline import Timeline, build_timeline
from .triggers import (
    Prediction,
    TriggerConfig,
    TriggerName,
    TriggerResult,
    check_gpu_util,
    check_memory,
    check_movement,
    check_throughput,
)
from .windows import DEFAULT_WINDOW_S, EtaTrend, WindowSeries, fold_windows

PLAYBOOK_ACTIONS: tuple[str, ...] = (
    "Pause the expensive run.",
    "Reclassify the bottleneck (compute, memory, input, sync, logging, infra).",
    "Update the pre-estimate with the measured data before relaunch.",
)


class Assessment(BaseModel):
    """Windows, every trigger's verdict, and, when one fired, the action and the bottleneck."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    series: WindowSeries
    triggers: list[TriggerResult]
    fired: list[TriggerName]
    action: list[str]
    bottleneck: Bottleneck | None
    eta_s: float | None
    eta_trend: EtaTrend


def assess(
    timeline: Timeline,
    *,
    prediction: Prediction | None = None,
    config: TriggerConfig | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    total_steps: int | None = None,
    host: HostEvidence | None = None,
) -> Assessment:
    """Fold ``timeline`` into windows and evaluate every trigger; classify when one fires."""
    config = config or TriggerConfig()
    series = fold_windows(timeline, window_s=window_s, total_steps=total_steps)
    if prediction is not None:
        throughput = check_throughput(series, prediction, config)
    else:
        throughput = TriggerResult(
            name="throughput_below_predicted",
            rule=f"Actual throughput < {config.throughput_ratio_min:.0%} of predicted for "
            f"{config.throughput_consecutive_windows} consecutive windows.",
            status="no_data",
            message="no prediction given",
        )
    results = [
        throughput,
        check_gpu_util(series, config),
        check_memory(series, config),
        check_movement(timeline.logs, series.data_end_s, config),
    ]
    fired = [r for r in results if r.status == "fired"]
    bottleneck = (
        classify_bottleneck(series, timeline.logs, fired, host, gpu_util_min_pct=config.gpu_util_min_pct)
        if fired
        else None
    )
    action = [*PLAYBOOK_ACTIONS, f"Change one variable and relaunch: {bottleneck.suggestion}."] if bottleneck else []
    etas = [w.eta_s for w in series.windows if w.eta_s is not None]
    return Assessment(
        series=series,
        triggers=results,
        fired=[r.name for r in fired],
        action=action,
        bottleneck=bottleneck,
        eta_s=etas[-1] if etas else None,
        eta_trend=series.eta_trend,
    )


def assess_samples(
    gpu_samples: Sequence[GpuSample],
    log_samples: Sequence[LogSample],
    *,
    gpu_interval_s: float | None = None,
    log_offset_s: float = 0.0,
    prediction: Prediction | None = None,
    config: TriggerConfig | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    total_steps: int | None = None,
    host: HostEvidence | None = None,
) -> Assessment:
    """:func:`assess` straight from parsed samples (see :func:`build_timeline` for the time axis)."""
    timeline = build_timeline(gpu_samples, log_samples, gpu_interval_s=gpu_interval_s, log_offset_s=log_offset_s)
    return assess(timeline, prediction=prediction, config=config, window_s=window_s, total_steps=total_steps, host=host)
