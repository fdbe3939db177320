"""Where gpu-preflight keeps its per-user state (SQLite database, offer cache, job files).

Order of precedence, so tests and users can isolate state without touching ``$HOME``:

1. ``PREFLIGHT_STATE_DIR`` — used as is.
2. ``$XDG_STATE_HOME/gpu-preflight`` — the XDG base-directory rule for state that should
   survive restarts but is not configuration.
3. ``~/.local/state/gpu-preflight`` — the XDG default when the variable is unset or empty.

>>> import os
>>> os.environ["PREFLIGHT_STATE_DIR"] = "/tmp/pf-doctest"
>>> str(state_dir(create=False))
'/tmp/pf-doctest'
>>> del os.environ["PREFLIGHT_STATE_DIR"]
"""

from __future__ import annotations

import os
from pathlib import Path

APP_DIR_NAME = "gpu-preflight"
DB_FILE_NAME = "preflight.sqlite3"


def state_dir(*, create: bool = True) -> Path:
    """Return the state directory, creating it (mode 0700) unless ``create`` is false."""
    override = os.environ.get("PREFLIGHT_STATE_DIR", "").strip()
    if override:
        path = Path(override).expanduser()
    else:
        xdg = os.environ.get("XDG_STATE_HOME", "").strip()
        base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
        path = base / APP_DIR_NAME
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def db_path() -> Path:
    """The one SQLite file shared by every server process of this user."""
    return state_dir() / DB_FILE_NAME
