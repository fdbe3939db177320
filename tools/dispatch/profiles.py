"""Named profiles for the agent TUIs, and choosing one from the program a pane runs.

Why per-app profiles beside ``generic``: the generic rules accept every app's glyphs, which is what
an unknown TUI needs, but the real apps differ where it matters (``shared/fixtures/agent-tuis``):
Claude Code's live composer is ``❯`` + U+00A0 while its history uses ``❯`` + space, so only the
claude profile can tell a composer hidden by a dialog from an old prompt; Codex draws no rule under
its composer and sends a prompt typed while busy into the running turn; Gemini CLI frames its
composer with footers and grey placeholders. ``auto`` (the default) picks the profile from the pane's
foreground process (``claude``, ``codex``, or node running a ``gemini`` script) and falls back to
``generic``.
"""

from __future__ import annotations

from pathlib import Path

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch.screen import TuiProfile

_GENERIC = TuiProfile()

PROFILES: dict[str, TuiProfile] = {
    "generic": _GENERIC,
    "claude": _GENERIC.model_copy(update={
        "name": "claude",
        "prompt_regex": r"^\s*[│|]?\s*(?:>|\u276f)(?:\u00a0|$)|^\s*│\s*>(?:\s|$)",  # old versions: a boxed '>'
        "busy_regex": r"esc to interrupt|ctrl\+c to interrupt|Waiting for \d+ background|^\s*[·✢✳✶✻✽*]\s\S[^…]{0,60}…",
        "ends_at_blank": False,
    }),
    "codex": _GENERIC.model_copy(update={
        "name": "codex",
        "prompt_regex": r"^\s*\u203a(?:\s|$)",
        "busy_regex": r"esc to interrupt|tab to queue message|^\s*• Working\b|Waiting for startup",
        # Until the footer names the model and folder, a prompt waits under "Waiting for startup".
        "ready_regex": r"for agents| · [~/]",
        # No marker while a reply streams; a finished (or stopped) turn ends with one of these lines.
        "turn_end_regex": r"Worked for |[Ii]nterrupted|^\s*■",
        "sends_mid_turn": True,
    }),
    "gemini": _GENERIC.model_copy(update={
        "name": "gemini",
        "prompt_regex": r"^\s*[│|]?\s*(?:>|\*|!)(?:\s|$)",
        "busy_regex": r"esc to cancel",
        "queued_regex": r"Queued \(press|Queued:",
        "ends_at_blank": False,
    }),
}
PROFILE_NAMES = ("auto", *PROFILES)

_PROGRAMS = {"claude": "claude", "codex": "codex", "gemini": "gemini"}


def profile_for_argv(argv: list[str]) -> str | None:
    """The profile name for a command line: the program's own name, or node/bun running its script.

    >>> profile_for_argv(["/usr/bin/node", "/opt/lib/node_modules/@google/gemini-cli/bundle/gemini.js"])
    'gemini'
    >>> profile_for_argv(["claude", "--resume"]), profile_for_argv(["bash"])
    ('claude', None)
    """
    if not argv:
        return None
    names = [Path(argv[0]).name]
    if names[0] in {"node", "nodejs", "bun", "deno"} or names[0].startswith("node"):
        names += [part for arg in argv[1:3] for part in Path(arg).parts]
    for name in names:
        for program, profile in _PROGRAMS.items():
            if name == program or name.startswith(f"{program}-") or name in {f"{program}.js", f"{program}-cli"}:
                return profile
    return None


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def detect_profile(pids: list[int]) -> str | None:
    """The first of ``pids`` (foreground processes of a pane) that runs a known agent TUI."""
    for pid in pids:
        found = profile_for_argv(_argv(pid))
        if found is not None:
            return found
    return None


def get_profile(profile: TuiProfile | str | None, pids: list[int] | None = None) -> TuiProfile:
    """A profile object from a name (``auto`` detects from ``pids``), an object, or None (auto)."""
    if isinstance(profile, TuiProfile):
        return profile
    if profile is None or profile == "auto":
        found = detect_profile(pids or [])
        return PROFILES[found] if found else _GENERIC
    if profile in PROFILES:
        return PROFILES[profile]
    raise PreflightError("profile", profile, "one of " + ", ".join(PROFILE_NAMES))
