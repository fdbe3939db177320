"""Composer / llm-foundry console records, which span lines (Hugging Face's are in :mod:`.trainlog_hf`).

The parser is stateful because a record is only complete when the next one starts (Composer's
``[batch=N/M]:`` followed by one ``Train key: value`` a line). It holds the open record across
:meth:`feed` calls, so a record split between two polls of a growing file still parses, and
:meth:`finish` flushes what is open at the end.
"""

from __future__ import annotations

import re

from .lines import parse_number
from .models import LogSample
from .trainlog_base import LogParser

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
