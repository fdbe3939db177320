"""One call that says how a run is doing: heartbeat, current window, triggers, ETA, cost, decision.

Why recompute from the files on every call instead of keeping tail offsets in the database: the
training log and the nvidia-smi capture are the record; reading them whole (through
:class:`LogTail`, which parses exactly what the live tail parses) keeps the check stateless, so two
processes (the MCP server and ``preflight watch``) can never disagree about where they are. Logs of
a run are megabytes, which parse in well under a second.

Step times: the log's own, else its timestamps, else its write times (each check records its look at the
file, :mod:`.writetimes`), else the closing summary; ``step_time_source`` says which, and
``timing_missing`` what is missing and what to change when none gave a number.

The heartbeat comes from the dispatcher (:mod:`gpu_preflight.tools.dispatch`) when it is installed;
without it ``heartbeat`` is null and a note says so, and the check still runs from the log path.

Decision (``keep | kill | done | wait``): the rules are in :mod:`.run_decision`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gpu_preflight.tools.common.errors import PreflightError, from_validation_error
from gpu_preflight.tools.hosts.remotefile import RemoteFileUnreachable

from .assess import Assessment, assess
from .bottleneck import Bottleneck
from .models import GpuSample, LogSample
from .nvml import NvmlSnapshot
from .probecap import ProbeCap, probe_cap
from .remotelog import look_key, read_log_look
from .run_decision import END_ADVICE as END_ADVICE  # re-exported
from .run_decision import RunDecision, decide_run
from .runprogress import make_prediction, not_moving, summary_step_time, wall_elapsed_s
from .tail import SourceSummary
from .tail import read_source as read_source  # re-exported: callers import it from here
from .timeline import Timeline, build_timeline
from .triggers import TriggerConfig, TriggerName, TriggerStatus
from .windows import DEFAULT_WINDOW_S, EtaTrend, Window
from .writetimes import LogTiming, logging_steps_advice, silent_log, time_log

DEFAULT_DMON_INTERVAL_S = 10.0
MIN_WINDOW_S = 1.0  # shorter windows would number in the millions over a day-long log


class RunInputs(BaseModel):
    """Where a run's evidence is and what it was promised; :func:`run_check` fills it from the run record."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    log_path: str | None = Field(default=None, max_length=4096)
    nvsmi_path: str | None = Field(default=None, max_length=4096)
    log_format: str | None = Field(default=None, max_length=64)
    log_regex: str | None = Field(default=None, max_length=2000)
    logging_steps: int | None = Field(default=None, ge=1, le=10**9, description="An HF log's, to place its dicts live.")
    predicted_tokens_per_s: float | None = Field(default=None, gt=0, le=1e12)
    predicted_step_time_s: float | None = Field(default=None, ge=1e-6, le=1e6)
    num_gpus: int | None = Field(default=None, ge=1, le=4096)
    dph_total_usd: float | None = Field(default=None, gt=0, lt=10_000)
    total_steps: int | None = Field(default=None, ge=1, le=10**12)
    window_s: float = Field(default=DEFAULT_WINDOW_S, ge=MIN_WINDOW_S, le=86_400)
    gpu_interval_s: float | None = Field(default=None, ge=0.01, le=86_400)
    early_checkpoint_s: float = Field(default=600.0, gt=0, le=10**7)
    started_at_epoch_s: float | None = Field(default=None, ge=0, le=1e11)
    cap_steps: int | None = Field(default=None, ge=1, le=10**12)
    cap_seconds: float | None = Field(default=None, gt=0, le=10**7)
    log_from_record: bool = Field(default=False, description="log_path is the run record's: it may not exist yet.")
    log_host: str | None = Field(default=None, max_length=64, description="The host log_path is on (None: here).")
    tokens_per_step: int | None = Field(default=None, ge=1, le=10**12,
                                        description="From the run's spec when the log prints no tokens.")

    @field_validator("log_path", "nvsmi_path")
    @classmethod
    def _plain_path(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("a file path without NUL bytes")
        return value


def make_inputs(fields: dict[str, Any]) -> RunInputs:
    """:class:`RunInputs` from keyword fields, or one clear error naming the bad one."""
    try:
        return RunInputs(**fields)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


class TriggerBrief(BaseModel):
    name: TriggerName
    status: TriggerStatus
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict, description="The numbers, for a fired trigger only.")


