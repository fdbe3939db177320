"""Which pane a dispatch goes to: validate the caller's target, then pin it to an immutable ``%id``.

Why pin: ``session:window.pane`` is re-resolved by tmux on every call, and a session or window
name alone means "the active pane", which moves when someone clicks. Every call after resolution
uses the ``%pane_id`` tmux gives back, so all the keys of one dispatch land in one pane.

Two grammars: :func:`validate_target` (``dispatch``: a prompt typed into an agent must go to the pane
the caller named, not whichever one is active) and :func:`validate_any_target` (``launch``,
``heartbeat``, ``wait_idle``: every form tmux takes, ``probe:cap``, ``probe``, ``@2``, because it is
resolved once to a ``%id`` that the run record then keeps).
"""

from __future__ import annotations

import re

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux, TmuxError

_PANE_ID = re.compile(r"^%\d+$")
PANE_ID_RE = _PANE_ID
_SPEC = re.compile(r"^(?P<session>[^\s:.%-][^\s:]*):(?P<window>[^\s:]+)\.(?P<pane>\d+)$")
TARGET_ALLOWED = "a pane id like '%3' or 'session:window.pane' like 'train:0.1'"
# No whitespace or control characters, no leading '-' (tmux would read an option), ':' at most once.
_ANY = re.compile(r"^(?:[%@$]\d+|[^\s:%@$-][^\s:]*(?::[^\s:]*)?)$")
ANY_TARGET_ALLOWED = ("a tmux target: '%3', 'session:window.pane', 'session:window' (index or name, e.g. "
                      "'probe:cap'), 'session', or '@window_id'")
MAX_TARGET_CHARS = 200


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


def is_pane_spec(target: str) -> bool:
    """True when ``target`` names one pane by itself (``%id`` or ``session:window.pane``)."""
    return bool(_PANE_ID.match(target) or _SPEC.match(target))


def validate_any_target(target: str) -> str:
    """Return ``target`` stripped if tmux can resolve it to a pane; raise :class:`PreflightError` if not."""
    if not isinstance(target, str):
        raise PreflightError("target", target, ANY_TARGET_ALLOWED)
    text = target.strip()
    if len(text) <= MAX_TARGET_CHARS and (is_pane_spec(text) or (text.isprintable() and _ANY.match(text))):
        return text
    raise PreflightError("target", target, ANY_TARGET_ALLOWED)


def make_tmux(socket_name: str | None = None, socket_path: str | None = None, timeout_s: float | None = None,
              host: str | None = None, host_field: str = "host") -> Tmux:
    """A :class:`Tmux` for ``-L socket_name`` or ``-S socket_path`` (validated there), on the registered
    ``host`` when one is named (refused, naming the field, when it is not registered)."""
    box = None
    if host is not None:
        from gpu_preflight.tools.hosts.registry import get_host

        box = get_host(host, host_field)
    if timeout_s is None:
        return Tmux(socket_name=socket_name, socket_path=socket_path, host=box)
    return Tmux(socket_name=socket_name, socket_path=socket_path, timeout_s=timeout_s, host=box)


def resolve_pane_id(tmux: Tmux, target: str) -> str | None:
    """The ``%id`` of ``target`` (any form tmux takes) on this server, or None when no such pane (or no
    server) exists. A window or session name resolves to its active pane at this moment."""
    target = validate_any_target(target)
    if not is_pane_spec(target):
        return _match_loose(tmux, target)
    try:
        pane_id = tmux.display(target, "#{pane_id}")
    except TmuxError:
        return None
    return pane_id if _PANE_ID.match(pane_id) else None


_LIST = "#{pane_id}\t#{session_name}\t#{session_id}\t#{window_index}\t#{window_name}\t#{window_id}\t" \
        "#{pane_index}\t#{pane_active}\t#{window_active}"


def _match_loose(tmux: Tmux, target: str) -> str | None:
    """A session / window name, index or id matched against ``list-panes -a`` by us, exactly.

    Why not ``display-message -t``: tmux 3.3a answers an unknown ``session:window`` with some other
    pane (the most recent one) and exit 0, so a typo would launch into the wrong pane. Names match
    exactly (no tmux prefix or glob matching); a window name two windows share is refused as ambiguous.
    """
    try:
        text = tmux.run("list-panes", "-a", "-F", _LIST)
    except TmuxError:
        return None
    rows = [line.split("\t") for line in text.splitlines() if line.count("\t") == 8]
    if target.startswith("@"):
        rows = [r for r in rows if r[5] == target]
        window, pane = "", None
    else:
        session, _, rest = target.partition(":")
        rows = [r for r in rows if session in (r[1], r[2])]
        window, pane = rest, None
        head, dot, tail = rest.rpartition(".")
        if dot and tail.isdigit():
            window, pane = head, tail
    if window:
        by_index = [r for r in rows if r[3] == window or r[5] == window]
        by_name = [r for r in rows if r[4] == window]
        rows = by_index or by_name
        if len({r[5] for r in rows}) > 1:
            return None  # the name is ambiguous
    elif not target.startswith("@"):
        rows = [r for r in rows if r[8] == "1"]
    rows = [r for r in rows if (r[6] == pane if pane is not None else r[7] == "1")]
    return rows[0][0] if len(rows) == 1 else None
