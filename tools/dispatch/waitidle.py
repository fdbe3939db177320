"""``wait_idle``: block until an agent finished its turn, then hand back the end of its answer.

Why a settle time: between a confirmed submit and the app's first busy marker there is a short gap
in which the screen still looks idle; one idle reading could end the wait before the turn began.
Idle must hold for ``settle_s`` (two heartbeats at least) before the wait returns.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch.agentbeat import answer_tail
from gpu_preflight.tools.dispatch.agentview import read_agent_view
from gpu_preflight.tools.dispatch.heartbeat import Heartbeat, HeartbeatState, heartbeat
from gpu_preflight.tools.dispatch.profiles import PROFILES
from gpu_preflight.tools.dispatch.target import make_tmux, resolve_pane_id
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable, TmuxError

MAX_WAIT_S = 86_400.0
FINAL_STATES: frozenset[HeartbeatState] = frozenset({"waiting_for_input", "exited", "pane_gone", "idle_at_prompt",
                                                     "host_unreachable"})
"""States that end a wait at once: nothing will finish by waiting longer (a box we cannot reach: the caller
decides, rather than a wait that holds the tool call for its whole timeout)."""


class WaitIdleResult(BaseModel):
    """How the wait ended, and what the agent said last."""

    idle: bool = Field(description="true when the agent finished its turn and sits idle")
    state: HeartbeatState
    reason: str
    waited_s: float
    agent: str | None = Field(default=None, description="agent profile read from the screen")
    dialog: str | None = Field(default=None, description="the dialog's title when one stopped the wait")
    answer_tail: list[str] = Field(default_factory=list, description="last lines of the conversation on screen")


def _tail(hb: Heartbeat, target: str, socket_name: str | None, socket_path: str | None,
          host: str | None) -> list[str]:
    if hb.state == "host_unreachable":
        return []
    tmux = make_tmux(socket_name, socket_path, host=host)
    try:
        pane_id = resolve_pane_id(tmux, target)
        raw = tmux.capture(pane_id, escapes=True) if pane_id is not None else []
    except (TmuxError, HostUnreachable):
        return []
    profile = PROFILES.get(hb.agent or "generic", PROFILES["generic"])
    return answer_tail(read_agent_view(raw, profile), 12)


def wait_idle(target: str, timeout_s: float = 600.0, *, socket_name: str | None = None,
              socket_path: str | None = None, settle_s: float = 1.0, poll_s: float = 0.25,
              host: str | None = None) -> WaitIdleResult:
    """Wait until the agent in ``target`` is idle (held ``settle_s``), a dialog opens, it exits, or time runs out.

    ``host``: the pane is on that registered box (each heartbeat over ssh; ``host_unreachable`` ends the wait)."""
    if not 0 < timeout_s <= MAX_WAIT_S:
        raise PreflightError("timeout_s", timeout_s, f"more than 0 and at most {MAX_WAIT_S:g} seconds")
    if not 0 <= settle_s <= 60:
        raise PreflightError("settle_s", settle_s, "0 to 60 seconds")
    started = time.monotonic()
    idle_since: float | None = None
    while True:
        hb = heartbeat(target=target, socket_name=socket_name, socket_path=socket_path, host=host)
        now = time.monotonic()
        done = hb.state in FINAL_STATES
        if hb.state == "idle":
            idle_since = idle_since if idle_since is not None else now
            done = now - idle_since >= settle_s
        else:
            idle_since = None
        if done or now - started >= timeout_s:
            reason = hb.reason if done else f"still {hb.state} after {timeout_s:g} s: {hb.reason}"
            return WaitIdleResult(idle=done and hb.state == "idle", state=hb.state, reason=reason,
                                  waited_s=round(now - started, 2), agent=hb.agent, dialog=hb.dialog,
                                  answer_tail=_tail(hb, target, socket_name, socket_path, host))
        time.sleep(poll_s)
