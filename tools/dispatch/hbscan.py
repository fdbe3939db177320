"""The cheap part of a heartbeat: everything about many panes in a handful of calls.

Why batched: one ``capture-pane`` fork per pane costs ~4 ms, so 100 panes would take 0.4 s by
captures alone. Here the whole server is read with ONE ``list-panes -a -F`` and ONE chained
``capture-pane`` command (a marker line before each pane's screen), and ``/proc`` is read once
for every process. Logs are read from the end only.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from dataclasses import dataclass

from gpu_preflight.tools.dispatch import procfs
from gpu_preflight.tools.dispatch.heartbeat_model import Heartbeat
from gpu_preflight.tools.dispatch.paneinfo import PaneInfo, fetch_pane, list_panes
from gpu_preflight.tools.dispatch.runs import RunRecord
from gpu_preflight.tools.dispatch.screen import unstyle_lines
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux, TmuxError
from gpu_preflight.tools.telemetry.probecap import tail_cap

MARK = "\x1epf-pane "
CAPTURE_BATCH = 80
"""Panes per chained call: keeps the command well under tmux's ~16 KB message limit."""
LOG_TAIL_BYTES = 8192


@dataclass
class Scan:
    """One snapshot of a server: panes, their screens, and every process."""

    panes: dict[str, PaneInfo]
    screens: dict[str, list[str]]
    ansi: dict[str, list[str]]
    stats: dict[int, procfs.ProcStat]
    taken_epoch_s: float


def capture_many(tmux: Tmux, pane_ids: list[str], *, escapes: bool = False) -> dict[str, list[str]]:
    """Visible screens of many panes with one tmux call per :data:`CAPTURE_BATCH` panes (``escapes``:
    with SGR attributes, so an agent's grey placeholder can be told from a draft)."""
    flags = ["-p", "-e"] if escapes else ["-p"]
    screens: dict[str, list[str]] = {}
    for start in range(0, len(pane_ids), CAPTURE_BATCH):
        batch = pane_ids[start : start + CAPTURE_BATCH]
        args: list[str] = []
        for index, pane_id in enumerate(batch):  # marker by index: display-message runs strftime on "%"
            args += ["display-message", "-p", "-t", pane_id, f"{MARK}{index}", ";", "capture-pane", *flags, "-t",
                     pane_id, ";"]
        try:
            text = tmux.run(*args[:-1])
        except TmuxError:  # a pane vanished mid-batch: tmux stops the chain, so go one by one
            for pane_id in batch:
                try:
                    screens[pane_id] = tmux.capture(pane_id, escapes=escapes)
                except TmuxError:
                    continue
            continue
        current: list[str] | None = None
        for line in text.split("\n"):
            if line.startswith(MARK) and line[len(MARK) :].isdigit():
                current = screens.setdefault(batch[int(line[len(MARK) :])], [])
            elif current is not None:
                current.append(line.rstrip())
    return screens


def scan(tmux: Tmux, only: set[str] | None = None) -> Scan:
    """Read every pane of the server (or only the ids in ``only``) and every process, once."""
    stats = procfs.all_stats()
    panes = {pane.pane_id: pane for pane in list_panes(tmux, stats) if only is None or pane.pane_id in only}
    ansi = capture_many(tmux, list(panes), escapes=True)
    screens = {pane_id: unstyle_lines(lines)[0] for pane_id, lines in ansi.items()}
    return Scan(panes=panes, screens=screens, ansi=ansi, stats=stats, taken_epoch_s=time.time())


def settle_dead_status(tmux: Tmux, pane: PaneInfo, tries: int = 3) -> PaneInfo:
    """tmux 3.3a often leaves a dead pane without a status until another child of the server exits;
    ``run-shell true`` makes one exit, then the pane is read again (a few times at most)."""
    for attempt in range(tries):
        if not pane.dead or pane.dead_status is not None or pane.dead_signal is not None:
            break
        try:
            tmux.run("run-shell", "true")
        except TmuxError:
            break
        time.sleep(0.005 * attempt)
        pane = fetch_pane(tmux, pane.pane_id) or pane
    return pane


