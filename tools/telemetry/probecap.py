"""Probe caps: a probe let through the gate must stop at its step or time cap.

Why: the run-calibrated policy opens the probe gate on Stage A alone and says "run 20-100 steps"
(Stage B), so a probe is how an agent gets GPU time before the full checklist is done. A probe that
keeps running past its cap *is* the long run the gate exists to hold back, and it keeps billing. The
gate records the caps on the run (``cap_steps``, ``cap_seconds`` from ``[gates.probe]``); this module
says when the run has reached them, and :func:`gpu_preflight.tools.dispatch.interrupt_run` stops it
(``preflight check RUN --enforce-caps``).

"Reached" is ``>=``: a probe capped at 100 steps that logged step 100 has had its steps, and the
minutes cap counts from the run's start record.
"""

from __future__ import annotations

from pydantic import BaseModel


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
