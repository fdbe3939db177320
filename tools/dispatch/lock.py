"""One dispatch at a time per pane, across threads and processes.

Why a file lock: the MCP server, a CLI call and a bench may all dispatch to the same pane; two
interleaved sends would mix their keystrokes and each would see the other's text in the input
line. ``flock`` on a per-pane file in the state directory serialises them and is released by the
kernel if a holder dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from gpu_preflight.tools.common.state import state_dir


class PaneBusy(RuntimeError):
    """Another dispatch held the pane's lock for longer than the caller would wait."""


def _lock_path(server_key: str, pane_id: str) -> str:
    digest = hashlib.sha256(f"{server_key}\0{pane_id}".encode()).hexdigest()[:16]
    folder = state_dir() / "locks"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return str(folder / f"pane-{digest}.lock")


@contextmanager
def pane_lock(server_key: str, pane_id: str, timeout_s: float, poll_s: float = 0.01) -> Iterator[float]:
    """Hold the pane's lock; yields the seconds spent waiting. Raises :class:`PaneBusy` on timeout."""
    fd = os.open(_lock_path(server_key, pane_id), os.O_RDWR | os.O_CREAT, 0o600)
    started = time.monotonic()
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started >= timeout_s:
                    raise PaneBusy(f"another dispatch to {pane_id} held the pane for over {timeout_s:g} s") from None
                time.sleep(poll_s)
        yield time.monotonic() - started
    finally:
        os.close(fd)  # closing the descriptor releases the lock
