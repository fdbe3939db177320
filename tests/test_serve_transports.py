"""``preflight serve`` as real processes: what an MCP client and a person at a terminal see.

- Over HTTP with a token, nothing outside ``/mcp`` looks like an OAuth server (Claude Code 2.1 started
  dynamic client registration when ``/register`` and ``/.well-known/oauth-*`` answered 401 with a Bearer
  challenge), and the 401 on ``/mcp`` says which header to send and where the token comes from.
- The stdio server exits promptly and cleanly on SIGINT and SIGTERM while a client is connected.
- Started by hand in a terminal (stdin a TTY), it says on stderr that it waits for an MCP client and
  how to register it with an agent.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from helpers_http import TOKEN, HttpServer, http_server, serve_cmd

OAUTH_PATHS = ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
               "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/register",
               "/authorize", "/token"]
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}}


@pytest.fixture(scope="module")
def http_preflight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    with http_server(tmp_path_factory.mktemp("http-oauth")) as srv:
        yield srv


def _base(srv: HttpServer) -> str:
    return srv.url.removesuffix("/mcp")


@pytest.mark.parametrize("path", OAUTH_PATHS)
def test_no_oauth_is_advertised_without_a_token(http_preflight: HttpServer, path: str) -> None:
    for method in ("GET", "POST"):
        response = httpx2.request(method, _base(http_preflight) + path, timeout=10,
                                  json={"client_name": "x"} if method == "POST" else None)
        assert response.status_code == 404, (method, path, response.status_code)
        assert "www-authenticate" not in response.headers
        body = response.json()
        assert "Authorization: Bearer <token>" in body["error_description"]
        assert "OAuth" in body["error_description"]


def test_401_on_mcp_says_which_header_and_where_the_token_is(http_preflight: HttpServer) -> None:
    response = httpx2.post(http_preflight.url, json=INIT, timeout=10,
                           headers={"Accept": "application/json, text/event-stream"})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and "resource_metadata" not in challenge
    text = response.json()["error_description"]
    assert "Authorization: Bearer <token>" in text and "$PREFLIGHT_HTTP_TOKEN" in text
    assert TOKEN not in response.text


def test_with_the_token_other_paths_are_still_plain_404(http_preflight: HttpServer) -> None:
    response = httpx2.post(_base(http_preflight) + "/register", json={}, timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404 and "www-authenticate" not in response.headers


@contextmanager
def _stdio_server(tmp: Path, stdin: int) -> Iterator[subprocess.Popen[bytes]]:
    """``preflight serve`` (stdio) with its own state dir; always killed and its pipes closed at the end."""
    env = {**os.environ, "PREFLIGHT_STATE_DIR": str(tmp / "state")}
    with subprocess.Popen(serve_cmd(), env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def _initialize(proc: subprocess.Popen[bytes]) -> None:
    """The client's handshake, so the server is serving (and idle) when the signal comes."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write((json.dumps(INIT) + "\n").encode())
    proc.stdin.flush()
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    assert ready, "no initialize answer within 60 s"
    answer = json.loads(proc.stdout.readline())
    assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"] == "preflight"
    proc.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
    proc.stdin.flush()


@pytest.mark.parametrize(("sig", "codes"), [(signal.SIGINT, (0, 130)), (signal.SIGTERM, (0,))])
def test_stdio_server_exits_promptly_on_a_signal(tmp_path: Path, sig: signal.Signals, codes: tuple[int, ...]) -> None:
    with _stdio_server(tmp_path, subprocess.PIPE) as proc:
        _initialize(proc)
        time.sleep(0.3)  # idle, stdin still open: the case that used to hang until the client closed it
        sent = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout=10)
        took_s = time.monotonic() - sent
        assert proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace")
    assert took_s < 2.0, f"took {took_s:.2f} s"
    assert code in codes, (code, err)
    assert "Traceback" not in err


def test_serve_in_a_terminal_says_it_waits_for_an_mcp_client(tmp_path: Path) -> None:
    main_fd, tty_fd = pty.openpty()
    with _stdio_server(tmp_path, tty_fd) as proc:
        os.close(tty_fd)
        assert proc.stderr is not None
        seen = b""
        deadline = time.monotonic() + 60
        while b"Try it by hand" not in seen and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stderr], [], [], 1)
            if ready:
                chunk = os.read(proc.stderr.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
        text = seen.decode(errors="replace")
        assert "waiting for an MCP client" in text
        assert "claude mcp add preflight -- preflight serve" in text
        assert "[mcp_servers.preflight]" in text
        assert proc.poll() is None  # it waits, it does not exit
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) in (0, 130)
    os.close(main_fd)


def test_serve_with_a_pipe_prints_nothing_before_the_client_speaks(tmp_path: Path) -> None:
    with _stdio_server(tmp_path, subprocess.PIPE) as proc:
        _initialize(proc)
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0  # the client closed stdin: a normal end
        assert "waiting for an MCP client" not in proc.stderr.read().decode(errors="replace")
