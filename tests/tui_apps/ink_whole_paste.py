"""The Ink-like composer of ``ink_like.py``, holding a bracketed paste until its end marker arrives.

Why: a long paste (3 KB here) can reach the app in several ``read()`` chunks when the machine is loaded;
``ink_like.py`` reads each chunk alone and takes the tail of a split paste for typed text (dropping its
line breaks), where the real apps keep collecting until the end marker. The remote injection tests
score what arrives against this app's log, so the log must hold what the terminal delivered.
"""

from __future__ import annotations

import sys

from _tui_common import PASTE_END, PASTE_START, run_main
from ink_like import InkLike


class WholePaste(InkLike):
    pending = ""

    def feed(self, chunk: str, now: float) -> None:
        chunk, self.pending = self.pending + chunk, ""
        start = chunk.rfind(PASTE_START)
        if start >= 0 and chunk.find(PASTE_END, start) < 0:
            chunk, self.pending = chunk[:start], chunk[start:]
        if chunk:
            super().feed(chunk, now)


def main() -> int:
    return run_main(WholePaste, __doc__ or "")


if __name__ == "__main__":
    sys.exit(main())
