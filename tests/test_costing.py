"""Time, cost, setup/debug tax (with its 25% boundary) and the cheap-first decision rule, by hand.

A baseline on the same GPU makes the rate exact: 1000 tokens/s x scale 1.0 x efficiency 0.9 = 900.
"""

from __future__ import annotations

import pytest
from helpers_spec import spec

from gpu_preflight.tools.estimator.estimate import RunEstimate, estimate_run

BASELINE = {"baseline": {"tokens_per_s": 1000.0, "gpu": "RTX 4090"}}


def _run(setup: float, tokens: int = 9_720_000, dph: float | None = 2.0, **overheads: object) -> RunEstimate:
    s = spec() | BASELINE
    s["target"] = {"target_tokens": tokens}
    s["overheads"] = {"setup_debug_hours": setup, **overheads}
    return estimate_run(s, "RTX 4090", dph)


def test_three_scenarios_by_hand() -> None:
    e = _run(1.0)
    # 9,720,000 tokens at 1080 / 900 / 540 tokens/s = 2.5 / 3.0 / 5.0 h of training, + 1 h setup.
    train = e.train.train_hours
    assert (train.optimistic, train.base, train.pessimistic) == (2.5, 3.0, 5.0)
    assert (e.time_hours.optimistic, e.time_hours.base, e.time_hours.pessimistic) == (3.5, 4.0, 6.0)
    assert (e.cost_usd.optimistic, e.cost_usd.base, e.cost_usd.pessimistic) == (7.0, 8.0, 12.0)


def test_tax_boundary_at_25_percent() -> None:
    at = _run(1.0)  # 1 h of 4 h wall = 25%: still justified
    assert at.setup_debug_tax == 0.25 and at.tax.expensive_hardware_justified
    over = _run(1.01)  # 1.01 / 4.01 = 25.2%
    assert over.setup_debug_tax > 0.25 and not over.tax.expensive_hardware_justified
    assert "debug on a cheap GPU" in over.next_step or "25%" in over.next_step


def test_eval_overhead_from_runtime_and_frequency() -> None:
    # tokens per step = 1 x 1 x 1024; 9,720,000 / 1024 = 9492.2 steps -> 94 evals x 60 s = 1.567 h.
    e = _run(1.0, eval_runtime_s=60, eval_every_steps=100)
    assert e.train.eval_ckpt_overhead_hours == pytest.approx(94 * 60 / 3600, abs=1e-3)
    assert e.time_hours.base == pytest.approx(1 + 3 + 94 * 60 / 3600, abs=1e-3)


def test_no_price_means_null_cost_and_a_warning() -> None:
    e = _run(1.0, dph=None)
    assert e.cost_usd.base is None
    assert any("no price" in w for w in e.warnings)


def test_decision_rule_cheap_first_when_debugging_here_costs_more() -> None:
    # $2/h here x 1 h debug = $2.00 vs cheap $0.50 x 1 h + migration $2 x 0.5 h = $1.50 -> cheap first.
    rule = _run(1.0, cheap_dph_total_usd=0.5).tax.decision_rule
    assert rule is not None and rule.debug_on_cheap_first
    assert (rule.expensive_debug_usd, rule.cheap_probe_plus_migration_usd) == (2.0, 1.5)
    # 0.4 h: $0.80 here vs $0.20 + $1.00 = $1.20 -> debug here.
    rule = _run(0.4, cheap_dph_total_usd=0.5).tax.decision_rule
    assert rule is not None and not rule.debug_on_cheap_first


def test_epochs_and_steps_targets() -> None:
    s = spec() | BASELINE
    s["target"] = {"epochs": 2, "dataset_tokens": 4_860_000}
    assert estimate_run(s, "RTX 4090").train.target_tokens == 9_720_000
    s["target"] = {"target_steps": 100}
    assert estimate_run(s, "RTX 4090").train.target_tokens == 100 * 1024
