"""Streaming training-log parsers: one class per family, all emitting :class:`LogSample`.

Why streaming: :class:`~gpu_preflight.tools.telemetry.tail.LogTail` feeds a growing file a few
lines at a time, and multi-line records (Composer's ``[batch=N/M]`` blocks, Hugging Face's
pretty-printed summary dicts and ``***** eval metrics *****`` blocks) must survive a poll
boundary. Every parser drops a sample that repeats the previous step (every rank printing the
same line, tqdm redrawing its bar) and counts it in ``duplicate_lines``; lines that are not
metrics are counted in ``skipped_lines``; nothing raises on bad input.

>>> p = make_log_parser("regex", regex=r"it (?P<step>\\d+) took (?P<step_time_ms>[\\d.]+) ms")
>>> [(s.step, s.step_time_s) for s in p.feed_text("it 7 took 250 ms\\nnoise")], p.skipped_lines
([(7, 0.25)], 1)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gpu_preflight.tools.common.errors import PreflightError

from .lines import parse_number
from .models import LOG_FORMATS, LogFormat, LogSample
from .trainlog_base import LogParser
from .trainlog_formats import (
    parse_megatron,
    parse_nanochat,
    parse_nanogpt,
    parse_torchtitan,
)
from .trainlog_hf import HfTrainerParser
from .trainlog_json import FairseqParser, LlamaFactoryParser
from .trainlog_lightning import LightningParser
from .trainlog_more import DeepSpeedParser, LitgptParser, ModdedNanogptParser, TorchtuneParser
from .trainlog_records import ComposerParser

REGEX_GROUPS: tuple[str, ...] = (
    "step",
    "total_steps",
    "epoch",
    "loss",
    "val_loss",
    "tokens_per_s",
    "samples_per_s",
    "step_time_s",
    "step_time_ms",
    "mfu_pct",
    "tflops",
    "elapsed_s",
)
_INT_FIELDS = frozenset({"step", "total_steps"})


class LineLogParser(LogParser):
    """Formats where one line is one record: nanoGPT, nanochat, torchtitan, Megatron."""

    def __init__(self, fmt: LogFormat, parse: Callable[[str], LogSample | None]) -> None:
        super().__init__()
        self.format = fmt
        self._parse = parse

    def feed_clean(self, segment: str) -> list[LogSample]:
        sample = self._parse(segment)
        if sample is None:
            self.skipped_lines += 1
            return []
        return self._emit(sample)


class RegexParser(LogParser):
    """A user's own line shape: a regex whose named groups are :data:`REGEX_GROUPS`."""

    format = "regex"

    def __init__(self, pattern: str) -> None:
        super().__init__()
        allowed = f"a Python regex with named groups from {', '.join(REGEX_GROUPS)}"
        try:
            self._regex = re.compile(pattern)
        except re.error as exc:
            raise PreflightError("regex", pattern, allowed, hint=str(exc)) from exc
        names = set(self._regex.groupindex)
        if not names or not names <= set(REGEX_GROUPS):
            unknown = sorted(names - set(REGEX_GROUPS)) or ["(no named group)"]
            raise PreflightError("regex", pattern, allowed, hint=f"unknown: {', '.join(unknown)}")

    def feed_clean(self, segment: str) -> list[LogSample]:
        match = self._regex.search(segment)
        if match is None:
            self.skipped_lines += 1
            return []
        values: dict[str, Any] = {}
        try:
            for name, text in match.groupdict().items():
                if text is None:
                    continue
                number = parse_number(text)
                if number is None:
                    continue
                if name == "step_time_ms":
                    values["step_time_s"] = round(number / 1000, 9)
                elif name in _INT_FIELDS:
                    values[name] = int(number)
                else:
                    values[name] = number
        except (ValueError, OverflowError):
            self.skipped_lines += 1
            return []
        return self._emit(LogSample(**values))


def make_log_parser(fmt: str, *, regex: str | None = None, logging_steps: int | None = None) -> LogParser:
    """A fresh parser for ``fmt`` (one of :data:`LOG_FORMATS`); ``regex`` is required for ``"regex"``.

    ``logging_steps``: the run's, when the caller knows it (an HF Trainer log without a progress bar
    places its dicts with it as they arrive, :mod:`.trainlog_hf`); other formats print their steps.
    """
    simple: dict[LogFormat, Callable[[str], LogSample | None]] = {
        "nanogpt": parse_nanogpt,
        "nanochat": parse_nanochat,
        "torchtitan": parse_torchtitan,
        "megatron": parse_megatron,
    }
    for name, parse in simple.items():
        if fmt == name:
            return LineLogParser(name, parse)
    if fmt == "lightning":
        return LightningParser()
    if fmt == "hf_trainer":
        return HfTrainerParser(logging_steps=logging_steps)
    if fmt == "composer":
        return ComposerParser()
    stateful: dict[str, Callable[[], LogParser]] = {
        "modded_nanogpt": ModdedNanogptParser, "fairseq": FairseqParser, "deepspeed": DeepSpeedParser,
        "llama_factory": LlamaFactoryParser, "litgpt": LitgptParser, "torchtune": TorchtuneParser,
    }
    if fmt in stateful:
        return stateful[fmt]()
    if fmt == "regex":
        if regex is None:
            raise PreflightError("regex", None, "a regex with named groups when fmt is 'regex'")
        return RegexParser(regex)
    raise PreflightError("fmt", fmt, ", ".join(LOG_FORMATS))
