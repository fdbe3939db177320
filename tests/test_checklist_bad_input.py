"""Bad input to the checklist API gets one clear line: the field, what was sent, what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gpu_preflight.checklist import (
    checklist_report,
    checklist_status,
    gate,
    record_evidence,
    start_checklist,
    update_spec,
)
from gpu_preflight.checklist.examples import example
from gpu_preflight.tools.common.errors import PreflightError


@pytest.fixture
def checklist_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PREFLIGHT_STATE_DIR", str(tmp_path))
    return start_checklist("bad-input", "pre-estimate", spec={"a": 1}).id


def _line(call: Callable[[], Any]) -> str:
    with pytest.raises(PreflightError) as info:
        call()
    return info.value.one_line()


@pytest.mark.parametrize("call", [
    lambda: checklist_status("ck-000000000000"),
    lambda: record_evidence("ck-000000000000", "memory_fit", example("memory_fit")),
    lambda: update_spec("ck-000000000000", {"a": 2}),
    lambda: checklist_report("ck-000000000000"),
    lambda: gate.check("ck-000000000000", "full"),
    lambda: gate.audit("ck-000000000000"),
])
def test_unknown_checklist_id(checklist_id: str, call: Callable[[], Any]) -> None:
    assert _line(call) == (
        f"checklist_id: got 'ck-000000000000'; allowed: an id returned by a new checklist (ck-<12 hex>) "
        f"(latest: {checklist_id})")


def test_unknown_item(checklist_id: str) -> None:
    assert _line(lambda: record_evidence(checklist_id, "memory", {})) == (
        "item: got 'memory'; allowed: memory_fit, throughput_prediction, time_cost_table, setup_debug_tax, "
        "validation_gates (items of policy 'pre-estimate')")
    assert _line(lambda: record_evidence(checklist_id, "decision", example("decision"))).startswith(
        "item: got 'decision'; allowed: memory_fit")


def test_evidence_of_the_wrong_type(checklist_id: str) -> None:
    assert _line(lambda: record_evidence(checklist_id, "memory_fit", "fits fine")).startswith(  # type: ignore[arg-type]
        "memory_fit: got 'fits fine'; allowed: a JSON object with fields gpu_ram_gb")
    wrong = example("memory_fit") | {"gpu_ram_gb": "eighty"}
    assert _line(lambda: record_evidence(checklist_id, "memory_fit", wrong)) == (
        "memory_fit.gpu_ram_gb: got 'eighty'; allowed: Input should be a valid number")
    missing = example("memory_fit")
    del missing["gpu_verdict"]
    assert _line(lambda: record_evidence(checklist_id, "memory_fit", missing)) == (
        "memory_fit.gpu_verdict: got '(missing)'; allowed: Field required")
    negative = example("memory_fit") | {"gpu_ram_gb": -80.0}
    assert _line(lambda: record_evidence(checklist_id, "memory_fit", negative)) == (
        "memory_fit.gpu_ram_gb: got -80.0; allowed: Input should be greater than 0")


def test_source_must_be_a_tool_the_policy_allows(checklist_id: str) -> None:
    assert _line(lambda: record_evidence(checklist_id, "memory_fit", example("memory_fit"), source="calibrate")) == (
        "source: got 'calibrate'; allowed: agent, checklist_record, estimate_memory, estimate_run "
        "(tools that may supply memory_fit)")


def test_start_and_spec_and_gate_arguments(checklist_id: str) -> None:
    assert _line(lambda: start_checklist("x", "yolo")) == (  # type: ignore[arg-type]
        "policy: got 'yolo'; allowed: pre-estimate or run-calibrated")
    assert _line(lambda: start_checklist("  ", "pre-estimate")).startswith("run_name: got '  '")
    assert _line(lambda: start_checklist("x", "pre-estimate", spec=[1, 2])).startswith(  # type: ignore[arg-type]
        "spec: got [1, 2]; allowed: a JSON object (the run spec) or null")
    assert _line(lambda: update_spec(checklist_id, {"lr": float("nan")})).startswith(
        "spec: got {'lr': nan}; allowed: JSON values only (no NaN/Infinity, no objects)")
    assert _line(lambda: gate.check(checklist_id, "long")) == (  # type: ignore[arg-type]
        "kind: got 'long'; allowed: 'probe' or 'full'")
    assert _line(lambda: gate.check(checklist_id, "full", override_reason="ok")).startswith(
        "override_reason: got 'ok'; allowed: a written reason of at least 8 characters")
    # Refused arguments record nothing.
    assert gate.audit(checklist_id) == []


@pytest.mark.parametrize("name", ["\x00", "\x00run", "run\x1b[2J", "a\nb"])
def test_control_characters_in_a_run_name_are_refused_before_the_database(checklist_id: str, name: str) -> None:
    """Regression (found by the MCP fuzz test): SQLite's length() stops at NUL, so "\\x00" passed our
    check, then failed the table's CHECK constraint as a bare IntegrityError."""
    assert _line(lambda: start_checklist(name, "pre-estimate")).startswith("run_name: got ")
    assert checklist_status(checklist_id).run_name == "bad-input"  # what was stored is still there


def test_a_nul_in_an_override_reason_is_refused_and_nothing_recorded(checklist_id: str) -> None:
    line = _line(lambda: gate.check(checklist_id, "full", override_reason="\x00 because the probe is tiny"))
    assert line.startswith("override_reason: got '\\x00 because")
    assert gate.audit(checklist_id) == []
    # Newlines and tabs are fine in a written reason.
    decision = gate.check(checklist_id, "full", override_reason="probe only:\n\tfits in 10 minutes")
    assert decision.allowed and decision.overridden
