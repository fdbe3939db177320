"""From stored rows to item states, gate openness and the next step: one pure function.

Why pure: status, record, report and the gate all need the same answer, and the gate must decide
inside the transaction that records its decision. Keeping the rules here (no I/O) means the four
callers cannot disagree, and the rules read in one place:

- no evidence -> ``missing``; evidence for another spec hash -> ``stale`` (treated as missing);
- evidence whose outcome fails (a memory verdict of fail, a false Stage A check, kill) -> ``failed``;
- valid evidence that lacks a figure the playbook asks for (host RAM unknown) -> ``missing``, with how
  to close it;
- items recorded by tools for different GPU options or prices (a mix of two estimates) -> ``stale``,
  naming the items that disagree: the newest tool call wins, the older items must be re-supplied;
- otherwise ``done``. A gate is open when every item it requires is ``done``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gpu_preflight.checklist.evidence_base import Evidence
from gpu_preflight.checklist.policy import Policy, PolicyItem
from gpu_preflight.checklist.store import ChecklistRow, EvidenceRow
from gpu_preflight.checklist.views import ItemStateName
from gpu_preflight.tools.common.errors import PreflightError, from_validation_error
from gpu_preflight.tools.common.nextstep import calls_text


@dataclass(frozen=True)
class ItemEval:
    item: PolicyItem
    state: ItemStateName
    reason: str
    row: EvidenceRow | None
    evidence: Evidence | None


@dataclass(frozen=True)
class GateEval:
    kind: str
    open: bool
    missing: list[str]
    offer: str | None


@dataclass(frozen=True)
class Evaluation:
    items: list[ItemEval]
    probe: GateEval
    full: GateEval
    next_step: str

    def gate(self, kind: str) -> GateEval:
        return self.probe if kind == "probe" else self.full

    def by_id(self, item_id: str) -> ItemEval:
        for entry in self.items:
            if entry.item.id == item_id:
                return entry
        raise KeyError(item_id)


def short(digest: str) -> str:
    return digest[:12]


def tools_text(item: PolicyItem) -> str:
    """The calls that may supply ``item``, named in the caller's interface (MCP tools or CLI commands)."""
    return calls_text(item.spec.supplied_by)


def evaluate_item(policy: Policy, item: PolicyItem, row: EvidenceRow | None, current_hash: str) -> ItemEval:
    """The state of one item given its newest evidence row and the checklist's current spec."""
    if row is None:
        return ItemEval(item, "missing", f"no evidence yet; supply with {tools_text(item)}", None, None)
    try:
        evidence = item.schema.model_validate(row.evidence)
        evidence.check(item.thresholds, policy.probe_caps)
    except (ValidationError, PreflightError) as exc:
        err = from_validation_error(exc, prefix=item.id) if isinstance(exc, ValidationError) else exc
        return ItemEval(item, "failed", f"stored evidence no longer passes this policy: {err.one_line()}",
                        row, None)
    if row.spec_hash != current_hash:
        reason = (f"computed for spec {short(row.spec_hash)}, current spec is {short(current_hash)}; "
                  f"re-supply with {tools_text(item)}")
        return ItemEval(item, "stale", reason, row, evidence)
    failure = evidence.failure(item.thresholds)
    if failure is not None:
        return ItemEval(item, "failed", failure, row, evidence)
    incomplete = evidence.open_reason(item.thresholds)
    if incomplete is not None:
        return ItemEval(item, "missing", incomplete, row, evidence)
    return ItemEval(item, "done", evidence.summary(item.thresholds), row, evidence)


def evaluate(policy: Policy, checklist: ChecklistRow, latest: dict[str, EvidenceRow]) -> Evaluation:
    """Item states, both gates and one next step for a checklist."""
    items = _tax_rule(_unmix([evaluate_item(policy, item, latest.get(item.id), checklist.spec_hash)
                              for item in policy.items]))
    states = {entry.item.id: entry for entry in items}
    gates = {}
    for kind in ("probe", "full"):
        required = policy.requires(kind)
        missing = [item_id for item_id in required if states[item_id].state != "done"]
        evidences = [states[i].evidence for i in required]
        offers = [e.offer_restriction() for e in evidences if e is not None]
        offer = next((o for o in offers if o), None) if not missing else None
        gates[kind] = GateEval(kind, not missing, missing, offer)
    return Evaluation(items, gates["probe"], gates["full"], _next_step(items, gates["probe"], gates["full"]))


def _context_text(context: dict[str, Any]) -> str:
    parts = [str(context["gpu_option"])] if context.get("gpu_option") else []
    if context.get("dph_total_usd") is not None:
        parts.append(f"${float(context['dph_total_usd']):.4g}/h")
    return " at ".join(parts) or "no offer"


