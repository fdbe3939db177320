"""Probe caps: a probe let through the gate must stop at its step or time cap.

Why: the run-calibrated policy opens the probe gate on Stage A alone and says "run 20-100 steps"
(Stage B), so a probe is how an agent gets GPU time before the full checklist is done. A probe that
keeps running past its cap *is* the long run the gate exists to hold back, and it keeps billing. The
gate records the caps on the run (``cap_steps``, ``cap_seconds`` from ``[gates.probe]``); this module
says when the run has reached them, and :func:`gpu_preflight.tools.dispatch.interrupt_run` stops it.

Where it is seen: ``run_check`` (from the whole log) and ``heartbeat(run_id)`` (from the log tail the
heartbeat already reads, :func:`steps_in_tail`) both report ``probe_cap``; ``preflight check`` and
``preflight watch`` stop a ``kind=probe`` run at its cap by default (``--no-enforce-caps`` to only
report). MCP ``run_check``/``heartbeat`` stay read-only and say how to stop it (:func:`stop_hint`).

"Reached" is ``>=``: a probe capped at 100 steps that logged step 100 has had its steps, and the
minutes cap counts from the run's start record.
"""

from __future__ import annotations

from pydantic import BaseModel

from gpu_preflight.tools.common.nextstep import call

from .models import LogSample


def stop_hint() -> str:
    """How the caller stops a probe past its cap, in its own interface (MCP has no tool that interrupts)."""
    return call("stop_run")


class ProbeCap(BaseModel):
    cap_steps: int | None = None
    cap_seconds: float | None = None
    steps_done: int | None = None
    elapsed_s: float | None = None
    reached: bool
    reason: str


def probe_cap(cap_steps: int | None, cap_seconds: float | None, steps_done: int | None,
              elapsed_s: float | None) -> ProbeCap | None:
    """The cap status of a probe run, or None when the run carries no cap (a full run).

    >>> probe_cap(100, 900.0, 99, 300.0).reached
    False
    >>> probe_cap(100, 900.0, 100, 300.0).reason
    'probe reached its cap: 100 steps logged (cap 100)'
    >>> probe_cap(None, 900.0, None, 901.0).reason
    'probe reached its cap: 15 min running (cap 15 min)'
    """
    if cap_steps is None and cap_seconds is None:
        return None
    why: list[str] = []
    if cap_steps is not None and steps_done is not None and steps_done >= cap_steps:
        why.append(f"{steps_done} steps logged (cap {cap_steps})")
    if cap_seconds is not None and elapsed_s is not None and elapsed_s >= cap_seconds:
        why.append(f"{elapsed_s / 60:.3g} min running (cap {cap_seconds / 60:.3g} min)")
    if why:
        reason = "probe reached its cap: " + "; ".join(why)
    else:
        left = []
        if cap_steps is not None:
            left.append(f"{cap_steps - (steps_done or 0)} steps")
        if cap_seconds is not None and elapsed_s is not None:
            left.append(f"{(cap_seconds - elapsed_s) / 60:.3g} min")
        reason = "within its probe cap" + (f" ({' / '.join(left)} left)" if left else "")
    return ProbeCap(cap_steps=cap_steps, cap_seconds=cap_seconds, steps_done=steps_done, elapsed_s=elapsed_s,
                    reached=bool(why), reason=reason)


def tail_samples(text: str, fmt: str | None = None, regex: str | None = None,
                 logging_steps: int | None = None) -> list[LogSample]:
    """The training-log records in ``text``: in the run's recorded format or regex, else the detected one.

    Why the recorded layout first: a custom regex layout is detected as nothing, so a probe launched with
    one had its step cap never counted (only its time cap). Never raises: a heartbeat must not fail on a log.
    """
    from gpu_preflight.tools.common.errors import PreflightError

    from .ingest import detect_format, make_parser
    from .models import LOG_FORMATS

    chosen = "regex" if regex is not None else fmt or detect_format(text)
    if chosen is None or chosen not in LOG_FORMATS:
        return []
    try:
        found = make_parser(chosen, regex=regex, logging_steps=logging_steps).feed_text(text)
    except (PreflightError, ValueError):
        return []
    return [s for s in found if isinstance(s, LogSample)]


def steps_in_tail(text: str, fmt: str | None = None, regex: str | None = None,
                  logging_steps: int | None = None) -> int | None:
    """The last training step a log tail shows (its recorded format or regex, else the detected one), or None.

    The tail's first line is dropped: it may start mid-line (the heartbeat reads the last bytes).
    ``logging_steps`` counts an HF log's dicts from the file's start, so it is for a ``text`` that is the
    whole log, and then the first line is kept.
    """
    lines = text.replace("\r", "\n").split("\n")
    body = "\n".join(lines if logging_steps else lines[1:])
    steps = [s.step for s in tail_samples(body, fmt, regex, logging_steps) if s.kind == "train" and s.step is not None]
    return steps[-1] if steps else None


def tail_cap(cap_steps: int | None, cap_seconds: float | None, elapsed_s: float | None,
             log_tail: str, fmt: str | None = None, regex: str | None = None,
             logging_steps: int | None = None) -> ProbeCap | None:
    """:func:`probe_cap` for a heartbeat: steps from the log tail (parsed only when a step cap is set).

    ``logging_steps`` only when ``log_tail`` is the whole log (:func:`steps_in_tail`).
    """
    if cap_steps is None and cap_seconds is None:
        return None
    steps = steps_in_tail(log_tail, fmt, regex, logging_steps) if cap_steps is not None and log_tail else None
    return probe_cap(cap_steps, cap_seconds, steps, elapsed_s)