class WindowBrief(BaseModel):
    """The playbook's per-window record (pre-estimation.md section 5), from the full :class:`Window`."""

    index: int
    start_s: float
    end_s: float
    complete: bool
    active: bool
    gpu_count: int
    gpu_util_avg_pct: float | None = None
    gpu_util_low_gpu_avg_pct: float | None = None
    mem_util_avg_pct: float | None = None
    mem_util_peak_pct: float | None = None
    mem_used_peak_mib: float | None = None
    mem_used_peak_pct: float | None = None
    power_avg_w: float | None = None
    tokens_per_s_median: float | None = None
    step_time_median_s: float | None = None
    step_time_source: str | None = None
    mfu_median_pct: float | None = None
    step_last: int | None = None
    loss_last: float | None = None
    eta_s: float | None = None

    @classmethod
    def of(cls, window: Window) -> WindowBrief:
        return cls(**{k: getattr(window, k) for k in cls.model_fields})


class RunCheck(BaseModel):
    """Everything an agent needs to decide about a running job, in one compact answer."""

    run_id: str | None = None
    kind: str | None = None
    heartbeat: dict[str, Any] | None = None
    notes: list[str] = Field(default_factory=list)
    log: SourceSummary | None = None
    gpu: SourceSummary | None = None
    window: WindowBrief | None = Field(default=None, description="The latest window with data.")
    windows_count: int = 0
    window_s: float = DEFAULT_WINDOW_S
    fired: list[TriggerName] = Field(default_factory=list)
    triggers: list[TriggerBrief] = Field(default_factory=list)
    bottleneck: Bottleneck | None = None
    action: list[str] = Field(default_factory=list)
    predicted_tokens_per_s: float | None = None
    measured_tokens_per_s: float | None = None
    throughput_ratio: float | None = None
    step_time_source: str | None = Field(default=None, description=(
        "Where the step time came from: log (printed per step), log_timestamps, write_times (when the log's lines "
        "were written), summary (the closing summary)."))
    timing_missing: str | None = Field(default=None, description="No step time: what is missing and what to do.")
    step_last: int | None = None
    total_steps: int | None = None
    eta_s: float | None = None
    eta_trend: EtaTrend = "unknown"
    elapsed_hours: float | None = None
    dph_total_usd: float | None = None
    cost_so_far_usd: float | None = None
    cost_to_finish_usd: float | None = None
    cost_total_usd: float | None = None
    gpu_now: NvmlSnapshot | None = None
    probe_cap: ProbeCap | None = Field(default=None, description="A probe's step/time cap and whether it is reached.")
    decision: RunDecision


def _timeline(gpu: Sequence[GpuSample], logs: Sequence[LogSample], interval: float | None,
              notes: list[str]) -> Timeline:
    untimed = any(s.timestamp is None for s in gpu)
    if gpu and untimed and interval is None:
        interval = DEFAULT_DMON_INTERVAL_S
        notes.append(f"GPU capture has no timestamps: readings taken {interval:g} s apart (dmon -d 10)")
    return build_timeline(gpu, logs, gpu_interval_s=interval)


