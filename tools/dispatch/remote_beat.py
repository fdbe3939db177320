"""A pane heartbeat on a remote box: one look (:func:`.remote.look`), judged as a local pane heartbeat is.

Why ``host_unreachable`` is a state of its own: a box we cannot reach says nothing about its panes; calling
that ``pane_gone`` or ``exited`` would have an agent relaunch a run that is still training (and paying).

What carries over from the local heartbeat: ``exited`` with the exit code from the box's exit record, the
``@pf_job`` option or tmux's dead status (:func:`.heartbeat._exit_fields`); ``idle_at_prompt`` with our
last job's exit code and whether a later command superseded it (:func:`.pane_jobs.fill_last_job`, reading
the box's records that the look brought back); ``seconds_since_output_s`` on the box's own clock.
An agent TUI's pane is read from its screen (:mod:`.agent_remote`).

``hung`` vs ``running``, as locally (:mod:`.heartbeat`): a program in the foreground, silent past the hang
threshold, whose process tree used no CPU in a short sample. The sample is taken ON the box within the same
round trip as the look (:func:`.remote.look` reads the tree's ``/proc/<pid>/stat`` twice, ``cpu_sample_s``
apart, unless the shell sits at its prompt), so a remote heartbeat costs one round trip plus the sample
(0.1 s by default), never a second round trip; the ticks are judged by :func:`.procfs.tree_cpu_ticks` as
locally. A run's log, read on the box after the look, keeps a run ``running`` when it moved within the
threshold (the threshold itself comes from the screen's step times there). A fleet sweep takes the same
sample, one sleep for every pane of a box (:mod:`.remote_fleet`).

``waiting_for_input``, as locally: a process of the terminal's foreground group sleeps in ``read()`` on the
pane's tty. The same look reads, on the box, each tree process's ``/proc/<pid>/syscall`` (our own user's
processes: readable without ptrace rights beyond that; Yama's ``ptrace_scope`` >= 1 can hide it, and then
the pane reads ``running``/``hung`` as before), whether that call's fd is the pane's terminal, and ``uname -m``
(the syscall number of ``read`` is per architecture). A shell's builtin ``read`` is not told apart from the
shell waiting at its prompt (both are the shell in ``read()``), here as locally: ``idle_at_prompt``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpu_preflight.tools.dispatch import procfs
from gpu_preflight.tools.dispatch.hbscan import end_fields, job_lines
from gpu_preflight.tools.dispatch.heartbeat_model import Heartbeat
from gpu_preflight.tools.dispatch.models import tail_lines
from gpu_preflight.tools.dispatch.pane_jobs import RecordReader, fill_last_job, latest_shell_jobs, record_fields
from gpu_preflight.tools.dispatch.remote import RemoteLook, look, parse_record
from gpu_preflight.tools.dispatch.runs import RunRecord
from gpu_preflight.tools.dispatch.shell_job import JobRecord
from gpu_preflight.tools.dispatch.target import PANE_ID_RE, make_tmux, resolve_pane_id
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable, Tmux

if TYPE_CHECKING:
    from gpu_preflight.tools.dispatch.heartbeat import Hang

DEFAULT_CPU_SAMPLE_S = 0.1
"""As the local heartbeat's (:data:`.heartbeat.DEFAULT_CPU_SAMPLE_S`)."""


def _reader(seen: RemoteLook) -> RecordReader:
    def read(job_id: str, suffix: str) -> list[str] | None:
        text = seen.records.get(f"{suffix} {job_id}")
        return record_fields(text) if text is not None else None

    return read


