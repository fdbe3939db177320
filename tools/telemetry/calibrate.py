"""Calibrate from a probe and decide keep / switch / kill (run-calibrated.md stages B-D).

Why this exists: a pre-estimate is a guess; a 20-100 step probe on the real box is a measurement.
From the probe's median step time (or tokens/s) the rest of the run is re-estimated in the
playbook's three scenarios, the setup/debug tax is recomputed with the setup time actually spent,
and the same measurement is scaled to other offers (the baseline-scaled method, with the probe as
the baseline), so "would another machine finish materially sooner or cheaper" is answered with
numbers that include moving there.

Stage C, exactly as written (``step_s`` is steps per second; scenarios scale the *rate*)::

    train_hours = target_steps / (step_s * factor * 3600)     factor 1.2 / 1.0 / 0.6
    wall_hours  = setup_debug_hours + train_hours + eval_overhead_hours
    cost_usd    = wall_hours * dph_total

Stage D: ``setup_debug_tax = setup_debug_hours / wall_hours`` (base); above 25% expensive hardware
is not justified yet, so switching to a pricier $/h is ruled out until the run path is stable.

Decision rules, first match wins (:mod:`.calibrate_rules`; each answer carries the rule and its numbers):

0. ``kill`` when the run's heartbeat says the probe is dead (non-zero exit, a signal, hung): a dead
   probe is never ``keep``, whatever its numbers were before it died.
1. ``wait`` when the probe is too short to judge (under the policy's minimum steps, no time cap, no
   complete window): says what is missing.
2. ``kill`` when a trigger fired (the assessment's sustained triggers, or the probe's own GPU
   utilization under 60%): pause, reclassify the bottleneck, change one variable, relaunch.
3. ``switch`` when another offer, including migration (setting up again + ``migration_hours``,
   billed at that offer's price), is at least ``SWITCH_MIN_GAIN`` (20%) better on the chosen
   priority; with ``balanced`` priority the other measure may be at most ``SWITCH_MAX_LOSS`` (10%)
   worse.
4. ``keep`` otherwise: on track, nothing materially better.

Figures are kept unrounded in the answer (the checklist checks cost = hours x $/h within 1%);
rounding happens only where they are printed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gpu_preflight.tools.common.errors import PreflightError, from_validation_error
from gpu_preflight.tools.estimator.costing import TAX_LIMIT, eval_overhead_hours, target_tokens
from gpu_preflight.tools.estimator.spec import RunSpec, parse_spec
from gpu_preflight.tools.estimator.throughput import SCENARIO_FACTORS, Scenarios
from gpu_preflight.tools.offers.records import OfferSet

from .assess import Assessment
from .calibrate_rows import SCENARIOS, OfferOption, TaxAnswer, decide_rest, scale_to_offers
from .calibrate_rules import (
    SWITCH_MIN_GAIN,
    Decision,
    Priority,
    dead_probe,
    decide_wait,
    full_rule,
    pct,
    policy_min_steps,
    switch_rule,
    too_short,
)
from .triggers import TriggerResult

__all__ = ["Calibration", "Decision", "OfferOption", "Priority", "Probe", "TaxAnswer", "calibrate", "parse_probe",
           "switch_rule"]

PROBE_LOW_UTIL_PCT = 60.0
PROBE_HIGH_VRAM_FRAC = 0.92
MAX_OPTIONS_SHOWN = 5


class Probe(BaseModel):
    """Stage B: what a probe measured on the real instance (units in every name)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    gpu: str = Field(min_length=1, max_length=100, description="Catalogue name of the GPU the probe ran on.")
    num_gpus: int | None = Field(default=None, ge=1, le=4096, description="Default: the spec's num_gpus.")
    dph_total_usd: float | None = Field(default=None, gt=0, lt=10_000, description="$/h of the probe machine.")
    offer_id: int | None = Field(default=None, description="The offer the probe runs on (left out of switches).")
    median_step_time_s: float | None = Field(default=None, ge=1e-6, le=1e6, description="Median s per optimizer step.")
    tokens_per_s: float | None = Field(default=None, ge=1e-3, le=1e12, description="Median tokens/s, whole job.")
    steps_measured: int = Field(ge=1, le=10**9, description="Steps the median covers (20-100).")
    steps_done: int = Field(default=0, ge=0, le=10**12, description="Target steps done (0: the probe is relaunched).")
    eval_runtime_s: float | None = Field(default=None, ge=0, le=10**7)
    eval_every_steps: int | None = Field(default=None, ge=1, le=10**12, description="Default: the spec's.")
    gpu_util_pct: float | None = Field(default=None, ge=0, le=100)
    mem_util_pct: float | None = Field(default=None, ge=0, le=100)
    vram_used_gb: float | None = Field(default=None, gt=0, le=1e6, description="Peak VRAM used, GB (1e9 bytes).")
    gpu_ram_gb: float | None = Field(default=None, gt=0, le=1e6)
    transfer_mbps: float | None = Field(default=None, gt=0, le=1e9, description="Transfer speed to artifacts.")
    setup_debug_hours_so_far: float = Field(default=0.0, ge=0, le=10_000)
    probe_minutes: float | None = Field(default=None, gt=0, le=1e7, description="How long the probe ran.")
    time_capped: bool = False
    minutes_since_launch: float | None = Field(default=None, ge=0, le=1e7, description="Default: probe_minutes.")
    predicted_tokens_per_s: float | None = Field(default=None, gt=0, le=1e12, description="The pre-estimate's.")
    resetup_hours: float | None = Field(
        default=None, ge=0, le=10_000, description="Setting a new machine up again; default setup_debug_hours_so_far."
    )

    @model_validator(mode="after")
    def _rate(self) -> Probe:
        if self.median_step_time_s is None and self.tokens_per_s is None:
            raise ValueError("give median_step_time_s or tokens_per_s (or both)")
        return self


