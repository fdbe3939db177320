"""PyTorch Lightning progress bars, TQDM (``Epoch N: P%|bar| i/n [t<eta, R it/s, k=v]``) and Rich.

Why a global step: Lightning draws one bar per epoch, so the bar's position restarts at 0 every
epoch; the step a run is at is ``epoch x batches per epoch + position`` (epoch 5, batch 1 of 2 is
step 11). The step time is the bar's rate (``it/s`` or ``s/it``) when the position first reaches a
value; later redraws at the same position are the postfix being updated (Lightning redraws after
``training_step`` to show its loss) or the epoch's end after validation (the walk-jump capture: 9.19
it/s for the batch, 4.82 it/s for the same position once validation ran). So a step's sample takes
the first redraw's rate and the last redraw's loss, and is emitted when the bar moves on (or at the
end). A bar reset to ``0/n`` is no step. Rich's bar (``Epoch 2/2 ━━━ 12/12 0:00:00 • 0:00:00
584.40it/s train_loss: 0.053``, Lightning's default when ``rich`` is installed) is read the same way.
Lightning 1.x counted validation batches in the epoch bar's total; that total is what is used.

>>> p = LightningParser()
>>> bar = "Epoch 1:  50%|#  | 1/2 [00:00<00:00, {}it/s, loss={}]"
>>> text = "\\r".join([bar.format("4.00", 0.9), bar.format("3.90", 0.8), bar.format("2.00", 0.8)])
>>> [(s.step, s.epoch, s.step_time_s, s.loss) for s in p.feed_text(text)], p.duplicate_lines
([(3, 1.0, 0.25, 0.8)], 2)
"""

from __future__ import annotations

import re

from .lines import parse_number
from .models import LogSample
from .trainlog_base import LogParser
from .trainlog_formats import TqdmState, clock_to_s, parse_tqdm

_LIGHTNING_LABEL = re.compile(
    r"\b(?:Epoch (?P<epoch>\d+)|(?P<other>Validation|Testing|Sanity Checking|Predicting)(?: DataLoader \d+)?)"
    r":\s*\d+%"
)
_RICH_BAR = re.compile(
    r"\b(?:Epoch (?P<epoch>\d+)/(?P<last>\d+)|(?P<other>Validation|Testing|Sanity Checking|Predicting))\s+\S*?\s*"
    r"(?P<n>\d+)/(?P<total>\d+)\s+(?P<elapsed>[\d:]+)\s*\u2022\s*(?P<remaining>[\d:\-]+)\s+"
    r"(?P<rate>[\d.]+)(?P<unit>it/s|s/it)(?P<post>.*)$"
)
_RICH_PAIR = re.compile(r"([\w/.\-]+):\s*(\S+)")
LOSS_KEYS = ("train_loss_step", "train_loss", "loss_step", "loss", "train/loss", "train_loss_epoch")


def _num(token: str) -> float | None:
    try:
        return parse_number(token)
    except ValueError:
        return None


def lightning_label(line: str) -> tuple[str, int | None] | None:
    """``("train", epoch)`` for ``Epoch N: P%``, ``("eval", None)`` for validation/test bars.

    ``("sanity", None)`` for Lightning's sanity check, which validates a couple of batches before
    training: no step and no evaluation of the model being trained.
    """
    match = _LIGHTNING_LABEL.search(line)
    if not match:
        return None
    if match.group("epoch") is not None:
        return "train", int(match.group("epoch"))
    return ("sanity" if match.group("other") == "Sanity Checking" else "eval"), None


def parse_rich_bar(line: str) -> tuple[str, int | None, TqdmState, int | None] | None:
    """A Rich progress-bar line as (kind, epoch, state, last epoch index); the bar glyphs are ignored."""
    match = _RICH_BAR.search(line)
    if not match:
        return None
    rate = _num(match.group("rate"))
    step_time = None if not rate else (rate if match.group("unit") == "s/it" else 1.0 / rate)
    remaining = match.group("remaining")
    state = TqdmState(
        n=int(match.group("n")),
        total=int(match.group("total")),
        elapsed_s=clock_to_s(match.group("elapsed")),
        remaining_s=None if "-" in remaining else clock_to_s(remaining),
        step_time_s=step_time,
        postfix=dict(_RICH_PAIR.findall(match.group("post"))),
    )
    if match.group("epoch") is not None:
        return "train", int(match.group("epoch")), state, int(match.group("last"))
    return ("sanity" if match.group("other") == "Sanity Checking" else "eval"), None, state, None


def _loss(state: TqdmState) -> float | None:
    for key in LOSS_KEYS:
        if key in state.postfix:
            return _num(state.postfix[key])
    return None


class LightningParser(LogParser):
    """Lightning bars as one training sample per global step (see the module docstring).

    A notebook widget prints ``Epoch 39: 100%`` and the counts on the next line; the epoch is
    carried over to that line. A validation or test bar gives one ``eval`` sample when it completes,
    at the training step it ran after.
    """

    format = "lightning"

    def __init__(self) -> None:
        super().__init__()
        self._pending_label: tuple[str, int | None] | None = None
        self._open: LogSample | None = None
        self._step = 0

    def feed_clean(self, segment: str) -> list[LogSample]:
        rich = parse_rich_bar(segment)
        if rich is not None:
            return self._state(*rich)
        label = lightning_label(segment)
        state = parse_tqdm(segment)
        if label is not None and state is None:
            self._pending_label = label
            return []
        if state is None:
            self.skipped_lines += 1
            return []
        if label is None:
            label, self._pending_label = self._pending_label, None
        if label is None:
            self.skipped_lines += 1  # a bare tqdm bar that no Lightning label introduced
            return []
        return self._state(label[0], label[1], state)

    def _state(self, kind: str, epoch: int | None, state: TqdmState, last_epoch: int | None = None
               ) -> list[LogSample]:
        if kind != "train" or epoch is None:
            if state.total is None or state.n != state.total or state.n == 0 or kind == "sanity":
                return []
            return self._close() + self._emit(LogSample(kind="eval", step=self._step or None, total_steps=None,
                                                        eval_runtime_s=state.elapsed_s))
        total = state.total or 0
        step = epoch * total + state.n
        if step == self._step and state.n > 0:
            self.duplicate_lines += 1  # a redraw: keep the first rate, take the newest loss
            loss = _loss(state)
            if self._open is not None and loss is not None:
                self._open = self._open.model_copy(update={"loss": loss})
            return []
        if state.n == 0:
            return []  # the bar reset for the next epoch, or the run's first draw: no batch done
        out = self._close()
        self._step = step
        runs_for = (last_epoch + 1) * total if last_epoch is not None else None  # Rich prints the last epoch
        self._open = LogSample(kind="train", step=step, total_steps=runs_for, epoch=float(epoch), loss=_loss(state),
                               step_time_s=state.step_time_s, elapsed_s=state.elapsed_s)
        return out

    def _close(self) -> list[LogSample]:
        sample, self._open = self._open, None
        return self._emit(sample) if sample is not None else []

    def finish(self) -> list[LogSample]:
        return self._close()
