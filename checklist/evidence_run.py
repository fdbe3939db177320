"""Evidence schemas of the run-calibrated checklist (run-calibrated.md stages A-C and the decision).

Stage D reuses the pre-estimate's setup/debug tax schema. The probe's step and time caps come from
the policy's ``[gates.probe]`` table, so the measurement a probe reports is checked against the same
caps the probe was launched with.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from gpu_preflight.checklist.evidence_base import (
    Evidence,
    MemoryGb,
    NonNegFloat,
    OptionRow,
    Percent,
    PositiveFloat,
    ProbeCaps,
    Scenarios,
    StrictModel,
    check_cost_matches_time,
    check_scenarios,
    close,
    reject,
)
from gpu_preflight.tools.common.nextstep import call


class StageAChecksEvidence(Evidence):
    """Stage A: quick pre-rent checks that avoid obvious dead ends; any false one fails the item.

    ``cpu_ram_ok`` and ``disk_ok`` are null when the host's RAM or disk is unknown (an estimate for a
    catalogue GPU): that is not "ok", so the item stays open and says what would close it.
    """

    schema_name: ClassVar[str] = "stage_a_checks"

    vram_fits: bool
    cpu_ram_ok: bool | None
    disk_ok: bool | None
    reliability_network_ok: bool
    notes: str | None = None

    def open_reason(self, thresholds: Any) -> str | None:
        unknown = []
        if self.cpu_ram_ok is None:
            unknown.append(f"cpu_ram_ok (host RAM unknown: {call('gpu_with_host_ram')}, or {call('plan_options')} "
                           "over offers that list it)")
        if self.disk_ok is None:
            unknown.append(f"disk_ok (disk unknown: give the host's disk_gb, or {call('plan_options')} over offers)")
        return "Stage A not known yet: " + "; ".join(unknown) if unknown else None

    def _false(self) -> list[str]:
        flags = {"vram_fits": self.vram_fits, "cpu_ram_ok": self.cpu_ram_ok, "disk_ok": self.disk_ok,
                 "reliability_network_ok": self.reliability_network_ok}
        return [name for name, ok in flags.items() if ok is False]

    def failure(self, thresholds: Any) -> str | None:
        bad = self._false()
        return f"Stage A check false: {', '.join(bad)}" if bad else None

    def summary(self, thresholds: Any) -> str:
        return "VRAM, CPU RAM, disk, reliability/network all ok"


class ProbeThresholds(StrictModel):
    low_gpu_util_pct: Percent = 60
    step_time_slack_ratio: Annotated[float, Field(ge=1)] = 1.25


class ProbeMeasurementsEvidence(Evidence):
    """Stage B: what a 20-100 step (or time-capped) probe on the real instance measured."""

    schema_name: ClassVar[str] = "probe_measurements"
    thresholds_model: ClassVar[type[StrictModel]] = ProbeThresholds

    median_step_time_s: PositiveFloat
    eval_runtime_s: PositiveFloat | None
    gpu_util_pct: Percent
    mem_util_pct: Percent
    vram_used_gb: PositiveFloat
    gpu_ram_gb: MemoryGb | None = None
    transfer_mbps: PositiveFloat | None
    setup_debug_hours_so_far: NonNegFloat
    steps_measured: int = Field(ge=1)
    time_capped: bool = False
    probe_minutes: PositiveFloat | None = None

    def check(self, thresholds: Any, probe: ProbeCaps) -> None:
        assert isinstance(thresholds, ProbeThresholds)
        if self.steps_measured > probe.max_steps:
            raise reject("steps_measured", self.steps_measured, f"<= {probe.max_steps} (the probe's step cap)")
        if self.time_capped:
            if self.probe_minutes is None or self.probe_minutes > probe.max_minutes:
                raise reject("probe_minutes", self.probe_minutes,
                             f"a number <= {probe.max_minutes:g} when time_capped is true",
                             "a time-capped probe says how long it ran")
        elif self.steps_measured < probe.min_steps:
            raise reject("steps_measured", self.steps_measured, f"{probe.min_steps}..{probe.max_steps}",
                         "or set time_capped with probe_minutes")
        if self.gpu_ram_gb is not None and self.vram_used_gb > self.gpu_ram_gb:
            raise reject("vram_used_gb", self.vram_used_gb, f"<= gpu_ram_gb ({self.gpu_ram_gb:g})")
        if self.probe_minutes is not None:
            busy_min = self.steps_measured * self.median_step_time_s / 60
            if busy_min > self.probe_minutes * thresholds.step_time_slack_ratio:
                raise reject("median_step_time_s", self.median_step_time_s,
                             f"<= probe_minutes * 60 / steps_measured "
                             f"(x{thresholds.step_time_slack_ratio:g} slack)",
                             f"{self.steps_measured} steps at this median take {busy_min:.3g} min, "
                             f"longer than the {self.probe_minutes:g} min probe")

    def summary(self, thresholds: Any) -> str:
        text = (f"median {self.median_step_time_s:.3g} s/step over {self.steps_measured} steps; GPU util "
                f"{self.gpu_util_pct:g}%, mem util {self.mem_util_pct:g}%, VRAM {self.vram_used_gb:.3g} GB")
        assert isinstance(thresholds, ProbeThresholds)
        if self.gpu_util_pct < thresholds.low_gpu_util_pct:
            text += "; GPU util low: look for an input or logging bottleneck before keep"
        return text


class LiveEstimateThresholds(StrictModel):
    cost_tolerance_rel: Annotated[float, Field(gt=0, le=0.5)] = 0.01
    time_tolerance_rel: Annotated[float, Field(gt=0, le=0.5)] = 0.02
    optimistic_rate_factor: Annotated[float, Field(ge=1)] = 1.2
    pessimistic_rate_factor: Annotated[float, Field(gt=0, le=1)] = 0.6


class LiveEstimateEvidence(Evidence):
    """Stage C: time and cost from live throughput; ``steps_per_s`` is the playbook's ``step_s``."""

    schema_name: ClassVar[str] = "live_estimate"
    thresholds_model: ClassVar[type[StrictModel]] = LiveEstimateThresholds

    steps_per_s: PositiveFloat
    target_steps: int = Field(ge=1)
    time_hours: Scenarios
    cost_usd: Scenarios
    dph_total_usd: PositiveFloat
    setup_debug_hours: NonNegFloat | None = None
    eval_overhead_hours: NonNegFloat | None = None
    options: list[OptionRow] = Field(default_factory=list)

    def train_hours(self, rate_factor: float = 1.0) -> float:
        return self.target_steps / (self.steps_per_s * rate_factor * 3600)

    def check(self, thresholds: Any, probe: ProbeCaps) -> None:
        t = thresholds
        assert isinstance(t, LiveEstimateThresholds)
        check_scenarios("time_hours", self.time_hours)
        check_scenarios("cost_usd", self.cost_usd)
        check_cost_matches_time("", self.time_hours, self.cost_usd, self.dph_total_usd, t.cost_tolerance_rel)
        factors = {"optimistic": t.optimistic_rate_factor, "base": 1.0, "pessimistic": t.pessimistic_rate_factor}
        known = self.setup_debug_hours is not None and self.eval_overhead_hours is not None
        fixed = (self.setup_debug_hours or 0.0) + (self.eval_overhead_hours or 0.0)
        for name, factor in factors.items():
            got = float(getattr(self.time_hours, name))
            train = self.train_hours(factor)
            if known and not close(got, fixed + train, t.time_tolerance_rel, abs_tol=0.01):
                raise reject(f"time_hours.{name}", got, f"setup + train + eval = {fixed + train:.4g} h",
                             f"train_hours = target_steps / (steps_per_s * {factor:g} * 3600) = {train:.4g}")
            if not known and got < train * (1 - t.time_tolerance_rel):
                raise reject(f"time_hours.{name}", got, f">= train hours {train:.4g}",
                             f"target_steps / (steps_per_s * {factor:g} * 3600)")
        for index, row in enumerate(self.options):
            check_scenarios(f"options[{index}].time_hours", row.time_hours)
            check_cost_matches_time(f"options[{index}].", row.time_hours, row.cost_usd, row.dph_total_usd,
                                    t.cost_tolerance_rel, row.transfer_usd)

    def summary(self, thresholds: Any) -> str:
        return (f"{self.steps_per_s:.3g} steps/s live; {self.time_hours.text()} h, "
                f"${self.cost_usd.text('{:.2f}')} (opt/base/pess)")


