"""Make text safe to paste into someone's terminal.

Why each rule (all measured on tmux 3.3a, see the research notes):

* ``\\e[201~`` inside a bracketed paste closes the paste early, and whatever follows it is read as
  typed keys: ``"a\\e[201~\\rRUN"`` submits ``RUN``. The end (and start) sequences are refused with
  the reason (even with ``controls="allow"``), or removed when the caller asked ``controls="strip"``;
  silently removing them hid from the caller that the text was not what it meant to send.
* Other control characters reach the app raw: ``\\x03`` is SIGINT to a cooked shell, ESC starts
  key sequences. They are refused by default (``controls="reject"``), removed with
  ``controls="strip"``, or kept only when the caller explicitly says ``controls="allow"``.
* CR (alone or in CRLF) is a control character like the others. It used to become LF, which made
  ``"echo safe\\rtouch pwned"`` (one line on the caller's screen) run a second command in a shell
  dispatch, which is one command. Now it is refused (with ``controls="allow"`` too: a raw CR typed
  into a TUI is Enter, a submit the caller never asked for) or, with ``controls="strip"``, removed
  (so CRLF becomes LF). Multi-line text uses LF.
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


def _refuse(field: str, text: str, what: str, offset: int, why: str) -> PreflightError:
    return PreflightError(field, text, "printable text, TAB and newline (LF)", f"{what} at offset {offset}: {why}")


def sanitize_text(text: str, controls: ControlPolicy = "reject", field: str = "text") -> str:
    """Return ``text`` normalised for pasting, or raise :class:`PreflightError` naming what was refused.

    Order: paste markers and CR first (refused unless ``strip``, whatever the policy), then the
    control policy (``strip`` removes whole escape sequences like ``\\e[31m`` first, then any control left).
    """
    if not isinstance(text, str):
        raise PreflightError(field, text, "a string")
    if controls not in CONTROL_POLICIES:
        raise PreflightError("controls", controls, "one of " + ", ".join(CONTROL_POLICIES))
    if controls == "strip":
        text = strip_paste_markers(text).replace("\r\n", "\n").replace("\r", "")
        text = _CSI_SEQ.sub("", text)
        return _CONTROL.sub("", text)
    marker = PASTE_MARKERS.search(text)
    if marker:
        raise _refuse(field, text, "a bracketed-paste marker", marker.start(),
                      "it would end the paste early and turn what follows into typed keys; "
                      "pass controls='strip' to remove it")
    cr = text.find("\r")
    if cr >= 0:
        raise _refuse(field, text, "a carriage return (CR or CRLF)", cr,
                      "a dispatch is one command and CR would submit the text after it as another; "
                      "use LF for multi-line text or pass controls='strip'")
    if controls == "allow":
        return text
    found = _CONTROL.search(text)
    if found:
        raise _refuse(field, text, f"control character \\x{ord(found.group()):02x}", found.start(),
                      "pass controls='strip' to remove control characters or controls='allow' to send them")
    return text
