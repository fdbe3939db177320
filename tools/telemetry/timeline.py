"""Put GPU readings and log records on one time axis (seconds since the capture began).

Why this is its own step: the sources disagree about time. nvidia-smi query CSVs carry
timestamps, ``dmon`` usually does not (its rows are ``-d`` seconds apart), torchtitan and
Megatron print wall-clock times, and nanoGPT, nanochat, Hugging Face and Lightning print only
how long a step took. Windows need one clock, so each source is placed by the best evidence it
has, in this order: absolute timestamps; step times added up; the log's own elapsed counter.

Integrating step times: a log line every N steps shows the time of its last step only (nanoGPT
times one iteration, so the iteration that ran an eval and saved a checkpoint shows 45 s). The
N-1 unlogged steps are taken at the smaller of this and the previous logged step time, so one
spike is counted once, not N times.

When both sources have absolute timestamps they share an origin; otherwise each starts at 0 and
``log_offset_s`` says when the log's first record came after the GPU capture began.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gpu_preflight.tools.common.errors import PreflightError

from .models import GpuSample, LogSample


@dataclass(frozen=True)
class TimedGpu:
    """A GPU reading at ``t_s`` seconds on the shared axis."""

    t_s: float
    sample: GpuSample


@dataclass(frozen=True)
class TimedLog:
    """A log record at ``t_s`` seconds on the shared axis."""

    t_s: float
    sample: LogSample


@dataclass(frozen=True)
class Timeline:
    """Both sources on one axis, each list in time order."""

    gpu: list[TimedGpu]
    logs: list[TimedLog]

    @property
    def end_s(self) -> float:
        """The latest time any sample was placed at (0 when empty)."""
        times = [p.t_s for p in self.gpu] + [p.t_s for p in self.logs]
        return max(times, default=0.0)


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _gpu_times(samples: Sequence[GpuSample], interval_s: float | None) -> tuple[list[float], datetime | None]:
    if samples and all(s.timestamp for s in samples):
        stamps = [_parse_iso(s.timestamp or "") for s in samples]
        origin = min(stamps)
        return [(ts - origin).total_seconds() for ts in stamps], origin
    if not samples:
        return [], None
    if interval_s is None or interval_s <= 0:
        raise PreflightError(
            "gpu_interval_s",
            interval_s,
            "seconds between untimed GPU samples (the -l or -d value of the capture), > 0",
        )
    return [s.seq * interval_s for s in samples], None


def _log_times(samples: Sequence[LogSample]) -> tuple[list[float], datetime | None]:
    if samples and all(s.timestamp for s in samples):
        stamps = [_parse_iso(s.timestamp or "") for s in samples]
        origin = min(stamps)
        return [(ts - origin).total_seconds() for ts in stamps], origin
    times: list[float] = []
    t = 0.0
    prev_step: int | None = None
    prev_step_time: float | None = None
    prev_elapsed: float | None = None
    for sample in samples:
        if times and sample.kind == "train":
            if sample.step is not None and prev_step is not None and sample.step_time_s is not None:
                gap = max(sample.step - prev_step, 0)
                if gap:
                    filler = min(sample.step_time_s, prev_step_time or sample.step_time_s)
                    t += sample.step_time_s + (gap - 1) * filler
            elif sample.elapsed_s is not None and prev_elapsed is not None:
                t += max(sample.elapsed_s - prev_elapsed, 0.0)
        times.append(t)
        if sample.kind == "train":
            prev_step = sample.step if sample.step is not None else prev_step
            prev_step_time = sample.step_time_s if sample.step_time_s is not None else prev_step_time
            prev_elapsed = sample.elapsed_s if sample.elapsed_s is not None else prev_elapsed
    return times, None


def build_timeline(
    gpu_samples: Sequence[GpuSample],
    log_samples: Sequence[LogSample],
    *,
    gpu_interval_s: float | None = None,
    log_offset_s: float = 0.0,
) -> Timeline:
    """Place both sources on one axis; ``gpu_interval_s`` is needed only for untimed GPU captures.

    Summary records (end-of-run dicts) are left out: they describe the whole run, not a moment.

    >>> logs = [LogSample(step=10, step_time_s=1.0), LogSample(step=20, step_time_s=3.0)]
    >>> [p.t_s for p in build_timeline([], logs).logs]
    [0.0, 12.0]
    """
    logs = [s for s in log_samples if s.kind != "summary"]
    gpu_t, gpu_origin = _gpu_times(gpu_samples, gpu_interval_s)
    log_t, log_origin = _log_times(logs)
    if gpu_origin is not None and log_origin is not None:
        origin = min(gpu_origin, log_origin)
        gpu_shift = (gpu_origin - origin).total_seconds()
        log_shift = (log_origin - origin).total_seconds()
    else:
        gpu_shift, log_shift = 0.0, log_offset_s
    gpu = sorted(
        (TimedGpu(round(t + gpu_shift, 6), s) for t, s in zip(gpu_t, gpu_samples, strict=True)), key=lambda p: p.t_s
    )
    timed_logs = [TimedLog(round(t + log_shift, 6), s) for t, s in zip(log_t, logs, strict=True)]
    return Timeline(gpu=gpu, logs=sorted(timed_logs, key=lambda p: p.t_s))
