"""Time, cost and the setup/debug tax (pre-estimation §3, run-calibrated stages C-D).

* ``train_hours = target_tokens / (tokens_s * 3600)`` per scenario;
* ``wall_hours = setup_debug_hours + train_hours + eval_ckpt_overhead_hours``;
* ``cost_usd = wall_hours * dph_total``;
* ``setup_debug_tax = setup_debug_hours / wall_hours`` on the base scenario; above 25% expensive
  hardware is not yet justified;
* decision rule: debug on cheap hardware first when ``expensive_rate * expected_debug_hours``
  exceeds a cheap probe (``cheap_rate * expected_debug_hours``) plus the migration
  (``expensive_rate * migration_hours``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from gpu_preflight.tools.estimator.spec import RunSpec
from gpu_preflight.tools.estimator.throughput import Scenarios

TAX_LIMIT = 0.25
DEFAULT_SETUP_DEBUG_HOURS = 1.0


class DecisionRule(BaseModel):
    expensive_debug_usd: float = Field(description="expensive_rate * expected_debug_hours")
    cheap_probe_plus_migration_usd: float = Field(description="cheap_rate * debug_hours + expensive_rate * migration")
    debug_on_cheap_first: bool
    reason: str


class SetupTax(BaseModel):
    setup_debug_hours: float
    wall_hours: float
    setup_debug_tax: float
    expensive_hardware_justified: bool
    reason: str
    decision_rule: DecisionRule | None = None


class TimeCost(BaseModel):
    target_tokens: float
    target_steps: float
    train_hours: Scenarios
    eval_ckpt_overhead_hours: float
    setup_debug_hours: float
    time_hours: Scenarios
    cost_usd: Scenarios
    dph_total_usd: float | None
    tax: SetupTax


def target_tokens(spec: RunSpec) -> float:
    tg, t = spec.target, spec.training
    if tg.target_tokens is not None:
        return float(tg.target_tokens)
    if tg.target_steps is not None:
        return float(tg.target_steps * t.tokens_per_step)
    assert tg.epochs is not None and tg.dataset_tokens is not None  # the spec validator guarantees it
    return float(tg.epochs * tg.dataset_tokens)


def eval_overhead_hours(spec: RunSpec, steps: float) -> float:
    o = spec.overheads
    if o.eval_ckpt_overhead_hours is not None:
        return o.eval_ckpt_overhead_hours
    if o.eval_runtime_s is not None and o.eval_every_steps is not None:
        return (steps // o.eval_every_steps) * o.eval_runtime_s / 3600
    return 0.0


def setup_tax(setup_hours: float, wall_hours: float, dph: float | None, spec: RunSpec) -> SetupTax:
    tax = setup_hours / wall_hours if wall_hours > 0 else 0.0
    justified = tax <= TAX_LIMIT
    reason = (
        f"setup/debug is {tax:.0%} of wall time (limit 25%): "
        + ("expensive hardware is justified" if justified else "not ready for expensive hardware; debug on a cheap GPU")
    )
    rule = None
    cheap = spec.overheads.cheap_dph_total_usd
    if cheap is not None and dph is not None:
        expensive = dph * setup_hours
        alternative = cheap * setup_hours + dph * spec.overheads.migration_hours
        first = expensive > alternative
        rule = DecisionRule(
            expensive_debug_usd=round(expensive, 2), cheap_probe_plus_migration_usd=round(alternative, 2),
            debug_on_cheap_first=first,
            reason=(f"${expensive:.2f} debugging here vs ${alternative:.2f} on the cheap GPU plus migration: "
                    + ("debug on cheap hardware first, then move up" if first else "debug here")),
        )
    return SetupTax(setup_debug_hours=setup_hours, wall_hours=round(wall_hours, 3), setup_debug_tax=round(tax, 4),
                    expensive_hardware_justified=justified, reason=reason, decision_rule=rule)


def time_and_cost(spec: RunSpec, tokens_per_s: Scenarios, dph_total_usd: float | None) -> TimeCost:
    tokens = target_tokens(spec)
    steps = tokens / spec.training.tokens_per_step
    setup = spec.overheads.setup_debug_hours
    setup = DEFAULT_SETUP_DEBUG_HOURS if setup is None else setup
    evals = eval_overhead_hours(spec, steps)
    train: dict[str, float | None] = {}
    wall: dict[str, float | None] = {}
    cost: dict[str, float | None] = {}
    for name in ("optimistic", "base", "pessimistic"):
        rate = getattr(tokens_per_s, name)
        hours = tokens / (rate * 3600)
        train[name] = round(hours, 3)
        wall[name] = round(setup + hours + evals, 3)
        cost[name] = round((setup + hours + evals) * dph_total_usd, 2) if dph_total_usd is not None else None
    base_wall = setup + tokens / (tokens_per_s.base * 3600) + evals if tokens_per_s.base else 0.0
    return TimeCost(
        target_tokens=tokens, target_steps=round(steps, 1), train_hours=Scenarios(**train),
        eval_ckpt_overhead_hours=round(evals, 3), setup_debug_hours=setup, time_hours=Scenarios(**wall),
        cost_usd=Scenarios(**cost), dph_total_usd=dph_total_usd, tax=setup_tax(setup, base_wall, dph_total_usd, spec),
    )
