"""Hugging Face Trainer / TRL / Unsloth and Lightning logs as users capture them, read without a format.

Two sets: the wild captures of ``../shared/fixtures/logs/wild/`` (read in place; skipped with the
reason where ``../shared`` is absent) and our own recordings of the real programs in
``tests/fixtures/logs/own-hf/`` (SOURCES.md there: versions and commands). Every expected value was
read off the capture by hand; the comment beside it says where.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpu_preflight.tools.telemetry.ingest import ingest
from gpu_preflight.tools.telemetry.models import LogSample

WILD = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "logs" / "wild"
OWN = Path(__file__).parent / "fixtures" / "logs" / "own-hf"
needs_wild = pytest.mark.skipif(not (WILD / "SOURCES.md").is_file(),
                                reason=f"the wild captures are not here ({WILD} is absent)")


def _read(path: Path) -> tuple[str, list[LogSample]]:
    result = ingest(path)  # no fmt: detection must recognise it
    return result.format, result.log_samples()


def _dicts(samples: list[LogSample]) -> list[LogSample]:
    """The samples that came from a Trainer log dict (they carry the epoch; bar states do not)."""
    return [s for s in samples if s.kind == "train" and s.epoch is not None]


def _bars(samples: list[LogSample]) -> list[LogSample]:
    return [s for s in samples if s.kind == "train" and s.epoch is None]


@needs_wild
def test_trl_dpo_terminal_paste_places_dicts_by_epoch() -> None:
    fmt, samples = _read(WILD / "hf-trainer_trl-dpo-llama3.1-8b-runpod.log")
    assert fmt == "hf_trainer" and len(samples) == 15  # 10 train dicts, 2 evals, 3 bar lines, 1 summary - 1 dup
    logs = _dicts(samples)
    # logging every 10 steps, 126 steps an epoch (378 steps = 3.0 epochs): 'epoch': 2.3 is step 290.
    assert [s.step for s in logs] == list(range(290, 380, 10))
    assert [s.loss for s in logs][:3] == [0.2025, 0.201, 0.2022]  # lines 1, 2 and 6
    assert logs[-1].loss == 0.202  # line 15, 'epoch': 2.94 -> step 370 (not the bar's 378 below it)
    evals = [s for s in samples if s.kind == "eval"]  # lines 3 and 11, printed with the step-300 and -350 dicts
    assert [(s.step, s.val_loss) for s in evals] == [(300, 0.2024695873260498), (350, 0.20236662030220032)]
    # " 79%|...| 300/378 [1:54:45<27:09, 20.89s/it/usr/local/..." (no "]": the warning follows at once)
    assert [(s.step, s.step_time_s) for s in _bars(samples)] == [(300, 20.89), (350, 20.10), (378, 19.40)]
    summary = samples[-1]
    assert (summary.kind, summary.step, summary.loss) == ("summary", 378, 0.2686335002934491)


@needs_wild
def test_trl_sft_nohup_buffered_dicts_take_the_bar_redraws_in_order() -> None:
    fmt, samples = _read(WILD / "hf-trainer_trl-sft-qwen3-medical-qlora-nohup.log")
    assert fmt == "hf_trainer" and len(samples) == 220  # bar states 1..200 and 20 dicts
    bars = _bars(samples)
    assert [s.step for s in bars] == list(range(1, 201))  # the eval bars (/984) are not steps
    assert bars[0].step_time_s == 21.99  # "1/1755 [00:21<10:42:44, 21.99s/it]"
    assert bars[-1].step_time_s == 20.82  # "200/1755 [1:11:26<8:59:28, 20.82s/it]"
    logs = _dicts(samples)
    assert [s.step for s in logs] == list(range(10, 210, 10))
    # The first dict is glued to the step-200 bar at the end of line 11, yet it is step 10's.
    assert (logs[0].loss, logs[0].epoch) == (2.1095, 0.02)
    assert (logs[1].loss, logs[-1].loss) == (2.0592, 1.3712)  # line 12 (step 20), line 30 (step 200)
    # num_tokens 201043 -> 405684 over steps 10..20: 20,464.1 tokens a step; the bar's elapsed went
    # 03:33 -> 07:11, 218 s for those 10 steps: 938.7 tokens/s. The rates in between give the same.
    assert logs[1].tokens_per_s == pytest.approx(204641 / 218, rel=0.02)
    assert logs[1].tokens_per_s_scope == "job"


@needs_wild
def test_unsloth_readme_dicts_counted_against_total_steps() -> None:
    fmt, samples = _read(WILD / "unsloth_verilog-copilot-llama3-8b-readme.log")
    assert fmt == "hf_trainer" and len(samples) == 62  # 60 dicts, the summary, the final bar
    logs = _dicts(samples)
    # "Total steps = 60" in Unsloth's banner and 60 dicts, all at 'epoch': 0.0: one per step.
    assert [s.step for s in logs] == list(range(1, 61))
    assert [s.loss for s in logs[:2]] == [0.8702, 0.7185] and logs[-1].loss == 0.9465
    assert {s.total_steps for s in logs} == {60}
    summary, bar = samples[-2:]
    assert (summary.kind, summary.step, summary.elapsed_s) == ("summary", 60, 674.1454)
    assert (bar.step, bar.step_time_s) == (60, 11.24)  # "60/60 [11:14<00:00, 11.24s/it]"


@needs_wild
def test_lightning_global_step_first_rate_last_loss() -> None:
    fmt, samples = _read(WILD / "pytorch-lightning_walk-jump-fork-o-stdout.log")
    train = [s for s in samples if s.kind == "train"]
    assert fmt == "lightning" and (len(train), len(samples)) == (32, 48)  # epochs 4..19 x 2 batches; 16 evals
    assert [s.step for s in train] == list(range(9, 41))  # epoch x 2 + position: "Epoch 4: 1/2" is step 9
    step27 = next(s for s in train if s.step == 27)  # "Epoch 13:  50%| 1/2"
    assert step27.step_time_s == pytest.approx(1 / 9.11)  # line 155, the first draw at 1/2
    assert step27.loss == 0.152  # line 156, the redraw after the batch updated the loss
    last = train[-1]  # "Epoch 19: 100%| 2/2 [00:00<00:00, 10.33it/s" (line 267)
    assert last.step_time_s == pytest.approx(1 / 10.33)  # not 4.69 it/s (line 271: after validation)
    # First draws of training positions run 8.88..10.57 it/s in the file; the epoch ends after validation, 3.21..4.82.
    assert all(1 / 10.6 < (s.step_time_s or 0) < 1 / 8.8 for s in train)


# -- our own recordings of the real programs ------------------------------------------------------

_DICT = re.compile(r"\{'loss': '([\d.]+)'")
_RATE = re.compile(r"(\d+)/(\d+) \[[\d:]+<[\d:?]+, +([\d.]+)it/s")


def _printed_losses(text: str) -> list[float]:
    return [float(x) for x in _DICT.findall(text)]


def _first_rates(text: str, total: int) -> dict[int, float]:
    """Each training-bar position's first printed rate, read with a regex of the test's own."""
    rates: dict[int, float] = {}
    for n, tot, rate in _RATE.findall(text):
        if int(tot) == total and int(n) > 0:
            rates.setdefault(int(n), float(rate))
    return rates


@pytest.mark.parametrize("name", sorted(p.name for p in OWN.glob("*-*_*.log") if "lightning" not in p.name))
def test_own_hf_and_trl_runs_put_each_loss_on_its_step(name: str) -> None:
    text = (OWN / name).read_text(encoding="utf-8")
    fmt, samples = _read(OWN / name)
    assert fmt == "hf_trainer"
    logs = _dicts(samples)
    # tiny_hf.py: max_steps 40, logging_steps 5 -> 8 dicts at steps 5..40, losses in printed order.
    assert [s.step for s in logs] == list(range(5, 45, 5))
    assert [s.loss for s in logs] == _printed_losses(text)
    summary = samples[-1] if samples[-1].kind == "summary" else next(s for s in samples if s.kind == "summary")
    assert summary.loss == 5.513  # 'train_loss': '5.513' in every run (same seed)
    bars = _bars(samples)
    if "notqdm" in name:
        assert bars == []
        return
    rates = _first_rates(text, 40)
    assert [s.step for s in bars] == sorted(rates)
    assert all(s.step_time_s == pytest.approx(1 / rates[s.step or 0], rel=0.05) for s in bars)
    if name.startswith("trl"):
        _check_trl_tokens(text, logs, rates)


def _check_trl_tokens(text: str, logs: list[LogSample], rates: dict[int, float]) -> None:
    """TRL's cumulative num_tokens: 512 a step here (8 x 64), over the bar's mean step time between dicts."""
    assert sum(s.tokens_per_s is not None for s in logs) >= 7
    printed = [float(x) for x in re.findall(r"'num_tokens': '([\d.e+]+)'", text)]
    assert [b - a for a, b in zip([0.0, *printed], printed, strict=False)] == [2560.0] * 8  # 5 steps x 512
    for before, log in zip([None, *logs], logs, strict=False):
        start = before.step if before is not None else 0
        times = [1 / rate for n, rate in rates.items() if (start or 0) < n <= (log.step or 0)]
        if before is None and min(rates) > 1:
            assert log.tokens_per_s is None  # the bar's first steps went unseen: no time for the first 5 steps
        elif times:
            assert log.tokens_per_s == pytest.approx(512 / (sum(times) / len(times)), rel=0.01)
            assert log.tokens_per_s_scope == "job"


_LIGHTNING_TQDM = re.compile(
    r"Epoch (\d+): +\d+%\|[^|]*\| (\d+)/6 \[[\d:]+<[\d:?]+, +([\d.]+)it/s(?:, train_loss=([\d.]+))?"
)
_LIGHTNING_RICH = re.compile(r"Epoch (\d+)/2 +\S+ (\d+)/6 [\d:]+ \u2022 [\d:-]+ ([\d.]+)it/s(?: train_loss: ([\d.]+))?")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.mark.parametrize("name", ["lightning_tqdm_nohup.log", "lightning_tqdm_tmux.log", "lightning_rich_tmux.log",
                                  "lightning_rich_nohup.log"])
def test_own_lightning_runs_count_global_steps(name: str) -> None:
    text = _ANSI.sub("", (OWN / name).read_text(encoding="utf-8"))
    fmt, samples = _read(OWN / name)
    assert fmt == "lightning"
    train = [s for s in samples if s.kind == "train"]
    # tiny_lightning.py --epochs 3 --batches 6: 18 steps; per step, the first rate and the last loss printed.
    rate: dict[int, float] = {}
    loss: dict[int, float] = {}
    for epoch, n, r, value in (_LIGHTNING_RICH if "rich" in name else _LIGHTNING_TQDM).findall(text):
        if int(n) > 0:
            step = int(epoch) * 6 + int(n)
            rate.setdefault(step, float(r))
            if value:
                loss[step] = float(value)
    assert [s.step for s in train] == sorted(rate)
    assert [s.loss for s in train] == [loss.get(k) for k in sorted(rate)]
    assert all(s.step_time_s == (pytest.approx(1 / rate[s.step or 0]) if rate[s.step or 0] else None) for s in train)
    if "tqdm" in name:  # every batch drawn; one validation after each epoch
        assert [s.step for s in train] == list(range(1, 19))
        assert [s.step for s in samples if s.kind == "eval"] == [6, 12, 18]
    if name == "lightning_rich_nohup.log":  # Rich off a terminal prints the last state only
        assert [(s.step, s.total_steps, s.loss) for s in train] == [(18, 18, 0.09)]


def test_own_axolotl_run_skips_labelled_bars_and_reads_its_keys() -> None:
    text = (OWN / "axolotl_nohup.log").read_text(encoding="utf-8")
    fmt, samples = _read(OWN / "axolotl_nohup.log")
    assert fmt == "hf_trainer"
    # "Loading weights: 100%|...| 21/21 [00:00<00:00, 15731.45it/s]" comes first: not the training bar (40 steps).
    assert {s.total_steps for s in samples} == {40}
    logs = _dicts(samples)
    assert [s.step for s in logs] == list(range(5, 45, 5))  # max_steps 40, logging_steps 5 (its config dump)
    assert [s.loss for s in logs] == _printed_losses(text)
    printed = [float(x) for x in re.findall(r"'tokens/train_per_sec_per_gpu': '([\d.e+]+)'", text)]
    assert [s.tokens_per_s for s in logs if s.tokens_per_s] == printed  # e.g. '3.116e+04' at step 25
    assert {s.tokens_per_s_scope for s in logs if s.tokens_per_s} == {"device"}
