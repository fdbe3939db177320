"""Short markdown for a run check, a calibration and an ingest: what a person (or the text beside an
MCP result) reads first. The structured answers carry every number; these lines carry the verdict."""

from __future__ import annotations

import statistics
from typing import Any

from pydantic import BaseModel

from gpu_preflight.tools.common.render import fmt_scenarios, table

from .calibrate import Calibration
from .models import GpuSample, IngestResult, LogSample
from .nvml import NvmlSnapshot
from .runcheck import RunCheck


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def check_markdown(c: RunCheck) -> str:
    """The run check as a few lines and a trigger table."""
    head = f"**{c.decision.decision.upper()}**: {c.decision.reason}"
    lines = [head]
    if c.heartbeat is not None:
        lines.append(f"heartbeat: {c.heartbeat.get('state')} ({c.heartbeat.get('reason', '')})")
    if c.probe_cap is not None:
        lines.append(f"probe cap: {c.probe_cap.reason}")
    w = c.window
    if w is not None:
        util = f"{w.gpu_util_avg_pct:.0f}%" if w.gpu_util_avg_pct is not None else "n/a"
        mem = f"{w.mem_used_peak_pct:.0f}%" if w.mem_used_peak_pct is not None else "n/a"
        step = f"{w.step_time_median_s:.3g} s" if w.step_time_median_s is not None else "n/a"
        source = w.step_time_source
        if source and source != "log":
            step += f" (from {source.replace('_', ' ')})"
        lines.append(f"window {w.index} ({w.start_s / 60:.3g}-{w.end_s / 60:.3g} min): GPU util {util}, memory peak "
                     f"{mem}, median step {step}, step {w.step_last if w.step_last is not None else 'n/a'}")
    ratio = f" ({c.throughput_ratio:.0%} of predicted)" if c.throughput_ratio is not None else ""
    if c.measured_tokens_per_s is not None:
        lines.append(f"throughput: {c.measured_tokens_per_s:,.0f} tokens/s{ratio}")
    elif c.throughput_ratio is not None:
        lines.append(f"throughput: {c.throughput_ratio:.0%} of predicted (from the step time)")
    lines.append(f"ETA {_hours(c.eta_s)} ({c.eta_trend}); cost so far {_usd(c.cost_so_far_usd)}, to finish "
                 f"{_usd(c.cost_to_finish_usd)}, total {_usd(c.cost_total_usd)}")
    lines.append(table(["trigger", "status", "detail"], [[t.name, t.status, t.message] for t in c.triggers]))
    if c.bottleneck is not None:
        lines.append(f"bottleneck: {c.bottleneck.bottleneck_class} ({c.bottleneck.confidence}); "
                     f"{c.bottleneck.reasoning[0]}")
    lines += [f"- {note}" for note in c.notes]
    return "\n".join(lines)


def calibration_markdown(cal: Calibration) -> str:
    """Stages C-D in the playbook's table shape, the comparison, the options and the decision."""
    d = cal.decision
    target = f" to {d.switch_to_offer}" if d.switch_to_offer else ""
    ratio = f"{cal.comparison.ratio:.0%}" if cal.comparison.ratio is not None else "n/a"
    lines = [
        f"**{d.decision.upper()}{target}**: {d.reason}",
        f"live {cal.tokens_per_s:,.0f} tokens/s ({cal.step_time_s:.3g} s/step) on {cal.num_gpus}x {cal.gpu}; "
        f"{ratio} of the pre-estimate ({cal.comparison.predicted_source})",
        table(["", "optimistic / base / pessimistic"], [
            ["time to finish (h)", fmt_scenarios(cal.time_to_finish_hours, digits=2)],
            ["cost to finish", fmt_scenarios(cal.cost_to_finish_usd, "$", 2)],
            ["whole run wall (h)", fmt_scenarios(cal.time_hours, digits=2)],
            ["whole run cost", fmt_scenarios(cal.cost_usd, "$", 2)],
        ]),
        f"setup/debug tax {cal.tax.setup_debug_tax:.0%} ({cal.tax.setup_debug_hours:g} of {cal.tax.wall_hours:.2f} h)"
        + ("" if cal.tax.expensive_hardware_justified else ": expensive hardware NOT justified yet"),
    ]
    if cal.options:
        lines.append(table(["offer", "$/h", "tokens/s", "h to finish", "cost to finish", "sooner", "cheaper", "ok"], [
            [f"{o.gpu_option} ({o.offer_id})", f"{o.dph_total_usd:.3f}", f"{o.pred_tokens_per_s:,.0f}",
             f"{o.time_to_finish_hours.base:.2f}", _usd(o.cost_to_finish_usd.base), f"{o.time_gain_frac:.0%}",
             f"{o.cost_gain_frac:.0%}" if o.cost_gain_frac is not None else "n/a", "yes" if o.qualifies else "no"]
            for o in cal.options]))
    lines += [f"- {w}" for w in cal.warnings]
    return "\n".join(lines)


