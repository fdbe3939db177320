"""The run-calibrated checklist end to end: Stage A opens a capped probe, B-D and a decision open full.

Also the three decisions: keep opens the full gate, kill keeps it closed, switch opens it for the
named offer only; a decision after the policy's 15 minutes is a failed item.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_preflight.checklist import checklist_report, checklist_status, gate, record_evidence, start_checklist
from gpu_preflight.checklist.examples import example
from gpu_preflight.tools.common.errors import PreflightError

SPEC = {"model": {"name": "qwen2.5-7b"}, "training": {"method": "lora", "micro_batch": 8}}


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PREFLIGHT_STATE_DIR", str(tmp_path))
    return tmp_path


def _calibrated(decision: dict[str, object] | None = None) -> str:
    """A run-calibrated checklist with Stage A-D recorded and ``decision`` (default: the keep example)."""
    view = start_checklist("qwen-lora", "run-calibrated", spec=SPEC)
    record_evidence(view.id, "stage_a_checks", example("stage_a_checks"), source="estimate_memory")
    record_evidence(view.id, "probe_measurements", example("probe_measurements"), source="calibrate")
    record_evidence(view.id, "live_estimate", example("live_estimate"), source="calibrate")
    record_evidence(view.id, "setup_debug_tax", example("setup_debug_tax"), source="calibrate")
    record_evidence(view.id, "decision", decision or example("decision"), source="run_check")
    return view.id


def test_run_calibrated_walk(state_dir: Path) -> None:
    view = start_checklist("qwen-lora", "run-calibrated", spec=SPEC)
    assert view.gates["probe"].model_dump() | {"why": ""} == {
        "requires": ["stage_a_checks"], "why": "", "probe_min_steps": 20, "probe_max_steps": 100,
        "probe_max_minutes": 15.0}
    with pytest.raises(PreflightError):
        gate.check(view.id, "probe")

    # A false Stage A check fails the item: no probe.
    bad_disk = example("stage_a_checks") | {"disk_ok": False}
    state = record_evidence(view.id, "stage_a_checks", bad_disk)
    assert (state.state, state.reason) == ("failed", "Stage A check false: disk_ok")
    assert checklist_status(view.id).next_step.startswith("Fix stage_a_checks (Stage A check false: disk_ok)")

    record_evidence(view.id, "stage_a_checks", example("stage_a_checks"), source="plan_options")
    status = checklist_status(view.id)
    assert status.gate.model_dump() == {"probe": True, "full": False}
    assert status.missing == ["probe_measurements", "live_estimate", "setup_debug_tax", "decision"]
    probe = gate.check(view.id, "probe")
    assert (probe.allowed, probe.probe_min_steps, probe.probe_max_steps, probe.probe_max_minutes) == (
        True, 20, 100, 15.0)

    # A probe longer than its cap is refused, exactly.
    with pytest.raises(PreflightError) as refused:
        record_evidence(view.id, "probe_measurements", example("probe_measurements") | {"steps_measured": 150},
                        source="calibrate")
    assert refused.value.one_line() == (
        "probe_measurements.steps_measured: got 150; allowed: <= 100 (the probe's step cap)")

    record_evidence(view.id, "probe_measurements", example("probe_measurements"), source="calibrate")
    record_evidence(view.id, "live_estimate", example("live_estimate"), source="calibrate")
    record_evidence(view.id, "setup_debug_tax", example("setup_debug_tax"), source="calibrate")
    with pytest.raises(PreflightError) as no_decision:
        gate.check(view.id, "full")
    assert no_decision.value.one_line().startswith("gate.full: got ['decision']")
    record_evidence(view.id, "decision", example("decision"), source="run_check")
    status = checklist_status(view.id)
    assert status.gate.model_dump() == {"probe": True, "full": True}
    assert {i.state for i in status.items} == {"done"}
    full = gate.check(view.id, "full")
    assert (full.open, full.allowed, full.offer) == (True, True, None)
    report = checklist_report(view.id)
    for needle in ("Live throughput 2 steps/s for 36000 target steps.", "| full | **open** |",
                   "keep after 12 min"):
        assert needle in report, needle


def test_kill_keeps_the_full_gate_closed(state_dir: Path) -> None:
    kill = {"decision": "kill", "reason": "loss is NaN after 40 steps", "decided_within_minutes": 6.0}
    checklist_id = _calibrated(kill)
    status = checklist_status(checklist_id)
    decision = next(i for i in status.items if i.id == "decision")
    assert (decision.state, decision.reason) == ("failed", "decision kill: loss is NaN after 40 steps")
    assert status.gate.model_dump() == {"probe": True, "full": False}
    with pytest.raises(PreflightError) as closed:
        gate.check(checklist_id, "full")
    assert closed.value.one_line().startswith("gate.full: got ['decision']")


def test_switch_opens_the_full_gate_for_the_new_offer_only(state_dir: Path) -> None:
    switch = {"decision": "switch", "reason": "input bound at 45% util; move to the 32-core host",
              "decided_within_minutes": 14.0, "switch_to_offer": "offer-8812 H100 SXM"}
    checklist_id = _calibrated(switch)
    status = checklist_status(checklist_id)
    assert status.gate.full is True and status.full_only_for_offer == "offer-8812 H100 SXM"
    assert "offer-8812 H100 SXM only" in status.next_step
    with pytest.raises(PreflightError) as elsewhere:
        gate.check(checklist_id, "full", offer="offer-1234 RTX 4090")
    assert "launch the full run there, not on offer-1234 RTX 4090" in elsewhere.value.one_line()
    allowed = gate.check(checklist_id, "full", offer="offer-8812 H100 SXM")
    assert (allowed.open, allowed.offer) == (True, "offer-8812 H100 SXM")
    unnamed = gate.check(checklist_id, "full")
    assert unnamed.offer == "offer-8812 H100 SXM"


def test_a_late_decision_is_a_failed_item(state_dir: Path) -> None:
    late = example("decision") | {"decided_within_minutes": 25.0}
    checklist_id = _calibrated(late)
    decision = next(i for i in checklist_status(checklist_id).items if i.id == "decision")
    assert decision.state == "failed"
    assert decision.reason == "decided after 25 min; the policy wants keep/switch/kill within 15"