def remote_pane_heartbeat(tmux: Tmux, target: str, *, hang_after_s: float | None = None,
                          cpu_sample_s: float = DEFAULT_CPU_SAMPLE_S) -> Heartbeat:
    """The state of the pane ``target`` on ``tmux.host`` (see the module docstring)."""
    assert tmux.host is not None
    try:
        pane_id = target if PANE_ID_RE.match(target) else resolve_pane_id(tmux, target)
        audit_job = latest_shell_jobs(tmux.key, pane_id).get(pane_id, "") if pane_id else ""
        seen = look(tmux, pane_id, also_job=audit_job, cpu_sample_s=cpu_sample_s) if pane_id else RemoteLook(pane=None)
    except HostUnreachable as exc:
        return Heartbeat(state="host_unreachable", target=target, host=tmux.host.name,
                         reason=f"{exc.status}: {exc.reason} (the pane's state is unknown, not gone)")
    hb = judge(seen, target, tmux.host.name, audit_job or None, hang_after_s, cpu_sample_s)
    if seen.pane is None or seen.pane.dead:
        return hb
    from gpu_preflight.tools.dispatch.agent_remote import agent_heartbeat  # an agent TUI: read from its screen

    return agent_heartbeat(tmux, seen.pane, hb)


def judge(seen: RemoteLook, target: str, host_name: str, audit_job: str | None,
          hang_after_s: float | None = None, cpu_sample_s: float = 0.0) -> Heartbeat:
    """The heartbeat of one looked-at pane (one :func:`.remote.look`, or one pane of a fleet sweep)."""
    return _judge(seen, target, host_name, audit_job, hang_after_s, cpu_sample_s)[0]


def _judge(seen: RemoteLook, target: str, host_name: str, audit_job: str | None, hang_after_s: float | None,
           cpu_sample_s: float) -> tuple[Heartbeat, Hang | None]:
    """:func:`judge`, and the hang threshold it compared with (None: nothing runs in the foreground)."""
    from gpu_preflight.tools.dispatch.heartbeat import _exit_fields

    pane = seen.pane
    if pane is None:
        return Heartbeat(state="pane_gone", reason=f"no such pane on this tmux server on {host_name}",
                         target=target, host=host_name), None
    hb = Heartbeat(state="running", reason="", pane_id=pane.pane_id, target=pane.target_name,
                   current_command=pane.current_command, host=host_name,
                   job_id=pane.job_record.split(":")[0] if pane.job_record else None)
    if seen.now_epoch_s and pane.window_activity_epoch_s:
        hb.seconds_since_output_s = round(max(0.0, seen.now_epoch_s - pane.window_activity_epoch_s), 1)
    last = tail_lines(seen.lines, 1)
    hb.last_output_line = last[0] if last else None
    mine = job_lines(seen.lines, hb.job_id)
    hb.evidence = tail_lines(mine, 4)
    if pane.dead:
        source = _exit_fields(hb, seen.job, pane)
        hb.state, hb.reason = "exited", f"exited ({source})"
        end_fields(hb, mine)
        return hb, None
    if pane.shell_in_foreground:
        hb.state, hb.reason = "idle_at_prompt", "the shell is at its prompt"
        hb.exit_code = pane.job_done_exit_code
        hb.exit_source = "pane_option" if hb.exit_code is not None else None
        fill_last_job(hb, pane, seen.lines, audit_job, _reader(seen))
        return hb, None
    if seen.reading_terminal():
        hb.state, hb.reason = "waiting_for_input", "the foreground process is blocked reading the terminal (on the box)"
        return hb, None
    return hb, _hung_or_running(hb, seen, mine, hang_after_s, cpu_sample_s)


