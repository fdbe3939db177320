"""The median step time a run's own output shows, from a few KB of its log tail or its pane's screen.

Why: a heartbeat calls a run ``hung`` after a silence; a fixed 300 s is an hour of a bad guess on a run
of 0.1 s steps and a false alarm on a run of 2-minute steps. The run's own median step time (the
last records the tail holds, the first one dropped as warm-up) lets the threshold be "a few steps".
Formats are detected as :func:`~.ingest.ingest` does; anything unparseable answers None.
"""

from __future__ import annotations

import statistics

from .probecap import tail_samples

MAX_RECORDS = 100


def median_step_time_s(text: str, fmt: str | None = None, regex: str | None = None) -> tuple[float, int] | None:
    """(median seconds per step, records it covers) from ``text``, or None when it shows no step times.

    ``fmt``/``regex``: the run's recorded log layout (a custom regex is detected as nothing).
    """
    if not text.strip():
        return None
    try:
        samples = tail_samples(text, fmt, regex)
    except Exception:  # a heartbeat must never fail on a log it cannot read
        return None
    times = [s.step_time_s for s in samples if s.kind == "train" and s.step_time_s]
    if len(times) > 1:
        times = times[1:]
    times = times[-MAX_RECORDS:]
    if not times:
        return None
    return statistics.median(times), len(times)
