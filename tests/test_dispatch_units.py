"""Pure pieces of the dispatcher: sanitising, target validation, screen reading (no tmux needed)."""

from __future__ import annotations

import pytest

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch.agentview import find_composer
from gpu_preflight.tools.dispatch.profiles import get_profile
from gpu_preflight.tools.dispatch.sanitize import sanitize_text, strip_paste_markers
from gpu_preflight.tools.dispatch.screen import (
    Needle,
    TuiProfile,
    shell_input_line,
    shell_prompt_is_empty,
    split_at_cell,
    unstyle_lines,
)
from gpu_preflight.tools.dispatch.target import validate_target
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux


@pytest.mark.parametrize("controls", ["reject", "allow"])
def test_paste_end_sequence_is_refused_with_the_reason_even_when_controls_allowed(controls: str) -> None:
    """Issue 14: the marker used to be stripped silently; the caller now hears why its text was refused."""
    with pytest.raises(PreflightError, match="bracketed-paste marker at offset 1"):
        sanitize_text("a\x1b[201~\rRUN", controls)  # type: ignore[arg-type]
    assert sanitize_text("a\x1b[201~\rRUN", "strip") == "aRUN"  # asked for: removed, CR too
    assert strip_paste_markers("x\x1b[20\x1b[201~1~y") == "xy"  # removal cannot build a new marker


def test_control_characters_rejected_by_default_with_a_hint() -> None:
    with pytest.raises(PreflightError) as info:
        sanitize_text("echo a\x03b")
    assert info.value.field == "text"
    assert "controls='strip'" in info.value.one_line()
    assert sanitize_text("echo a\x03b\x1b[31mred", "strip") == "echo abred"
    assert sanitize_text("tab\tand\nnewline\nend") == "tab\tand\nnewline\nend"
    assert sanitize_text("tab\tand\nnewline\r\nend", "strip") == "tab\tand\nnewline\nend"


@pytest.mark.parametrize("controls", ["reject", "allow"])
@pytest.mark.parametrize("text", ["echo safe\rtouch pwned", "echo safe\r\ntouch pwned", "echo a\r"])
def test_carriage_return_is_refused_it_would_run_a_second_command(text: str, controls: str) -> None:
    """Issue 14: CR (and CRLF) became LF, so one shell dispatch ran two commands."""
    with pytest.raises(PreflightError, match="carriage return") as info:
        sanitize_text(text, controls)  # type: ignore[arg-type]
    assert info.value.field == "text" and "one command" in info.value.one_line()


@pytest.mark.parametrize("target", ["%3", "train:0.1", "my-session:editor.2"])
def test_targets_that_name_one_pane_are_accepted(target: str) -> None:
    assert validate_target(target) == target


@pytest.mark.parametrize("target", ["", "train", "train:0", "-R", "%x", "a b:0.1", 5])
def test_targets_that_do_not_name_one_pane_are_refused(target: object) -> None:
    with pytest.raises(PreflightError):
        validate_target(target)  # type: ignore[arg-type]


def test_socket_name_and_path_are_exclusive() -> None:
    with pytest.raises(PreflightError):
        Tmux(socket_name="a", socket_path="/tmp/b")
    assert Tmux(socket_name="x").argv("ls")[1:] == ["-L", "x", "ls"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"socket_name": "\x00"}, "socket_name"), ({"socket_name": "a\nb"}, "socket_name"),
    ({"socket_path": "/tmp/a\x00b"}, "socket_path"),
])
def test_socket_names_with_nul_or_controls_are_refused_before_tmux_runs(kwargs: dict[str, str], field: str) -> None:
    """Regression (the MCP fuzz sweep): a NUL reached subprocess, whose ValueError escaped as a bare error."""
    with pytest.raises(PreflightError) as info:
        Tmux(**kwargs)  # type: ignore[arg-type]  # only str keys of Tmux's fields are passed
    assert info.value.field == field


def test_composer_is_the_last_prompt_line_not_the_echoed_history() -> None:
    screen = ["> hello (history)", "● ok", "─" * 30, "> draft text", "  continues", "─" * 30, "? for shortcuts"]
    composer = find_composer(screen, TuiProfile())
    assert composer is not None
    assert composer.text == "draft text\n  continues"
    assert Needle.of("draft text continues").visible_in(composer.text)


def test_needle_survives_wrapping_and_checks_the_tail_of_long_text() -> None:
    text = "x" * 30 + " middle " + "y" * 30
    needle = Needle.of(text)
    assert needle.visible_in("xxxxxxxxxxxxxxx\n  xxxxxxxxxxxxxxx middle yyyyyyyyyy\n yyyyyyyyyyyyyyyyyyyy")
    assert not needle.visible_in("x" * 30 + " middle ")


def test_dim_placeholder_is_not_a_draft() -> None:
    raw = ["\x1b[0m\x1b[39m> \x1b[2mTry \"fix lint errors\"\x1b[22m", "\x1b[90mhint\x1b[39m typed"]
    plain, typed = unstyle_lines(raw)
    assert plain == ['> Try "fix lint errors"', "hint typed"]
    assert typed == [">", " typed"]
    composer = find_composer(plain[:1], TuiProfile(), typed[:1])
    assert composer is not None and composer.empty


def test_shell_prompt_empty_vs_draft_vs_continuation() -> None:
    assert shell_prompt_is_empty("$ ", "")
    assert not shell_prompt_is_empty("$ echo hi", "")
    assert not shell_prompt_is_empty("$ ", "echo")  # cursor moved left into a draft
    assert not shell_prompt_is_empty("> ", "")  # bash PS2: an unfinished command is pending
    assert shell_prompt_is_empty("me@box ~ % ", "")
    assert shell_prompt_is_empty("fish> ", "", prompt_regex=r"fish> $")


def test_cursor_column_counts_wide_characters_twice() -> None:
    assert split_at_cell("你好$ x", 5) == ("你好$", " x")
    line, before, after = shell_input_line(["a", "$ ls"], cursor_x=2, cursor_y=1)
    assert (line, before, after) == ("$ ls", "$ ", "ls")


def test_profiles_by_name() -> None:
    assert get_profile("codex").name == "codex"
    with pytest.raises(PreflightError):
        get_profile("nope")


def test_a_composer_in_a_rounded_box_is_read_without_its_frame() -> None:
    """Older Claude Code versions drew the composer in a box: the frame is neither draft nor text."""
    box = ["\u256d" + "\u2500" * 40 + "\u256e", "\u2502 > fix the failing test" + " " * 17 + "\u2502",
           "\u2502   and run it again" + " " * 21 + "\u2502", "\u2570" + "\u2500" * 40 + "\u256f", "  ? for shortcuts"]
    composer = find_composer(box, TuiProfile())
    assert composer is not None and " ".join(composer.text.split()) == "fix the failing test and run it again"
    empty = find_composer([box[0], "\u2502 >" + " " * 38 + "\u2502", box[3]], TuiProfile())
    assert empty is not None and empty.empty
