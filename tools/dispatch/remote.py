"""One look at a pane on a remote box, in ONE ssh round trip: tmux's view, the kernel's, the screen, our records.

Why one script and not the local calls one by one: locally a pane snapshot is a ``display-message``, a
few ``/proc`` reads and a ``capture-pane`` (~5 ms); over ssh each tmux call is a round trip (~170 ms warm
here with one ssh per command, a few ms in the persistent shell of :mod:`gpu_preflight.tools.hosts.session`, plus
the box's forks) and ``/proc`` is the box's, not ours. So a fixed ``sh`` script (:data:`LOOK_SCRIPT`, run by
:meth:`Tmux.sh`) prints, between markers carrying a per-call nonce (a screen cannot forge a section):

* the pane's :data:`~.paneinfo.PANE_FORMAT` line (the same fields as a local snapshot),
* ``/proc/<pane pid>/stat``, its children's ``stat`` and its ``cmdline``: whether the shell owns the
  terminal (``tpgid``), runs a job in its group, or runs a script, judged as :mod:`.procfs` judges locally,
* the start and exit records of the job named by the pane's ``@pf_job`` option (and of one more job we
  name, the last one the audit table says we dispatched there), and the box's clock,
* the visible screen;
* when asked (``cpu_sample_s``, a heartbeat) and the pane's shell is not at its prompt: the ``stat`` of
  every process in the pane's tree, twice, ``cpu_sample_s`` apart (the hang sample, taken on the box).

Where the job files live on the box: ``$PREFLIGHT_REMOTE_STATE_DIR`` (a path on the box; relative means
under the remote ``$HOME``), default ``.local/state/gpu-preflight`` (the XDG default we use locally).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

from gpu_preflight.tools.dispatch import procfs
from gpu_preflight.tools.dispatch.paneinfo import PANE_FORMAT, SHELLS, PaneInfo, parse_pane_line
from gpu_preflight.tools.dispatch.shell_job import JobRecord
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux

REMOTE_STATE_ENV = "PREFLIGHT_REMOTE_STATE_DIR"
DEFAULT_REMOTE_STATE = ".local/state/gpu-preflight"

LOOK_SCRIPT = r"""p=$1 f=$2 d=$3 k=$4 a=$5 cs=$6
case $d in /*) ;; *) d=$HOME/$d;; esac
line=$(t display-message -p -t "$p" "$f") || exit 1
pid=$(t display-message -p -t "$p" '#{pane_pid}') || exit 1
job=$(t display-message -p -t "$p" '#{@pf_job}')
case $pid in ''|*[!0-9]*) pid=0;; esac
echo "@@$k dir"; printf '%s\n' "$d"
echo "@@$k pane"; printf '%s\n' "$line"
echo "@@$k stat"; cat "/proc/$pid/stat" 2>/dev/null; echo
echo "@@$k kids"
for c in $(cat /proc/$pid/task/*/children 2>/dev/null); do cat "/proc/$c/stat" 2>/dev/null; echo; done
echo "@@$k cmdline"; tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null
tree() { cat "/proc/$1/stat" 2>/dev/null; for c in $(cat /proc/$1/task/*/children 2>/dev/null); do tree "$c"; done; }
if [ -n "$cs" ] && [ "$pid" != 0 ]; then
  st=$(cat "/proc/$pid/stat" 2>/dev/null); c=${st#*(}; c=${c%)*}; set -- ${st##*) }
  kids=$(cat /proc/$pid/task/*/children 2>/dev/null)
  if [ "$6" = "$pid" ] && [ -z "$kids" ]; then case " @SHELLS@ " in *" $c "*) cs=;; esac; fi
  if [ -n "$cs" ]; then echo "@@$k cpu0"; tree "$pid"; sleep "$cs"; echo "@@$k cpu1"; tree "$pid"; fi
fi
[ "$a" = "${job%%:*}" ] && a=
for id in "${job%%:*}" "$a"; do
  x=${id#j}; [ "$x" != "$id" ] || continue
  case $x in ''|*[!0-9a-f]*) continue;; esac
  echo "@@$k start $id"; cat "$d/jobs/$id.start" 2>/dev/null
  echo "@@$k exit $id"; cat "$d/jobs/$id.exit" 2>/dev/null
