"""Start ``preflight serve --http`` as a real process on loopback for tests (bounded waits, always stopped)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

TOKEN = "test-token-0123456789abcdef"
STARTUP_S = 30.0


@dataclass(frozen=True)
class HttpServer:
    url: str
    port: int
    stderr_path: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gpu_preflight.server", "serve", *args]


@contextmanager
def http_server(tmp: Path, token: str = TOKEN, extra: tuple[str, ...] = ()) -> Iterator[HttpServer]:
    """``preflight serve --http`` with its own state dir and ``token`` in the env, on a free loopback port;
    ``extra`` are more ``serve`` flags."""
    env = {**os.environ, "PREFLIGHT_STATE_DIR": str(tmp / "state"), "PREFLIGHT_HTTP_TOKEN": token}
    for attempt in range(3):  # a free port can be taken between the probe and the bind: retry, bounded
        port = _free_port()
        stderr_path = tmp / f"serve-{attempt}.err"
        with stderr_path.open("wb") as err:
            proc = subprocess.Popen(serve_cmd("--http", "--port", str(port), *extra), env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline and proc.poll() is None:
            if "serving MCP" in stderr_path.read_text(errors="replace"):
                break
            time.sleep(0.05)
        if proc.poll() is None and "serving MCP" in stderr_path.read_text(errors="replace"):
            break
        proc.kill()
        proc.wait(timeout=10)
    else:
        pytest.fail(f"preflight serve --http did not start: {stderr_path.read_text(errors='replace')[-2000:]}")
    try:
        yield HttpServer(url=f"http://127.0.0.1:{port}/mcp", port=port, stderr_path=stderr_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
