"""Training-log families whose records span lines: Hugging Face Trainer and Composer / llm-foundry.

Both are stateful because a record is only complete when the next one starts (Composer's
``[batch=N/M]:`` followed by one ``Train key: value`` a line) or when a closing brace or a blank
block end arrives (Hugging Face's pretty-printed summary dict and ``***** eval metrics *****``
block). The parsers hold the open record across :meth:`feed` calls, so a record split between
two polls of a growing file still parses, and :meth:`finish` flushes what is open at the end.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from .lines import parse_number
from .models import LogSample
from .trainlog_base import LogParser
from .trainlog_formats import clock_to_s, parse_tqdm

_HF_DICT_START = re.compile(r"\{'\w+'\s*:")
_HF_BLOCK_START = re.compile(r"\*{5} (\w+) metrics \*{5}")
_HF_BLOCK_LINE = re.compile(r"^\s*(\w+)\s*=\s*(\S.*?)\s*$")


def _hf_float(value: Any) -> float | None:
    """HF values are floats (old) or 4-significant-digit strings (new) or ``H:MM:SS.ss`` runtimes."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if ":" in value:
            return clock_to_s(value)
        try:
            return parse_number(value)
        except ValueError:
            return None
    return None


def hf_metrics_sample(metrics: dict[str, Any], last_step: int | None, total: int | None) -> LogSample | None:
    """A Trainer ``log`` dict (or metrics block) as a sample; ``None`` when it holds no known key."""
    get = {key: _hf_float(value) for key, value in metrics.items()}
    steps_per_s = get.get("train_steps_per_second")
    step = get.get("step", get.get("global_step"))
    common: dict[str, Any] = {
        "epoch": get.get("epoch"),
        "step": int(step) if step is not None else last_step,
        "total_steps": total,
    }
    if "train_runtime" in get or "train_loss" in get:
        return LogSample(
            kind="summary",
            loss=get.get("train_loss"),
            elapsed_s=get.get("train_runtime"),
            samples_per_s=get.get("train_samples_per_second"),
            step_time_s=1.0 / steps_per_s if steps_per_s else None,
            tokens_per_s=get.get("train_tokens_per_second"),
            tokens_per_s_scope="job" if get.get("train_tokens_per_second") is not None else None,
            **common,
        )
    if "eval_loss" in get or "eval_runtime" in get:
        return LogSample(
            kind="eval",
            val_loss=get.get("eval_loss"),
            eval_runtime_s=get.get("eval_runtime"),
            samples_per_s=get.get("eval_samples_per_second"),
            **common,
        )
    if "loss" in get:
        return LogSample(kind="train", loss=get.get("loss"), **common)
    return None


class HfTrainerParser(LogParser):
    """Hugging Face Trainer: ``{'loss': ...}`` dicts (floats or quoted strings), tqdm, metrics blocks.

    The log dicts carry no step, so the last training-bar position is attached when one was
    seen. The first bar's total is taken as the training bar; bars with another total are eval
    loops and are not steps.
    """

    format = "hf_trainer"

    def __init__(self) -> None:
        super().__init__()
        self._dict_buffer: str | None = None
        self._block: tuple[str, dict[str, str]] | None = None
        self._last_step: int | None = None
        self._train_total: int | None = None

    def feed_clean(self, segment: str) -> list[LogSample]:
        out: list[LogSample] = []
        if self._block is not None:
            line = _HF_BLOCK_LINE.match(segment)
            if line:
                self._block[1][line.group(1)] = line.group(2)
                return []
            out.extend(self._close_block())
        if self._dict_buffer is not None:
            self._dict_buffer += " " + segment
            if "}" in segment:
                out.extend(self._close_dict())
            return out
        if block := _HF_BLOCK_START.search(segment):
            self._block = (block.group(1), {})
            return out
        if start := _HF_DICT_START.search(segment):
            out.extend(self._bar(segment[: start.start()]))  # a bar state glued before the dict, if any
            self._dict_buffer = segment[start.start() :]
            if "}" in self._dict_buffer:
                out.extend(self._close_dict())
            return out
        if parse_tqdm(segment) is None:
            self.skipped_lines += 1
            return out
        return out + self._bar(segment)

    def _bar(self, segment: str) -> list[LogSample]:
        state = parse_tqdm(segment)
        if state is None:
            return []
        if self._train_total is None:
            self._train_total = state.total
        if state.total != self._train_total:
            return []  # an eval loop's bar: not a training step
        self._last_step = state.n
        sample = LogSample(
            step=state.n,
            total_steps=state.total,
            step_time_s=state.step_time_s,
            elapsed_s=state.elapsed_s,
            eta_s=state.remaining_s,
        )
        return self._emit(sample)

    def _close_dict(self) -> list[LogSample]:
        text = self._dict_buffer or ""
        self._dict_buffer = None
        try:
            value = ast.literal_eval(text[: text.index("}") + 1])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            self.skipped_lines += 1
            return []
        sample = hf_metrics_sample(value, self._last_step, self._train_total) if isinstance(value, dict) else None
        if sample is None:
            self.skipped_lines += 1
            return []
        return self._emit(sample)

    def _close_block(self) -> list[LogSample]:
        assert self._block is not None
        name, values = self._block
        self._block = None
        prefixed = {
            key if key.startswith(f"{name}_") or key == "epoch" else f"{name}_{key}": v for key, v in values.items()
        }
        sample = hf_metrics_sample(prefixed, self._last_step, self._train_total)
        return self._emit(sample) if sample is not None else []

    def finish(self) -> list[LogSample]:
        out: list[LogSample] = []
        if self._block is not None:
            out.extend(self._close_block())
        if self._dict_buffer is not None:
            self._dict_buffer = None
            self.skipped_lines += 1  # a dict that never closed: truncated capture
        return out


