"""The real-client tests' own yardsticks (realclients.checks), checked on texts written here from the
messages issue 20 quotes, so they run where npm and the clients are not installed."""

from __future__ import annotations

from realclients.checks import compact_bytes, dead_references, first_json, live_references, plan_pick

TOOLS = ["run_check", "heartbeat_all", "estimate_run", "checklist_start"]
RESOURCES = ["preflight://gpus", "preflight://runs/{run_id}"]


def test_dead_references_are_cli_commands_functions_and_unknown_uris() -> None:
    # The two refusals issue 20 reported: a Python function and a CLI command named as the next step.
    assert dead_references("run_id: got 'x'; allowed: the id of a recorded run (see list_runs)",
                           TOOLS, RESOURCES) == ["list_runs"]
    assert dead_references("gpu: got 'Z9000'; allowed: a catalogue name (A40, ...; see `preflight gpus`)",
                           TOOLS, RESOURCES) == ["preflight gpus"]
    assert dead_references("see preflight://catalogue", TOOLS, RESOURCES) == ["preflight://catalogue"]
    # A field list after "with" is not a call; real tools and template instances are fine.
    fine = "allowed: a name (see resource preflight://gpus) or an object with gpu_ram_gb, bf16_tflops"
    assert dead_references(fine, TOOLS, RESOURCES) == []
    assert dead_references('see heartbeat_all(scope="runs") or preflight://runs/r-12', TOOLS, RESOURCES) == []


def test_live_references_leave_out_the_failing_tool() -> None:
    text = 'Error executing tool run_check: run_id: got \'x\' (see heartbeat_all(scope="runs"))'
    assert live_references(text, TOOLS, RESOURCES, "run_check") == ["heartbeat_all"]
    assert live_references("Error executing tool run_check: no", TOOLS, RESOURCES, "run_check") == []
    assert live_references("see preflight://gpus", TOOLS, RESOURCES, "estimate_run") == ["preflight://gpus"]


def test_forwarded_json_is_found_and_measured_as_sent() -> None:
    sent = 'Wall time: 0.02 seconds\nOutput:\n{"id":"ck-1","gpu":"RTX 5090 \u00e9"}'
    value, source = first_json(sent) or (None, "")
    assert value == {"id": "ck-1", "gpu": "RTX 5090 \u00e9"}
    assert len(source.encode()) == compact_bytes(value) == 33  # 32 characters, the accent is 2 bytes
    assert first_json("Output:Error executing tool x") is None


def test_plan_pick_reads_the_first_fitting_row() -> None:
    plan = {"rows": [{"gpu_option": "1x RTX 5090", "dph_total_usd": 0.1292}, {"gpu_option": "2x A40",
                                                                              "dph_total_usd": 0.8}]}
    assert plan_pick(plan) == ("RTX 5090", 0.1292)
