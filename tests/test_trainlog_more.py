"""Issue 21's training-log formats: modded-nanogpt, fairseq, DeepSpeed, LLaMA-Factory, litgpt, torchtune.

Two kinds of input. The wild captures (``../shared/fixtures/logs/wild/``, read in place, skipped with
the reason where absent) are real logs people committed; every expected value below was computed by
hand from the capture's own lines, the computation written beside it. Our fixtures
(``tests/fixtures/logs/own/``, provenance in its SOURCES.md) are the real output of litgpt, torchtune
and DeepSpeed run here on CPU, and lines written by hand from the documented formats of the programs
that cannot run here. And for a log no parser knows: the lines shown and the regex proposed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mcp import Client
from mcp.types import TextContent

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.telemetry.ingest import detect_format, ingest
from gpu_preflight.tools.telemetry.models import IngestResult, LogSample
from gpu_preflight.tools.telemetry.regex_proposal import SHOWN_CHARS, propose
from gpu_preflight.tools.telemetry.runcheck import check_run, make_inputs

WILD = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "logs" / "wild"
OWN = Path(__file__).parent / "fixtures" / "logs" / "own"
wild = pytest.mark.skipif(not (WILD / "SOURCES.md").is_file(), reason=f"the wild captures are not here ({WILD})")


def _read(path: Path) -> tuple[IngestResult, dict[tuple[str, int | None], LogSample]]:
    got = ingest(path)
    return got, {(s.kind, s.step): s for s in got.log_samples()}


def _kinds(got: IngestResult) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in got.log_samples():
        out[s.kind] = out.get(s.kind, 0) + 1
    return out


# ---- modded-nanogpt ---------------------------------------------------------------------------

@wild
def test_modded_nanogpt_2024_record_clock_differences_and_the_reset() -> None:
    got, by = _read(WILD / "modded-nanogpt_records-2024-10-14-modernarch.log")
    assert got.format == "modded_nanogpt"  # detected, no fmt given
    # 255 lines: 252 training steps (1..252) and 3 val lines (steps 0, 125, 250); nothing skipped.
    assert _kinds(got) == {"train": 252, "eval": 3} and got.skipped_lines == 0 and got.duplicate_lines == 0
    assert by[("train", 1)].loss == 16.0026 and by[("train", 252)].loss == 4.3910
    assert [by[("eval", n)].val_loss for n in (0, 125, 250)] == [16.0058, 4.9493, 4.3294]
    # step 1: 42703 ms - 278 ms (the val line of step 0, the only clock before it) = 42.425 s (compile)
    assert by[("train", 1)].step_time_s == pytest.approx(42.425, abs=1e-9)
    # step 11: train_time 54881 ms -> 176 ms, the clock was reset after the warm-up: no step time
    assert by[("train", 11)].step_time_s is None
    # step 13: 530 - 353 = 177 ms; step_avg 176.69 ms is kept apart as the running average
    assert by[("train", 13)].step_time_s == pytest.approx(0.177, abs=1e-9)
    assert by[("train", 13)].step_time_avg_s == pytest.approx(0.17669, abs=1e-9)
    # step 251 follows the val line of 250: 42990 - 42800 (the training line of step 250) = 190 ms
    assert by[("train", 251)].step_time_s == pytest.approx(0.190, abs=1e-9)
    assert by[("train", 12)].step_time_avg_s is None  # "step_avg:nanms"


@wild
def test_modded_nanogpt_2025_record_without_losses_is_not_read_from_step_avg() -> None:
    got, by = _read(WILD / "modded-nanogpt_records-2025-12-26-logitrescale.log")
    assert got.format == "modded_nanogpt"
    # 252 lines: steps 1632..1880 (249), val at 1750 and 1880, the "peak memory" line skipped
    assert _kinds(got) == {"train": 249, "eval": 2} and got.skipped_lines == 1
    assert all(s.loss is None for s in got.log_samples())  # the newer records print no loss per step
    assert (by[("eval", 1750)].val_loss, by[("eval", 1880)].val_loss) == (3.3127, 3.2778)
    assert by[("train", 1632)].step_time_s is None  # the excerpt's first line: nothing to subtract
    assert by[("train", 1633)].step_time_s == pytest.approx(0.087, abs=1e-9)  # 94639 - 94552 ms
    # 1751 after the val line: 105067 - 104956 (training line 1750) = 111 ms, not 105067 - 105047 = 20 ms
    assert by[("train", 1751)].step_time_s == pytest.approx(0.111, abs=1e-9)
    last = by[("train", 1880)]  # 116445 - 116358 = 87 ms, while step_avg reads 61.94 ms
    assert last.step_time_s == pytest.approx(0.087, abs=1e-9) and last.step_time_avg_s == pytest.approx(0.06194)


@wild
def test_run_check_reads_modded_nanogpt_windows() -> None:
    # 393,216 tokens/step (SOURCES.md); steps take 87-89 ms, so about 393216 / 0.088 = 4.47 M tokens/s.
    check = check_run(make_inputs({"log_path": str(WILD / "modded-nanogpt_records-2025-12-26-logitrescale.log"),
                                   "tokens_per_step": 393_216}))
    assert check.window is not None and check.window.step_time_median_s == pytest.approx(0.088, rel=0.05)
    assert check.measured_tokens_per_s == pytest.approx(393_216 / 0.088, rel=0.05)
    assert check.step_last == 1880


def test_modded_nanogpt_own_fixtures() -> None:
    got, by = _read(OWN / "modded_nanogpt_2024_format_handwritten.log")
    assert got.format == "modded_nanogpt" and _kinds(got) == {"train": 20, "eval": 2} and got.skipped_lines == 1
    assert by[("train", 1)].step_time_s == pytest.approx(30.912)  # 30912 - 0 (val line of step 0)
    assert by[("train", 11)].step_time_s is None  # 39886 ms -> 184 ms: reset
    assert by[("train", 20)].step_time_s == pytest.approx(0.185)  # 1845 - 1660
    got, by = _read(OWN / "modded_nanogpt_2025_format_noloss_handwritten.log")
    assert got.format == "modded_nanogpt" and _kinds(got) == {"train": 8, "eval": 2}
    times = [s.step_time_s for s in got.log_samples() if s.kind == "train"]
    # 45320-45231, 45408-45320, ..., 45784-45673 (after the val line), 45853-45784
    assert times == pytest.approx([None, 0.089, 0.088, 0.089, 0.088, 0.088, 0.111, 0.069])  # type: ignore[arg-type]
    assert by[("train", 5)].step_time_avg_s == pytest.approx(9.0462)  # a running average, never a step time


# ---- fairseq -----------------------------------------------------------------------------------

@wild
def test_fairseq_hydra_json_uses_the_interval_training_time() -> None:
    got, by = _read(WILD / "fairseq_mandarin-wav2vec2-hydra-train.log")
    assert got.format == "fairseq"
    # 23 train_inner records (200..4600), 10 validations, 10 epoch summaries; 105 other lines skipped
    assert _kinds(got) == {"train": 23, "eval": 10, "summary": 10} and got.skipped_lines == 105
    first = by[("train", 200)]  # no earlier record: wpb / wps = 116171 / 58056.1 = 2.00101 s per update
    assert first.step_time_s == pytest.approx(116171 / 58056.1, rel=1e-6) and first.loss == 9.276
    assert (first.tokens_per_s, first.tokens_per_s_scope) == (58056.1, "job")
    # 400: train_wall 399 s / 200 updates = 1.995 s (timestamps: 18:54:45.183 - 18:48:05.372 = 399.8 s)
    assert by[("train", 400)].step_time_s == pytest.approx(1.995, abs=1e-9)
    # 600, the first interval of epoch 2: train_wall 402 / 200 = 2.01 s; its wps (50149.6) counts the
    # validation too (wpb / wps = 2.306 s), which is why it is not used
    assert by[("train", 600)].step_time_s == pytest.approx(2.01, abs=1e-9)
    assert by[("train", 4600)].loss == 3.922
    assert by[("eval", 479)].val_loss == 6.389 and by[("summary", 479)].loss == 7.864
    assert first.timestamp == "2022-04-08T18:48:05.372"


def test_fairseq_own_fixtures_json_and_simple_agree() -> None:
    json_got, json_by = _read(OWN / "fairseq_json_handwritten.log")
    simple_got, simple_by = _read(OWN / "fairseq_simple_handwritten.log")
    assert (json_got.format, simple_got.format) == ("fairseq", "fairseq")
    # 100: 3993.6 / 12500.3 = 0.31948 s; 200: 30 s / 100; 300: 31 s / 100
    for by in (json_by, simple_by):
        assert [by[("train", n)].step_time_s for n in (100, 200, 300)] == pytest.approx([0.31948, 0.30, 0.31], rel=1e-4)
        assert by[("eval", 351)].val_loss == 8.912 and by[("summary", 351)].loss == 9.412
        assert by[("train", 100)].epoch == 1.0
    assert json_by[("train", 400)].step_time_s == pytest.approx(0.31)  # 31 s / 100, not 3993.0 / 11020.4 = 0.362


# ---- DeepSpeed ---------------------------------------------------------------------------------

@wild
def test_deepspeed_step_times_from_timestamps() -> None:
    got, by = _read(WILD / "deepspeed_dschat-step1-opt-1.3b-gbs128.log")
    assert got.format == "deepspeed"
    # 140 lines: 54 step= lines each completed by its timer line, 32 others (ppl, OVERFLOW, exits)
    assert _kinds(got) == {"train": 54} and got.skipped_lines == 32 and got.duplicate_lines == 0
    assert all(s.loss is None for s in got.log_samples())  # DeepSpeed prints no per-step loss
    assert by[("train", 6830)].step_time_s is None  # the first step line
    # 6840: (03:13:49.163 - 03:13:41.706) / 10 steps = 0.7457 s; the timer agrees: 128 / 171.4751 = 0.7465 s
    assert by[("train", 6840)].step_time_s == pytest.approx(0.7457, abs=1e-6)
    assert by[("train", 6840)].step_time_s == pytest.approx(128 / 171.4751102, rel=0.005)
    # 6910 follows the perplexity evaluation: 15.687 s / 10 would time the evaluation, so no step time
    assert by[("train", 6910)].step_time_s is None
    # 6930 spans an OVERFLOW (skipped) step: (03:15:04.570 - 03:14:57.108) / 10 = 0.7462 s, CurrSamplesPerSec 181.34
    assert by[("train", 6930)].step_time_s == pytest.approx(0.7462, abs=1e-6)
    assert by[("train", 6930)].samples_per_s == pytest.approx(181.34161287598587)
    assert by[("train", 6830)].timestamp == "2023-04-18T03:13:41.706"


def test_deepspeed_own_run_on_cpu() -> None:
    got, by = _read(OWN / "deepspeed_0.19.8_engine_cpu.log")
    assert got.format == "deepspeed"
    assert sorted(step for _, step in by) == [5, 10, 15, 20, 25, 30, 35, 40]  # step=0 is printed at initialisation
    assert by[("train", 5)].step_time_s is None
    assert by[("train", 10)].step_time_s == pytest.approx((46.001 - 30.630) / 5, abs=1e-6)
    assert by[("train", 25)].step_time_s is None  # after "***** Evaluating perplexity, Epoch 1/2 *****"
    assert by[("train", 10)].samples_per_s == pytest.approx(1.796630589997537)
    assert by[("train", 40)].mem_used_gib == 0.42


# ---- LLaMA-Factory -----------------------------------------------------------------------------

@wild
def test_llama_factory_elapsed_differences_and_missing_throughput() -> None:
    got, by = _read(WILD / "llama-factory_mistral-v0.2-translator-trainer-log-jsonl.log")
    assert got.format == "llama_factory"
    assert _kinds(got) == {"train": 249, "summary": 1} and got.skipped_lines == 0  # 249 loss lines + the closing one
    assert by[("train", 6180)].step_time_s is None
    assert by[("train", 6190)].step_time_s == pytest.approx(2.1)  # 4:02:03 - 4:01:42 = 21 s / 10 steps
    assert by[("train", 6200)].step_time_s == pytest.approx(2.3)  # 4:02:26 - 4:02:03 = 23 s / 10
    assert by[("train", 8660)].step_time_s == pytest.approx(2.4)  # 5:39:46 - 5:39:22 = 24 s / 10
    assert (by[("train", 6180)].loss, by[("train", 8660)].loss) == (0.1615, 0.1333)
    # "throughput": "0.00" and "total_tokens": 0 on every line: not counted, so unknown, never 0
    assert all(s.tokens_per_s is None for s in got.log_samples())
    assert by[("train", 8660)].elapsed_s == 5 * 3600 + 39 * 60 + 46


def test_llama_factory_own_fixture_with_token_counting() -> None:
    got, by = _read(OWN / "llama_factory_trainer_log_handwritten.jsonl")
    assert got.format == "llama_factory" and _kinds(got) == {"train": 6, "eval": 1, "summary": 1}
    # 10: (25 - 13) s / 5 steps = 2.4 s; (40960 - 20480) tokens / 12 s = 1706.67 tokens/s (not the
    # printed running average 1638.4); 15 is measured from the evaluation record (31 s), so the 6 s
    # of evaluation are not counted as training: (43 - 31) / 5 = 2.4 s
    assert [by[("train", n)].step_time_s for n in (10, 15, 30)] == pytest.approx([2.4, 2.4, 2.4])
    assert by[("train", 10)].tokens_per_s == pytest.approx(20480 / 12) and by[("train", 5)].tokens_per_s is None
    assert by[("eval", 10)].val_loss == 1.9876


# ---- litgpt ------------------------------------------------------------------------------------

@wild
def test_litgpt_tutorial_sums_the_iterations_of_each_optimizer_step() -> None:
    got, by = _read(WILD / "litgpt_0-to-litgpt-tutorial-finetune-lora-phi2.log")
    assert got.format == "litgpt"
    assert _kinds(got) == {"train": 5, "summary": 1}  # 10 iterations, gradient accumulation 2
    # step 1 = iter 1 + iter 2 = 820.31 + 548.72 ms; step 2 = 300.07 + 595.27; step 5 = 423.59 + 603.03
    assert by[("train", 1)].step_time_s == pytest.approx(1.36903, abs=1e-9)
    assert by[("train", 2)].step_time_s == pytest.approx(0.89534, abs=1e-9)
    assert by[("train", 5)].step_time_s == pytest.approx(1.02662, abs=1e-9)
    assert [by[("train", n)].loss for n in range(1, 6)] == [1.660, 1.597, 1.703, 1.741, 1.524]  # the (step) lines
    summary = by[("summary", 5)]
    assert summary.elapsed_s == 11.20 and summary.mem_used_gib == pytest.approx(13.90e9 / 2**30)


def test_litgpt_own_run_on_cpu() -> None:
    got, by = _read(OWN / "litgpt_0.5.13_finetune_lora_cpu.log")
    assert got.format == "litgpt" and _kinds(got) == {"train": 12, "eval": 2, "summary": 1}
    assert by[("train", 1)].step_time_s == pytest.approx(0.75287)  # 416.37 + 336.50 ms
    assert by[("train", 12)].step_time_s == pytest.approx(0.22269)  # 119.61 + 103.08 ms
    assert (by[("eval", 5)].val_loss, by[("eval", 10)].val_loss) == (5.1201, 5.1130)
    assert all(s.val_loss is None for s in got.log_samples() if s.kind == "train")  # "val:" repeats the last eval
    assert (by[("summary", 12)].tokens_per_s, by[("summary", 12)].elapsed_s) == (1083.94, 5.54)


def test_litgpt_older_format_and_sparse_logging() -> None:
    # lit-gpt 2023 (finetune/lora.py): iterations from 0, "(optimizer.step)", "ms" glued to the number
    old = ("iter 0 step 0: loss 10.9012, iter time: 310.50ms\n"
           "iter 1 step 1: loss 10.8741, iter time: 402.25ms (optimizer.step)\n"
           "iter 2 step 1: loss 10.8102, iter time: 298.00ms\n"
           "iter 3 step 2: loss 10.7730, iter time: 401.00ms (optimizer.step)\n")
    got = ingest(old)
    assert got.format == "litgpt"
    assert [(s.step, s.loss, s.step_time_s) for s in got.log_samples()] == [
        (1, 10.8741, pytest.approx(0.71275)), (2, 10.773, pytest.approx(0.699))]  # 310.50 + 402.25; 298.00 + 401.00
    # log_interval 4 with gradient accumulation 2: only every 4th iteration is printed; the first printed
    # step has no start, the next is 4 iterations for 2 steps: 500 ms x 4 / 2 = 1.0 s per step (an estimate)
    sparse = ("Epoch 1 | iter 4 step 2 | loss train: 3.100, val: n/a | iter time: 480.00 ms (step)\n"
              "Epoch 1 | iter 8 step 4 | loss train: 3.000, val: n/a | iter time: 500.00 ms (step)\n")
    assert [s.step_time_s for s in ingest(sparse).log_samples()] == [None, pytest.approx(1.0)]


# ---- torchtune ---------------------------------------------------------------------------------

def test_torchtune_own_run_per_device_tokens_and_the_bar_average() -> None:
    got, by = _read(OWN / "torchtune_0.6.1_full_finetune_single_device_cpu.log")
    assert got.format == "torchtune" and _kinds(got) == {"train": 15} and got.duplicate_lines == 0
    seven = by[("train", 7)]
    assert (seven.loss, seven.tokens_per_s) == (4.630050182342529, 688.9571533203125)
    assert seven.tokens_per_s_scope == "device"  # tokens_per_second_per_gpu
    assert all(s.step_time_s is None for s in got.log_samples())  # nothing in the log times one step
    assert by[("train", 7)].step_time_avg_s == pytest.approx(1 / 2.77)  # the bar "1|7|... 7/15 [.., 2.77it/s]"
    assert by[("train", 8)].step_time_avg_s == pytest.approx(2.26)  # "1|8|... 8/15 [00:09<00:15,  2.26s/it]"
    assert by[("train", 8)].elapsed_s == 9.0


# ---- detection ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "fmt"), [
    ("step:13/5100 train_loss:6.7598 train_time:530ms step_avg:176.69ms", "modded_nanogpt"),
    ('[2022-04-08 18:48:05,372][train_inner][INFO] - {"epoch": 1, "loss": "9.276", "num_updates": "200"}', "fairseq"),
    ("[2023-04-18 03:13:41,706] [INFO] [logging.py:96:log_dist] [Rank 0] step=6830, skipped=129", "deepspeed"),
    ('{"current_steps": 6180, "total_steps": 8660, "loss": 0.1615, "elapsed_time": "4:01:42"}', "llama_factory"),
    ("Epoch 1 | iter 2 step 1 | loss train: 1.660, val: n/a | iter time: 548.72 ms (step)", "litgpt"),
    ("Step 7 | loss:4.630050182342529 lr:0.001 tokens_per_second_per_gpu:688.9571533203125", "torchtune"),
    ("step: 200  loss:  6.1384  memory: 49.66GiB(52.28%)  tps: 5,856  mfu: 34.29%", "torchtitan"),
    ("step 10: train loss 3.1, val loss 3.2", "nanogpt"),
])
def test_each_signature_names_one_format(line: str, fmt: str) -> None:
    assert detect_format(line) == fmt


# ---- a log no parser knows ---------------------------------------------------------------------

UNKNOWN = (
    "starting run 7 on host\n"
    "HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz0123456789\n"
    "root:$6$s3cr3tHASH:19000:0:99999:7:::\n"
    "[trainer] ep 1 | it 120/900 | loss=2.3141 | 412.5ms | 31,245 tok/s\n"
    "[trainer] ep 1 | it 121/900 | loss=2.3087 | 410.0ms | 31,402 tok/s\n"
    "[trainer] ep 1 | it 122/900 | loss=2.3012 | 415.2ms | 31,050 tok/s\n"
    "[trainer] ep 1 | it 123/900 | loss=2.2990 | 409.9ms | 31,440 tok/s " + "x" * 200 + "\n"
)


def test_unknown_format_shows_metric_lines_and_a_regex_that_reads_them() -> None:
    with pytest.raises(PreflightError) as err:
        ingest(UNKNOWN + "\n")
    hint = err.value.hint
    assert err.value.field == "fmt" and "fmt=" in hint
    shown = re.findall(r"\n  unread: (.*)", hint)
    assert len(shown) == 3 and shown[0].startswith("[trainer] ep 1 | it 120/900")
    assert all(len(line) <= SHOWN_CHARS for line in shown)
    assert "hf_abc" not in hint and "s3cr3t" not in hint and "starting run" not in hint
    regex = propose(UNKNOWN).regex
    assert regex is not None and f"--regex '{regex}'" in hint
    got = ingest(UNKNOWN, regex=regex)  # passed back as the regex, it reads the four metric lines
    assert [(s.step, s.total_steps, s.loss, s.step_time_s, s.tokens_per_s) for s in got.log_samples()][:2] == [
        (120, 900, 2.3141, 0.4125, 31245.0), (121, 900, 2.3087, 0.41, 31402.0)]
    assert len(got.log_samples()) == 4 and got.skipped_lines == 3


def test_unknown_file_error_names_the_file_and_quotes_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    path.write_text(UNKNOWN)
    with pytest.raises(PreflightError) as err:
        ingest(path)
    message = err.value.one_line()
    assert str(path) in message and message.count("unread:") == 3 and "(MCP: regex)" in message
    assert "hf_abc" not in message and "s3cr3t" not in message
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s3cr3tHASHvalue:19000:0:99999:7:::\napi_key = sk-live-51HxYz step 3 loss 2\n")
    with pytest.raises(PreflightError) as err:
        ingest(secret)
    assert "unread" not in err.value.one_line() and "s3cr3t" not in err.value.one_line()
    assert "sk-live" not in err.value.one_line()


@pytest.mark.anyio
async def test_mcp_text_keeps_the_proposal(mcp_client: Client) -> None:
    got = await mcp_client.call_tool("ingest_nvidia_smi", {"text": UNKNOWN})
    text = got.content[0].text if isinstance(got.content[0], TextContent) else ""
    assert got.is_error is True and "format not detected in text" in text
    assert text.count("unread:") == 3 and "(MCP: regex)" in text and "hf_abc" not in text
