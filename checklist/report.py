"""The pre-estimate as markdown, for the agent to publish before it launches.

Why a renderer separate from status: status is the short JSON an agent reads after each call; the
report is the playbooks' "required output" a human reviews: memory fit numbers, the option table,
the tax, the validation gates and thresholds, the gates and every override with its reason.
Stale and failed evidence is shown with its state, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import closing
from typing import Any

from gpu_preflight.checklist.evaluate import Evaluation, ItemEval, evaluate, short
from gpu_preflight.checklist.evidence import (
    LiveEstimateEvidence,
    MemoryFitEvidence,
    OptionRow,
    Scenarios,
    SetupDebugTaxEvidence,
    TimeCostTableEvidence,
    ValidationGatesEvidence,
)
from gpu_preflight.checklist.evidence_pre import TaxThresholds
from gpu_preflight.checklist.policy import Policy, load_policy
from gpu_preflight.checklist.store import GateRow, gate_decisions, get_checklist, latest_evidence, open_db


def checklist_report(checklist_id: str, sections: bool = True) -> str:
    """Markdown: items, memory fit, throughput, option table, tax, validation gates, gates, audit.

    ``sections=False``: the item table (state and reason: each reason carries its figures), the gates and
    the audit only, about 2 KB where the whole report with its option table is 4-5 KB (MCP
    ``detail="summary"``)."""
    with closing(open_db()) as conn:
        checklist = get_checklist(conn, checklist_id)
        policy = load_policy(checklist.policy)
        result = evaluate(policy, checklist, latest_evidence(conn, checklist.id))
        decisions = gate_decisions(conn, checklist.id)
    lines = [
        f"# {policy.data.title}: {checklist.run_name}",
        "",
        f"Checklist `{checklist.id}`, policy `{policy.name}` ({policy.data.source}, sha256 "
        f"{short(checklist.policy_sha256)}), spec `{short(checklist.spec_hash)}`, started {checklist.created_at}.",
        "",
        "| item | state | source | recorded | reason |" if sections else "| item | state | reason |",
        "|---|---|---|---|---|" if sections else "|---|---|---|",
    ]
    for entry in result.items:
        row = entry.row
        source = f" {row.source if row else '-'} | {row.recorded_at if row else '-'} |" if sections else ""
        lines.append(f"| {entry.item.id} | {entry.state} |{source} {_cell(entry.reason)} |")
    for entry in result.items:
        if entry.evidence is not None and sections:
            lines += ["", *_section(entry)]
    lines += ["", *_gates(policy, result), "", *_audit(decisions)]
    return "\n".join(lines) + "\n"


def _section(entry: ItemEval) -> list[str]:
    ev = entry.evidence
    mark = "" if entry.state == "done" else f" ({entry.state.upper()}, see the item table)"
    head = [f"## {entry.item.spec.title}{mark}", ""]
    if isinstance(ev, MemoryFitEvidence):
        return head + _memory(ev)
    if isinstance(ev, TimeCostTableEvidence | LiveEstimateEvidence):
        body = _scenario_table(ev.time_hours, ev.cost_usd, ev.dph_total_usd)
        if isinstance(ev, LiveEstimateEvidence):
            body = [f"Live throughput {ev.steps_per_s:.4g} steps/s for {ev.target_steps} target steps.", "", *body]
        return head + body + (["", "### Option table", "", *_options(ev.options)] if ev.options else [])
    if isinstance(ev, SetupDebugTaxEvidence):
        limit = entry.item.thresholds
        assert isinstance(limit, TaxThresholds)
        return [*head, ev.summary(limit) + ".",
                f"Threshold: expensive hardware is justified at a tax <= {limit.max_tax_for_expensive:.0%}."]
    if isinstance(ev, ValidationGatesEvidence):
        return head + _validation(ev)
    assert ev is not None
    return [*head, ev.summary(entry.item.thresholds) + ".", "", *_key_values(ev.model_dump())]


def _memory(ev: MemoryFitEvidence) -> list[str]:
    return [
        "| | GPU | CPU |",
        "|---|---|---|",
        f"| available (GB) | {ev.gpu_ram_gb:.4g} | {_num(ev.cpu_ram_gb)} |",
        f"| refined peak prediction (GB) | {ev.gpu_peak_gb:.4g} | - |",
        f"| required, playbook x1.2 / x1.3 (GB) | {ev.gpu_required_gb:.4g} | {ev.cpu_required_gb:.4g} |",
        f"| verdict compared (GB) | {ev.gpu_verdict_basis_gb:.4g} ({ev.gpu_ratio():.1%} of GPU RAM) | "
        f"{ev.cpu_required_gb:.4g} |",
        f"| verdict | **{ev.gpu_verdict}** | **{ev.cpu_verdict}** |",
    ]


def _scenario_table(time_hours: Scenarios, cost_usd: Scenarios, dph_total_usd: float) -> list[str]:
    return [
        f"| scenario | wall hours | cost (USD at ${dph_total_usd:.4g}/h) |",
        "|---|---|---|",
        *(f"| {name} | {getattr(time_hours, name):.3g} | {getattr(cost_usd, name):.2f} |"
          for name in ("optimistic", "base", "pessimistic")),
    ]


def _options(rows: Iterable[OptionRow]) -> list[str]:
    lines = [
        "| GPU option | $/h | VRAM GB | CPU RAM GB | TFLOPS | HBM BW GB/s | pred tokens/s | pred step/s | "
        "time h (opt/base/pess) | cost $ (opt/base/pess) | setup/debug tax % | optimization effort | major risks "
        "| decision |",
        "|" + "---|" * 14,
    ]
    for r in rows:
        tax = f"{r.setup_debug_tax:.0%}" if r.setup_debug_tax is not None else "-"
        lines.append(
            f"| {_cell(r.gpu_option)} | {r.dph_total_usd:.3g} | {_num(r.gpu_ram_gb)} | {_num(r.cpu_ram_gb)} | "
            f"{_num(r.tflops)} | {_num(r.hbm_bw_gbps)} | {_num(r.pred_tokens_per_s)} | {_num(r.pred_steps_per_s)} | "
            f"{r.time_hours.text()} | {r.cost_usd.text('{:.2f}')} | {tax} | {r.optimization_effort or '-'} | "
            f"{_cell('; '.join(r.major_risks)) or '-'} | {r.decision or '-'} |")
    return lines


def _validation(ev: ValidationGatesEvidence) -> list[str]:
    early = []
    if ev.early_checkpoint_step is not None:
        early.append(f"step {ev.early_checkpoint_step}")
    if ev.early_checkpoint_minutes is not None:
        early.append(f"{ev.early_checkpoint_minutes:g} min")
    return [
        f"Every {ev.window_minutes:g} minutes, compare against {ev.expected_tokens_per_s:.4g} tokens/s. Abort when:",
        "",
        f"- throughput < {ev.min_throughput_ratio:.0%} of expected for {ev.consecutive_windows} consecutive windows",
        f"- GPU utilization < {ev.min_gpu_util_pct:g}% while the job is active",
        f"- memory used > {ev.max_mem_used_pct:g}% sustained (OOM risk)",
        f"- no meaningful metric movement by {' or '.join(early)}",
    ]


def _gates(policy: Policy, result: Evaluation) -> list[str]:
    caps = policy.probe_caps
    lines = ["## Gates", "", "| gate | open | requires | still needed | limits |", "|---|---|---|---|---|"]
    for kind in ("probe", "full"):
        gate = result.gate(kind)
        limits = (f"{caps.min_steps}-{caps.max_steps} steps or {caps.max_minutes:g} min" if kind == "probe"
                  else (f"offer {gate.offer} only" if gate.offer else "-"))
        lines.append(f"| {kind} | {'**open**' if gate.open else 'closed'} | {', '.join(policy.requires(kind))} | "
                     f"{', '.join(gate.missing) or '-'} | {limits} |")
    return [*lines, "", f"Next step: {result.next_step}"]


def _audit(rows: list[GateRow]) -> list[str]:
    if not rows:
        return ["## Gate decisions", "", "No gate decision recorded yet."]
    lines = ["## Gate decisions", "", "| # | at | gate | open | allowed | override reason | missing |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.id} | {r.decided_at} | {r.kind} | {'yes' if r.gate_open else 'no'} | "
              f"{'yes' if r.allowed else 'no'} | {_cell(r.override_reason or '-')} | {', '.join(r.missing) or '-'} |"
              for r in rows]
    return lines


def _key_values(data: dict[str, Any]) -> list[str]:
    rows = (f"| {k} | {_cell(str(v))} |" for k, v in data.items() if v is not None)
    return ["| field | value |", "|---|---|", *rows]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