class DecisionThresholds(StrictModel):
    max_decided_within_minutes: PositiveFloat = 15


class DecisionEvidence(Evidence):
    """The keep/switch/kill decision, due within the first 10-15 minutes of the probe.

    ``switch`` names the offer it moves to; the full gate then opens for that offer only (the
    measurements were taken elsewhere, so they vouch for the move, not for any other machine).
    ``kill`` and a late decision are failing outcomes: the full gate stays closed.
    """

    schema_name: ClassVar[str] = "decision"
    thresholds_model: ClassVar[type[StrictModel]] = DecisionThresholds

    decision: Literal["keep", "switch", "kill"]
    reason: str = Field(min_length=1)
    decided_within_minutes: NonNegFloat
    switch_to_offer: str | None = None

    def check(self, thresholds: Any, probe: ProbeCaps) -> None:
        if not self.reason.strip():
            raise reject("reason", self.reason, "a written reason", "say why keep, switch or kill")
        if self.decision == "switch" and not (self.switch_to_offer or "").strip():
            raise reject("switch_to_offer", self.switch_to_offer, "the offer (id or GPU name) to switch to",
                         "required when decision is 'switch'")
        if self.decision != "switch" and self.switch_to_offer is not None:
            raise reject("switch_to_offer", self.switch_to_offer, "null unless decision is 'switch'")

    def failure(self, thresholds: Any) -> str | None:
        assert isinstance(thresholds, DecisionThresholds)
        if self.decision == "kill":
            return f"decision kill: {self.reason}"
        if self.decided_within_minutes > thresholds.max_decided_within_minutes:
            return (f"decided after {self.decided_within_minutes:g} min; the policy wants keep/switch/kill "
                    f"within {thresholds.max_decided_within_minutes:g}")
        return None

    def offer_restriction(self) -> str | None:
        return self.switch_to_offer.strip() if self.decision == "switch" and self.switch_to_offer else None

    def summary(self, thresholds: Any) -> str:
        target = f" to {self.switch_to_offer}" if self.switch_to_offer else ""
        return f"{self.decision}{target} after {self.decided_within_minutes:g} min: {self.reason}"
