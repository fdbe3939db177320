"""The checklist API: start, record evidence, change the spec, read the status.

Why every call opens the database itself: several server processes of one user share the file, so
no state may live in a process between calls. Each write is one immediate transaction (all the
items of one tool call together, :func:`record_batch`); reads of
the policy (immutable data) happen outside it so the write lock is held only for the insert.

Spec rules: evidence is stamped with the hash of the spec it was computed for (the ``spec``
argument, else the checklist's current spec). Evidence for a hash other than the checklist's
current one is ``stale``. A checklist started without a spec adopts the first spec a record
brings; after that only :func:`update_spec` changes it, so exploring a variant with an estimator
never silently invalidates the plan's evidence (the variant's evidence shows up as stale instead).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

from gpu_preflight.checklist.evaluate import evaluate, evaluate_item, short
from gpu_preflight.checklist.evidence import field_names, parse_evidence
from gpu_preflight.checklist.policy import MANUAL_TOOL, POLICY_NAMES, Policy, PolicyItem, PolicyName, load_policy
from gpu_preflight.checklist.spechash import canonical_spec_json, spec_hash
from gpu_preflight.checklist.store import (
    ChecklistRow,
    get_checklist,
    insert_checklist,
    insert_evidence,
    latest_evidence,
    new_checklist_id,
    open_db,
    set_spec,
)
from gpu_preflight.checklist.views import (
    ChecklistStatus,
    ChecklistView,
    GateBrief,
    GateOpen,
    ItemBrief,
    ItemState,
    ItemStatus,
)
from gpu_preflight.tools.common.db import transaction
from gpu_preflight.tools.common.errors import PreflightError, has_control_chars

MANUAL_SOURCES = frozenset({"agent", MANUAL_TOOL})
MAX_RUN_NAME_CHARS = 200


def start_checklist(run_name: str, policy: PolicyName, spec: dict[str, Any] | None = None) -> ChecklistView:
    """Create a checklist for ``run_name`` under ``policy``; returns its id and what each item needs."""
    if (not isinstance(run_name, str) or not run_name.strip() or len(run_name) > MAX_RUN_NAME_CHARS
            or has_control_chars(run_name)):
        raise PreflightError("run_name", run_name,
                             f"a non-empty name of at most {MAX_RUN_NAME_CHARS} characters, no control characters")
    if policy not in POLICY_NAMES:
        raise PreflightError("policy", policy, " or ".join(POLICY_NAMES))
    loaded = load_policy(policy)
    spec_json = canonical_spec_json(spec)
    digest = spec_hash(spec)
    checklist_id = new_checklist_id()
    with closing(open_db()) as conn, transaction(conn):
        insert_checklist(conn, checklist_id, run_name.strip(), policy, loaded.sha256, spec_json, digest)
    first = evaluate(loaded, _row_stub(checklist_id, run_name, loaded, digest), {})
    return ChecklistView(id=checklist_id, run_name=run_name.strip(), policy=policy, title=loaded.data.title,
                         spec_hash=short(digest), items=[_brief(loaded, i.id) for i in loaded.items],
                         gates=_gate_briefs(loaded), next_step=first.next_step)


def record_evidence(checklist_id: str, item: str, evidence: dict[str, Any], *, source: str = "agent",
                    spec: dict[str, Any] | None = None) -> ItemState:
    """Validate ``evidence`` for ``item`` and store it with the spec hash it was computed for.

    ``source`` names the tool that supplied it (``"agent"`` or ``"checklist_record"`` for a manual
    record); it must be one the policy allows for the item, which catches mis-wired tools.
    """
    if not isinstance(item, str):
        with closing(open_db()) as conn:
            policy = load_policy(get_checklist(conn, checklist_id).policy)
        raise PreflightError("item", item, ", ".join(i.id for i in policy.items))
    return record_batch(checklist_id, {item: evidence}, source=source, spec=spec)[0]


def record_batch(checklist_id: str, items: dict[str, dict[str, Any]], *, source: str,
                 spec: dict[str, Any] | None = None, context: dict[str, Any] | None = None) -> list[ItemState]:
    """Record every item one tool call answered, all or nothing: one immediate transaction.

    Why: an estimate's items belong together (the memory fit, the cost table and the tax of one
    GPU at one price). Recorded one transaction each, a process killed between them left a mix of
    two estimates that the gate took as complete. Every item is validated before the transaction
    opens, so one bad item stores none. ``context`` (the GPU option and price the call computed
    for) is stored on each row; :func:`~gpu_preflight.checklist.evaluate.evaluate` marks rows
    whose contexts disagree as stale.
    """
    with closing(open_db()) as conn:
        checklist = get_checklist(conn, checklist_id)
        policy = load_policy(checklist.policy)
        parsed: list[tuple[PolicyItem, dict[str, Any]]] = []
        for item, evidence in items.items():
            entry = policy.item(item)
            allowed = set(entry.spec.supplied_by) | (
                MANUAL_SOURCES if MANUAL_TOOL in entry.spec.supplied_by else set())
            if not isinstance(source, str) or source not in allowed:
                raise PreflightError("source", source, ", ".join(sorted(allowed)), f"tools that may supply {item}")
            value = parse_evidence(item, entry.schema, evidence, entry.thresholds, policy.probe_caps)
            parsed.append((entry, value.model_dump(mode="json")))
        spec_json = canonical_spec_json(spec)
        with transaction(conn):
            current = get_checklist(conn, checklist.id)
            if spec is not None and current.spec_json is None:
                set_spec(conn, current.id, spec_json, spec_hash(spec))
                current = get_checklist(conn, current.id)
            digest = spec_hash(spec) if spec is not None else current.spec_hash
            rows = [(entry, insert_evidence(conn, current.id, entry.id, entry.schema.schema_name, data, digest,
                                            source, context)) for entry, data in parsed]
    states = []
    for entry, row in rows:
        state = evaluate_item(policy, entry, row, current.spec_hash)
        states.append(ItemState(checklist_id=current.id, id=entry.id, state=state.state, reason=state.reason,
                                evidence_id=row.id, spec_hash=short(digest), source=source,
                                recorded_at=row.recorded_at))
    return states


def update_spec(checklist_id: str, spec: dict[str, Any]) -> ChecklistStatus:
    """Make ``spec`` the checklist's spec; evidence computed for any other spec becomes stale."""
    if spec is None:
        raise PreflightError("spec", spec, "a JSON object (the run spec)")
    spec_json = canonical_spec_json(spec)
    with closing(open_db()) as conn:
        with transaction(conn):
            current = get_checklist(conn, checklist_id)
            if current.spec_json != spec_json:
                set_spec(conn, current.id, spec_json, spec_hash(spec))
        return _status(conn, current.id)


