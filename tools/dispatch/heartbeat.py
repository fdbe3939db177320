"""Heartbeats: is the run (or pane) running, idle at its prompt, exited, hung, waiting, or gone?

A pane that runs an agent TUI (Claude Code, Codex, Gemini CLI) is read from its screen instead
(:mod:`.agentbeat`): ``idle``, ``working``, ``waiting_for_input`` (a dialog) or ``exited``, never
``running`` for an agent that sits idle.

Why one call with evidence: an agent that cannot tell "training is running" from "the shell is
idle and the job died an hour ago" keeps paying for a GPU that does nothing. Exit codes come from
the job wrapper's record first (tmux 3.3a loses them), tmux's dead status second; a shell back at its
prompt reports our last job's code only while no later command ran there (:mod:`.pane_jobs`). "Hung" needs all
three signs at once: no output, no CPU in a short sample, no log write, for ``hang_after_s``.

Why the threshold follows the run: a fixed 300 s lets a run of 0.5 s steps sit hung for 600 steps'
worth of rent, and calls nothing about a run of 2-minute steps. Unless the caller sets
``hang_after_s``, it is :data:`HANG_STEPS` median steps read from the run's own log tail (else its
screen), never under :data:`HANG_FLOOR_S` (checkpoint writes, eval passes, data-loader stalls), and
:data:`DEFAULT_HANG_AFTER_S` when no step time is shown. The reason always says how long since output
and since the log moved, the threshold, and where it came from.

Why the last error line: a crashed run is reported with the line that says why (a traceback's final
line, ``CUDA out of memory``, an NCCL error, ``Killed``), from the log tail or the screen, and an
``end_class`` (``ok``, ``oom``, ``nccl``, ``killed``, ``interrupted``, ``error``): an OOM calls for a
smaller batch, not a relaunch.
"""

from __future__ import annotations

import time
from typing import Literal

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
from gpu_preflight.tools.dispatch.hbscan import (
    Scan,
    end_fields,
    fill_log,
    job_lines,
    last_error,
    read_log,
    scan,
    settle_dead_status,
)
from gpu_preflight.tools.dispatch.heartbeat_model import Heartbeat as Heartbeat
from gpu_preflight.tools.dispatch.heartbeat_model import HeartbeatReport as HeartbeatReport
from gpu_preflight.tools.dispatch.heartbeat_model import HeartbeatState as HeartbeatState
from gpu_preflight.tools.dispatch.heartbeat_model import HostSweep
from gpu_preflight.tools.dispatch.models import tail_lines
from gpu_preflight.tools.dispatch.pane_jobs import fill_last_job, latest_shell_jobs
from gpu_preflight.tools.dispatch.paneinfo import PaneInfo
from gpu_preflight.tools.dispatch.runs import RunRecord, get_run, list_runs
from gpu_preflight.tools.dispatch.shell_job import JobRecord, read_job
from gpu_preflight.tools.dispatch.target import make_tmux, resolve_pane_id, validate_any_target
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux

DEFAULT_HANG_AFTER_S = 300.0
"""The threshold when the run shows no step time (and the most a step-relative one starts from)."""
HANG_STEPS = 5.0
HANG_FLOOR_S = 60.0
DEFAULT_CPU_SAMPLE_S = 0.1


def _exit_fields(hb: Heartbeat, job: JobRecord | None, pane: PaneInfo | None) -> str:
    """Fill ``exit_code``, ``signal`` and ``exit_source`` of an ended run or dead pane; return the source in words."""
    if job is not None and job.exited:
        hb.exit_code, hb.signal, hb.exit_source = job.exit_code, job.signal, "exit_record"
        hb.job_ended_at_epoch_s = job.ended_at_epoch_s
        return "the job wrapper's exit record"
    if pane is not None and pane.job_done_exit_code is not None and pane.dead:
        code = pane.job_done_exit_code
        hb.exit_code, hb.signal, hb.exit_source = code, (code - 128 if 128 < code <= 192 else None), "pane_option"
        return "the wrapper's @pf_job pane option"
    if pane is not None and (pane.dead_status is not None or pane.dead_signal is not None):
        hb.exit_code, hb.signal, hb.exit_source = pane.dead_status, pane.dead_signal, "tmux_dead_status"
        return "tmux pane_dead_status/pane_dead_signal"
    return "no exit status recorded (tmux 3.3a can lose it)"


Pending = tuple[Heartbeat, int | None, AgentLook | None]
"""A heartbeat, the root pid to CPU-sample if it may be hung, and an agent screen to look at again."""


