"""Timing a log that prints no step times: from its write times, its own timestamps, or a plain "what is missing".

The programs are real (tests/tui_apps/paced_log.py, a step every 0.1 s by deadline, so the true cadence
is exact), writing into a file that the real tail and the real check read while they run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers_tmux import TmuxTestServer, retry_until

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch import get_run, heartbeat, launch_command, record_run
from gpu_preflight.tools.dispatch.heartbeat import hang_for
from gpu_preflight.tools.telemetry.lookstore import remember
from gpu_preflight.tools.telemetry.runcheck import RunCheck, check_run, make_inputs, run_check
from gpu_preflight.tools.telemetry.tail import LogTail, Look
from gpu_preflight.tools.telemetry.writetimes import spans

APPS = Path(__file__).parent / "tui_apps"
FIXTURES = Path(__file__).parent / "fixtures" / "logs"
STEP_S = 0.1
CUSTOM = r"\[train\] step=(?P<step>\d+) loss=(?P<loss>[\d.]+)"


def _start(log: Path, layout: str, *, unbuffered: bool, steps: int = 40, every: int = 4) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    command = [sys.executable, *(["-u"] if unbuffered else []), str(APPS / "paced_log.py"), "--layout", layout,
               "--steps", str(steps), "--every", str(every), "--step-s", str(STEP_S)]
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, env=env)


def _check(log: Path, **fields: object) -> RunCheck:
    return check_run(make_inputs({"log_path": str(log), "window_s": 1.0, "total_steps": 40, **fields}))


def _watch(log: Path, proc: subprocess.Popen[bytes], every_s: float = 0.25) -> tuple[list[RunCheck], RunCheck]:
    """check_run every ``every_s`` while the program runs (as ``preflight watch`` does), and once after."""
    seen = []
    while proc.poll() is None:
        time.sleep(every_s)
        seen.append(_check(log))
    assert proc.wait(timeout=30) == 0
    return seen, _check(log)


def test_hf_dict_lines_are_timed_by_their_write_times(tmp_path: Path) -> None:
    log = tmp_path / "hf.log"
    seen, last = _watch(log, _start(log, "hf", unbuffered=True))
    assert last.step_last == 40 and last.step_time_source == "write_times" and last.timing_missing is None
    # the true cadence is 0.1 s per step; a line every 4 steps was timed by the file's last-write time
    assert last.window is not None and last.window.step_time_median_s == pytest.approx(STEP_S, rel=0.10)
    assert last.window.step_time_source == "write_times"
    assert any("write times" in note for note in last.notes)
    # while it ran: the first look had nothing to compare with, later ones did
    timed = [c for c in seen if c.step_time_source == "write_times"]
    assert timed and timed[-1].eta_s is not None
    assert last.eta_s == 0.0  # 40 of 40 steps done


def test_the_live_tail_reports_when_each_poll_last_line_was_written(tmp_path: Path) -> None:
    log = tmp_path / "hf.log"
    log.write_bytes(b"")
    proc = _start(log, "hf", unbuffered=True)
    points: list[tuple[float, int]] = []
    with LogTail(log) as tail:
        while proc.poll() is None:
            time.sleep(0.05)
            update = tail.poll()
            steps = [s.step for s in update.samples if getattr(s, "step", None) is not None]
            if update.arrived_epoch_s is not None and steps:
                points.append((update.arrived_epoch_s, int(steps[-1])))
    per_step = [seconds for _, _, seconds in spans(points)]
    assert len(per_step) >= 5
    assert statistics.median(per_step) == pytest.approx(STEP_S, rel=0.10)


def test_a_block_buffered_log_without_own_times_says_what_is_missing(tmp_path: Path) -> None:
    log = tmp_path / "buffered.log"
    seen, last = _watch(log, _start(log, "hf", unbuffered=False))
    assert all(c.step_last is None for c in seen[:-1])  # nothing landed while it ran: 10 lines < 8 KB buffer
    assert last.step_last == 40 and last.step_time_source is None
    assert last.window is not None and last.window.step_time_median_s is None
    assert last.timing_missing is not None
    assert "arrived in one write" in last.timing_missing and "python with -u" in last.timing_missing
    assert "PYTHONUNBUFFERED=1" in last.timing_missing
    assert any(note.startswith("no step time: ") for note in last.notes)


def test_a_block_buffered_nanogpt_log_builds_windows_from_its_own_step_times(tmp_path: Path) -> None:
    log = tmp_path / "nano.log"
    _, last = _watch(log, _start(log, "nano", unbuffered=False, every=1))
    assert last.step_last == 40 and last.step_time_source == "log" and last.timing_missing is None
    # 40 steps of 0.1 s placed by the log's own times: 4 s of data in 1 s windows, though all arrived at once
    assert last.windows_count >= 4
    assert last.window is not None and last.window.step_time_median_s == pytest.approx(STEP_S, rel=0.10)


def test_a_running_job_with_an_empty_log_is_called_likely_buffered(tmp_path: Path) -> None:
    log = tmp_path / "empty.log"
    log.write_bytes(b"")
    running = {"state": "running", "elapsed_s": 120.0}
    check = check_run(make_inputs({"log_path": str(log)}), heartbeat=running)
    assert any("has run 120 s and its log is empty" in n and "block-buffered" in n for n in check.notes)
    early = check_run(make_inputs({"log_path": str(log)}), heartbeat={"state": "running", "elapsed_s": 20.0})
    assert not any("block-buffered" in n for n in early.notes)  # too soon to say


def test_torchtitan_timestamps_give_step_times() -> None:
    """torchtitan prints a wall-clock time per record and tps, no step time (recorded log, read in place)."""
    check = check_run(make_inputs({"log_path": str(FIXTURES / "torchtitan_pr1287_2025-06.log"), "window_s": 600}))
    assert check.step_time_source == "log_timestamps"
    # by hand: step 200 at 22:30:50,322, step 210 at 22:31:04,970: 14.648 s / 10 steps
    steps = [1.4648, 1.3964, 1.3961, 1.3974, 1.3977]  # 210, 220, 230, 240, 250
    assert check.window is not None and check.window.step_time_median_s == pytest.approx(statistics.median(steps))
    # cross-check: the same line's tps (5,593 tokens/s per device) x 1.4648 s = 8,193 tokens, the 8,192 tokens
    # per step of that run's seq 8192, batch 1: the timestamps time the steps the tps figure describes


def test_spans_skip_what_arrived_together_and_restart_on_a_lower_step() -> None:
    assert spans([(0.0, 4), (0.0, 8), (2.0, 12)]) == [(4, 12, 0.25)]  # 8 arrived with 4: no interval of its own
    assert spans([(0.0, 10), (1.0, 20), (5.0, 2), (6.0, 4)]) == [(10, 20, 0.1), (2, 4, 0.5)]
    assert spans([(3.0, 10)]) == []  # the first look after attaching gives no interval


def test_looks_are_dropped_when_the_log_is_truncated_or_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "t.log")
    assert remember(path, Look(dev=1, ino=7, size_bytes=100, written_epoch_s=10.0), 5) == [(10.0, 5)]
    assert remember(path, Look(dev=1, ino=7, size_bytes=200, written_epoch_s=12.0), 10) == [(10.0, 5), (12.0, 10)]
    assert remember(path, Look(dev=1, ino=7, size_bytes=200, written_epoch_s=99.0), 10)[-1] == (12.0, 10)
    assert remember(path, Look(dev=1, ino=7, size_bytes=150, written_epoch_s=20.0), 1) == [(10.0, 5), (20.0, 1)]
    assert remember(path, Look(dev=1, ino=8, size_bytes=50, written_epoch_s=30.0), 2) == [(30.0, 2)]


def test_a_custom_regex_run_counts_steps_in_its_heartbeat_and_check(tmp_path: Path) -> None:
    log = tmp_path / "custom.log"
    log.write_text("".join(f"[train] step={s} loss={8 - s / 100:.4f}\n" for s in range(1, 13)))
    plain = record_run("train:0.0", "python train.py", kind="probe", log_path=str(log), cap_steps=10,
                       socket_name="pf-test-nonexistent")
    custom = record_run("train:0.0", "python train.py", kind="probe", log_path=str(log), cap_steps=10,
                        log_regex=CUSTOM, socket_name="pf-test-nonexistent")
    assert get_run(custom.run_id).log_regex == CUSTOM
    blind = heartbeat(run_id=plain.run_id).probe_cap
    assert blind is not None and blind.steps_done is None and not blind.reached  # detected as nothing
    seen = heartbeat(run_id=custom.run_id).probe_cap
    assert seen is not None and seen.steps_done == 12 and seen.reached
    check = run_check(custom.run_id)
    assert check.step_last == 12 and check.decision.decision == "kill"


def test_the_hang_threshold_reads_step_times_through_the_run_regex() -> None:
    text = "".join(f"[train] step={s} took={20000 + 100 * s}ms\n" for s in range(1, 9))
    regex = r"step=(?P<step>\d+) took=(?P<step_time_ms>\d+)ms"
    assert hang_for(None, text).why.startswith("the default")  # detected as nothing: 300 s
    hang = hang_for(None, text, "regex", regex)
    # steps 2..8 (the first dropped as warm-up): 20.2-20.8 s, median 20.5 s; 5 x 20.5 s = 102.5 s
    assert hang.after_s == 102.5 and hang.why == "5 x the 20.5 s median step of the last 7 records"


def test_a_bad_log_layout_is_refused_at_launch() -> None:
    with pytest.raises(PreflightError) as info:
        launch_command("x:0", "true", kind="probe", log_regex=r"step=(?P<stp>\d+)")
    assert info.value.field == "log_regex" and "stp" in info.value.hint
    with pytest.raises(PreflightError) as info:
        launch_command("x:0", "true", kind="probe", log_format="nvidia_smi_query")
    assert info.value.field == "log_format"


def test_a_launched_custom_regex_probe_is_capped_and_timed_by_its_own_lines(tmux_srv: TmuxTestServer,
                                                                            tmp_path: Path) -> None:
    """Launched into tmux with ``log_regex``: the heartbeat counts its steps to the cap while it runs, and
    run_check times it from the log's write times (the layout prints no step time)."""
    log = tmp_path / "custom.log"
    command = (f"{sys.executable} -u {APPS / 'paced_log.py'} --layout custom --steps 60 --every 2 "
               f"--step-s {STEP_S} > {log}")
    launched = launch_command(tmux_srv.shell(), command, kind="probe", log_path=str(log), log_regex=CUSTOM,
                              cap_steps=20, socket_name=tmux_srv.socket_name)
    assert launched.run is not None and launched.dispatch.status == "submitted"
    run_id = launched.run.run_id
    checks: list[RunCheck] = []

    def capped() -> RunCheck | None:
        checks.append(run_check(run_id))
        cap = checks[-1].probe_cap
        return checks[-1] if cap is not None and cap.reached else None

    retry_until(capped, timeout_s=30, interval_s=0.3, what="the probe to reach its step cap")
    hb = heartbeat(run_id=run_id)
    assert hb.probe_cap is not None and hb.probe_cap.reached and (hb.probe_cap.steps_done or 0) >= 20
    timed = retry_until(lambda: (c := run_check(run_id)).step_time_source == "write_times" and c,
                        timeout_s=15, interval_s=0.3, what="a write-time step time")
    assert timed.window is not None and timed.window.step_time_median_s == pytest.approx(STEP_S, rel=0.10)
