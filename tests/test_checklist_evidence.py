"""Evidence schemas and policy files: what passes, what is rejected, and the exact refusal text.

Pure checks (no database): every example validates under its policy, every band edge of the
playbooks (0.8, 0.9, 25%, 70/60/92) sits on the side the playbook says, and each consistency rule
names the field and the number that contradicts it.
"""

from __future__ import annotations

from typing import Any

import pytest

from gpu_preflight.checklist.evidence import SCHEMAS, parse_evidence
from gpu_preflight.checklist.examples import EXAMPLES, example
from gpu_preflight.checklist.policy import POLICY_NAMES, load_policies, load_policy
from gpu_preflight.tools.common.errors import PreflightError


def _parse(policy: str, item: str, evidence: Any) -> Any:
    loaded = load_policy(policy)
    entry = loaded.item(item)
    return parse_evidence(item, entry.schema, evidence, entry.thresholds, loaded.probe_caps)


def _refusal(policy: str, item: str, evidence: Any) -> str:
    with pytest.raises(PreflightError) as info:
        _parse(policy, item, evidence)
    return info.value.one_line()


def test_policies_load_with_the_playbook_items() -> None:
    policies = load_policies()
    assert set(policies) == set(POLICY_NAMES)
    pre = policies["pre-estimate"]
    assert [i.id for i in pre.items] == [
        "memory_fit", "throughput_prediction", "time_cost_table", "setup_debug_tax", "validation_gates"]
    assert pre.requires("probe") == ["memory_fit"]
    assert pre.requires("full") == [i.id for i in pre.items]
    run = policies["run-calibrated"]
    assert [i.id for i in run.items] == [
        "stage_a_checks", "probe_measurements", "live_estimate", "setup_debug_tax", "decision"]
    assert run.requires("probe") == ["stage_a_checks"]
    assert (run.probe_caps.min_steps, run.probe_caps.max_steps, run.probe_caps.max_minutes) == (20, 100, 15)
    for policy in policies.values():
        for item in policy.items:
            assert item.spec.evidence_schema in SCHEMAS
            assert "checklist_record" in item.spec.supplied_by


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_example_validates_under_its_policy(policy: str) -> None:
    for item in load_policy(policy).items:
        assert item.spec.evidence_schema in EXAMPLES
        _parse(policy, item.id, example(item.spec.evidence_schema))


@pytest.mark.parametrize(("basis_gb", "verdict"), [
    (64.0, "pass"), (64.2, "high_oom_risk"), (72.0, "high_oom_risk"), (72.2, "fail"), (100.0, "fail")])
def test_memory_verdict_bands_are_the_playbooks(basis_gb: float, verdict: str) -> None:
    ev = example("memory_fit") | {"gpu_peak_gb": basis_gb, "gpu_required_gb": basis_gb,
                                  "gpu_verdict_basis_gb": basis_gb, "gpu_verdict": verdict}
    parsed = _parse("pre-estimate", "memory_fit", ev)
    assert (parsed.failure(load_policy("pre-estimate").item("memory_fit").thresholds) is None) == (verdict != "fail")


def test_a_pass_verdict_that_contradicts_its_own_numbers_is_refused() -> None:
    ev = example("memory_fit") | {"gpu_verdict_basis_gb": 70.0, "gpu_verdict": "pass"}
    assert _refusal("pre-estimate", "memory_fit", ev) == (
        "memory_fit.gpu_verdict: got 'pass'; allowed: 'high_oom_risk' (gpu_verdict_basis_gb / gpu_ram_gb = "
        "70 / 80 = 0.875; pass <= 0.8, high_oom_risk <= 0.9, fail above)")


def test_memory_consistency_rules() -> None:
    low_basis = example("memory_fit") | {"gpu_verdict_basis_gb": 10.0}
    assert _refusal("pre-estimate", "memory_fit", low_basis).startswith(
        "memory_fit.gpu_verdict_basis_gb: got 10.0; allowed: >= min(gpu_peak_gb, gpu_required_gb) = 58.2")
    no_host = example("memory_fit") | {"cpu_ram_gb": None}
    assert _refusal("pre-estimate", "memory_fit", no_host).startswith(
        "memory_fit.cpu_verdict: got 'pass'; allowed: 'unknown' when cpu_ram_gb is null")
    _parse("pre-estimate", "memory_fit", no_host | {"cpu_verdict": "unknown"})
    over = example("memory_fit") | {"cpu_required_gb": 200.0, "cpu_verdict": "close_to_limit"}
    assert _refusal("pre-estimate", "memory_fit", over).startswith("memory_fit.cpu_verdict: got 'close_to_limit'")


def test_types_units_and_typos_are_refused_with_the_field() -> None:
    assert _refusal("pre-estimate", "memory_fit", example("memory_fit") | {"gpu_ram_gb": "80"}) == (
        "memory_fit.gpu_ram_gb: got '80'; allowed: Input should be a valid number")
    assert _refusal("pre-estimate", "memory_fit", example("memory_fit") | {"gpu_ram_gb": float("nan")}).startswith(
        "memory_fit.gpu_ram_gb: got nan; allowed: Input should be a finite number")
    typo = example("memory_fit") | {"gpu_ram": 80}
    assert _refusal("pre-estimate", "memory_fit", typo).startswith(
        "memory_fit.gpu_ram: got 80; allowed: Extra inputs are not permitted")
    assert _refusal("run-calibrated", "stage_a_checks", example("stage_a_checks") | {"disk_ok": 1}).startswith(
        "stage_a_checks.disk_ok: got 1; allowed: Input should be a valid boolean")
    assert _refusal("pre-estimate", "memory_fit", ["gpu_ram_gb", 80]).startswith(
        "memory_fit: got ['gpu_ram_gb', 80]; allowed: a JSON object with fields gpu_ram_gb, gpu_peak_gb")