def _hung_or_running(hb: Heartbeat, seen: RemoteLook, mine: list[str], hang_after_s: float | None,
                     cpu_sample_s: float) -> Hang:
    """A program in the foreground: ``hung`` when silent past the threshold and idle in the box's CPU sample."""
    from gpu_preflight.tools.dispatch.heartbeat import hang_for, sample_verdict

    assert seen.pane is not None
    pane = seen.pane
    hang = hang_for(hang_after_s, "\n".join(mine))
    hang.quiet_s = hb.seconds_since_output_s
    where = f"{pane.current_command or 'a program'} runs in the foreground (pgid {pane.foreground_pgid})"
    if not seen.cpu_after:
        hb.reason = f"{where}; no CPU sample was taken, so a hang is not told apart"
        return hang
    job_pid = seen.job.pid if seen.job is not None and seen.job.pid else 0
    root = job_pid if job_pid in seen.cpu_after else pane.pane_pid
    before, after = procfs.tree_cpu_ticks(root, seen.cpu_before), procfs.tree_cpu_ticks(root, seen.cpu_after)
    hb.process_tree_cpu_s = round(after / procfs.CLOCK_TICKS_PER_S, 2)  # USER_HZ: 100 on every Linux box
    hb.cpu_sample_busy = after > before
    if hang.quiet_s is None:
        hb.reason = f"{where}; tmux gives no activity time, so a hang cannot be judged"
    elif hang.quiet_s < hang.after_s:
        hb.reason = f"{where}; output moved within the {hang.threshold()}; {hang.silences()}"
    else:
        sample_verdict(hb, hang, after > before, cpu_sample_s, mine, " on the box")
    return hang


def remote_run_heartbeat(run: RunRecord, *, hang_after_s: float | None = None,
                         cpu_sample_s: float = DEFAULT_CPU_SAMPLE_S) -> Heartbeat:
    """A run launched on a host (``run.host``): its pane looked at on that box, its job's records read there.

    The run's own job decides ``exited`` (its exit record on the box), whatever ran in the pane since;
    ``elapsed_s`` is from its start record on the box's clock. The run's log is read on the box (its size,
    age on the box's clock, last line, and a probe's step cap from its tail), as a local run's is; a log
    written within the hang threshold keeps a silent, idle-looking run ``running``, as locally.
    """
    assert run.host is not None
    tmux = make_tmux(run.socket_name, run.socket_path, host=run.host)
    target = run.pane_id or run.target
    try:
        seen = look(tmux, target, also_job=run.job_id or "", cpu_sample_s=cpu_sample_s)
    except HostUnreachable as exc:
        return Heartbeat(state="host_unreachable", target=run.target, host=run.host, run_id=run.run_id,
                         job_id=run.job_id, pane_id=run.pane_id,
                         reason=f"{exc.status}: {exc.reason} (the run's state is unknown, not gone)")
    hb, hang = _judge(seen, run.target, run.host, run.job_id, hang_after_s, cpu_sample_s)
    hb.run_id, hb.job_id = run.run_id, run.job_id
    job = JobRecord(job_id="")
    if run.job_id:
        start, end = seen.records.get(f"start {run.job_id}"), seen.records.get(f"exit {run.job_id}")
        job = parse_record(run.job_id, start.split("\n") if start is not None else None,
                           end.split("\n") if end is not None else None)
    if job.started_at_epoch_s is not None:
        until = job.ended_at_epoch_s if job.exited else seen.now_epoch_s
        hb.elapsed_s = round(until - job.started_at_epoch_s, 3) if until else None
    if job.exited:
        hb.state, hb.exit_code, hb.signal, hb.exit_source = "exited", job.exit_code, job.signal, "exit_record"
        hb.reason = f"the run's job exited with code {job.exit_code} (its exit record on {run.host})"
    if run.log_path:  # one more ssh call: the log's size, write time and tail on the box (hbscan.read_remote_log)
        from gpu_preflight.tools.dispatch.hbscan import fill_log, read_remote_log
        from gpu_preflight.tools.hosts.remotefile import RemoteFileUnreachable

        try:
            fill_log(hb, run, read_remote_log(run.host, run.log_path, seen.now_epoch_s))
        except RemoteFileUnreachable as exc:
            hb.reason += f"; its log was not read ({exc.status}: {exc.reason})"
    log_s = hb.seconds_since_log_write_s
    if hang is not None and hb.state == "hung" and log_s is not None and log_s < hang.after_s:
        hang.has_log, hang.log_s = True, log_s
        hb.state, hb.last_error_line = "running", None
        hb.reason = f"the log moved within the {hang.threshold()}; {hang.silences()}"
    return hb
