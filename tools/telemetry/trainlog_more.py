"""Training-log layouts from issue 21 that print no per-step time: modded-nanogpt, DeepSpeed, litgpt, torchtune.

Each framework times steps its own way, and none prints "this step took T". The step time is
rebuilt from the log's own clock, never from a running average:

- modded-nanogpt prints a cumulative ``train_time`` (the clock stops during validation and is
  reset to 0 after the warm-up steps) and ``step_avg`` = train_time / steps, a running average:
  in the 2025-12-26 record it reads 58-62 ms while each step takes 87-89 ms, because it still
  carries the early small-batch steps. The step time is the difference of ``train_time`` between
  consecutive step lines; ``step_avg`` goes to ``step_time_avg_s``.
- DeepSpeed prints ``step=N, skipped=K`` every ``steps_per_print`` steps with a wall-clock
  timestamp: the step time is the time between two such lines over the steps between them. An
  interval in which the script announced an evaluation or a checkpoint timed that work too, so
  it gets no step time (DeepSpeed-Chat's perplexity pass makes one interval 1.57 s/step against
  0.746 s/step around it); other lines of the script's own (a per-step loss print) leave it
  alone. ``CurrSamplesPerSec`` (the whole job: DeepSpeed divides the global batch by the step's
  time) is kept as ``samples_per_s``.
- litgpt counts iterations (micro-batches) and optimizer steps apart: ``iter 3 step 1`` is the
  first micro-batch of step 2. A sample is one optimizer step (the line marked ``(step)``), and its
  time is the SUM of the iteration times of its micro-batches: litgpt times each iteration alone
  and prints no cumulative clock, so there is no difference to take. With GA 2 the phi-2 tutorial
  shows why the sum matters: iteration times alternate 260-300 ms and 550-600 ms (the second runs
  the optimizer), so one iteration's time is neither the step's time nor half of it.
- torchtune prints ``tokens_per_second_per_gpu`` (one device, one step: torchtune resets its
  clock every optimizer step) and no time at all; its tqdm bar's rate is tqdm's smoothed average,
  kept as ``step_time_avg_s``.

>>> p = ModdedNanogptParser()
>>> [(s.step, s.step_time_s, s.step_time_avg_s) for s in p.feed_text(
...     "step:12/20 train_loss:6.8 train_time:353ms step_avg:nanms\\n"
...     "step:13/20 train_loss:6.7 train_time:530ms step_avg:176.69ms")]
[(12, None, None), (13, 0.177, 0.17669)]
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from .lines import finite_or_none, parse_number
from .models import LogSample
from .trainlog_base import LogParser
from .trainlog_formats import iso_timestamp, parse_tqdm

_GB_TO_GIB = 1e9 / 2**30


def number(text: str | None) -> float | None:
    """A finite float from a log token, or ``None`` (absent, malformed, ``nan``, ``inf``)."""
    if text is None:
        return None
    try:
        return finite_or_none(parse_number(text))
    except ValueError:
        return None


def per_step(prev: tuple[int, float] | None, step: int, clock: float | None) -> float | None:
    """Seconds per step between two readings of a cumulative clock, or ``None`` when they do not
    bracket a forward interval (first reading, same step, a clock that went back after a reset).

    >>> per_step((10, 100.0), 20, 130.0), per_step((10, 100.0), 11, 5.0), per_step(None, 3, 1.0)
    (3.0, None, None)
    """
    if prev is None or clock is None or step <= prev[0] or clock < prev[1]:
        return None
    return round((clock - prev[1]) / (step - prev[0]), 9)


_MODDED = re.compile(r"\bstep:(\d+)/(\d+)\s+(.*)$")
_COLON_PAIR = re.compile(r"([\w/.\-]+):(\S+)")


class ModdedNanogptParser(LogParser):
    """modded-nanogpt: ``step:N/M [train_loss:X] train_time:Tms step_avg:Ams`` and ``val_loss`` lines.

    The previous TRAINING line is the reference (a validation line only before the first one): the
    2025 records print without a CUDA sync, so a validation line's clock (synchronised) runs ~90 ms
    ahead of the training line before it, and measuring the next step from it would give 20 ms for
    an 88 ms step.
    """

    format = "modded_nanogpt"

    def __init__(self) -> None:
        super().__init__()
        self._last: tuple[int, float] | None = None

    def feed_clean(self, segment: str) -> list[LogSample]:
        match = _MODDED.search(segment)
        if match is None:
            self.skipped_lines += 1
            return []
        step, total = int(match.group(1)), int(match.group(2))
        fields = dict(_COLON_PAIR.findall(match.group(3)))
        train_ms = number(fields.get("train_time", "").removesuffix("ms"))
        avg_ms = number(fields.get("step_avg", "").removesuffix("ms"))
        common: dict[str, Any] = {
            "step": step,
            "total_steps": total,
            "step_time_avg_s": round(avg_ms / 1000, 9) if avg_ms is not None else None,
        }
        clock = train_ms / 1000 if train_ms is not None else None
        if "val_loss" in fields:
            if self._last is None and clock is not None:  # no training line yet: the log's first clock
                self._last = (step, clock)
            return self._emit(LogSample(kind="eval", val_loss=number(fields["val_loss"]), **common))
        step_time = per_step(self._last, step, clock)
        if clock is not None:
            self._last = (step, clock)
        return self._emit(LogSample(loss=number(fields.get("train_loss")), step_time_s=step_time, **common))


_DS_STEP = re.compile(r"\bstep=(\d+), skipped=(\d+)")
_DS_TIMER = re.compile(r"\bCurrSamplesPerSec=(\S+?),")
_DS_GLOBAL = re.compile(r"\bglobal_step=(\d+)")
_DS_MEM = re.compile(r"\bMaxMemAllocated=([\d.]+)GB")
_DS_PAUSE = re.compile(r"(?i)\beval|\bvalid|perplexity|checkpoint|\bsav(?:e|ing)\b")


def _epoch_seconds(iso: str | None) -> float | None:
    if iso is None:
        return None
    try:
        return (datetime.fromisoformat(iso) - datetime(1970, 1, 1)).total_seconds()
    except ValueError:
        return None


class DeepSpeedParser(LogParser):
    """DeepSpeed engine lines: ``[ts] ... step=N, skipped=K, lr=[...]`` then the timer's ``CurrSamplesPerSec``.

    The timer line completes the step line before it (same ``global_step``); a timer line alone
    becomes a sample of its own. ``step=0`` is printed by ``deepspeed.initialize`` before any
    training, so it is no reference (the first interval would time the setup). DeepSpeed >= 0.15
    logs at WARNING by default: these INFO lines appear once the script lowers the level of
    ``deepspeed.utils.logger`` and its handlers. ``MaxMemAllocated`` is GiB (DeepSpeed divides by 1024**3).
    """

    format = "deepspeed"

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[str, Any] | None = None
        self._ref: tuple[int, float] | None = None
        self._paused = False

    def feed_clean(self, segment: str) -> list[LogSample]:
        step_match = _DS_STEP.search(segment)
        if step_match is not None and int(step_match.group(1)) == 0:
            self.skipped_lines += 1  # printed by deepspeed.initialize, before any step: not a clock reading
            return self._flush()
        if step_match is not None:
            out = self._flush()
            step = int(step_match.group(1))
            stamp = iso_timestamp(segment)
            clock = _epoch_seconds(stamp)
            step_time = None if self._paused else per_step(self._ref, step, clock)
            self._ref, self._paused = ((step, clock) if clock is not None else None), False
            self._pending = {"step": step, "timestamp": stamp, "step_time_s": step_time,
                             "step_time_source": "log_timestamps" if step_time is not None else None}
            return out
        if timer := _DS_TIMER.search(segment):
            global_step = _DS_GLOBAL.search(segment)
            found = int(global_step.group(1)) if global_step else None
            out = []
            if self._pending is None or found not in (None, self._pending["step"]):
                out = self._flush()
                self._pending = {"step": found, "timestamp": iso_timestamp(segment)}
            mem = _DS_MEM.search(segment)
            self._pending.update(samples_per_s=number(timer.group(1)),
                                 mem_used_gib=number(mem.group(1)) if mem else None)
            return out + self._flush()
        if _DS_PAUSE.search(segment):
            self._paused = True  # an evaluation or a checkpoint: the interval timed it too
        self.skipped_lines += 1
        return []

    def _flush(self) -> list[LogSample]:
        pending, self._pending = self._pending, None
        return self._emit(LogSample(**pending)) if pending is not None else []

    def finish(self) -> list[LogSample]:
        return self._flush()


_LITGPT_ITER = re.compile(
    r"\biter (\d+) step (\d+)(?::| \|)\s*loss(?: train)?:?\s*([^\s,]+)"
    r".*?\biter time:\s*([\d.]+)\s*ms(\s*\((?:step|optimizer\.step)\))?"
)
_LITGPT_EPOCH = re.compile(r"\bEpoch (\d+) \|")
_LITGPT_VAL = re.compile(r"\biter (\d+): val loss ([^\s,]+)")
_LITGPT_TRAIN_TIME = re.compile(r"\bTraining [Tt]ime\s*:?\s*([\d.]+)\s*s\b")
_LITGPT_TOKENS = re.compile(r"\bTok/sec\s*:\s*([\d.,]+)\s*tok/s")
_LITGPT_MEMORY = re.compile(r"\bMemory used:\s*([\d.]+)\s*GB")


class LitgptParser(LogParser):
    """litgpt ``finetune_*``/``pretrain``: ``Epoch E | iter I step S | loss train: X, val: V | iter time: T ms (step)``.

    Also the older lit-gpt ``iter I step S: loss X, iter time: Tms (optimizer.step)``. One sample per
    optimizer step. When some of a step's iterations were not printed (``log_interval`` > 1), the
    step time is the mean printed iteration time times the iterations per step; when the log
    starts inside a step, that first step has no time.
    """

    format = "litgpt"

    def __init__(self) -> None:
        super().__init__()
        self._anchor: tuple[int, int] | None = None  # (iter, step) of the last optimizer step
        self._iters: list[tuple[int, float]] = []
        self._started = False
        self._summary: dict[str, Any] | None = None

    def feed_clean(self, segment: str) -> list[LogSample]:
        if match := _LITGPT_ITER.search(segment):
            out = self._flush_summary()
            return out + self._iteration(match, _LITGPT_EPOCH.search(segment))
        if match := _LITGPT_VAL.search(segment):
            step = self._anchor[1] if self._anchor else None
            eval_sample = LogSample(kind="eval", step=step, val_loss=number(match.group(2)))
            return self._flush_summary() + self._emit(eval_sample)
        summary_fields = (("elapsed_s", _LITGPT_TRAIN_TIME), ("tokens_per_s", _LITGPT_TOKENS),
                          ("mem_used_gib", _LITGPT_MEMORY))
        hits: dict[str, Any] = {key: number(m.group(1)) for key, rx in summary_fields if (m := rx.search(segment))}
        if not hits:
            self.skipped_lines += 1
            return []
        if hits.get("mem_used_gib") is not None:
            hits["mem_used_gib"] *= _GB_TO_GIB  # litgpt divides bytes by 1e9
        if "tokens_per_s" in hits:
            hits["tokens_per_s_scope"] = "job"
        self._summary = {**(self._summary or {}), **hits}
        return []

    def _iteration(self, match: re.Match[str], epoch: re.Match[str] | None) -> list[LogSample]:
        it, step, ms = int(match.group(1)), int(match.group(2)), number(match.group(4))
        is_step = match.group(5) is not None
        if not self._started:
            self._started = True
            if (step == 0 and not is_step) or (step == 1 and is_step):  # the run's first iteration
                self._anchor = (it - 1, 0)
        if ms is not None:
            self._iters.append((it, ms))
        if not is_step:
            return []
        step_time = None
        if self._anchor is not None and it > self._anchor[0] and step > self._anchor[1]:
            n_iters, n_steps = it - self._anchor[0], step - self._anchor[1]
            seen = [t for i, t in self._iters if self._anchor[0] < i <= it]
            if seen:
                total_ms = sum(seen) if len(seen) == n_iters else sum(seen) / len(seen) * n_iters
                step_time = round(total_ms / n_steps / 1000, 9)
        self._anchor, self._iters = (it, step), []
        # ``val:`` repeats the last evaluation on every line; the evaluation's own sample carries it.
        return self._emit(LogSample(step=step, loss=number(match.group(3)), step_time_s=step_time,
                                    epoch=float(epoch.group(1)) if epoch else None))

    def _flush_summary(self) -> list[LogSample]:
        summary, self._summary = self._summary, None
        if summary is None:
            return []
        return self._emit(LogSample(kind="summary", step=self._anchor[1] if self._anchor else None, **summary))

    def finish(self) -> list[LogSample]:
        return self._flush_summary()


_TT_STEP = re.compile(r"\bStep (\d+) \| (.*)$")
_TT_BAR_DESC = re.compile(r"(\d+)\|(\d+)\|Loss: ")


class TorchtuneParser(LogParser):
    """torchtune's metric logger ``Step N | loss:X lr:Y tokens_per_second_per_gpu:Z ...`` and its tqdm bar.

    The bar (``E|N|Loss: X: P%|...| n/total [elapsed<left, rate]``) shares a segment with the Step
    line that follows it; the rate of the bar that shows step N becomes that sample's
    ``step_time_avg_s`` and its elapsed time (whole seconds, from the epoch's start) ``elapsed_s``,
    which places the samples in time. No ``step_time_s``: nothing in the log times one step, and
    whole seconds cannot time a sub-second step. ``peak_memory_reserved`` is GiB (torchtune
    divides by 2**30).
    """

    format = "torchtune"

    def __init__(self) -> None:
        super().__init__()
        self._bar: tuple[int, float | None, float | None] | None = None

    def feed_clean(self, segment: str) -> list[LogSample]:
        match = _TT_STEP.search(segment)
        bar_text = segment[: match.start()] if match else segment
        descs = list(_TT_BAR_DESC.finditer(bar_text))
        state = parse_tqdm(bar_text)
        if descs and state is not None:
            self._bar = (int(descs[-1].group(2)), state.step_time_s, state.elapsed_s)
        if match is None:
            if state is None:
                self.skipped_lines += 1
            return []
        step = int(match.group(1))
        fields = dict(_COLON_PAIR.findall(match.group(2)))
        tokens = number(fields.get("tokens_per_second_per_gpu"))
        _, avg, elapsed = self._bar if self._bar is not None and self._bar[0] == step else (step, None, None)
        return self._emit(LogSample(
            step=step, loss=number(fields.get("loss")), tokens_per_s=tokens,
            tokens_per_s_scope="device" if tokens is not None else None,
            mem_used_gib=number(fields.get("peak_memory_reserved")),
            step_time_avg_s=round(avg, 9) if avg is not None else None, elapsed_s=elapsed,
        ))
