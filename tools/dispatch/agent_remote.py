"""Agent TUIs on a remote box: which app a pane runs, its screen and cursor, its heartbeat, in few ssh round trips.

Why a module of its own: locally the app is found from ``/proc`` of this machine (:mod:`.profiles`) and
the screen is one ``capture-pane`` away (~2 ms); on a box ``/proc`` is the box's and each tmux call is an
ssh round trip (~170 ms warm here). So one fixed ``sh`` script (:data:`AGENT_SCRIPT`, run by
:meth:`~.tmuxcmd.Tmux.sh`) prints, between markers carrying a per-call nonce (a screen cannot forge one),
the command line of the pane's process and of every descendant (breadth first, at most
:data:`MAX_PROCS`), the cursor row and the screen with its SGR attributes. The same rules as locally
then judge it: :func:`.profiles.profile_for_argv`, :func:`.agentbeat.classify_agent`,
:func:`.agentbeat.sample_agents` (whose batched capture runs over ssh unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpu_preflight.tools.dispatch.agentbeat import AGENT_SAMPLE_S, classify_agent, sample_agents
from gpu_preflight.tools.dispatch.audit import last_agent_prompt
from gpu_preflight.tools.dispatch.heartbeat_model import Heartbeat
from gpu_preflight.tools.dispatch.paneinfo import PaneInfo
from gpu_preflight.tools.dispatch.profiles import PROFILES, profile_for_argv
from gpu_preflight.tools.dispatch.remote import nonce, sections
from gpu_preflight.tools.dispatch.screen import TuiProfile
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable, Tmux, TmuxError

MAX_PROCS = 200
"""Descendants read per look: an agent sits one or two levels below the pane's shell; this bounds a fork bomb."""

AGENT_SCRIPT = r"""p=$1 k=$2 n=$3 want=$4
pid=$(t display-message -p -t "$p" '#{pane_pid}') || exit 1
case $pid in ''|*[!0-9]*) exit 1;; esac
if [ "$want" != screen ]; then
  q=$pid i=0
  while [ -n "$q" ] && [ "$i" -lt "$n" ]; do
    next=
    for c in $q; do
      [ "$i" -lt "$n" ] || break
      i=$((i+1))
      echo "@@$k proc $i"; tr '\0' '\n' < "/proc/$c/cmdline" 2>/dev/null; echo
      next="$next $(cat /proc/$c/task/*/children 2>/dev/null)"
    done
    q=$(echo $next)
  done
fi
if [ "$want" != procs ]; then
  echo "@@$k cursor"; t display-message -p -t "$p" '#{cursor_y}'
  echo "@@$k screen"; t capture-pane -p -e -t "$p"
fi
"""

COOKED_SCRIPT = 'stty -a < "$1" 2>/dev/null | tr " ;" "\\n\\n" | grep -x -e icanon -e -icanon\n'


@dataclass
class AgentScreen:
    """One :data:`AGENT_SCRIPT` answer: the app found in the pane's process tree, the cursor row, the screen."""

    profile: str | None = None
    cursor_y: int | None = None
    ansi: list[str] = field(default_factory=list)


def look_agent(tmux: Tmux, pane_id: str, want: str = "both") -> AgentScreen:
    """One round trip (``want``: ``procs``, ``screen`` or ``both``); TmuxError when the pane is gone,
    :class:`~.tmuxcmd.HostUnreachable` on a fault of the link."""
    mark = nonce()
    out = tmux.sh(AGENT_SCRIPT, pane_id, mark, str(MAX_PROCS), want)
    parts = sections(out, mark)
    seen = AgentScreen()
    for index in range(1, MAX_PROCS + 1):
        argv = parts.get(f"proc {index}")
        if argv is None:
            break
        seen.profile = profile_for_argv([arg for arg in argv if arg])
        if seen.profile is not None:
            break
    cursor = (parts.get("cursor") or [""])[0].strip()
    seen.cursor_y = int(cursor) if cursor.isdigit() else None
    seen.ansi = [line.rstrip() for line in parts.get("screen", [])[:-1]]  # the output's final newline
    return seen


def remote_profile(tmux: Tmux, pane_id: str) -> TuiProfile:
    """``profile="auto"`` on a box: the app its processes run, else generic (a gone pane: generic, and the
    preflight then says the pane is gone)."""
    try:
        found = look_agent(tmux, pane_id, "procs").profile
    except TmuxError:
        found = None
    return PROFILES[found] if found else PROFILES["generic"]


def screen_and_cursor(tmux: Tmux, pane_id: str) -> tuple[list[str], int | None]:
    """``capture-pane -e`` and ``#{cursor_y}`` of a remote pane in ONE round trip (two locally)."""
    seen = look_agent(tmux, pane_id, "screen")
    return seen.ansi, seen.cursor_y


def remote_cooked(tmux: Tmux, tty: str) -> bool | None:
    """Whether the box's tty ``tty`` is in canonical mode (``stty -a`` there); None when it cannot be told."""
    try:
        flag = tmux.sh(COOKED_SCRIPT, tty).strip()
    except TmuxError:
        return None
    return {"icanon": True, "-icanon": False}.get(flag)


AGENT_STATES = ("running", "hung", "waiting_for_input")
"""Shell-rule states an agent's screen overrides: an idle agent is silent and uses no CPU (never ``hung``)."""


def agent_gone(hb: Heartbeat, server_key: str) -> Heartbeat:
    """``idle_at_prompt`` where no job of ours ran but the audit says we last sent a prompt to an agent here:
    that agent has ``exited`` (the shell is back at its prompt), as the local heartbeat says."""
    if hb.state != "idle_at_prompt" or hb.job_id is not None or hb.pane_id is None:
        return hb
    prompt = last_agent_prompt(server_key, hb.pane_id)
    if prompt is not None:
        hb.state = "exited"
        hb.reason = (f"the agent TUI that took our last prompt here (audit #{prompt[0]}, {prompt[1]}) has exited: "
                     "the shell is back at its prompt")
    return hb


def agent_heartbeat(tmux: Tmux, pane: PaneInfo, hb: Heartbeat, sample_s: float = AGENT_SAMPLE_S) -> Heartbeat:
    """Refine a remote pane heartbeat (``running``, ``hung``, ``waiting_for_input`` or ``idle_at_prompt``) for an
    agent TUI, as locally.

    ``running``, ``hung`` or ``waiting_for_input`` with an agent in the pane's processes: read from its screen
    (:func:`.agentbeat.classify_agent`, a second look ``sample_s`` later when only that can tell). ``idle_at_prompt``:
    :func:`agent_gone`. A link that fails in between gives ``host_unreachable``, never a guess.
    """
    assert tmux.host is not None
    if hb.state not in AGENT_STATES:
        return agent_gone(hb, tmux.key)
    try:
        seen = look_agent(tmux, pane.pane_id)
        if seen.profile is None:
            return hb
        hb.last_error_line = None
        pending = classify_agent(hb, pane.model_copy(update={"cursor_y": seen.cursor_y or 0}), seen.ansi,
                                 PROFILES[seen.profile])
        sample_agents(tmux, [pending] if pending else [], sample_s)
    except HostUnreachable as exc:
        return Heartbeat(state="host_unreachable", target=hb.target, pane_id=hb.pane_id, host=tmux.host.name,
                         reason=f"{exc.status}: {exc.reason} (the pane's state is unknown, not gone)")
    except TmuxError:
        return hb  # the pane went away between the looks: the next heartbeat says pane_gone
    return hb
