"""Shared fixtures: every test gets its own state directory, and anyio runs on asyncio."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_tmux import TmuxTestServer


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path / "state"
    monkeypatch.setenv("PREFLIGHT_STATE_DIR", str(state))
    yield state


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def tmux_srv() -> Iterator[TmuxTestServer]:
    """A private tmux server (unique -L socket) for one test module, killed at the end."""
    srv = TmuxTestServer()
    try:
        yield srv
    finally:
        srv.kill()
