"""The cheap part of a heartbeat: everything about many panes in a handful of calls.

Why batched: one ``capture-pane`` fork per pane costs ~4 ms, so 100 panes would take 0.4 s by
captures alone. Here the whole server is read with ONE ``list-panes -a -F`` and ONE chained
``capture-pane`` command (a marker line before each pane's screen), and ``/proc`` is read once
for every process. Logs are read from the end only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from gpu_preflight.tools.dispatch import procfs
from gpu_preflight.tools.dispatch.paneinfo import PaneInfo, fetch_pane, list_panes
from gpu_preflight.tools.dispatch.screen import unstyle_lines
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux, TmuxError

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
    """What a run's log file says about progress."""

    size_bytes: int
    seconds_since_write_s: float
    last_line: str | None


def read_log(path: str, now_epoch_s: float) -> LogView | None:
    """Size, age and last non-empty line (``\\r`` progress bars count as lines) of a log file."""
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            handle.seek(max(0, info.st_size - LOG_TAIL_BYTES))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    pieces = [piece.strip() for piece in tail.replace("\r", "\n").split("\n")]
    last = next((piece for piece in reversed(pieces) if piece), None)
    return LogView(size_bytes=info.st_size, seconds_since_write_s=max(0.0, now_epoch_s - info.st_mtime),
                   last_line=last[:300] if last else None)
