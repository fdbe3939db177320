"""``heartbeat_all`` over many hosts: every pane of every box, one ssh round trip per box, boxes in parallel.

Why one round trip per box: a warm ssh round trip costs ~170 ms here (:mod:`gpu_preflight.tools.hosts.ssh`),
so a per-pane :func:`.remote.look` over 25 panes would take ~4 s per box. :data:`SWEEP_SCRIPT` prints, in one
call, the ``list-panes -a`` line of every pane (the same :data:`~.paneinfo.PANE_FORMAT` fields as a local
scan), each pane's ``/proc`` facts and screen, the start/exit records of each pane's ``@pf_job`` and of the
jobs our audit table last dispatched there, and the box's clock. Each pane is then judged exactly as a
single remote heartbeat is (:func:`.remote_beat.judge`).

Why threads and one deadline: a sweep is bounded by its slowest box, not by the sum of them; each box's
ssh call runs under the same deadline (the runner's timeout, default 10 s), so a box that does not answer
is reported ``host_unreachable`` within it while the others answer. A box we cannot reach lists no panes
(nothing is known about them: never ``pane_gone``).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch.heartbeat_model import Heartbeat, HeartbeatReport, HostSweep
from gpu_preflight.tools.dispatch.pane_jobs import latest_shell_jobs
from gpu_preflight.tools.dispatch.paneinfo import PANE_FORMAT, SEP
from gpu_preflight.tools.dispatch.remote import RemoteLook, nonce, pane_from, parse_record, remote_state_dir, sections
from gpu_preflight.tools.dispatch.remote_beat import judge
from gpu_preflight.tools.dispatch.target import make_tmux
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable, Tmux, TmuxError
from gpu_preflight.tools.hosts.ssh import DEFAULT_TIMEOUT_S

SWEEP_SCRIPT = r"""f=$1 d=$2 k=$3; shift 3
case $d in /*) ;; *) d=$HOME/$d;; esac
rec() { x=${1#j}; [ "$x" != "$1" ] || return 0
  case $x in ''|*[!0-9a-f]*) return 0;; esac
  echo "@@$k start $1"; cat "$d/jobs/$1.start" 2>/dev/null
  echo "@@$k exit $1"; cat "$d/jobs/$1.exit" 2>/dev/null; }
echo "@@$k dir"; printf '%s\n' "$d"
echo "@@$k now"; date +%s
ids=$(t list-panes -a -F '#{pane_id} #{pane_pid} #{@pf_job}' 2>/dev/null) || { echo "@@$k noserver"; exit 0; }
echo "@@$k panes"; t list-panes -a -F "$f"
printf '%s\n' "$ids" | while read -r p pid job; do
  [ -n "$p" ] || continue
  case $pid in ''|*[!0-9]*) pid=0;; esac
  echo "@@$k stat $p"; cat "/proc/$pid/stat" 2>/dev/null; echo
  echo "@@$k kids $p"
  for c in $(cat /proc/$pid/task/*/children 2>/dev/null); do cat "/proc/$c/stat" 2>/dev/null; echo; done
  echo "@@$k cmdline $p"; tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null
  echo "@@$k screen $p"; t capture-pane -p -t "$p" 2>/dev/null
  echo "@@$k end $p"
  rec "${job%%:*}"
done
for a in "$@"; do rec "$a"; done
"""


def sweep_host(tmux: Tmux, timeout_s: float) -> tuple[list[Heartbeat], HostSweep]:
    """Every pane of one box's tmux server in one round trip, judged; faults give an unreachable :class:`HostSweep`."""
    assert tmux.host is not None
    name = tmux.host.name
    audit = latest_shell_jobs(tmux.key)
    mark = nonce()
    try:
        out = tmux.sh(SWEEP_SCRIPT, PANE_FORMAT, remote_state_dir(), mark, *sorted(set(audit.values())),
                      timeout_s=timeout_s)
    except HostUnreachable as exc:
        return [], HostSweep(name=name, reachable=False, status=exc.status, reason=exc.reason)
    except TmuxError as exc:
        return [], HostSweep(name=name, reachable=True, status="tmux_error", reason=f"tmux failed: {exc.stderr}")
    parts = sections(out, mark)
    if "noserver" in parts:
        return [], HostSweep(name=name, reachable=True, status="ok", reason="no tmux server on this socket")
    records = {key: "\n".join(lines) for key, lines in parts.items() if key.startswith(("start ", "exit "))}
    now = (parts.get("now") or [""])[0].strip()
    state_dir = (parts.get("dir") or [""])[0]
    beats: list[Heartbeat] = []
    for line in parts.get("panes", []):
        pane_id = line.split(SEP, 1)[0]
        if not line or f"screen {pane_id}" not in parts:
            continue  # an empty line, or a pane born between the two listings
        pane = pane_from(line, parts.get(f"stat {pane_id}", []), parts.get(f"kids {pane_id}", []),
                         parts.get(f"cmdline {pane_id}", []))
        if pane is None:
            continue
        option_job = pane.job_record.split(":")[0] if pane.job_record else ""
        job = (parse_record(option_job, parts.get(f"start {option_job}"), parts.get(f"exit {option_job}"))
               if f"start {option_job}" in records else None)
        seen = RemoteLook(pane=pane, lines=[row.rstrip() for row in parts[f"screen {pane_id}"]], job=job,
                          state_dir=state_dir, records=records, now_epoch_s=float(now) if now.isdigit() else None)
        beats.append(judge(seen, pane.target_name, name, audit.get(pane_id)))
    return beats, HostSweep(name=name, reachable=True, status="ok", reason="answered", panes=len(beats))


def fleet_heartbeats(hosts: list[str] | Literal["all"], *, socket_name: str | None = None,
                     socket_path: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> HeartbeatReport:
    """Every pane on every named host (``"all"``: every registered one), swept in parallel under one deadline."""
    from gpu_preflight.tools.hosts.registry import list_hosts

    if not timeout_s > 0:
        raise PreflightError("timeout_s", timeout_s, "a number of seconds > 0")
    names = [h.name for h in list_hosts()] if hosts == "all" else list(dict.fromkeys(hosts))
    if not names:
        raise PreflightError("hosts", hosts, "one or more registered host names, or 'all' with hosts registered",
                             "register the host first")
    tmuxes = [make_tmux(socket_name, socket_path, host=name, host_field="hosts")  # unknown names: refused here
              for name in names]
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=len(tmuxes), thread_name_prefix="pf-sweep")
    futures: list[Future[tuple[list[Heartbeat], HostSweep]]] = [
        pool.submit(sweep_host, tmux, timeout_s) for tmux in tmuxes]
    beats: list[Heartbeat] = []
    sweeps: list[HostSweep] = []
    for name, future in zip(names, futures, strict=True):
        left_s = max(0.0, started + timeout_s + 1.0 - time.monotonic())  # the runner kills ssh at timeout_s
        try:
            found, sweep = future.result(timeout=left_s)
        except TimeoutError:
            found, sweep = [], HostSweep(name=name, reachable=False, status="host_unreachable",
                                         reason=f"no answer within {timeout_s:g} s")
        beats += found
        sweeps.append(sweep)
    pool.shutdown(wait=False, cancel_futures=True)
    return HeartbeatReport(heartbeats=beats, pane_count=len(beats), hosts=sweeps,
                           scan_ms=round((time.monotonic() - started) * 1000.0, 2))
