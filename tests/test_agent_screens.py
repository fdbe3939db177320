"""The screen model on the real apps' screens, as captured from Claude Code, Codex and Gemini CLI.

The captures live in ``../shared/fixtures/agent-tuis`` (``capture-pane -p -e`` of the real programs, every
state); they are read in place, and these tests skip where ``../shared`` is absent. Each app's screens are
read twice: with the app's own profile (what ``auto`` picks) and with ``generic`` (an unknown app), and
both must agree on what a person sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_preflight.tools.dispatch.agentview import AgentView, queued_note_for, read_agent_view
from gpu_preflight.tools.dispatch.profiles import PROFILES
from gpu_preflight.tools.dispatch.screen import Needle

SCREENS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "agent-tuis"
shared_screens = pytest.mark.skipif(not SCREENS.is_dir(), reason=f"real agent screens not found at {SCREENS}")

# (screen, state a person reads on it, composer text or None to skip)
CASES = [
    ("claude-idle", "idle", ""),
    ("claude-draft", "draft", "my draft text"),
    ("claude-busy", "busy", ""),
    ("claude-busy-draft", "busy", "queued follow up text"),  # the spinner stays while 'esc to interrupt' goes
    ("claude-queued", "busy", ""),  # 'Press up to edit queued messages' is a placeholder
    ("claude-after-queue", "idle", ""),
    ("claude-dialog-automode", "dialog", None),
    ("codex-idle", "idle", ""),
    ("codex-draft", "draft", "my draft text"),  # the footer below the blank line is not a draft
    ("codex-busy-draft", "busy", "queued follow up text"),  # 'tab to queue message'
    ("gemini-idle", "idle", ""),  # its 256-colour grey placeholder is not a draft
    ("gemini-draft", "draft", "my draft text"),
    ("gemini-busy", "busy", ""),
    ("gemini-busy-draft", "busy", "queued follow up text"),
    ("gemini-queued", "busy", ""),
]


def view(name: str, profile: str) -> AgentView:
    path = SCREENS / f"{name}.ansi.txt"
    raw = (path if path.exists() else SCREENS / f"{name}.txt").read_text(encoding="utf-8").split("\n")
    return read_agent_view(raw, PROFILES[profile])


@shared_screens
@pytest.mark.parametrize("profile", ["own", "generic"])
@pytest.mark.parametrize(("name", "state", "text"), CASES)
def test_state_and_draft_as_a_person_reads_them(name: str, state: str, text: str | None, profile: str) -> None:
    seen = view(name, name.split("-")[0] if profile == "own" else "generic")
    assert seen.state == state, (seen.state, seen.busy_line, seen.dialog, seen.composer)
    if text is not None:
        assert seen.composer is not None and seen.composer.text.strip() == text


@shared_screens
def test_a_selection_dialog_is_named_by_its_question_and_is_never_a_composer() -> None:
    for profile in ("claude", "generic"):
        seen = view("claude-dialog-automode", profile)
        assert seen.dialog == "Make auto mode your default permission mode?"
        assert seen.composer is None or "Yes, set auto mode" not in seen.composer.text


@shared_screens
def test_claude_history_prompts_are_not_its_composer() -> None:
    """Claude's history draws '❯ text' with a plain space; the live composer uses U+00A0."""
    seen = view("claude-busy", "claude")
    assert seen.composer is not None and seen.lines[seen.composer.first_line].startswith("\u276f")
    assert "plain prompt number four" not in seen.composer.text


@shared_screens
@pytest.mark.parametrize("name", ["claude-queued", "gemini-queued"])
def test_queued_note_is_found_only_beside_our_text(name: str) -> None:
    seen = view(name, name.split("-")[0])
    assert queued_note_for(seen.lines, seen.composer, PROFILES[name.split("-")[0]],
                           Needle.of("queued follow up text").head) is not None
    assert queued_note_for(seen.lines, seen.composer, PROFILES[name.split("-")[0]],
                           Needle.of("some other prompt").head) is None


@shared_screens
def test_gemini_truecolor_frame_and_multi_line_draft() -> None:
    seen = view("gemini-multiline-draft", "gemini")
    assert seen.state == "draft" and seen.composer is not None
    assert "pasted three" in seen.composer.text


@shared_screens
def test_codex_streaming_is_read_from_the_missing_turn_end_line() -> None:
    """Codex draws no marker while a reply streams; its profile knows a finished turn ends 'Worked for …'."""
    for name in ("codex-busy", "codex-queued"):
        assert view(name, "codex").state == "busy"
        assert view(name, "generic").state == "idle"  # what an unknown app's screen alone can say


OURS = Path(__file__).resolve().parent / "fixtures" / "agent-tuis"


@pytest.mark.parametrize(("app", "title"), [("claude", "Select model"), ("codex", "Select Model and Effort"),
                                            ("gemini", "Select Model")])
def test_model_selection_dialogs_of_the_real_apps(app: str, title: str) -> None:
    raw = (OURS / f"{app}-dialog-model.ansi.txt").read_text(encoding="utf-8").split("\n")
    for profile in (app, "generic"):
        seen = read_agent_view(raw, PROFILES[profile])
        assert seen.state == "dialog" and seen.dialog == title, (profile, seen.dialog)
