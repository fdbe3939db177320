"""How far a run got and how fast, from what its log and record hold when the log says little.

Why apart from :mod:`.runcheck`: these are the rules the issue-15 loop found missing on real
programs: a tokens/s promise turned into a step time with the spec's tokens per step (nanoGPT and
HF Trainer print no tokens), the wall clock as the run's age (a hung run's log stops, the clock does
not), an ETA withheld while the run does not move, and HF's closing summary as the step time when
``disable_tqdm`` leaves no per-step times.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .assess import Assessment
from .models import LogSample
from .triggers import Prediction

if TYPE_CHECKING:
    from .runcheck import RunInputs


def make_prediction(inputs: RunInputs, notes: list[str]) -> Prediction | None:
    """The prediction; a tokens/s promise becomes a step time too when the spec gives tokens per step,
    so the throughput trigger runs on logs that print step times but no tokens (nanoGPT, HF Trainer)."""
    step_s = inputs.predicted_step_time_s
    if step_s is None and inputs.predicted_tokens_per_s and inputs.tokens_per_step:
        step_s = inputs.tokens_per_step / inputs.predicted_tokens_per_s
        notes.append(f"predicted step time {step_s:.4g} s = {inputs.tokens_per_step:,} tokens per step (the spec) / "
                     f"{inputs.predicted_tokens_per_s:,.6g} predicted tokens/s")
    if inputs.predicted_tokens_per_s or step_s:
        return Prediction(tokens_per_s=inputs.predicted_tokens_per_s, step_time_s=step_s)
    return None


def wall_elapsed_s(inputs: RunInputs, hb: dict[str, Any] | None, now_epoch_s: float | None) -> float | None:
    """Wall seconds since the run started (the heartbeat's, else the start record's), or None.

    Never below 0, so a check never fails on a clock: the box's clock is read with its fraction since
    (``date +%s.%N``, :func:`~gpu_preflight.tools.dispatch.remote.box_clock_s`; whole seconds made a run
    -0.2 s old in its first second, tests/test_remote_live_gpu.py), but a ``date`` without ``%N`` (BusyBox
    built without it, BSD) still gives whole seconds, and NTP may step any clock back.
    """
    if hb is not None and isinstance(hb.get("elapsed_s"), int | float):
        return max(float(hb["elapsed_s"]), 0.0)
    if inputs.started_at_epoch_s is not None:
        return max((now_epoch_s or time.time()) - inputs.started_at_epoch_s, 0.0)
    return None


def not_moving(hb: dict[str, Any] | None, a: Assessment) -> str | None:
    """Why a run makes no progress (so an ETA would be a frozen lie), or None while it moves."""
    state = hb.get("state") if hb else None
    if state in ("hung", "exited", "idle_at_prompt"):
        return f"the heartbeat says {state}: the run is not advancing"
    moved = next((r for r in a.triggers if r.name == "no_metric_movement"), None)
    if moved is not None and moved.status == "fired" and "stuck" in moved.message:
        return f"no_metric_movement: {moved.message}"
    return None


def summary_step_time(logs: Sequence[LogSample]) -> tuple[float, int] | None:
    """(seconds per step, steps) from an end-of-run summary (HF ``train_runtime`` and steps/s).

    The printed steps/s is rounded (1.52 for 80 steps in 52.64 s), so the step count is taken as
    ``round(runtime x steps/s)`` and the step time recomputed from the runtime, which is exact.
    """
    for s in reversed(logs):
        if s.kind == "summary" and s.elapsed_s and s.step_time_s:
            steps = max(1, round(s.elapsed_s / s.step_time_s))
            return s.elapsed_s / steps, steps
    return None
