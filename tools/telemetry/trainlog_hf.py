"""Hugging Face Trainer logs (and TRL, Unsloth, axolotl, which print through it): the step of each dict.

The Trainer's log dicts (``{'loss': ..., 'epoch': ...}``) carry no step number, so the step has to
be read off what surrounds them. What surrounds them depends on how the user captured the output,
and each capture of ``../shared/fixtures/logs/wild/`` and ``tests/fixtures/logs/own-hf/`` showed one:

* **A bar, dicts printed at once** (a tmux pane, ``python -u``, and transformers 5 under ``nohup``,
  which flushes each dict): tqdm clears its bar, the dict is printed, and the bar is redrawn at the
  exact step. The dict's step is the position of the next training-bar state. The state *before* the
  dict is not: tqdm draws at most 10 times a second, so at 30 steps/s it showed step 3 before the
  dict of step 5 (own-hf ``hf_tqdm_nohup.log``).
* **A bar, dicts held in stdout's buffer** (transformers 4.57 under ``nohup``, the Qwen capture):
  the bar (stderr) runs ahead and the dicts arrive later in a burst, in order. Every dict left a
  redraw of the same position in the bar stream (``10/1755`` twice); those positions are queued and
  the dicts take them in order.
* **A rendered terminal** (a pasted session, the DPO capture): only the lines a newline kept. Several
  dicts arrive before a bar; their ``epoch`` is proportional to the step, so one known (epoch, step)
  pair places the rest, rounded to a multiple of ``logging_steps``.
* **No bar** (``disable_tqdm=True``, Unsloth's README log): the closing summary gives the step count
  (``train_runtime`` x ``train_steps_per_second``, or a printed ``Total steps = 60``), and the dicts
  are placed by their epoch or, when every epoch prints as ``0.0`` (60 steps of 108,971 examples),
  by their count times ``logging_steps``. Until then they are held; a dict that nothing places keeps
  ``step=None``. A live run would get no sample until it ends, so the caller may state ``logging_steps``
  (``HfTrainerParser(logging_steps=10)``, recorded at launch): with no bar seen, the k-th training dict is
  then step k x logging_steps as it arrives (an eval dict: the last training step), and the log's write
  times time it (:mod:`.writetimes`). Wrong for ``logging_first_step=True`` (one extra dict at step 1)
  and for a ratio ``logging_steps`` below 1; a printed ``logging_steps = N`` overrides the stated one.

TRL's ``num_tokens`` is cumulative over all ranks: its difference between two dicts over their step
difference is tokens per step, and over the bar's mean step time in between, a job-wide tokens/s.

>>> bars = "\\r".join(f"{n}/50 [00:0{n}<00:45, 2.00it/s]" for n in range(1, 6))
>>> dict_line = "\\r{'loss': 2.5, 'num_tokens': 5000.0, 'epoch': 0.1}\\n\\r5/50 [00:05<00:45, 2.00it/s]"
>>> p = HfTrainerParser()
>>> [(s.step, s.loss, s.tokens_per_s) for s in p.feed_text(bars + dict_line) if s.loss]
[(5, 2.5, 2000.0)]
"""

from __future__ import annotations

import ast
import itertools
import math
import re
from collections import deque
from typing import Any

from .models import LogSample
from .trainlog_base import LogParser
from .trainlog_formats import TqdmState, parse_tqdm
from .trainlog_hf_metrics import PendingDict, hf_float, hf_metrics_sample, snap_to

_HF_DICT_START = re.compile(r"\{'\w+'\s*:")
_HF_BLOCK_START = re.compile(r"\*{5} (\w+) metrics \*{5}")
_HF_BLOCK_LINE = re.compile(r"^\s*(\w+)\s*=\s*(\S.*?)\s*$")
# Unsloth's banner ("Total steps = 60") and the Trainer's info block ("Total optimization steps = 1,755").
_TOTAL_STEPS = re.compile(r"\bTotal (?:optimization )?steps\s*=\s*([\d,]+)")
_LOGGING_STEPS = re.compile(r"\blogging_steps\s*[=:]\s*(\d+)\b")
_LABELLED_BAR = re.compile(r":\s*\d{1,3}%\|")
# HfArgumentParser's --logging_steps / --logging-steps (a space or "="), and the keyword in Python code.
_COMMAND_EVERY = re.compile(r"(?:--logging[_-]steps(?:\s*=\s*|\s+)|\blogging_steps\s*=\s*)['\"]?(\d+(?:\.\d*)?)\b")
_COMMAND_STRATEGY = re.compile(r"logging[_-]strategy(?:\s*=\s*|\s+)['\"]?(\w+)")


