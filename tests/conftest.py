"""Shared fixtures: every test gets its own state directory, and anyio runs on asyncio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers_tmux import TmuxTestServer
from mcp import Client

from gpu_preflight.server.app import create_server

pytest_plugins = ["realapps.fixtures", "sshd"]  # the real agent TUIs: tmux_socket, harness; a real sshd


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path / "state"
    monkeypatch.setenv("PREFLIGHT_STATE_DIR", str(state))
    yield state


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# "legacy" is the initialize handshake Claude Code and Codex use over stdio; "auto" is the 2026 protocol.
@pytest.fixture(params=["auto", "legacy"])
async def mcp_client(request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    """A real MCP client session, in process, on a fresh server (never named ``server``: libtmux owns that)."""
    async with Client(create_server(), mode=request.param) as client:
        yield client


@pytest.fixture(scope="module")
def tmux_srv() -> Iterator[TmuxTestServer]:
    """A private tmux server (unique -L socket) for one test module, killed at the end."""
    srv = TmuxTestServer()
    try:
        yield srv
    finally:
        srv.kill()
