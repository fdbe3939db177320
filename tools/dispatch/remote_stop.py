"""Stop a run on a registered host: Ctrl-C into its pane on the box, proven by its job's exit record there.

The same stop as :func:`.stop.interrupt_run` (why Ctrl-C, why the exit record is the proof: see there), in
ONE ssh round trip per Ctrl-C: a fixed script (:data:`STOP_SCRIPT`, run by :meth:`.tmuxcmd.Tmux.sh`) checks
the record, sends the key, then polls for the record on the box every 0.1 s until it appears or the wait
ends. Why poll on the box and not ``tmux wait-for``: a ``wait-for`` client left blocked on the box when our
ssh is cut would wait forever (:meth:`.tmuxcmd.Tmux.wait_for_popen`); a poll loop ends on its own.

A box that does not answer is ``stopped: false`` with the fault in ``reason`` (never an exception: ``check``
and ``watch`` enforce caps on every look and must keep reporting).
"""

from __future__ import annotations

import time

from gpu_preflight.tools.dispatch.remote import parse_record, remote_state_dir
from gpu_preflight.tools.dispatch.runs import RunRecord
from gpu_preflight.tools.dispatch.stop import MAX_INTERRUPTS, InterruptResult
from gpu_preflight.tools.dispatch.target import make_tmux
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable, TmuxError

_MARK = "PF-STOP"
STOP_SCRIPT = f"""p=$1 d=$2 id=$3 w=$4
case $d in /*) ;; *) d=$HOME/$d;; esac
case $id in j*) ;; *) exit 5;; esac
case ${{id#j}} in ''|*[!0-9a-f]*) exit 5;; esac
r=$d/jobs/$id.exit
if [ -s "$r" ]; then echo "{_MARK} already"; cat "$r"; exit 0; fi
t send-keys -t "$p" C-c || exit 4
i=0
while [ ! -s "$r" ] && [ "$i" -lt "$w" ]; do sleep 0.1; i=$((i + 1)); done
if [ -s "$r" ]; then echo "{_MARK} ended"; cat "$r"; else echo "{_MARK} running"; fi
"""
"""``$1`` pane, ``$2`` the box's state folder, ``$3`` the job id (checked: ``j`` + hex), ``$4`` tenths of a second
to wait. Prints the outcome and the exit record."""


def interrupt_remote(run: RunRecord, *, timeout_s: float = 10.0) -> InterruptResult:
    """Ctrl-C the run's pane on ``run.host`` (twice at most) until the box holds its job's exit record."""
    assert run.host is not None and run.job_id is not None and run.pane_id is not None
    started = time.monotonic()
    tmux = make_tmux(run.socket_name, run.socket_path, host=run.host)
    wait_tenths = max(1, int(timeout_s / MAX_INTERRUPTS * 10))
    sent = 0
    for _ in range(MAX_INTERRUPTS):
        try:
            out = tmux.sh(STOP_SCRIPT, run.pane_id, remote_state_dir(), run.job_id, str(wait_tenths),
                          timeout_s=timeout_s / MAX_INTERRUPTS + 5)
        except HostUnreachable as exc:
            return InterruptResult(run_id=run.run_id, stopped=False, interrupts_sent=sent, latency_ms=_ms(started),
                                   reason=f"{exc.status}: {exc.reason} (nothing is known about the run)")
        except TmuxError as exc:
            return InterruptResult(run_id=run.run_id, stopped=False, interrupts_sent=sent, latency_ms=_ms(started),
                                   reason=f"tmux on {run.host} refused the keys: {exc.stderr}")
        head, _, record = out.partition("\n")
        outcome = head.removeprefix(f"{_MARK} ").strip()
        if outcome == "already":
            code = parse_record(run.job_id, None, record.splitlines()).exit_code
            return InterruptResult(run_id=run.run_id, stopped=True, already_ended=True, exit_code=code,
                                   latency_ms=_ms(started), reason=f"the job had already ended (code {code})")
        sent += 1
        if outcome == "ended":
            code = parse_record(run.job_id, None, record.splitlines()).exit_code
            return InterruptResult(run_id=run.run_id, stopped=True, interrupts_sent=sent, exit_code=code,
                                   latency_ms=_ms(started),
                                   reason=f"stopped: exit code {code} (its exit record on {run.host})")
    return InterruptResult(run_id=run.run_id, stopped=False, interrupts_sent=sent, latency_ms=_ms(started),
                           reason=f"still running on {run.host} after {sent} Ctrl-C and {timeout_s:g} s: look at "
                           "the pane")


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
