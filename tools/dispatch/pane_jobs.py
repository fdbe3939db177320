"""The last job WE dispatched into a shell pane, how it ended, and whether that is still the shell's latest.

Why: a pane heartbeat at a prompt answered with the wrapper's ``@pf_job`` pane option, which says
nothing when the wrapper could not reach tmux (``TMUX_PANE`` unset in that shell) and keeps an old
job's code after the user types a command by hand (measured on tmux 3.3a: ``true`` typed after our
``sh -c 'kill -TERM $$'`` still read as exit 143). Here the job comes from our own records:

* **Which job**: the newest shell dispatch into this pane of this tmux server in the audit table,
  or the job named by ``@pf_job`` when that one started later (by their start records). It must have
  run in the pane's own shell: the start record's parent pid (wrapper v2) is the pane's pid, so a
  pane id that a restarted server reused does not inherit an old job.
* **How it ended**: the wrapper's exit record (code, time; a code 129..192 is signal code-128).
* **Still current?** The wrapper also records, at its exit, tmux's ``history_size``, ``cursor_y`` and
  ``cursor_x`` of the pane: the shell prints its next prompt there. Any command run at the prompt
  afterwards leaves a row holding the prompt followed by what was typed, and moves the cursor down.
  So the rows from that point to the cursor now are read: none holds the current prompt line (the
  text left of the cursor) followed by typed text, and at most :data:`MAX_PROMPT_ROWS` rows were
  added: ``current``. Such a row, or more rows: ``superseded`` (a later command, or a Ctrl-C at the
  prompt, which also sets ``$?``; an empty Enter does not and is not counted).
* **When it cannot be told** (an old wrapper's record, no ``TMUX_PANE``, the rows scrolled into
  history or the screen cleared, the pane's history near tmux's ``history-limit`` where tmux trims
  a tenth of it and rows stop counting, a prompt with no text left of the cursor): ``unverified``.
  The code is still reported, with its job id and end time, so the caller can judge; a prompt whose
  last line changes between commands (a clock in it) can also hide a later command this way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from gpu_preflight.tools.dispatch.hbscan import end_fields, job_lines
from gpu_preflight.tools.dispatch.heartbeat_model import Heartbeat
from gpu_preflight.tools.dispatch.models import tail_lines
from gpu_preflight.tools.dispatch.paneinfo import PaneInfo
from gpu_preflight.tools.dispatch.schema import open_db
from gpu_preflight.tools.dispatch.shell_job import jobs_dir

MAX_PROMPT_ROWS = 4
"""Rows a prompt may add after our job (multi-line prompts rarely pass 3); more means a later command."""

Currency = Literal["current", "superseded", "unverified"]


@dataclass(frozen=True)
class JobEnd:
    """The last job we dispatched into a pane, as its records say, and whether it is the shell's latest."""

    job_id: str
    started_at_epoch_s: float
    exit_code: int | None
    signal: int | None
    ended_at_epoch_s: float | None
    currency: Currency | None
    why: str


def latest_shell_jobs(server_key: str, pane_id: str | None = None) -> dict[str, str]:
    """pane id -> job id of the newest shell dispatch into it on this server (one query for all panes)."""
    sql = ("SELECT pane_id, job_id, MAX(id) FROM dispatch_audit WHERE server_key = ? AND mode = 'shell'"
           " AND job_id IS NOT NULL AND pane_id IS NOT NULL")
    args: tuple[str, ...] = (server_key,)
    if pane_id is not None:
        sql, args = sql + " AND pane_id = ?", (server_key, pane_id)
    conn = open_db()
    try:
        rows = conn.execute(sql + " GROUP BY pane_id", args).fetchall()
    finally:
        conn.close()
    return {str(row[0]): str(row[1]) for row in rows}


def _record(job_id: str, suffix: str) -> list[str] | None:
    """The whitespace-split fields of ``<job_id>.<suffix>`` (None: missing or half-written)."""
    try:
        return record_fields((jobs_dir() / f"{job_id}.{suffix}").read_text())
    except OSError:
        return None


def record_fields(text: str) -> list[str] | None:
    """A record's fields when it starts with an integer and a time (None: half-written or not one)."""
    fields = text.split()
    try:
        int(fields[0]), float(fields[1])
    except (ValueError, IndexError):
        return None
    return fields


RecordReader = Callable[[str, str], "list[str] | None"]
"""(job id, ``start``/``exit``) -> the record's fields: local files by default, a remote box's (:mod:`.remote_beat`)."""


def _ints(fields: list[str]) -> list[int] | None:
    try:
        return [int(field) for field in fields]
    except ValueError:
        return None


