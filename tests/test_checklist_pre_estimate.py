"""The pre-estimate checklist end to end through the Python API, on a real SQLite file.

Start, records that fill items (from estimator tools and by hand), a rejected inconsistent record,
staleness after a spec change, the gate closed then open for probe then for full, an override with
its reason in the audit, and the markdown report.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from gpu_preflight.checklist import (
    checklist_report,
    checklist_status,
    gate,
    record_evidence,
    spec_hash,
    start_checklist,
    update_spec,
)
from gpu_preflight.checklist.examples import example
from gpu_preflight.tools.common.errors import PreflightError

SPEC = {"model": {"name": "llama-3.1-8b"}, "training": {"method": "full", "micro_batch": 4, "seq_len": 4096}}
SPEC_MB8 = {"model": {"name": "llama-3.1-8b"}, "training": {"method": "full", "micro_batch": 8, "seq_len": 4096}}


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PREFLIGHT_STATE_DIR", str(tmp_path))
    return tmp_path


def _states(checklist_id: str) -> dict[str, str]:
    return {item.id: item.state for item in checklist_status(checklist_id).items}


def test_pre_estimate_walk(state_dir: Path) -> None:
    view = start_checklist("llama8b-sft", "pre-estimate", spec=SPEC)
    assert view.id.startswith("ck-") and view.spec_hash == spec_hash(SPEC)[:12]
    assert view.items[0].id == "memory_fit"
    assert view.gates["probe"].probe_max_steps == 200
    status = checklist_status(view.id)
    assert status.gate.probe is False and status.gate.full is False
    assert set(_states(view.id).values()) == {"missing"}
    assert status.next_step.startswith("Supply memory_fit")

    # Closed gate: refused, with what is missing and the next step; the refusal is recorded.
    with pytest.raises(PreflightError) as closed:
        gate.check(view.id, "probe")
    assert closed.value.one_line().startswith("gate.probe: got ['memory_fit']; allowed: all of memory_fit done")
    assert "Supply memory_fit" in closed.value.one_line()

    # The estimator attaches memory fit: probe opens (with the policy's caps), full stays closed.
    state = record_evidence(view.id, "memory_fit", example("memory_fit"), source="estimate_memory", spec=SPEC)
    assert (state.state, state.source) == ("done", "estimate_memory")
    assert checklist_status(view.id).gate.model_dump() == {"probe": True, "full": False}
    probe = gate.check(view.id, "probe")
    assert (probe.open, probe.allowed, probe.overridden) == (True, True, False)
    assert (probe.probe_min_steps, probe.probe_max_steps, probe.probe_max_minutes) == (50, 200, 30.0)
    with pytest.raises(PreflightError):
        gate.check(view.id, "full")

    # An inconsistent record is refused with the exact problem and stores nothing.
    bad = example("memory_fit") | {"gpu_verdict_basis_gb": 70.0}
    with pytest.raises(PreflightError) as refused:
        record_evidence(view.id, "memory_fit", bad, source="estimate_memory")
    assert refused.value.one_line() == (
        "memory_fit.gpu_verdict: got 'pass'; allowed: 'high_oom_risk' (gpu_verdict_basis_gb / gpu_ram_gb = "
        "70 / 80 = 0.875; pass <= 0.8, high_oom_risk <= 0.9, fail above)")

    # The rest: estimator tools, plan_options (with option rows) and a manual record.
    record_evidence(view.id, "throughput_prediction", example("throughput_prediction"), source="estimate_run")
    record_evidence(view.id, "time_cost_table", example("time_cost_table"), source="plan_options")
    record_evidence(view.id, "setup_debug_tax", example("setup_debug_tax"))
    record_evidence(view.id, "validation_gates", example("validation_gates"), source="checklist_record")
    status = checklist_status(view.id)
    assert status.gate.model_dump() == {"probe": True, "full": True} and status.missing == []
    assert gate.check(view.id, "full").open is True

    # Micro-batch doubled: every item goes stale, both gates close.
    after = update_spec(view.id, SPEC_MB8)
    assert {i.state for i in after.items} == {"stale"}
    assert after.gate.model_dump() == {"probe": False, "full": False}
    assert "computed for spec" in after.items[0].reason
    assert after.next_step.startswith("Re-supply memory_fit")
    with pytest.raises(PreflightError) as stale:
        gate.check(view.id, "full")
    assert "memory_fit" in stale.value.one_line() and "validation_gates" in stale.value.one_line()

    # An override needs a written reason; it is recorded with what was missing.
    with pytest.raises(PreflightError) as blank:
        gate.check(view.id, "full", override_reason="  ")
    assert blank.value.field == "override_reason"
    reason = "benchmark on a spare H100, hard cost cap $5, estimate refreshed after"
    overridden = gate.check(view.id, "full", override_reason=reason)
    assert (overridden.open, overridden.allowed, overridden.overridden) == (False, True, True)
    assert overridden.missing == ["memory_fit", "throughput_prediction", "time_cost_table", "setup_debug_tax",
                                  "validation_gates"]
    audit = gate.audit(view.id)
    assert [(d.kind, d.allowed, d.overridden) for d in audit] == [
        ("probe", False, False), ("probe", True, False), ("full", False, False), ("full", True, False),
        ("full", False, False), ("full", True, True)]
    assert audit[-1].override_reason == reason
    with closing(sqlite3.connect(state_dir / "preflight.sqlite3")) as conn:
        rows = conn.execute("SELECT override_reason, missing_json FROM gate_overrides").fetchall()
    assert rows == [(reason, '["memory_fit", "throughput_prediction", "time_cost_table", "setup_debug_tax", '
                             '"validation_gates"]')]

    # Re-supplying for the new spec brings the item back.
    record_evidence(view.id, "memory_fit", example("memory_fit"), source="estimate_memory", spec=SPEC_MB8)
    assert _states(view.id)["memory_fit"] == "done" and checklist_status(view.id).gate.probe is True

    report = checklist_report(view.id)
    assert report.startswith("# Pre-estimate checklist (hard gate before a long run): llama8b-sft")
    for needle in ("| verdict | **pass** | **pass** |", "| GPU option | $/h | VRAM GB", "| H100 SXM | 2.5 |",
                   "tax 12% (1.5 of 12 h)", "throughput < 70% of expected for 2 consecutive windows",
                   "| probe | **open** |", "50-200 steps or 30 min", reason, "(STALE, see the item table)"):
        assert needle in report, needle


def test_evidence_for_another_spec_is_stale_on_arrival(state_dir: Path) -> None:
    view = start_checklist("variant", "pre-estimate", spec=SPEC)
    state = record_evidence(view.id, "memory_fit", example("memory_fit"), source="estimate_memory", spec=SPEC_MB8)
    assert state.state == "stale" and state.spec_hash == spec_hash(SPEC_MB8)[:12]
    assert checklist_status(view.id).spec_hash == spec_hash(SPEC)[:12]


def test_a_checklist_without_spec_adopts_the_first_one(state_dir: Path) -> None:
    view = start_checklist("no-spec-yet", "pre-estimate")
    record_evidence(view.id, "validation_gates", example("validation_gates"))
    state = record_evidence(view.id, "memory_fit", example("memory_fit"), source="estimate_run", spec=SPEC)
    assert state.state == "done"
    states = _states(view.id)
    assert states["memory_fit"] == "done" and states["validation_gates"] == "stale"
    assert checklist_status(view.id).spec_hash == spec_hash(SPEC)[:12]


def test_a_failing_verdict_is_recorded_as_failed_and_keeps_the_gate_closed(state_dir: Path) -> None:
    view = start_checklist("too-big", "pre-estimate", spec=SPEC)
    oom = example("memory_fit") | {"gpu_peak_gb": 95.0, "gpu_required_gb": 110.0, "gpu_verdict_basis_gb": 97.0,
                                   "gpu_verdict": "fail"}
    state = record_evidence(view.id, "memory_fit", oom, source="estimate_memory")
    assert state.state == "failed" and "GPU needs 97 GB of 80 GB" in state.reason
    status = checklist_status(view.id)
    assert status.gate.probe is False
    assert status.next_step.startswith("Fix memory_fit")
