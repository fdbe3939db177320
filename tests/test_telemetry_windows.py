"""Time axis and windows: placement rules, per-window aggregates, activity, ETA and its trend."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.telemetry.ingest import ingest
from gpu_preflight.tools.telemetry.models import GpuSample, LogSample
from gpu_preflight.tools.telemetry.timeline import build_timeline
from gpu_preflight.tools.telemetry.windows import fold_windows

FIXTURES = Path(__file__).parent / "fixtures"
T0 = datetime(2024, 1, 1, 12, 0, 0)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def test_untimed_dmon_needs_the_interval() -> None:
    samples = ingest(FIXTURES / "nvidia-smi/dmon_pucm_a100x2_slurm_log.txt").gpu_samples()
    with pytest.raises(PreflightError) as err:
        build_timeline(samples, [])
    assert err.value.field == "gpu_interval_s"
    timeline = build_timeline(samples, [], gpu_interval_s=10)
    assert [(p.t_s, p.sample.gpu_index) for p in timeline.gpu] == [(0, 0), (0, 1), (10, 0), (10, 1), (20, 0)]


def test_absolute_timestamps_share_an_origin() -> None:
    gpu = [GpuSample(gpu_index=0, timestamp=at(0)), GpuSample(gpu_index=0, seq=1, timestamp=at(10))]
    logs = [LogSample(step=1, timestamp=at(4)), LogSample(step=2, timestamp=at(7))]
    timeline = build_timeline(gpu, logs)
    assert [p.t_s for p in timeline.gpu] == [0.0, 10.0]
    assert [p.t_s for p in timeline.logs] == [4.0, 7.0]


def test_relative_logs_use_the_offset_and_skip_summaries() -> None:
    logs = [
        LogSample(step=0, step_time_s=5.0),
        LogSample(step=1, step_time_s=2.0),
        LogSample(kind="eval", step=1, val_loss=1.0),
        LogSample(kind="summary", elapsed_s=99.0),
    ]
    timeline = build_timeline([], logs, log_offset_s=30.0)
    assert [(p.t_s, p.sample.kind) for p in timeline.logs] == [(30.0, "train"), (32.0, "train"), (32.0, "eval")]


def test_nanogpt_eval_spike_counted_once_not_ten_times() -> None:
    logs = ingest(FIXTURES / "logs/nanogpt_cpu_shakespeare_char.log").log_samples()
    timeline = build_timeline([], logs)
    by_step = {p.sample.step: p.t_s for p in timeline.logs if p.sample.kind == "train"}
    # iter 90 -> 100: one 44.99639 s iteration (eval + checkpoint) + 9 at min(44.99639, 1.82568) s.
    assert by_step[100] - by_step[90] == pytest.approx(44.99639 + 9 * 1.82568)


def test_elapsed_counter_used_when_no_step_time() -> None:
    logs = [LogSample(step=1, elapsed_s=100.0), LogSample(step=2, elapsed_s=160.0)]
    assert [p.t_s for p in build_timeline([], logs).logs] == [0.0, 60.0]


def test_window_aggregates_exact() -> None:
    gpu = [
        GpuSample(
            gpu_index=0,
            seq=0,
            timestamp=at(0),
            gpu_util_pct=90,
            mem_util_pct=40,
            mem_used_mib=900,
            mem_total_mib=1000,
            power_w=300,
            power_limit_w=400,
        ),
        GpuSample(
            gpu_index=1,
            seq=0,
            timestamp=at(1),
            gpu_util_pct=30,
            mem_util_pct=10,
            mem_used_mib=500,
            mem_total_mib=1000,
            power_w=100,
            power_limit_w=400,
            throttle_reasons=["sw_power_cap"],
        ),
        GpuSample(
            gpu_index=0,
            seq=1,
            timestamp=at(5),
            gpu_util_pct=100,
            mem_util_pct=60,
            mem_used_mib=950,
            mem_total_mib=1000,
            power_w=320,
            power_limit_w=400,
        ),
        GpuSample(gpu_index=0, seq=2, timestamp=at(12), gpu_util_pct=0, mem_used_mib=100, mem_total_mib=1000),
    ]
    logs = [
        LogSample(
            step=10,
            loss=3.0,
            tokens_per_s=1000,
            tokens_per_s_scope="device",
            step_time_s=1.0,
            mfu_pct=30,
            timestamp=at(2),
            total_steps=110,
        ),
        LogSample(
            step=11,
            loss=2.5,
            tokens_per_s=3000,
            tokens_per_s_scope="device",
            step_time_s=3.0,
            mfu_pct=40,
            timestamp=at(8),
        ),
    ]
    series = fold_windows(build_timeline(gpu, logs), window_s=10)
    w0, w1 = series.windows
    assert (w0.gpu_sample_count, w0.log_sample_count, w0.gpu_count) == (3, 2, 2)
    assert (w0.gpu_util_avg_pct, w0.gpu_util_low_gpu_index, w0.gpu_util_low_gpu_avg_pct) == (73.333333, 1, 30.0)
    assert (w0.gpu_util_high_gpu_avg_pct, w0.mem_util_avg_pct, w0.mem_util_peak_pct) == (95.0, 36.666667, 60.0)
    assert (w0.mem_used_peak_mib, w0.mem_total_mib, w0.mem_used_peak_pct) == (950.0, 1000.0, 95.0)
    assert (w0.mem_used_floor_pct, w0.mem_used_floor_gpu_index, w0.mem_used_floor_sample_count) == (90.0, 0, 2)
    assert (w0.power_avg_w, w0.power_limit_w, w0.throttle_reasons) == (240.0, 400.0, ["sw_power_cap"])
    assert (w0.tokens_per_s_median, w0.tokens_per_s_scope, w0.step_time_median_s) == (2000.0, "device", 2.0)
    assert (w0.step_time_max_s, w0.mfu_median_pct, w0.step_first, w0.step_last) == (3.0, 35.0, 10, 11)
    assert (w0.loss_first, w0.loss_last, w0.total_steps) == (3.0, 2.5, 110)
    assert (w0.eta_s, w0.projected_finish_s) == (198.0, 206.0)  # (110 - 11) steps x 2.0 s, from t = 8 s
    assert (w0.active, w0.complete) == (True, True)
    assert (w1.index, w1.start_s, w1.end_s, w1.complete, w1.active) == (1, 10.0, 20.0, False, False)
    assert w1.active_reason == "no log progress and no GPU memory held"


def test_active_from_gpu_memory_without_logs() -> None:
    samples = ingest(FIXTURES / "nvidia-smi/query_csv_nounits_a100_80gb_nesi_2024-03-13.csv").gpu_samples()
    series = fold_windows(build_timeline(samples, []), window_s=5)
    # 0 MiB and 445 MiB: idle; 80257 MiB held from 07:04:38.839 on: active.
    assert [w.active for w in series.windows] == [False, False, True, True, True, True, True]
    assert series.windows[2].active_reason == "a GPU holds 80257 MiB (>= 1024 MiB)"


def test_empty_windows_are_kept_between_data() -> None:
    logs = [LogSample(step=1, timestamp=at(0)), LogSample(step=2, timestamp=at(25))]
    series = fold_windows(build_timeline([], logs), window_s=10)
    assert [(w.index, w.log_sample_count, w.active) for w in series.windows] == [
        (0, 1, True),
        (1, 0, False),
        (2, 1, True),
    ]


def _eta_series(step_times: list[float]) -> str:
    logs = [
        LogSample(step=100 * (i + 1), step_time_s=st, total_steps=100_000, timestamp=at(60 * i))
        for i, st in enumerate(step_times)
    ]
    return fold_windows(build_timeline([], logs), window_s=60).eta_trend


def test_eta_trend() -> None:
    assert _eta_series([1.0]) == "unknown"
    assert _eta_series([1.0, 1.0]) == "stable"
    assert _eta_series([1.0, 1.2]) == "slipping"
    assert _eta_series([1.2, 1.0]) == "improving"


def test_eta_drift_exact() -> None:
    logs = [
        LogSample(step=100, step_time_s=1.0, total_steps=1100, timestamp=at(0)),
        LogSample(step=200, step_time_s=2.0, timestamp=at(60)),
    ]
    series = fold_windows(build_timeline([], logs), window_s=60)
    # window 0: 1000 steps x 1 s from t=0 -> 1000; window 1: 900 x 2 s from t=60 -> 1860.
    assert [w.projected_finish_s for w in series.windows] == [1000.0, 1860.0]
    assert (series.eta_trend, series.eta_drift_s) == ("slipping", 860.0)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_bad_window_refused(bad: float) -> None:
    with pytest.raises(PreflightError) as err:
        fold_windows(build_timeline([], []), window_s=bad)
    assert err.value.field == "window_s"
