"""Heartbeats: is the run (or pane) running, idle at its prompt, exited, hung, waiting, or gone?

A pane that runs an agent TUI (Claude Code, Codex, Gemini CLI) is read from its screen instead
(:mod:`.agentbeat`): ``idle``, ``working``, ``waiting_for_input`` (a dialog) or ``exited``, never
``running`` for an agent that sits idle.

Why one call with evidence: an agent that cannot tell "training is running" from "the shell is
idle and the job died an hour ago" keeps paying for a GPU that does nothing. Exit codes come from
the job wrapper's record first (tmux 3.3a loses them), tmux's dead status second. "Hung" needs all
three signs at once: no output, no CPU in a short sample, no log write, for ``hang_after_s``.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

from pydantic import BaseModel, Field

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch import procfs
from gpu_preflight.tools.dispatch.agentbeat import (
    AGENT_SAMPLE_S,
    AgentLook,
    agent_profile,
    classify_agent,
    sample_agents,
)
from gpu_preflight.tools.dispatch.audit import last_agent_prompt
from gpu_preflight.tools.dispatch.hbscan import Scan, read_log, scan, settle_dead_status
from gpu_preflight.tools.dispatch.models import tail_lines
from gpu_preflight.tools.dispatch.paneinfo import PaneInfo
from gpu_preflight.tools.dispatch.runs import RunRecord, get_run, list_runs
from gpu_preflight.tools.dispatch.shell_job import JobRecord, read_job
from gpu_preflight.tools.dispatch.target import make_tmux, resolve_pane_id
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux

HeartbeatState = Literal["running", "idle_at_prompt", "exited", "hung", "waiting_for_input", "pane_gone", "idle",
                         "working"]
DEFAULT_HANG_AFTER_S = 300.0
DEFAULT_CPU_SAMPLE_S = 0.1


class Heartbeat(BaseModel):
    """The state of one pane or run, with the evidence behind it."""

    state: HeartbeatState
    reason: str
    pane_id: str | None = None
    target: str | None = Field(default=None, description="session:window.pane when last seen")
    run_id: str | None = None
    job_id: str | None = None
    current_command: str | None = None
    agent: str | None = Field(default=None, description="agent TUI profile read from the screen (claude, codex, ...)")
    dialog: str | None = Field(default=None, description="waiting_for_input on an agent: the dialog's title")
    exit_code: int | None = None
    signal: int | None = Field(default=None, description="signal number when the process was killed by one")
    seconds_since_output_s: float | None = Field(default=None, description="window activity, 1 s resolution")
    last_output_line: str | None = None
    last_log_line: str | None = None
    log_size_bytes: int | None = None
    log_growth_bytes: int | None = Field(default=None, description="since this process's previous heartbeat")
    seconds_since_log_write_s: float | None = None
    process_tree_cpu_s: float | None = Field(default=None, description="total CPU of the process tree")
    cpu_sample_busy: bool | None = Field(default=None, description="the tree used CPU during the short sample")
    elapsed_s: float | None = Field(default=None, description="run: since its start record (to its exit)")
    evidence: list[str] = Field(default_factory=list)


class HeartbeatReport(BaseModel):
    """``heartbeat_all``: one entry per pane or run, and what the sweep cost."""

    heartbeats: list[Heartbeat]
    scan_ms: float
    pane_count: int


_LOG_SEEN: dict[str, int] = {}
_LOG_LOCK = threading.Lock()


def _log_growth(path: str, size: int) -> int | None:
    with _LOG_LOCK:
        previous = _LOG_SEEN.get(path)
        _LOG_SEEN[path] = size
    return None if previous is None else size - previous


def _exit_fields(job: JobRecord | None, pane: PaneInfo | None) -> tuple[int | None, int | None, str]:
    if job is not None and job.exited:
        return job.exit_code, job.signal, "the job wrapper's exit record"
    if pane is not None and pane.job_done_exit_code is not None and pane.dead:
        code = pane.job_done_exit_code
        return code, (code - 128 if 128 < code <= 192 else None), "the wrapper's @pf_job pane option"
    if pane is not None and (pane.dead_status is not None or pane.dead_signal is not None):
        return pane.dead_status, pane.dead_signal, "tmux pane_dead_status/pane_dead_signal"
    return None, None, "no exit status recorded (tmux 3.3a can lose it)"


Pending = tuple[Heartbeat, int | None, AgentLook | None]
"""A heartbeat, the root pid to CPU-sample if it may be hung, and an agent screen to look at again."""


def _classify(hb: Heartbeat, pane: PaneInfo, snap: Scan, run: RunRecord | None, job: JobRecord | None,
              hang_after_s: float) -> Pending:
    """Fill ``hb`` from the snapshot; says what still needs a second sample."""
    now = snap.taken_epoch_s
    hb.seconds_since_output_s = (
        round(max(0.0, now - pane.window_activity_epoch_s), 1) if pane.window_activity_epoch_s else None
    )
    screen = snap.screens.get(pane.pane_id, [])
    last = tail_lines(screen, 1)
    hb.last_output_line = last[0] if last else None
    hb.evidence = tail_lines(screen, 4)
    if (job is not None and job.exited) or pane.dead:
        hb.exit_code, hb.signal, source = _exit_fields(job, pane)
        hb.state, hb.reason = "exited", f"exited ({source})"
        return hb, None, None
    profile = None if pane.shell_in_foreground else agent_profile(pane, snap.stats)
    if profile is not None:
        return hb, None, classify_agent(hb, pane, snap.ansi.get(pane.pane_id, []), profile)
    if pane.shell_in_foreground:
        hb.state = "idle_at_prompt"
        hb.exit_code = pane.job_done_exit_code
        hb.reason = "the shell is at its prompt" + (
            "; the run's job never started" if run is not None and job is not None and not job.started else ""
        )
        return hb, None, None
    root = job.pid if job is not None and job.pid and procfs.alive(job.pid) else pane.pane_pid
    tree = procfs.descendants(root, snap.stats)
    hb.process_tree_cpu_s = round(sum(snap.stats[p].cpu_ticks for p in tree) / procfs.CLOCK_TICKS_PER_S, 2)
    group = [pid for pid, stat in snap.stats.items() if pane.foreground_pgid and stat.pgrp == pane.foreground_pgid]
    if any(procfs.blocked_reading_tty(pid, pane.tty) for pid in group):
        hb.state, hb.reason = "waiting_for_input", "the foreground process is blocked reading the terminal"
        return hb, None, None
    quiet = hb.seconds_since_output_s is not None and hb.seconds_since_output_s >= hang_after_s
    log_stale = hb.seconds_since_log_write_s is None or hb.seconds_since_log_write_s >= hang_after_s
    hb.state, hb.reason = "running", "output or log moved within the window"
    return hb, root if quiet and log_stale else None, None


def _sample_cpu(candidates: list[tuple[Heartbeat, int]], stats: dict[int, procfs.ProcStat], sample_s: float,
                hang_after_s: float) -> None:
    """One short CPU sample for every hang candidate at once: busy trees are running, idle ones hung."""
    if not candidates:
        return
    before = {id(hb): procfs.tree_cpu_ticks(root, stats) for hb, root in candidates}
    time.sleep(sample_s)
    after_stats = procfs.all_stats()
    for hb, root in candidates:
        busy = procfs.tree_cpu_ticks(root, after_stats) > before[id(hb)]
        hb.cpu_sample_busy = busy
        if busy:
            hb.reason = "silent, but the process tree is using CPU"
        else:
            hb.state = "hung"
            hb.reason = (f"no output for {hb.seconds_since_output_s or 0:.0f} s, no CPU in a {sample_s:g} s sample, "
                         f"no log write for {hang_after_s:g} s")


def _run_heartbeat(run: RunRecord, snap: Scan, tmux: Tmux, hang_after_s: float) -> Pending:
    job = read_job(run.job_id) if run.job_id else None
    hb = Heartbeat(state="pane_gone", reason="", pane_id=run.pane_id, run_id=run.run_id,
                   job_id=run.job_id, target=run.target)
    if job is not None and job.started_at_epoch_s is not None:
        end = job.ended_at_epoch_s if job.exited and job.ended_at_epoch_s else time.time()
        hb.elapsed_s = round(end - job.started_at_epoch_s, 3)
    if run.log_path:
        log = read_log(run.log_path, snap.taken_epoch_s)
        if log is not None:
            hb.log_size_bytes, hb.last_log_line = log.size_bytes, log.last_line
            hb.seconds_since_log_write_s = round(log.seconds_since_write_s, 3)
            hb.log_growth_bytes = _log_growth(run.log_path, log.size_bytes)
    pane = snap.panes.get(run.pane_id or "")
    if pane is None:
        if job is not None and job.exited:
            hb.exit_code, hb.signal, source = _exit_fields(job, None)
            hb.state, hb.reason = "exited", f"exited ({source}); the pane is gone"
        else:
            hb.reason = "the run's pane no longer exists"
        return hb, None, None
    hb.current_command, hb.target = pane.current_command, pane.target_name
    return _classify(hb, settle_dead_status(tmux, pane), snap, run, job, hang_after_s)


def _pane_heartbeat(pane: PaneInfo, snap: Scan, tmux: Tmux, hang_after_s: float) -> Pending:
    hb = Heartbeat(state="running", reason="", pane_id=pane.pane_id, target=pane.target_name,
                   current_command=pane.current_command)
    job_id = pane.job_record.split(":")[0] if pane.job_record else None
    hb.job_id = job_id
    # A live pane's exit code is "the last job's", reported with idle_at_prompt; only a dead pane "exited".
    job = read_job(job_id) if job_id and pane.dead else None
    hb, root, look = _classify(hb, settle_dead_status(tmux, pane), snap, None, job, hang_after_s)
    if hb.state == "idle_at_prompt" and job_id is None:
        prompt = last_agent_prompt(tmux.key, pane.pane_id)
        if prompt is not None:
            hb.state = "exited"
            hb.reason = (f"the agent TUI that took our last prompt here (audit #{prompt[0]}, {prompt[1]}) has exited: "
                         "the shell is back at its prompt")
    return hb, root, look


def heartbeat(run_id: str | None = None, target: str | None = None, *, socket_name: str | None = None,
              socket_path: str | None = None, hang_after_s: float = DEFAULT_HANG_AFTER_S,
              cpu_sample_s: float = DEFAULT_CPU_SAMPLE_S, agent_sample_s: float = AGENT_SAMPLE_S) -> Heartbeat:
    """The state of one run (by ``run_id``) or one pane (by ``target``), with evidence."""
    if (run_id is None) == (target is None):
        raise PreflightError("run_id/target", (run_id, target), "exactly one of run_id or target")
    if hang_after_s <= 0 or cpu_sample_s < 0:
        raise PreflightError("hang_after_s", hang_after_s, "hang_after_s > 0 and cpu_sample_s >= 0")
    if run_id is not None:
        run = get_run(run_id)
        tmux = make_tmux(run.socket_name, run.socket_path)
        snap = scan(tmux, only={run.pane_id} if run.pane_id else set())
        hb, root, look = _run_heartbeat(run, snap, tmux, hang_after_s)
    else:
        assert target is not None
        tmux = make_tmux(socket_name, socket_path)
        pane_id = resolve_pane_id(tmux, target)
        snap = scan(tmux, only={pane_id} if pane_id else set())
        pane = snap.panes.get(pane_id or "")
        if pane is None:
            return Heartbeat(state="pane_gone", reason="no such pane on this tmux server", target=target)
        hb, root, look = _pane_heartbeat(pane, snap, tmux, hang_after_s)
    _sample_cpu([(hb, root)] if root else [], snap.stats, cpu_sample_s, hang_after_s)
    sample_agents(tmux, [look] if look else [], agent_sample_s)
    return hb


def heartbeat_all(*, socket_name: str | None = None, socket_path: str | None = None,
                  scope: Literal["panes", "runs"] = "panes", hang_after_s: float = DEFAULT_HANG_AFTER_S,
                  cpu_sample_s: float = DEFAULT_CPU_SAMPLE_S, run_limit: int = 100,
                  agent_sample_s: float = AGENT_SAMPLE_S) -> HeartbeatReport:
    """Every pane of one server (``scope="panes"``) or every recorded run (``"runs"``), in one sweep."""
    if scope not in ("panes", "runs"):
        raise PreflightError("scope", scope, "panes or runs")
    started = time.monotonic()
    results: list[Pending] = []
    looks: dict[tuple[str | None, str | None], tuple[Tmux, list[AgentLook]]] = {}
    stats: dict[int, procfs.ProcStat] = {}
    pane_count = 0
    if scope == "panes":
        tmux = make_tmux(socket_name, socket_path)
        snap = scan(tmux)
        stats, pane_count = snap.stats, len(snap.panes)
        results = [_pane_heartbeat(pane, snap, tmux, hang_after_s) for pane in snap.panes.values()]
        looks[(socket_name, socket_path)] = (tmux, [look for _, _, look in results if look])
    else:
        by_server: dict[tuple[str | None, str | None], list[RunRecord]] = {}
        for run in list_runs(run_limit):
            by_server.setdefault((run.socket_name, run.socket_path), []).append(run)
        for (name, path), runs in by_server.items():
            tmux = make_tmux(name, path)
            snap = scan(tmux)
            stats.update(snap.stats)
            pane_count += len(snap.panes)
            server = [_run_heartbeat(run, snap, tmux, hang_after_s) for run in runs]
            looks[(name, path)] = (tmux, [look for _, _, look in server if look])
            results += server
    _sample_cpu([(hb, root) for hb, root, _ in results if root], stats, cpu_sample_s, hang_after_s)
    for tmux, pending in looks.values():  # one sleep for all; see agentbeat.sample_agents
        sample_agents(tmux, pending, agent_sample_s if pending else 0.0)
    return HeartbeatReport(heartbeats=[hb for hb, _, _ in results], pane_count=pane_count,
                           scan_ms=round((time.monotonic() - started) * 1000.0, 2))