class Comparison(BaseModel):
    """The probe against the pre-estimate: ``ratio`` is measured / predicted tokens/s."""

    predicted_tokens_per_s: float | None
    predicted_source: str
    measured_tokens_per_s: float
    ratio: float | None


class Calibration(BaseModel):
    """Stages B-D and the decision, from one probe."""

    gpu: str
    num_gpus: int
    dph_total_usd: float | None
    step_time_s: float
    steps_per_s: float
    tokens_per_s: float
    tokens_per_step: int
    comparison: Comparison
    target_steps: int
    steps_done: int
    steps_remaining: int
    eval_overhead_hours: float = Field(description="For the whole target.")
    eval_remaining_hours: float
    time_hours: Scenarios = Field(description="Wall hours of the whole run: setup so far + train + eval.")
    cost_usd: Scenarios
    time_to_finish_hours: Scenarios
    cost_to_finish_usd: Scenarios
    cost_so_far_usd: float | None
    tax: TaxAnswer
    options: list[OfferOption]
    options_considered: int
    offers_source: str | None
    decision: Decision
    warnings: list[str]
    assumptions: list[str]


def _r(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


def _scen(values: Mapping[str, float | None], digits: int) -> Scenarios:
    """Scenarios for the answer; the evidence recomputes cost from these hours (calibrate_evidence)."""
    return Scenarios(**{k: _r(v, digits) for k, v in values.items()})


def parse_probe(data: Probe | dict[str, Any]) -> Probe:
    """Validate probe measurements into a :class:`Probe`, or raise one clear error."""
    if isinstance(data, Probe):
        return data
    if not isinstance(data, dict):
        raise PreflightError("probe", data, "an object with gpu, steps_measured and median_step_time_s or tokens_per_s")
    try:
        return Probe.model_validate(data)
    except ValidationError as exc:
        from gpu_preflight.tools.telemetry.probe_schema import problems_hint

        first = from_validation_error(exc, "probe")  # every problem in the hint, not "and 1 more problem"
        raise PreflightError(first.field, first.got, first.allowed, problems_hint(exc, data)) from None


def _pre_estimate(run: RunSpec, probe: Probe) -> tuple[float | None, str]:
    """What the estimate promised for the probe's GPU: given, else ``estimate_run`` on the spec."""
    if probe.predicted_tokens_per_s is not None:
        return probe.predicted_tokens_per_s, "probe.predicted_tokens_per_s"
    from gpu_preflight.tools.estimator.estimate import estimate_run

    try:
        e = estimate_run(run, probe.gpu)
    except PreflightError as exc:
        return None, f"no pre-estimate: {exc.one_line()}"
    n = run.training.num_gpus
    return e.throughput.tokens_per_s.base, f"estimate_run on {n}x {probe.gpu} ({e.throughput.method})"


def _eval_hours(run: RunSpec, probe: Probe, target: int, done: int, notes: list[str]) -> tuple[float, float]:
    """(whole target, still to run) eval/checkpoint hours: measured runtime first, then the spec."""
    every = probe.eval_every_steps or run.overheads.eval_every_steps
    if probe.eval_runtime_s is not None and every:
        per = probe.eval_runtime_s / 3600
        return (target // every) * per, (target // every - done // every) * per
    if probe.eval_runtime_s is not None:
        notes.append("eval_runtime_s measured but no eval_every_steps (probe or spec): eval overhead from the spec")
    total = eval_overhead_hours(run, float(target))
    if total == 0:
        notes.append("no eval runtime measured and none in the spec: eval overhead 0")
    return total, total * (target - done) / target if target else 0.0


def _fired_from(assessment: Assessment | None, fired: Sequence[TriggerResult], probe: Probe) -> list[str]:
    reasons = [f"{r.name}: {r.message}" for r in fired if r.status == "fired"]
    if assessment is not None:
        reasons += [f"{r.name}: {r.message}" for r in assessment.triggers if r.status == "fired"]
    if probe.gpu_util_pct is not None and probe.gpu_util_pct < PROBE_LOW_UTIL_PCT:
        reasons.append(
            f"gpu_util_low: probe averaged {probe.gpu_util_pct:g}% GPU utilization (< {PROBE_LOW_UTIL_PCT:g}%)"
            " while the job was active"
        )
    return list(dict.fromkeys(reasons))


def calibrate(
    spec: RunSpec | dict[str, Any],
    probe: Probe | dict[str, Any],
    *,
    offers: OfferSet | None = None,
    dph_total_usd: float | None = None,
    assessment: Assessment | None = None,
    fired: Sequence[TriggerResult] = (),
    priority: Priority = "balanced",
    heartbeat: dict[str, Any] | None = None,
    min_steps: int | None = None,
) -> Calibration:
    """Re-estimate the rest of the run from ``probe``, scale it to ``offers`` and decide.

    ``heartbeat`` is the run's heartbeat (a dict as ``heartbeat`` returns it): asked first, so a
    probe that exited non-zero, was killed or hung is ``kill`` whatever it measured before.
    ``min_steps`` is the policy's probe minimum (default: the run-calibrated policy's): fewer steps (no time
    cap, no full window) is ``wait``.
    """
    min_steps = policy_min_steps() if min_steps is None else min_steps
    run, p = parse_spec(spec), parse_probe(probe)
    if priority not in ("balanced", "cost", "time"):
        raise PreflightError("priority", priority, "balanced, cost or time")
    dph = dph_total_usd if dph_total_usd is not None else p.dph_total_usd
    if dph is not None and not (0 < dph < 10_000):
        raise PreflightError("dph_total_usd", dph, "a price in USD per hour, > 0 and < 10000")
    warnings: list[str] = []
    assumptions: list[str] = []
    num_gpus = p.num_gpus or run.training.num_gpus
    if num_gpus != run.training.num_gpus:
        warnings.append(f"probe ran on {num_gpus} GPUs, the spec plans {run.training.num_gpus}:"
                        " tokens per step come from the spec")
    per_step = run.training.tokens_per_step
    step_s = p.median_step_time_s if p.median_step_time_s is not None else per_step / (p.tokens_per_s or 1.0)
    tokens_s = p.tokens_per_s if p.tokens_per_s is not None else per_step / step_s
    rate = 1.0 / step_s
    target = math.ceil(target_tokens(run) / per_step)
    if p.steps_done > target:
        raise PreflightError("probe.steps_done", p.steps_done, f"<= the target's {target} steps")
    done = p.steps_done
    remaining = target - done
    if done == 0:
        assumptions.append("steps_done 0: the full run starts from step 0 (set steps_done when it continues)")
    eval_total, eval_left = _eval_hours(run, p, target, done, assumptions)
    setup = p.setup_debug_hours_so_far
    train_all = {k: target / (rate * f * 3600) for k, f in SCENARIO_FACTORS.items()}
    train_left = {k: remaining / (rate * f * 3600) for k, f in SCENARIO_FACTORS.items()}
    wall = {k: setup + train_all[k] + eval_total for k in SCENARIOS}
    finish = {k: train_left[k] + eval_left for k in SCENARIOS}
    cost: dict[str, float | None] = {k: wall[k] * dph if dph else None for k in SCENARIOS}
    cost_finish: dict[str, float | None] = {k: finish[k] * dph if dph else None for k in SCENARIOS}
    if dph is None:
        warnings.append("no price: costs are null and switches are judged on time only (pass dph_total_usd)")
    spent = setup + done * step_s / 3600
    assumptions.append("cost so far = (setup/debug hours + steps done x step time) x $/h")
    tax_value = setup / wall["base"] if wall["base"] > 0 else 0.0
    tax = TaxAnswer(setup_debug_hours=round(setup, 4), wall_hours=round(wall["base"], 4),
                    setup_debug_tax=round(tax_value, 4), expensive_hardware_justified=tax_value <= TAX_LIMIT)
    predicted, source = _pre_estimate(run, p)
    ratio = tokens_s / predicted if predicted else None
    if ratio is not None and ratio < 0.7:
        warnings.append(f"probe at {pct(ratio)} of the pre-estimate ({tokens_s:,.0f} vs {predicted:,.0f} tokens/s):"
                        " the live estimate replaces it; a full run below 70% for 2 windows fires the trigger")
    if p.vram_used_gb and p.gpu_ram_gb and p.vram_used_gb > PROBE_HIGH_VRAM_FRAC * p.gpu_ram_gb:
        warnings.append(f"VRAM peak {p.vram_used_gb:.1f} of {p.gpu_ram_gb:.1f} GB (> 92%): OOM risk;"
                        " watch the memory trigger")
    stay_time, stay_cost = finish["base"], (finish["base"] * dph if dph else None)
    options: list[OfferOption] = []
    considered = 0
    offers_source = offers.source if offers is not None else None
    if offers is not None and remaining > 0:
        options, considered = scale_to_offers(run, p, offers, tokens_s, num_gpus, remaining, eval_left,
                                               stay_time, stay_cost, tax.expensive_hardware_justified, dph,
                                               priority, warnings)
    kills = _fired_from(assessment, fired, p)
    numbers: dict[str, Any] = {"tokens_per_s": tokens_s, "predicted_tokens_per_s": predicted, "ratio": ratio,
                               "steps_measured": p.steps_measured, "min_steps": min_steps,
                               "time_to_finish_hours": stay_time, "cost_to_finish_usd": stay_cost,
                               "setup_debug_tax": tax_value, "switch_min_gain": SWITCH_MIN_GAIN}
    rule = full_rule(priority, min_steps)
    dead = dead_probe(heartbeat)
    if dead is not None:
        decision = Decision(decision="kill", rule=rule, numbers=numbers | dead[1],
                            reason=f"{dead[0]}: a dead probe measures nothing more; read the log tail, fix, relaunch")
    elif too_short(p.steps_measured, min_steps, p.time_capped, assessment):
        decision = decide_wait(p.steps_measured, min_steps, numbers, rule)
    else:
        decision = decide_rest(kills, options, remaining, tokens_s, ratio, stay_time, stay_cost, tax, priority,
                           assessment, numbers, rule)
    return Calibration(
        gpu=p.gpu, num_gpus=num_gpus, dph_total_usd=dph, step_time_s=round(step_s, 6), steps_per_s=round(rate, 6),
        tokens_per_s=round(tokens_s, 3), tokens_per_step=per_step,
        comparison=Comparison(predicted_tokens_per_s=predicted, predicted_source=source,
                              measured_tokens_per_s=round(tokens_s, 3), ratio=_r(ratio, 6)),
        target_steps=target, steps_done=done, steps_remaining=remaining, eval_overhead_hours=round(eval_total, 4),
        eval_remaining_hours=round(eval_left, 4), time_hours=_scen(wall, 4), cost_usd=_scen(cost, 2),
        time_to_finish_hours=_scen(finish, 4), cost_to_finish_usd=_scen(cost_finish, 2),
        cost_so_far_usd=round(spent * dph, 2) if dph else None, tax=tax,
        options=sorted(options, key=lambda o: (not o.qualifies, -o.time_gain_frac - (o.cost_gain_frac or 0)))[
            :MAX_OPTIONS_SHOWN],
        options_considered=considered, offers_source=offers_source, decision=decision, warnings=warnings,
        assumptions=assumptions,
    )
