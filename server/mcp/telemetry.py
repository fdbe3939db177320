"""MCP tools of the telemetry loop: live GPU readings, recorded logs, one-call run checks, calibration.

Answers are compact on purpose (the JSON is what the agent reads): sample lists are capped and
summarised, a run check carries the latest window only, a calibration at most five offers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.types import CallToolResult
from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from gpu_preflight.server._errors import tool_errors
from gpu_preflight.server.annotations import READ_ONLY, RECORDS_STATE
from gpu_preflight.server.schemas import ChecklistArg, PriceArg, result
from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.telemetry.calibrate import Calibration
from gpu_preflight.tools.telemetry.models import IngestFormat
from gpu_preflight.tools.telemetry.nvml import NvmlSnapshot
from gpu_preflight.tools.telemetry.report import IngestSummary
from gpu_preflight.tools.telemetry.runcheck import RunCheck

MAX_SAMPLES_SHOWN = 20

PathArg = Annotated[str | None, Field(default=None, max_length=4096, description="A file here.")]
HostArg = Annotated[str | None, Field(default=None, max_length=64, description="A registered host.")]
RunIdArg = Annotated[str, Field(min_length=1, max_length=64, description="A recorded run id.")]
StepsArg = Annotated[int | None, Field(default=None, ge=1, description="Total steps if the log lacks them.")]
GpusArg = Annotated[int | None, Field(default=None, ge=1, description="GPUs of the job.")]
WindowArg = Annotated[float, Field(ge=1, le=86400, description="Window, s.")]


class IngestAnswer(BaseModel):
    format: IngestFormat
    sample_count: int
    skipped_lines: int
    duplicate_lines: int
    summary: IngestSummary
    samples: list[dict[str, Any]] = Field(description="First and last samples (fields as `preflight ingest --json`).")
    samples_omitted: int
    processes: list[dict[str, Any]] = Field(default_factory=list, description="A table's process list (last ones).")


class ChecklistAttach(BaseModel):
    checklist_id: str
    attached: list[str]
    skipped: dict[str, str]
    gate_full: bool
    next_step: str


class CalibrateAnswer(BaseModel):
    calibration: Calibration
    notes: list[str]
    checklist: ChecklistAttach | None = None


def _lean(value: Any, top: bool = False) -> Any:
    """JSON of ``value`` with nested nulls of optional fields left out; the top level keeps every key.

    Why: the answer stays short, and the shared output-schema compaction turns
    ``Literal[...] | None`` into an enum without null, so such a null would fail the client's
    validation while an absent optional key passes (``heartbeat: null`` at the top stays).
    """
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {name: _lean(getattr(value, name)) for name, field in fields.items()
                if top or getattr(value, name) is not None or field.is_required()}
    if isinstance(value, list | tuple):
        return [_lean(v) for v in value]
    if isinstance(value, dict):
        return {k: _lean(v) for k, v in value.items()}
    return to_jsonable_python(value)


def compact_result(model: BaseModel, markdown: str) -> CallToolResult:
    """:func:`result` with nested optional nulls left out (see :func:`_lean`)."""
    out = result(model, markdown)
    out.structured_content = _lean(model, top=True)
    return out


def _capped(samples: list[Any], cap: int) -> tuple[list[Any], int]:
    if len(samples) <= cap:
        return samples, 0
    half = cap // 2
    return samples[:half] + samples[-(cap - half):], len(samples) - cap


def checklist_spec(checklist_id: str) -> dict[str, Any]:
    """The spec a checklist holds (calibrate without a spec argument uses it)."""
    import json
    from contextlib import closing

    from gpu_preflight.checklist.store import get_checklist, open_db

    with closing(open_db()) as conn:
        row = get_checklist(conn, checklist_id)
    if not row.spec_json:
        raise PreflightError("spec", None, "a spec, or a checklist_id whose checklist holds one")
    data: dict[str, Any] = json.loads(row.spec_json)
    return data


def attach_calibration(checklist_id: str, spec: Any, cal: Calibration, probe: Any) -> ChecklistAttach:
    """Record every run-calibrated item this calibration answers in one batch; say why any was not.

    Why one batch: the items (live estimate, tax, decision) describe one probe. Recorded one by one, a
    process killed between them left half a calibration, which the gate could read with an older
    decision. Each item is validated first (a bad one is skipped with its reason, as before), then the
    rest go to :func:`~gpu_preflight.server.evidence_bridge.attach_items` once: one transaction.
    """
    from gpu_preflight.checklist import checklist_status, load_policy
    from gpu_preflight.checklist.evidence import parse_evidence
    from gpu_preflight.server.evidence_bridge import attach_items
    from gpu_preflight.tools.estimator.spec import parse_spec
    from gpu_preflight.tools.telemetry.calibrate_evidence import calibration_evidence

    run = parse_spec(spec)
    items, skipped = calibration_evidence(cal, probe)
    policy = load_policy(checklist_status(checklist_id).policy)
    known = {i.id: i for i in policy.items}
    batch: dict[str, dict[str, Any]] = {}
    for name, evidence in items.items():
        entry = known.get(name)
        if entry is None:
            skipped[name] = f"not an item of policy {policy.name!r}"
        elif "calibrate" not in entry.spec.supplied_by:
            who = ", ".join(entry.spec.supplied_by)
            skipped[name] = f"policy lets {who} supply it: record it with checklist_record"
        else:
            try:
                parse_evidence(name, entry.schema, evidence, entry.thresholds, policy.probe_caps)
                batch[name] = evidence
            except PreflightError as exc:
                skipped[name] = exc.one_line()
    status = attach_items(checklist_id, run, batch, "calibrate")
    return ChecklistAttach(checklist_id=checklist_id, attached=list(batch), skipped=skipped,
                           gate_full=status.gate.full, next_step=status.next_step)


def register(mcp: MCPServer) -> None:
    @mcp.resource("preflight://schema/probe", mime_type="application/json")
    def probe_schema() -> str:
        """JSON schema of calibrate's probe measurements: every field with its unit and bounds."""
        import json

        from gpu_preflight.tools.telemetry.probe_schema import probe_json_schema

        return json.dumps(probe_json_schema())

    @mcp.tool(name="gpu_snapshot", annotations=READ_ONLY)
    def gpu_snapshot_tool(host: HostArg = None) -> Annotated[CallToolResult, NvmlSnapshot]:
        """One reading of the GPUs: util, memory, power."""
        from gpu_preflight.tools.telemetry.nvml import gpu_snapshot
        from gpu_preflight.tools.telemetry.remote_nvsmi import remote_gpu_snapshot
        from gpu_preflight.tools.telemetry.report import snapshot_markdown

        with tool_errors():
            snap = remote_gpu_snapshot(host) if host is not None else gpu_snapshot()
        return compact_result(snap, snapshot_markdown(snap))

    @mcp.tool(annotations=READ_ONLY)
    def ingest_nvidia_smi(
        text: Annotated[str | None, Field(default=None, max_length=20_000_000, description="The log text.")] = None,
        path: PathArg = None,
        fmt: Annotated[str | None, Field(default=None, description="Force a format; default: detected.")] = None,
        regex: Annotated[str | None, Field(default=None, max_length=2000,
                                           description="Named groups: step, loss, ...")] = None,
        max_samples: Annotated[int, Field(ge=0, le=500, description="Samples to return.")] = MAX_SAMPLES_SHOWN,
        columns: Annotated[str | None, Field(default=None, max_length=4000,
                                             description="Fields of a noheader --query-gpu CSV.")] = None,
        host: HostArg = None,
    ) -> Annotated[CallToolResult, IngestAnswer]:
        """Parse an nvidia-smi capture (CSV, dmon, pmon, table) or training log: text or path."""
        from pathlib import Path

        from gpu_preflight.tools.telemetry.ingest import ingest
        from gpu_preflight.tools.telemetry.nvsmi_pmon import processes_markdown
        from gpu_preflight.tools.telemetry.report import ingest_markdown, summarize

        with tool_errors():
            if (text is None) == (path is None):
                raise PreflightError("text/path", "both" if text else "neither", "exactly one of text or path")
            try:  # a path is read through the one file reader: regular files under --allow-path only
                if host is not None:
                    from gpu_preflight.tools.telemetry.remote_nvsmi import ingest_remote

                    if path is None:
                        raise PreflightError("host", host, "a host with a path (text is read as given)")
                    got = ingest_remote(host, path, fmt=fmt, regex=regex, columns=columns)
                else:
                    got = ingest(Path(path) if path is not None else (text or ""), fmt=fmt, regex=regex,
                                 field="path", columns=columns)
            except PreflightError as exc:
                if exc.field != "fmt" or text is None:
                    raise
                # Given as text, it is never a file name: say how to name the format instead.
                unread = exc.hint.partition("; ")[2]  # the metric-like lines and a proposed regex, if any
                raise PreflightError("fmt", fmt, exc.allowed, "format not detected in text: pass fmt or a regex "
                                     "with named groups" + (f"; {unread}" if unread else "")) from None
        shown, omitted = _capped([_lean(x) for x in got.samples], max_samples)
        summary = summarize(got)
        procs = [_lean(p) for p in got.processes[max(len(got.processes) - max_samples, 0):]]
        answer = IngestAnswer(format=got.format, sample_count=len(got.samples), skipped_lines=got.skipped_lines,
                              duplicate_lines=got.duplicate_lines, summary=summary, samples=shown,
                              samples_omitted=omitted, processes=procs)
        return compact_result(answer, ingest_markdown(got, summary) + processes_markdown(got.process_samples()))

    @mcp.tool(name="run_check", annotations=READ_ONLY)
    def run_check_tool(
        run_id: RunIdArg,
        log_path: PathArg = None,
        nvsmi_path: PathArg = None,
        dph_total_usd: PriceArg = None,
        total_steps: StepsArg = None,
        predicted_tokens_per_s: Annotated[float | None, Field(default=None, gt=0)] = None,
        num_gpus: GpusArg = None,
        window_s: WindowArg = 600.0,
        live_gpu: Annotated[bool, Field(description="Add a reading of the run's GPUs (its box's).")] = False,
    ) -> Annotated[CallToolResult, RunCheck]:
        """A run's heartbeat, window, triggers, bottleneck, ETA, cost, keep/kill/done/wait."""
        from gpu_preflight.tools.telemetry.report import check_markdown
        from gpu_preflight.tools.telemetry.runcheck import run_check

        with tool_errors():
            c = run_check(run_id, live_gpu=live_gpu, log_path=log_path,
                          nvsmi_path=nvsmi_path, dph_total_usd=dph_total_usd, total_steps=total_steps,
                          predicted_tokens_per_s=predicted_tokens_per_s, num_gpus=num_gpus, window_s=window_s)
        return compact_result(c, check_markdown(c))

    @mcp.tool(name="run_plot", annotations=READ_ONLY)
    def run_plot_tool(run_id: RunIdArg, log_path: PathArg = None, nvsmi_path: PathArg = None,
                      num_gpus: GpusArg = None) -> CallToolResult:
        """PNG of a run (measured vs predicted throughput, GPU util) plus its numbers."""
        from mcp.server.mcpserver import Image
        from mcp.types import TextContent

        from gpu_preflight.tools.telemetry.plot_inputs import AGENT_SIZE_PX, plot_inputs, plot_summary, render

        with tool_errors():
            fields = {"log_path": log_path, "nvsmi_path": nvsmi_path, "num_gpus": num_gpus}
            inputs = plot_inputs(run_id, {k: v for k, v in fields.items() if v is not None})
            png = render(inputs, width=AGENT_SIZE_PX[0], height=AGENT_SIZE_PX[1])
        summary = plot_summary(inputs, png, run_id=run_id).model_dump_json(exclude_none=True)
        # No structuredContent, on purpose: Codex 0.171 forwards only the structured JSON of a result that
        # has it, dropping the image (Claude Code 2.1.332 forwards both); without it both agents hand the
        # model the image and this JSON text (tests/test_mcp_run_plot.py says how this was measured).
        return CallToolResult(content=[Image(data=png, format="png").to_image_content(),
                                       TextContent(type="text", text=summary)])

    @mcp.tool(name="calibrate", annotations=RECORDS_STATE)
    def calibrate_tool(
        run_id: Annotated[str | None, Field(default=None, max_length=64,
                                            description="Measure the probe from this run.")] = None,
        probe: Annotated[dict[str, Any] | None, Field(
            default=None, description="gpu, steps_measured, median_step_time_s|tokens_per_s, ... "
            "(preflight://schema/probe); overrides run_id's log.")] = None,
        spec: Annotated[dict[str, Any] | None, Field(default=None, description="Run spec; default: the "
                                                     "checklist's.")] = None,
        offers_file: PathArg = None,
        dph_total_usd: PriceArg = None,
        nvsmi_path: PathArg = None,
        priority: Annotated[Literal["balanced", "cost", "time"], Field(
            description="What a switch must improve by >= 20%.")] = "balanced",
        checklist_id: ChecklistArg = None,
    ) -> Annotated[CallToolResult, CalibrateAnswer]:
        """Stages B-D from a probe: re-estimate time/cost, tax, scale to offers; keep/switch/kill."""
        from gpu_preflight.tools.estimator.spec import parse_spec
        from gpu_preflight.tools.offers.planning import offers_for
        from gpu_preflight.tools.telemetry.calibrate import calibrate, parse_probe
        from gpu_preflight.tools.telemetry.calibrate_run import calibrate_recorded_run
        from gpu_preflight.tools.telemetry.report import calibration_markdown

        with tool_errors():
            if run_id is None and probe is None:
                raise PreflightError("run_id/probe", None, "a run_id, probe measurements, or both")
            run = parse_spec(spec if spec is not None else checklist_spec(checklist_id) if checklist_id else None)
            offers = offers_for(run, offers_file=offers_file)
            notes: list[str] = []
            if run_id is not None:
                cal, p, notes = calibrate_recorded_run(run_id, run, probe=probe, offers=offers,
                                                       dph_total_usd=dph_total_usd, priority=priority,
                                                       nvsmi_path=nvsmi_path)
            else:
                p = parse_probe(probe or {})
                cal = calibrate(run, p, offers=offers, dph_total_usd=dph_total_usd, priority=priority)
            attached = attach_calibration(checklist_id, run, cal, p) if checklist_id else None
        answer = CalibrateAnswer(calibration=cal, notes=notes, checklist=attached)
        md = calibration_markdown(cal)
        if attached is not None:
            md += f"\nchecklist: attached {', '.join(attached.attached) or 'nothing'}; {attached.next_step}"
        return compact_result(answer, md)
