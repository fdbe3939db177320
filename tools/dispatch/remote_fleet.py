"""``heartbeat_all`` over many hosts: every pane of every box, one ssh round trip per box, boxes in parallel.

Why one round trip per box: a warm ssh round trip costs ~170 ms here (:mod:`gpu_preflight.tools.hosts.ssh`),
so a per-pane :func:`.remote.look` over 25 panes would take ~4 s per box. :data:`SWEEP_SCRIPT` prints, in one
call, the ``list-panes -a`` line of every pane (the same :data:`~.paneinfo.PANE_FORMAT` fields as a local
scan), each pane's ``/proc`` facts and screen, the start/exit records of each pane's ``@pf_job`` and of the
jobs our audit table last dispatched there, and the box's clock. Each pane is then judged exactly as a
single remote heartbeat is (:func:`.remote_beat.judge`): ``waiting_for_input`` from the tree's syscalls,
``hung``/``running`` from ONE CPU sample taken on the box for every busy pane at once (one sleep, not one per
pane), and an agent TUI's pane (found from its processes' command lines) from its screen, with its second
look taken in the same script (:func:`_agent`, the rules of :func:`.agent_remote.agent_heartbeat`).

Cost, measured on this machine's box side (25 panes, half running a program; 2 shared cores): the script
took ~130 ms without the sample and ~250 ms with the 0.1 s one; the former ``cat``-per-``/proc``-file
version took ~200 ms without any sample (the shell functions of :data:`.remote.PROC_SH` read ``/proc`` with
the ``read`` builtin, no fork).

Why threads and one deadline: a sweep is bounded by its slowest box, not by the sum of them; each box's
ssh call runs under the same deadline (the runner's timeout, default 10 s; the box's sample sleeps, at most
:data:`.agentbeat.AGENT_SAMPLE_S`, run inside it), so a box that does not answer is reported
``host_unreachable`` within it while the others answer. A box we cannot reach lists no panes
(nothing is known about them: never ``pane_gone``).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch.agent_remote import AGENT_STATES, agent_gone
from gpu_preflight.tools.dispatch.agentbeat import AGENT_SAMPLE_S, classify_agent, second_look
from gpu_preflight.tools.dispatch.heartbeat_model import Heartbeat, HeartbeatReport, HostSweep
from gpu_preflight.tools.dispatch.pane_jobs import latest_shell_jobs
from gpu_preflight.tools.dispatch.paneinfo import PANE_FORMAT, SEP
from gpu_preflight.tools.dispatch.profiles import PROFILES, profile_for_argv
from gpu_preflight.tools.dispatch.remote import (
    PROC_SH,
    RemoteLook,
    box_clock_s,
    nonce,
    pane_from,
    parse_record,
    remote_state_dir,
    sections,
    stats_of,
    syscalls_of,
)
from gpu_preflight.tools.dispatch.remote_beat import DEFAULT_CPU_SAMPLE_S, judge
from gpu_preflight.tools.dispatch.screen import unstyle_lines
from gpu_preflight.tools.dispatch.target import make_tmux
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable, Tmux, TmuxError
from gpu_preflight.tools.hosts.ssh import DEFAULT_TIMEOUT_S

SWEEP_SCRIPT = PROC_SH + r"""f=$1 d=$2 k=$3 cs=$4 s2=$5 ag=$6; shift 6
case $d in /*) ;; *) d=$HOME/$d;; esac
rec() { x=${1#j}; [ "$x" != "$1" ] || return 0
  case $x in ''|*[!0-9a-f]*) return 0;; esac
  echo "@@$k start $1"; cat "$d/jobs/$1.start" 2>/dev/null
  echo "@@$k exit $1"; cat "$d/jobs/$1.exit" 2>/dev/null; }
echo "@@$k dir"; printf '%s\n' "$d"
echo "@@$k now"; date +%s.%N
echo "@@$k arch"; uname -m
ids=$(t list-panes -a -F '#{pane_id} #{pane_pid} T#{pane_tty} #{@pf_job}' 2>/dev/null) || {
  echo "@@$k noserver"; exit 0; }
echo "@@$k panes"; t list-panes -a -F "$f"
busy_panes= agents=
while read -r p pid tty job; do
  [ -n "$p" ] || continue
  case $pid in ''|*[!0-9]*) pid=0;; esac
  tty=${tty#T}
  echo "@@$k stat $p"; st "$pid"; echo
  echo "@@$k kids $p"; kids "$pid"; for c in $_kk; do st "$c"; done
  echo "@@$k cmdline $p"; tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null
  echo "@@$k screen $p"; t capture-pane -p -e -t "$p" 2>/dev/null
  if [ "$pid" != 0 ] && busy "$pid"; then
    tr0=$(tree "$pid")
    echo "@@$k sys $p"; sys "$tr0" "$tty"
    echo "@@$k cpu0 $p"; printf '%s\n' "$tr0"
    v=$(argv "$tr0" "$ag"); echo "@@$k argv $p"; printf '%s\n' "$v"
    busy_panes="$busy_panes $p/$pid"
    [ -z "$v" ] || agents="$agents $p"
  fi
  echo "@@$k end $p"
  rec "${job%%:*}"
done <<EOF
$ids
EOF
for a in "$@"; do rec "$a"; done
if [ -n "$busy_panes" ] && [ -n "$cs" ]; then
  sleep "$cs"; for x in $busy_panes; do echo "@@$k cpu1 ${x%/*}"; tree "${x#*/}"; done
