"""Make text safe to paste into someone's terminal.

Why each rule (all measured on tmux 3.3a, see the research notes):

* ``\\e[201~`` inside a bracketed paste closes the paste early, and whatever follows it is read as
  typed keys: ``"a\\e[201~\\rRUN"`` submits ``RUN``. The end (and start) sequences are therefore
  removed always, whatever the caller asked for.
* Other control characters reach the app raw: ``\\x03`` is SIGINT to a cooked shell, ESC starts
  key sequences. They are refused by default (``controls="reject"``), removed with
  ``controls="strip"``, or kept only when the caller explicitly says ``controls="allow"``.
* CR and CRLF become LF, so a line break inside pasted text is a newline, never a submit.
"""

from __future__ import annotations

import re
from typing import Literal

from gpu_preflight.tools.common.errors import PreflightError

ControlPolicy = Literal["reject", "strip", "allow"]
CONTROL_POLICIES: tuple[ControlPolicy, ...] = ("reject", "strip", "allow")

PASTE_MARKERS = re.compile(r"\x1b\[20[01]~")
# C0 controls except TAB and LF, plus DEL and the C1 range (8-bit CSI etc.).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
_CSI_SEQ = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def strip_paste_markers(text: str) -> str:
    """Remove every bracketed-paste start/end sequence, repeating until none is left.

    Repeating matters: removing one marker can join two halves into a new one
    (``"\\x1b[20\\x1b[201~1~"``).
    """
    previous = None
    while previous != text:
        previous = text
        text = PASTE_MARKERS.sub("", text)
    return text


def sanitize_text(text: str, controls: ControlPolicy = "reject", field: str = "text") -> str:
    """Return ``text`` normalised for pasting, or raise :class:`PreflightError` on a control char.

    Order: paste markers out, CRLF/CR to LF, then the control policy (``strip`` removes whole
    escape sequences like ``\\e[31m`` first, then any control left).
    """
    if not isinstance(text, str):
        raise PreflightError(field, text, "a string")
    if controls not in CONTROL_POLICIES:
        raise PreflightError("controls", controls, "one of " + ", ".join(CONTROL_POLICIES))
    text = strip_paste_markers(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if controls == "allow":
        return text
    if controls == "strip":
        text = _CSI_SEQ.sub("", text)
        return _CONTROL.sub("", text)
    found = _CONTROL.search(text)
    if found:
        raise PreflightError(
            field,
            text,
            "printable text, TAB and newline",
            f"control character \\x{ord(found.group()):02x} at offset {found.start()}; "
            "pass controls='strip' to remove control characters or controls='allow' to send them",
        )
    return text
