"""A Codex-like composer: a fast burst of characters is a paste, and an Enter soon after it is a newline.

Model of Codex's ``paste_burst.rs``: plain characters arriving <= 8 ms apart, at least 3 in a row,
form a burst; an Enter within 120 ms of the burst inserts a newline instead of submitting. An
explicit bracketed paste clears the burst state, so an Enter after it submits.
"""

from __future__ import annotations

import sys

from _tui_common import ESC_SEQ, App, run_main, split_pastes

BURST_CHAR_INTERVAL_S = 0.008
BURST_MIN_CHARS = 3
ENTER_SUPPRESS_WINDOW_S = 0.120


class CodexLike(App):
    glyph = "\u203a"
    placeholder = "Ask Codex to do anything"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.last_char_s = -1.0
        self.run_length = 0
        self.in_burst = False

    def feed(self, chunk: str, now: float) -> None:
        for is_paste, part in split_pastes(chunk):
            if is_paste:
                self.insert_paste(part)
                self.in_burst, self.run_length = False, 0
                continue
            if "\x03" in part:
                self.ctrl_c()
            for char in ESC_SEQ.sub("", part):
                if char == "\r":
                    if self.in_burst and now - self.last_char_s <= ENTER_SUPPRESS_WINDOW_S:
                        self.insert("\n")
                    else:
                        self.submit()
                        self.in_burst, self.run_length = False, 0
                elif char == "\x7f":
                    self.backspace()
                elif char.isprintable() or char == "\t":
                    self.run_length = self.run_length + 1 if now - self.last_char_s <= BURST_CHAR_INTERVAL_S else 1
                    self.in_burst = self.in_burst and now - self.last_char_s <= ENTER_SUPPRESS_WINDOW_S
                    self.in_burst = self.in_burst or self.run_length >= BURST_MIN_CHARS
                    self.last_char_s = now
                    self.insert(char)


def main() -> int:
    return run_main(CodexLike, __doc__ or "")


if __name__ == "__main__":
    sys.exit(main())
