"""Shell dispatch into a pane on a remote box: the local rules (:mod:`.shell_send`) in two ssh round trips.

Round trip 1, :func:`.remote.look`: the pane, its processes and its screen, judged by the same checks as
a local preflight (:func:`.preflight_pane.not_at_prompt`, :func:`.preflight_pane.draft_refusal`).
Round trip 2, :data:`SEND_SCRIPT`: write the job wrapper (always: its text is ours and small, and a
running wrapper keeps its old inode) and the job file (the command arrives on stdin, never as an
argument), type the handle, press Enter, then poll for the start record on the box (10 ms steps, up to
``start_timeout_s``) and print it with the cursor and the screen. Enter is pressed again (one more round
trip each) only while our handle still sits on the input line, as locally.

Why ``unconfirmed`` and not ``submitted`` when the link fails during round trip 2: the keys may have
gone out and nothing proves the job started; the reason names the fault (``connection_dropped: ...``).
A fault in round trip 1 happens before anything is typed: ``refused``.
"""

from __future__ import annotations

import math
import shlex
import time

from gpu_preflight.tools.dispatch.models import DispatchResult, DispatchStatus, tail_lines
from gpu_preflight.tools.dispatch.preflight_pane import _common, draft_refusal, not_at_prompt
from gpu_preflight.tools.dispatch.remote import RemoteLook, look, nonce, parse_record, sections
from gpu_preflight.tools.dispatch.screen import compact, shell_input_line
from gpu_preflight.tools.dispatch.shell_job import WRAPPER_NAME, WRAPPER_SCRIPT, JobRecord, new_job_id
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable, Tmux, TmuxError

POLL_STEPS_PER_S = 100
SEND_SCRIPT = r"""p=$1 d=$2 id=$3 h=$4 w=$5 n=$6 k=$7 mode=$8
j=$d/jobs
if [ "$mode" = type ]; then
  umask 077; mkdir -p "$j" || exit 3
  printf '%s' "$w" > "$j/.pf-job.$id" && mv -f "$j/.pf-job.$id" "$j/pf-job" || exit 3
  cat > "$j/$id.sh" || exit 3
  t send-keys -t "$p" -l -- "$h" || exit 1
fi
t send-keys -t "$p" Enter || exit 1
echo "@@$k typed"
i=0
while [ ! -s "$j/$id.start" ] && [ "$i" -lt "$n" ]; do sleep 0.01; i=$((i+1)); done
echo "@@$k start"; cat "$j/$id.start" 2>/dev/null
echo "@@$k cursor"; t display-message -p -t "$p" '#{cursor_x} #{cursor_y}'
echo "@@$k screen"; t capture-pane -p -t "$p"
"""


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def remote_handle(state_dir: str, job_id: str) -> str:
    """The line typed into the remote shell (leading space: kept out of bash history).

    >>> print(remote_handle("/home/me/it's here", "j0123456789ab"))
     bash '/home/me/it'"'"'s here/jobs/pf-job' j0123456789ab
    """
    return f" bash {shlex.quote(f'{state_dir}/jobs/{WRAPPER_NAME}')} {job_id}"


def _send(tmux: Tmux, pane_id: str, state_dir: str, job_id: str, command: str, mode: str,
          start_timeout_s: float) -> tuple[JobRecord, list[str], tuple[int, int]]:
    """One send round trip: the start record (if it came), the screen, the cursor (x, y)."""
    mark = nonce()
    steps = str(max(1, math.ceil(start_timeout_s * POLL_STEPS_PER_S)))
    body = command if command.endswith("\n") else command + "\n"
    out = tmux.sh(SEND_SCRIPT, pane_id, state_dir, job_id, remote_handle(state_dir, job_id), WRAPPER_SCRIPT,
                  steps, mark, mode, stdin=body.encode() if mode == "type" else None,
                  timeout_s=tmux.timeout_s + 2 * start_timeout_s)
    parts = sections(out, mark)
    cursor = (parts.get("cursor") or ["0 0"])[0].split()
    x, y = (int(cursor[0]), int(cursor[1])) if len(cursor) == 2 and all(c.isdigit() for c in cursor) else (0, 0)
    screen = [line.rstrip() for line in parts.get("screen", [])[:-1]]
    return parse_record(job_id, parts.get("start"), None), screen, (x, y)