def check_run(inputs: RunInputs, *, gpu_samples: Sequence[GpuSample] = (), heartbeat: dict[str, Any] | None = None,
              gpu_now: NvmlSnapshot | None = None, notes: Sequence[str] = (), now_epoch_s: float | None = None,
              run_id: str | None = None, kind: str | None = None) -> RunCheck:
    """Read the run's files, fold windows, evaluate the triggers and decide (see the module doc)."""
    out_notes = list(notes)
    logs: list[LogSample] = []
    gpu: list[GpuSample] = list(gpu_samples)
    log_summary = gpu_summary = look = None
    if inputs.log_path:
        try:
            found, log_summary, look = read_log_look(inputs.log_path, inputs.log_host, fmt=inputs.log_format,
                                                     regex=inputs.log_regex, must_exist=not inputs.log_from_record,
                                                     logging_steps=inputs.logging_steps, notes=out_notes)
        except RemoteFileUnreachable as exc:
            found = []
            out_notes.append(f"the log {inputs.log_path} on {exc.host} was not read: {exc.status}: {exc.reason}")
        logs = [s for s in found if isinstance(s, LogSample)]
        if found and not logs:
            out_notes.append(f"{inputs.log_path} holds GPU readings, not a training log")
            gpu.extend(s for s in found if isinstance(s, GpuSample))
        if not found and log_summary is not None:
            out_notes.append(f"no training records in {inputs.log_path} yet")
    else:
        out_notes.append("no log path: the run record names none (pass log_path)")
    if inputs.nvsmi_path:
        found, gpu_summary = read_source(inputs.nvsmi_path, field="nvsmi_path", must_exist=True)
        gpu.extend(s for s in found if isinstance(s, GpuSample))
        if found and not isinstance(found[0], GpuSample):
            out_notes.append(f"{inputs.nvsmi_path} holds no per-GPU readings ({gpu_summary.format}): use --query-gpu "
                             "CSV, dmon or the nvidia-smi table")
    timing = time_log(logs, path=look_key(inputs.log_path, inputs.log_host) if inputs.log_path else None, look=look)
    logs = timing.samples
    prediction = make_prediction(inputs, out_notes)
    wall = wall_elapsed_s(inputs, heartbeat, now_epoch_s)
    silent = silent_log(len(logs), bool(heartbeat and heartbeat.get("state") == "running"), wall,
                        log_summary.size_bytes if log_summary else None)
    if silent:
        out_notes.append(silent)
    config = TriggerConfig(early_checkpoint_s=inputs.early_checkpoint_s, gpu_count=inputs.num_gpus,
                           wall_elapsed_s=wall)
    timeline = _timeline(gpu, logs, inputs.gpu_interval_s, out_notes)
    result = assess(timeline, prediction=prediction, config=config, window_s=inputs.window_s,
                    total_steps=inputs.total_steps)
    eta_s = _eta(result, timeline, inputs.total_steps, out_notes) if logs else None
    stopped = not_moving(heartbeat, result)
    if stopped is not None and eta_s is not None:
        out_notes.append(f"no ETA: {stopped}")
        eta_s = None
    return _answer(inputs, result, logs, heartbeat, gpu_now, out_notes, now_epoch_s, run_id, kind,
                   log_summary, gpu_summary, eta_s, timing)


def _eta(a: Assessment, timeline: Timeline, total_steps: int | None, notes: list[str]) -> float | None:
    """The windows' ETA (remaining steps x median step time); else from the log's step rate over time."""
    if a.eta_s is not None:
        return a.eta_s
    totals = [p.sample.total_steps for p in timeline.logs if p.sample.total_steps]
    total = total_steps or (totals[-1] if totals else None)
    if total is None:
        notes.append("no ETA: the log prints no total step count (pass total_steps)")
        return None
    timed = [(p.t_s, p.sample.step) for p in timeline.logs if p.sample.kind == "train" and p.sample.step is not None]
    recent = timed[-20:]
    if len(recent) < 2 or recent[-1][0] <= recent[0][0] or (recent[-1][1] or 0) <= (recent[0][1] or 0):
        notes.append("no ETA: the log gives neither step times nor a step rate yet")
        return None
    rate = ((recent[-1][1] or 0) - (recent[0][1] or 0)) / (recent[-1][0] - recent[0][0])
    notes.append(f"ETA from the log's step rate ({rate:.3g} steps/s over its last {len(recent)} records)")
    return round(max(total - (recent[-1][1] or 0), 0) / rate, 3)


