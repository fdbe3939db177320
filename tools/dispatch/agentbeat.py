"""Heartbeats for panes that run an agent TUI: idle, working, waiting on a dialog, or exited.

Why not the shell rules: an agent is never "at its prompt" in the shell's sense, and its process state
says nothing (an idle Claude Code waits in ``epoll_pwait2``, exactly as a busy one does between
tokens), so every agent pane used to read ``running``. The screen says it instead: a dialog means
``waiting_for_input``; a busy marker means ``working``; otherwise the screen is sampled twice,
``AGENT_SAMPLE_S`` apart, because Codex draws no marker while a reply streams: output that moved
means ``working``, a still screen with a composer means ``idle``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpu_preflight.tools.dispatch import procfs
from gpu_preflight.tools.dispatch.agentview import AgentView, read_agent_view
from gpu_preflight.tools.dispatch.hbscan import capture_many
from gpu_preflight.tools.dispatch.paneinfo import PaneInfo
from gpu_preflight.tools.dispatch.profiles import PROFILES, detect_profile
from gpu_preflight.tools.dispatch.screen import TuiProfile
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux

if TYPE_CHECKING:
    from gpu_preflight.tools.dispatch.heartbeat import Heartbeat

AGENT_SAMPLE_S = 0.4
"""Between the two looks at a marker-less agent screen. Streaming apps redraw several times a second;
an idle composer redraws nothing (measured on the three real apps)."""


@dataclass
class AgentLook:
    """An agent pane waiting for its second look."""

    hb: Heartbeat
    pane_id: str
    profile: TuiProfile
    first: AgentView


def agent_profile(pane: PaneInfo, stats: dict[int, procfs.ProcStat]) -> TuiProfile | None:
    """The profile of the agent TUI running in ``pane`` (its process or a descendant), else None."""
    found = detect_profile([pane.pane_pid, *procfs.descendants(pane.pane_pid, stats)])
    return PROFILES[found] if found else None


_ART = re.compile(r"[\u2580-\u259f\u2800-\u28ff]")
"""Block elements and braille: the glyphs of logos and spinners that animate by themselves (Claude Code's
welcome logo redraws while the app sits idle: measured, it read as moving output)."""


def above_composer(view: AgentView) -> list[str]:
    """The screen above the composer (the conversation), without what animates on its own."""
    end = view.composer.first_line if view.composer is not None else len(view.lines)
    return [_ART.sub("", line) for line in view.lines[:end] if line != view.busy_line]


def answer_tail(view: AgentView, count: int = 8) -> list[str]:
    """The last non-empty lines of the conversation: the end of the agent's answer."""
    kept = [line.rstrip() for line in above_composer(view) if line.strip()]
    return kept[-count:]


def classify_agent(hb: Heartbeat, pane: PaneInfo, ansi: list[str], profile: TuiProfile) -> AgentLook | None:
    """Fill ``hb`` from one look; returns a pending look when only a second sample can tell."""
    view = read_agent_view(ansi, profile, pane.cursor_y)
    hb.agent = profile.name
    hb.evidence = view.evidence or answer_tail(view, 4)
    if view.dialog is not None:  # named from the second look too: a dialog caught mid-draw has no title yet
        hb.state, hb.reason = "waiting_for_input", f"a dialog is open: {view.dialog!r}"
        hb.dialog = view.dialog
        return AgentLook(hb=hb, pane_id=pane.pane_id, profile=profile, first=view)
    if view.busy_line is not None:
        hb.state, hb.reason = "working", f"busy marker on screen: {view.busy_line!r}"
        return None
    if view.starting:
        hb.state, hb.reason = "working", f"the {profile.name} app is still starting (no ready footer yet)"
        return None
    hb.state, hb.reason = "running", f"the {profile.name} screen shows no composer, marker or dialog"
    return AgentLook(hb=hb, pane_id=pane.pane_id, profile=profile, first=view)


def sample_agents(tmux: Tmux, looks: list[AgentLook], sample_s: float = AGENT_SAMPLE_S) -> None:
    """The second look for every pending agent pane at once: moving output is work, stillness is idle."""
    if not looks:
        return
    time.sleep(sample_s)
    again = capture_many(tmux, [look.pane_id for look in looks], escapes=True)
    for look in looks:
        second_look(look, again.get(look.pane_id, []), sample_s)


def second_look(look: AgentLook, ansi: list[str], sample_s: float) -> None:
    """Judge one pending agent pane from its screen ``sample_s`` after the first (a remote fleet sweep takes
    both screens in one ssh round trip: :mod:`.remote_fleet`)."""
    second = read_agent_view(ansi, look.profile)
    hb = look.hb
    if second.dialog is not None:
        hb.state, hb.reason, hb.dialog = "waiting_for_input", f"a dialog is open: {second.dialog!r}", second.dialog
    elif second.busy_line is not None:
        hb.state, hb.reason = "working", f"busy marker on screen: {second.busy_line!r}"
    elif above_composer(second) != above_composer(look.first):
        hb.state, hb.reason = "working", f"output is moving (the screen changed within {sample_s:g} s)"
    elif second.composer is not None:
        draft = "" if second.composer.empty else "; a draft sits in the composer"
        hb.state, hb.reason = "idle", f"composer shown, no busy marker, nothing moved in {sample_s:g} s{draft}"
    hb.evidence = second.evidence or answer_tail(second, 4)
    hb.last_output_line = next(iter(answer_tail(second, 1)), hb.last_output_line)