def _preflight(tmux: Tmux, pane_id: str, cancel_mode: bool,
               prompt_regex: str | None) -> tuple[RemoteLook, str | None]:
    seen = look(tmux, pane_id)
    if seen.pane is not None and seen.pane.in_mode and cancel_mode:
        tmux.run("send-keys", "-t", pane_id, "-X", "cancel")
        seen = look(tmux, pane_id)
    pane, refusal = _common(tmux, seen.pane, False)
    if pane is None or refusal:
        return seen, refusal
    if not pane.shell_in_foreground:
        return seen, not_at_prompt(pane)
    return seen, draft_refusal(pane, seen.lines, prompt_regex)


def dispatch_shell_remote(tmux: Tmux, pane_id: str, command: str, *, target: str, started_s: float,
                          start_timeout_s: float = 3.0, max_enter_retries: int = 3, cancel_mode: bool = False,
                          prompt_regex: str | None = None) -> DispatchResult:
    """:func:`.shell_send.dispatch_shell` for a :class:`Tmux` with a host (see the module docstring)."""
    timings: dict[str, float] = {}
    base = DispatchResult(status="refused", reason="", target=target, pane_id=pane_id, mode="shell")
    try:
        seen, refusal = _preflight(tmux, pane_id, cancel_mode, prompt_regex)
    except HostUnreachable as exc:
        return base.model_copy(update={"reason": f"{exc.status}: {exc.reason} (nothing was typed)"})
    timings["preflight"] = _ms(time.monotonic() - started_s)
    current = seen.pane.current_command if seen.pane else None
    base = base.model_copy(update={"current_command": current, "timings_ms": timings})
    if refusal is not None:
        return base.model_copy(update={"reason": refusal, "evidence": tail_lines(seen.lines)})
    job_id = new_job_id()
    needle = compact(remote_handle(seen.state_dir, job_id))
    base = base.model_copy(update={"job_id": job_id})
    enters, lines, first_s = 0, list(seen.lines), time.monotonic()
    record = JobRecord(job_id=job_id)
    try:
        while True:
            record, lines, (x, y) = _send(tmux, pane_id, seen.state_dir, job_id, command,
                                          "type" if enters == 0 else "enter", start_timeout_s)
            enters += 1
            if record.started or enters > max_enter_retries:
                break
            if needle not in compact(shell_input_line(lines, x, y)[0]):
                break  # our handle is not waiting on the input line: another Enter could hit someone else's text
    except HostUnreachable as exc:
        return base.model_copy(update={
            "status": "unconfirmed", "enter_count": max(enters, 1), "evidence": tail_lines(lines),
            "reason": f"{exc.status}: {exc.reason} (the handle may have been typed; no start record was seen)",
            "latency_ms": _ms(time.monotonic() - started_s)})
    except TmuxError as exc:
        return base.model_copy(update={"status": "lost", "reason": f"tmux failed while typing: {exc.stderr}",
                                       "enter_count": enters, "latency_ms": _ms(time.monotonic() - started_s)})
    timings["confirm"] = _ms(time.monotonic() - started_s)
    evidence = tail_lines(lines)
    result = base.model_copy(update={"enter_count": enters, "evidence": evidence})
    if record.started:
        evidence.append(f"start record: job {job_id} pid {record.pid} at {record.started_at_epoch_s}")
        return result.model_copy(update={
            "status": "submitted", "reason": "the job wrapper wrote its start record", "pid": record.pid,
            "started_at_epoch_s": record.started_at_epoch_s, "confirm_latency_ms": _ms(time.monotonic() - first_s),
            "latency_ms": _ms(time.monotonic() - started_s)})
    seen_handle = needle in compact("".join(lines))
    status: DispatchStatus = "unconfirmed" if seen_handle else "lost"
    reason = (f"the handle was typed but no start record came within {start_timeout_s:g} s" if seen_handle
              else "the typed handle never appeared in the pane")
    return result.model_copy(update={"status": status, "reason": reason,
                                     "latency_ms": _ms(time.monotonic() - started_s)})
