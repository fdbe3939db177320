"""Evidence schemas of the pre-estimate checklist (pre-estimation.md section 7, items 1-5).

Each schema mirrors one item the playbook says an agent "must state" before a long run, with the
consistency rule that catches a number typed in without being computed. The thresholds (0.8/0.9,
25%, 70%/60%/92%) come from the policy file, so the data, not this code, says what passes.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from gpu_preflight.checklist.evidence_base import (
    Evidence,
    Fraction,
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

_EPS = 1e-9
_ROUNDING_REL = 1e-3  # estimator outputs are rounded (GB to 3 decimals, ratios to 4)


class MemoryFitThresholds(StrictModel):
    gpu_pass_max_ratio: Fraction = 0.8
    gpu_high_oom_risk_max_ratio: Fraction = 0.9

    @model_validator(mode="after")
    def _ordered(self) -> MemoryFitThresholds:
        if self.gpu_pass_max_ratio > self.gpu_high_oom_risk_max_ratio:
            raise ValueError("gpu_pass_max_ratio must not exceed gpu_high_oom_risk_max_ratio")
        return self


class MemoryFitEvidence(Evidence):
    """Item 1: GPU and CPU memory fit numbers and their verdicts (playbook 1.1 and 1.2)."""

    schema_name: ClassVar[str] = "memory_fit"
    thresholds_model: ClassVar[type[StrictModel]] = MemoryFitThresholds

    gpu_ram_gb: MemoryGb
    gpu_peak_gb: PositiveFloat
    gpu_required_gb: PositiveFloat
    gpu_verdict: Literal["pass", "high_oom_risk", "fail"]
    gpu_verdict_basis_gb: PositiveFloat
    cpu_ram_gb: MemoryGb | None
    cpu_required_gb: NonNegFloat
    cpu_verdict: Literal["pass", "close_to_limit", "fail", "unknown"]

    def gpu_ratio(self) -> float:
        return self.gpu_verdict_basis_gb / self.gpu_ram_gb

    @staticmethod
    def verdict_for(ratio: float, t: MemoryFitThresholds) -> str:
        if ratio <= t.gpu_pass_max_ratio + _EPS:
            return "pass"
        if ratio <= t.gpu_high_oom_risk_max_ratio + _EPS:
            return "high_oom_risk"
        return "fail"

    def consistent_gpu_verdicts(self, t: MemoryFitThresholds) -> list[str]:
        """Verdicts the numbers allow; within 0.1% of a band edge both sides are (rounded inputs)."""
        ratio = self.gpu_ratio()
        found = [self.verdict_for(ratio * f, t) for f in (1 - _ROUNDING_REL, 1.0, 1 + _ROUNDING_REL)]
        return sorted(set(found), key=found.index)

    def check(self, thresholds: Any, probe: ProbeCaps) -> None:
        assert isinstance(thresholds, MemoryFitThresholds)
        floor = min(self.gpu_peak_gb, self.gpu_required_gb)
        if self.gpu_verdict_basis_gb < floor * (1 - 0.01):
            raise reject("gpu_verdict_basis_gb", self.gpu_verdict_basis_gb,
                         f">= min(gpu_peak_gb, gpu_required_gb) = {floor:.4g}",
                         "the verdict must compare one of the predicted figures, not a smaller one")
        expected = self.consistent_gpu_verdicts(thresholds)
        if self.gpu_verdict not in expected:
            raise reject("gpu_verdict", self.gpu_verdict, " or ".join(repr(v) for v in expected),
                         f"gpu_verdict_basis_gb / gpu_ram_gb = {self.gpu_verdict_basis_gb:.4g} / "
                         f"{self.gpu_ram_gb:.4g} = {self.gpu_ratio():.3f}; pass <= "
                         f"{thresholds.gpu_pass_max_ratio}, high_oom_risk <= "
                         f"{thresholds.gpu_high_oom_risk_max_ratio}, fail above")
        self._check_cpu()

    def _check_cpu(self) -> None:
        if self.cpu_ram_gb is None:
            if self.cpu_verdict != "unknown":
                raise reject("cpu_verdict", self.cpu_verdict, "'unknown' when cpu_ram_gb is null",
                             "a verdict needs the host's RAM")
            return
        if self.cpu_verdict == "unknown":
            raise reject("cpu_verdict", self.cpu_verdict, "'pass', 'close_to_limit' or 'fail'",
                         f"cpu_ram_gb is known ({self.cpu_ram_gb:.4g})")
        over = self.cpu_required_gb > self.cpu_ram_gb
        if over and self.cpu_verdict != "fail":
            raise reject("cpu_verdict", self.cpu_verdict, "'fail'",
                         f"cpu_required_gb {self.cpu_required_gb:.4g} > cpu_ram_gb {self.cpu_ram_gb:.4g}")

    def failure(self, thresholds: Any) -> str | None:
        problems = []
        if self.gpu_verdict == "fail":
            problems.append(f"GPU needs {self.gpu_verdict_basis_gb:.3g} GB of {self.gpu_ram_gb:.3g} GB")
        if self.cpu_verdict == "fail":
            problems.append(f"CPU RAM needs {self.cpu_required_gb:.3g} GB of {self.cpu_ram_gb} GB")
        return "; ".join(problems) + " (verdict fail)" if problems else None

    def open_reason(self, thresholds: Any) -> str | None:
        """Playbook §7 asks for GPU RAM *and* CPU RAM numbers: an unknown host keeps the item open."""
        if self.cpu_ram_gb is not None:
            return None
        return (f"GPU {self.gpu_verdict_basis_gb:.3g}/{self.gpu_ram_gb:.3g} GB {self.gpu_verdict}, but host RAM is "
                f"unknown (CPU needs {self.cpu_required_gb:.3g} GB): run {call('plan_options')} with the checklist and "
                f"{call('estimate_run')} for the offer you pick (its RAM is used), {call('gpu_with_host_ram')}, "
                f"or record memory_fit with the host's cpu_ram_gb ({call('checklist_record')})")

    def summary(self, thresholds: Any) -> str:
        cpu = f"CPU {self.cpu_required_gb:.3g}/{self.cpu_ram_gb:.3g} GB" if self.cpu_ram_gb else (
            f"CPU needs {self.cpu_required_gb:.3g} GB, host RAM")
        return (f"GPU {self.gpu_verdict_basis_gb:.3g}/{self.gpu_ram_gb:.3g} GB ({self.gpu_ratio():.0%}) "
                f"{self.gpu_verdict}; {cpu} {self.cpu_verdict}")


class ThroughputPredictionEvidence(Evidence):
    """Item 2: how throughput was predicted (playbook section 2) and the figure."""

    schema_name: ClassVar[str] = "throughput_prediction"

    method: Literal["baseline_scaled", "cold", "probe"]
    tokens_per_s: PositiveFloat
    confidence: Literal["low", "medium", "high"]
    baseline_tokens_per_s: PositiveFloat | None = None
    scale_ratio: PositiveFloat | None = None
    efficiency_factor: Annotated[float, Field(gt=0, le=1)] | None = None
    mfu_assumed: Annotated[float, Field(gt=0, le=1)] | None = None

    def check(self, thresholds: Any, probe: ProbeCaps) -> None:
        if self.method == "cold" and self.confidence != "low":
            raise reject("confidence", self.confidence, "'low' when method is 'cold'",
                         "the playbook treats cold estimates as low confidence until probe data exists")
        parts = (self.baseline_tokens_per_s, self.scale_ratio, self.efficiency_factor)
        if self.method == "baseline_scaled" and all(p is not None for p in parts):
            base, scale, eff = (float(p) for p in parts if p is not None)
            expected = base * scale * eff
            if not close(self.tokens_per_s, expected, 0.01):
                raise reject("tokens_per_s", self.tokens_per_s,
                             f"baseline_tokens_per_s * scale_ratio * efficiency_factor = {expected:.4g}",
                             "playbook 2.1: tokens_s_pred = tokens_s_base * scale_ratio * efficiency_factor")

    def summary(self, thresholds: Any) -> str:
        return f"{self.tokens_per_s:.4g} tokens/s ({self.method}, {self.confidence} confidence)"


class CostToleranceThresholds(StrictModel):
    cost_tolerance_rel: Annotated[float, Field(gt=0, le=0.5)] = 0.01


class TimeCostTableEvidence(Evidence):
    """Item 3: time and cost in the three scenarios (playbook section 3), optionally per option."""

    schema_name: ClassVar[str] = "time_cost_table"
    thresholds_model: ClassVar[type[StrictModel]] = CostToleranceThresholds

    time_hours: Scenarios
    cost_usd: Scenarios
    dph_total_usd: PositiveFloat
    transfer_usd: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    options: list[OptionRow] = Field(default_factory=list)

    def check(self, thresholds: Any, probe: ProbeCaps) -> None:
        assert isinstance(thresholds, CostToleranceThresholds)
        check_scenarios("time_hours", self.time_hours)
        check_scenarios("cost_usd", self.cost_usd)
        check_cost_matches_time("", self.time_hours, self.cost_usd, self.dph_total_usd,
                                thresholds.cost_tolerance_rel, self.transfer_usd)
        for index, row in enumerate(self.options):
            check_scenarios(f"options[{index}].time_hours", row.time_hours)
            check_scenarios(f"options[{index}].cost_usd", row.cost_usd)
            check_cost_matches_time(f"options[{index}].", row.time_hours, row.cost_usd,
                                    row.dph_total_usd, thresholds.cost_tolerance_rel, row.transfer_usd)

    def summary(self, thresholds: Any) -> str:
        return (f"{self.time_hours.text()} h, ${self.cost_usd.text('{:.2f}')} (opt/base/pess) "
                f"at ${self.dph_total_usd:.3g}/h" + (f"; {len(self.options)} options" if self.options else ""))


class TaxThresholds(StrictModel):
    max_tax_for_expensive: Fraction = 0.25
    tax_tolerance_rel: Annotated[float, Field(gt=0, le=0.5)] = 0.01
    closes_full_gate_when_over: bool = False
    """Pre-estimate: a tax over the limit means "not ready for expensive hardware" (playbook §3), so the
    full gate stays closed for any but the cheapest option of the table (see checklist.evaluate)."""


class SetupDebugTaxEvidence(Evidence):
    """Item 4 / Stage D: setup/debug tax and whether expensive hardware is justified now.

    A high tax is not a failure of the checklist (the plan may be to debug on a cheap GPU); the
    status line says so, and ``expensive_hardware_justified`` must agree with the threshold.
    """

    schema_name: ClassVar[str] = "setup_debug_tax"
    thresholds_model: ClassVar[type[StrictModel]] = TaxThresholds

    setup_debug_hours: NonNegFloat
    wall_hours: PositiveFloat
    setup_debug_tax: Fraction
    expensive_hardware_justified: bool

    def check(self, thresholds: Any, probe: ProbeCaps) -> None:
        assert isinstance(thresholds, TaxThresholds)
        if self.setup_debug_hours > self.wall_hours:
            raise reject("setup_debug_hours", self.setup_debug_hours, f"<= wall_hours ({self.wall_hours:.4g})",
                         "wall hours include setup/debug")
        expected = self.setup_debug_hours / self.wall_hours
        if not close(self.setup_debug_tax, expected, thresholds.tax_tolerance_rel, abs_tol=1e-3):
            raise reject("setup_debug_tax", self.setup_debug_tax,
                         f"setup_debug_hours / wall_hours = {expected:.4f} (within "
                         f"{thresholds.tax_tolerance_rel:.0%})", "a fraction, not a percent")
        justified = self.setup_debug_tax <= thresholds.max_tax_for_expensive + _EPS
        at_edge = abs(self.setup_debug_tax - thresholds.max_tax_for_expensive) <= 1e-3  # a rounded tax
        if self.expensive_hardware_justified != justified and not at_edge:
            raise reject("expensive_hardware_justified", self.expensive_hardware_justified, repr(justified),
                         f"justified exactly when setup_debug_tax <= {thresholds.max_tax_for_expensive}")

    def summary(self, thresholds: Any) -> str:
        head = f"tax {self.setup_debug_tax:.0%} ({self.setup_debug_hours:.3g} of {self.wall_hours:.3g} h)"
        if self.expensive_hardware_justified:
            return head + ", expensive hardware justified"
        return head + ", expensive hardware NOT justified yet: debug on cheap hardware first"


class ValidationGateThresholds(StrictModel):
    max_window_minutes: PositiveFloat = 10
    min_throughput_ratio_floor: Fraction = 0.7
    min_gpu_util_pct_floor: Percent = 60
    max_mem_used_pct_ceiling: Percent = 92
    max_consecutive_windows: int = Field(default=2, ge=1)


class ValidationGatesEvidence(Evidence):
    """Item 5: the first-10-minute validation gates and abort thresholds (playbook section 5).

    Thresholds may be stricter than the playbook, never looser: a looser abort rule is how a
    wrong estimate burns hours before anyone looks.
    """

    schema_name: ClassVar[str] = "validation_gates"
    thresholds_model: ClassVar[type[StrictModel]] = ValidationGateThresholds

    window_minutes: PositiveFloat
    min_throughput_ratio: Annotated[float, Field(gt=0, le=1)]
    min_gpu_util_pct: Percent
    max_mem_used_pct: Percent
    consecutive_windows: int = Field(ge=1)
    early_checkpoint_step: int | None = Field(default=None, ge=1)
    early_checkpoint_minutes: PositiveFloat | None = None
    expected_tokens_per_s: PositiveFloat

    def check(self, thresholds: Any, probe: ProbeCaps) -> None:
        t = thresholds
        assert isinstance(t, ValidationGateThresholds)
        if self.early_checkpoint_step is None and self.early_checkpoint_minutes is None:
            raise reject("early_checkpoint_step", None, "an int step or early_checkpoint_minutes",
                         "the playbook aborts on no metric movement by a pre-defined early checkpoint")
        limits: list[tuple[str, float, bool, str]] = [
            ("window_minutes", self.window_minutes, self.window_minutes <= t.max_window_minutes,
             f"<= {t.max_window_minutes:g}"),
            ("min_throughput_ratio", self.min_throughput_ratio,
             self.min_throughput_ratio >= t.min_throughput_ratio_floor, f">= {t.min_throughput_ratio_floor:g}"),
            ("min_gpu_util_pct", self.min_gpu_util_pct, self.min_gpu_util_pct >= t.min_gpu_util_pct_floor,
             f">= {t.min_gpu_util_pct_floor:g}"),
            ("max_mem_used_pct", self.max_mem_used_pct, self.max_mem_used_pct <= t.max_mem_used_pct_ceiling,
             f"<= {t.max_mem_used_pct_ceiling:g}"),
            ("consecutive_windows", self.consecutive_windows,
             self.consecutive_windows <= t.max_consecutive_windows, f"<= {t.max_consecutive_windows}"),
        ]
        for field, got, ok, allowed in limits:
            if not ok:
                raise reject(field, got, allowed, "abort thresholds may be stricter than the playbook, not looser")

    def summary(self, thresholds: Any) -> str:
        early = (f"step {self.early_checkpoint_step}" if self.early_checkpoint_step is not None
                 else f"{self.early_checkpoint_minutes:g} min")
        return (f"abort if < {self.min_throughput_ratio:.0%} of {self.expected_tokens_per_s:.4g} tokens/s for "
                f"{self.consecutive_windows} x {self.window_minutes:g} min, GPU util < {self.min_gpu_util_pct:g}%, "
                f"memory > {self.max_mem_used_pct:g}%, no movement by {early}")
