"""What the checklist API returns: small pydantic models the MCP tools and the CLI serialise as is.

Why compact: ``ChecklistStatus`` is what an agent reads after every call, so it carries the state
of each item with a one-line reason, the two gate booleans, what is missing and one next step,
and nothing else. The report (markdown) is where the full numbers go.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ItemStateName = Literal["done", "missing", "stale", "failed"]
GateKind = Literal["probe", "full"]


class ItemBrief(BaseModel):
    """One item as ``checklist_start`` describes it: what to send and who can send it."""

    id: str
    title: str
    evidence_schema: str
    supplied_by: list[str]
    passes_when: str
    required_fields: list[str]
    optional_fields: list[str]


class GateBrief(BaseModel):
    requires: list[str]
    why: str
    probe_min_steps: int | None = None
    probe_max_steps: int | None = None
    probe_max_minutes: float | None = None


class ChecklistView(BaseModel):
    """The answer to ``checklist_start``: the id to pass to every later call, and the items."""

    id: str
    run_name: str
    policy: str
    title: str
    spec_hash: str
    items: list[ItemBrief]
    gates: dict[str, GateBrief]
    next_step: str


class ItemStatus(BaseModel):
    id: str
    state: ItemStateName
    reason: str


class GateOpen(BaseModel):
    probe: bool
    full: bool


class ChecklistStatus(BaseModel):
    """The one short answer an agent reads: item states, gate booleans, what is missing, next step."""

    checklist_id: str
    run_name: str
    policy: str
    spec_hash: str
    items: list[ItemStatus]
    gate: GateOpen
    missing: list[str]
    next_step: str
    full_only_for_offer: str | None = None


class ItemState(BaseModel):
    """The answer to ``record_evidence``: the item's state right after the record."""

    checklist_id: str
    id: str
    state: ItemStateName
    reason: str
    evidence_id: int
    spec_hash: str
    source: str
    recorded_at: str


class GateDecision(BaseModel):
    """One recorded gate decision (every check is recorded, open, closed or overridden)."""

    decision_id: int
    checklist_id: str
    kind: GateKind
    open: bool = Field(description="the gate was open on the evidence alone")
    allowed: bool = Field(description="the launch may go ahead (open, or overridden with a reason)")
    overridden: bool
    override_reason: str | None
    missing: list[str]
    spec_hash: str
    offer: str | None = Field(description="the only offer a full run may use, after a switch decision")
    probe_min_steps: int | None = None
    probe_max_steps: int | None = None
    probe_max_minutes: float | None = None
    decided_at: str
    next_step: str
