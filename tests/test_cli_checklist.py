"""The installed ``preflight checklist`` commands: the JSON contract, exit codes, one-line errors.

Contract (checks outside the suite read it): ``start --json`` has ``id``; ``status --json`` has
``gate`` with booleans ``probe`` and ``full`` and ``items`` each with ``id`` and ``state``;
``gate`` exits 0 when the launch may go ahead, 3 when the gate is closed (missing items on stderr);
bad input exits 2 with one line on stderr. Subprocesses inherit the test's PREFLIGHT_STATE_DIR.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers_spec import EXAMPLES

from gpu_preflight.checklist.examples import example

PREFLIGHT = shutil.which("preflight")
pytestmark = pytest.mark.skipif(PREFLIGHT is None, reason="the preflight console script is not installed")
SPEC = str(EXAMPLES / "llama-3-8b-full.json")
STATES = {"done", "missing", "stale", "failed"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PREFLIGHT), *args], capture_output=True, text=True, timeout=60, check=False)


def ok_json(*args: str) -> Any:
    out = run(*args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def one_line_error(out: subprocess.CompletedProcess[str], needle: str, code: int = 2) -> None:
    assert out.returncode == code, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def start(policy: str = "pre-estimate", *extra: str) -> str:
    data = ok_json("checklist", "start", "--policy", policy, "--name", "cli-run", *extra, "--json")
    checklist_id: str = data["id"]
    return checklist_id


def status(checklist_id: str) -> dict[str, Any]:
    data: dict[str, Any] = ok_json("checklist", "status", checklist_id, "--json")
    return data


def test_start_and_status_contract() -> None:
    checklist_id = start()
    assert checklist_id.startswith("ck-")
    data = status(checklist_id)
    assert data["gate"] == {"probe": False, "full": False}
    assert all(type(v) is bool for v in data["gate"].values())
    assert [i["id"] for i in data["items"]] == ["memory_fit", "throughput_prediction", "time_cost_table",
                                                 "setup_debug_tax", "validation_gates"]
    assert all(i["state"] in STATES for i in data["items"])
    people = run("checklist", "status", checklist_id)
    assert people.returncode == 0 and "| memory_fit | missing |" in people.stdout and "Next step:" in people.stdout


def test_pre_estimate_through_the_cli(tmp_path: Path) -> None:
    checklist_id = start("pre-estimate", "--spec", SPEC)

    closed = run("checklist", "gate", checklist_id, "--kind", "probe")
    one_line_error(closed, "missing: memory_fit", code=3)
    assert "--override REASON" in closed.stderr and closed.stdout == ""

    # The estimator attaches to the checklist started with the same spec file: nothing is stale.
    out = run("estimate", SPEC, "--gpu", "H100 SXM", "--cpu-ram-gb", "256", "--checklist", checklist_id)
    assert out.returncode == 0, out.stderr
    states = {i["id"]: i["state"] for i in status(checklist_id)["items"]}
    assert states == {"memory_fit": "done", "throughput_prediction": "done", "time_cost_table": "missing",
                      "setup_debug_tax": "done", "validation_gates": "done"}
    probe = ok_json("checklist", "gate", checklist_id, "--kind", "probe", "--json")
    assert (probe["allowed"], probe["kind"]) == (True, "probe")
    one_line_error(run("checklist", "gate", checklist_id, "--kind", "full"), "missing: time_cost_table", code=3)

    # A manual record: inconsistent first (refused, naming the field), then right, from a file.
    table = example("time_cost_table")
    table["cost_usd"]["base"] = 33.0
    one_line_error(run("checklist", "record", checklist_id, "time_cost_table", "--evidence", json.dumps(table)),
                   "time_cost_table.cost_usd.base: got 33.0")
    evidence = tmp_path / "table.json"
    evidence.write_text(json.dumps(example("time_cost_table")))
    recorded = ok_json("checklist", "record", checklist_id, "time_cost_table", "--evidence-file", str(evidence),
                       "--json")
    assert recorded["item"]["state"] == "done" and recorded["gate"] == {"probe": True, "full": True}
    full = run("checklist", "gate", checklist_id, "--kind", "full")
    assert full.returncode == 0 and "full gate open" in full.stdout

    # A new spec (micro-batch doubled) makes everything stale; an override opens it, recorded.
    bigger = json.loads(Path(SPEC).read_text())
    bigger["training"]["micro_batch"] *= 2
    spec2 = tmp_path / "mb2.json"
    spec2.write_text(json.dumps(bigger))
    after = ok_json("checklist", "update-spec", checklist_id, str(spec2), "--json")
    assert {i["state"] for i in after["items"]} == {"stale"} and after["gate"] == {"probe": False, "full": False}
    one_line_error(run("checklist", "gate", checklist_id, "--kind", "full", "--override", "meh"), "override_reason")
    reason = "one-off benchmark, cost capped at $5 by the user"
    overridden = ok_json("checklist", "gate", checklist_id, "--kind", "full", "--override", reason, "--json")
    assert (overridden["open"], overridden["allowed"], overridden["overridden"]) == (False, True, True)

    report = run("checklist", "report", checklist_id)
    assert report.returncode == 0
    assert report.stdout.startswith("# Pre-estimate checklist") and reason in report.stdout


def test_run_calibrated_through_the_cli() -> None:
    checklist_id = start("run-calibrated")
    one_line_error(run("checklist", "gate", checklist_id, "--kind", "probe"), "missing: stage_a_checks", code=3)
    failed = ok_json("checklist", "record", checklist_id, "stage_a_checks", "--evidence",
                     json.dumps(example("stage_a_checks") | {"disk_ok": False}), "--json")
    assert failed["item"]["state"] == "failed" and failed["gate"]["probe"] is False
    for item in ("stage_a_checks", "probe_measurements", "live_estimate", "setup_debug_tax", "decision"):
        assert run("checklist", "record", checklist_id, item, "--evidence", json.dumps(example(item))).returncode == 0
    assert status(checklist_id)["gate"] == {"probe": True, "full": True}
    decision = ok_json("checklist", "gate", checklist_id, "--kind", "full", "--json")
    assert decision["allowed"] is True and decision["offer"] is None


@pytest.mark.parametrize(("args", "needle"), [
    (("checklist", "status", "ck-000000000000"), "checklist_id: got 'ck-000000000000'"),
    (("checklist", "report", "ck-000000000000"), "checklist_id: got 'ck-000000000000'"),
    (("checklist", "gate", "ck-000000000000", "--kind", "full"), "checklist_id: got 'ck-000000000000'"),
    (("checklist", "record", "{id}", "memory", "--evidence", "{{}}"), "item: got 'memory'"),
    (("checklist", "record", "{id}", "memory_fit", "--evidence", "fits"), "--evidence: got 'fits'"),
    (("checklist", "record", "{id}", "memory_fit", "--evidence", '"fits"'), "memory_fit: got 'fits'"),
    (("checklist", "record", "{id}", "memory_fit", "--evidence", '{{"gpu_ram_gb": NaN}}'), "finite"),
    (("checklist", "record", "{id}", "memory_fit", "--evidence", '{{"gpu_ram_gb": "80"}}'),
     "memory_fit.gpu_ram_gb: got '80'"),
    (("checklist", "record", "{id}", "memory_fit", "--evidence-file", "/nonexistent.json"), "--evidence-file"),
    (("checklist", "record", "{id}", "memory_fit"), "--evidence"),
    (("checklist", "record", "{id}", "memory_fit", "--evidence", "{{}}", "--evidence-file", "x"), "not allowed"),
    (("checklist", "gate", "{id}", "--kind", "fulll"), "--kind"),
    (("checklist", "start", "--policy", "yolo", "--name", "x"), "--policy"),
    (("checklist", "start", "--policy", "pre-estimate"), "--name"),
    (("checklist", "start", "--policy", "pre-estimate", "--name", "x", "--spec", "/nonexistent.json"),
     "spec: got '/nonexistent.json'"),
    (("checklist", "update-spec", "{id}", "/nonexistent.json"), "spec: got '/nonexistent.json'"),
])
def test_bad_input_exits_2_with_one_line(args: tuple[str, ...], needle: str) -> None:
    checklist_id = start()
    out = run(*(a.format(id=checklist_id) for a in args))
    one_line_error(out, needle)
    assert out.stdout == ""
    assert {i["state"] for i in status(checklist_id)["items"]} == {"missing"}


def test_bare_checklist_prints_usage_and_exits_2() -> None:
    out = run("checklist")
    assert out.returncode == 2 and "start" in out.stderr and out.stdout == ""
