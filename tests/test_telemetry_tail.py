"""LogTail on real files growing on disk: offsets, partial lines, truncation, rotation, detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.telemetry.models import GpuSample, LogSample
from gpu_preflight.tools.telemetry.tail import LogTail

FIXTURES = Path(__file__).parent / "fixtures"


def append(path: Path, data: str | bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


def steps(samples: list[GpuSample] | list[LogSample]) -> list[int | None]:
    return [s.step for s in samples if isinstance(s, LogSample)]


def test_replaying_a_fixture_in_chunks_equals_one_read(tmp_path: Path) -> None:
    source = (FIXTURES / "logs/nanogpt_a100_issue178_mfu.log").read_bytes()
    path = tmp_path / "train.log"
    path.write_bytes(b"")
    seen: list[int | None] = []
    with LogTail(path) as tail:
        for start in range(0, len(source), 97):  # chunk edges fall mid-line
            append(path, source[start : start + 97])
            seen += steps(tail.poll().samples)
        update = tail.flush()
        seen += steps(update.samples)
    assert tail.format == "nanogpt"
    assert seen == [*range(0, 250, 10), 250]
    assert (update.offset_bytes, update.skipped_lines) == (len(source), 0)


def test_partial_line_waits_for_its_end(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("iter 10: loss 3.2202, time 893.76ms, mfu 16.68%\niter 20: loss 2.76")
    tail = LogTail(path, fmt="nanogpt")
    assert steps(tail.poll().samples) == [10]
    assert tail.poll().samples == []  # nothing new; the partial line is held, not re-read
    append(path, "97, time 894.88ms, mfu 16.67%\n")
    (sample,) = tail.poll().samples
    assert isinstance(sample, LogSample) and (sample.step, sample.loss) == (20, 2.7697)
    tail.close()


def test_truncation_restarts_at_zero(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("iter 10: loss 3.0, time 1.00ms\niter 20: loss 2.9, time 1.00ms\n")
    with LogTail(path, fmt="nanogpt") as tail:
        assert steps(tail.poll().samples) == [10, 20]
        path.write_text("iter 1: loss 4.0, time 2.00ms\n")  # "> train.log" then a new run
        update = tail.poll()
        assert update.truncated and steps(update.samples) == [1]
        assert update.offset_bytes == len("iter 1: loss 4.0, time 2.00ms\n")


def test_rotation_drains_old_file_then_reads_new(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("iter 10: loss 3.0, time 1.00ms\n")
    with LogTail(path, fmt="nanogpt") as tail:
        assert steps(tail.poll().samples) == [10]
        append(path, "iter 20: loss 2.9, time 1.00ms\n")  # written before rotation, not yet read
        os.rename(path, tmp_path / "train.log.1")
        path.write_text("iter 30: loss 2.8, time 1.00ms\n")
        update = tail.poll()
        assert update.rotated and steps(update.samples) == [20, 30]


def test_file_appears_later_and_format_detected_once_enough_lines(tmp_path: Path) -> None:
    path = tmp_path / "later.log"
    tail = LogTail(path)
    assert tail.poll().format is None
    path.write_text("starting up\nloading data\n")
    update = tail.poll()
    assert (update.format, update.samples) == (None, [])
    append(path, (FIXTURES / "logs/torchtitan_pr1287_2025-06.log").read_text())
    update = tail.poll()
    assert update.format == "torchtitan"
    assert steps(update.samples) == [200, 210, 220, 230, 240, 250]
    assert update.skipped_lines == 6  # two start-up lines held during detection + 4 non-metric lines
    tail.close()


def test_composer_record_split_across_polls(tmp_path: Path) -> None:
    path = tmp_path / "composer.log"
    path.write_text("[batch=1/10]:\n\t Train loss/train/total: 3.0\n")
    with LogTail(path, fmt="composer") as tail:
        assert tail.poll().samples == []  # the record may still grow
        append(path, "\t Train throughput/batches_per_sec: 4.0\n[batch=2/10]:\n")
        (first,) = tail.poll().samples
        assert isinstance(first, LogSample) and (first.step, first.loss, first.step_time_s) == (1, 3.0, 0.25)
        assert steps(tail.flush().samples) == [2]


def test_nvidia_smi_stream_and_tqdm_carriage_returns(tmp_path: Path) -> None:
    path = tmp_path / "smi.csv"
    path.write_text("timestamp, utilization.gpu [%], memory.used [MiB]\n2024/01/01 00:00:00.000, 5 %, 10 MiB\n")
    with LogTail(path) as tail:
        update = tail.poll()
        assert update.format == "nvidia_smi_query"
        assert [s.gpu_util_pct for s in update.samples if isinstance(s, GpuSample)] == [5.0]
    bars = tmp_path / "bars.log"
    bars.write_text(" 10%| | 1/10 [00:01<00:09, 1.00it/s]\r 20%| | 2/10 [00:02<00:08, 1.00it/s]\r")
    with LogTail(bars, fmt="hf_trainer") as tail:  # HF bar states are samples at once (Lightning holds a step
        assert steps(tail.poll().samples) == [1, 2]  # for its loss redraw); "\r" ends a state as "\n" ends a line


def test_from_end_skips_history(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("iter 10: loss 3.0, time 1.00ms\n")
    with LogTail(path, fmt="nanogpt", from_end=True) as tail:
        assert tail.poll().samples == []
        append(path, "iter 20: loss 2.9, time 1.00ms\n")
        assert steps(tail.poll().samples) == [20]


def test_bad_read_size_refused(tmp_path: Path) -> None:
    with pytest.raises(PreflightError):
        LogTail(tmp_path / "x.log", max_read_bytes=0)


def test_a_path_with_a_nul_is_refused_not_taken_for_a_missing_file() -> None:
    with pytest.raises(PreflightError) as info:
        LogTail("train\x00.log")
    assert info.value.field == "path"
