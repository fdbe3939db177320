"""The launch gate: the one function a dispatcher asks before starting a probe or a full run.

Why every decision is a row: "who launched this, on what evidence" must be answerable after the
fact, including refusals and overrides. The decision is evaluated and recorded in one immediate
transaction, so a concurrent record cannot slip between what the gate saw and what it wrote.

An override needs a written reason; it is recorded with the items that were missing. A closed gate
without one raises :class:`PreflightError` naming the missing items and the next step, after the
refusal itself is recorded.
"""

from __future__ import annotations

from contextlib import closing
from typing import Literal

from gpu_preflight.checklist.evaluate import evaluate, short
from gpu_preflight.checklist.policy import load_policy
from gpu_preflight.checklist.store import GateRow, gate_decisions, get_checklist, insert_gate_decision, latest_evidence
from gpu_preflight.checklist.store import open_db as _open_db
from gpu_preflight.checklist.views import GateDecision
from gpu_preflight.tools.common.db import transaction
from gpu_preflight.tools.common.errors import PreflightError, has_control_chars
from gpu_preflight.tools.common.nextstep import call

MIN_OVERRIDE_REASON_CHARS = 8
KINDS = ("probe", "full")


def check(checklist_id: str, kind: Literal["probe", "full"], override_reason: str | None = None, *,
          offer: str | None = None) -> GateDecision:
    """Decide whether a ``kind`` run may launch; record the decision; raise if it may not.

    ``offer`` is the offer the dispatcher is about to use: after a ``switch`` decision the full
    gate is open for the named offer only. Without ``offer`` the decision carries the restriction
    in ``GateDecision.offer`` for the dispatcher to honour.
    """
    if kind not in KINDS:
        raise PreflightError("kind", kind, "'probe' or 'full'")
    reason = _override_reason(override_reason)
    with closing(_open_db()) as conn, transaction(conn):
        checklist = get_checklist(conn, checklist_id)
        policy = load_policy(checklist.policy)
        result = evaluate(policy, checklist, latest_evidence(conn, checklist.id))
        gate = result.gate(kind)
        gate_open, missing, next_step = gate.open, list(gate.missing), result.next_step
        if gate_open and gate.offer and offer is not None and offer.strip() != gate.offer:
            gate_open, missing = False, ["decision"]
            next_step = f"The decision was switch to offer {gate.offer}: launch the full run there, not on {offer}."
        allowed = gate_open or reason is not None
        row = insert_gate_decision(conn, checklist.id, kind, gate_open, allowed, reason, missing,
                                   checklist.spec_hash, gate.offer)
    decision = _view(row, policy.probe_caps.model_dump() if kind == "probe" else {}, next_step)
    if not allowed:
        raise PreflightError(f"gate.{kind}", missing, f"all of {', '.join(policy.requires(kind))} done",
                             f"{next_step} Or {call('override')} (recorded in the audit)")
    return decision


def audit(checklist_id: str) -> list[GateDecision]:
    """Every gate decision of a checklist, oldest first (overrides have ``overridden`` true)."""
    with closing(_open_db()) as conn:
        checklist = get_checklist(conn, checklist_id)
        policy = load_policy(checklist.policy)
        rows = gate_decisions(conn, checklist.id)
    caps = policy.probe_caps.model_dump()
    return [_view(row, caps if row.kind == "probe" else {}, "") for row in rows]


def _override_reason(reason: object) -> str | None:
    if reason is None:
        return None
    if (not isinstance(reason, str) or len(reason.strip()) < MIN_OVERRIDE_REASON_CHARS
            or has_control_chars(reason, allow_newlines=True)):
        raise PreflightError("override_reason", reason,
                             f"a written reason of at least {MIN_OVERRIDE_REASON_CHARS} characters, "
                             "no control characters but newlines and tabs",
                             "say why launching without the missing items is acceptable; it is recorded")
    return reason.strip()


def _view(row: GateRow, caps: dict[str, float], next_step: str) -> GateDecision:
    return GateDecision(
        decision_id=row.id, checklist_id=row.checklist_id, kind="probe" if row.kind == "probe" else "full",
        open=row.gate_open, allowed=row.allowed, overridden=row.allowed and not row.gate_open,
        override_reason=row.override_reason, missing=row.missing, spec_hash=short(row.spec_hash), offer=row.offer,
        probe_min_steps=int(caps["min_steps"]) if caps else None,
        probe_max_steps=int(caps["max_steps"]) if caps else None,
        probe_max_minutes=caps.get("max_minutes"), decided_at=row.decided_at, next_step=next_step,
    )