def logging_steps_in_command(command: str) -> int | None:
    """The ``logging_steps`` a launch command line sets (the last one wins, as in argparse), or None.

    A convenience, not a guarantee: it reads the text, not the program. A config file, an environment
    variable or a default the program sets itself are not seen, and a ``logging_steps`` meant for
    something else is taken. A ratio (below 1, a fraction of the total steps) or another
    ``logging_strategy`` than steps gives None. State it at launch to be sure.

    >>> logging_steps_in_command("python train.py --logging_steps 10 --max_steps 100")
    10
    >>> logging_steps_in_command("accelerate launch t.py --logging-steps=5")
    5
    >>> logging_steps_in_command('python -c "TrainingArguments(logging_steps=25)"')
    25
    >>> [logging_steps_in_command(c) for c in ("t.py --logging_steps 0.1", "t.py --logging_steps 5 "
    ...                                        "--logging_strategy epoch", "t.py --max_steps 9")]
    [None, None, None]
    """
    found = _COMMAND_EVERY.findall(command)
    strategy = _COMMAND_STRATEGY.findall(command)
    if not found or (strategy and strategy[-1].lower() != "steps"):
        return None
    value = float(found[-1])
    return int(value) if value >= 1 and value.is_integer() else None


class HfTrainerParser(LogParser):
    """Hugging Face Trainer: ``{'loss': ...}`` dicts (floats or quoted strings), tqdm, metrics blocks.

    Bar states become samples with the bar's rate as ``step_time_s``; dicts become samples with the
    step worked out as the module docstring says. The first bar's total is taken as the training
    bar; bars with another total are eval loops and are not steps.
    """

    format = "hf_trainer"

    def __init__(self, *, logging_steps: int | None = None) -> None:
        super().__init__()
        self._dict_buffer: str | None = None
        self._block: tuple[str, dict[str, str]] | None = None
        self._train_total: int | None = None
        self._printed_total: int | None = None
        self._last_n: int | None = None
        self._last_bar_step: int | None = None
        self._claimed: int | None = None
        self._events: deque[int] = deque(maxlen=1024)  # stdout's buffer holds far fewer dicts
        self._pending: list[PendingDict] = []
        self._anchor: tuple[float, int, float] | None = None
        self._logging_steps: int | None = logging_steps or None
        self._stated = self._logging_steps is not None  # stated by the caller: place dicts without a total
        self._inferred_every: int | None = None
        self._last_train_step = 0
        self._step_times: dict[int, float] = {}
        self._tokens: tuple[int, float] | None = None

    # -- segments -------------------------------------------------------------------------------
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
            if not self._banner(segment):
                self.skipped_lines += 1
            return out
        return out + self._bar(segment)

    def _banner(self, segment: str) -> bool:
        """Unsloth's / the Trainer's printed step total and ``logging_steps``; True when the line had one."""
        found = False
        if total := _TOTAL_STEPS.search(segment):
            self._printed_total = int(total.group(1).replace(",", ""))
            found = True
        if every := _LOGGING_STEPS.search(segment):
            self._logging_steps = int(every.group(1)) or None
            found = True
        return found

    def _bar(self, segment: str) -> list[LogSample]:
        state = parse_tqdm(segment)
        if state is None or _LABELLED_BAR.search(segment):
            return []  # the Trainer's bar has no label; "Loading weights: 100%|" (axolotl) is another one
        if self._train_total is None:
            self._train_total = state.total
        if state.total != self._train_total:
            return []  # an eval loop's bar: not a training step
        out = self._resolve_on_bar(state.n) if self._pending else []
        if state.n == self._last_n and state.n > 0 and state.n != self._claimed:
            self._events.append(state.n)  # a redraw at the same step: a dict was written here
        if state.n != self._claimed:
            self._claimed = None
        self._last_n = state.n
        if state.n == 0:
            return out  # the bar before the first step: nothing measured yet
        if state.n == self._last_bar_step:
            self.duplicate_lines += 1  # tqdm redrew the same position
            return out
        self._last_bar_step = state.n
        if state.step_time_s is not None:
            self._step_times[state.n] = state.step_time_s
        return [*out, self._bar_sample(state)]

    @staticmethod
    def _bar_sample(state: TqdmState) -> LogSample:
        return LogSample(step=state.n, total_steps=state.total, step_time_s=state.step_time_s,
                         elapsed_s=state.elapsed_s, eta_s=state.remaining_s)

    # -- dicts ----------------------------------------------------------------------------------
    def _close_dict(self) -> list[LogSample]:
        text = self._dict_buffer or ""
        self._dict_buffer = None
        try:
            value = ast.literal_eval(text[: text.index("}") + 1])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            self.skipped_lines += 1
            return []
        if not isinstance(value, dict):
            self.skipped_lines += 1
            return []
        return self._metrics(value)

    def _close_block(self) -> list[LogSample]:
        assert self._block is not None
        name, values = self._block
        self._block = None
        prefixed = {
            key if key.startswith(f"{name}_") or key == "epoch" else f"{name}_{key}": v for key, v in values.items()
        }
        return self._metrics(prefixed, counted=False)

    def _metrics(self, metrics: dict[str, Any], *, counted: bool = True) -> list[LogSample]:
        probe = hf_metrics_sample(metrics, None, self._train_total)
        if probe is None:
            self.skipped_lines += int(counted)
            return []
        if probe.kind == "summary":
            return self._summary(metrics, probe)
        if probe.step is not None:
            return self._place(metrics, probe.step)
        if self._events:
            return self._place(metrics, self._events.popleft())
        if self._train_total is None and self._logging_steps and (self._printed_total or self._stated):
            step = self._last_train_step + (self._logging_steps if probe.kind == "train" else 0)
            return self._place(metrics, step)
        self._pending.append(PendingDict(metrics, probe))
        return []

    def _place(self, metrics: dict[str, Any], step: int) -> list[LogSample]:
        sample = hf_metrics_sample(metrics, step, self._train_total or self._printed_total)
        if sample is None:
            return []
        if sample.kind == "train":
            self._last_train_step = step
            sample = self._with_tokens(sample, metrics, step)
            self._step_times = {n: t for n, t in self._step_times.items() if n > step}  # used up
        return self._emit(sample)

    def _with_tokens(self, sample: LogSample, metrics: dict[str, Any], step: int) -> LogSample:
        """TRL's cumulative ``num_tokens`` -> tokens per step -> tokens/s over the bar's step times."""
        tokens = hf_float(metrics.get("num_tokens"))
        if tokens is None:
            return sample
        previous, self._tokens = self._tokens, (step, tokens)
        if previous is None and self._step_times and min(self._step_times) == 1:
            previous = (0, 0.0)  # the bar was seen from its first step: the count started at zero
        if previous is None or step <= previous[0] or tokens < previous[1]:
            return sample
        times = [t for s, t in self._step_times.items() if previous[0] < s <= step]
        if not times:
            return sample
        per_step = (tokens - previous[1]) / (step - previous[0])
        return sample.model_copy(update={"tokens_per_s": round(per_step * len(times) / sum(times), 3),
                                         "tokens_per_s_scope": "job"})

    # -- placing held dicts ---------------------------------------------------------------------
    def _every(self) -> int | None:
        return self._logging_steps or self._inferred_every

    def _infer_every(self, estimates: list[tuple[PendingDict, float]]) -> None:
        train = [est for p, est in estimates if p.kind == "train"]
        gaps = [b - a for a, b in itertools.pairwise(train) if b - a >= 0.5]
        if gaps and self._every() is None:
            self._inferred_every = max(1, round(min(gaps)))

    def _resolve_on_bar(self, n: int) -> list[LogSample]:
        """Held dicts met a bar state: the redraw after one dict, or a rendered terminal's kept line.

        One dict (or a train and an eval dict of one epoch) takes the bar's position, unless a known
        (epoch, step) pair puts it further off than the printed epochs' precision allows: then the
        bar is a later line (the final bar after the last log) and the proportion wins. Several dicts
        of different epochs are a rendered terminal: the last takes the bar's position when nothing
        is known yet, and each is placed by its epoch.
        """
        pending, self._pending = self._pending, []
        last = pending[-1]
        if len({p.epoch for p in pending}) == 1:
            estimate = self._by_anchor(last)
            if estimate is None or abs(estimate - n) <= self._tolerance(last, estimate):
                self._claimed = n
                self._set_anchor(last, n)
                return self._flush_at([(p, float(n)) for p in pending])
            return self._flush_at([(p, self._by_anchor(p) or estimate) for p in pending])
        if self._anchor is None:
            self._set_anchor(last, n)
        estimates = [(p, self._by_anchor(p)) for p in pending]
        if any(e is None for _, e in estimates):
            return self._flush_at([(p, float(n)) for p in pending])
        placed = [(p, e or 0.0) for p, e in estimates]
        if abs(placed[-1][1] - n) <= self._tolerance(last, placed[-1][1]):
            self._set_anchor(last, n)
        return self._flush_at(placed)

    def _set_anchor(self, pending: PendingDict, step: int) -> None:
        if pending.epoch and (self._anchor is None or pending.epoch >= self._anchor[0]):
            self._anchor = (pending.epoch, step, pending.epoch_half)

    def _by_anchor(self, pending: PendingDict) -> float | None:
        """The step in proportion to the epoch, from the latest known (epoch, step) pair."""
        if self._anchor is None or not pending.epoch:
            return None
        epoch_a, step_a, _ = self._anchor
        return pending.epoch * step_a / epoch_a

    def _tolerance(self, pending: PendingDict, estimate: float) -> float:
        """Steps an epoch-based estimate can be off: both epochs' rounding, and half a logging interval."""
        if self._anchor is None:
            return math.inf
        epoch_a, step_a, half_a = self._anchor
        return estimate * half_a / epoch_a + pending.epoch_half * step_a / epoch_a + 0.5 * (self._every() or 1) + 0.5

    def _flush_at(self, estimates: list[tuple[PendingDict, float]]) -> list[LogSample]:
        self._infer_every(estimates)
        out: list[LogSample] = []
        for pending, estimate in estimates:
            out.extend(self._place(pending.metrics, snap_to(estimate, self._every())))
        return out

    def _summary(self, metrics: dict[str, Any], probe: LogSample) -> list[LogSample]:
        """The closing summary: place what is held, then the summary itself at the last step."""
        runtime, per_s = hf_float(metrics.get("train_runtime")), hf_float(metrics.get("train_steps_per_second"))
        total = self._last_n or self._printed_total
        exact = total
        if total is None and runtime and per_s:
            total = round(runtime * per_s)  # an estimate: 3-digit steps/s, 1575 s x 0.168 = 264.6 for 264
        out = self._resolve_at_end(total, probe.epoch, exact=exact is not None) if self._pending else []
        step = probe.step if probe.step is not None else exact
        sample = hf_metrics_sample(metrics, step, self._train_total or self._printed_total)
        return out + (self._emit(sample) if sample is not None else [])

    def _resolve_at_end(self, total: int | None, final_epoch: float | None, *, exact: bool) -> list[LogSample]:
        pending, self._pending = self._pending, []
        train = [p for p in pending if p.kind == "train"]
        if total and final_epoch and train and len({p.epoch for p in train}) == len(train):
            return self._flush_at([(p, (p.epoch or 0.0) / final_epoch * total) for p in pending])
        if total and train and (self._printed_total or self._last_n is None):
            # logs at multiples of logging_steps: K = floor(T / L); an estimated T is rounded instead
            every = self._logging_steps or max(1, total // len(train) if exact else round(total / len(train)))
            self._inferred_every = every
            out: list[LogSample] = []
            step = self._last_train_step
            for p in pending:
                step += every if p.kind == "train" else 0
                out.extend(self._place(p.metrics, step))
            return out
        return self._unplaced(pending)

    def _unplaced(self, pending: list[PendingDict]) -> list[LogSample]:
        """Held dicts nothing can place: their anchor's proportion if there is one, else ``step=None``."""
        estimates = [(p, self._by_anchor(p)) for p in pending]
        if all(e is not None for _, e in estimates):
            return self._flush_at([(p, e or 0.0) for p, e in estimates])
        out: list[LogSample] = []
        for p in pending:
            sample = hf_metrics_sample(p.metrics, None, self._train_total or self._printed_total)
            if sample is not None:
                out.append(sample)
        return out

    def finish(self) -> list[LogSample]:
        out: list[LogSample] = []
        if self._block is not None:
            out.extend(self._close_block())
        if self._dict_buffer is not None:
            self._dict_buffer = None
            self.skipped_lines += 1  # a dict that never closed: truncated capture
        if self._pending and self._last_n:
            out.extend(self._resolve_on_bar(self._last_n))  # the input ended where the bar last stood
        elif self._pending:
            out.extend(self._unplaced(self._pending))
            self._pending = []
        return out