class Hang:
    """The hang threshold of one heartbeat, where it came from, and the silences it is compared with."""

    def __init__(self, after_s: float, why: str) -> None:
        self.after_s, self.why = after_s, why
        self.quiet_s: float | None = None
        self.log_s: float | None = None
        self.has_log = False

    def silences(self) -> str:
        """'no output for 12 s, log written 0.4 s ago' — both clocks, at every moment."""
        out = "output: no activity time" if self.quiet_s is None else (
            f"last output {self.quiet_s:.0f} s ago")
        if not self.has_log:
            log = "no log file to read"
        elif self.log_s is None:
            log = "the log file is missing or unreadable"
        else:
            log = f"log written {self.log_s:.3g} s ago"
        return f"{out}, {log}"

    def threshold(self) -> str:
        return f"hang threshold {self.after_s:g} s ({self.why})"


def hang_for(hang_after_s: float | None, text: str, fmt: str | None = None, regex: str | None = None) -> Hang:
    """The caller's threshold, else :data:`HANG_STEPS` median steps of ``text`` with the floor, else the default.

    ``fmt``/``regex``: the run's recorded log layout, for ``text`` read from its log.
    """
    if hang_after_s is not None:
        return Hang(hang_after_s, "set by the caller")
    try:
        from gpu_preflight.tools.telemetry.steptime import median_step_time_s
    except ModuleNotFoundError:  # the telemetry component is not installed
        return Hang(DEFAULT_HANG_AFTER_S, "the default: no step-time reader installed")
    found = median_step_time_s(text, fmt, regex)
    if found is None:
        return Hang(DEFAULT_HANG_AFTER_S, "the default: the run shows no step times")
    step, count = found
    after = max(HANG_FLOOR_S, HANG_STEPS * step)
    floor = f", floored at {HANG_FLOOR_S:g} s" if after == HANG_FLOOR_S else ""
    return Hang(round(after, 1), f"{HANG_STEPS:g} x the {step:.3g} s median step of the last {count} records{floor}")


def _classify(hb: Heartbeat, pane: PaneInfo, snap: Scan, run: RunRecord | None, job: JobRecord | None,
              hang_after_s: float | None, log_lines: list[str], log_text: str) -> tuple[Pending, Hang | None]:
    """Fill ``hb`` from the snapshot; says what still needs a second sample (and the hang threshold)."""
    now = snap.taken_epoch_s
    hb.seconds_since_output_s = (
        round(max(0.0, now - pane.window_activity_epoch_s), 1) if pane.window_activity_epoch_s else None
    )
    screen = snap.screens.get(pane.pane_id, [])
    last = tail_lines(screen, 1)
    hb.last_output_line = last[0] if last else None
    mine = job_lines(screen, hb.job_id)
    hb.evidence = tail_lines(mine, 4)
    ended_lines = log_lines + mine if log_lines else mine
    if (job is not None and job.exited) or pane.dead:
        source = _exit_fields(hb, job, pane)
        hb.state, hb.reason = "exited", f"exited ({source})"
        end_fields(hb, ended_lines)
        return (hb, None, None), None
    profile = None if pane.shell_in_foreground else agent_profile(pane, snap.stats)
    if profile is not None:
        return (hb, None, classify_agent(hb, pane, snap.ansi.get(pane.pane_id, []), profile)), None
    if pane.shell_in_foreground:
        hb.state = "idle_at_prompt"
        hb.exit_code = pane.job_done_exit_code
        hb.exit_source = "pane_option" if hb.exit_code is not None else None
        hb.reason = "the shell is at its prompt" + (
            "; the run's job never started" if run is not None and job is not None and not job.started else ""
        )
        if hb.exit_code is not None and (hb.job_id or run is not None):
            end_fields(hb, ended_lines)
        return (hb, None, None), None
    root = job.pid if job is not None and job.pid and procfs.alive(job.pid) else pane.pane_pid
    tree = procfs.descendants(root, snap.stats)
    hb.process_tree_cpu_s = round(sum(snap.stats[p].cpu_ticks for p in tree) / procfs.CLOCK_TICKS_PER_S, 2)
    group = [pid for pid, stat in snap.stats.items() if pane.foreground_pgid and stat.pgrp == pane.foreground_pgid]
    if any(procfs.blocked_reading_tty(pid, pane.tty) for pid in group):
        hb.state, hb.reason = "waiting_for_input", "the foreground process is blocked reading the terminal"
        return (hb, None, None), None
    layout = (run.log_format, run.log_regex) if run is not None and log_text else (None, None)
    hang = hang_for(hang_after_s, log_text or "\n".join(mine), *layout)
    hang.quiet_s, hang.log_s = hb.seconds_since_output_s, hb.seconds_since_log_write_s
    hang.has_log = run is not None and run.log_path is not None
    quiet = hb.seconds_since_output_s is not None and hb.seconds_since_output_s >= hang.after_s
    log_stale = hb.seconds_since_log_write_s is None or hb.seconds_since_log_write_s >= hang.after_s
    hb.state = "running"
    if quiet and log_stale:
        hb.reason = f"silent: {hang.silences()}; past the {hang.threshold()}; sampling CPU"
        return (hb, root, None), hang
    clocks = (("output", hb.seconds_since_output_s), ("the log", hb.seconds_since_log_write_s))
    moved = [what for what, seconds in clocks if seconds is not None and seconds < hang.after_s]
    hb.reason = (f"{' and '.join(moved)} moved within the {hang.threshold()}; {hang.silences()}" if moved else
                 f"{hang.silences()}: tmux gives no activity time, so a hang cannot be judged")
    return (hb, None, None), hang