def _answer(inputs: RunInputs, a: Assessment, logs: list[LogSample], hb: dict[str, Any] | None,
            gpu_now: NvmlSnapshot | None, notes: list[str], now_epoch_s: float | None, run_id: str | None,
            kind: str | None, log_summary: SourceSummary | None, gpu_summary: SourceSummary | None,
            eta_s: float | None, timing: LogTiming) -> RunCheck:
    with_data = [w for w in a.series.windows if w.gpu_sample_count or w.log_sample_count]
    current = with_data[-1] if with_data else None
    measured = _measured_tokens(with_data, inputs.num_gpus)
    predicted = inputs.predicted_tokens_per_s
    timed = [w for w in with_data if w.step_time_median_s]
    step_times = [w.step_time_median_s for w in timed if w.step_time_median_s]
    source = timed[-1].step_time_source if timed else None
    if source == "write_times":
        notes.append(f"step times from the log's write times ({timing.filled} records timed by the file's "
                     "last-write time between looks: an average over each logging interval)")
    summary = summary_step_time(logs)
    if not step_times and summary is not None:
        step_times, source = [summary[0]], "summary"
        notes.append(f"step time from the closing summary: {summary[1]} steps in {summary[0] * summary[1]:g} s")
    missing = None if step_times else timing.missing
    if missing and inputs.logging_steps is None and log_summary is not None and log_summary.format == "hf_trainer":
        missing += f"; {logging_steps_advice()}"
    if missing:
        notes.append(f"no step time: {missing}")
    if measured is None and inputs.tokens_per_step and step_times:
        measured = inputs.tokens_per_step / step_times[-1]
        notes.append(f"tokens/s = {inputs.tokens_per_step:,} tokens per step (the spec) / {step_times[-1]:.4g} s")
    ratio = round(measured / predicted, 4) if measured and predicted else None
    if ratio is None and inputs.predicted_step_time_s and step_times:
        ratio = round(inputs.predicted_step_time_s / step_times[-1], 4)  # a rate ratio, like tokens/s
    steps = [s.step for s in logs if s.kind == "train" and s.step is not None]
    totals = [inputs.total_steps] if inputs.total_steps else [w.total_steps for w in a.series.windows if w.total_steps]
    elapsed_s = wall_elapsed_s(inputs, hb, now_epoch_s)
    if elapsed_s is None and a.series.data_end_s > 0:
        elapsed_s = a.series.data_end_s
        notes.append("elapsed time from the span of the recorded data (no start time known)")
    dph = inputs.dph_total_usd
    so_far = round(elapsed_s / 3600 * dph, 2) if elapsed_s is not None and dph else None
    to_finish = round(eta_s / 3600 * dph, 2) if eta_s is not None and dph else None
    if dph is None:
        notes.append("no price: costs are null (pass dph_total_usd)")
    cap = probe_cap(inputs.cap_steps, inputs.cap_seconds, steps[-1] if steps else None, elapsed_s)
    briefs = [TriggerBrief(name=r.name, status=r.status, message=r.message,
                           evidence=r.evidence if r.status == "fired" else {}) for r in a.triggers]
    return RunCheck(
        run_id=run_id, kind=kind, heartbeat=hb, notes=notes, log=log_summary, gpu=gpu_summary,
        window=WindowBrief.of(current) if current is not None else None,
        windows_count=len(a.series.windows), window_s=a.series.window_s, fired=a.fired, triggers=briefs,
        bottleneck=a.bottleneck, action=a.action, predicted_tokens_per_s=predicted,
        measured_tokens_per_s=round(measured, 3) if measured is not None else None,
        throughput_ratio=ratio, step_time_source=source, timing_missing=missing,
        step_last=steps[-1] if steps else None,
        total_steps=totals[-1] if totals else None, eta_s=eta_s, eta_trend=a.eta_trend,
        elapsed_hours=round(elapsed_s / 3600, 4) if elapsed_s is not None else None, dph_total_usd=dph,
        cost_so_far_usd=so_far, cost_to_finish_usd=to_finish,
        cost_total_usd=round(so_far + to_finish, 2) if so_far is not None and to_finish is not None else None,
        gpu_now=gpu_now, probe_cap=cap, decision=decide_run(hb, a, logs, gpu_now, cap),
    )


