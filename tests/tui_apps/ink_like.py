"""An Ink-like composer (Claude Code, Gemini CLI): one ``read()`` chunk is one input event.

Ink's ``useInput`` sees ``key.return`` only when a chunk is exactly ``"\\r"``; a chunk like
``"hello\\r"`` is typed text and the Enter is lost. With ``--stall-ms`` the event loop sleeps
before each read, so separate tmux writes pile up and arrive as one chunk, as in a busy Ink app.
"""

from __future__ import annotations

import sys

from _tui_common import ESC_SEQ, App, run_main, split_pastes


class InkLike(App):
    glyph = ">"

    def feed(self, chunk: str, now: float) -> None:
        for is_paste, part in split_pastes(chunk):
            if is_paste:
                self.insert_paste(part)
            elif part == "\r":
                self.submit()
            elif "\x03" in part:
                self.ctrl_c()
            elif part in ("\x7f", "\x08"):
                self.backspace()
            else:
                text = ESC_SEQ.sub("", part).replace("\r", "")  # CR inside a bigger chunk: dropped
                self.insert(text.replace("\n", ""))
        del now


def main() -> int:
    return run_main(InkLike, __doc__ or "")


if __name__ == "__main__":
    sys.exit(main())
