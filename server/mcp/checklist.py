"""MCP tools, resources and prompts of the pre-run checklist and the launch gate.

Why thin: the engine (``gpu_preflight.checklist``) owns every rule, the SQLite state and the
refusal texts; this module only types the arguments so an agent sees the schema, turns a
:class:`PreflightError` into a ``ToolError`` (``is_error`` with the one line naming the field), and
pairs each compact structured answer with a few lines of markdown.

Tools: ``checklist_start``, ``checklist_record``, ``checklist_status``, ``checklist_report``,
``checklist_update_spec`` (a spec change is its own verb because it turns evidence stale) and
``gate_check``. ``gate_check`` is annotated as writing state: every check, open or closed, is a row
in the audit, and an override is a recorded decision.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field, WithJsonSchema

from gpu_preflight.checklist import (
    ChecklistStatus,
    ChecklistView,
    GateDecision,
    ItemState,
    checklist_report,
    checklist_status,
    policy_text,
    record_evidence,
    start_checklist,
    update_spec,
)
from gpu_preflight.checklist.views import GateOpen
from gpu_preflight.server._errors import resource_errors, tool_errors
from gpu_preflight.server.annotations import READ_ONLY, RECORDS_STATE
from gpu_preflight.server.cli.checklist import checklist_spec, decide, gate_markdown, status_markdown
from gpu_preflight.server.schemas import SPEC_SCHEMA, DetailArg, result
from gpu_preflight.server.summaries import checklist_summary, loose_model

SETS_SPEC = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
"""Replaces the checklist's spec: writes local state, and the same spec twice changes nothing."""

ChecklistIdArg = Annotated[str, Field(max_length=64, description="From checklist_start.")]
PolicyArg = Annotated[
    Literal["pre-estimate", "run-calibrated"],
    Field(description="pre-estimate: hard gate before a long run; run-calibrated: probe first, then decide."),
]
OptionalSpecArg = Annotated[
    dict[str, Any] | None,
    WithJsonSchema({"anyOf": [SPEC_SCHEMA, {"type": "null"}]}),
    Field(default=None, description="Run spec the evidence must match; omit to adopt the first estimate's."),
]
ItemArg = Annotated[str, Field(max_length=64, description="An item id from checklist_start, e.g. memory_fit.")]
# Typed Any but declared an object: the engine's refusal ("memory_fit: got 'fits'; allowed: a JSON object
# with fields gpu_ram_gb, ...") tells an agent more than the SDK's argument-validation dump.
EvidenceArg = Annotated[
    Any,
    WithJsonSchema({"type": "object", "additionalProperties": True}),
    Field(description="The item's required_fields (see checklist_start); units in the names."),
]
KindArg = Annotated[Literal["probe", "full"], Field(description="probe: capped calibration run; full: the long run.")]
OverrideArg = Annotated[
    str | None,
    Field(default=None, max_length=1000,
          description="Written reason to pass a closed gate (audited). Only if a person agreed."),
]
OfferArg = Annotated[
    str | None, Field(default=None, max_length=200, description="The offer the run will use (checked after a switch).")
]


ChecklistStart = loose_model(ChecklistView, "ChecklistStart", "checklist_start's answer: ChecklistView, whole or "
                             "summarised (see server/summaries.py).")


class RecordAnswer(BaseModel):
    """The item's state right after the record, and what that did to the gates."""

    item: ItemState
    gate: GateOpen
    missing: list[str]
    next_step: str


class ReportAnswer(BaseModel):
    checklist_id: str
    markdown: str
    detail: Literal["summary", "full"] = "full"
    more: str | None = None


def _start_markdown(view: ChecklistView) -> str:
    lines = [f"Started {view.id} ({view.policy}) for {view.run_name}. Items:"]
    lines += [f"- {i.id}: {i.title}; from {', '.join(i.supplied_by)}" for i in view.items]
    gates = "; ".join(f"{kind} needs {', '.join(g.requires)}" for kind, g in view.gates.items())
    return "\n".join([*lines, f"Gates: {gates}.", f"Next step: {view.next_step}"])


