"""The two checklist policies as data: load, validate, and look items up.

Why data: the playbooks change (a threshold, an item), and a reviewer should see the rule in one
TOML table rather than in code. Why validate at start: a policy that names an unknown schema, a
gate that requires an item that does not exist, or a threshold of the wrong type must stop the
server before an agent relies on it. :func:`load_policies` does all of that and caches the result.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gpu_preflight.checklist.evidence import ProbeCaps, parse_thresholds, schema_for
from gpu_preflight.checklist.evidence_base import Evidence, StrictModel
from gpu_preflight.tools.common.errors import PreflightError, from_validation_error

PolicyName = Literal["pre-estimate", "run-calibrated"]
POLICY_NAMES: tuple[str, ...] = get_args(PolicyName)
ToolName = Literal["estimate_memory", "estimate_run", "plan_options", "calibrate", "run_check", "checklist_record"]
MANUAL_TOOL = "checklist_record"
_ITEM_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GateSpec(_Data):
    requires: list[str] = Field(min_length=1)
    why: str = Field(min_length=1)


class ProbeGateSpec(GateSpec):
    min_steps: int = Field(ge=1)
    max_steps: int = Field(ge=1)
    max_minutes: float = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _range(self) -> ProbeGateSpec:
        if self.min_steps > self.max_steps:
            raise ValueError("min_steps must not exceed max_steps")
        return self


class Gates(_Data):
    probe: ProbeGateSpec
    full: GateSpec


class ItemSpec(_Data):
    id: str
    title: str = Field(min_length=1)
    evidence_schema: str
    supplied_by: list[ToolName] = Field(min_length=1)
    passes_when: str = Field(min_length=1)
    thresholds: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self) -> ItemSpec:
        if not _ITEM_ID.match(self.id):
            raise ValueError(f"item id {self.id!r} must match {_ITEM_ID.pattern}")
        if MANUAL_TOOL not in self.supplied_by:
            raise ValueError(f"item {self.id!r}: supplied_by must include {MANUAL_TOOL!r} (agents can always record)")
        return self


class PolicyFile(_Data):
    name: PolicyName
    title: str = Field(min_length=1)
    source: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    gates: Gates
    items: list[ItemSpec] = Field(min_length=1)


@dataclass(frozen=True)
class PolicyItem:
    """An item with its schema class and parsed thresholds, ready for :func:`parse_evidence`."""

    spec: ItemSpec
    schema: type[Evidence]
    thresholds: StrictModel

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class Policy:
    """A validated policy; ``sha256`` of its file is stored with each checklist for the audit."""

    data: PolicyFile
    items: tuple[PolicyItem, ...]
    sha256: str
    text: str

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def probe_caps(self) -> ProbeCaps:
        gate = self.data.gates.probe
        return ProbeCaps(min_steps=gate.min_steps, max_steps=gate.max_steps, max_minutes=gate.max_minutes)

    def requires(self, kind: str) -> list[str]:
        return list(self.data.gates.probe.requires if kind == "probe" else self.data.gates.full.requires)

    def item(self, item_id: str) -> PolicyItem:
        """The item named ``item_id``, or a refusal listing this policy's items."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise PreflightError("item", item_id, ", ".join(i.id for i in self.items),
                             f"items of policy {self.name!r}")


def policy_text(name: str) -> str:
    """The raw TOML of a policy (what an MCP resource serves)."""
    _check_name(name)
    return (resources.files("gpu_preflight.checklist") / "policies" / f"{name}.toml").read_text(encoding="utf-8")


@cache
def load_policy(name: str) -> Policy:
    """Load and validate one policy file; refusals name the file and the field."""
    _check_name(name)
    text = policy_text(name)
    where = f"policies/{name}.toml"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PreflightError(where, str(exc), "valid TOML") from None
    try:
        data = PolicyFile.model_validate(raw)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix=where) from None
    if data.name != name:
        raise PreflightError(f"{where}.name", data.name, repr(name), "a policy file is named after its policy")
    items = []
    for index, spec in enumerate(data.items):
        schema = schema_for(spec.evidence_schema)
        thresholds = parse_thresholds(schema, spec.thresholds, f"{where}.items[{index}].thresholds")
        items.append(PolicyItem(spec=spec, schema=schema, thresholds=thresholds))
    ids = [item.id for item in items]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise PreflightError(f"{where}.items", duplicates, "unique item ids")
    for kind in ("probe", "full"):
        gate: GateSpec = getattr(data.gates, kind)
        unknown = [r for r in gate.requires if r not in ids]
        if unknown:
            raise PreflightError(f"{where}.gates.{kind}.requires", unknown, ", ".join(ids))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Policy(data=data, items=tuple(items), sha256=digest, text=text)


def load_policies() -> dict[str, Policy]:
    """Every policy, validated: call at server start so a broken file stops the server early."""
    return {name: load_policy(name) for name in POLICY_NAMES}


def _check_name(name: str) -> None:
    if name not in POLICY_NAMES:
        raise PreflightError("policy", name, " or ".join(POLICY_NAMES))
