"""Calibrate straight from a run's files: the probe is measured from its log (and GPU capture).

Why: an agent that launched a probe through the dispatcher should not copy numbers out of a log by
hand. The log gives the median step time or tokens/s over the last <= 100 steps, the eval runtime
when printed, the GPU capture gives utilization and the VRAM peak, and the same windows feed the
triggers, so a sustained trigger turns the decision into ``kill``. What no log holds (the GPU's
catalogue name when the capture does not print it, the price, the setup time spent) comes from the
caller; anything given in ``probe`` overrides what was measured.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.spec import RunSpec, parse_spec
from gpu_preflight.tools.offers.records import OfferSet

from .assess import assess
from .calibrate import Calibration, Priority, Probe, calibrate, parse_probe
from .models import GpuSample, LogSample
from .remotelog import read_log_look
from .runcheck import RunInputs, dispatch_module, resolve_run
from .runprogress import summary_step_time
from .runspec import checklist_gpu
from .tail import read_source
from .timeline import build_timeline
from .triggers import Prediction, TriggerConfig

DEFAULT_GPU_INTERVAL_S = 10.0
GB_PER_MIB = 1048576 / 1e9
PROBE_MAX_STEPS = 100


def measure_probe(logs: Sequence[LogSample], gpu: Sequence[GpuSample], *, num_gpus: int | None = None,
                  data_end_s: float | None = None) -> dict[str, Any]:
    """Stage B from recorded samples: median step time and tokens/s over the last <= 100 steps.

    The first training record is dropped as warm-up (nanoGPT's iteration 0 and torchtitan's step 1
    include compilation). Returns :class:`~.calibrate.Probe` fields; the caller adds the GPU name,
    the price and the setup time, which no log holds.
    """
    train = [s for s in logs if s.kind == "train"]
    if len(train) > 1:
        train = train[1:]
    if not train:
        raise PreflightError("log", "no training records", "a log with step times or tokens/s")
    stepped = [s for s in train if s.step is not None]
    if stepped:
        last = stepped[-1].step or 0
        chosen = [s for s in stepped if (s.step or 0) > last - PROBE_MAX_STEPS]
        first = chosen[0].step or 0
        gap = (last - first) / (len(chosen) - 1) if len(chosen) > 1 else 1.0
        measured = max(1, min(PROBE_MAX_STEPS, round(last - first + gap)))
    else:
        chosen = train[-PROBE_MAX_STEPS:]
        measured = len(chosen)
    out: dict[str, Any] = {"steps_measured": measured}
    step_times = [s.step_time_s for s in chosen if s.step_time_s]
    per_device = num_gpus or 1
    tokens = [s.tokens_per_s * (per_device if s.tokens_per_s_scope == "device" else 1)
              for s in chosen if s.tokens_per_s]
    if step_times:
        out["median_step_time_s"] = statistics.median(step_times)
    if tokens:
        out["tokens_per_s"] = statistics.median(tokens)
    if not (step_times or tokens):
        summary = summary_step_time(logs)
        if summary is None:
            raise PreflightError("log", "no step time or tokens/s",
                                 "a log that prints step time or throughput, or a closing summary (train_runtime)")
        out["median_step_time_s"], out["steps_measured"] = summary[0], summary[1]
        out["_from_summary"] = True
    evals = [s.eval_runtime_s for s in logs if s.eval_runtime_s]
    if evals:
        out["eval_runtime_s"] = round(statistics.median(evals), 3)
    utils = [s.gpu_util_pct for s in gpu if s.gpu_util_pct is not None]
    mems = [s.mem_util_pct for s in gpu if s.mem_util_pct is not None]
    used = [s.mem_used_mib for s in gpu if s.mem_used_mib]
    totals = [s.mem_total_mib for s in gpu if s.mem_total_mib]
    if utils:
        out["gpu_util_pct"] = round(statistics.fmean(utils), 2)
    if mems:
        out["mem_util_pct"] = round(statistics.fmean(mems), 2)
    logged = [s.mem_used_gib for s in logs if s.mem_used_gib]
    if used:
        out["vram_used_gb"] = round(max(used) * GB_PER_MIB, 3)
    elif logged:
        out["vram_used_gb"] = round(max(logged) * 1024 * GB_PER_MIB, 3)  # the log's GiB (torchtitan)
    if totals:
        out["gpu_ram_gb"] = round(max(totals) * GB_PER_MIB, 3)
    if data_end_s:
        out["probe_minutes"] = round(data_end_s / 60, 3)
    return out


def measure_files(inputs: RunInputs, *, num_gpus: int | None = None) -> tuple[dict[str, Any], Any, list[str]]:
    """(probe fields measured from the files, the assessment of the same data, notes)."""
    notes: list[str] = []
    if not inputs.log_path:
        raise PreflightError("log_path", None, "the probe's training log (the run record names none)")
    found, _, _ = read_log_look(inputs.log_path, inputs.log_host, fmt=inputs.log_format, regex=inputs.log_regex,
                                must_exist=not inputs.log_from_record, logging_steps=inputs.logging_steps, notes=notes)
    logs = [s for s in found if isinstance(s, LogSample)]
    gpu: list[GpuSample] = []
    if inputs.nvsmi_path:
        more, _ = read_source(inputs.nvsmi_path, field="nvsmi_path", must_exist=True)
        gpu = [s for s in more if isinstance(s, GpuSample)]
    interval = inputs.gpu_interval_s
    if gpu and any(s.timestamp is None for s in gpu) and interval is None:
        interval = DEFAULT_GPU_INTERVAL_S
        notes.append(f"GPU capture has no timestamps: readings taken {interval:g} s apart")
    timeline = build_timeline(gpu, logs, gpu_interval_s=interval)
    measured = measure_probe(logs, gpu, num_gpus=num_gpus or inputs.num_gpus, data_end_s=timeline.end_s)
    names = [s.name for s in gpu if s.name]
    if names:
        measured["gpu"] = names[-1]
    prediction = None
    if inputs.predicted_tokens_per_s or inputs.predicted_step_time_s:
        prediction = Prediction(tokens_per_s=inputs.predicted_tokens_per_s, step_time_s=inputs.predicted_step_time_s)
        if inputs.predicted_tokens_per_s:
            measured["predicted_tokens_per_s"] = inputs.predicted_tokens_per_s
    config = TriggerConfig(early_checkpoint_s=inputs.early_checkpoint_s, gpu_count=inputs.num_gpus)
    assessment = assess(timeline, prediction=prediction, config=config, window_s=inputs.window_s,
                        total_steps=inputs.total_steps)
    steps = [s.step for s in logs if s.kind == "train" and s.step is not None]
    measured["_step_last"] = steps[-1] if steps else 0
    return measured, assessment, notes


def calibrate_files(
    spec: RunSpec | dict[str, Any],
    inputs: RunInputs,
    *,
    probe: dict[str, Any] | None = None,
    kind: str | None = None,
    offers: OfferSet | None = None,
    dph_total_usd: float | None = None,
    priority: Priority = "balanced",
    heartbeat: dict[str, Any] | None = None,
    checklist_id: str | None = None,
) -> tuple[Calibration, Probe, list[str]]:
    """Measure the probe from ``inputs``' files, merge ``probe`` over it, and :func:`calibrate`.

    The GPU's name: the probe's, else the capture's, else the one the checklist's estimate named.
    """
    run = parse_spec(spec)
    given = dict(probe or {})
    measured, assessment, notes = measure_files(inputs, num_gpus=given.get("num_gpus") or run.training.num_gpus)
    step_last = measured.pop("_step_last")
    if measured.pop("_from_summary", False):
        notes.append(f"the log prints no per-step times: the closing summary gives {measured['steps_measured']} "
                     f"steps at {measured['median_step_time_s']:.6g} s/step (train_runtime / steps)")
    if kind == "full" and "steps_done" not in given:
        measured["steps_done"] = step_last
        notes.append(f"a full run: steps_done = the log's last step ({step_last})")
    if dph_total_usd is not None:
        measured["dph_total_usd"] = dph_total_usd
    merged = measured | given
    if "gpu" not in merged and checklist_id:
        named = checklist_gpu(checklist_id)
        if named is not None:
            merged["gpu"] = named
            notes.append(f"GPU {named!r} from the checklist's estimate (the probe and capture name none)")
    if "gpu" not in merged:
        raise PreflightError("probe.gpu", None, "the catalogue name of the probe's GPU (the capture names none, "
                             "nor does the checklist's estimate)")
    p = parse_probe(merged)
    cal = calibrate(run, p, offers=offers, assessment=assessment, priority=priority, heartbeat=heartbeat)
    return cal, p, notes


def calibrate_recorded_run(
    run_id: str,
    spec: RunSpec | dict[str, Any],
    *,
    probe: dict[str, Any] | None = None,
    offers: OfferSet | None = None,
    dph_total_usd: float | None = None,
    priority: Priority = "balanced",
    **overrides: Any,
) -> tuple[Calibration, Probe, list[str]]:
    """:func:`calibrate_files` for a dispatched run (its record gives the log path and prediction)."""
    inputs, hb, notes, kind = resolve_run(run_id, overrides, with_heartbeat=True)
    if hb is None:
        notes.append("no heartbeat: calibrate could not ask whether the probe is alive")
    cal, p, more = calibrate_files(spec, inputs, probe=probe, kind=kind, offers=offers, dph_total_usd=dph_total_usd,
                                   priority=priority, heartbeat=hb, checklist_id=record_checklist(run_id))
    return cal, p, notes + more


def record_checklist(run_id: str) -> str | None:
    """The checklist id a dispatched run was launched under, when the dispatcher recorded one."""
    dispatch = dispatch_module()
    if dispatch is None:
        return None
    cid = dispatch.get_run(run_id).checklist_id
    return str(cid) if cid else None