def register(mcp: MCPServer) -> None:
    @mcp.tool(annotations=RECORDS_STATE)
    def checklist_start(
        run_name: Annotated[str, Field(max_length=200, description="Run name, shown in the report.")],
        policy: PolicyArg,
        spec: OptionalSpecArg = None,
        detail: DetailArg = "summary",
    ) -> Annotated[CallToolResult, ChecklistStart]:
        """Start a pre-run checklist: its id (pass as checklist_id later), each item's fields and tools."""
        with tool_errors():
            view = start_checklist(run_name, policy, checklist_spec(spec))
        return result(checklist_summary(view, detail), _start_markdown(view))

    @mcp.tool(annotations=RECORDS_STATE)
    def checklist_record(
        checklist_id: ChecklistIdArg, item: ItemArg, evidence: EvidenceArg
    ) -> Annotated[CallToolResult, RecordAnswer]:
        """Record one item's evidence yourself; validated for types, units, consistency. Returns state, gates."""
        with tool_errors():
            state = record_evidence(checklist_id, item, evidence, source="checklist_record")
            status = checklist_status(checklist_id)
        answer = RecordAnswer(item=state, gate=status.gate, missing=status.missing, next_step=status.next_step)
        return result(answer, f"{state.id}: {state.state} ({state.reason})\nGate: probe "
                              f"{'open' if status.gate.probe else 'closed'}, full "
                              f"{'open' if status.gate.full else 'closed'}.\nNext step: {status.next_step}")

    # Named checklist_status / checklist_report on the wire; the Python names avoid shadowing the engine.
    @mcp.tool(name="checklist_status", annotations=READ_ONLY)
    def checklist_status_tool(checklist_id: ChecklistIdArg) -> Annotated[CallToolResult, ChecklistStatus]:
        """Each item done/missing/stale/failed, the probe and full gates, what is missing, the next step."""
        with tool_errors():
            status = checklist_status(checklist_id)
        return result(status, status_markdown(status))

    @mcp.tool(name="checklist_report", annotations=READ_ONLY)
    def checklist_report_tool(
        checklist_id: ChecklistIdArg,
        detail: Annotated[Literal["summary", "full"], Field(
            description="full: every section, to publish.")] = "summary",
    ) -> Annotated[CallToolResult, ReportAnswer]:
        """The pre-estimate as markdown to publish before launch."""
        with tool_errors():
            markdown = checklist_report(checklist_id, sections=detail == "full")
        uri = f"preflight://checklists/{checklist_id}/report"
        more = None if detail == "full" else f'detail="full" (or resource {uri}): every section, the option table'
        return result(ReportAnswer(checklist_id=checklist_id, markdown=markdown, detail=detail, more=more), markdown)

    @mcp.tool(annotations=SETS_SPEC)
    def checklist_update_spec(
        checklist_id: ChecklistIdArg,
        spec: Annotated[dict[str, Any], WithJsonSchema(SPEC_SCHEMA), Field(description="The new run spec.")],
    ) -> Annotated[CallToolResult, ChecklistStatus]:
        """After a plan change (batch, GPUs...): set the new spec; evidence for the old one turns stale."""
        with tool_errors():
            normalized = checklist_spec(spec)
            assert normalized is not None
            status = update_spec(checklist_id, normalized)
        return result(status, status_markdown(status))

    @mcp.tool(annotations=RECORDS_STATE)
    def gate_check(
        checklist_id: ChecklistIdArg, kind: KindArg, override_reason: OverrideArg = None, offer: OfferArg = None
    ) -> Annotated[CallToolResult, GateDecision]:
        """May a probe or full run launch? allowed + missing items (+ probe caps). Every check is recorded."""
        with tool_errors():
            decision = decide(checklist_id, kind, override_reason, offer)
        return result(decision, gate_markdown(decision))

    @mcp.resource("preflight://policies/{name}", mime_type="application/toml")
    def policy_resource(name: str) -> str:
        """A checklist policy as data (pre-estimate or run-calibrated): items, evidence schemas, thresholds, gates."""
        with resource_errors():
            return policy_text(name)

    @mcp.resource("preflight://checklists/{checklist_id}/report", mime_type="text/markdown")
    def checklist_report_resource(checklist_id: str) -> str:
        """The markdown report of one checklist (same as the checklist_report tool)."""
        with resource_errors():
            return checklist_report(checklist_id)

    @mcp.prompt()
    def pre_run_checklist(run_name: str, spec_path: str | None = None) -> str:
        """Walk through the pre-estimate checklist and the launch gate before renting a GPU."""
        return pre_run_text(run_name, spec_path)

    @mcp.prompt()
    def probe_then_decide(run_name: str, spec_path: str | None = None) -> str:
        """Run-calibrated: minimal checks, a capped probe, live numbers, then keep/switch/kill before the full run."""
        return probe_text(run_name, spec_path)


