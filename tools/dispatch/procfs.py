"""What the kernel knows about a pane's processes, read from ``/proc`` without forking.

Why ``/proc`` and not ``ps``: a heartbeat over 100 panes must stay far below half a second, and
one ``ps`` fork costs more than reading every ``stat`` file on the machine. The terminal's
foreground process group (``tpgid`` in the shell's ``stat``) says whether the shell is at its
prompt (``tpgid == shell pid``) or something runs in the foreground; ``syscall`` says whether
that process is blocked reading its terminal.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
READ_SYSCALLS = {"x86_64": 0, "aarch64": 63, "arm64": 63}
"""``read``'s number per ``uname -m`` (a remote box says its own; :mod:`.remote` brings it back)."""
_READ_SYSCALL = READ_SYSCALLS.get(platform.machine(), -1)


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` the dispatcher uses (CPU in clock ticks)."""

    pid: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    tpgid: int
    cpu_ticks: int
    start_ticks: int


def read_stat(pid: int) -> ProcStat | None:
    """Parse ``/proc/<pid>/stat``; None when the process is gone (or not ours to read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    return parse_stat(pid, raw)


def parse_stat(pid: int, raw: str) -> ProcStat | None:
    """The text of one ``/proc/<pid>/stat`` (read here, or on a remote box) as a :class:`ProcStat`."""
    # comm may contain spaces and parentheses: split at the LAST ')'.
    open_at, close_at = raw.find("("), raw.rfind(")")
    if open_at < 0 or close_at < 0:
        return None
    rest = raw[close_at + 2 :].split()
    try:
        return ProcStat(
            pid=pid,
            comm=raw[open_at + 1 : close_at],
            state=rest[0],
            ppid=int(rest[1]),
            pgrp=int(rest[2]),
            tpgid=int(rest[5]),
            cpu_ticks=int(rest[11]) + int(rest[12]),
            start_ticks=int(rest[19]),
        )
    except (IndexError, ValueError):
        return None


def all_stats() -> dict[int, ProcStat]:
    """Every readable process on the machine, read once (for process trees over many panes)."""
    stats: dict[int, ProcStat] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = read_stat(int(name))
            if stat is not None:
                stats[stat.pid] = stat
    return stats


def descendants(root_pid: int, stats: dict[int, ProcStat]) -> list[int]:
    """``root_pid`` and every process below it, from one :func:`all_stats` snapshot."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_cpu_ticks(root_pid: int, stats: dict[int, ProcStat]) -> int:
    """User + system CPU of a process tree, in clock ticks (live processes only)."""
    return sum(stats[pid].cpu_ticks for pid in descendants(root_pid, stats))


def blocked_reading_tty(pid: int, tty_path: str) -> bool | None:
    """True when ``pid`` sits in ``read()`` on its terminal (waiting for someone to type).

    None when the kernel does not let us look (``/proc/<pid>/syscall`` needs ptrace rights).
    """
    try:
        with open(f"/proc/{pid}/syscall", "rb") as handle:
            fields = handle.read().decode("ascii", "replace").split()
    except OSError:
        return None
    if not fields or fields[0] in {"running", "-1"}:
        return False
    try:
        number, fd = int(fields[0]), int(fields[1], 16)
    except (ValueError, IndexError):
        return None
    if number != _READ_SYSCALL:
        return False
    try:
        return os.path.realpath(f"/proc/{pid}/fd/{fd}") == os.path.realpath(tty_path)
    except OSError:
        return None


def reads_terminal(number: int, fd_target: str, tty_path: str, machine: str) -> bool:
    """:func:`blocked_reading_tty` for facts read on a remote box: the syscall a process sleeps in (the first
    field of its ``/proc/<pid>/syscall``), the terminal that call's fd is open on (empty: not the pane's; the box's
    ``test -ef`` tells) and the box's ``uname -m``.

    >>> reads_terminal(0, "/dev/pts/3", "/dev/pts/3", "x86_64"), reads_terminal(7, "/dev/pts/3", "/dev/pts/3", "x86_64")
    (True, False)
    """
    return number == READ_SYSCALLS.get(machine, -1) and bool(fd_target) and fd_target == tty_path


def children(pid: int, stats: dict[int, ProcStat] | None = None) -> list[int]:
    """Direct children of ``pid``: ``/proc/<pid>/task/*/children`` where the kernel has it
    (CONFIG_PROC_CHILDREN), else from a process snapshot (``stats``, or a fresh one)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", "rb") as handle:
                found += [int(part) for part in handle.read().split()]
        return found
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return found
    snapshot = stats if stats is not None else all_stats()
    return [stat.pid for stat in snapshot.values() if stat.ppid == pid]


def foreground_children(pid: int, pgid: int, stats: dict[int, ProcStat] | None = None) -> int:
    """How many children of ``pid`` run in the terminal's foreground group ``pgid``.

    An interactive shell at its prompt has none (job control gives each job its own group); a
    non-interactive ``sh -c 'while ...'`` shares its group with the commands it runs.
    """
    count = 0
    for child in children(pid, stats):
        stat = stats.get(child) if stats is not None else read_stat(child)
        if stat is not None and stat.pgrp == pgid and stat.state not in {"Z", "X"}:
            count += 1
    return count


def runs_script(pid: int) -> bool:
    """A shell started as ``sh -c '...'`` (tmux's way to run a window command) or with a script
    file is running that script, never sitting at a prompt, even between two of its commands."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            args = [arg.decode("utf-8", "replace") for arg in handle.read().split(b"\0") if arg]
    except OSError:
        return False
    return args_run_script(args)


def args_run_script(args: list[str]) -> bool:
    """:func:`runs_script` for an argv already read (a remote box's ``/proc/<pid>/cmdline``)."""
    flags = [arg for arg in args[1:] if arg.startswith("-")]
    if "-i" in flags:
        return False
    return "-c" in flags or (len(args) > 1 and not args[1].startswith("-"))


def alive(pid: int) -> bool:
    """Whether ``pid`` exists (zombies count as gone)."""
    stat = read_stat(pid)
    return stat is not None and stat.state not in {"Z", "X"}
