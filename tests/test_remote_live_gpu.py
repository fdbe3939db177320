"""Live GPU readings of a run on a box, and the box's clock in a run's first second (issue 17).

The box is this machine behind a real sshd (tests/sshd.py, the fixtures of tests/test_remote_telemetry.py) and
the run a real program launched there through the dispatcher. This machine has no GPU, so where a GPU is
needed a stand-in ``nvidia-smi`` on the box's PATH only (not this machine's) prints rows we wrote in
nvidia-smi's documented ``--format=csv,noheader,nounits`` layout; without it the box has no ``nvidia-smi``
at all, the real no-GPU path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import test_remote_telemetry
from test_remote_telemetry import Box, _launch, _stub_smi

from gpu_preflight.server.cli import main
from gpu_preflight.server.cli.telemetry import KILL_EXIT

live_box = test_remote_telemetry.box  # the same fixture, registered here under this name


def _row(util_pct: int, mem_used_mib: int) -> str:
    """One GPU's row for QUERY_COLUMNS: an H100 at ``util_pct`` busy holding ``mem_used_mib`` of 81559 MiB."""
    return (f"0, NVIDIA H100 80GB HBM3, GPU-0f1e2d3c-aaaa-bbbb-cccc-000000000001, {util_pct}, 1, {mem_used_mib}, "
            "81559, 95.00, 700.00, 40, 1980, 2619, [N/A], 0x0000000000000000, 550.54.15\n")


def _check(run_id: str, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, dict[str, Any]]:
    rc = main(["check", run_id, "--json", *flags])
    return rc, json.loads(capsys.readouterr().out)


def test_live_gpu_reads_the_box_and_gpu_util_low_fires(live_box: Box, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from gpu_preflight.tools.telemetry.runcheck import run_check

    run_id, _ = _launch(live_box, tmp_path)  # 40 steps logged: the window is active on log progress
    rc, before = _check(run_id, capsys)
    assert before.get("gpu_now") is None and "gpu_util_low" not in before["fired"]  # no reading asked for
    _stub_smi(tmp_path, f"cat <<'EOF'\n{_row(3, 30000)}EOF")
    rc, got = _check(run_id, capsys, "--live-gpu")
    assert (tmp_path / "smi-args").exists()  # the box's nvidia-smi answered, not this machine's NVML
    now = got["gpu_now"]
    assert (now["host"], now["source"], now["available"]) == ("box", "nvidia-smi", True)
    assert now["gpus"][0]["gpu_util_pct"] == 3 and now["gpus"][0]["mem_used_mib"] == 30000
    assert rc == KILL_EXIT and got["fired"] == ["gpu_util_low"], got["fired"]
    low = next(t for t in got["triggers"] if t["name"] == "gpu_util_low")
    assert low["evidence"]["gpu_util_avg_pct"] == 3 and low["evidence"]["gpu_index"] == 0
    assert got["window"]["gpu_util_avg_pct"] == 3 and got["window"]["mem_used_peak_mib"] == 30000
    assert got["decision"]["decision"] == "kill" and "gpu_util_low" in got["decision"]["reason"]

    api = run_check(run_id, live_gpu=True)  # run_check(live_gpu=true): the MCP tool's path
    assert api.gpu_now is not None and api.gpu_now.host == "box" and api.fired == ["gpu_util_low"]

    assert main(["watch", run_id, "--live-gpu", "--once"]) == 0
    drawn = capsys.readouterr().out
    assert "**KILL**: gpu_util_low: GPU 0 averaged 3% busy" in drawn

    _stub_smi(tmp_path, f"cat <<'EOF'\n{_row(97, 30000)}EOF")  # the same run, its GPU busy: nothing fires
    rc, busy = _check(run_id, capsys, "--live-gpu")
    assert rc == 0 and busy["fired"] == [] and busy["window"]["gpu_util_avg_pct"] == 97
    status = {t["name"]: t["status"] for t in busy["triggers"]}
    assert status["gpu_util_low"] == "clear"


def test_live_gpu_on_a_box_without_nvidia_smi_is_a_note(live_box: Box, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    run_id, _ = _launch(live_box, tmp_path)
    rc, got = _check(run_id, capsys, "--live-gpu")
    assert rc == 0 and got["decision"]["decision"] != "kill", got["decision"]
    now = got["gpu_now"]
    assert (now["available"], now["host"]) == (False, "box")
    assert now["answer"]["kind"] == "no_gpu" and not now["answer"]["run_killing"]
    assert "live GPU: no GPU readings on box: no nvidia-smi on the box" in got["notes"], got["notes"]
    assert got["step_last"] == 40  # the log was still read and judged
    assert main(["watch", run_id, "--live-gpu", "--once"]) == 0
    assert "no nvidia-smi on the box" in capsys.readouterr().out


def test_a_run_on_a_box_checked_in_its_first_second_has_a_true_age(live_box: Box, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The box's clock was read in whole seconds (``date +%s``) against a start record with a fraction, so a
    run looked at within the second it started was -0.x s old. Started just after a second boundary, the launch
    and the looks share that second: a whole-second clock gives a negative age here every time."""
    from gpu_preflight.tools.dispatch import heartbeat, launch_command

    pane = live_box.shell()  # also opens the master and the session: the launch below is a warm one
    time.sleep(1.02 - time.time() % 1)
    started = time.time()
    launched = launch_command(pane, "sleep 30", kind="full", host="box", socket_name=live_box.socket_name)
    assert launched.run is not None, launched
    run_id = launched.run.run_id
    beat = heartbeat(run_id=run_id, cpu_sample_s=0)
    took = time.time() - started
    assert beat.state == "running" and beat.elapsed_s is not None, beat
    assert 0 <= beat.elapsed_s <= took + 0.001, (beat.elapsed_s, took)  # the box's clock is this machine's
    rc, got = _check(run_id, capsys)
    assert rc == 0 and 0 <= got["heartbeat"]["elapsed_s"] <= time.time() - started + 0.001
