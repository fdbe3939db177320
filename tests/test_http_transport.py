"""``preflight serve --http`` as a real process on 127.0.0.1, reached by the SDK's HTTP client and by raw httpx2.

Why a subprocess and not the ASGI app in process: the promise is about what the command does (bind,
refuse, log to stderr, exit codes), and uvicorn plus the session manager's lifespan only run for real
there. Why httpx2: it is the HTTP client mcp 2.x itself depends on (plain ``httpx`` is not installed).
Everything binds to loopback, every wait is bounded, and the server is terminated at the end.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from helpers_http import TOKEN, HttpServer, http_server, serve_cmd
from helpers_spec import spec
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from gpu_preflight.server.http_auth import BearerTokenMiddleware, is_loopback, read_token, transport_security

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}}
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def http_preflight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One ``preflight serve --http`` for the module, with its own state dir and a token in the env."""
    with http_server(tmp_path_factory.mktemp("http")) as srv:
        yield srv


def _post(url: str, headers: dict[str, str]) -> httpx2.Response:
    return httpx2.post(url, json=INIT, headers={**JSON_HEADERS, **headers}, timeout=10)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_sdk_client_calls_estimate_run_with_the_token(http_preflight: HttpServer, mode: Any) -> None:
    with anyio.fail_after(60):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"},
                               timeout=httpx2.Timeout(30, read=60)) as http,
            Client(streamable_http_client(http_preflight.url, http_client=http), mode=mode) as client,
        ):
            assert client.server_info is not None and client.server_info.name == "preflight"
            names = {t.name for t in (await client.list_tools()).tools}
            assert "estimate_run" in names
            result = await client.call_tool("estimate_run", {"spec": spec(), "gpu": "RTX 4090", "dph_total_usd": 0.5})
            assert result.is_error is False
            sc = result.structured_content
            assert sc is not None
            assert sc["memory"]["gpu"]["verdict"] == "pass"
            assert sc["next_step"]
            bad = await client.call_tool("estimate_run", {"spec": spec(micro_batch=-1), "gpu": "RTX 4090"})
            assert bad.is_error is True


def test_request_without_token_is_refused_401(http_preflight: HttpServer) -> None:
    response = _post(http_preflight.url, {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert "no bearer token" in http_preflight.stderr_path.read_text()


@pytest.mark.parametrize("header", [
    f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer", f"Basic {TOKEN}", TOKEN, f"Bearer  {TOKEN.upper()}",
])
def test_wrong_token_is_refused_401(http_preflight: HttpServer, header: str) -> None:
    response = _post(http_preflight.url, {"Authorization": header})
    assert response.status_code == 401
    assert TOKEN not in response.text


def test_right_token_is_accepted_and_scheme_is_case_insensitive(http_preflight: HttpServer) -> None:
    for scheme in ("Bearer", "bearer"):
        response = _post(http_preflight.url, {"Authorization": f"{scheme} {TOKEN}"})
        assert response.status_code == 200, response.text


def test_foreign_host_header_is_refused_421(http_preflight: HttpServer) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert _post(http_preflight.url, {**auth, "Host": "evil.example"}).status_code == 421
    assert _post(http_preflight.url, {**auth, "Host": f"evil.example:{http_preflight.port}"}).status_code == 421
    # Without the token the answer is 401 first: the token check runs before the SDK's Host check.
    assert _post(http_preflight.url, {"Host": "evil.example"}).status_code == 401
    # A tunnel's local port differs from the server's: loopback names are allowed on any port.
    assert _post(http_preflight.url, {**auth, "Host": "localhost:9"}).status_code == 200


def test_foreign_origin_is_refused_403(http_preflight: HttpServer) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert _post(http_preflight.url, {**auth, "Origin": "http://evil.example"}).status_code == 403


def test_non_loopback_bind_without_token_exits_2_with_one_line(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is not on this machine: even a broken check could not expose anything.
    env = {k: v for k, v in os.environ.items() if k != "PREFLIGHT_HTTP_TOKEN"}
    done = subprocess.run(serve_cmd("--http", "--host", "192.0.2.1", "--port", "8765"), env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("preflight: error: --host: got '192.0.2.1'") and "PREFLIGHT_HTTP_TOKEN" in lines[0]


def test_stdio_flags_need_http(tmp_path: Path) -> None:
    done = subprocess.run(serve_cmd("--port", "8765"), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--port" in done.stderr


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("box.example", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_transport_security_allows_loopback_any_port_and_the_bound_host() -> None:
    local = transport_security("127.0.0.1", 8765)
    assert local.enable_dns_rebinding_protection is True
    assert local.allowed_hosts == ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    remote = transport_security("10.0.0.5", 8765, ["gpu-box", "gpu-box.lan:9000", "fe80::1"])
    assert remote.enable_dns_rebinding_protection is True
    assert {"10.0.0.5:8765", "gpu-box:8765", "gpu-box.lan:9000", "[fe80::1]:8765"} <= set(remote.allowed_hosts)
    assert "http://10.0.0.5:8765" in remote.allowed_origins
    wildcard = transport_security("0.0.0.0", 8765)
    assert not any(h.startswith("0.0.0.0") for h in wildcard.allowed_hosts)


def test_bearer_check_is_exact() -> None:
    check = BearerTokenMiddleware(app=None, token=TOKEN).authorized  # type: ignore[arg-type]
    assert check(f"Bearer {TOKEN}".encode()) and check(f"BEARER {TOKEN}".encode())
    for bad in (None, b"", b"Bearer", f"Bearer {TOKEN} x".encode(), f"Token {TOKEN}".encode()):
        assert not check(bad)


def test_read_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_preflight.tools.common.errors import PreflightError

    monkeypatch.delenv("PREFLIGHT_HTTP_TOKEN", raising=False)
    assert read_token(None) == (None, "PREFLIGHT_HTTP_TOKEN")
    with pytest.raises(PreflightError, match="--token-env"):
        read_token("PREFLIGHT_TEST_UNSET_VAR")
    monkeypatch.setenv("MY_TOKEN", "short")
    with pytest.raises(PreflightError, match="16 characters"):
        read_token("MY_TOKEN")
    monkeypatch.setenv("MY_TOKEN", TOKEN)
    assert read_token("MY_TOKEN") == (TOKEN, "MY_TOKEN")
