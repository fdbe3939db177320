"""Training logs of one JSON object a line: fairseq (``log_format: json``) and LLaMA-Factory's ``trainer_log.jsonl``.

fairseq aggregates ``log_interval`` updates into one ``train_inner`` record whose values are all
strings. Its ``wps`` and ``ups`` are wall-clock rates over the interval, so the first record of
each epoch includes the validation that ran before it: in the wav2vec 2.0 capture ``ups`` drops
from 0.5 to 0.43 at every epoch start while ``train_wall`` (the interval's training time alone,
reset at each record) stays at 398-402 s per 200 updates. The step time is therefore
``train_wall`` / the updates since the previous record; the first record, with no previous one,
falls back to ``wpb / wps`` (tokens per update over tokens per second). ``wps`` is the whole
job's tokens per second (fairseq sums ``ntokens`` over workers) and is kept as printed.

LLaMA-Factory writes ``elapsed_time`` as ``H:MM:SS`` (whole seconds) every ``logging_steps``; the
step time is the difference of it over the steps between records. Its ``throughput`` is
``total_tokens / elapsed`` since the start of the run, a running average, and reads ``"0.00"``
when token counting is off; tokens per second is taken from the difference of ``total_tokens``
instead, and only when that counter moves (a ``0`` counter means "not counted", not zero tokens).

>>> p = LlamaFactoryParser()
>>> [(s.step, s.step_time_s, s.tokens_per_s) for s in p.feed_text(
...     '{"current_steps": 10, "loss": 1.5, "elapsed_time": "0:00:21", "total_tokens": 0}\\n'
...     '{"current_steps": 20, "loss": 1.4, "elapsed_time": "0:00:44", "total_tokens": 0}')]
[(10, None, None), (20, 2.3, None)]
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .models import LogSample
from .trainlog_base import LogParser
from .trainlog_formats import clock_to_s, iso_timestamp
from .trainlog_more import number, per_step

_EQ_PAIR = re.compile(r"([\w/.\-]+)=([^,\s]+)")
_PIPE_PAIR = re.compile(r"^\s*(\w+) (\S+)\s*$")
_SIMPLE_EPOCH = re.compile(r"\bepoch (\d+):")
_SUBSET = re.compile(r"\| (\w+) on '([\w.\-]+)' subset \|")
_DAYS = re.compile(r"^\s*(\d+) days?, (.*)$")


def json_object(segment: str) -> dict[str, Any] | None:
    """The JSON object that ends a line (``... - {"k": "v"}`` or a bare ``{...}``), or ``None``."""
    brace = segment.find("{")
    if brace < 0:
        return None
    try:
        data = json.loads(segment[brace:])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _fairseq_fields(segment: str) -> tuple[dict[str, str], str] | None:
    """(fields, the text before them) of a fairseq JSON record or a ``simple`` line.

    The ``simple`` format (fairseq's default when stdout is not a terminal) prints ``train_inner`` as
    ``epoch 001:  100 / 351 loss=9.874, ..., num_updates=100`` and the epoch summary and evaluations
    as ``epoch 001 | [valid on 'valid' subset |] loss 8.912 | ... | num_updates 351``; the latter get
    the key prefix the JSON format gives them (``train_``, ``<subset>_``).
    """
    data = json_object(segment)
    if data is not None:
        return {str(k): str(v) for k, v in data.items()}, segment[: segment.find("{")]
    pairs = dict(_EQ_PAIR.findall(segment))
    if "num_updates" in pairs:
        if epoch := _SIMPLE_EPOCH.search(segment):
            pairs.setdefault("epoch", epoch.group(1))
        return pairs, segment
    pipe = {m.group(1): m.group(2) for part in segment.split(" | ") if (m := _PIPE_PAIR.match(part))}
    if "num_updates" not in pipe:
        return None
    subset = _SUBSET.search(segment)
    prefix = f"{subset.group(2)}_" if subset else "train_"
    return {("epoch" if k == "epoch" else prefix + k): v for k, v in pipe.items()}, segment


class FairseqParser(LogParser):
    """fairseq records: ``train_inner`` (per interval), ``train`` (epoch summary), ``valid`` (eval).

    The kind comes from the key prefix fairseq gives aggregated stats: ``num_updates`` bare in
    ``train_inner``, ``train_num_updates`` in the epoch summary, ``<subset>_num_updates`` in an
    evaluation. Loss values are fairseq's (base 2 for its criterions), as printed.
    """

    format = "fairseq"

    def __init__(self) -> None:
        super().__init__()
        self._last_updates: int | None = None

    def feed_clean(self, segment: str) -> list[LogSample]:
        found = _fairseq_fields(segment)
        key = next((k for k in found[0] if k.endswith("num_updates")), None) if found else None
        updates = number(found[0].get(key)) if found and key else None
        if found is None or key is None or updates is None:
            self.skipped_lines += 1
            return []
        fields, prefix_text = found
        prefix = key[: -len("num_updates")]

        def get(name: str) -> float | None:
            return number(fields.get(prefix + name))

        step = int(updates)
        common: dict[str, Any] = {"step": step, "epoch": number(fields.get("epoch")),
                                  "timestamp": iso_timestamp(prefix_text)}
        wps = get("wps")
        tokens: dict[str, Any] = {"tokens_per_s": wps, "tokens_per_s_scope": "job" if wps is not None else None}
        if prefix == "train_":
            return self._emit(LogSample(kind="summary", loss=get("loss"), elapsed_s=get("wall"), **tokens, **common))
        if prefix:
            return self._emit(LogSample(kind="eval", val_loss=get("loss"), **common))
        return self._emit(LogSample(loss=get("loss"), step_time_s=self._step_time(step, get), **tokens, **common))

    def _step_time(self, step: int, get: Callable[[str], float | None]) -> float | None:
        last, self._last_updates = self._last_updates, step
        wall, wpb, wps, ups = get("train_wall"), get("wpb"), get("wps"), get("ups")
        if last is not None and step > last and wall is not None:
            return round(wall / (step - last), 9)
        if wpb and wps:
            return round(wpb / wps, 9)
        return round(1 / ups, 9) if ups else None


def elapsed_seconds(text: Any) -> float | None:
    """``H:MM:SS`` or Python's ``1 day, H:MM:SS`` (LLaMA-Factory prints ``str(timedelta)``) -> seconds.

    >>> elapsed_seconds("4:01:42"), elapsed_seconds("2 days, 0:00:05"), elapsed_seconds(None)
    (14502.0, 172805.0, None)
    """
    if not isinstance(text, str):
        return None
    days = 0.0
    if match := _DAYS.match(text):
        days, text = float(match.group(1)), match.group(2)
    seconds = clock_to_s(text)
    return days * 86400 + seconds if seconds is not None else None


class LlamaFactoryParser(LogParser):
    """LLaMA-Factory ``trainer_log.jsonl``: ``{"current_steps": N, "total_steps": M, "loss": X, "elapsed_time": T}``.

    A record with ``eval_loss`` is an evaluation; one with neither ``loss`` nor ``eval_loss`` is the
    closing record the Trainer logs at the end (a summary).
    """

    format = "llama_factory"

    def __init__(self) -> None:
        super().__init__()
        self._ref: tuple[int, float] | None = None
        self._tokens_ref: tuple[int, float, float] | None = None

    def feed_clean(self, segment: str) -> list[LogSample]:
        data = json_object(segment)
        step_value = number(str(data.get("current_steps"))) if data is not None else None
        if data is None or step_value is None:
            self.skipped_lines += 1
            return []
        step = int(step_value)
        elapsed = elapsed_seconds(data.get("elapsed_time"))
        total = number(str(data.get("total_steps")))
        common: dict[str, Any] = {
            "step": step, "total_steps": int(total) if total is not None else None,
            "epoch": number(str(data.get("epoch"))), "elapsed_s": elapsed,
            "eta_s": elapsed_seconds(data.get("remaining_time")),
        }
        step_time = per_step(self._ref, step, elapsed)
        tokens = self._tokens_per_s(step, elapsed, number(str(data.get("total_tokens"))))
        if elapsed is not None:
            self._ref = (step, elapsed)
        if "eval_loss" in data:
            return self._emit(LogSample(kind="eval", val_loss=number(str(data["eval_loss"])), **common))
        if "loss" not in data:
            return self._emit(LogSample(kind="summary", **common))
        return self._emit(LogSample(
            loss=number(str(data["loss"])), step_time_s=step_time, tokens_per_s=tokens,
            tokens_per_s_scope="job" if tokens is not None else None, **common,
        ))

    def _tokens_per_s(self, step: int, elapsed: float | None, total_tokens: float | None) -> float | None:
        if elapsed is None or not total_tokens:
            return None
        ref, self._tokens_ref = self._tokens_ref, (step, elapsed, total_tokens)
        if ref is None or step <= ref[0] or elapsed <= ref[1] or total_tokens <= ref[2]:
            return None
        return round((total_tokens - ref[2]) / (elapsed - ref[1]), 6)
