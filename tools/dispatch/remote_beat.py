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
from gpu_preflight.tools.dispatch.remote import RemoteLook, look
from gpu_preflight.tools.dispatch.target import PANE_ID_RE, resolve_pane_id
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable, Tmux


def _reader(seen: RemoteLook) -> RecordReader:
    def read(job_id: str, suffix: str) -> list[str] | None:
        text = seen.records.get(f"{suffix} {job_id}")
        return record_fields(text) if text is not None else None

    return read


def remote_pane_heartbeat(tmux: Tmux, target: str) -> Heartbeat:
    """The state of the pane ``target`` on ``tmux.host`` (see the module docstring)."""
    from gpu_preflight.tools.dispatch.heartbeat import _exit_fields

    assert tmux.host is not None
    try:
        pane_id = target if PANE_ID_RE.match(target) else resolve_pane_id(tmux, target)
        audit_job = latest_shell_jobs(tmux.key, pane_id).get(pane_id, "") if pane_id else ""
        seen = look(tmux, pane_id, also_job=audit_job) if pane_id else RemoteLook(pane=None)
    except HostUnreachable as exc:
        return Heartbeat(state="host_unreachable", target=target,
                         reason=f"{exc.status}: {exc.reason} (the pane's state is unknown, not gone)")
    pane = seen.pane
    if pane is None:
        return Heartbeat(state="pane_gone", reason=f"no such pane on this tmux server on {tmux.host.name}",
                         target=target)
    hb = Heartbeat(state="running", reason="", pane_id=pane.pane_id, target=pane.target_name,
                   current_command=pane.current_command,
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
        fill_last_job(hb, pane, seen.lines, audit_job or None, _reader(seen))
        return hb
    hb.reason = (f"{pane.current_command or 'a program'} runs in the foreground (pgid {pane.foreground_pgid}); "
                 "over ssh no CPU sample is taken yet, so a hang is not told apart")
    return hb
