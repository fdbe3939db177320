"""Hugging Face Trainer log dicts as samples, and what placing them needs: the epoch's printed precision.

Split from :mod:`.trainlog_hf` (the parser, which works out each dict's step) so that module keeps
to its one job. Values come as floats (transformers 4) or 4-significant-digit strings
(transformers 5: ``'loss': '8.476'``), and runtimes in metrics blocks as ``H:MM:SS.ss``.
"""

from __future__ import annotations

import math
from typing import Any

from .lines import parse_number
from .models import LogSample
from .trainlog_formats import clock_to_s


def hf_float(value: Any) -> float | None:
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
    get = {key: hf_float(value) for key, value in metrics.items()}
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
        device_tokens = get.get("tokens/train_per_sec_per_gpu")  # axolotl's, one device's
        return LogSample(kind="train", loss=get.get("loss"), tokens_per_s=device_tokens,
                         tokens_per_s_scope="device" if device_tokens is not None else None, **common)
    return None


def snap_to(estimate: float, every: int | None) -> int:
    """The nearest multiple of ``every`` (the Trainer logs when ``global_step % logging_steps == 0``)."""
    if every and every > 1:
        return max(every, round(estimate / every) * every)
    return max(1, round(estimate))


def epoch_half_unit(value: Any) -> float:
    """Half the last printed digit of an ``epoch``: how far the printed value can be from the true one.

    transformers 4 rounds the epoch to 2 decimals (``2.3`` is 2.30 +- 0.005) unless it prints the raw
    float; transformers 5 prints 4 significant digits as a string (``'0.2381'``, ``'1.19'``).

    >>> epoch_half_unit(2.3), epoch_half_unit("0.2381"), epoch_half_unit("1.19")
    (0.005, 5e-05, 0.0005)
    """
    number = hf_float(value)
    if not number:
        return 0.5
    if isinstance(value, str):
        return 0.5 * 10.0 ** (math.floor(math.log10(abs(number))) - 3)
    text = repr(float(number))
    decimals = len(text.split(".")[-1]) if "." in text and "e" not in text else 2
    return 0.5 * 10.0 ** -max(2, decimals)


class PendingDict:
    """A dict waiting for its step: its metrics, kind, epoch and the epoch's printed precision."""

    def __init__(self, metrics: dict[str, Any], sample: LogSample) -> None:
        self.metrics = metrics
        self.kind = sample.kind
        self.epoch = sample.epoch
        self.epoch_half = epoch_half_unit(metrics.get("epoch"))
