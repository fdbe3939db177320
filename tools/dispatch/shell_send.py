"""Dispatch into a shell: preflight, type the job handle, Enter, confirm by the start record.

Why confirmation is the start record and not the screen: a shell echoes whatever is typed, so
seeing the handle proves nothing; the wrapper writing ``<id>.start`` proves the shell accepted
the line and our job began (with its pid). Enter is re-pressed only while our handle still sits
on the input line, never otherwise.
"""

from __future__ import annotations

import time

from gpu_preflight.tools.dispatch.models import DispatchResult, DispatchStatus, tail_lines
from gpu_preflight.tools.dispatch.paneinfo import fetch_pane
from gpu_preflight.tools.dispatch.preflight_pane import preflight_shell
from gpu_preflight.tools.dispatch.screen import compact, shell_input_line
from gpu_preflight.tools.dispatch.shell_job import StartWait, handle_for, write_job
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux, TmuxError


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def dispatch_shell(
    tmux: Tmux,
    pane_id: str,
    command: str,
    *,
    target: str,
    started_s: float,
    start_timeout_s: float = 3.0,
    max_enter_retries: int = 3,
    cancel_mode: bool = False,
    prompt_regex: str | None = None,
) -> DispatchResult:
    """Run ``command`` as a wrapped job in the shell of ``pane_id``; ``started_s`` is the call's monotonic start."""
    timings: dict[str, float] = {}
    pf = preflight_shell(tmux, pane_id, cancel_mode=cancel_mode, prompt_regex=prompt_regex)
    timings["preflight"] = _ms(time.monotonic() - started_s)
    current = pf.pane.current_command if pf.pane else None
    if pf.refusal is not None:
        return DispatchResult(status="refused", reason=pf.refusal, target=target, pane_id=pane_id, mode="shell",
                              evidence=tail_lines(pf.lines), current_command=current, timings_ms=timings)
    job_id, _ = write_job(command)
    handle = handle_for(job_id)
    needle = compact(handle)
    waiter = StartWait(job_id, tmux)
    enters, first_enter_s = 0, 0.0
    lines: list[str] = []
    try:
        tmux.send_literal(pane_id, handle)
        first_enter_s = time.monotonic()
        tmux.send_key(pane_id, "Enter")
        enters = 1
        record = waiter.wait(start_timeout_s)
        while not record.started and enters <= max_enter_retries:
            pane_lines = tmux.capture(pane_id)
            fresh = fetch_pane(tmux, pane_id)
            if fresh is None:
                break
            line, _, _ = shell_input_line(pane_lines, fresh.cursor_x, fresh.cursor_y)
            if needle not in compact(line):
                break  # our handle is not waiting on the input line: another Enter could hit someone else's text
            tmux.send_key(pane_id, "Enter")
            enters += 1
            record = waiter.wait(start_timeout_s)
        confirmed_s = time.monotonic()
        timings["confirm"] = _ms(confirmed_s - started_s)
    except TmuxError as exc:
        return DispatchResult(status="lost", reason=f"tmux failed while typing: {exc.stderr}", target=target,
                              pane_id=pane_id, mode="shell", enter_count=enters, job_id=job_id,
                              current_command=current, latency_ms=_ms(time.monotonic() - started_s),
                              timings_ms=timings)
    finally:
        waiter.close()
    try:
        lines = tmux.capture(pane_id)
    except TmuxError:
        lines = []
    evidence = tail_lines(lines)
    if record.started:
        evidence.append(f"start record: job {job_id} pid {record.pid} at {record.started_at_epoch_s}")
    result = DispatchResult(status="lost", reason="", target=target, pane_id=pane_id, mode="shell",
                            enter_count=enters, job_id=job_id, current_command=current, timings_ms=timings,
                            evidence=evidence)
    if record.started:
        return result.model_copy(update={
            "status": "submitted", "reason": "the job wrapper wrote its start record", "pid": record.pid,
            "started_at_epoch_s": record.started_at_epoch_s,
            "confirm_latency_ms": _ms(confirmed_s - first_enter_s),
            "latency_ms": _ms(time.monotonic() - started_s),
        })
    seen = needle in compact("".join(lines))
    status: DispatchStatus = "unconfirmed" if seen else "lost"
    reason = (
        f"the handle was typed but no start record came within {start_timeout_s:g} s"
        if seen else "the typed handle never appeared in the pane"
    )
    return result.model_copy(update={"status": status, "reason": reason,
                                     "latency_ms": _ms(time.monotonic() - started_s)})