done
echo "@@$k now"; date +%s
echo "@@$k screen"; t capture-pane -p -t "$p"
""".replace("@SHELLS@", " ".join(sorted(SHELLS)))


def remote_state_dir() -> str:
    """Where job files live on the box (see the module docstring)."""
    return os.environ.get(REMOTE_STATE_ENV, "").strip() or DEFAULT_REMOTE_STATE


def nonce() -> str:
    return "pf" + secrets.token_hex(6)


def sections(stdout: str, mark: str) -> dict[str, list[str]]:
    """Split a script's output at its ``@@<mark> <name>`` lines (anything before the first is dropped);
    a section keeps its lines as printed, blank ones too (a screen's rows are counted by the cursor).

    >>> sections("banner\\n@@k a\\n1\\n\\n@@k b\\n", "k")
    {'a': ['1', ''], 'b': ['']}
    """
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    head = f"@@{mark} "
    for line in stdout.split("\n"):
        if line.startswith(head):
            current = found[line[len(head):].strip()] = []  # a repeated section: the last one counts
        elif current is not None:
            current.append(line)
    return found


def parse_record(job_id: str, start: list[str] | None, end: list[str] | None) -> JobRecord:
    """A :class:`JobRecord` from the wrapper's ``<id>.start`` / ``<id>.exit`` lines as read on the box.

    >>> r = parse_record("j0a", ["4242 1700000000.5 4200"], ["137 1700000009.0 12 3 0"])
    >>> (r.pid, r.exit_code, r.signal)
    (4242, 137, 9)
    """
    record = JobRecord(job_id=job_id)
    for lines, is_start in ((start, True), (end, False)):
        parts = (lines or [""])[0].split()
        try:
            first, when = int(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            continue  # missing, or caught half-written
        if is_start:
            record.pid, record.started_at_epoch_s = first, when
        else:
            record.exit_code, record.ended_at_epoch_s = first, when
            record.signal = first - 128 if 128 < first <= 128 + 64 else None
    return record


@dataclass
class RemoteLook:
    """What :func:`look` saw: the pane (None: no such pane), its screen, our job's records, the box's state dir."""

    pane: PaneInfo | None
    lines: list[str] = field(default_factory=list)
    job: JobRecord | None = None
    state_dir: str = ""
    records: dict[str, str] = field(default_factory=dict)
    """``"start <job id>"`` / ``"exit <job id>"`` -> the record's text as read on the box."""
    now_epoch_s: float | None = None
    """The box's clock at the look (its window activity times are on that clock)."""
    cpu_before: dict[int, procfs.ProcStat] = field(default_factory=dict)
    cpu_after: dict[int, procfs.ProcStat] = field(default_factory=dict)
    """The pane's process tree read twice, ``cpu_sample_s`` apart (empty: no sample, e.g. a shell at its prompt)."""


def pane_from(line: str, stat_lines: list[str], kid_lines: list[str], cmdline: list[str]) -> PaneInfo | None:
    """A :class:`PaneInfo` whose process facts are the box's ``/proc``, never this machine's."""
    pid_text = line.split("\x1f")[1] if line.count("\x1f") > 1 else ""
    pid = int(pid_text) if pid_text.isdigit() else 0
    own = procfs.parse_stat(pid, stat_lines[0]) if stat_lines and stat_lines[0] else None
    pane = parse_pane_line(line, {pid: own} if own is not None else {})
    if pane is None:
        return None
    kids = [s for s in (procfs.parse_stat(0, raw) for raw in kid_lines if raw.strip()) if s is not None]
    tpgid = pane.foreground_pgid
    at_prompt = tpgid is not None and tpgid == pid
    in_group = sum(1 for s in kids if s.pgrp == tpgid and s.state not in {"Z", "X"})
    return pane.model_copy(update={
        "foreground_children": in_group if at_prompt else 0,
        "shell_runs_script": at_prompt and procfs.args_run_script([a for a in cmdline if a]),
    })


def stats_of(lines: list[str]) -> dict[int, procfs.ProcStat]:
    """``/proc/<pid>/stat`` lines read on the box, by pid (unreadable lines dropped).

    >>> stats_of(["42 (python x) R 1 42 42 0 -1 0 0 0 0 0 250 30 0 0 20 0 1 0 999 0 0", "", "junk"])[42].cpu_ticks
    280
    """
    found: dict[int, procfs.ProcStat] = {}
    for raw in lines:
        head = raw.split(" ", 1)[0]
        stat = procfs.parse_stat(int(head), raw) if head.isdigit() else None
        if stat is not None:
            found[stat.pid] = stat
    return found


def look(tmux: Tmux, target: str, timeout_s: float | None = None, also_job: str = "",
         cpu_sample_s: float = 0.0) -> RemoteLook:
    """One round trip (see the module docstring); raises :class:`~.tmuxcmd.HostUnreachable` on a fault.

    A pane that does not exist gives ``RemoteLook(pane=None)``; tmux's other failures raise TmuxError.
    ``cpu_sample_s`` > 0: unless the pane's shell sits at its prompt, its process tree's ``/proc/<pid>/stat``
    is read twice that far apart on the box, in the same round trip (what tells ``hung`` from ``running``).
    """
    from gpu_preflight.tools.dispatch.tmuxcmd import TmuxError

    mark = nonce()
    try:
        sample = f"{cpu_sample_s:.3f}" if cpu_sample_s > 0 else ""
        out = tmux.sh(LOOK_SCRIPT, target, PANE_FORMAT, remote_state_dir(), mark, also_job, sample,
                      timeout_s=None if timeout_s is None else timeout_s + cpu_sample_s)
    except TmuxError as exc:
        if exc.returncode == 1:
            return RemoteLook(pane=None)
        raise
    parts = sections(out, mark)
    pane_lines = parts.get("pane", [])
    pane = pane_from(pane_lines[0], parts.get("stat", []), parts.get("kids", []),
                     parts.get("cmdline", [])) if pane_lines else None
    records = {name: "\n".join(lines) for name, lines in parts.items() if name.startswith(("start ", "exit "))}
    job = None
    option_job = pane.job_record.split(":")[0] if pane is not None and pane.job_record else ""
    if f"start {option_job}" in records:
        job = parse_record(option_job, parts.get(f"start {option_job}"), parts.get(f"exit {option_job}"))
    screen = [line.rstrip() for line in parts.get("screen", [])[:-1]]  # the output's final newline
    now = (parts.get("now") or [""])[0].strip()
    return RemoteLook(pane=pane, lines=screen, job=job, state_dir=(parts.get("dir") or [""])[0], records=records,
                      now_epoch_s=float(now) if now.isdigit() else None,
                      cpu_before=stats_of(parts.get("cpu0", [])), cpu_after=stats_of(parts.get("cpu1", [])))
