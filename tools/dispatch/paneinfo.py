"""One snapshot of a pane's tmux state, fetched with a single format string.

Why one format: every fork of the tmux client costs ~2 ms, and values read in separate calls can
disagree (the pane dies between them). The same format serves ``display-message`` for one pane
and ``list-panes -a`` for all of them, so the heartbeat and the dispatcher read identical fields.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from gpu_preflight.tools.dispatch import procfs
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux, TmuxError

SEP = "\x1f"
SHELLS = frozenset({"bash", "zsh", "sh", "dash", "fish", "ksh", "mksh", "tcsh", "csh", "ash", "busybox"})
JOB_OPTION = "@pf_job"

_FIELDS = (
    "pane_id", "pane_pid", "pane_current_command", "pane_dead", "pane_dead_status", "pane_dead_signal",
    "pane_in_mode", "pane_mode", "pane_input_off", "pane_synchronized", "pane_tty", "cursor_x", "cursor_y",
    "pane_width", "pane_height", "window_activity", "bracket_paste_flag", "session_name", "window_index",
    "pane_index", JOB_OPTION, "history_size", "history_limit",
)
PANE_FORMAT = SEP.join("#{" + name + "}" for name in _FIELDS)


class PaneInfo(BaseModel):
    """What tmux and ``/proc`` say about a pane at one instant."""

    pane_id: str
    target_name: str = Field(description="session:window.pane at the time of the snapshot")
    pane_pid: int
    current_command: str
    dead: bool
    dead_status: int | None
    dead_signal: int | None
    in_mode: bool
    mode: str
    input_off: bool
    synchronized: bool
    tty: str
    cursor_x: int
    cursor_y: int
    width_cells: int
    height_lines: int
    window_activity_epoch_s: int = Field(description="last output in the pane's window (1 s resolution)")
    bracketed_paste: bool | None = Field(description="app enabled bracketed paste (tmux >= 3.7 only)")
    job_record: str = Field(description="the wrapper's @pf_job pane option: 'id:run:pid' or 'id:done:rc'")
    foreground_pgid: int | None = Field(description="the terminal's foreground process group (/proc tpgid)")
    foreground_children: int = Field(default=0, description="children of the pane's process in that group")
    shell_runs_script: bool = Field(default=False, description="the pane's shell was started with -c or a script")
    history_size: int = Field(default=0, description="lines scrolled into the pane's history")
    history_limit: int = Field(default=0, description="tmux's history-limit of the pane")

    @property
    def shell_in_foreground(self) -> bool:
        """The pane's own process is a shell and owns the terminal: it is at its prompt."""
        return (
            not self.dead
            and self.foreground_pgid == self.pane_pid
            and self.foreground_children == 0
            and not self.shell_runs_script
            and self.current_command.lstrip("-") in SHELLS
        )

    @property
    def job_done_exit_code(self) -> int | None:
        """The exit code the wrapper wrote to the pane option for the last job, if any."""
        parts = self.job_record.split(":")
        if len(parts) == 3 and parts[1] == "done":
            try:
                return int(parts[2])
            except ValueError:
                return None
        return None


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def parse_pane_line(line: str, stats: dict[int, procfs.ProcStat] | None = None) -> PaneInfo | None:
    """Turn one line of :data:`PANE_FORMAT` output into a :class:`PaneInfo` (None if malformed)."""
    values = line.split(SEP)
    if len(values) != len(_FIELDS):
        return None
    row = dict(zip(_FIELDS, values, strict=True))
    pane_pid = _int_or_none(row["pane_pid"]) or 0
    stat = stats.get(pane_pid) if stats is not None else procfs.read_stat(pane_pid)
    flag = row["bracket_paste_flag"]
    tpgid = stat.tpgid if stat is not None and stat.tpgid > 0 else None
    return PaneInfo(
        pane_id=row["pane_id"],
        target_name=f"{row['session_name']}:{row['window_index']}.{row['pane_index']}",
        pane_pid=pane_pid,
        current_command=row["pane_current_command"],
        dead=row["pane_dead"] == "1",
        dead_status=_int_or_none(row["pane_dead_status"]),
        dead_signal=_int_or_none(row["pane_dead_signal"]),
        in_mode=row["pane_in_mode"] == "1",
        mode=row["pane_mode"],
        input_off=row["pane_input_off"] == "1",
        synchronized=row["pane_synchronized"] == "1",
        tty=row["pane_tty"],
        cursor_x=_int_or_none(row["cursor_x"]) or 0,
        cursor_y=_int_or_none(row["cursor_y"]) or 0,
        width_cells=_int_or_none(row["pane_width"]) or 0,
        height_lines=_int_or_none(row["pane_height"]) or 0,
        window_activity_epoch_s=_int_or_none(row["window_activity"]) or 0,
        bracketed_paste=None if flag == "" else flag == "1",
        job_record=row[JOB_OPTION],
        foreground_pgid=tpgid,
        foreground_children=procfs.foreground_children(pane_pid, tpgid, stats) if tpgid == pane_pid else 0,
        shell_runs_script=tpgid == pane_pid and procfs.runs_script(pane_pid),
        history_size=_int_or_none(row["history_size"]) or 0,
        history_limit=_int_or_none(row["history_limit"]) or 0,
    )


