"""Confirmed tmux dispatch, gated-launch plumbing and heartbeats: the launch side of the gate (run-calibrated
Stage B, the probe run) and the "is it still working?" half of the validation loop (pre-estimation §5).

Public API (plain functions and pydantic models; the CLI and MCP layers wrap these):

* :func:`dispatch` -> :class:`DispatchResult`
* :func:`heartbeat`, :func:`heartbeat_all` -> :class:`Heartbeat`, :class:`HeartbeatReport`
* :func:`record_run`, :func:`get_run`, :func:`list_runs`, :func:`launch_command` -> :class:`RunRecord`,
  :class:`LaunchResult`
* :func:`list_audit` -> :class:`AuditEntry`; :func:`list_pane_infos` -> :class:`PaneInfo`
* :func:`interrupt_run` -> :class:`InterruptResult` (Ctrl-C, proven by the job's exit record)
* :func:`wait_idle` -> :class:`WaitIdleResult` (an agent finished its turn; the end of its answer)

tmux is reached two ways, on purpose. Every call the dispatcher and the heartbeat make goes through
:mod:`.tmuxcmd` (subprocess with a deadline: libtmux's calls have no timeout, and a wedged server must
not hang the MCP server). libtmux, the object model, is what callers and the tests use to build and
inspect sessions, windows and panes (:meth:`Tmux.libtmux_server`; the test suite's throwaway servers).
"""

from __future__ import annotations

from gpu_preflight.tools.dispatch.audit import AuditEntry, list_audit
from gpu_preflight.tools.dispatch.dispatcher import dispatch
from gpu_preflight.tools.dispatch.heartbeat import Heartbeat, HeartbeatReport, heartbeat, heartbeat_all
from gpu_preflight.tools.dispatch.models import DispatchMode, DispatchResult, DispatchStatus
from gpu_preflight.tools.dispatch.paneinfo import PaneInfo, list_panes
from gpu_preflight.tools.dispatch.profiles import PROFILES
from gpu_preflight.tools.dispatch.runs import LaunchResult, RunRecord, get_run, launch_command, list_runs, record_run
from gpu_preflight.tools.dispatch.sanitize import sanitize_text
from gpu_preflight.tools.dispatch.screen import TuiProfile
from gpu_preflight.tools.dispatch.shell_job import JobRecord, read_job, wait_for_exit
from gpu_preflight.tools.dispatch.stop import InterruptResult, interrupt_run
from gpu_preflight.tools.dispatch.target import make_tmux
from gpu_preflight.tools.dispatch.tui import TuiTiming
from gpu_preflight.tools.dispatch.waitidle import WaitIdleResult, wait_idle


def list_pane_infos(socket_name: str | None = None, socket_path: str | None = None,
                    host: str | None = None) -> list[PaneInfo]:
    """Every pane of one tmux server (one ``list-panes -a`` call; on ``host``, one ssh round trip), for a
    ``list_panes`` tool. A box that cannot be reached is refused naming ``host``, with ssh's reason."""
    from gpu_preflight.tools.common.errors import PreflightError
    from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable

    try:
        return list_panes(make_tmux(socket_name, socket_path, host=host))
    except HostUnreachable as exc:
        raise PreflightError("host", host, "a reachable host", f"{exc.status}: {exc.reason}") from exc


__all__ = [
    "PROFILES",
    "AuditEntry",
    "DispatchMode",
    "DispatchResult",
    "DispatchStatus",
    "Heartbeat",
    "HeartbeatReport",
    "InterruptResult",
    "JobRecord",
    "LaunchResult",
    "PaneInfo",
    "RunRecord",
    "TuiProfile",
    "TuiTiming",
    "WaitIdleResult",
    "dispatch",
    "get_run",
    "heartbeat",
    "heartbeat_all",
    "interrupt_run",
    "launch_command",
    "list_audit",
    "list_pane_infos",
    "list_runs",
    "read_job",
    "record_run",
    "sanitize_text",
    "wait_for_exit",
    "wait_idle",
]