@dataclass(frozen=True)
class LogView:
    """What a run's log file says about progress; ``tail`` is its last :data:`LOG_TAIL_BYTES` as text."""

    size_bytes: int
    seconds_since_write_s: float
    last_line: str | None
    tail: str = ""


def read_log(path: str, now_epoch_s: float) -> LogView | None:
    """Size, age and last non-empty line (``\\r`` progress bars count as lines) of a log file.

    Opened non-blocking and read only if it is a regular file: a log replaced by a FIFO after launch
    must not block the heartbeat (and with it the MCP server's worker) forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except (OSError, ValueError):
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        os.lseek(fd, max(0, info.st_size - LOG_TAIL_BYTES), os.SEEK_SET)
        tail = os.read(fd, LOG_TAIL_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    pieces = [piece.strip() for piece in tail.replace("\r", "\n").split("\n")]
    last = next((piece for piece in reversed(pieces) if piece), None)
    return LogView(size_bytes=info.st_size, seconds_since_write_s=max(0.0, now_epoch_s - info.st_mtime),
                   last_line=last[:300] if last else None, tail=tail)


def read_remote_log(host: str, path: str, now_epoch_s: float | None) -> LogView | None:
    """:func:`read_log` of a log on a registered host (one ssh call, :mod:`~gpu_preflight.tools.hosts.remotefile`).

    ``now_epoch_s`` is the box's own clock (from the same heartbeat's look), so the log's age is measured
    on one clock; None when the file does not exist yet or is not a readable regular file. Raises
    ``RemoteFileUnreachable`` when the box does not answer.
    """
    from gpu_preflight.tools.common.errors import PreflightError
    from gpu_preflight.tools.hosts.registry import get_host
    from gpu_preflight.tools.hosts.remotefile import RemoteFileUnreachable, read_remote

    box = get_host(host, field="host")
    try:
        found = read_remote(box, path, last_bytes=LOG_TAIL_BYTES, field="log_path", must_exist=False)
    except RemoteFileUnreachable:
        raise
    except PreflightError:  # not a regular file, unreadable: as read_log, no log rather than a failed heartbeat
        return None
    if found is None:
        return None
    tail = found.data.decode("utf-8", "replace")
    pieces = [piece.strip() for piece in tail.replace("\r", "\n").split("\n")]
    last = next((piece for piece in reversed(pieces) if piece), None)
    now = now_epoch_s if now_epoch_s is not None else time.time()
    return LogView(size_bytes=found.size_bytes, seconds_since_write_s=max(0.0, now - found.mtime_epoch_s),
                   last_line=last[:300] if last else None, tail=tail)


_LOG_SEEN: dict[str, int] = {}
_LOG_LOCK = threading.Lock()


def _log_growth(path: str, size: int) -> int | None:
    with _LOG_LOCK:
        previous = _LOG_SEEN.get(path)
        _LOG_SEEN[path] = size
    return None if previous is None else size - previous


def fill_log(hb: Heartbeat, run: RunRecord, log: LogView | None) -> str:
    """Fill a run heartbeat's log fields and probe cap from ``log`` (here or on the run's host); its tail text."""
    text = ""
    if log is not None and run.log_path:
        hb.log_size_bytes, hb.last_log_line, text = log.size_bytes, log.last_line, log.tail
        hb.seconds_since_log_write_s = round(log.seconds_since_write_s, 3)
        key = run.log_path if run.host is None else f"ssh://{run.host}:{run.log_path}"
        hb.log_growth_bytes = _log_growth(key, log.size_bytes)
    # An HF log's dicts are counted k x logging_steps from the file's start: only when the tail is the whole file.
    whole = hb.log_size_bytes is not None and hb.log_size_bytes <= LOG_TAIL_BYTES
    hb.probe_cap = tail_cap(run.cap_steps, run.cap_seconds, hb.elapsed_s, text,  # caps: probecap's doc
                            run.log_format, run.log_regex, run.logging_steps if whole else None)
    return text


# Why these and in this order: the end of a crashed run is read by an agent deciding what to change,
# and "out of memory" (shrink the batch), an NCCL failure (the interconnect or a peer rank) and a kill
# from outside (the host's OOM killer, a scheduler) each call for a different fix than a bug does.
# The first pattern that matches a line names its class.
ERROR_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("oom", re.compile(r"out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|CUDA_ERROR_OUT_OF_MEMORY", re.I)),
    ("nccl", re.compile(r"\bNCCL\b.*\b(?:error|timeout|timed out|failure)|\bnccl\w*Error\b|DistBackendError", re.I)),
    ("killed", re.compile(r"(?:^|\s)Killed(?:\s|$)")),
    ("error", re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit)\b(?::.*)?$"
                         r"|^(?:Segmentation fault|Aborted|Bus error)\b|\bcore dumped\b")),
)


def last_error(lines: list[str]) -> tuple[str, str] | None:
    """(class, line) of the latest error line in ``lines`` (a log tail or a screen), or None.

    A Python traceback's final line (``RuntimeError: ...``), ``CUDA out of memory``, an NCCL error,
    bash's ``Killed``; a progress bar printed after the traceback (tqdm on stderr) is skipped over.
    """
    for raw in reversed(lines):
        line = raw.strip()
        if not line or len(line) > 2000:
            continue
        for kind, pattern in ERROR_PATTERNS:
            if pattern.search(line):
                return kind, line[:300]
    return None


def end_class(exit_code: int | None, signal: int | None, error_kind: str | None) -> str | None:
    """How a run ended: ``ok``, ``oom``, ``nccl``, ``killed``, ``interrupted`` or ``error`` (None: no end known).

    OOM and NCCL are told from the error line whatever the code (a CUDA OOM exits 1, a host OOM kill is
    signal 9 with ``Killed``); Ctrl-C (signal 2, exit 130) is ``interrupted``, as a probe cap stops it.
    """
    if exit_code is None and signal is None:
        return None
    if signal is None and exit_code is not None and 128 < exit_code <= 192:
        signal = exit_code - 128  # a shell reports a child killed by signal N as 128 + N
    if exit_code == 0 and signal is None:
        return "ok"
    if error_kind in ("oom", "nccl"):
        return error_kind
    if signal == 2:
        return "interrupted"
    if signal is not None or error_kind == "killed":
        return "killed"
    return "error"


_HANDLE = re.compile(r"pf-job'?\s+(j[0-9a-f]{12})\b")


def job_lines(screen: list[str], job_id: str | None) -> list[str]:
    """The screen from the current job's handle line on, without the handle lines of earlier jobs.

    Why: a shell pane keeps earlier jobs' `` bash '.../pf-job' j...`` lines (and their output) on
    screen; evidence and error lines of this job must not quote them. A handle that tmux wrapped onto
    two lines is recognised by joining each ``pf-job`` line with the next.
    """
    ids: list[str | None] = []
    for i, line in enumerate(screen):
        text = line + (" " + screen[i + 1].strip() if "pf-job" in line and i + 1 < len(screen) else "")
        found = _HANDLE.search(text) if "pf-job" in line else None
        ids.append(found.group(1) if found else None)
    start = max((i for i, found in enumerate(ids) if found is not None and found == job_id), default=0)
    kept: list[str] = []
    skip_next = False
    for i in range(start, len(screen)):
        if skip_next:
            skip_next = False
            if ids[i - 1] != job_id and screen[i].strip().startswith(ids[i - 1] or "\x00"):
                continue  # the wrapped tail of an earlier job's handle
        if ids[i] is not None and ids[i] != job_id:
            skip_next = True
            continue
        kept.append(screen[i])
    return kept


def end_fields(hb: Heartbeat, lines: list[str]) -> None:
    """``last_error_line`` and ``end_class`` of an ended run from its log tail or screen lines."""
    found = last_error(lines)
    if found is not None and (hb.exit_code not in (None, 0) or hb.signal is not None or hb.state == "hung"):
        hb.last_error_line = found[1]
    hb.end_class = end_class(hb.exit_code, hb.signal, found[0] if found else None)