def _spec_line(spec_path: str | None) -> str:
    if spec_path:
        return f"The run spec is in `{spec_path}`: read it and pass its contents as `spec` (a JSON object)."
    return "Write the run spec first (model, training, target, overheads; see estimate_run's `spec` schema)."


def pre_run_text(run_name: str, spec_path: str | None) -> str:
    """The ``pre_run_checklist`` prompt: the calls, in order, that open the pre-estimate gate honestly."""
    return f"""Before renting or launching anything for the run "{run_name}", complete the pre-estimate checklist.
{_spec_line(spec_path)}

1. `checklist_start(run_name="{run_name}", policy="pre-estimate", spec=<spec>)`. Keep the returned `id`.
   Each item lists its required_fields and the tools that can fill it.
2. `estimate_run(spec=<spec>, gpu=<e.g. "H100 SXM">, dph_total_usd=<price per hour>, checklist_id=<id>)`.
   It attaches memory_fit, throughput_prediction, setup_debug_tax, validation_gates, and time_cost_table
   when a price is given. To compare several GPUs or offers, use `plan_options` with the same checklist_id
   if it is listed. Use the same spec you started with, or the evidence is stale.
3. `checklist_status(checklist_id=<id>)`. For every item still missing, stale or failed:
   - missing: `checklist_record(checklist_id=<id>, item=<item>, evidence={{...}})` with the item's fields;
     units are in the field names. A refusal names the exact field and what is allowed: fix that, retry.
   - failed (e.g. memory verdict fail): change the plan (smaller micro_batch, LoRA, more VRAM), then
     `checklist_update_spec` and re-run estimate_run. Do not record a different verdict to get past it.
   - stale: the spec changed since the evidence was computed; re-run the estimator on the current spec.
4. `checklist_report(checklist_id=<id>)` and show the report to the user: memory fit, option table,
   time and cost (optimistic/base/pessimistic), setup/debug tax, first-10-minute abort thresholds.
5. Before any launch: `gate_check(checklist_id=<id>, kind="probe")` for a short calibration run (stay
   within the returned step and minute caps), `gate_check(checklist_id=<id>, kind="full")` for the long run.
   Launch only when `allowed` is true. Pass `override_reason` only when the user agreed; it is recorded.
"""


def probe_text(run_name: str, spec_path: str | None) -> str:
    """The ``probe_then_decide`` prompt: the run-calibrated policy, stage by stage."""
    return f"""Run "{run_name}" under the run-calibrated policy: probe first, then decide with live numbers.
{_spec_line(spec_path)}

1. `checklist_start(run_name="{run_name}", policy="run-calibrated", spec=<spec>)`. Keep the returned `id`.
2. Stage A: check that VRAM likely fits, CPU RAM is not insufficient, the disk has room and the host's
   reliability/network is not bad (estimate_memory helps with the first three), then
   `checklist_record(checklist_id=<id>, item="stage_a_checks", evidence={{"vram_fits": true, "cpu_ram_ok": true,
   "disk_ok": true, "reliability_network_ok": true}})`. Any false check fails the item: fix the plan first.
3. `gate_check(checklist_id=<id>, kind="probe")`; launch the probe only if `allowed`, and cap it at the
   returned probe_max_steps or probe_max_minutes.
4. Stage B, from the probe: record `probe_measurements` (median step time, eval runtime once, GPU util,
   memory util, VRAM used, transfer speed, setup/debug time so far, steps measured, probe minutes).
5. Stage C: record `live_estimate` from the measured steps/s: time and cost optimistic (x1.2 rate) /
   base / pessimistic (x0.6 rate) for the target steps, cost = hours x dph_total_usd.
6. Stage D: record `setup_debug_tax` (setup/debug hours over wall hours; expensive hardware is justified
   only at a tax <= 25%).
7. Decide within 10-15 minutes of the probe start and record `decision`: keep, switch (with
   switch_to_offer: the full run may then use that offer only) or kill (the full gate stays closed).
8. `checklist_status(checklist_id=<id>)`, then `gate_check(checklist_id=<id>, kind="full", offer=<offer>)`
   before the full run. Launch only when `allowed` is true.
"""
