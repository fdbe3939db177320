"""Issue 14, the server's exposure: ``serve --read-only``, ``serve --allow-path`` and slow HTTP clients.

Real processes: ``preflight serve`` over stdio with an SDK client, and over HTTP on 127.0.0.1 with raw
sockets playing the slow client. Every wait is bounded; the servers are stopped by the helpers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from helpers_http import TOKEN, http_server
from helpers_spec import EXAMPLES, spec
from mcp import Client, StdioServerParameters

from gpu_preflight.server.app import create_server

PREFLIGHT = shutil.which("preflight")
pytestmark = pytest.mark.skipif(PREFLIGHT is None, reason="the preflight console script is not installed")
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "Authorization": f"Bearer {TOKEN}"}
OFFERS = Path(__file__).resolve().parents[1] / "tools" / "offers" / "data" / "offers_snapshot.json"


def _stdio(tmp_path: Path, *flags: str) -> StdioServerParameters:
    return StdioServerParameters(command=str(PREFLIGHT), args=["serve", *flags],
                                 env={**os.environ, "PREFLIGHT_STATE_DIR": str(tmp_path / "state")})


def test_read_only_keeps_exactly_the_tools_that_only_read_or_record_state() -> None:
    """Decided by annotations: the writers that type keys or run commands are the open-world ones."""
    from gpu_preflight.server.annotations import allowed_read_only

    tools = create_server()._tool_manager.list_tools()
    dropped = sorted(t.name for t in tools if not allowed_read_only(t.annotations))
    assert dropped == ["dispatch", "launch_run", "stop_run"]  # stop_run ends a job: destructive
    kept = {t.name for t in create_server(read_only=True)._tool_manager.list_tools()}
    assert kept == {t.name for t in tools} - set(dropped)


@pytest.mark.anyio
async def test_serve_read_only_over_stdio(tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with Client(_stdio(tmp_path, "--read-only"), mode="legacy") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "dispatch" not in names and "launch_run" not in names and "stop_run" not in names
            assert {"estimate_run", "checklist_start", "gate_check", "heartbeat"} <= names
            refused = await client.call_tool("dispatch", {"target": "%0", "text": "rm -rf ~"})
            assert refused.is_error is True


@pytest.mark.anyio
async def test_serve_allow_path_refuses_files_elsewhere(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    inside = allowed / "offers.json"
    inside.write_bytes(OFFERS.read_bytes())
    outside = tmp_path / "offers.json"
    outside.write_bytes(OFFERS.read_bytes())
    escape = allowed / "link.json"
    escape.symlink_to(outside)
    with anyio.fail_after(60):
        async with Client(_stdio(tmp_path, "--allow-path", str(allowed)), mode="legacy") as client:
            ok = await client.call_tool("plan_options", {"spec": spec(), "offers_file": str(inside)})
            assert ok.is_error is False, ok.content
            for path in (outside, escape, Path(allowed / ".." / "offers.json")):
                refused = await client.call_tool("plan_options", {"spec": spec(), "offers_file": str(path)})
                text = str(refused.content[0].text)  # type: ignore[union-attr]
                assert refused.is_error is True and "offers_file: got" in text and "allowed folder" in text, text
            # The spec's hf_config is a file argument too; the state directory stays allowed.
            config = tmp_path / "config.json"
            config.write_text(json.dumps({"model_type": "llama"}))
            bad = await client.call_tool("estimate_run", {"spec": spec(model={"hf_config": str(config)}),
                                                          "gpu": "RTX 4090"})
            assert bad.is_error is True and "hf_config" in str(bad.content[0].text)  # type: ignore[union-attr]


def test_allow_path_must_name_a_folder(tmp_path: Path) -> None:
    import subprocess

    out = subprocess.run([str(PREFLIGHT), "serve", "--allow-path", str(tmp_path / "nope")], capture_output=True,
                         text=True, timeout=30, check=False, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "--allow-path" in out.stderr and "an existing folder" in out.stderr


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(0.05)
    return sock


def _closed_by_server(sock: socket.socket) -> bytes | None:
    """What the server sent before closing, or ``None`` while the connection is still open."""
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return data
            data += chunk
    except (TimeoutError, BlockingIOError):
        return None
    except ConnectionResetError:
        return data


def _served(url: str) -> bool:
    response = httpx2.post(url, json=INIT, headers=HEADERS, timeout=5)
    return response.status_code == 200


def _wait_dropped(sock: socket.socket, deadline_s: float, tick: Any = None) -> tuple[bytes | None, float]:
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if tick is not None:
            tick()
        got = _closed_by_server(sock)
        if got is not None:
            return got, time.monotonic() - start
        time.sleep(0.1)
    return None, time.monotonic() - start


LIMITS = ("--header-timeout-s", "1", "--body-timeout-s", "1", "--max-connections-per-client", "4")


def test_slow_http_clients_are_dropped_while_others_are_served(tmp_path: Path) -> None:
    with http_server(tmp_path, extra=LIMITS) as srv:
        # Headers one byte at a time (slowloris): dropped after the header deadline, 408, though bytes keep coming.
        head = iter(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n" + "X-Pad: " + "a" * 200)
        slow = _connect(srv.port)

        def trickle() -> None:
            with contextlib.suppress(OSError):
                slow.send(next(head, "b").encode())

        assert _served(srv.url)
        got, waited = _wait_dropped(slow, 8.0, trickle)
        assert got is not None and got.startswith(b"HTTP/1.1 408"), got
        assert 0.8 <= waited <= 4.0, waited
        slow.close()

        # A body announced and never finished: dropped after the body deadline; others still served meanwhile.
        stuck = _connect(srv.port)
        stuck.sendall((f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                       "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"jsonrpc\"").encode())
        assert _served(srv.url)
        got, waited = _wait_dropped(stuck, 8.0)
        assert got is not None and b"408" in got.split(b"\r\n", 1)[0], got
        stuck.close()

        # Four idle connections from this client are the cap: the fifth is refused at once, and once they
        # are gone (closed here) requests are served again.
        idle = [_connect(srv.port) for _ in range(4)]
        extra = _connect(srv.port)
        got, waited = _wait_dropped(extra, 3.0)
        assert got is not None and got.startswith(b"HTTP/1.1 503") and waited < 0.9, (got, waited)
        for sock in (*idle, extra):
            sock.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not _served(srv.url):
            time.sleep(0.1)
        assert _served(srv.url)
        assert "dropped a slow client" in srv.stderr_path.read_text(errors="replace")


def test_examples_dir_is_readable_under_allow_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process reader honours the same setting (what serve sets), naming the argument."""
    from gpu_preflight.tools.common.errors import PreflightError
    from gpu_preflight.tools.common.files import ALLOW_PATHS_ENV, read_text_file

    monkeypatch.setenv(ALLOW_PATHS_ENV, str(EXAMPLES))
    assert read_text_file(EXAMPLES / "llama-3.2-1b-lora.toml", field="spec", kind="spec")
    with pytest.raises(PreflightError, match=r"^spec: got '/etc/hostname'"):
        read_text_file("/etc/hostname", field="spec", kind="spec")
