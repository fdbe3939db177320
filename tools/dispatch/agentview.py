"""Reading an agent TUI's screen: its live composer, an open dialog, the busy and queued markers.

Why these rules (each from the real Claude Code 2.1.332, Codex 0.171.0 and Gemini CLI 0.61.0 screens,
``shared/fixtures/agent-tuis``):

- The live composer is the LAST prompt-glyph line, and its region ends at a rule, a footer line, or
  (for apps that draw no rule under it, Codex) a blank line, unless the terminal cursor sits further
  down inside the region (a multi-line draft with an empty line). Claude Code marks its live composer
  with ``❯`` + U+00A0; its history uses an ordinary space, which is how the two are told apart.
- What remains is a draft only if it is typed text: faint and grey segments (any colour model) are
  placeholders, and so is text equal to a known placeholder (``Ask Codex to do anything``).
- A selection list (``❯ 1. …``, or an indented ``❯`` with more options below it) or a known question is
  a dialog; its title is the first line of the block it sits in. Nothing is ever typed into one.
- An app can draw its composer before it can take a prompt: Codex shows ``› Ask Codex…`` ~0.3 s after
  launch but is ready only ~2.5 s later, when its footer names the model and folder (``ready_regex``).
- Codex draws no marker while a reply streams, but ends every turn with ``Worked for 7s • 14:09`` just
  above the composer: a turn on screen without that line is still running (``turn_end_regex``).
- Busy is any marker the apps draw: a status line (``esc to interrupt``, ``esc to cancel``, Codex's
  ``tab to queue message``) or a spinner line (``✽ Warping… (2s · ↓ 2 tokens)``), looked for near the
  composer only, so an old line in the history never counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from gpu_preflight.tools.dispatch.screen import TuiProfile, compact, unstyle_lines

BUSY_SEARCH_ABOVE = 10
"""Lines above the composer where spinner/status lines are drawn (Gemini's spinner sits 4 above)."""
_SELECTED = re.compile(r"^(\s*[│┃]?\s*)(?:\u276f|\u203a|>|●)\s+(\d+\.\s+)?\S")
"""The highlighted entry of a list: Claude ``❯ 1. Default``, Codex ``› 1. GPT…``, Gemini ``│ ● 1. Auto``."""
_NUMBERED = re.compile(r"^\s*[│┃]?\s+\d+\.\s+\S")
_BOX_TOP = re.compile(r"^\s*[╭┌]")
_TITLE = re.compile(r"\?\s*$|^(?:Select|Choose|Pick|Allow|Do you|Would you)\b", re.IGNORECASE)

AgentState = Literal["dialog", "busy", "idle", "draft", "unknown"]


@dataclass(frozen=True)
class Composer:
    """The composer region of an agent screen: its typed text (prompt glyph removed) and line numbers."""

    text: str
    first_line: int
    last_line: int

    @property
    def empty(self) -> bool:
        return compact(self.text) == ""


@dataclass(frozen=True)
class AgentView:
    """One look at an agent's screen: what is on it and the lines that show it."""

    lines: list[str]
    composer: Composer | None
    dialog: str | None = None
    busy_line: str | None = None
    starting: bool = False
    evidence: list[str] = field(default_factory=list)

    @property
    def state(self) -> AgentState:
        if self.dialog is not None:
            return "dialog"
        if self.busy_line is not None or self.starting:
            return "busy"
        if self.composer is None:
            return "unknown"
        return "idle" if self.composer.empty else "draft"


def _region_end(lines: list[str], start: int, profile: TuiProfile, cursor_y: int | None) -> int:
    divider = re.compile(profile.divider_regex)
    footer = re.compile(profile.footer_regex) if profile.footer_regex else None
    end = start
    blank_stop: int | None = None
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if divider.match(line) or (footer is not None and footer.search(line)):
            break
        if not line.strip() and profile.ends_at_blank and blank_stop is None:
            blank_stop = index - 1
        end = index
    if blank_stop is not None and (cursor_y is None or cursor_y <= blank_stop or cursor_y > end):
        end = blank_stop
    return end


def find_composer(lines: list[str], profile: TuiProfile, typed_lines: list[str] | None = None,
                  cursor_y: int | None = None) -> Composer | None:
    """The live composer: the last prompt-glyph line and its continuation (see the module docstring).

    >>> p = TuiProfile()
    >>> find_composer(["› Ask Codex to do anything", "", "  gpt-5 default · ~/x"], p).empty  # the placeholder
    True
    >>> find_composer(["› fix the tests", "", "  gpt-5 default · ~/x"], p).text  # a draft; the footer is not
    'fix the tests'
    """
    prompt = re.compile(profile.prompt_regex)
    start = next((i for i in range(len(lines) - 1, -1, -1) if prompt.match(lines[i])
                  and not _is_selection(lines, i)), None)
    if start is None:
        return None
    end = _region_end(lines, start, profile, cursor_y)
    source = typed_lines if typed_lines is not None and len(typed_lines) == len(lines) else lines
    body = [prompt.sub("", source[start], count=1), *source[start + 1 : end + 1]]
    strip = str.maketrans("", "", profile.frame_chars)
    text = "\n".join(line.translate(strip).rstrip() for line in body).strip("\n")
    if profile.placeholder_regex and re.fullmatch(profile.placeholder_regex, text.strip()):
        text = ""
    return Composer(text=text, first_line=start, last_line=end)


def _is_selection(lines: list[str], index: int) -> bool:
    """``lines[index]`` is the highlighted entry of a selection list (a dialog), not a composer."""
    match = _SELECTED.match(lines[index])
    if match is None:
        return False
    indent, numbered = len(match.group(1)), match.group(2) is not None
    following = [line for line in lines[index + 1 : index + 4] if line.strip()]
    preceding = [line for line in lines[max(0, index - 3) : index] if line.strip()]
    if numbered:
        return any(_NUMBERED.match(line) for line in following + preceding)
    if indent < 2:
        return False
    return any(len(line) - len(line.lstrip()) >= indent + 2 for line in following[:1])


def _dialog_title(lines: list[str], index: int, profile: TuiProfile) -> str:
    """The dialog's title: in the block above the list (up to a rule or a box's top), the line that reads
    like a question or a ``Select …`` heading, else the block's first line."""
    divider = re.compile(profile.divider_regex)
    top = index
    while top > 0 and index - top < 12 and not divider.match(lines[top - 1]) and not _BOX_TOP.match(lines[top - 1]):
        top -= 1
    block = [line.strip(" " + profile.frame_chars) for line in lines[top:index]]
    block = [line for line in block if line]
    return next((line for line in block if _TITLE.search(line)), block[0] if block else lines[index].strip())


def find_dialog(lines: list[str], composer: Composer | None, profile: TuiProfile) -> str | None:
    """The title of an open dialog, or None.

    A selection list counts anywhere on screen (Gemini draws a ``>`` line inside its dialog box, which
    must not make the box look like history above a composer); a question phrase only near the composer,
    since an agent's answer may contain the same words.
    """
    for index in range(len(lines)):
        if _is_selection(lines, index):
            return _dialog_title(lines, index, profile)
    if profile.dialog_regex:
        regex = re.compile(profile.dialog_regex)
        first = max(0, composer.first_line - 2) if composer is not None else 0
        for line in lines[first:]:
            if regex.search(line):
                return line.strip()
    return None


def find_busy(lines: list[str], composer: Composer | None, profile: TuiProfile) -> str | None:
    """The line that shows the agent working, searched near the composer only."""
    if not profile.busy_regex:
        return None
    regex = re.compile(profile.busy_regex)
    first = max(0, composer.first_line - BUSY_SEARCH_ABOVE) if composer is not None else 0
    region = [line for index, line in enumerate(lines[first:], start=first)
              if composer is None or not composer.first_line <= index <= composer.last_line]
    marker = next((line.strip() for line in region if regex.search(line)), None)
    if marker is not None or composer is None or not profile.turn_end_regex:
        return marker
    above = [line for line in lines[: composer.first_line] if line.strip()]
    prompt = re.compile(profile.prompt_regex)
    if any(prompt.match(line) for line in above) and not re.search(profile.turn_end_regex, above[-1]):
        return f"a turn is on screen without its end line (last: {above[-1].strip()[:60]!r})"
    return None


def queued_note_for(lines: list[str], composer: Composer | None, profile: TuiProfile, needle_head: str) -> str | None:
    """The app's queued note with OUR text beside it (a few lines before or after), or None.

    Claude Code: ``❯ text`` then ``⎿  Queued · …``; Gemini CLI: ``Queued (press ↑ to edit):`` then the text.
    """
    if not profile.queued_regex or not needle_head:
        return None
    regex = re.compile(profile.queued_regex)
    last = composer.first_line if composer is not None else len(lines)
    for index in range(last):  # Claude's note sits in the history, far above: our text beside it is the proof
        if regex.search(lines[index]):
            around = compact("".join(lines[max(0, index - 3) : min(last, index + 6)]))
            if needle_head in around:
                return lines[index].strip()
    return None


def read_agent_view(ansi_lines: list[str], profile: TuiProfile, cursor_y: int | None = None) -> AgentView:
    """Everything the dispatcher and the heartbeat need from one ``capture-pane -e``."""
    lines, typed = unstyle_lines(ansi_lines)
    composer = find_composer(lines, profile, typed, cursor_y)
    dialog = find_dialog(lines, composer, profile)
    busy = None if dialog is not None else find_busy(lines, composer, profile)
    starting = composer is not None and profile.ready_regex is not None and not any(
        re.search(profile.ready_regex, line) for line in lines[composer.first_line :])
    proof = [line for line in (dialog, busy) if line]
    if composer is not None:
        proof += [line.rstrip() for line in lines[composer.first_line : composer.last_line + 1]][:3]
    return AgentView(lines=lines, composer=composer, dialog=dialog, busy_line=busy, starting=starting, evidence=proof)
