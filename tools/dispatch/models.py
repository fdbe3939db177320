"""The answers the dispatcher gives: what happened, and the evidence that proves it.

Why statuses and not a bool: "sent" is not "submitted". ``submitted`` means we saw proof (a shell
job's start record, or our prompt leaving the agent's input line); ``queued`` means the agent took
it while busy; ``unconfirmed`` means keys went out but no proof came; ``refused`` means nothing was
typed, on purpose; ``lost`` means what we typed never showed up.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

DispatchStatus = Literal["submitted", "queued", "unconfirmed", "refused", "lost"]
DispatchMode = Literal["shell", "tui"]
DISPATCH_MODES: tuple[DispatchMode, ...] = ("shell", "tui")


class DispatchResult(BaseModel):
    """One dispatch, as the caller (and the audit table) sees it."""

    status: DispatchStatus
    reason: str = Field(description="why this status, in one sentence")
    target: str
    pane_id: str | None = None
    mode: DispatchMode
    enter_count: int = Field(default=0, description="Enter key presses sent (first press plus retries)")
    latency_ms: float = Field(default=0.0, description="from the call to the answer")
    confirm_latency_ms: float | None = Field(default=None, description="from the first Enter to the proof")
    evidence: list[str] = Field(default_factory=list, description="pane lines (and records) behind the status")
    current_command: str | None = Field(default=None, description="what ran in the pane at preflight")
    profile: str | None = Field(default=None, description="tui mode: the app profile used (auto-detected or named)")
    job_id: str | None = Field(default=None, description="shell mode: the job file's id")
    pid: int | None = Field(default=None, description="shell mode: the wrapper's pid from its start record")
    started_at_epoch_s: float | None = Field(default=None, description="shell mode: start record time")
    text_sha256: str = ""
    audit_id: int | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict, description="phase name -> milliseconds")

    @property
    def ok(self) -> bool:
        return self.status == "submitted"


def tail_lines(lines: list[str], count: int = 6) -> list[str]:
    """The last ``count`` non-empty screen lines: short evidence that still shows the input line."""
    kept = [line for line in lines if line.strip()]
    return kept[-count:]
