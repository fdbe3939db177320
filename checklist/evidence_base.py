"""What every piece of checklist evidence shares: strict parsing, policy thresholds, consistency.

Why two stages: pydantic checks types, units and ranges (a string where a number belongs, NaN, a
negative size); :meth:`Evidence.check` then checks the numbers against each other and against the
policy's thresholds (a ``pass`` verdict whose own ratio says ``fail``). The second stage raises
:class:`PreflightError` itself, so the agent reads one exact sentence instead of a pydantic dump.

A separate :meth:`Evidence.failure` says when valid evidence reports a failing *outcome* (a memory
verdict of ``fail``, a Stage A check that is false, a ``kill`` decision): that is recorded and shown
as ``failed``, not rejected, because it is the truth about the plan.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from gpu_preflight.tools.common.errors import PreflightError

# Units live in field names; these aliases only carry the range.
PositiveFloat = Annotated[float, Field(gt=0, le=1e12)]
"""Any positive physical figure (GB, hours, USD, tokens/s): finite and below 1e12, so 1e308 is refused."""
MemoryGb = Annotated[float, Field(gt=0, le=100_000)]
"""A memory size in GB (GPU or host): a single box holds far less than 100 TB."""
NonNegFloat = Annotated[float, Field(ge=0)]
Percent = Annotated[float, Field(ge=0, le=100)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class StrictModel(BaseModel):
    """Strict, closed, finite: "80" is not a number, ``gpu_ram`` is a typo, NaN is not a size."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class NoThresholds(StrictModel):
    """Thresholds of a schema that needs none from its policy."""


class ProbeCaps(StrictModel):
    """The caps a probe launch carries (policy data, ``[gates.probe]``)."""

    min_steps: int = Field(ge=1)
    max_steps: int = Field(ge=1)
    max_minutes: PositiveFloat


class Scenarios(StrictModel):
    """The playbooks' three scenarios; optimistic is the smallest time or cost.

    Zero is allowed: the estimator rounds hours to 3 decimals and dollars to cents, so a short run or
    a very cheap offer legitimately rounds to 0 (refusing it made estimate_run fail for such runs).
    """

    optimistic: NonNegFloat
    base: NonNegFloat
    pessimistic: NonNegFloat

    def ordered(self) -> bool:
        return self.optimistic <= self.base <= self.pessimistic

    def text(self, fmt: str = "{:.3g}") -> str:
        return " / ".join(fmt.format(v) for v in (self.optimistic, self.base, self.pessimistic))


class OptionRow(StrictModel):
    """One row of the playbooks' required option table (``plan_options`` supplies these)."""

    gpu_option: str = Field(min_length=1)
    dph_total_usd: PositiveFloat
    gpu_ram_gb: MemoryGb | None = None
    cpu_ram_gb: MemoryGb | None = None
    tflops: PositiveFloat | None = None
    hbm_bw_gbps: PositiveFloat | None = None
    pred_tokens_per_s: PositiveFloat | None = None
    pred_steps_per_s: PositiveFloat | None = None
    time_hours: Scenarios
    cost_usd: Scenarios
    setup_debug_tax: Fraction | None = None
    optimization_effort: Literal["low", "med", "high"] | None = None
    major_risks: list[str] = Field(default_factory=list)
    decision: Literal["keep", "switch", "kill"] | None = None
    transfer_usd: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.0, description="One-off bandwidth charge (download volume x the offer's $/TB) inside cost_usd.")


class Evidence(StrictModel):
    """Base of every evidence schema; subclasses override the hooks they need."""

    schema_name: ClassVar[str] = ""
    thresholds_model: ClassVar[type[StrictModel]] = NoThresholds

    def check(self, thresholds: Any, probe: ProbeCaps) -> None:
        """Raise :class:`PreflightError` when the numbers contradict each other or the policy."""

    def failure(self, thresholds: Any) -> str | None:
        """A reason when valid evidence reports a failing outcome, else ``None``."""
        return None

    def open_reason(self, thresholds: Any) -> str | None:
        """Why valid evidence does not close its item yet (a figure the playbook asks for is unknown),
        and how to close it; ``None`` when it is complete. Shown as ``missing``: nothing failed."""
        return None

    def summary(self, thresholds: Any) -> str:
        """One short line for ``checklist_status``."""
        return "recorded"

    def offer_restriction(self) -> str | None:
        """The only offer a full run may use, when this evidence narrows it (a ``switch``)."""
        return None


def reject(field: str, got: Any, allowed: str, hint: str = "") -> PreflightError:
    """A consistency refusal; named so call sites read ``raise reject(...)``."""
    return PreflightError(field, got, allowed, hint)


def close(a: float, b: float, rel: float, abs_tol: float = 1e-9) -> bool:
    """``a`` equals ``b`` within ``rel`` (relative) or ``abs_tol`` (for rounding near zero)."""
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def check_scenarios(field: str, value: Scenarios) -> None:
    """optimistic <= base <= pessimistic, for times and costs alike."""
    if not value.ordered():
        raise reject(field, value.model_dump(), "optimistic <= base <= pessimistic",
                     "optimistic is the fastest and cheapest scenario")


def check_cost_matches_time(prefix: str, time_hours: Scenarios, cost_usd: Scenarios,
                            dph_total_usd: float, rel: float, transfer_usd: float = 0.0) -> None:
    """The playbooks' ``cost_usd = wall_hours * dph_total`` in every scenario, plus any one-off
    bandwidth charge (Vast bills downloads per TB)."""
    for name in ("optimistic", "base", "pessimistic"):
        hours = float(getattr(time_hours, name))
        cost = float(getattr(cost_usd, name))
        expected = hours * dph_total_usd + transfer_usd
        # Cents, plus what rounding hours to 3 decimals costs at this rate.
        if not close(cost, expected, rel, abs_tol=0.01 + 0.001 * dph_total_usd):
            raise reject(f"{prefix}cost_usd.{name}", cost,
                         f"time_hours.{name} * dph_total_usd{' + transfer_usd' if transfer_usd else ''} = "
                         f"{expected:.4g} (within {rel:.0%})",
                         "time_hours are wall hours: setup/debug + training + eval/checkpoint")
