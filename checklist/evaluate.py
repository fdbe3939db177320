"""From stored rows to item states, gate openness and the next step: one pure function.

Why pure: status, record, report and the gate all need the same answer, and the gate must decide
inside the transaction that records its decision. Keeping the rules here (no I/O) means the four
callers cannot disagree, and the rules read in one place:

- no evidence -> ``missing``; evidence for another spec hash -> ``stale`` (treated as missing);
- evidence whose outcome fails (a memory verdict of fail, a false Stage A check, kill) -> ``failed``;
- otherwise ``done``. A gate is open when every item it requires is ``done``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from gpu_preflight.checklist.evidence_base import Evidence
from gpu_preflight.checklist.policy import Policy, PolicyItem
from gpu_preflight.checklist.store import ChecklistRow, EvidenceRow
from gpu_preflight.checklist.views import ItemStateName
from gpu_preflight.tools.common.errors import PreflightError, from_validation_error


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
    tools = item.spec.supplied_by
    return tools[0] if len(tools) == 1 else ", ".join(tools[:-1]) + " or " + tools[-1]


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
    return ItemEval(item, "done", evidence.summary(item.thresholds), row, evidence)


def evaluate(policy: Policy, checklist: ChecklistRow, latest: dict[str, EvidenceRow]) -> Evaluation:
    """Item states, both gates and one next step for a checklist."""
    items = [evaluate_item(policy, item, latest.get(item.id), checklist.spec_hash) for item in policy.items]
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
        verb = "Re-supply" if entry.state == "stale" else "Supply"
        gate = "probe" if not probe.open else "full"
        prefix = "Probe gate open; " if probe.open else ""
        return (f"{prefix}{verb} {entry.item.id} ({entry.item.spec.title}) with {tools_text(entry.item)} "
                f"to open the {gate} gate.")
    if full.offer:
        return f"All gates open: launch the full run on offer {full.offer} only (decision: switch)."
    return "All gates open: launch with gate check kind='full'."
