"""The heartbeat's answer: :class:`Heartbeat` for one pane or run, :class:`HeartbeatReport` for a sweep.

Kept apart from :mod:`.heartbeat` (which fills them) so the helpers that fill parts of one
(:mod:`.hbscan`, :mod:`.pane_jobs`) can use the model without importing the whole classifier.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gpu_preflight.tools.telemetry.probecap import ProbeCap

HeartbeatState = Literal["running", "idle_at_prompt", "exited", "hung", "waiting_for_input", "pane_gone", "idle",
                         "working", "host_unreachable"]
ExitSource = Literal["exit_record", "exit_record_unverified", "pane_option", "tmux_dead_status"]


class Heartbeat(BaseModel):
    """The state of one pane or run, with the evidence behind it."""

    state: HeartbeatState
    reason: str
    pane_id: str | None = None
    target: str | None = Field(default=None, description="session:window.pane when last seen")
    host: str | None = Field(default=None, description="the registered host the pane is on (None: this machine)")
    run_id: str | None = None
    job_id: str | None = None
    current_command: str | None = None
    agent: str | None = Field(default=None, description="agent TUI profile read from the screen (claude, codex, ...)")
    dialog: str | None = Field(default=None, description="waiting_for_input on an agent: the dialog's title")
    exit_code: int | None = None
    signal: int | None = Field(default=None, description="signal number when the process was killed by one")
    exit_source: ExitSource | None = Field(default=None, description="where exit_code comes from; "
                                           "exit_record_unverified: a later command at the prompt not ruled out")
    job_ended_at_epoch_s: float | None = Field(default=None, description="job_id's exit record time")
    seconds_since_output_s: float | None = Field(default=None, description="window activity, 1 s resolution")
    last_output_line: str | None = None
    last_log_line: str | None = None
    log_size_bytes: int | None = None
    log_growth_bytes: int | None = Field(default=None, description="since this process's previous heartbeat")
    seconds_since_log_write_s: float | None = None
    process_tree_cpu_s: float | None = Field(default=None, description="total CPU of the process tree")
    cpu_sample_busy: bool | None = Field(default=None, description="the tree used CPU during the short sample")
    elapsed_s: float | None = Field(default=None, description="run: since its start record (to its exit)")
    last_error_line: str | None = Field(default=None, description="ended or hung: the latest error line seen")
    end_class: str | None = Field(default=None, description="ok, oom, nccl, killed, interrupted or error")
    probe_cap: ProbeCap | None = Field(default=None, description="a probe run: its cap, and whether it is reached")
    evidence: list[str] = Field(default_factory=list)


class HostSweep(BaseModel):
    """One host of a fleet sweep: whether it answered, and how many panes it has."""

    name: str
    reachable: bool
    status: str = Field(description="ok, or the fault (host_unreachable, auth_refused, tmux_missing, ...)")
    reason: str
    panes: int = 0


class HeartbeatReport(BaseModel):
    """``heartbeat_all``: one entry per pane or run, and what the sweep cost."""

    heartbeats: list[Heartbeat]
    scan_ms: float
    pane_count: int
    hosts: list[HostSweep] | None = Field(default=None, description="a sweep over hosts: one entry per host")