fi
if [ -n "$agents" ]; then
  sleep "$s2"; for p in $agents; do echo "@@$k again $p"; t capture-pane -p -e -t "$p" 2>/dev/null; done
fi
"""
"""One box's sweep: the box's clock and ``uname -m``; every pane's ``list-panes`` line, ``/proc`` facts and
screen (with SGR attributes, as a local scan's); for each pane whose shell is not at its prompt, its tree's
syscalls (``waiting_for_input``), ``stat`` and command lines; then ONE sleep of ``cpu_sample_s`` for all of
them and their trees' ``stat`` again (the hang sample), and, only where a command line names an agent TUI,
one more sleep up to :data:`.agentbeat.AGENT_SAMPLE_S` and their screens again (an agent's second look)."""


AGENT_NAMES = " ".join(name for name in PROFILES if name != "generic")
"""What the script looks for in a busy pane's command lines before it takes a second screen (a superset:
:func:`.profiles.profile_for_argv` then decides)."""


def _argvs(lines: list[str]) -> list[list[str]]:
    """``argv`` lines of :data:`.remote.PROC_SH`: ``pid`` then the arguments joined by ``\\x1f``.

    >>> _argvs(["41 node\\x1f/opt/gemini.js\\x1f", "", "42 "])
    [['node', '/opt/gemini.js'], []]
    """
    return [[arg for arg in line.split(" ", 1)[1].split("\x1f") if arg] for line in lines if " " in line]


def _agent(seen: RemoteLook, hb: Heartbeat, server_key: str, sample_s: float) -> Heartbeat:
    """The agent rules of a single remote pane heartbeat (:func:`.agent_remote.agent_heartbeat`), from the
    sweep's two screens instead of two more round trips."""
    if hb.state not in AGENT_STATES:
        return agent_gone(hb, server_key)
    assert seen.pane is not None
    found = next((name for name in map(profile_for_argv, seen.argvs) if name), None)
    if found is None:
        return hb
    hb.last_error_line = None
    pending = classify_agent(hb, seen.pane, seen.ansi, PROFILES[found])
    if pending is not None and seen.ansi_again is not None:
        second_look(pending, seen.ansi_again, sample_s)
    return hb


def sweep_host(tmux: Tmux, timeout_s: float, hang_after_s: float | None = None,
               cpu_sample_s: float = DEFAULT_CPU_SAMPLE_S) -> tuple[list[Heartbeat], HostSweep]:
    """Every pane of one box's tmux server in one round trip, judged; faults give an unreachable :class:`HostSweep`."""
    assert tmux.host is not None
    name = tmux.host.name
    audit = latest_shell_jobs(tmux.key)
    mark = nonce()
    agent_s = max(AGENT_SAMPLE_S, cpu_sample_s)
    try:
        out = tmux.sh(SWEEP_SCRIPT, PANE_FORMAT, remote_state_dir(), mark,
                      f"{cpu_sample_s:.3f}" if cpu_sample_s > 0 else "", f"{agent_s - cpu_sample_s:.3f}",
                      AGENT_NAMES, *sorted(set(audit.values())), timeout_s=timeout_s)
    except HostUnreachable as exc:
        return [], HostSweep(name=name, reachable=False, status=exc.status, reason=exc.reason)
    except TmuxError as exc:
        return [], HostSweep(name=name, reachable=True, status="tmux_error", reason=f"tmux failed: {exc.stderr}")
    parts = sections(out, mark)
    if "noserver" in parts:
        return [], HostSweep(name=name, reachable=True, status="ok", reason="no tmux server on this socket")
    records = {key: "\n".join(lines) for key, lines in parts.items() if key.startswith(("start ", "exit "))}
    state_dir, machine = (parts.get("dir") or [""])[0], (parts.get("arch") or [""])[0].strip()
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
        again = parts.get(f"again {pane_id}")
        seen = RemoteLook(pane=pane, job=job, state_dir=state_dir, records=records,
                          now_epoch_s=box_clock_s((parts.get("now") or [""])[0]),
                          cpu_before=stats_of(parts.get(f"cpu0 {pane_id}", [])),
                          cpu_after=stats_of(parts.get(f"cpu1 {pane_id}", [])),
                          syscalls=syscalls_of(parts.get(f"sys {pane_id}", [])), machine=machine,
                          argvs=_argvs(parts.get(f"argv {pane_id}", [])), ansi=_screen(parts[f"screen {pane_id}"]),
                          ansi_again=None if again is None else _screen(again))
        seen.lines = unstyle_lines(seen.ansi)[0]
        hb = judge(seen, pane.target_name, name, audit.get(pane_id), hang_after_s, cpu_sample_s)
        beats.append(hb if pane.dead else _agent(seen, hb, tmux.key, agent_s))
    return beats, HostSweep(name=name, reachable=True, status="ok", reason="answered", panes=len(beats))


def _screen(section: list[str]) -> list[str]:
    """A ``capture-pane`` section's rows, right-trimmed, without the line after the capture's final newline."""
    return [row.rstrip() for row in section[:-1]]


def fleet_heartbeats(hosts: list[str] | Literal["all"], *, socket_name: str | None = None,
                     socket_path: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                     hang_after_s: float | None = None, cpu_sample_s: float = DEFAULT_CPU_SAMPLE_S) -> HeartbeatReport:
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
        pool.submit(sweep_host, tmux, timeout_s, hang_after_s, cpu_sample_s) for tmux in tmuxes]
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
