"""The pre-run checklist engine, its policies as data, and the launch gate (pre-estimation §7 "Agent Pre-Run
Checklist"; run-calibrated "Important Policy" and Stage A, the probe-first gate).

Public API (plain Python; the MCP tools and the CLI are thin wrappers over it):

- :func:`start_checklist`, :func:`record_evidence`, :func:`update_spec`, :func:`checklist_status`
- :func:`record_batch`: every item one tool call answered, in one transaction
- :func:`checklist_report` (markdown)
- :mod:`gate`: ``gate.check(checklist_id, kind, override_reason=None, *, offer=None)`` and ``gate.audit``
- :func:`load_policies` (validate every policy at server start), :func:`policy_text` (MCP resource)
"""

from __future__ import annotations

from gpu_preflight.checklist import gate
from gpu_preflight.checklist.engine import (
    checklist_status,
    record_batch,
    record_evidence,
    start_checklist,
    update_spec,
)
from gpu_preflight.checklist.evidence import SCHEMAS, schema_for
from gpu_preflight.checklist.policy import POLICY_NAMES, load_policies, load_policy, policy_text
from gpu_preflight.checklist.report import checklist_report
from gpu_preflight.checklist.spechash import spec_hash
from gpu_preflight.checklist.views import (
    ChecklistStatus,
    ChecklistView,
    GateDecision,
    ItemState,
    ItemStatus,
)

__all__ = [
    "POLICY_NAMES",
    "SCHEMAS",
    "ChecklistStatus",
    "ChecklistView",
    "GateDecision",
    "ItemState",
    "ItemStatus",
    "checklist_report",
    "checklist_status",
    "gate",
    "load_policies",
    "load_policy",
    "policy_text",
    "record_batch",
    "record_evidence",
    "schema_for",
    "spec_hash",
    "start_checklist",
    "update_spec",
]
