"""The median step time a run's own output shows, from a few KB of its log tail or its pane's screen.

Why: a heartbeat calls a run ``hung`` after a silence; a fixed 300 s is an hour of a bad guess on a run
of 0.1 s steps and a false alarm on a run of 2-minute steps. The run's own median step time (the
last records the tail holds, the first one dropped as warm-up) lets the threshold be "a few steps".
Formats are detected as :func:`~.ingest.ingest` does; anything unparseable answers None.
"""

from __future__ import annotations

import statistics

from .ingest import detect_format, make_parser
from .models import LOG_FORMATS, LogSample

MAX_RECORDS = 100


def median_step_time_s(text: str) -> tuple[float, int] | None:
    """(median seconds per step, records it covers) from ``text``, or None when it shows no step times."""
    if not text.strip():
        return None
    try:
        fmt = detect_format(text)
        if fmt is None or fmt not in LOG_FORMATS:
            return None
        samples = make_parser(fmt).feed_text(text)
    except Exception:  # a heartbeat must never fail on a log it cannot read
        return None
    times = [s.step_time_s for s in samples if isinstance(s, LogSample) and s.kind == "train" and s.step_time_s]
    if len(times) > 1:
        times = times[1:]
    times = times[-MAX_RECORDS:]
    if not times:
        return None
    return statistics.median(times), len(times)