def test_throughput_rules() -> None:
    cold = {"method": "cold", "tokens_per_s": 2000.0, "confidence": "high"}
    assert _refusal("pre-estimate", "throughput_prediction", cold).startswith(
        "throughput_prediction.confidence: got 'high'; allowed: 'low' when method is 'cold'")
    wrong_product = example("throughput_prediction") | {"tokens_per_s": 2700.0}
    assert "baseline_tokens_per_s * scale_ratio * efficiency_factor = 2430" in _refusal(
        "pre-estimate", "throughput_prediction", wrong_product)


def test_time_cost_rules() -> None:
    ev = example("time_cost_table")
    unordered = ev | {"time_hours": {"optimistic": 13.0, "base": 12.0, "pessimistic": 18.0}}
    assert _refusal("pre-estimate", "time_cost_table", unordered).startswith(
        "time_cost_table.time_hours: got {'optimistic': 13.0, 'base': 12.0, 'pessimistic': 18.0}; "
        "allowed: optimistic <= base <= pessimistic")
    wrong_cost = ev | {"cost_usd": {"optimistic": 25.0, "base": 36.0, "pessimistic": 45.0}}
    assert _refusal("pre-estimate", "time_cost_table", wrong_cost).startswith(
        "time_cost_table.cost_usd.base: got 36.0; allowed: time_hours.base * dph_total_usd = 30")
    row = ev["options"][0] | {"dph_total_usd": 3.0}
    assert _refusal("pre-estimate", "time_cost_table", ev | {"options": [row]}).startswith(
        "time_cost_table.options[0].cost_usd.optimistic: got 25.0")


def test_tax_rules_at_the_25_percent_edge() -> None:
    edge = {"setup_debug_hours": 3.0, "wall_hours": 12.0, "setup_debug_tax": 0.25, "expensive_hardware_justified": True}
    _parse("pre-estimate", "setup_debug_tax", edge)
    high = edge | {"setup_debug_hours": 4.0, "setup_debug_tax": 0.3333}
    assert _refusal("pre-estimate", "setup_debug_tax", high).startswith(
        "setup_debug_tax.expensive_hardware_justified: got True; allowed: False")
    percent = edge | {"setup_debug_tax": 25.0}
    assert _refusal("pre-estimate", "setup_debug_tax", percent).startswith(
        "setup_debug_tax.setup_debug_tax: got 25.0; allowed: Input should be less than or equal to 1")
    off = edge | {"setup_debug_tax": 0.2}
    assert _refusal("pre-estimate", "setup_debug_tax", off).startswith(
        "setup_debug_tax.setup_debug_tax: got 0.2; allowed: setup_debug_hours / wall_hours = 0.2500")


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("min_throughput_ratio", 0.5, ">= 0.7"), ("min_gpu_util_pct", 40.0, ">= 60"),
    ("max_mem_used_pct", 97.0, "<= 92"), ("consecutive_windows", 3, "<= 2"), ("window_minutes", 30.0, "<= 10")])
def test_validation_gates_may_not_be_looser_than_the_playbook(field: str, value: float, allowed: str) -> None:
    assert _refusal("pre-estimate", "validation_gates", example("validation_gates") | {field: value}) == (
        f"validation_gates.{field}: got {value!r}; allowed: {allowed} "
        "(abort thresholds may be stricter than the playbook, not looser)")
    stricter = example("validation_gates") | {"min_throughput_ratio": 0.8, "max_mem_used_pct": 90.0}
    _parse("pre-estimate", "validation_gates", stricter)
    no_early = example("validation_gates") | {"early_checkpoint_step": None}
    assert _refusal("pre-estimate", "validation_gates", no_early).startswith("validation_gates.early_checkpoint_step")


def test_probe_and_live_estimate_rules() -> None:
    probe = example("probe_measurements")
    assert _refusal("run-calibrated", "probe_measurements", probe | {"steps_measured": 150}) == (
        "probe_measurements.steps_measured: got 150; allowed: <= 100 (the probe's step cap)")
    assert _refusal("run-calibrated", "probe_measurements", probe | {"steps_measured": 10}).startswith(
        "probe_measurements.steps_measured: got 10; allowed: 20..100")
    _parse("run-calibrated", "probe_measurements", probe | {"steps_measured": 10, "time_capped": True})
    slow = probe | {"median_step_time_s": 30.0}
    assert "longer than the 8 min probe" in _refusal("run-calibrated", "probe_measurements", slow)
    live = example("live_estimate")
    wrong = live | {"time_hours": {"optimistic": 5.167, "base": 7.0, "pessimistic": 9.333},
                    "cost_usd": {"optimistic": 12.92, "base": 17.5, "pessimistic": 23.33}}
    assert _refusal("run-calibrated", "live_estimate", wrong).startswith(
        "live_estimate.time_hours.base: got 7.0; allowed: setup + train + eval = 6 h")


def test_decision_rules() -> None:
    switch = {"decision": "switch", "reason": "util 45% on the 4090", "decided_within_minutes": 11.0}
    assert _refusal("run-calibrated", "decision", switch).startswith(
        "decision.switch_to_offer: got None; allowed: the offer (id or GPU name) to switch to")
    blank = example("decision") | {"reason": "   "}
    assert _refusal("run-calibrated", "decision", blank).startswith("decision.reason: got '   '")
