"""Step times for a log that prints none: from its own timestamps, else from when its lines were written.

Why: an HF Trainer run with ``disable_tqdm=True`` prints one dict line every ``logging_steps`` steps
and a closing summary; while it runs, no line holds a step time, so ``check`` saw "data reaches 0 s"
and the throughput trigger had nothing to judge. The file itself is a clock: a look at a log that
ended on a line end knows when that line was written (:meth:`~.tail.LogTail.look`), and two looks at
different steps give ``(written_b - written_a) / (step_b - step_a)`` seconds per step.

Every timing a log carries, in this order; the first that gives a number is used for the whole log,
and its name is the ``step_time_source`` a check reports:

1. ``log``: per-step times printed on the lines (nanoGPT ``time Xms``, a tqdm bar's rate, Megatron's
   ``elapsed time per iteration``), used as printed and never replaced: they time each step, while
   the other sources only average over the steps between two lines.
2. ``log_timestamps``: a wall-clock time on each record (torchtitan, Megatron prefixes): the time
   difference over the step difference between records.
3. ``write_times``: the file's write times, from the looks every check records (:mod:`.lookstore`).
4. ``summary``: the closing summary (``train_runtime`` / steps, :func:`.runprogress.summary_step_time`).

What gives no interval, by design: the first look after attaching (nothing earlier to compare with),
lines that arrived in one write (a block-buffered flush: one look sees them all at one time), and
records without a step number. A block-buffered log (``python`` without ``-u`` writing to a file) does
all three at once: it stays empty for its first 8 KB of output and then lands in bursts. Its own
per-step times still build windows (source 1: the timeline adds them up, whenever the lines arrived);
a log with neither is named in plain words (:attr:`LogTiming.missing`) with what to change.

>>> spans([(0.0, 10), (5.0, 20), (5.0, 30), (11.0, 40)])
[(10, 20, 0.5), (20, 40, 0.3)]
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gpu_preflight.tools.common.nextstep import call

from .models import LogSample, StepTimeSource
from .tail import Look

BUFFER_ADVICE = ("if its lines land in bursts it writes through a buffer: run python with -u (or set "
                 "PYTHONUNBUFFERED=1), or make its logging flush each line")
SILENT_LOG_AFTER_S = 60.0


def logging_steps_advice() -> str:
    """What gives an HF Trainer log without a bar live step times: its dicts carry no step number."""
    return (f"state the run's logging_steps at launch ({call('launch_run')}: --logging-steps N, or --logging_steps N "
            "in its command) for live step times: its dict lines are then placed on steps as they arrive and timed "
            "by the log's write times")
"""How long a running job may keep its log empty before the check says it may be block-buffered."""

Span = tuple[int, int, float]
"""(after this step, up to and including this step, seconds per step)."""


@dataclass(frozen=True)
class LogTiming:
    """The samples with derived step times filled in, where the times came from, and what is missing."""

    samples: list[LogSample]
    source: str | None
    filled: int = 0
    missing: str | None = None


def spans(points: Sequence[tuple[float, int]]) -> list[Span]:
    """Intervals between consecutive (time, step) points where both the time and the step advanced.

    Points at the same time as the last kept one (arrived together) are skipped: their steps fall into
    the next interval, which averages over them. A step going back (a restarted run) starts afresh.
    """
    out: list[Span] = []
    prev: tuple[float, int] | None = None
    for t, step in points:
        if prev is None or step < prev[1]:
            prev = (t, step)
        elif step > prev[1] and t > prev[0]:
            out.append((prev[1], step, round((t - prev[0]) / (step - prev[1]), 9)))
            prev = (t, step)
    return out


def fill(samples: Sequence[LogSample], found: Sequence[Span], source: StepTimeSource) -> tuple[list[LogSample], int]:
    """Each training record without a step time gets the step time of the interval its step falls in."""
    ordered = sorted(found, key=lambda s: s[1])
    ends = [s[1] for s in ordered]
    out: list[LogSample] = []
    filled = 0
    for sample in samples:
        if sample.kind == "train" and sample.step is not None and sample.step_time_s is None:
            at = bisect.bisect_left(ends, sample.step)
            if at < len(ordered) and ordered[at][0] < sample.step <= ordered[at][1]:
                sample = sample.model_copy(update={"step_time_s": ordered[at][2], "step_time_source": source})
                filled += 1
        out.append(sample)
    return out, filled


def _timestamp_points(train: Sequence[LogSample]) -> list[tuple[float, int]]:
    points: list[tuple[float, int]] = []
    origin: datetime | None = None
    for s in train:
        if s.timestamp is None or s.step is None:
            continue
        try:
            stamp = datetime.fromisoformat(s.timestamp)
        except ValueError:
            continue
        origin = origin or stamp
        try:
            points.append(((stamp - origin).total_seconds(), s.step))
        except TypeError:  # one stamp with a zone, one without: no common clock
            return []
    return points


Remember = Callable[[str, Look, int], list[tuple[float, int]]]


def time_log(samples: Sequence[LogSample], *, path: str | None, look: Look | None,
             remember: Remember | None = None) -> LogTiming:
    """Fill in step times from the log's timestamps or write times where it prints none (see the module doc).

    ``look`` is the look just taken at ``path`` (None: it ended mid-line or was still growing);
    ``remember`` records it and returns every look of that file (default :func:`.lookstore.remember`).
    """
    train = [s for s in samples if s.kind == "train"]
    if not train:
        return LogTiming(list(samples), None)
    if any(s.step_time_s is not None for s in train):
        return LogTiming(list(samples), "log")
    stepped = [s for s in train if s.step is not None]
    if not stepped:
        return LogTiming(list(samples), None, missing=(
            f"the log's {len(train)} training records carry neither a step time nor a step number, so no clock "
            "can time its steps: keep its progress bar on, or make it print the step (or a per-step time)"))
    from_stamps = spans(_timestamp_points(stepped))
    if from_stamps:
        out, filled = fill(samples, from_stamps, "log_timestamps")
        return LogTiming(out, "log_timestamps", filled)
    looks: list[tuple[float, int]] = []
    if look is not None and path is not None:
        if remember is None:
            from .lookstore import remember as stored
            remember = stored
        try:
            looks = remember(path, look, stepped[-1].step or 0)
        except (sqlite3.Error, OSError):  # a read-only or locked state folder must not fail the check
            looks = []
    out, filled = fill(samples, spans(looks), "write_times")
    if filled:
        return LogTiming(out, "write_times", filled)
    return LogTiming(list(samples), None, missing=_why_untimed(len(train), look, looks))


def _why_untimed(records: int, look: Look | None, looks: list[tuple[float, int]]) -> str:
    head = f"the log prints no step times, and its {records} training record{'s' if records != 1 else ''}"
    if look is None:
        why = " end in a line still being written, so no write time is known yet"
    elif len({step for _, step in looks}) <= 1:
        why = (" arrived in one write as far as the looks so far show (this may be the first look at the log: "
               "write times need two looks at a growing log, so check again after its next line)")
    else:
        why = " show no step advancing between looks"
    return f"{head}{why}; {BUFFER_ADVICE}"


def silent_log(records: int, running: bool, elapsed_s: float | None, size_bytes: int | None) -> str | None:
    """Why a running job's log holds no training record after a while, or None when that is not the case."""
    if records or not running or elapsed_s is None or elapsed_s < SILENT_LOG_AFTER_S:
        return None
    held = "is empty" if not size_bytes else f"holds {size_bytes:,} bytes but no training record"
    return (f"the job has run {elapsed_s:.0f} s and its log {held}: if it prints per step, its output is probably "
            f"block-buffered (python writing to a file flushes every 8 KB); {BUFFER_ADVICE}")