def _current(pane: PaneInfo, screen: list[str], position: list[int] | None) -> tuple[Currency, str]:
    """Has a command run at the prompt since the job's exit, by the rows from the exit point to the cursor?"""
    if position is None or len(position) != 3:
        return "unverified", "the exit record has no cursor position (an older wrapper, or no TMUX_PANE)"
    history_at_exit, row_at_exit, column_at_exit = position
    trim_at = pane.history_limit - pane.history_limit // 10  # tmux trims a tenth of the history at the limit
    if history_at_exit + pane.height_lines + MAX_PROMPT_ROWS >= trim_at:
        return "unverified", f"the pane's history is near its history-limit ({pane.history_limit} lines)"
    if pane.history_size < history_at_exit:
        return "unverified", "the pane's history was cleared since"
    added = pane.history_size + pane.cursor_y - (history_at_exit + row_at_exit)
    if added < 0:
        return "unverified", "the screen was cleared or resized since"
    if added > MAX_PROMPT_ROWS:
        return "superseded", f"{added} rows were printed after it ended: a later command ran"
    top = history_at_exit + row_at_exit - pane.history_size
    if top < 0 or pane.cursor_y >= len(screen):
        return "unverified", "the rows after its end are no longer on the screen"
    prompt = screen[pane.cursor_y][: pane.cursor_x].rstrip()
    if not prompt:
        return ("current", "the cursor is where the job ended") if added == 0 else (
            "unverified", "the prompt shows no text left of the cursor to look for")
    for row in range(top, pane.cursor_y):
        text = screen[row][column_at_exit:] if row == top else screen[row]
        if text.startswith(prompt) and text[len(prompt):].strip():
            return "superseded", f"a command (or a Ctrl-C) was entered at the prompt after it: {text.strip()[:80]!r}"
    return "current", "nothing was run at the prompt since"


def _started(job_id: str, pane: PaneInfo, read: RecordReader) -> tuple[float, list[str]] | None:
    """(start time, start record) of a job that ran in this pane's own shell, else None."""
    start = read(job_id, "start")
    if start is None:
        return None
    if len(start) >= 3 and start[2] != str(pane.pane_pid):
        return None  # another shell ran it: a pane id reused by a restarted tmux server
    return float(start[1]), start


def last_job_end(pane: PaneInfo, screen: list[str], audit_job_id: str | None,
                 read: RecordReader = _record) -> JobEnd | None:
    """The last job we dispatched into ``pane`` (at its prompt) and how it ended; None if none ran there.

    ``screen``: the pane's visible rows (unstyled, one per row); ``audit_job_id``: from
    :func:`latest_shell_jobs`.
    """
    option_job = pane.job_record.split(":")[0] if pane.job_record else None
    found = [(started[0], job_id) for job_id in dict.fromkeys(filter(None, (audit_job_id, option_job)))
             if (started := _started(job_id, pane, read)) is not None]
    if not found:
        return None
    started_at, job_id = max(found)
    end = read(job_id, "exit")
    if end is None:
        return JobEnd(job_id, started_at, None, None, None, None,
                      "it started but wrote no exit record (the wrapper was killed)")
    code, ended_at = int(end[0]), float(end[1])
    currency, why = _current(pane, screen, _ints(end[2:]))
    return JobEnd(job_id, started_at, code, code - 128 if 128 < code <= 192 else None, ended_at, currency, why)


def has_start_record(job_id: str, read: RecordReader = _record) -> bool:
    """The job ran from this state directory (its wrapper wrote a start record here)."""
    return read(job_id, "start") is not None


def fill_last_job(hb: Heartbeat, pane: PaneInfo, screen: list[str], audit_job_id: str | None,
                  read: RecordReader = _record) -> None:
    """Fill ``hb`` (a shell at its prompt) with the exit of the last job we dispatched here: ``exit_source``
    ``exit_record`` while it is the shell's latest, ``exit_record_unverified`` (with ``job_id`` and
    ``job_ended_at_epoch_s`` for the caller to judge) where a later command cannot be ruled out, no code
    once one ran. A ``@pf_job`` code of a job with no record here is kept as ``pane_option``."""
    end = last_job_end(pane, screen, audit_job_id, read)
    if end is None:
        if hb.exit_code is not None and hb.job_id and has_start_record(hb.job_id, read):
            hb.exit_code = hb.exit_source = hb.end_class = hb.last_error_line = None  # ran in another shell
        elif hb.exit_code is not None:
            hb.reason += f"; exit {hb.exit_code} from the pane's @pf_job option (no record of that job here)"
        return
    hb.job_id, hb.job_ended_at_epoch_s = end.job_id, end.ended_at_epoch_s
    hb.exit_code = hb.signal = hb.exit_source = hb.end_class = hb.last_error_line = None
    if end.exit_code is None:
        hb.reason += f"; our last job here ({end.job_id}) {end.why}"
        return
    at = datetime.fromtimestamp(end.ended_at_epoch_s or 0.0, UTC).strftime("%H:%M:%S UTC")
    ended = f"our last job here ({end.job_id}) ended with exit {end.exit_code} at {at}"
    if end.currency == "superseded":
        hb.reason += f"; {ended}, but {end.why}: the shell's last status is not ours to know"
        return
    hb.exit_code, hb.signal = end.exit_code, end.signal
    hb.exit_source = "exit_record" if end.currency == "current" else "exit_record_unverified"
    hb.reason += (f"; {ended} (the job wrapper's exit record; {end.why})" if end.currency == "current" else
                  f"; {ended} (the job wrapper's exit record); a command typed after it cannot be ruled out: "
                  f"{end.why}")
    lines = job_lines(screen, end.job_id)
    hb.evidence = tail_lines(lines, 4)
    end_fields(hb, lines)
