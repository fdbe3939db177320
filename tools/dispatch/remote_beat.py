"""A pane heartbeat on a remote box: one look (:func:`.remote.look`), judged as a local pane heartbeat is.

Why ``host_unreachable`` is a state of its own: a box we cannot reach says nothing about its panes; calling
that ``pane_gone`` or ``exited`` would have an agent relaunch a run that is still training (and paying).

What carries over from the local heartbeat: ``exited`` with the exit code from the box's exit record, the
``@pf_job`` option or tmux's dead status (:func:`.heartbeat._exit_fields`); ``idle_at_prompt`` with our
last job's exit code and whether a later command superseded it (:func:`.pane_jobs.fill_last_job`, reading
the box's records that the look brought back); ``seconds_since_output_s`` on the box's own clock.
Not yet over ssh (issue 17, part 3): the CPU sample that tells ``hung`` from ``running``, ``waiting_for_input``,
agent TUI screens, a run's log; a pane where something runs in the foreground is ``running``, and says so.
"""

from __future__ import annotations

from gpu_preflight.tools.dispatch.hbscan import end_fields, job_lines
from gpu_preflight.tools.dispatch.heartbeat_model import Heartbeat
from gpu_preflight.tools.dispatch.models import tail_lines
from gpu_preflight.tools.dispatch.pane_jobs import RecordReader, fill_last_job, latest_shell_jobs, record_fields
from gpu_preflight.tools.dispatch.remote import RemoteLook, look, parse_record
from gpu_preflight.tools.dispatch.runs import RunRecord
from gpu_preflight.tools.dispatch.shell_job import JobRecord
from gpu_preflight.tools.dispatch.target import PANE_ID_RE, make_tmux, resolve_pane_id
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable, Tmux


def _reader(seen: RemoteLook) -> RecordReader:
    def read(job_id: str, suffix: str) -> list[str] | None:
        text = seen.records.get(f"{suffix} {job_id}")
        return record_fields(text) if text is not None else None

    return read


def remote_pane_heartbeat(tmux: Tmux, target: str) -> Heartbeat:
    """The state of the pane ``target`` on ``tmux.host`` (see the module docstring)."""
    assert tmux.host is not None
    try:
        pane_id = target if PANE_ID_RE.match(target) else resolve_pane_id(tmux, target)
        audit_job = latest_shell_jobs(tmux.key, pane_id).get(pane_id, "") if pane_id else ""
        seen = look(tmux, pane_id, also_job=audit_job) if pane_id else RemoteLook(pane=None)
    except HostUnreachable as exc:
        return Heartbeat(state="host_unreachable", target=target, host=tmux.host.name,
                         reason=f"{exc.status}: {exc.reason} (the pane's state is unknown, not gone)")
    return judge(seen, target, tmux.host.name, audit_job or None)


def judge(seen: RemoteLook, target: str, host_name: str, audit_job: str | None) -> Heartbeat:
    """The heartbeat of one looked-at pane (one :func:`.remote.look`, or one pane of a fleet sweep)."""
    from gpu_preflight.tools.dispatch.heartbeat import _exit_fields

    pane = seen.pane
    if pane is None:
        return Heartbeat(state="pane_gone", reason=f"no such pane on this tmux server on {host_name}",
                         target=target, host=host_name)
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
        return hb
    if pane.shell_in_foreground:
        hb.state, hb.reason = "idle_at_prompt", "the shell is at its prompt"
        hb.exit_code = pane.job_done_exit_code
        hb.exit_source = "pane_option" if hb.exit_code is not None else None
        fill_last_job(hb, pane, seen.lines, audit_job, _reader(seen))
        return hb
    hb.reason = (f"{pane.current_command or 'a program'} runs in the foreground (pgid {pane.foreground_pgid}); "
                 "over ssh no CPU sample is taken yet, so a hang is not told apart")
    return hb


def remote_run_heartbeat(run: RunRecord) -> Heartbeat:
    """A run launched on a host (``run.host``): its pane looked at on that box, its job's records read there.

    The run's own job decides ``exited`` (its exit record on the box), whatever ran in the pane since;
    ``elapsed_s`` is from its start record on the box's clock. The run's log is a path on the box and is
    not read over ssh yet: the reason says so, and no log field is filled.
    """
    assert run.host is not None
    tmux = make_tmux(run.socket_name, run.socket_path, host=run.host)
    target = run.pane_id or run.target
    try:
        seen = look(tmux, target, also_job=run.job_id or "")
    except HostUnreachable as exc:
        return Heartbeat(state="host_unreachable", target=run.target, host=run.host, run_id=run.run_id,
                         job_id=run.job_id, pane_id=run.pane_id,
                         reason=f"{exc.status}: {exc.reason} (the run's state is unknown, not gone)")
    hb = judge(seen, run.target, run.host, run.job_id)
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
    if run.log_path:
        hb.reason += f"; its log ({run.log_path}) is on {run.host} and is not read over ssh yet"
    return hb
