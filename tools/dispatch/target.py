"""Which pane a dispatch goes to: validate the caller's target, then pin it to an immutable ``%id``.

Why pin: ``session:window.pane`` is re-resolved by tmux on every call, and a session or window
name alone means "the active pane", which moves when someone clicks. Every call after resolution
uses the ``%pane_id`` tmux gives back, so all the keys of one dispatch land in one pane.
"""

from __future__ import annotations

import re

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux, TmuxError

_PANE_ID = re.compile(r"^%\d+$")
_SPEC = re.compile(r"^(?P<session>[^\s:.%-][^\s:]*):(?P<window>[^\s:]+)\.(?P<pane>\d+)$")
TARGET_ALLOWED = "a pane id like '%3' or 'session:window.pane' like 'train:0.1'"


def validate_target(target: str) -> str:
    """Return ``target`` stripped if it names exactly one pane; raise :class:`PreflightError` if not.

    A bare session or window name is refused on purpose: tmux would resolve it to whatever pane is
    active at the moment of each call.
    """
    if not isinstance(target, str):
        raise PreflightError("target", target, TARGET_ALLOWED)
    text = target.strip()
    if _PANE_ID.match(text) or _SPEC.match(text):
        return text
    raise PreflightError("target", target, TARGET_ALLOWED)


def make_tmux(socket_name: str | None = None, socket_path: str | None = None, timeout_s: float | None = None) -> Tmux:
    """A :class:`Tmux` for ``-L socket_name`` or ``-S socket_path`` (validated there)."""
    if timeout_s is None:
        return Tmux(socket_name=socket_name, socket_path=socket_path)
    return Tmux(socket_name=socket_name, socket_path=socket_path, timeout_s=timeout_s)


def resolve_pane_id(tmux: Tmux, target: str) -> str | None:
    """The ``%id`` of ``target`` on this server, or None when no such pane (or no server) exists."""
    target = validate_target(target)
    try:
        pane_id = tmux.display(target, "#{pane_id}")
    except TmuxError:
        return None
    return pane_id if _PANE_ID.match(pane_id) else None