def _disagree(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two tool calls' contexts disagree when both name a GPU option (or a price) and they differ.

    GPU options compare case- and space-insensitively ("1x RTX 4090"); prices within 1% (an
    offer's price rounded differently by two tools is the same offer).
    """
    ga, gb = a.get("gpu_option"), b.get("gpu_option")
    if ga and gb and " ".join(str(ga).lower().split()) != " ".join(str(gb).lower().split()):
        return True
    pa, pb = a.get("dph_total_usd"), b.get("dph_total_usd")
    return pa is not None and pb is not None and not math.isclose(float(pa), float(pb), rel_tol=0.01)


def _unmix(items: list[ItemEval]) -> list[ItemEval]:
    """Items that must agree (same spec, GPU option and price) but came from different tool calls.

    Only rows a tool stamped with its context take part (a manual record carries none). The newest
    such row is the reference: the plan as the agent last computed it. Every ``done`` row whose
    context disagrees with it turns ``stale``, its reason naming both items and both offers.
    """
    stamped = [e for e in items if e.row is not None and e.row.context and e.state in ("done", "missing")]
    if len(stamped) < 2:
        return items
    ref = max(stamped, key=lambda e: e.row.id if e.row else 0)
    assert ref.row is not None and ref.row.context is not None
    ref_row, ref_ctx = ref.row, ref.row.context

    def mixed(entry: ItemEval) -> bool:
        row = entry.row
        return (row is not None and row.context is not None
                and (row.spec_hash != ref_row.spec_hash or _disagree(row.context, ref_ctx)))

    agreeing = ", ".join(e.item.id for e in stamped if not mixed(e))
    out = []
    for entry in items:
        if entry in stamped and mixed(entry):
            assert entry.row is not None and entry.row.context is not None
            reason = (f"mixed evidence: {entry.item.id} was computed for {_context_text(entry.row.context)}, "
                      f"{agreeing} (newer) for {_context_text(ref_ctx)}; re-supply {entry.item.id} "
                      f"with {tools_text(entry.item)} for the offer you will launch on")
            entry = ItemEval(entry.item, "stale", reason, entry.row, entry.evidence)
        out.append(entry)
    return out


def _tax_rule(items: list[ItemEval]) -> list[ItemEval]:
    """Pre-estimation §3: a tax over 25% means "not ready for expensive hardware".

    Where the policy says so (``closes_full_gate_when_over``), an unjustified tax fails the item (the
    full gate stays closed; a probe needs no tax; an override with a written reason is audited),
    unless the time/cost table shows the chosen price is already the cheapest fitting option: then
    there is no cheaper GPU to debug on, which is the playbook's own remedy.
    """
    by_id = {e.item.id: e for e in items}
    tax, table = by_id.get("setup_debug_tax"), by_id.get("time_cost_table")
    if tax is None or tax.state != "done" or tax.evidence is None:
        return items
    thresholds = tax.item.thresholds
    if not getattr(thresholds, "closes_full_gate_when_over", False):
        return items
    if getattr(tax.evidence, "expensive_hardware_justified", True):
        return items
    prices = []
    if table is not None and table.state == "done" and table.evidence is not None:
        chosen = float(getattr(table.evidence, "dph_total_usd", 0.0))
        prices = [float(o.dph_total_usd) for o in getattr(table.evidence, "options", [])]
        if prices and chosen <= min(prices) * 1.01:
            return items
    cheaper = f" (cheapest option in the table: ${min(prices):.3g}/h)" if prices else ""
    reason = (f"{tax.reason.split(', expensive')[0]} > {getattr(thresholds, 'max_tax_for_expensive', 0.25):.0%}: "
              f"not ready for expensive hardware; debug on the cheapest fitting GPU first{cheaper} (a probe is "
              "allowed), re-estimate with the setup hours you then expect, or override the full gate with a "
              "written reason")
    return [ItemEval(e.item, "failed", reason, e.row, e.evidence) if e is tax else e for e in items]


def _next_step(items: list[ItemEval], probe: GateEval, full: GateEval) -> str:
    """One sentence: fix a failure first, then open the probe gate, then the full gate."""
    by_id = {entry.item.id: entry for entry in items}
    needed = probe.missing + [i for i in full.missing if i not in probe.missing]
    failed = [by_id[i] for i in needed if by_id[i].state == "failed"]
    if failed:
        entry = failed[0]
        return (f"Fix {entry.item.id} ({entry.reason}): change the plan, update the spec and re-supply it, "
                "or override the gate with a written reason.")
    if needed:
        entry = by_id[needed[0]]
        if entry.row is not None and entry.state == "missing":  # recorded, but a figure is unknown
            return (f"{'Probe gate open; ' if probe.open else ''}Complete {entry.item.id} to open the "
                    f"{'probe' if not probe.open else 'full'} gate: {entry.reason}.")
        verb = "Re-supply" if entry.state == "stale" else "Supply"
        gate = "probe" if not probe.open else "full"
        prefix = "Probe gate open; " if probe.open else ""
        mixed = f" ({entry.reason})" if entry.reason.startswith("mixed evidence") else ""
        return (f"{prefix}{verb} {entry.item.id} ({entry.item.spec.title}) with {tools_text(entry.item)} "
                f"to open the {gate} gate.{mixed}")
    if full.offer:
        return f"All gates open: launch the full run on offer {full.offer} only (decision: switch)."
    return "All gates open: launch with gate check kind='full'."