Candidate = tuple[Heartbeat, int, Hang, list[str]]
"""A silent run to CPU-sample: its heartbeat, root pid, threshold, and lines to find an error line in."""


def _sample_cpu(candidates: list[Candidate], stats: dict[int, procfs.ProcStat], sample_s: float) -> None:
    """One short CPU sample for every hang candidate at once: busy trees are running, idle ones hung."""
    if not candidates:
        return
    before = {id(hb): procfs.tree_cpu_ticks(root, stats) for hb, root, _, _ in candidates}
    time.sleep(sample_s)
    after_stats = procfs.all_stats()
    for hb, root, hang, lines in candidates:
        sample_verdict(hb, hang, procfs.tree_cpu_ticks(root, after_stats) > before[id(hb)], sample_s, lines)


def sample_verdict(hb: Heartbeat, hang: Hang, busy: bool, sample_s: float, lines: list[str], where: str = "") -> None:
    """A run silent past its threshold: ``running`` if its tree used CPU in the sample, else ``hung`` (with the
    last error line of ``lines``); ``where``: where the sample was taken (a remote box, :mod:`.remote_beat`)."""
    hb.cpu_sample_busy = busy
    if busy:
        hb.reason = f"silent ({hang.silences()}; past the {hang.threshold()}), but the process tree is using CPU"
    else:
        hb.state = "hung"
        hb.reason = f"{hang.silences()}, no CPU in a {sample_s:g} s sample{where}: past the {hang.threshold()}"
        found = last_error(lines)
        hb.last_error_line = found[1] if found else None


Checked = tuple[Heartbeat, Candidate | None, AgentLook | None]
"""A heartbeat, the hang candidate to CPU-sample (if silent past its threshold), an agent screen to re-read."""


def _checked(pending: Pending, hang: Hang | None, lines: list[str]) -> Checked:
    hb, root, look = pending
    return hb, (hb, root, hang, lines) if root and hang is not None else None, look


def _log_lines(text: str) -> list[str]:
    return [piece for piece in text.replace("\r", "\n").split("\n") if piece.strip()]


def _run_heartbeat(run: RunRecord, snap: Scan, tmux: Tmux, hang_after_s: float | None) -> Checked:
    job = read_job(run.job_id) if run.job_id else None
    hb = Heartbeat(state="pane_gone", reason="", pane_id=run.pane_id, run_id=run.run_id,
                   job_id=run.job_id, target=run.target)
    if job is not None and job.started_at_epoch_s is not None:
        end = job.ended_at_epoch_s if job.exited and job.ended_at_epoch_s else time.time()
        hb.elapsed_s = round(end - job.started_at_epoch_s, 3)
    text = fill_log(hb, run, read_log(run.log_path, snap.taken_epoch_s) if run.log_path else None)
    lines = _log_lines(text)
    pane = snap.panes.get(run.pane_id or "")
    if pane is None:
        if job is not None and job.exited:
            source = _exit_fields(hb, job, None)
            hb.state, hb.reason = "exited", f"exited ({source}); the pane is gone"
            end_fields(hb, lines)
        else:
            hb.reason = "the run's pane no longer exists"
        return hb, None, None
    hb.current_command, hb.target = pane.current_command, pane.target_name
    pending, hang = _classify(hb, settle_dead_status(tmux, pane), snap, run, job, hang_after_s, lines, text)
    return _checked(pending, hang, lines + job_lines(snap.screens.get(pane.pane_id, []), hb.job_id))