def fetch_pane(tmux: Tmux, pane_id: str) -> PaneInfo | None:
    """Snapshot one pane; None when it (or its server) no longer exists. On a box: one ssh round trip
    (:func:`.remote.look`, whose process facts are the box's ``/proc``)."""
    if tmux.host is not None:
        from gpu_preflight.tools.dispatch.remote import look

        return look(tmux, pane_id).pane
    try:
        line = tmux.display(pane_id, PANE_FORMAT)
    except TmuxError:
        return None
    return parse_pane_line(line)


LIST_SCRIPT = r"""f=$1 k=$2 sep=$3
t list-panes -a -F "$f" 2>/dev/null | { i=0; while IFS= read -r line; do
  i=$((i+1)); pid=$(printf '%s\n' "$line" | cut -d "$sep" -f 2)
  case $pid in ''|*[!0-9]*) pid=0;; esac
  echo "@@$k pane $i"; printf '%s\n' "$line"
  echo "@@$k stat $i"; cat "/proc/$pid/stat" 2>/dev/null; echo
  echo "@@$k kids $i"
  for c in $(cat /proc/$pid/task/*/children 2>/dev/null); do cat "/proc/$c/stat" 2>/dev/null; echo; done
  echo "@@$k cmdline $i"; tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null
done; }
"""
"""Every pane of a remote server with its process facts from the box's ``/proc``, in ONE ssh round trip."""


def _list_remote(tmux: Tmux) -> list[PaneInfo]:
    from gpu_preflight.tools.dispatch.remote import nonce, pane_from, sections

    mark = nonce()
    parts = sections(tmux.sh(LIST_SCRIPT, PANE_FORMAT, mark, SEP), mark)
    panes: list[PaneInfo] = []
    index = 1
    while f"pane {index}" in parts:
        pane = pane_from(parts[f"pane {index}"][0], parts.get(f"stat {index}", []), parts.get(f"kids {index}", []),
                         parts.get(f"cmdline {index}", []))
        if pane is not None:
            panes.append(pane)
        index += 1
    return panes


def list_panes(tmux: Tmux, stats: dict[int, procfs.ProcStat] | None = None) -> list[PaneInfo]:
    """Every pane of the server in ONE ``list-panes -a`` call ([] when no server runs); on a box, one ssh
    round trip that also reads the box's ``/proc`` (:data:`LIST_SCRIPT`; a fault of the link raises
    :class:`~.tmuxcmd.HostUnreachable`)."""
    if tmux.host is not None:
        return _list_remote(tmux)
    try:
        text = tmux.run("list-panes", "-a", "-F", PANE_FORMAT)
    except TmuxError:
        return []
    panes = [parse_pane_line(line, stats) for line in text.splitlines()]
    return [pane for pane in panes if pane is not None]