def _measured_tokens(windows: list[Window], num_gpus: int | None) -> float | None:
    """The latest window's median tokens/s for the whole job (a per-device figure times the GPUs)."""
    for w in reversed(windows):
        if w.tokens_per_s_median is not None:
            gpus = num_gpus or w.gpu_count or 1
            return round(w.tokens_per_s_median * (gpus if w.tokens_per_s_scope == "device" else 1), 3)
    return None


def dispatch_module() -> ModuleType | None:
    """The dispatcher, when this install has it (it is a separate component)."""
    try:
        return importlib.import_module("gpu_preflight.tools.dispatch")
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("gpu_preflight"):
            raise
        return None


def resolve_run(run_id: str, overrides: dict[str, Any], *, with_heartbeat: bool = True
                ) -> tuple[RunInputs, dict[str, Any] | None, list[str], str | None]:
    """The run record as :class:`RunInputs` (explicit ``overrides`` win), its heartbeat, notes and kind."""
    dispatch = dispatch_module()
    given = {k: v for k, v in overrides.items() if v is not None}
    if dispatch is None:
        note = "dispatcher not installed: no run record and no heartbeat; the check used the paths given"
        if not given.get("log_path"):
            raise PreflightError("run_id", run_id, "a recorded run; without the dispatcher pass log_path")
        return make_inputs(given), None, [note], None
    record = dispatch.get_run(run_id)
    from .runspec import checklist_spec, spec_tokens_per_step

    per_step = spec_tokens_per_step(checklist_spec(record.checklist_id)) if record.checklist_id else None
    base = {"log_path": record.log_path, "log_format": record.log_format, "log_regex": record.log_regex,
            "logging_steps": record.logging_steps,
            "predicted_tokens_per_s": record.predicted_tokens_per_s,
            "started_at_epoch_s": record.started_at_epoch_s, "cap_steps": record.cap_steps,
            "cap_seconds": record.cap_seconds, "tokens_per_step": per_step}
    notes: list[str] = []
    if record.host is not None and not given.get("log_path"):  # its log is a path on the box (issue 17)
        base["log_host"] = record.host
    from_record = base["log_path"] is not None and not given.get("log_path")
    inputs = make_inputs({k: v for k, v in base.items() if v is not None} | given | {"log_from_record": from_record})
    hb: dict[str, Any] | None = None
    if not with_heartbeat:
        return inputs, None, notes, str(record.kind)
    try:
        hb = dispatch.heartbeat(run_id=run_id).model_dump(exclude_none=True)
    except Exception as exc:  # a heartbeat failure (no tmux here) must not hide the log's evidence
        notes.append(f"heartbeat unavailable: {exc}")
    return inputs, hb, notes, str(record.kind)


def run_check(run_id: str, *, now_epoch_s: float | None = None, gpu_samples: Sequence[GpuSample] = (),
              gpu_now: NvmlSnapshot | None = None, live_gpu: bool = False, notes: Sequence[str] = (),
              **overrides: Any) -> RunCheck:
    """:func:`check_run` for a dispatched run; ``overrides`` are :class:`RunInputs` fields; ``live_gpu`` adds one
    reading of the GPUs the run is on (its box's, see :mod:`.livegpu`) to ``gpu_now`` and the samples."""
    inputs, hb, found, kind = resolve_run(run_id, overrides)
    notes = [*notes, *found]
    if live_gpu:
        from .livegpu import live_reading, run_host

        gpu_now, taken = live_reading(run_host(run_id), notes)
        gpu_samples = [*gpu_samples, *taken]
    return check_run(inputs, gpu_samples=gpu_samples, heartbeat=hb, gpu_now=gpu_now, notes=notes,
                     now_epoch_s=now_epoch_s, run_id=run_id, kind=kind)
