"""``preflight serve``: run the MCP server, over stdio (default) or streamable HTTP (``--http``).

Why stdio stays the default: Claude Code and Codex spawn stdio servers themselves, with nothing to
bind and nobody else able to call in. ``--http`` is for an agent on another machine reaching this one
through an SSH tunnel (``ssh -L 8765:127.0.0.1:8765 box``): it binds to loopback unless told
otherwise, refuses a non-loopback bind without a bearer token, and keeps the SDK's DNS-rebinding
protection on (see :mod:`gpu_preflight.server.http_auth`), and drops slow clients (header and body
deadlines, a per-client connection cap: :mod:`gpu_preflight.server.http_limits`). ``--read-only`` leaves
out the tools that run commands or type keys; ``--allow-path`` confines the files callers may name.
Everything is logged to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.limits import quantity

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MCP_PATH = "/mcp"

log = logging.getLogger("gpu_preflight.http")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the MCP server (stdio; --http for streamable HTTP)",
        description="Run the MCP server over stdio, or over streamable HTTP with --http (loopback by default; "
                    "a non-loopback --host needs a bearer token in $PREFLIGHT_HTTP_TOKEN or --token-env).")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--http", action="store_true", help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    p.add_argument("--host", default=None, help=f"address to bind with --http (default {DEFAULT_HOST})")
    p.add_argument("--port", type=quantity(0, 65_535, "port", integer=True, lo_open=False),
                   default=None, help=f"port to bind with --http (default {DEFAULT_PORT}; 0: any)")
    p.add_argument("--token-env", default=None, metavar="VAR",
                   help="environment variable holding the bearer token every request must carry "
                        "(default PREFLIGHT_HTTP_TOKEN, used when set)")
    p.add_argument("--allow-host", action="append", default=None, metavar="NAME",
                   help="extra Host header value clients use (repeatable), e.g. the box's name for a 0.0.0.0 bind")
    p.add_argument("--header-timeout-s", type=quantity(0.1, 3600, "s"), default=None,
                   help="with --http: drop a request whose headers are not complete in this time (default 10)")
    p.add_argument("--body-timeout-s", type=quantity(0.1, 3600, "s"), default=None,
                   help="with --http: drop a request whose body is not complete in this time (default 30)")
    p.add_argument("--max-connections-per-client", type=quantity(1, 10_000, "connections", integer=True, lo_open=False),
                   default=None, help="with --http: open connections one client address may hold (default 32)")
    p.add_argument("--read-only", action="store_true",
                   help="do not register tools that run commands or type keys (dispatch, launch_run); "
                        "estimates, checklists and the gate stay")
    p.add_argument("--allow-path", action="append", default=None, metavar="DIR",
                   help="read caller-named files (specs, hf_config, offers, evidence) only under DIR "
                        "(repeatable; the state directory is always allowed)")
    p.set_defaults(func=run)


def apply_allow_paths(dirs: list[str] | None) -> None:
    """Set the reader's folder allow-list (:mod:`gpu_preflight.tools.common.files`) for this process.

    Through the environment: the reader checks it on every call, in every worker thread, and a
    server re-executed by a supervisor keeps it.
    """
    import os

    from gpu_preflight.tools.common.files import ALLOW_PATHS_ENV

    if not dirs:
        return
    roots = []
    for entry in dirs:
        real = os.path.realpath(os.path.expanduser(entry))
        if not entry.strip() or not os.path.isdir(real) or os.pathsep in real:
            raise PreflightError("--allow-path", entry, "an existing folder")
        roots.append(real)
    os.environ[ALLOW_PATHS_ENV] = os.pathsep.join(roots)


def run(args: argparse.Namespace) -> int:
    # Client logging is deprecated in the 2026 protocol; hosts capture stderr, so log there.
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    apply_allow_paths(args.allow_path)
    if not args.http:
        for flag, value in (("--host", args.host), ("--port", args.port), ("--token-env", args.token_env),
                            ("--allow-host", args.allow_host), ("--header-timeout-s", args.header_timeout_s),
                            ("--body-timeout-s", args.body_timeout_s),
                            ("--max-connections-per-client", args.max_connections_per_client)):
            if value is not None:
                raise PreflightError(flag, value, "only with --http (stdio needs no address)")
        return run_stdio(read_only=args.read_only)
    return run_http(args)


TTY_HELP = (
    "preflight serve: waiting for an MCP client on stdin/stdout; this is not an interactive prompt "
    "(Ctrl-C quits). An agent starts this command itself once it is registered:\n"
    "  Claude Code: claude mcp add preflight -- preflight serve\n"
    "  Codex (~/.codex/config.toml): [mcp_servers.preflight] with command = \"preflight\", args = [\"serve\"]\n"
    "  Try it by hand: npx @modelcontextprotocol/inspector preflight serve\n")


def run_stdio(*, read_only: bool) -> int:
    """Serve MCP over stdio until the client closes stdin or a SIGINT/SIGTERM arrives."""
    from gpu_preflight.server.app import create_server

    if sys.stdin.isatty():  # a person typed `preflight serve`: say why nothing happens, and what to do
        sys.stderr.write(TTY_HELP)
        sys.stderr.flush()
    exit_on_signals()
    create_server(read_only=read_only).run("stdio")
    return 0


def exit_on_signals() -> None:
    """SIGINT and SIGTERM end the stdio server at once: exit 130 and 0, no traceback.

    Why not a graceful cancel: the SDK reads stdin in a worker thread, and a cancelled task waits for
    that thread, so SIGINT did nothing until the client closed stdin (Claude Code logged "SIGINT failed,
    sending SIGTERM" on every exit). Exiting at once loses nothing a client could still use: each state
    write is one SQLite transaction (an interrupted one rolls back), a started job runs on in its own
    tmux session, and the client that sent the signal is not reading replies any more. Installed before
    the event loop starts, so asyncio leaves SIGINT to this handler.
    """
    import os
    import signal

    def stop(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        log.info("%s: stopping the stdio server", name)
        try:
            sys.stderr.write(f"preflight serve: {name}, stopped\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(130 if signum == signal.SIGINT else 0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def run_http(args: argparse.Namespace) -> int:
    """Check the bind and the token before importing the server, then run uvicorn until a signal."""
    from gpu_preflight.server.http_auth import is_loopback, read_token

    host: str = args.host or DEFAULT_HOST
    port: int = DEFAULT_PORT if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise PreflightError("--port", port, "0..65535 (0: any free port)")
    token, token_var = read_token(args.token_env)
    if token is None and not is_loopback(host):
        raise PreflightError(
            "--host", host, "a loopback address (127.0.0.1, ::1, localhost) unless a bearer token is set",
            hint=f"export {token_var}=$(openssl rand -hex 32), or keep 127.0.0.1 and tunnel with ssh -L")
    if token is None:
        log.warning("no bearer token (%s unset): any local process can call the tools", token_var)
    app = build_app(host, port, token, args.allow_host, read_only=args.read_only, token_var=token_var)
    from gpu_preflight.server.http_limits import SlowClientLimits

    defaults = SlowClientLimits()
    limits = SlowClientLimits(
        header_timeout_s=args.header_timeout_s or defaults.header_timeout_s,
        body_timeout_s=args.body_timeout_s or defaults.body_timeout_s,
        max_per_client=args.max_connections_per_client or defaults.max_per_client)
    return _serve(app, host, port, token_var if token else None, args.log_level, limits)


def build_app(host: str, port: int, token: str | None, allow_hosts: list[str] | None = None, *,
              read_only: bool = False, token_var: str = "PREFLIGHT_HTTP_TOKEN") -> Any:
    """The ASGI app: the SDK's streamable HTTP app with explicit rebinding settings, behind the token check
    and the slow-client limits (:class:`~gpu_preflight.server.http_limits.SlowClientLimits`)."""
    from gpu_preflight.server.app import create_server
    from gpu_preflight.server.http_auth import BearerTokenMiddleware, transport_security

    mcp = create_server(read_only=read_only)
    app: Any = mcp.streamable_http_app(
        streamable_http_path=MCP_PATH, transport_security=transport_security(host, port, allow_hosts), host=host)
    return BearerTokenMiddleware(app, token, token_var=token_var, mcp_path=MCP_PATH) if token else app


def _serve(app: Any, host: str, port: int, token_var: str | None, log_level: str, limits: Any) -> int:
    import uvicorn

    from gpu_preflight.server.http_limits import uvicorn_options

    class _Server(uvicorn.Server):
        """uvicorn, plus one line on stderr once the socket is bound, with the real port (``--port 0``)."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                bound = next((s.getsockname()[1] for srv in self.servers for s in srv.sockets), port)
                shown = f"[{host.strip('[]')}]" if ":" in host else host
                auth = f"bearer token required (${token_var})" if token_var else "no token (loopback only)"
                sys.stderr.write(f"preflight: serving MCP over streamable HTTP at http://{shown}:{bound}{MCP_PATH}; "
                                 f"{auth}\n")
                sys.stderr.flush()

    # log_config=None: uvicorn's own config sends access lines to stdout; ours sends everything to stderr.
    config = uvicorn.Config(app, host=host, port=port, log_config=None, log_level=log_level.lower(),
                            timeout_graceful_shutdown=3, server_header=False, **uvicorn_options(limits))
    server = _Server(config)
    server.run()
    return 0 if server.started else 1
