"""Probe caps: a probe let through the gate is reported at its cap, and ``--enforce-caps`` stops it.

Why it matters: the run-calibrated policy opens the probe gate on Stage A alone ("run 20-100 steps");
a probe that keeps going is the long run the gate exists to hold back. The enforcement tests drive a
real tmux server with a real training-like program, and read the job's exit record as proof.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_tmux import TmuxTestServer, retry_until

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch import get_run, heartbeat, interrupt_run, launch_command, read_job, record_run
from gpu_preflight.tools.telemetry.probecap import probe_cap
from gpu_preflight.tools.telemetry.runcheck import run_check

FIXTURES = Path(__file__).parent / "fixtures"
NANOGPT = FIXTURES / "logs" / "nanogpt_a100_issue178_mfu.log"  # its last train step is 240
APPS = Path(__file__).parent / "tui_apps"


@pytest.mark.parametrize(("steps", "elapsed_s", "reached"), [
    (99, 899.0, False), (100, 899.0, True), (101, 0.0, True), (0, 900.0, True), (None, None, False),
])
def test_the_cap_is_reached_at_the_step_or_the_minute(steps: int | None, elapsed_s: float | None,
                                                       reached: bool) -> None:
    cap = probe_cap(100, 900.0, steps, elapsed_s)
    assert cap is not None and cap.reached is reached
    assert cap.reason.startswith("probe reached its cap" if reached else "within its probe cap")


def test_a_run_without_caps_has_no_cap_status() -> None:
    assert probe_cap(None, None, 5000, 1e6) is None


def test_run_check_kills_a_probe_past_its_step_cap(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(NANOGPT.read_bytes())
    over = record_run("train:0.0", "python train.py", kind="probe", log_path=str(log), cap_steps=100,
                      socket_name="pf-test-nonexistent")
    check = run_check(over.run_id, window_s=30)
    assert check.probe_cap is not None and check.probe_cap.reached and check.probe_cap.steps_done == 240
    assert check.decision.decision == "kill" and "probe reached its cap: 240 steps logged (cap 100)" in (
        check.decision.reason)
    within = record_run("train:0.0", "python train.py", kind="probe", log_path=str(log), cap_steps=500,
                        socket_name="pf-test-nonexistent")
    check = run_check(within.run_id, window_s=30)
    assert check.probe_cap is not None and not check.probe_cap.reached
    assert "cap" not in check.decision.reason
    full = record_run("train:0.0", "python train.py", kind="full", log_path=str(log), socket_name="pf-test-x")
    assert run_check(full.run_id, window_s=30).probe_cap is None


def _launch_probe(tmux_srv: TmuxTestServer, tmp_path: Path, cap_steps: int) -> tuple[str, Path]:
    log = tmp_path / "probe.log"
    command = f"{sys.executable} {APPS / 'fake_train.py'} --log {log} --steps 400 --step-s 0.05"
    launched = launch_command(tmux_srv.shell(), command, kind="probe", log_path=str(log), cap_steps=cap_steps,
                              socket_name=tmux_srv.socket_name)
    assert launched.run is not None and launched.dispatch.status == "submitted"
    return launched.run.run_id, log


def test_interrupt_run_stops_the_job_and_proves_it_by_the_exit_record(tmux_srv: TmuxTestServer,
                                                                      tmp_path: Path) -> None:
    run_id, log = _launch_probe(tmux_srv, tmp_path, cap_steps=10)
    retry_until(lambda: log.exists() and log.read_text().count("\n") >= 3, timeout_s=10, what="first steps")
    stopped = interrupt_run(run_id)
    assert stopped.stopped and stopped.interrupts_sent >= 1 and stopped.exit_code not in (None, 0)
    job_id = get_run(run_id).job_id
    assert job_id is not None and read_job(job_id).exited
    assert heartbeat(run_id=run_id).state in ("exited", "idle_at_prompt")
    lines = log.read_text().count("\n")
    assert lines < 400  # it stopped long before its 400 steps
    again = interrupt_run(run_id)
    assert again.already_ended and again.interrupts_sent == 0


def test_interrupt_needs_a_dispatched_run() -> None:
    run = record_run("train:0.0", "python train.py", kind="probe")  # recorded by hand: no job, no pane
    with pytest.raises(PreflightError) as info:
        interrupt_run(run.run_id)
    assert info.value.field == "run_id"


def test_cli_check_enforce_caps_stops_a_probe_past_its_cap(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    run_id, log = _launch_probe(tmux_srv, tmp_path, cap_steps=8)
    retry_until(lambda: log.exists() and log.read_text().count("\n") >= 10, timeout_s=15, what="past the cap")
    env = os.environ.copy()  # the same PREFLIGHT_STATE_DIR, so the CLI sees the run record
    done = subprocess.run([sys.executable, "-m", "gpu_preflight.server", "check", run_id, "--enforce-caps", "--json",
                           "--window-s", "5"], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 3, done.stderr  # the decision is kill
    payload = json.loads(done.stdout)
    assert payload["probe_cap"]["reached"] is True and payload["probe_cap"]["steps_done"] >= 8
    assert payload["enforced"]["stopped"] is True
    assert heartbeat(run_id=run_id).state in ("exited", "idle_at_prompt")


def test_cli_enforce_caps_leaves_a_probe_within_its_cap_running(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    run_id, log = _launch_probe(tmux_srv, tmp_path, cap_steps=100_000)
    retry_until(lambda: log.exists() and log.read_text().count("\n") >= 2, timeout_s=10, what="first steps")
    done = subprocess.run([sys.executable, "-m", "gpu_preflight.server", "check", run_id, "--enforce-caps", "--json",
                           "--window-s", "5"], capture_output=True, text=True, timeout=60, check=False)
    payload = json.loads(done.stdout)
    assert payload["enforced"] is None and payload["probe_cap"]["reached"] is False
    assert heartbeat(run_id=run_id).state == "running"
    interrupt_run(run_id)  # tidy up


def test_cli_enforce_caps_needs_a_run_id(tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    log.write_bytes(NANOGPT.read_bytes())
    done = subprocess.run([sys.executable, "-m", "gpu_preflight.server", "check", "--log", str(log), "--enforce-caps"],
                          capture_output=True, text=True, timeout=60, check=False)
    expected = ("preflight: error: --enforce-caps: got None; allowed: a run id (RUN): caps are recorded on "
                "dispatched probe runs")
    assert done.returncode == 2 and done.stderr.strip() == expected


def test_cli_stop_stops_a_full_run_and_exits_0_only_when_proven(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    """`preflight stop RUN_ID`: the user's "kill" after run_check decides it (any run, not only a probe at cap)."""
    run_id, log = _launch_probe(tmux_srv, tmp_path, cap_steps=100_000)
    retry_until(lambda: log.exists() and log.read_text().count("\n") >= 2, timeout_s=10, what="first steps")
    done = subprocess.run([sys.executable, "-m", "gpu_preflight.server", "stop", run_id, "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    payload = json.loads(done.stdout)
    assert payload["stopped"] is True and payload["exit_code"] not in (None, 0) and payload["interrupts_sent"] >= 1
    job_id = get_run(run_id).job_id
    assert job_id is not None and read_job(job_id).exited  # the proof is the exit record, not the screen
    again = subprocess.run([sys.executable, "-m", "gpu_preflight.server", "stop", run_id, "--json"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and json.loads(again.stdout)["already_ended"] is True
    bad = subprocess.run([sys.executable, "-m", "gpu_preflight.server", "stop", run_id, "--timeout-s", "0"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "--timeout-s" in bad.stderr and "Traceback" not in bad.stderr
