"""An HF Trainer log without a progress bar, placed on steps live by the run's ``logging_steps``.

``disable_tqdm=True`` leaves only dict lines with no step number and a closing summary. The recorded log
is a real run (../shared/fixtures/logs/real-cpu-runs/hf_probe.log, read in place: ``logging_steps`` 5, 80
steps, 81 batches per epoch); the short logs below are our own lines, written as transformers 5 prints
its dicts (values as quoted strings) and its eval dicts (``eval_`` keys).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_preflight.server.cli import build_parser
from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch import get_run, heartbeat, launch_command, record_run
from gpu_preflight.tools.telemetry.ingest import ingest
from gpu_preflight.tools.telemetry.runcheck import check_run, make_inputs, run_check
from gpu_preflight.tools.telemetry.trainlog import make_log_parser
from gpu_preflight.tools.telemetry.trainlog_hf import logging_steps_in_command

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "logs" / "real-cpu-runs" / "hf_probe.log"
needs_real = pytest.mark.skipif(not REAL.is_file(), reason=f"{REAL} is absent (../shared not checked out)")


def _train_dict(loss: float, epoch: float) -> str:
    return str({"loss": f"{loss:.4g}", "grad_norm": "0.5", "learning_rate": "0.001", "epoch": f"{epoch:.4g}"})


@needs_real
def test_a_real_log_is_placed_line_by_line_as_the_run_writes_it() -> None:
    lines = REAL.read_text().splitlines()
    live = make_log_parser("hf_trainer", logging_steps=5)
    blind = make_log_parser("hf_trainer")
    seen: list[list[int | None]] = []
    for line in lines[:-2]:  # up to the last dict: the run is still going, no summary yet
        seen.append([s.step for s in live.feed(line)])
        assert [s.step for s in blind.feed(line)] == []  # without logging_steps: held until the end
    dicts = [steps for line, steps in zip(lines, seen, strict=False) if line.startswith("{'loss'")]
    # each of the 16 dicts became one sample the moment its line arrived, at 5, 10, ..., 80
    assert dicts == [[5 * k] for k in range(1, 17)]
    # by hand: the first dict's epoch 0.06173 x 81 batches per epoch = 5.0 steps, the last 0.9877 x 81 = 80.0
    ended = [s for s in ingest(REAL).samples if s.kind == "train"]
    assert [s.step for s in ended] == [5 * k for k in range(1, 17)]  # the summary's placement agrees at the end


def test_eval_dicts_take_the_last_training_step_and_ingest_takes_the_option(tmp_path: Path) -> None:
    log = tmp_path / "hf.log"
    log.write_text("\n".join([
        _train_dict(8.5, 0.05), _train_dict(8.4, 0.1),
        str({"eval_loss": "8.39", "eval_runtime": "1.2", "eval_samples_per_second": "50", "epoch": "0.1"}),
        _train_dict(8.3, 0.15),
    ]) + "\n")
    got = ingest(log, logging_steps=20).samples
    assert [(s.kind, s.step) for s in got] == [("train", 20), ("train", 40), ("eval", 40), ("train", 60)]
    with pytest.raises(PreflightError) as info:
        ingest(log, logging_steps=0)
    assert info.value.field == "logging_steps"


@pytest.mark.parametrize(("command", "expected"), [
    ("python train.py --output_dir out --logging_steps 10 --max_steps 200", 10),
    ("accelerate launch train.py --logging-steps=25", 25),
    ("python -c 'TrainingArguments(output_dir=\"o\", logging_steps=50)'", 50),
    ("python train.py --logging_steps 5 --logging_steps 20", 20),  # argparse: the last one wins
    ("python train.py --logging_steps 0.05", None),  # a ratio of the total steps: no fixed interval
    ("python train.py --logging_steps 10 --logging_strategy epoch", None),  # not logged every N steps
    ("python train.py --max_steps 200", None),
    ("python train.py --my_logging_steps=7", None),
])
def test_logging_steps_is_read_from_the_launch_command(command: str, expected: int | None) -> None:
    assert logging_steps_in_command(command) == expected


def test_the_run_records_logging_steps_stated_or_from_its_command() -> None:
    stated = record_run("t:0.0", "python train.py --logging_steps 10", kind="probe", logging_steps=4)
    assert (get_run(stated.run_id).logging_steps, get_run(stated.run_id).logging_steps_source) == (4, "stated")
    read = record_run("t:0.0", "python train.py --logging_steps 10", kind="probe")
    assert (get_run(read.run_id).logging_steps, get_run(read.run_id).logging_steps_source) == (10, "command")
    none = record_run("t:0.0", "python train.py", kind="probe")
    assert get_run(none.run_id).logging_steps is None and get_run(none.run_id).logging_steps_source is None
    for bad in (0, -3, True):
        with pytest.raises(PreflightError) as info:
            launch_command("x:0", "true", kind="probe", logging_steps=bad)
        assert info.value.field == "logging_steps"


def test_the_cli_takes_logging_steps_and_refuses_zero(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["launch", "t:0", "python t.py", "--checklist", "c1", "--logging-steps", "10"])
    assert args.logging_steps == 10
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["launch", "t:0", "python t.py", "--checklist", "c1", "--logging-steps", "0"])
    assert exited.value.code == 2 and "--logging-steps" in capsys.readouterr().err


def test_a_recorded_run_places_its_dicts_in_check_and_heartbeat(tmp_path: Path) -> None:
    log = tmp_path / "hf.log"
    log.write_text("".join(_train_dict(8.5 - k / 100, k / 40) + "\n" for k in range(1, 13)))  # 12 dicts, no summary
    known = record_run("t:0.0", f"python train.py --logging_steps 5 > {log}", kind="probe", log_path=str(log),
                       cap_steps=50, socket_name="pf-test-nonexistent")
    unknown = record_run("t:0.0", f"python train.py > {log}", kind="probe", log_path=str(log), cap_steps=50,
                         socket_name="pf-test-nonexistent")
    assert run_check(known.run_id).step_last == 60  # 12 dicts x 5 steps
    cap = heartbeat(run_id=known.run_id).probe_cap
    assert cap is not None and cap.steps_done == 60 and cap.reached  # the cap of 50 steps is counted
    blind = heartbeat(run_id=unknown.run_id).probe_cap
    assert blind is not None and blind.steps_done is None and not blind.reached
    check = run_check(unknown.run_id)
    assert check.step_last is None and check.timing_missing is not None
    assert "logging_steps at launch" in check.timing_missing and "--logging-steps N" in check.timing_missing


def test_a_log_with_its_own_steps_gets_no_logging_steps_advice(tmp_path: Path) -> None:
    log = tmp_path / "nano.log"
    log.write_text("".join(f"iter {k}: loss 8.0, time 100.00ms, mfu -100.00%\n" for k in range(1, 6)))
    check = check_run(make_inputs({"log_path": str(log)}))
    assert check.step_time_source == "log" and check.timing_missing is None
