"""Reading a captured screen: the shell's input line and an agent's composer.

Why text matching and not "did the screen change": typing our own text changes the screen, so a
change proves nothing. Delivery is proven only by *our* text appearing in the input line (echo)
and submission only by it *leaving* the input line. Comparisons drop all whitespace, because TUIs
wrap long input at their own width and re-indent continuation lines.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from pydantic import BaseModel, Field

_WS = re.compile(r"\s+")
NEEDLE_CHARS = 40


class TuiProfile(BaseModel):
    """How one agent TUI draws its composer, busy state, queue and dialogs.

    The defaults (``generic``) accept every app we know; :mod:`.profiles` holds the per-app ones
    fitted to the real Claude Code, Codex and Gemini CLI screens.
    """

    name: str = "generic"
    prompt_regex: str = Field(
        # \s, not a space: Claude Code draws U+00A0 after its glyph in the live composer.
        default=r"^\s*[│┃|]?\s*(?:>|\u276f|\u203a|\*)(?:\s|$)",
        description="start of the composer's first line (the prompt glyph)",
    )
    divider_regex: str = Field(
        # a rule, Gemini's ▄▄/▀▀ frame rows, Claude's ▔▔ dialog top, or a box's top/bottom (older Claude Code)
        default=r"^\s*[╭╰┌└]?[─━═╌╍▄▀▔▁-]{8,}[╮╯┐┘]?\s*$", description="line that ends the composer"
    )
    footer_regex: str | None = Field(
        default=r"\? for shortcuts|for agents|tab to queue|^\s*workspace \(|^\s*\S+ (?:default|low|medium|high)"
        r"(?: · |$)|mode on\b|accept edits|esc to interrupt|esc to cancel",
        description="a footer line below the composer: ends the composer region",
    )
    ends_at_blank: bool = Field(default=True, description="a blank line ends the composer (no rule under it)")
    placeholder_regex: str | None = Field(
        default=r"Ask Codex to do anything|Type your message or @path/to/file|Press up to edit queued messages"
        r"|Try \"[^\"]*\"",
        description="composer text that is the app's placeholder, not a draft (matched against the whole text)",
    )
    frame_chars: str = Field(default="│┃╭╮╰╯", description="box characters drawn around the composer")
    busy_regex: str | None = Field(
        default=r"esc to interrupt|ctrl\+c to interrupt|esc to cancel|tab to queue message"
        r"|^\s*[·✢✳✶✻✽*]\s\S[^…]{0,60}…",
        description="marker the agent shows while it works (status line, spinner line)",
    )
    queued_regex: str | None = Field(
        default=r"Queued · |Queued \(press|queued message", description="the app's own note that a message is queued"
    )
    dialog_regex: str | None = Field(
        default=r"\(y/n\)|\[y/N\]|\[Y/n\]|Do you want to proceed|Do you trust|Allow this|Select [Mm]odel"
        r"|default permission mode\?|Allow execution|Apply this change\?",
        description="an open question or permission dialog: never type into it",
    )
    paste_marker_regex: str = Field(
        # Claude "[Pasted text #1 +35 lines]", Codex "[Pasted Content 3079 chars]", Gemini "[Pasted Text: 40 lines]"
        default=r"\[Pasted (?:[Tt]ext(?: #|: )\d+|[Cc]ontent \d+)[^\]]*\]", description="placeholder for big pastes"
    )
    require_busy_marker: bool = Field(default=False, description="confirm only once the busy marker appeared")
    bracketed_paste: bool | None = Field(
        default=None, description="app frames pastes; None = unknown (add the typed-text quiet margin)"
    )
    turn_end_regex: str | None = Field(
        default=None, description="the line an app draws when a turn ends; a turn on screen without it is running"
    )
    ready_regex: str | None = Field(
        default=None, description="a line at or below the composer that shows the app finished starting"
    )
    sends_mid_turn: bool = Field(default=False, description="Enter while busy sends into the running turn (Codex)")


def compact(text: str) -> str:
    """``text`` without any whitespace: robust to wrapping and re-indentation."""
    return _WS.sub("", text)


@dataclass(frozen=True)
class Needle:
    """What identifies our text on screen: its compacted head and, for long text, tail."""

    full: str
    head: str
    tail: str

    @classmethod
    def of(cls, text: str) -> Needle:
        full = compact(text)
        head = full[:NEEDLE_CHARS]
        tail = full[-NEEDLE_CHARS // 2 :] if len(full) > NEEDLE_CHARS else ""
        return cls(full=full, head=head, tail=tail)

    def visible_in(self, screen_text: str) -> bool:
        """Head (and tail, when the text is long) appear in ``screen_text``."""
        body = compact(screen_text)
        return bool(self.head) and self.head in body and (not self.tail or self.tail in body)

    def tail_visible_in(self, screen_text: str) -> bool:
        """The end of a long text is drawn: it all arrived, even if the composer scrolled its head away."""
        return bool(self.tail) and self.tail in compact(screen_text)

    def any_part_in(self, screen_text: str) -> bool:
        """Head or tail appears: used to decide that our text has NOT left the input line yet."""
        body = compact(screen_text)
        return (bool(self.head) and self.head in body) or (bool(self.tail) and self.tail in body)


_ESCAPE = re.compile(r"\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b.")


def _grey_256(index: int) -> bool:
    """Palette 8 (bright black) or the grey ramp 240-250: placeholder greys, not typed text."""
    return index == 8 or 240 <= index <= 250


def _grey_rgb(red: int, green: int, blue: int) -> bool:
    """A mid grey in truecolor (Gemini draws its placeholder so); typed text is white or a hue."""
    return max(red, green, blue) - min(red, green, blue) <= 24 and 64 <= red <= 200


def _ghost_after(params: str, ghost: bool) -> bool:
    """Faint (SGR 2) or grey text, in any colour model, is a placeholder or suggestion, not typed input.

    Measured on the real apps: Codex draws its placeholder faint (``2``); Gemini CLI draws it in
    256-colour grey ``38;5;248`` (or a truecolor grey) and typed text in white.
    """
    codes = [int(part) if part.isdigit() else 0 for part in re.split(r"[;:]", params)] if params else [0]
    index = 0
    while index < len(codes):
        code = codes[index]
        if code in (2, 90):
            ghost = True
        elif code in (0, 22, 39):
            ghost = False
        elif code in (38, 48):
            mode = codes[index + 1] if len(codes) > index + 1 else 0
            if code == 38 and mode == 5 and len(codes) > index + 2:
                ghost = _grey_256(codes[index + 2])
            elif code == 38 and mode == 2 and len(codes) > index + 4:
                ghost = _grey_rgb(codes[index + 2], codes[index + 3], codes[index + 4])
            index += 2 if mode == 5 else 4
        elif 30 <= code <= 37 or 91 <= code <= 97:
            ghost = False
        index += 1
    return ghost


def unstyle(line: str) -> tuple[str, str]:
    """(plain text, text without ghost segments) of one ``capture-pane -e`` line.

    Agents draw a dim placeholder in an empty composer (``Try "fix lint errors"``) and dim
    autosuggestions after the cursor; counting those as someone's draft would refuse every send.
    """
    plain: list[str] = []
    typed: list[str] = []
    ghost = False
    position = 0
    for match in _ESCAPE.finditer(line):
        chunk = line[position : match.start()]
        plain.append(chunk)
        if not ghost:
            typed.append(chunk)
        if match.group(2) == "m":
            ghost = _ghost_after(match.group(1) or "", ghost)
        position = match.end()
    chunk = line[position:]
    plain.append(chunk)
    if not ghost:
        typed.append(chunk)
    return "".join(plain).rstrip(), "".join(typed).rstrip()


def unstyle_lines(lines: list[str]) -> tuple[list[str], list[str]]:
    pairs = [unstyle(line) for line in lines]
    return [plain for plain, _ in pairs], [typed for _, typed in pairs]


def count_markers(text: str, pattern: str) -> int:
    return len(re.findall(pattern, text))


def _cell_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in {"W", "F"} else 1


def split_at_cell(line: str, cell: int) -> tuple[str, str]:
    """Split ``line`` at terminal column ``cell`` (wide characters take two columns)."""
    used = 0
    for index, char in enumerate(line):
        if used >= cell:
            return line[:index], line[index:]
        used += _cell_width(char)
    return line, ""


SHELL_PROMPT_ENDS = "$#%>\u276f»➜λ"


def shell_input_line(lines: list[str], cursor_x: int, cursor_y: int) -> tuple[str, str, str]:
    """(line, before_cursor, after_cursor) of the shell's cursor line."""
    line = lines[cursor_y] if 0 <= cursor_y < len(lines) else ""
    before, after = split_at_cell(line, cursor_x)
    return line, before, after


def shell_prompt_is_empty(before: str, after: str, prompt_regex: str | None = None) -> bool:
    """Whether the cursor sits right after a prompt with nothing typed.

    Default rule: text before the cursor ends in a usual prompt character (``$ # % > \u276f » ➜ λ``),
    nothing after it, and it is not a bare ``>`` (bash's PS2: an unfinished command is pending).
    ``prompt_regex`` replaces the rule for unusual prompts (it must match the text before the
    cursor).
    """
    if after.strip():
        return False
    if prompt_regex is not None:
        return re.search(prompt_regex, before) is not None
    head = before.rstrip()
    return bool(head) and head[-1] in SHELL_PROMPT_ENDS and head != ">"
