"""The evidence schema registry and the one function that accepts or rejects a piece of evidence.

Why a registry by name: policy files are data and name their schema (``schema = "memory_fit"``);
the loader checks every name here at start, so a typo in a policy fails loudly before any agent
records anything.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from gpu_preflight.checklist.evidence_base import Evidence, OptionRow, ProbeCaps, Scenarios, StrictModel
from gpu_preflight.checklist.evidence_pre import (
    MemoryFitEvidence,
    SetupDebugTaxEvidence,
    ThroughputPredictionEvidence,
    TimeCostTableEvidence,
    ValidationGatesEvidence,
)
from gpu_preflight.checklist.evidence_run import (
    DecisionEvidence,
    LiveEstimateEvidence,
    ProbeMeasurementsEvidence,
    StageAChecksEvidence,
)
from gpu_preflight.tools.common.errors import PreflightError, from_validation_error

__all__ = [
    "SCHEMAS",
    "DecisionEvidence",
    "Evidence",
    "LiveEstimateEvidence",
    "MemoryFitEvidence",
    "OptionRow",
    "ProbeCaps",
    "ProbeMeasurementsEvidence",
    "Scenarios",
    "SetupDebugTaxEvidence",
    "StageAChecksEvidence",
    "ThroughputPredictionEvidence",
    "TimeCostTableEvidence",
    "ValidationGatesEvidence",
    "field_names",
    "parse_evidence",
    "schema_for",
]

SCHEMAS: dict[str, type[Evidence]] = {
    cls.schema_name: cls
    for cls in (
        MemoryFitEvidence,
        ThroughputPredictionEvidence,
        TimeCostTableEvidence,
        SetupDebugTaxEvidence,
        ValidationGatesEvidence,
        StageAChecksEvidence,
        ProbeMeasurementsEvidence,
        LiveEstimateEvidence,
        DecisionEvidence,
    )
}


def schema_for(name: str) -> type[Evidence]:
    """The schema class registered under ``name`` (a policy item's ``schema``)."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise PreflightError("schema", name, ", ".join(sorted(SCHEMAS))) from None


def field_names(cls: type[BaseModel]) -> tuple[list[str], list[str]]:
    """(required, optional) field names, so an agent knows what to send without a JSON schema."""
    required = [name for name, info in cls.model_fields.items() if info.is_required()]
    optional = [name for name, info in cls.model_fields.items() if not info.is_required()]
    return required, optional


def parse_thresholds(cls: type[Evidence], table: dict[str, Any], where: str) -> StrictModel:
    """Validate a policy item's ``[thresholds]`` table against its schema's thresholds model."""
    try:
        return cls.thresholds_model.model_validate(table)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix=where) from None


def parse_evidence(item: str, cls: type[Evidence], evidence: object, thresholds: StrictModel,
                   probe: ProbeCaps) -> Evidence:
    """Accept ``evidence`` for ``item`` or raise a :class:`PreflightError` naming the exact problem.

    Fields are named ``<item>.<field>`` so the message says where to look: types and ranges first
    (pydantic), then the consistency of the numbers with each other and with the policy.
    """
    if not isinstance(evidence, dict):
        required, _ = field_names(cls)
        raise PreflightError(f"{item}", evidence, f"a JSON object with fields {', '.join(required)}",
                             "evidence is one object per item")
    try:
        parsed = cls.model_validate(evidence)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix=item) from None
    try:
        parsed.check(thresholds, probe)
    except PreflightError as exc:
        raise PreflightError(f"{item}.{exc.field}", exc.got, exc.allowed, exc.hint) from None
    return parsed