class IngestSummary(BaseModel):
    """Aggregates of one ingest, so an agent need not read every sample."""

    gpu_count: int | None = None
    gpu_util_avg_pct: float | None = None
    gpu_util_min_pct: float | None = None
    mem_used_peak_mib: float | None = None
    mem_total_mib: float | None = None
    power_avg_w: float | None = None
    train_records: int | None = None
    step_first: int | None = None
    step_last: int | None = None
    step_time_median_s: float | None = None
    tokens_per_s_median: float | None = None
    loss_first: float | None = None
    loss_last: float | None = None
    mfu_median_pct: float | None = None


def _vals(items: list[Any], name: str) -> list[float]:
    return [float(v) for v in (getattr(s, name) for s in items) if v is not None and v == v]


def summarize(result: IngestResult) -> IngestSummary:
    """Counts and medians of the samples (GPU or log, whichever the file held)."""
    gpu: list[GpuSample] = result.gpu_samples()
    if gpu:
        util, used, total, power = (_vals(gpu, k) for k in ("gpu_util_pct", "mem_used_mib", "mem_total_mib",
                                                           "power_w"))
        return IngestSummary(
            gpu_count=len({s.gpu_index for s in gpu}),
            gpu_util_avg_pct=round(statistics.fmean(util), 2) if util else None,
            gpu_util_min_pct=min(util) if util else None, mem_used_peak_mib=max(used) if used else None,
            mem_total_mib=max(total) if total else None,
            power_avg_w=round(statistics.fmean(power), 2) if power else None)
    if not result.log_samples() and result.process_samples():  # pmon: processes only
        return IngestSummary(gpu_count=len({p.gpu_index for p in result.process_samples()}))
    train: list[LogSample] = [s for s in result.log_samples() if s.kind == "train"]
    steps = [s.step for s in train if s.step is not None]
    times, tokens, losses, mfu = (_vals(train, k) for k in ("step_time_s", "tokens_per_s", "loss", "mfu_pct"))
    return IngestSummary(
        train_records=len(train), step_first=steps[0] if steps else None, step_last=steps[-1] if steps else None,
        step_time_median_s=statistics.median(times) if times else None,
        tokens_per_s_median=statistics.median(tokens) if tokens else None,
        loss_first=losses[0] if losses else None, loss_last=losses[-1] if losses else None,
        mfu_median_pct=statistics.median(mfu) if mfu else None)


def ingest_markdown(result: IngestResult, summary: IngestSummary) -> str:
    shown = {k: v for k, v in summary.model_dump().items() if v is not None}
    return (f"format **{result.format}**: {len(result.samples)} samples, {result.skipped_lines} skipped lines, "
            f"{result.duplicate_lines} duplicates\n" + "\n".join(f"- {k}: {v:g}" if isinstance(v, float)
                                                                else f"- {k}: {v}" for k, v in shown.items()))


def snapshot_markdown(snap: NvmlSnapshot) -> str:
    """A GPU reading as a table (a host's says where and from what), or why there is none."""
    where = f" on {snap.host} ({snap.source})" if snap.host else ""
    if not snap.available:
        return f"no GPU readings{where}: {snap.answer.message if snap.answer else 'NVML unavailable'}"
    return (f"GPUs{where}\n" if where else "") + table(["GPU", "name", "util %", "mem used/total MiB", "power W"], [
        [g.gpu_index, g.name, g.gpu_util_pct, f"{g.mem_used_mib or 0:.0f}/{g.mem_total_mib or 0:.0f}", g.power_w]
        for g in snap.gpus])
