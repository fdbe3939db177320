"""What a run chart is drawn from, and the numbers it shows: one place for ``preflight plot`` and MCP ``run_plot``.

Why a domain function: both doors read the same run record (log path, format, regex, predicted tokens/s,
the checklist spec's tokens per step), the same files and the same timeline; written twice, the CLI
and MCP charts of one run would drift apart. The summary is what an agent checks the picture against:
the points drawn and the medians the ratio panel shows, each in the unit of the measured line.

Why medians: the first logged step of a run includes compilation and warm-up (nanoGPT's iteration 0
took 9.4 s against ~0.6 s later in our fixture), so a mean is pulled far off by one point; the
playbook's triggers read window medians too.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .models import GpuSample, LogSample
from .plot import HEIGHT, WIDTH, plot_png, predicted_in_unit, throughput_points
from .timeline import Timeline, build_timeline

AGENT_SIZE_PX = (800, 500)
"""The chart an agent reads: 7-10 KB as PNG on our test runs, the 2x font still legible (a file for people
is 960 x 620)."""


@dataclass(frozen=True)
class PlotInputs:
    """A run's samples on one time axis and what was predicted for it."""

    timeline: Timeline
    predicted_tokens_per_s: float | None
    predicted_step_time_s: float | None
    tokens_per_step: int | None
    num_gpus: int | None
    label: str


class PlotSummary(BaseModel):
    """The chart's numbers; throughput fields are in the measured line's unit (``throughput_unit``)."""

    run_id: str | None = None
    width_px: int
    height_px: int
    png_bytes: int
    throughput_unit: str | None = Field(default=None, description="tokens/s, tokens/s per GPU or steps/s.")
    throughput_points: int
    gpu_util_points: int
    measured_median_tokens_per_s: float | None = None
    predicted_tokens_per_s: float | None = None
    measured_median_tokens_per_s_per_gpu: float | None = None
    measured_median_steps_per_s: float | None = None
    predicted_steps_per_s: float | None = None
    measured_over_predicted: float | None = Field(default=None, description="Median measured / predicted.")
    gpu_util_median_pct: float | None = None
    note: str | None = None


def plot_inputs(run_id: str | None, fields: dict[str, Any], *, tokens_per_step: int | None = None) -> PlotInputs:
    """The samples and prediction of run ``run_id`` (``fields``, :class:`RunInputs` names, win over its
    record), or of the files in ``fields`` alone when ``run_id`` is None."""
    from .remotelog import read_log_look
    from .runcheck import make_inputs, resolve_run

    if run_id:
        inputs, _, _, _ = resolve_run(run_id, fields, with_heartbeat=False)
    else:
        inputs = make_inputs(fields)
    logs: list[LogSample] = []
    gpu: list[GpuSample] = []
    for path, fmt, regex, field, host in ((inputs.log_path, inputs.log_format, inputs.log_regex, "log_path",
                                           inputs.log_host), (inputs.nvsmi_path, None, None, "nvsmi_path", None)):
        if path:
            found, _, _ = read_log_look(path, host, fmt=fmt, regex=regex, field=field)
            logs += [s for s in found if isinstance(s, LogSample)]
            gpu += [s for s in found if isinstance(s, GpuSample)]
    interval = inputs.gpu_interval_s or (10.0 if any(s.timestamp is None for s in gpu) else None)
    # A run's own spec gives tokens per step (the checklist's), so its predicted tokens/s and a log that
    # prints only step times are drawn in one unit without --tokens-per-step.
    return PlotInputs(timeline=build_timeline(gpu, logs, gpu_interval_s=interval),
                      predicted_tokens_per_s=inputs.predicted_tokens_per_s,
                      predicted_step_time_s=inputs.predicted_step_time_s,
                      tokens_per_step=tokens_per_step or inputs.tokens_per_step, num_gpus=inputs.num_gpus,
                      label=f"run {run_id or Path(str(inputs.log_path or inputs.nvsmi_path)).name}")


def render(p: PlotInputs, *, title: str | None = None, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """The chart of ``p`` as PNG bytes (see :func:`~gpu_preflight.tools.telemetry.plot.plot_png`)."""
    return plot_png(p.timeline, predicted_tokens_per_s=p.predicted_tokens_per_s,
                    predicted_step_time_s=p.predicted_step_time_s, tokens_per_step=p.tokens_per_step,
                    num_gpus=p.num_gpus, title=title or p.label, width=width, height=height)


def _sig(value: float | None) -> float | None:
    """Four significant digits: the chart's precision, and short JSON."""
    return None if value is None else float(f"{value:.4g}")


def plot_summary(p: PlotInputs, png: bytes, *, run_id: str | None = None) -> PlotSummary:
    """The numbers behind the chart ``png`` of ``p``: points, medians, measured / predicted."""
    import struct

    width_px, height_px = struct.unpack(">II", png[16:24])  # the IHDR chunk of the PNG we drew
    unit, measured = throughput_points(p.timeline, num_gpus=p.num_gpus, tokens_per_step=p.tokens_per_step)
    predicted = predicted_in_unit(unit, p.predicted_tokens_per_s, p.predicted_step_time_s, p.tokens_per_step)
    values = [y for _, y in measured if y > 0]
    median = statistics.median(values) if values else None
    util = [g.sample.gpu_util_pct for g in p.timeline.gpu if g.sample.gpu_util_pct is not None]
    if unit == "tokens/s":
        out: dict[str, float | None] = {"measured_median_tokens_per_s": median, "predicted_tokens_per_s": predicted}
    elif unit == "steps/s":
        out = {"measured_median_steps_per_s": median, "predicted_steps_per_s": predicted}
    else:
        out = {"measured_median_tokens_per_s_per_gpu": median}
    note = None
    if predicted is None and (p.predicted_tokens_per_s or p.predicted_step_time_s) and values:
        note = ("a whole-job prediction and a per-GPU log: the GPU count (num_gpus) is needed"
                if unit.endswith("per GPU") else
                "the prediction is in another unit than the log, and the run's spec gives no tokens per step")
    return PlotSummary(run_id=run_id, width_px=width_px, height_px=height_px, png_bytes=len(png),
                       throughput_unit=unit if values else None, throughput_points=len(values),
                       gpu_util_points=len(util), **{k: _sig(v) for k, v in out.items()},
                       measured_over_predicted=_sig(median / predicted) if median and predicted else None,
                       gpu_util_median_pct=_sig(statistics.median(util)) if util else None, note=note)

