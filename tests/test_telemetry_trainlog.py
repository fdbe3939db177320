"""Training-log parsers on every recorded log (see fixtures/logs/SOURCES.md), exact values for chosen lines."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.telemetry.models import LogSample
from gpu_preflight.tools.telemetry.trainlog import make_log_parser

LOGS = Path(__file__).parent / "fixtures" / "logs"


def parse(fmt: str, name: str) -> tuple[list[LogSample], int, int]:
    parser = make_log_parser(fmt)
    samples = parser.feed_text((LOGS / name).read_text())
    return samples, parser.skipped_lines, parser.duplicate_lines


def test_nanogpt_with_mfu_and_sentinel() -> None:
    samples, skipped, dups = parse("nanogpt", "nanogpt_a100_issue178_mfu.log")
    assert (len(samples), skipped, dups) == (26, 0, 0)
    first = samples[0]  # "iter 0: loss 4.2648, time 9371.81ms, mfu -100.00%"
    assert (first.step, first.loss, first.step_time_s, first.mfu_pct) == (0, 4.2648, 9.37181, None)
    s = samples[10]  # "iter 100: loss 2.4049, time 929.71ms, mfu 16.59%"
    assert (s.kind, s.step, s.loss, s.step_time_s, s.mfu_pct) == ("train", 100, 2.4049, 0.92971, 16.59)
    last = samples[-1]  # "step 250: train loss 1.5440, val loss 1.7220"
    assert (last.kind, last.step, last.loss, last.val_loss) == ("eval", 250, 1.544, 1.722)


def test_nanogpt_without_mfu() -> None:
    samples, skipped, _ = parse("nanogpt", "nanogpt_8xa100_issue110_no_mfu.log")
    assert (len(samples), skipped) == (11, 2)  # the torchrun command and "..."
    s = samples[-1]  # "iter 1641: loss 3.9748, time 567.31ms"
    assert (s.step, s.loss, s.step_time_s, s.mfu_pct) == (1641, 3.9748, 0.56731, None)


def test_nanogpt_cpu_truncated_first_line_and_checkpoint_lines() -> None:
    samples, skipped, _ = parse("nanogpt", "nanogpt_cpu_shakespeare_char.log")
    assert (len(samples), skipped) == (22, 3)  # " loss 4.2882, val loss 4.2813" + 2x "saving checkpoint"
    by_step = {(s.kind, s.step): s for s in samples}
    assert by_step[("train", 100)].step_time_s == 44.99639  # the iteration that ran eval + checkpoint
    assert by_step[("eval", 100)].val_loss == 2.5072
    assert by_step[("train", 190)].mfu_pct == 0.17


def test_nanochat_commas_and_mfu_without_percent() -> None:
    samples, skipped, _ = parse("nanochat", "nanochat_a100_pr147.log")
    assert (len(samples), skipped) == (7, 0)
    s = samples[0]  # "step 00004/21400 (0.02%) | loss: 8.893647 | ... | dt: 989.44ms | tok/sec: 529,882 | mfu: 74.13"
    assert (s.step, s.total_steps, s.loss, s.step_time_s) == (4, 21400, 8.893647, 0.98944)
    assert (s.tokens_per_s, s.tokens_per_s_scope, s.mfu_pct, s.elapsed_s) == (529882.0, "job", 74.13, 0.0)


def test_torchtitan_rank_prefix_gc_lines_and_fields() -> None:
    samples, skipped, _ = parse("torchtitan", "torchtitan_pr1287_2025-06.log")
    assert (len(samples), skipped) == (6, 4)  # GC x2, profiler x2
    s = samples[1]  # "step: 210  loss:  6.0388  memory: 49.66GiB(52.28%)  tps: 5,593  tflops: 323.92  mfu: 32.75%"
    assert (s.step, s.loss, s.mem_used_gib, s.mem_used_pct) == (210, 6.0388, 49.66, 52.28)
    assert (s.tokens_per_s, s.tokens_per_s_scope, s.tflops, s.mfu_pct) == (5593.0, "device", 323.92, 32.75)
    assert s.timestamp == "2025-06-16T22:31:04.970"


def test_torchtitan_every_rank_prints_duplicates_dropped() -> None:
    samples, skipped, dups = parse("torchtitan", "torchtitan_pr2389_2026-02_no_rank_prefix.log")
    assert (len(samples), skipped, dups) == (2, 0, 6)
    assert [(s.step, s.tokens_per_s) for s in samples] == [(4, 10050.0), (5, 10007.0)]


def test_torchtitan_debug_and_lookalike() -> None:
    samples, skipped, _ = parse("torchtitan", "torchtitan_debug_model_2025-10.log")
    assert (len(samples), skipped) == (3, 1)
    assert (samples[0].step, samples[0].tokens_per_s, samples[0].mfu_pct) == (1, 3502.0, 0.19)  # warm-up
    samples, _, _ = parse("torchtitan", "torchtitan_like_ezpz_no_tflops.log")
    assert (samples[1].step, samples[1].tokens_per_s, samples[1].tflops, samples[1].timestamp) == (
        5,
        15926.0,
        None,
        None,
    )


def test_hf_trainer_old_float_dicts_and_tqdm() -> None:
    samples, skipped, _ = parse("hf_trainer", "hf_trainer_old_float_format_llama_lora.log")
    assert skipped == 1  # "#   warnings.warn("
    log, bar, summary = samples  # the last bar (2.25 s/it) redraws step 12051 at close: a duplicate
    assert (log.kind, log.loss, log.epoch, log.step) == ("train", 1.2984, 3.0, 12051)  # the bar after the dict
    assert (bar.step, bar.total_steps, bar.step_time_s, bar.elapsed_s) == (12051, 12051, 3.06, 27170.0)
    assert (summary.kind, summary.elapsed_s, summary.samples_per_s) == ("summary", 27172.2581, 0.887)
    assert summary.step_time_s == pytest.approx(1 / 0.444)


def test_hf_trainer_new_quoted_string_dicts() -> None:
    samples, skipped, _ = parse("hf_trainer", "hf_trainer_new_string_format_trl_sft.log")
    assert skipped == 2  # "Saving model to ..." and "Training complete!"
    assert [(s.kind, s.loss, s.epoch) for s in samples[:2]] == [("train", 0.1363, 2.846), ("train", 0.1328, 2.96)]
    summary, bar = samples[2], samples[3]
    assert (summary.kind, summary.elapsed_s, summary.loss, summary.samples_per_s) == ("summary", 1575.0, 0.2854, 1.333)
    assert (bar.step, bar.step_time_s, bar.elapsed_s, bar.eta_s) == (264, 5.97, 1575.0, 0.0)


def test_hf_trainer_pretty_printed_summary_and_eval_block() -> None:
    samples, skipped, _ = parse("hf_trainer", "hf_trainer_gaudi_blog_summary.log")
    assert (len(samples), skipped) == (2, 0)
    summary, evals = samples
    assert (summary.kind, summary.elapsed_s, summary.samples_per_s, summary.epoch) == ("summary", 159.0603, 69.181, 3.0)
    assert (evals.kind, evals.val_loss, evals.eval_runtime_s, evals.samples_per_s) == ("eval", 0.368, 10.48, 38.899)


def test_lightning_bars_widget_and_eval() -> None:
    samples, skipped, dups = parse("lightning", "lightning_progress_bars.log")
    assert (len(samples), skipped, dups) == (7, 5, 1)  # 5 "# (x)" note lines; the second device's bar
    first = samples[0]  # "Epoch 9: 100%|...| 860/860 [00:05<00:00, 162.25it/s, v_num=1, train_loss_step=1.460, ..."
    assert (first.epoch, first.step, first.loss) == (9.0, 9 * 860 + 860, 1.46)  # the global step: 10 epochs done
    assert first.step_time_s == pytest.approx(1 / 162.25)
    testing = next(s for s in samples if s.kind == "eval")  # "Testing DataLoader 0: 100%|...| 133/133 [00:07<..."
    assert (testing.step, testing.eval_runtime_s) == (2 * 311, 7.0)  # after "Epoch 1: ... 311/311"
    widget = samples[-2]  # "Epoch 39: 100%" then "4975/4975 [08:42<00:00, 9.52it/s, v_num=1, train_loss=1.820]"
    assert (widget.epoch, widget.step, widget.loss) == (39.0, 40 * 4975, 1.82)
    slow = samples[-1]  # "... 8/260 [17:04<8:57:59,  0.01it/s, v_num=2ch5]"
    assert (slow.epoch, slow.step, slow.step_time_s) == (0.0, 8, 100.0)


def test_lightning_carriage_return_redraws() -> None:
    text = "Epoch 0:  10%|#  | 1/10 [00:01<00:09, 1.00it/s]\rEpoch 0:  20%|## | 2/10 [00:02<00:08, 2.00it/s, loss=3.5]"
    parser = make_log_parser("lightning")
    samples = parser.feed_text(text)
    assert [(s.step, s.step_time_s, s.loss) for s in samples] == [(1, 1.0, None), (2, 0.5, 3.5)]


def test_composer_multiline_record() -> None:
    samples, skipped, _ = parse("composer", "composer_llmfoundry_mpt_aws.log")
    assert (len(samples), skipped) == (1, 2)  # the two "..." lines
    s = samples[0]
    assert (s.step, s.total_steps, s.loss) == (1, 300000000, 12.0)
    assert s.elapsed_s == pytest.approx(0.0037 * 3600)  # time/train is hours
    assert s.mem_used_gib == pytest.approx(20.9650e9 / 2**30)  # memory is GB


def test_composer_speed_monitor_one_line_and_tab_variants() -> None:
    text = (
        "[batch=20/50]: Train loss/train/total: 2.5000  throughput/tokens_per_sec: 12,345.5"
        "  throughput/batches_per_sec: 2.0  throughput/device/mfu: 0.41\n"
        "[batch=21/50]:\n"
        "\t Train throughput/device/tokens_per_sec: 3000.0\n"
        "\t Train time/remaining_estimate: 0.5\n"
    )
    parser = make_log_parser("composer")
    a, b = parser.feed_text(text)
    assert (a.step, a.loss, a.tokens_per_s, a.tokens_per_s_scope, a.step_time_s, a.mfu_pct) == (
        20,
        2.5,
        12345.5,
        "job",
        0.5,
        41.0,
    )
    assert (b.step, b.tokens_per_s, b.tokens_per_s_scope, b.eta_s) == (21, 3000.0, "device", 1800.0)


def test_megatron_deepspeed() -> None:
    samples, skipped, _ = parse("megatron", "megatron_deepspeed_issue396.log")
    assert (len(samples), skipped) == (3, 0)
    s = samples[0]
    assert (s.step, s.total_steps, s.step_time_s, s.samples_per_s, s.tflops) == (5426, 250000, 4.2479, 1.883, 78.36)
    assert s.loss is None  # this log prints no "lm loss"
    assert (s.tokens_per_s, s.tokens_per_s_scope) == (3856.384, "job")  # 1.883 samples/s x 2048 tokens


def test_megatron_lm_loss_nan_and_timestamp() -> None:
    line = "[2024-05-01 12:00:00] iteration      100/    1000 | elapsed time per iteration (ms): 500.0 | lm loss: nan |"
    (s,) = make_log_parser("megatron").feed_text(line)
    assert s.timestamp == "2024-05-01T12:00:00" and s.step_time_s == 0.5
    assert s.loss is not None and math.isnan(s.loss)


def test_ansi_coloured_torchtitan_line() -> None:
    line = "\x1b[31mstep:  5  \x1b[32mloss:  7.0000  \x1b[36mtps: 1,000  \x1b[35mmfu: 10.00%\x1b[39m"
    (s,) = make_log_parser("torchtitan").feed_text(line)
    assert (s.step, s.loss, s.tokens_per_s, s.mfu_pct) == (5, 7.0, 1000.0, 10.0)


def test_malformed_lines_counted_never_raise() -> None:
    garbage = "iter x: loss, time ms\n{'loss': oops\n\x00\x01\n[batch=]\nstep: loss:\n" * 3
    for fmt in ("nanogpt", "nanochat", "torchtitan", "hf_trainer", "lightning", "composer", "megatron"):
        parser = make_log_parser(fmt)
        parser.feed_text(garbage)
        assert parser.skipped_lines >= 1, fmt


def test_hf_bar_glued_to_dict_and_eval_bars_ignored() -> None:
    text = (
        " 10%|#   | 100/1000 [01:40<15:00,  1.00it/s]{'loss': 2.5, 'learning_rate': 1e-05, 'epoch': 0.1}\n"
        "100%|####| 50/50 [00:05<00:00, 10.00it/s]\n"  # the eval loop's bar: another total
        "{'eval_loss': 2.4, 'eval_runtime': 5.0, 'epoch': 0.1}\n"
    )
    parser = make_log_parser("hf_trainer")
    bar, log, evals = parser.feed_text(text)
    assert (bar.step, bar.total_steps, bar.step_time_s, bar.eta_s) == (100, 1000, 1.0, 900.0)
    assert (log.kind, log.step, log.loss) == ("train", 100, 2.5)
    assert (evals.kind, evals.step, evals.val_loss, evals.eval_runtime_s) == ("eval", 100, 2.4, 5.0)
    assert parser.skipped_lines == 0


def test_hf_unclosed_dict_at_end_counts_one_skip() -> None:
    parser = make_log_parser("hf_trainer")
    assert parser.feed_text("{'loss': 1.0,\n 'epoch'") == []
    assert parser.skipped_lines == 1


def test_user_regex_named_groups() -> None:
    parser = make_log_parser("regex", regex=r"ep (?P<epoch>\d+) it (?P<step>\d+) (?P<tokens_per_s>[\d,]+) tok/s")
    samples = parser.feed_text("ep 1 it 10 12,000 tok/s\nep 1 it 10 12,000 tok/s\nhello\nep 1 it 11 ,,, tok/s")
    assert [(s.epoch, s.step, s.tokens_per_s) for s in samples] == [(1.0, 10, 12000.0)]
    assert (parser.skipped_lines, parser.duplicate_lines) == (2, 1)  # "hello"; ",,," matched but is no number


@pytest.mark.parametrize(
    ("regex", "hint"),
    [(r"(?P<speed>\d+)", "unknown: speed"), (r"(\d+)", "unknown: (no named group)"), (r"(?P<step>\d+", "missing )")],
)
def test_user_regex_refused(regex: str, hint: str) -> None:
    with pytest.raises(PreflightError) as err:
        make_log_parser("regex", regex=regex)
    assert err.value.field == "regex" and hint in err.value.hint


def test_unknown_format_refused() -> None:
    with pytest.raises(PreflightError) as err:
        make_log_parser("tensorboard")
    assert err.value.field == "fmt"
    with pytest.raises(PreflightError):
        make_log_parser("regex")
