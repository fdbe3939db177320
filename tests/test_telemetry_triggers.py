"""Each trigger at and around its playbook threshold, and the bottleneck class each evidence pattern gives."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from gpu_preflight.tools.telemetry.assess import PLAYBOOK_ACTIONS, assess, assess_samples
from gpu_preflight.tools.telemetry.bottleneck import HostEvidence
from gpu_preflight.tools.telemetry.ingest import ingest
from gpu_preflight.tools.telemetry.models import GpuSample, LogSample
from gpu_preflight.tools.telemetry.timeline import build_timeline
from gpu_preflight.tools.telemetry.triggers import (
    Prediction,
    TriggerConfig,
    check_gpu_util,
    check_memory,
    check_movement,
    check_throughput,
)
from gpu_preflight.tools.telemetry.windows import WindowSeries, fold_windows

FIXTURES = Path(__file__).parent / "fixtures"
T0 = datetime(2024, 1, 1, 12, 0, 0)
CONFIG = TriggerConfig()


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def tokens_windows(per_window: list[float | None], scope: str = "job") -> WindowSeries:
    """One log record per 10 s window with the given tokens/s (None: a window without a record).

    A last record without throughput opens one more window, so every listed window is complete.
    """
    logs = [
        LogSample(step=i + 1, tokens_per_s=v, tokens_per_s_scope=scope, timestamp=at(10 * i + 1))  # type: ignore[arg-type]
        for i, v in enumerate(per_window)
        if v is not None
    ]
    logs.append(LogSample(step=len(per_window) + 1, timestamp=at(10 * len(per_window) + 1)))
    return fold_windows(build_timeline([], logs), window_s=10)


# --- throughput < 70% of predicted for 2 consecutive windows ---------------------------------------


@pytest.mark.parametrize(
    ("measured", "status", "window"),
    [
        ([700.0, 700.0], "clear", None),  # exactly 70%: not below
        ([699.9, 699.9], "fired", 1),
        # Below the line in the latest window(s) but fewer than two in a row: pending (not clear), not fired.
        ([699.9, 700.0, 699.9], "pending", 2),  # never two in a row
        ([699.9], "pending", 0),  # one window is not two
        ([699.9, None, 699.9], "pending", 2),  # a window without a measurement breaks the run
        ([699.9, 700.0], "clear", None),  # the latest window is back at the line
        ([800.0, 500.0, 600.0, 650.0], "fired", 2),
    ],
)
def test_throughput_threshold_and_consecutive_rule(
    measured: list[float | None], status: str, window: int | None
) -> None:
    result = check_throughput(tokens_windows(measured), Prediction(tokens_per_s=1000), CONFIG)
    assert (result.status, result.window_index) == (status, window)


def test_throughput_waits_for_the_window_to_close() -> None:
    logs = [LogSample(step=i, tokens_per_s=100.0, timestamp=at(10 * i + 1)) for i in range(2)]
    series = fold_windows(build_timeline([], logs), window_s=10)
    assert [w.complete for w in series.windows] == [True, False]
    result = check_throughput(series, Prediction(tokens_per_s=1000), CONFIG)
    # The filling window is not judged: one complete window below the line is pending, never fired.
    assert (result.status, result.window_index) == ("pending", 0)


def test_throughput_evidence_numbers() -> None:
    result = check_throughput(tokens_windows([800.0, 500.0, 600.0]), Prediction(tokens_per_s=1000), CONFIG)
    assert result.evidence == {
        "windows": [1, 2],
        "ratios": [0.5, 0.6],
        "ratio_min": 0.7,
        "measured_tokens_per_s": 600.0,
        "predicted_tokens_per_s": 1000.0,
    }
    assert result.rule == "Actual throughput < 70% of predicted for 2 consecutive windows."
    assert result.message == "throughput at 50%, 60% of predicted in windows [1, 2]"


def test_throughput_device_scope_scaled_by_gpu_count() -> None:
    series = tokens_windows([1000.0, 1000.0], scope="device")
    eight = TriggerConfig(gpu_count=8)
    fired = check_throughput(series, Prediction(tokens_per_s=12_000), eight)  # 8 x 1000 / 12000 = 67%
    assert (fired.status, fired.evidence["measured_tokens_per_s"]) == ("fired", 8000.0)
    assert check_throughput(series, Prediction(tokens_per_s=8_000), eight).status == "clear"
    assert (
        check_throughput(series, Prediction(tokens_per_s=1_000, tokens_per_s_scope="device"), eight).status == "clear"
    )


def test_throughput_by_step_time_and_no_data() -> None:
    def series(step_time: float) -> WindowSeries:
        logs = [LogSample(step=i, step_time_s=step_time, timestamp=at(10 * i)) for i in range(2)]
        logs.append(LogSample(step=2, timestamp=at(20)))  # closes window 1
        return fold_windows(build_timeline([], logs), window_s=10)

    predicted = Prediction(step_time_s=0.7)
    assert check_throughput(series(1.0), predicted, CONFIG).status == "clear"  # 0.7 / 1.0 = 70%
    assert check_throughput(series(1.0001), predicted, CONFIG).status == "fired"
    assert check_throughput(series(1.0), Prediction(tokens_per_s=10), CONFIG).status == "no_data"


def test_prediction_needs_a_figure() -> None:
    with pytest.raises(ValidationError):
        Prediction()
    with pytest.raises(ValidationError):
        Prediction(tokens_per_s=0)


# --- GPU utilization < 60% while the job is active -------------------------------------------------


def util_series(utils: list[tuple[int, float]], mem_used_mib: float = 20_000) -> WindowSeries:
    gpu = [
        GpuSample(gpu_index=g, seq=i, timestamp=at(1), gpu_util_pct=u, mem_used_mib=mem_used_mib, mem_total_mib=80_000)
        for i, (g, u) in enumerate(utils)
    ]
    return fold_windows(build_timeline(gpu, []), window_s=10)


@pytest.mark.parametrize(
    ("utils", "status"),
    [
        ([(0, 60.0)], "clear"),  # exactly 60%: not below
        ([(0, 59.9)], "fired"),
        ([(0, 50.0), (0, 70.0)], "clear"),  # the window average is 60
        ([(0, 95.0), (1, 59.0)], "fired"),  # one idle GPU of two
    ],
)
def test_gpu_util_threshold(utils: list[tuple[int, float]], status: str) -> None:
    assert check_gpu_util(util_series(utils), CONFIG).status == status


def test_gpu_util_evidence_names_the_idle_gpu() -> None:
    result = check_gpu_util(util_series([(0, 95.0), (1, 40.0)]), CONFIG)
    assert result.evidence["gpu_index"] == 1 and result.evidence["gpu_util_avg_pct"] == 40.0
    assert result.evidence["all_gpus_util_avg_pct"] == 67.5


def test_gpu_util_ignored_while_job_inactive() -> None:
    assert check_gpu_util(util_series([(0, 0.0)], mem_used_mib=500), CONFIG).status == "no_data"


# --- memory > 92% sustained ---------------------------------------------------------------------------


def mem_series(used: list[float]) -> WindowSeries:
    gpu = [
        GpuSample(gpu_index=0, seq=i, timestamp=at(i), mem_used_mib=u, mem_total_mib=1000) for i, u in enumerate(used)
    ]
    return fold_windows(build_timeline(gpu, []), window_s=10)


@pytest.mark.parametrize(
    ("used", "status"),
    [
        ([920.0, 920.0], "clear"),  # exactly 92%
        ([921.0, 930.0], "fired"),
        ([921.0], "clear"),  # one reading is not sustained
        ([990.0, 919.0, 990.0], "clear"),  # dipped below within the window
    ],
)
def test_memory_threshold_and_sustained_rule(used: list[float], status: str) -> None:
    assert check_memory(mem_series(used), CONFIG).status == status


def test_memory_evidence() -> None:
    result = check_memory(mem_series([921.0, 930.0]), CONFIG)
    assert (result.window_index, result.evidence["mem_used_min_pct"], result.evidence["mem_used_peak_mib"]) == (
        0,
        92.1,
        930.0,
    )


# --- no meaningful metric movement by the early checkpoint -----------------------------------------


def movement(losses: Sequence[float | None], steps: Sequence[int | None], end_s: float = 70.0) -> tuple[str, str]:
    logs = [LogSample(step=s, loss=v, timestamp=at(10 * i)) for i, (v, s) in enumerate(zip(losses, steps, strict=True))]
    timeline = build_timeline([], logs)
    result = check_movement(timeline.logs, end_s, TriggerConfig(early_checkpoint_s=60))
    return result.status, result.message


def test_movement_thresholds() -> None:
    assert movement([2.0, 1.98], [1, 2])[0] == "clear"  # fell exactly 1%
    assert movement([1.0, 0.9901], [1, 2]) == ("fired", "loss fell 0.99% (< 1%)")
    assert movement([1.0, 0.5], [5, 5]) == ("fired", "step stuck at 5")
    assert movement([1.0, math.nan], [1, 2]) == ("fired", "loss is NaN")
    assert movement([None, None], [1, 2])[0] == "clear"  # steps moved; this log prints no loss
    assert movement([3.0], [1]) == ("fired", "a single record: no movement to see")
    assert movement([3.0, 2.0], [1, 2], end_s=59.0)[0] == "pending"


def test_movement_counts_only_records_before_the_checkpoint() -> None:
    # steps 1..8 at t = 0..70 s; only t <= 60 counts, where the loss is flat.
    status, _ = movement([3.0] * 7 + [1.0], list(range(1, 9)))
    assert status == "fired"


def test_no_training_record_by_checkpoint() -> None:
    result = check_movement([], 600.0, CONFIG)
    assert (result.status, result.message) == ("fired", "no training record by the checkpoint")


# --- bottleneck classes --------------------------------------------------------------------------


def run(
    utils: list[list[float]],
    *,
    power_w: float | None = None,
    power_limit_w: float | None = None,
    mem_used_mib: float = 20_000,
    throttle: list[str] | None = None,
    tokens: float = 500.0,
    host: HostEvidence | None = None,
) -> tuple[str | None, str | None, list[str]]:
    """Two complete 60 s windows (and a third filling): per GPU a reading every 10 s, log at ``tokens``/s."""
    gpu = [
        GpuSample(
            gpu_index=g,
            seq=k,
            timestamp=at(10 * k),
            gpu_util_pct=u,
            mem_used_mib=mem_used_mib,
            mem_total_mib=80_000,
            power_w=power_w,
            power_limit_w=power_limit_w,
            throttle_reasons=throttle,
        )
        for k in range(13)
        for g, per_gpu in enumerate(utils)
        for u in per_gpu
    ]
    logs = [LogSample(step=k + 1, loss=3.0 - 0.1 * k, tokens_per_s=tokens, timestamp=at(10 * k + 5)) for k in range(13)]
    result = assess_samples(gpu, logs, prediction=Prediction(tokens_per_s=1000), window_s=60, host=host)
    b = result.bottleneck
    return (b.bottleneck_class if b else None), (b.confidence if b else None), list(result.fired)


def test_bottleneck_input_from_idle_gpu() -> None:
    assert run([[40.0]]) == ("input", "medium", ["throughput_below_predicted", "gpu_util_low"])
    assert run([[40.0]], host=HostEvidence(cpu_util_pct=97))[:2] == ("input", "high")


def test_bottleneck_sync_from_unbalanced_gpus() -> None:
    assert run([[95.0], [35.0]])[:2] == ("sync", "medium")


def test_bottleneck_compute_high_power() -> None:
    assert run([[98.0]], power_w=650, power_limit_w=700)[:2] == ("compute", "high")


def test_bottleneck_busy_but_cold_gpus() -> None:
    assert run([[98.0]], power_w=200, power_limit_w=700)[:2] == ("compute", "low")  # small kernels
    assert run([[98.0], [98.0]], power_w=200, power_limit_w=700)[:2] == ("sync", "medium")  # NCCL waits


def test_bottleneck_memory() -> None:
    assert run([[98.0]], mem_used_mib=79_000, tokens=900.0) == ("memory", "high", ["memory_pressure"])


def test_bottleneck_infra_throttle_and_events() -> None:
    assert run([[98.0]], throttle=["hw_thermal_slowdown"])[:2] == ("infra", "high")
    assert run([[98.0]], host=HostEvidence(infra_events=["Xid 79"]))[:2] == ("infra", "high")


def test_bottleneck_logging_from_recorded_eval_spikes() -> None:
    logs = ingest(FIXTURES / "logs/nanogpt_cpu_shakespeare_char.log").log_samples()
    result = assess(build_timeline([], logs), prediction=Prediction(step_time_s=1.0), window_s=60)
    assert result.fired == ["throughput_below_predicted"]
    assert result.bottleneck is not None
    assert (result.bottleneck.bottleneck_class, result.bottleneck.confidence) == ("logging", "high")
    assert "right after eval/checkpoint records" in result.bottleneck.reasoning[0]
    assert "at steps [100, 110]" in result.bottleneck.reasoning[-1]


def test_no_trigger_no_action() -> None:
    assert run([[98.0]], power_w=650, power_limit_w=700, tokens=1000.0) == (None, None, [])


def test_action_is_the_playbook_plus_one_change() -> None:
    logs = [LogSample(step=k, loss=3.0, tokens_per_s=100, timestamp=at(10 * k)) for k in range(8)]
    config = TriggerConfig(early_checkpoint_s=60)
    result = assess(build_timeline([], logs), prediction=Prediction(tokens_per_s=1000), config=config, window_s=30)
    assert result.action[:3] == list(PLAYBOOK_ACTIONS)
    assert result.action[3].startswith("Change one variable and relaunch: ")
    assert set(result.fired) == {"throughput_below_predicted", "no_metric_movement"}


def test_without_prediction_throughput_has_no_data() -> None:
    result = assess(build_timeline([], [LogSample(step=1, timestamp=at(0))]))
    assert result.triggers[0].status == "no_data" and result.triggers[0].message == "no prediction given"
