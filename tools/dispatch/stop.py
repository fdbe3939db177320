"""Stop a dispatched run: Ctrl-C into its pane, and proof that the job ended.

Why Ctrl-C and not ``kill``: the run is a shell job in a tmux pane, so Ctrl-C is what a person
would press; SIGINT reaches the whole foreground process group (a launcher and its workers alike),
and training loops commonly catch KeyboardInterrupt to save a checkpoint. The job wrapper traps INT
itself, so it survives to write the exit record, and that record (not the screen) is the proof.

Why the waiter starts first: the wrapper signals ``tmux wait-for pf_dn_<job>`` once, the moment the
job ends; a waiter started after the keys could miss a job that stops at once.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch.runs import get_run
from gpu_preflight.tools.dispatch.shell_job import read_job
from gpu_preflight.tools.dispatch.target import make_tmux
from gpu_preflight.tools.dispatch.tmuxcmd import TmuxError, stop_waiter

MAX_INTERRUPTS = 2  # a second Ctrl-C for programs whose first one only starts a graceful shutdown


class InterruptResult(BaseModel):
    run_id: str
    stopped: bool = Field(description="the job's exit record exists: the job has ended")
    already_ended: bool = False
    interrupts_sent: int = 0
    exit_code: int | None = None
    latency_ms: float
    reason: str


def interrupt_run(run_id: str, *, timeout_s: float = 10.0) -> InterruptResult:
    """Send Ctrl-C to the run's pane (twice at most) until its job's exit record appears."""
    if not timeout_s > 0:
        raise PreflightError("timeout_s", timeout_s, "a positive number of seconds")
    started = time.monotonic()
    run = get_run(run_id)
    if run.job_id is None or run.pane_id is None:
        raise PreflightError("run_id", run_id, "a run launched through the dispatcher (it has a job and a pane)")
    if run.host is not None:  # its job and pane are on the box: never Ctrl-C a local pane with the same id
        from gpu_preflight.tools.dispatch.remote_stop import interrupt_remote

        return interrupt_remote(run, timeout_s=timeout_s)
    job = read_job(run.job_id)
    if job.exited:
        return InterruptResult(run_id=run_id, stopped=True, already_ended=True, exit_code=job.exit_code,
                               latency_ms=_ms(started), reason=f"the job had already ended (code {job.exit_code})")
    tmux = make_tmux(run.socket_name, run.socket_path)
    sent = 0
    for _ in range(MAX_INTERRUPTS):
        waiter = tmux.wait_for_popen(f"pf_dn_{run.job_id}")
        try:
            tmux.run("send-keys", "-t", run.pane_id, "C-c")
        except TmuxError as exc:
            stop_waiter(waiter, 0)
            return InterruptResult(run_id=run_id, stopped=False, interrupts_sent=sent, latency_ms=_ms(started),
                                   reason=f"tmux refused the keys: {exc.stderr}")
        sent += 1
        stop_waiter(waiter, timeout_s / MAX_INTERRUPTS)
        job = read_job(run.job_id)
        if job.exited:
            return InterruptResult(run_id=run_id, stopped=True, interrupts_sent=sent, exit_code=job.exit_code,
                                   latency_ms=_ms(started), reason=f"stopped: exit code {job.exit_code}")
    return InterruptResult(run_id=run_id, stopped=False, interrupts_sent=sent, latency_ms=_ms(started),
                           reason=f"still running after {sent} Ctrl-C and {timeout_s:g} s: look at the pane")


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
