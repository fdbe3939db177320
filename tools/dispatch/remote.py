"""One look at a pane on a remote box, in ONE ssh round trip: tmux's view, the kernel's, the screen, our records.

Why one script and not the local calls one by one: locally a pane snapshot is a ``display-message``, a
few ``/proc`` reads and a ``capture-pane`` (~5 ms); over ssh each tmux call is a round trip (~170 ms warm
here with one ssh per command, a few ms in the persistent shell of :mod:`gpu_preflight.tools.hosts.session`, plus
the box's forks) and ``/proc`` is the box's, not ours. So a fixed ``sh`` script (:data:`LOOK_SCRIPT`, run by
:meth:`Tmux.sh`) prints, between markers carrying a per-call nonce (a screen cannot forge a section):

* the pane's :data:`~.paneinfo.PANE_FORMAT` line (the same fields as a local snapshot),
* ``/proc/<pane pid>/stat``, its children's ``stat`` and its ``cmdline``: whether the shell owns the
  terminal (``tpgid``), runs a job in its group, or runs a script, judged as :mod:`.procfs` judges locally,
* unless the pane's shell sits at its prompt: the box's ``uname -m`` and, for each process of the pane's tree,
  the syscall it sleeps in and whether that call's fd is the pane's terminal (``waiting_for_input``),
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

PROC_SH = r"""st() { { read -r _l < "/proc/$1/stat"; } 2>/dev/null && printf '%s\n' "$_l"; }
kids() { _kk=; for _f in /proc/$1/task/*/children; do _k=; { read -r _k < "$_f"; } 2>/dev/null; _kk="$_kk $_k"; done; }
tree() { st "$1"; kids "$1"; for c in $_kk; do tree "$c"; done; }
busy() { { read -r _s < "/proc/$1/stat"; } 2>/dev/null || return 1; _c=${_s#*(}; _c=${_c%)*}; set -- "$1" ${_s##*) }
  [ "$7" = "$1" ] || return 0
  kids "$1"; case $_kk in *[0-9]*) return 0;; esac
  case " @SHELLS@ " in *" $_c "*) return 1;; esac; return 0; }
sys() { while read -r _p _r; do
  { read -r _n _a _x < "/proc/$_p/syscall"; } 2>/dev/null || continue
  case $_n in ''|*[!0-9]*) continue;; esac
  case $_a in 0x?|0x??|0x???) if [ "/proc/$_p/fd/$((_a))" -ef "$2" ]; then echo "$_p $_n $2"; continue; fi;; esac
  echo "$_p $_n"
done <<E
$1
E
}
argv() { while read -r _p _r; do
  _c=${_r#(}; _c=${_c%%)*}
  for _n in $2 node bun deno; do case $_c in *"$_n"*)
    printf '%s ' "$_p"; tr '\0\n' '\037 ' < "/proc/$_p/cmdline" 2>/dev/null; echo; break;; esac; done
done <<E
$1
E
}
""".replace("@SHELLS@", " ".join(sorted(SHELLS)))
"""Shell functions both scripts use, without a fork per process (``read`` is a builtin; a 25-pane sweep's box
side measured 560-740 ms with ``cat`` per ``/proc`` file, see :data:`.remote_fleet.SWEEP_SCRIPT`): ``tree PID``
prints the ``stat`` of it and every descendant; ``busy PID`` is true unless it is a shell sitting at its prompt
(it owns the terminal, has no child); ``sys TREE TTY`` prints ``pid syscall`` for each process of a ``tree``
output that sleeps in a syscall, with ``TTY`` appended where that call's first argument is an fd open on the
pane's terminal (what tells a program blocked reading its terminal, as :func:`.procfs.blocked_reading_tty` does
locally: the box's processes are our own user's, so no ptrace rights beyond that are needed); ``argv TREE NAMES``
prints ``pid`` and the command line (arguments joined by ``\\x1f``) of each process whose name holds one of
``NAMES`` or is a JavaScript runtime (what finds an agent TUI; every other process costs no fork)."""

LOOK_SCRIPT = PROC_SH + r"""p=$1 f=$2 d=$3 k=$4 a=$5 cs=$6
case $d in /*) ;; *) d=$HOME/$d;; esac
line=$(t display-message -p -t "$p" "$f") || exit 1
ids=$(t display-message -p -t "$p" '#{pane_pid} T#{pane_tty} #{@pf_job}') || exit 1
read -r pid tty job <<E
$ids
E
tty=${tty#T}
case $pid in ''|*[!0-9]*) pid=0;; esac
echo "@@$k dir"; printf '%s\n' "$d"
echo "@@$k pane"; printf '%s\n' "$line"
echo "@@$k stat"; st "$pid"; echo
echo "@@$k kids"; kids "$pid"; for c in $_kk; do st "$c"; done
echo "@@$k cmdline"; tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null
if [ "$pid" != 0 ] && busy "$pid"; then
  tr0=$(tree "$pid")
  echo "@@$k arch"; uname -m
  echo "@@$k sys"; sys "$tr0" "$tty"
  echo "@@$k cpu0"; printf '%s\n' "$tr0"
  if [ -n "$cs" ]; then sleep "$cs"; echo "@@$k cpu1"; tree "$pid"; fi
fi
[ "$a" = "${job%%:*}" ] && a=
for id in "${job%%:*}" "$a"; do
  x=${id#j}; [ "$x" != "$id" ] || continue
  case $x in ''|*[!0-9a-f]*) continue;; esac
  echo "@@$k start $id"; cat "$d/jobs/$id.start" 2>/dev/null
  echo "@@$k exit $id"; cat "$d/jobs/$id.exit" 2>/dev/null
done
echo "@@$k now"; date +%s.%N
echo "@@$k screen"; t capture-pane -p -t "$p"
"""


def remote_state_dir() -> str:
    """Where job files live on the box (see the module docstring)."""
    return os.environ.get(REMOTE_STATE_ENV, "").strip() or DEFAULT_REMOTE_STATE


def nonce() -> str:
    return "pf" + secrets.token_hex(6)


def box_clock_s(text: str) -> float | None:
    """The box's ``date +%s.%N`` (GNU: nanoseconds, as the start records' ``EPOCHREALTIME``); a ``date`` without
    ``%N`` (BusyBox without it, BSD) prints ``%s.N`` or ``%s.%N``: whole seconds then. Whole seconds against a
    start record with a fraction made a run's ``elapsed_s`` -0.19 s in its first second (issue 17).

    >>> box_clock_s("1700000000.250000000"), box_clock_s("1700000000.N"), box_clock_s("x")
    (1700000000.25, 1700000000.0, None)
    """
    whole, _, frac = text.strip().partition(".")
    if not whole.isdigit():
        return None
    return float(f"{whole}.{frac}") if frac.isdigit() else float(whole)


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
    syscalls: list[tuple[int, int, str]] = field(default_factory=list)
    """``(pid, syscall number, the pane's tty if the call's first argument is an fd open on it, else "")`` of the
    tree's sleeping processes (:data:`PROC_SH` ``sys``)."""
    machine: str = ""
    """The box's ``uname -m`` (syscall numbers are per architecture)."""
    argvs: list[list[str]] = field(default_factory=list)
    """Command lines of the pane's process tree (a fleet sweep: what finds an agent TUI there)."""
    ansi: list[str] = field(default_factory=list)
    ansi_again: list[str] | None = None
    """A fleet sweep: the screen with SGR attributes, and again one agent sample later (None: not taken)."""

    def reading_terminal(self) -> bool:
        """Whether a process of the terminal's foreground group sleeps in ``read()`` on the pane's tty."""
        if self.pane is None or not self.machine:
            return False
        group = {pid for pid, stat in self.cpu_before.items() if stat.pgrp == self.pane.foreground_pgid}
        return any(pid in group and procfs.reads_terminal(number, target, self.pane.tty, self.machine)
                   for pid, number, target in self.syscalls)


def syscalls_of(lines: list[str]) -> list[tuple[int, int, str]]:
    """``sys`` lines of :data:`PROC_SH` (``pid number [tty]``), malformed ones dropped.

    >>> syscalls_of(["812 0 /dev/pts/4", "813 7", "x y"])
    [(812, 0, '/dev/pts/4'), (813, 7, '')]
    """
    found = []
    for line in lines:
        parts = line.split(" ", 2)
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            found.append((int(parts[0]), int(parts[1]), parts[2].strip() if len(parts) > 2 else ""))
    return found


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
                      now_epoch_s=box_clock_s(now),
                      cpu_before=stats_of(parts.get("cpu0", [])), cpu_after=stats_of(parts.get("cpu1", [])),
                      syscalls=syscalls_of(parts.get("sys", [])), machine=(parts.get("arch") or [""])[0].strip())
