"""Named input-line profiles for the agent TUIs the dispatcher knows.

Why profiles: each agent draws its composer and busy marker differently, and confirming a submit
means finding *its* input line. The glyphs and markers come from the agents' screens as described
in peer tools (agent-deck, claude-tmux-status); they were not checked against live binaries here,
so ``generic`` (which accepts all of them) is the default.
"""

from __future__ import annotations

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch.screen import TuiProfile

PROFILES: dict[str, TuiProfile] = {
    "generic": TuiProfile(),
    "claude": TuiProfile(
        name="claude",
        prompt_regex=r"^\s*[│|]?\s*(?:>|\u276f)(?: |$)",
        busy_regex=r"esc to interrupt|ctrl\+c to interrupt|Waiting for \d+ background",
    ),
    "codex": TuiProfile(name="codex", prompt_regex=r"^\s*[│|]?\s*\u203a(?: |$)", busy_regex=r"esc to interrupt"),
    "gemini": TuiProfile(name="gemini", prompt_regex=r"^\s*[│|]?\s*(?:>|\*)(?: |$)", busy_regex=r"esc to cancel"),
}


def get_profile(profile: TuiProfile | str | None) -> TuiProfile:
    """A profile object from a name, an object, or None (generic)."""
    if profile is None:
        return PROFILES["generic"]
    if isinstance(profile, TuiProfile):
        return profile
    if profile in PROFILES:
        return PROFILES[profile]
    raise PreflightError("profile", profile, "one of " + ", ".join(PROFILES))
