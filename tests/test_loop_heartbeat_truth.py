"""Issue 15's heartbeat and launch fixes on real panes: the hang threshold follows the run's own step
time and the reason says both clocks; a crash reports its error line and end class (OOM its own); launch
takes every tmux target form; a pane's evidence names only the current job's handle; a cold estimate of
a sub-millisecond step warns; the plot draws a run's prediction in the measured unit."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import pytest
from helpers_tmux import TmuxTestServer, retry_until

from gpu_preflight.tools.dispatch import heartbeat, launch_command, wait_for_exit
from gpu_preflight.tools.dispatch.hbscan import end_class, job_lines, last_error
from gpu_preflight.tools.dispatch.heartbeat import HANG_FLOOR_S, hang_for
from gpu_preflight.tools.dispatch.target import make_tmux, validate_any_target
from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.telemetry.plot import _predicted, plot_png
from gpu_preflight.tools.telemetry.runcheck import read_source
from gpu_preflight.tools.telemetry.timeline import build_timeline

NANO_LINES = "".join(f"iter {i}: loss 2.{i:02d}, time {400 + i}.00ms, mfu 10.00%\n" for i in range(30))


def test_threshold_is_five_median_steps_with_a_floor_and_the_default_without() -> None:
    slow = "".join(f"iter {i}: loss 2.0, time 30000.00ms, mfu 10.00%\n" for i in range(10))
    assert hang_for(None, slow).after_s == 150.0 and "5 x the 30 s median step" in hang_for(None, slow).why
    fast = hang_for(None, NANO_LINES)
    assert fast.after_s == HANG_FLOOR_S and "floored at 60 s" in fast.why
    assert hang_for(None, "no steps here\n").after_s == 300.0
    assert hang_for(7.0, NANO_LINES).after_s == 7.0 and hang_for(7.0, "").why == "set by the caller"


@pytest.mark.parametrize(("lines", "code", "signal", "want", "cls"), [
    (["Traceback (most recent call last):", '  File "t.py", line 3', "RuntimeError: injected crash at step 30",
      " 36%|###6      | 29/80 [00:18<00:33,  1.54it/s]"], 1, None, "RuntimeError: injected crash at step 30", "error"),
    (["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"], 1, None,
     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "oom"),
    (["torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970"], 1, None,
     "torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970", "nccl"),
    (["step 4", "bash: line 1: 4242 Killed                  python train.py"], 137, 9,
     "bash: line 1: 4242 Killed                  python train.py", "killed"),
    (["step 9 loss 1.0", "done"], 0, None, None, "ok"),
    (["^C", "KeyboardInterrupt"], 130, None, "KeyboardInterrupt", "interrupted"),
])
def test_last_error_line_and_end_class(lines: list[str], code: int, signal: int | None, want: str | None,
                                       cls: str) -> None:
    found = last_error(lines)
    assert (found[1] if found else None) == want
    assert end_class(code, signal, found[0] if found else None) == cls


def test_evidence_keeps_only_the_current_jobs_handle() -> None:
    screen = ["$  bash '/s/jobs/pf-job' j000000000001", "old output", "$  bash '/s/jobs/pf-job' j000000000002",
              "new output", "$"]
    assert job_lines(screen, "j000000000002") == screen[2:]
    assert job_lines(screen, None) == ["old output", "new output", "$"]
    wrapped = ["$  bash '/a/long/state/dir/jobs/pf-job'", "j000000000001", "x", "$ bash '/s/pf-job' j00000000000f"]
    assert job_lines(wrapped, "j00000000000f") == [wrapped[3]]
    assert job_lines(wrapped[:3], None) == ["x"]


@pytest.mark.parametrize("target", ["probe:cap", "probe", "probe:1", "%3", "@4", "probe:cap.0", "my-s:w"])
def test_launch_targets_take_every_tmux_form(target: str) -> None:
    assert validate_any_target(target) == target


@pytest.mark.parametrize("target", ["", "-t", "a b", "a:b:c", "x\x1b", 5])
def test_launch_targets_still_refuse_what_tmux_would_misread(target: object) -> None:
    from gpu_preflight.tools.common.errors import PreflightError

    with pytest.raises(PreflightError):
        validate_any_target(target)  # type: ignore[arg-type]


def test_launch_into_a_window_name_pins_its_pane(tmux_srv: TmuxTestServer) -> None:
    shell = tmux_srv.shell()
    session = tmux_srv.display(shell, "#{session_name}")
    tmux_srv.tmux("rename-window", "-t", shell, "cap")
    launched = launch_command(f"{session}:cap", "echo launched-by-name", kind="probe",
                              socket_name=tmux_srv.socket_name)
    assert launched.dispatch.status == "submitted" and launched.run is not None
    assert launched.run.target == f"{session}:cap" and launched.run.pane_id == shell
    missing = launch_command(f"{session}:nowhere", "echo x", kind="probe", socket_name=tmux_srv.socket_name)
    assert missing.dispatch.status == "refused" and missing.run is None and "no pane" in missing.dispatch.reason


def test_second_job_evidence_and_crash_fields_on_a_real_pane(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    shell = tmux_srv.shell()
    tmux = make_tmux(tmux_srv.socket_name)
    first = launch_command(shell, "echo first-job", kind="probe", socket_name=tmux_srv.socket_name)
    assert first.dispatch.job_id
    wait_for_exit(first.dispatch.job_id, tmux, timeout_s=10)
    script = tmp_path / "oom.py"
    script.write_text("import sys\nprint('step 1')\nraise SystemExit('torch.OutOfMemoryError: CUDA out of memory. "
                      "Tried to allocate 2.00 GiB')\n")
    second = launch_command(shell, f"{sys.executable} {script}", kind="probe", socket_name=tmux_srv.socket_name)
    assert second.dispatch.job_id and second.run is not None
    wait_for_exit(second.dispatch.job_id, tmux, timeout_s=10)
    run_id = second.run.run_id
    retry_until(lambda: heartbeat(run_id).state == "exited", what="exited")
    beat = heartbeat(run_id)
    assert beat.exit_code == 1 and beat.end_class == "oom"
    assert beat.last_error_line is not None and "CUDA out of memory" in beat.last_error_line
    assert first.dispatch.job_id not in " ".join(beat.evidence)
    pane = heartbeat(target=shell, socket_name=tmux_srv.socket_name)
    assert first.dispatch.job_id not in " ".join(pane.evidence)
    assert pane.end_class == "oom" and pane.exit_code == 1


def test_running_reason_names_both_clocks_and_the_threshold(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text(NANO_LINES)
    shell = tmux_srv.shell()
    launched = launch_command(shell, "sleep 30", kind="probe", log_path=str(log), socket_name=tmux_srv.socket_name)
    assert launched.run is not None
    beat = heartbeat(launched.run.run_id)
    assert beat.state == "running"
    assert "hang threshold 60 s (5 x the 0.415 s median step of the last 29 records, floored at 60 s)" in beat.reason
    assert "last output" in beat.reason and "log written" in beat.reason
    quiet = heartbeat(launched.run.run_id, hang_after_s=0.5, cpu_sample_s=0.05)
    if quiet.state == "hung":  # the log is older than 0.5 s and sleep uses no CPU
        assert "past the hang threshold 0.5 s (set by the caller)" in quiet.reason
        assert "log written" in quiet.reason and "no CPU" in quiet.reason


def test_cold_estimate_of_a_tiny_step_warns_that_overheads_dominate() -> None:
    spec = {"model": {"params_total": 1_676_800, "family": "gpt2", "hidden_size": 128, "n_layers": 2, "n_heads": 4,
                      "vocab_size": 5000},
            "training": {"method": "full", "precision": "fp32", "seq_len": 64, "micro_batch": 8},
            "target": {"target_steps": 5000}}
    e = estimate_run(spec, "RTX 4090")
    terms = e.throughput.step_time_terms_s
    assert terms is not None and terms.compute < 0.005  # the FLOPs part alone: microseconds
    assert e.throughput.step_time_s >= terms.fixed  # the step itself carries the fixed per-step cost
    assert any("overhead" in w and "< 5 ms" in w for w in e.warnings)
    big = estimate_run({**spec, "model": {"name": "llama-3.2-1b"},
                        "training": {"method": "full", "precision": "bf16", "seq_len": 2048, "micro_batch": 4}},
                       "H100 SXM")
    assert big.throughput.step_time_s > 0.005 and not any("< 5 ms" in w for w in big.warnings)


def _png_height(data: bytes) -> int:
    return int(struct.unpack(">II", data[16:24])[1])


def test_plot_prediction_is_in_the_measured_unit() -> None:
    assert _predicted("tokens/s", 12_000.0, None, 8192) == 12_000.0
    assert _predicted("steps/s", 12_000.0, None, 8192) == pytest.approx(12_000 / 8192)
    assert _predicted("tokens/s per GPU", 12_000.0, None, None) is None  # whole job vs per GPU: not mixed
    fixture = Path(__file__).resolve().parents[1].parent / "shared/fixtures/logs/real-cpu-runs/nano_probe.log"
    if not fixture.is_file():
        pytest.skip(f"{fixture} is absent")
    samples, _ = read_source(str(fixture))
    png = plot_png(build_timeline([], samples), predicted_tokens_per_s=7_724_593.0, tokens_per_step=8192,
                   title="run r0123456789ab")
    assert png.startswith(b"\x89PNG") and _png_height(png) == 620
    assert zlib.decompress(png[png.index(b"IDAT") + 4 : -16])  # a whole raster came out
