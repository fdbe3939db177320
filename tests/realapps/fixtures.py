"""pytest fixtures for the real agent TUIs (registered from ``tests/conftest.py``): one booted app per test
module and app, each against its own scripted model server, in a private tmux server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import libtmux
import pytest

from realapps.apps import RunningApp, start_app
from realapps.install import APPS, ensure_installed, why_missing
from realapps.model_server import ModelServer


@dataclass
class Harness:
    app: RunningApp
    server: ModelServer
    boot_s: float


@pytest.fixture(scope="module")
def tmux_socket() -> Iterator[str]:
    """A private tmux server's socket name (the server starts with the first app); killed at the end."""
    name = f"pfreal-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    server = libtmux.Server(socket_name=name)
    if server.is_alive():
        server.kill()
    Path(f"/tmp/tmux-{os.getuid()}/{name}").unlink(missing_ok=True)  # tmux 3.3a leaves the socket file


@pytest.fixture(scope="module", params=APPS)
def harness(request: pytest.FixtureRequest, tmux_socket: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Harness]:
    """One booted app per module and app, against its own model server."""
    name = str(request.param)
    if ensure_installed(name) is None:
        pytest.skip(why_missing(name))
    workdir = tmp_path_factory.mktemp(f"{name}-project")
    with ModelServer() as server:
        app = start_app(name, server, tmux_socket, workdir)
        try:
            yield Harness(app, server, app.boot_s)
        finally:
            app.stop()