def _pane_heartbeat(pane: PaneInfo, snap: Scan, tmux: Tmux, hang_after_s: float | None,
                    audit_jobs: dict[str, str]) -> Checked:
    hb = Heartbeat(state="running", reason="", pane_id=pane.pane_id, target=pane.target_name,
                   current_command=pane.current_command)
    job_id = pane.job_record.split(":")[0] if pane.job_record else None
    hb.job_id = job_id
    # A live pane's exit code is "the last job's", reported with idle_at_prompt; only a dead pane "exited".
    job = read_job(job_id) if job_id and pane.dead else None
    pending, hang = _classify(hb, settle_dead_status(tmux, pane), snap, None, job, hang_after_s, [], "")
    hb = pending[0]
    if hb.state == "idle_at_prompt" and job_id is None:
        prompt = last_agent_prompt(tmux.key, pane.pane_id)
        if prompt is not None:
            hb.state = "exited"
            hb.reason = (f"the agent TUI that took our last prompt here (audit #{prompt[0]}, {prompt[1]}) has exited: "
                         "the shell is back at its prompt")
    screen = snap.screens.get(pane.pane_id, [])
    if hb.state == "idle_at_prompt":
        fill_last_job(hb, pane, screen, audit_jobs.get(pane.pane_id))
    return _checked(pending, hang, job_lines(screen, hb.job_id))


def _check_times(hang_after_s: float | None, cpu_sample_s: float) -> None:
    if (hang_after_s is not None and not hang_after_s > 0) or not cpu_sample_s >= 0:
        raise PreflightError("hang_after_s", hang_after_s, "hang_after_s > 0 (or None: from the run's step time) "
                             "and cpu_sample_s >= 0")


def heartbeat(run_id: str | None = None, target: str | None = None, *, socket_name: str | None = None,
              socket_path: str | None = None, hang_after_s: float | None = None,
              cpu_sample_s: float = DEFAULT_CPU_SAMPLE_S, agent_sample_s: float = AGENT_SAMPLE_S,
              host: str | None = None) -> Heartbeat:
    """The state of one run (by ``run_id``) or one pane (by ``target``), with evidence.

    A shell pane at its prompt carries the exit of the last job we dispatched there, with ``job_id``,
    ``job_ended_at_epoch_s`` and ``exit_source``: ``exit_record`` when nothing ran at the prompt since,
    ``exit_record_unverified`` when that cannot be told (the caller judges by the end time), no code once
    a later command ran (:mod:`.pane_jobs`).

    ``hang_after_s`` None: :data:`HANG_STEPS` median steps of the run's own output, at least
    :data:`HANG_FLOOR_S`, :data:`DEFAULT_HANG_AFTER_S` when it shows no step time.

    ``host``: the pane is on that registered box (:mod:`.remote_beat`; ``host_unreachable`` when it cannot
    be reached).
    """
    if (run_id is None) == (target is None):
        raise PreflightError("run_id/target", (run_id, target), "exactly one of run_id or target")
    _check_times(hang_after_s, cpu_sample_s)
    if host is not None:
        if target is None:
            raise PreflightError("host", host, "a pane target with host (a run keeps its host: pass run_id alone)")
        from gpu_preflight.tools.dispatch.remote_beat import remote_pane_heartbeat

        return remote_pane_heartbeat(make_tmux(socket_name, socket_path, host=host), validate_any_target(target),
                                     hang_after_s=hang_after_s, cpu_sample_s=cpu_sample_s)
    if run_id is not None:
        run = get_run(run_id)
        if run.host is not None:  # the run keeps its host: nothing more to name
            from gpu_preflight.tools.dispatch.remote_beat import remote_run_heartbeat

            return remote_run_heartbeat(run, hang_after_s=hang_after_s, cpu_sample_s=cpu_sample_s)
        tmux = make_tmux(run.socket_name, run.socket_path)
        snap = scan(tmux, only={run.pane_id} if run.pane_id else set())
        hb, candidate, look = _run_heartbeat(run, snap, tmux, hang_after_s)
    else:
        assert target is not None
        tmux = make_tmux(socket_name, socket_path)
        pane_id = resolve_pane_id(tmux, target)
        snap = scan(tmux, only={pane_id} if pane_id else set())
        pane = snap.panes.get(pane_id or "")
        if pane is None:
            return Heartbeat(state="pane_gone", reason="no such pane on this tmux server", target=target)
        hb, candidate, look = _pane_heartbeat(pane, snap, tmux, hang_after_s,
                                              latest_shell_jobs(tmux.key, pane.pane_id))
    _sample_cpu([candidate] if candidate else [], snap.stats, cpu_sample_s)
    sample_agents(tmux, [look] if look else [], agent_sample_s)
    return hb