def checklist_status(checklist_id: str) -> ChecklistStatus:
    """Per item done/missing/stale/failed, the gate booleans, what is missing and the next step."""
    with closing(open_db()) as conn:
        return _status(conn, checklist_id)


def _status(conn: sqlite3.Connection, checklist_id: str) -> ChecklistStatus:
    checklist = get_checklist(conn, checklist_id)
    policy = load_policy(checklist.policy)
    result = evaluate(policy, checklist, latest_evidence(conn, checklist.id))
    missing = result.probe.missing + [i for i in result.full.missing if i not in result.probe.missing]
    return ChecklistStatus(
        checklist_id=checklist.id, run_name=checklist.run_name, policy=checklist.policy,
        spec_hash=short(checklist.spec_hash),
        items=[ItemStatus(id=e.item.id, state=e.state, reason=e.reason) for e in result.items],
        gate=GateOpen(probe=result.probe.open, full=result.full.open), missing=missing,
        next_step=result.next_step, full_only_for_offer=result.full.offer,
    )


def _brief(policy: Policy, item_id: str) -> ItemBrief:
    entry = policy.item(item_id)
    required, optional = field_names(entry.schema)
    return ItemBrief(id=entry.id, title=entry.spec.title, evidence_schema=entry.spec.evidence_schema,
                     supplied_by=list(entry.spec.supplied_by), passes_when=entry.spec.passes_when,
                     required_fields=required, optional_fields=optional)


def _gate_briefs(policy: Policy) -> dict[str, GateBrief]:
    probe, full = policy.data.gates.probe, policy.data.gates.full
    return {
        "probe": GateBrief(requires=probe.requires, why=probe.why, probe_min_steps=probe.min_steps,
                           probe_max_steps=probe.max_steps, probe_max_minutes=probe.max_minutes),
        "full": GateBrief(requires=full.requires, why=full.why),
    }


def _row_stub(checklist_id: str, run_name: str, policy: Policy, digest: str) -> ChecklistRow:
    return ChecklistRow(id=checklist_id, run_name=run_name, policy=policy.name, policy_sha256=policy.sha256,
                        spec_json=None, spec_hash=digest, created_at="", updated_at="")
