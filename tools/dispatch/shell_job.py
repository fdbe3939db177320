"""Shell jobs: type a short handle, not the payload; the wrapper proves the job started and how it ended.

Why a job file: the command is written to ``<state>/jobs/<id>.sh`` and the pane only sees
`` bash '<state>/jobs/pf-job' <id>``. Quoting, trailing ``;``, leading ``-``, multi-line scripts,
control characters, the 16 KB argv limit and the 4095-byte tty line limit stop mattering.

Why a wrapper: tmux 3.3a loses exit statuses (28 of 40 sequential exits had none) and a prompt
gives no proof that a command started. The wrapper writes ``<id>.start`` (pid, time, its shell's pid) before running
the job and ``<id>.exit`` (code, time, the pane's cursor line) after, sets the pane option ``@pf_job`` with
``-t "$TMUX_PANE"`` (without ``-t`` tmux picks the session's *active* pane, not ours) and signals
``tmux wait-for`` channels ``pf_st_<id>`` / ``pf_dn_<id>``. The start record is the confirmation.
"""

from __future__ import annotations

import secrets
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from gpu_preflight.tools.common.state import state_dir
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux, stop_waiter

WRAPPER_NAME = "pf-job"
WRAPPER_SCRIPT = """\
# gpu-preflight job wrapper (v2): records start, runs the job file, records the exit code.
id=$1
d=${0%/*}
now() { printf '%s' "${EPOCHREALTIME:-$(date +%s.%N)}"; }
trap ':' INT QUIT  # a Ctrl-C kills the job, not the wrapper: the exit record still gets written
printf '%s %s %s\\n' "$$" "$(now)" "$PPID" > "$d/$id.start"  # + the shell that ran us
if [ -n "$TMUX_PANE" ]; then
  tmux set-option -p -t "$TMUX_PANE" @pf_job "$id:run:$$" 2>/dev/null
  tmux wait-for -S "pf_st_$id" 2>/dev/null
fi
bash "$d/$id.sh"
rc=$?
pos=  # where the shell will print its next prompt: a later command moves it (see pane_jobs)
at='#{history_size} #{cursor_y} #{cursor_x}'
[ -n "$TMUX_PANE" ] && pos=$(tmux display-message -p -t "$TMUX_PANE" "$at" 2>/dev/null)
printf '%s %s %s\\n' "$rc" "$(now)" "$pos" > "$d/$id.exit"
if [ -n "$TMUX_PANE" ]; then
  tmux set-option -p -t "$TMUX_PANE" @pf_job "$id:done:$rc" 2>/dev/null
  tmux wait-for -S "pf_dn_$id" 2>/dev/null
fi
exit "$rc"
"""


class JobRecord(BaseModel):
    """What the wrapper wrote for one job."""

    job_id: str
    pid: int | None = None
    started_at_epoch_s: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    ended_at_epoch_s: float | None = None

    @property
    def started(self) -> bool:
        return self.pid is not None

    @property
    def exited(self) -> bool:
        return self.exit_code is not None


def jobs_dir() -> Path:
    path = state_dir() / "jobs"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def wrapper_path() -> Path:
    """Install (or refresh) the wrapper in the jobs directory and return its path."""
    path = jobs_dir() / WRAPPER_NAME
    try:
        current = path.read_text()
    except OSError:
        current = ""
    if current != WRAPPER_SCRIPT:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(WRAPPER_SCRIPT)
        tmp.replace(path)
    return path


def new_job_id() -> str:
    return "j" + secrets.token_hex(6)


def write_job(command: str, job_id: str | None = None) -> tuple[str, Path]:
    """Write ``command`` to its job file; return (job_id, path)."""
    job_id = job_id or new_job_id()
    path = jobs_dir() / f"{job_id}.sh"
    path.write_text(command if command.endswith("\n") else command + "\n")
    return job_id, path


def handle_for(job_id: str) -> str:
    """The short line typed into the shell; the leading space keeps it out of bash history
    (``HISTCONTROL=ignorespace``)."""
    return f" bash {shlex.quote(str(wrapper_path()))} {job_id}"


def _read_pair(path: Path) -> tuple[int, float] | None:
    try:
        parts = path.read_text().split()
        return int(parts[0]), float(parts[1])
    except (OSError, ValueError, IndexError):
        return None  # missing, or caught half-written: the caller polls again


def read_job(job_id: str) -> JobRecord:
    """The start and exit records of ``job_id`` (fields None where not written yet)."""
    record = JobRecord(job_id=job_id)
    base = jobs_dir()
    start = _read_pair(base / f"{job_id}.start")
    if start is not None:
        record.pid, record.started_at_epoch_s = start
    end = _read_pair(base / f"{job_id}.exit")
    if end is not None:
        record.exit_code, record.ended_at_epoch_s = end
        if 128 < end[0] <= 128 + 64:
            record.signal = end[0] - 128
    return record


@dataclass
class StartWait:
    """A pending wait for a job's start record (waiter started before the Enter, checked after)."""

    job_id: str
    tmux: Tmux

    def __post_init__(self) -> None:
        self._waiter = self.tmux.wait_for_popen(f"pf_st_{self.job_id}")

    def wait(self, timeout_s: float, poll_s: float = 0.002) -> JobRecord:
        """Until the start record exists (file or ``wait-for`` channel) or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            record = read_job(self.job_id)
            if record.started:
                break
            if self._waiter.poll() is not None or time.monotonic() >= deadline:
                record = read_job(self.job_id)  # the channel fired: the file is already there
                break
            time.sleep(poll_s)
        return record

    def close(self) -> None:
        """Reap the ``wait-for`` child (kill it if the channel never fired)."""
        stop_waiter(self._waiter, 0.2 if read_job(self.job_id).started else 0.0)


def wait_for_exit(job_id: str, tmux: Tmux, timeout_s: float) -> JobRecord:
    """Block until the wrapper's done channel fires (or ``timeout_s``), then return the records."""
    if read_job(job_id).exited:
        return read_job(job_id)
    stop_waiter(tmux.wait_for_popen(f"pf_dn_{job_id}"), timeout_s)
    return read_job(job_id)