def heartbeat_all(*, socket_name: str | None = None, socket_path: str | None = None,
                  scope: Literal["panes", "runs"] = "panes", hang_after_s: float | None = None,
                  cpu_sample_s: float = DEFAULT_CPU_SAMPLE_S, run_limit: int = 100,
                  agent_sample_s: float = AGENT_SAMPLE_S, hosts: list[str] | Literal["all"] | None = None,
                  timeout_s: float | None = None) -> HeartbeatReport:
    """Every pane of one server (``scope="panes"``) or every recorded run (``"runs"``), in one sweep.

    ``hosts``: every pane of that server on each named registered host (``"all"``: every one), swept in
    parallel within ``timeout_s`` (default: the ssh runner's 10 s), with ``hosts`` saying which answered
    (:mod:`.remote_fleet`). Runs recorded on hosts are looked at on their boxes, hosts in parallel under
    the same deadline (:mod:`.remote_runs`); with ``hosts``, only the runs on those hosts."""
    from gpu_preflight.tools.hosts.ssh import DEFAULT_TIMEOUT_S

    if scope not in ("panes", "runs"):
        raise PreflightError("scope", scope, "panes or runs")
    deadline_s = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
    _check_times(hang_after_s, cpu_sample_s)
    if hosts is not None and scope == "panes":
        from gpu_preflight.tools.dispatch.remote_fleet import fleet_heartbeats

        return fleet_heartbeats(hosts, socket_name=socket_name, socket_path=socket_path, timeout_s=deadline_s,
                                hang_after_s=hang_after_s, cpu_sample_s=cpu_sample_s)
    started = time.monotonic()
    results: list[Checked] = []
    looks: dict[tuple[str | None, str | None], tuple[Tmux, list[AgentLook]]] = {}
    stats: dict[int, procfs.ProcStat] = {}
    pane_count = 0
    remote: list[Heartbeat] = []  # runs on registered hosts (scope runs)
    sweeps: list[HostSweep] | None = None
    if scope == "panes":
        tmux = make_tmux(socket_name, socket_path)
        snap = scan(tmux)
        stats, pane_count = snap.stats, len(snap.panes)
        jobs = latest_shell_jobs(tmux.key)
        results = [_pane_heartbeat(pane, snap, tmux, hang_after_s, jobs) for pane in snap.panes.values()]
        looks[(socket_name, socket_path)] = (tmux, [look for _, _, look in results if look])
    else:
        from gpu_preflight.tools.dispatch.remote_runs import remote_run_heartbeats

        by_server: dict[tuple[str | None, str | None], list[RunRecord]] = {}
        wanted = _host_names(hosts)
        on_hosts: list[RunRecord] = []
        for run in list_runs(run_limit):
            if run.host is not None:  # on its box, never judged against this machine's panes
                if wanted is None or run.host in wanted:
                    on_hosts.append(run)
            elif hosts is None:
                by_server.setdefault((run.socket_name, run.socket_path), []).append(run)
        if not deadline_s > 0:
            raise PreflightError("timeout_s", timeout_s, "a number of seconds > 0")
        remote, found = remote_run_heartbeats(on_hosts, deadline_s)
        sweeps = found if found or hosts is not None else None
        for (name, path), runs in by_server.items():
            tmux = make_tmux(name, path)
            snap = scan(tmux)
            stats.update(snap.stats)
            pane_count += len(snap.panes)
            server = [_run_heartbeat(run, snap, tmux, hang_after_s) for run in runs]
            looks[(name, path)] = (tmux, [look for _, _, look in server if look])
            results += server
    _sample_cpu([candidate for _, candidate, _ in results if candidate], stats, cpu_sample_s)
    for tmux, pending in looks.values():  # one sleep for all; see agentbeat.sample_agents
        sample_agents(tmux, pending, agent_sample_s if pending else 0.0)
    return HeartbeatReport(heartbeats=[hb for hb, _, _ in results] + remote, hosts=sweeps,
                           pane_count=pane_count,
                           scan_ms=round((time.monotonic() - started) * 1000.0, 2))


def _host_names(hosts: list[str] | Literal["all"] | None) -> set[str] | None:
    """The registered host names a runs sweep keeps (None: every host); an unknown name is refused."""
    if hosts is None or hosts == "all":
        return None
    from gpu_preflight.tools.hosts.registry import get_host

    return {get_host(name, field="hosts").name for name in hosts}