_COMPOSER_HEADER = re.compile(r"\[batch=(\d+)/(\d+)\]:?(.*)$")
_COMPOSER_LINE = re.compile(r"^\s*(?:\d+:)?\s*(Train|Eval)\s+([\w/.\-]+):\s*(\S+)\s*$")
_COMPOSER_PAIR = re.compile(r"([\w/.\-]+):\s*([-+\w.,]+)")
_GB_TO_GIB = 1e9 / 2**30


def composer_sample(step: int, total: int, metrics: dict[str, str]) -> LogSample:
    """A Composer console record: SpeedMonitor throughput, loss, MemoryMonitor GB, times in hours."""

    def get(*keys: str) -> float | None:
        for key in keys:
            if key in metrics:
                try:
                    return parse_number(metrics[key])
                except ValueError:
                    return None
        return None

    job_tokens = get("throughput/tokens_per_sec")
    device_tokens = get("throughput/device/tokens_per_sec")
    batches_per_s = get("throughput/batches_per_sec")
    mfu = get("throughput/device/mfu")
    train_hours = get("time/train")
    remaining_hours = get("time/remaining_estimate")
    mem_gb = get("memory/peak_reserved_mem", "memory/reserved_mem")
    return LogSample(
        step=step,
        total_steps=total,
        loss=get("loss/train/total"),
        val_loss=get("metrics/eval/LanguageCrossEntropy"),
        tokens_per_s=job_tokens if job_tokens is not None else device_tokens,
        tokens_per_s_scope="job" if job_tokens is not None else ("device" if device_tokens is not None else None),
        samples_per_s=get("throughput/samples_per_sec"),
        step_time_s=1.0 / batches_per_s if batches_per_s else None,
        mfu_pct=mfu * 100 if mfu is not None else None,
        elapsed_s=train_hours * 3600 if train_hours is not None else None,
        eta_s=remaining_hours * 3600 if remaining_hours is not None else None,
        mem_used_gib=mem_gb * _GB_TO_GIB if mem_gb is not None else None,
    )


class ComposerParser(LogParser):
    """Composer / llm-foundry console logger: ``[batch=N/M]:`` then one ``Train key: value`` a line.

    ``time/*`` values are hours (SpeedMonitor's default unit) and memory is GB (1e9 bytes);
    both are converted. The one-line variant (``[batch=N/M]: Train k: v  k: v``) also parses.
    """

    format = "composer"

    def __init__(self) -> None:
        super().__init__()
        self._record: tuple[int, int, dict[str, str]] | None = None

    def feed_clean(self, segment: str) -> list[LogSample]:
        if self._record is not None and (line := _COMPOSER_LINE.match(segment)):
            self._record[2][line.group(2)] = line.group(3)
            return []
        out = self._close()
        header = _COMPOSER_HEADER.search(segment)
        if header is None:
            self.skipped_lines += 1
            return out
        rest = re.sub(r"^\s*(Train|Eval)\s+", "", header.group(3))
        self._record = (int(header.group(1)), int(header.group(2)), dict(_COMPOSER_PAIR.findall(rest)))
        return out

    def _close(self) -> list[LogSample]:
        if self._record is None:
            return []
        step, total, metrics = self._record
        self._record = None
        return self._emit(composer_sample(step, total, metrics))

    def finish(self) -> list[LogSample]:
        return self._close()
