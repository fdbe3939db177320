"""Streamable HTTP for ``preflight serve --http``: loopback by default, a static bearer token, and the
SDK's DNS-rebinding protection kept on.

Why a small ASGI middleware and not the SDK's ``token_verifier`` + ``AuthSettings``: those are
constructor arguments of ``MCPServer`` (``create_server()`` builds it without them, and setting them
afterwards means writing private attributes), and ``AuthSettings`` insists on an OAuth issuer URL that
a static shared secret does not have. The middleware below does the one thing needed, on every path
(not only ``/mcp``): ``Authorization: Bearer <token>`` or ``401`` with the RFC 6750 challenge the
SDK's own ``RequireAuthMiddleware`` sends. The comparison is constant-time over SHA-256 digests, so
neither the token's content nor its length leaks through timing.

Why only the MCP path is guarded and every other path is a plain 404, token or not: MCP clients that
meet a 401 go looking for OAuth (``/.well-known/oauth-protected-resource``,
``/.well-known/oauth-authorization-server``, then ``/register`` for dynamic client registration). When
those answered 401 with ``WWW-Authenticate: Bearer``, Claude Code 2.1 reported "Dynamic Client
Registration rejected (HTTP 401)" and the MCP Inspector said OAuth needs a TTY, hiding the real
problem, a missing token. Now nothing outside ``/mcp`` looks like an auth server (404, no challenge,
a body saying this server takes a static bearer token), and the 401 on ``/mcp`` says which header to
send and where the token comes from. A 404 tells a caller nothing: the app serves no other path.

Why the Host allow-list is spelled out: the SDK turns rebinding protection on by itself only for a
loopback ``host`` and no settings; a token-protected non-loopback bind would otherwise run without it.
Loopback names keep a wildcard port because an SSH tunnel's local port (``ssh -L 9000:127.0.0.1:8765``)
is what the client puts in ``Host:``, not the server's port.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import string
from typing import TYPE_CHECKING

from mcp.server.transport_security import TransportSecuritySettings

from gpu_preflight.tools.common.errors import PreflightError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("gpu_preflight.http")

DEFAULT_TOKEN_ENV = "PREFLIGHT_HTTP_TOKEN"
MIN_TOKEN_CHARS = 16
LOOPBACK_NAMES = ("localhost",)
# What the SDK allows for a loopback bind when it picks the settings itself (any port: tunnels).
LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-._~+/=")  # RFC 6750 b64token


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback literals (127.0.0.0/8, ::1); any other name is not trusted."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_port(host: str, port: int | str) -> str:
    """``host:port`` as it appears in a ``Host:`` header (IPv6 literals in brackets)."""
    bare = host.strip("[]")
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"


def transport_security(host: str, port: int, extra_hosts: list[str] | None = None) -> TransportSecuritySettings:
    """Rebinding protection on, allowing the loopback names (any port) and the bound ``host:port``.

    A wildcard bind (0.0.0.0, ::) has no single name clients use; they must be named with
    ``extra_hosts`` (``--allow-host``), otherwise only loopback ``Host:`` values (tunnels) are accepted.
    """
    hosts = list(LOOPBACK_HOSTS)
    origins = list(LOOPBACK_ORIGINS)
    wildcard = host in ("0.0.0.0", "::", "[::]")
    names = [] if wildcard or is_loopback(host) else [host]
    names += list(extra_hosts or [])
    for name in names:
        has_port = name.count(":") == 1 or (name.startswith("[") and "]:" in name)
        entry = name if has_port else _host_port(name, port or "*")
        if entry not in hosts:
            hosts.append(entry)
            origins.append(f"http://{entry}")
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def read_token(env_name: str | None) -> tuple[str | None, str]:
    """The bearer token and the variable it came from; ``None`` when no token is configured.

    ``env_name`` is what ``--token-env`` named (``None``: the default variable, which may be unset).
    A variable named explicitly must be set. A token must be at least 16 characters of the RFC 6750
    token alphabet: shorter is guessable, and other characters do not survive every client's header code.
    """
    name = env_name or DEFAULT_TOKEN_ENV
    value = os.environ.get(name, "").strip()
    if not value:
        if env_name is not None:
            raise PreflightError("--token-env", env_name, "the name of a set, non-empty environment variable",
                                 hint=f"export {env_name}=$(openssl rand -hex 32)")
        return None, name
    if len(value) < MIN_TOKEN_CHARS or not set(value) <= _TOKEN_CHARS:
        raise PreflightError(f"${name}", f"a token of {len(value)} characters",
                             f">= {MIN_TOKEN_CHARS} characters of A-Z a-z 0-9 - . _ ~ + / =",
                             hint="e.g. openssl rand -hex 32")
    return value, name


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class BearerTokenMiddleware:
    """Refuse every HTTP request whose ``Authorization`` is not ``Bearer <the token>`` (401).

    Wraps the whole Starlette app, so it runs before the SDK's Host/Origin check: a foreign Host
    with the right token still gets the SDK's 421. Lifespan events pass through untouched. Paths
    other than ``mcp_path`` get a 404 without a challenge (see the module docstring: no OAuth lookalike).
    """

    def __init__(self, app: ASGIApp, token: str, *, token_var: str = DEFAULT_TOKEN_ENV, mcp_path: str = "/mcp") -> None:
        self.app = app
        self._expected = _digest(token.encode())
        self.token_var = token_var
        self.mcp_path = mcp_path.rstrip("/")

    def guarded(self, path: str) -> bool:
        """True for the MCP endpoint (and below it); everything else is answered 404 before the token check."""
        return path.rstrip("/") == self.mcp_path or path.startswith(self.mcp_path + "/")

    def how_to_send(self) -> str:
        """The sentence every refusal carries: which header, and where its token comes from."""
        return (f"send the header 'Authorization: Bearer <token>' with the token in ${self.token_var} on the "
                f"machine running `preflight serve --http` (Claude Code: claude mcp add --transport http preflight "
                f"URL --header \"Authorization: Bearer ${self.token_var}\"; Codex: bearer_token_env_var = "
                f"\"{self.token_var}\"). This server does not use OAuth.")

    def authorized(self, header: bytes | None) -> bool:
        """Constant-time check of one ``Authorization`` header value (scheme is case-insensitive)."""
        if header is None:
            return False
        scheme, _, presented = header.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(_digest(presented.strip()), self._expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and not self.guarded(str(scope.get("path", ""))):
            text = f"only {self.mcp_path} is served here; {self.how_to_send()}"
            await _json_response(send, 404, {"error": "not_found", "error_description": text})
            return
        header = next((v for k, v in scope.get("headers", []) if k.lower() == b"authorization"), None)
        if self.authorized(header):
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("?", 0)
        log.warning("refused %s %s from %s: %s bearer token", scope.get("method", "?"), scope.get("path", "?"),
                    client[0], "wrong" if header is not None else "no")
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        description = "Authentication required" if header is None else "Invalid bearer token"
        # RFC 6750 wants the challenge on a 401; it names no resource_metadata, so no OAuth is advertised.
        challenge = f'Bearer error="invalid_token", error_description="{description}"'
        await _json_response(send, 401, {"error": "invalid_token", "error_description": f"{description}: "
                                         f"{self.how_to_send()}"}, [(b"www-authenticate", challenge.encode())])


async def _json_response(send: Send, status: int, payload: dict[str, str],
                         headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(payload).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *(headers or [])],
    })
    await send({"type": "http.response.body", "body": body})
