"""The MCP Inspector CLI (npm ``@modelcontextprotocol/inspector``, pinned) as a test client of our server.

Installed into ``$PREFLIGHT_INSPECTOR_CACHE`` (default ``~/.cache/gpu-preflight/inspector``, an npm prefix
of about 110 MB) by ``ensure_installed()`` (once per process; ``PREFLIGHT_AGENT_INSTALL=0`` forbids it) or
by ``python -m tests.realclients.inspector`` (what ``.ci/install-agents`` runs). Tests skip with
``why_missing()`` when it cannot be had.

Node: 2.12.0 declares ``engines.node >= 22.19``; the machine has node 20.20, where npm installs it with
an engine warning and every CLI call the tests make runs (tools/list --strict, tools/call,
resources/list, resources/read, stdio and HTTP). So node >= 20 is required here, not 22.

``run(...)`` calls ``inspector --cli`` once: every call spawns a fresh client (about 1.1 s of node start
plus, over stdio, 0.9 s of ``preflight serve`` start), with HOME pointed at a temp folder because the
Inspector keeps a catalog and OAuth storage under ``~/.mcp-inspector``.

This module imports nothing from the package (only ``realapps.install``), so that CI runs it as
``python -m tests.realclients.inspector`` before the package matters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realapps.install import npm_install_pinned

try:  # under pytest (tests/ is on sys.path) or as ``python -m tests.realclients.inspector`` (CI)
    from realapps.install import node_version
except ImportError:
    from tests.realapps.install import node_version  # type: ignore[no-redef]

PACKAGE = "@modelcontextprotocol/inspector"
VERSION = "2.12.0"  # newest 2.x on the registry when pinned (npm view @modelcontextprotocol/inspector version)
NPM_TIMEOUT_S = 600.0
CALL_TIMEOUT_S = 60.0
_failed: list[str] = []  # why the install failed, so one test run tries npm once


def cache_dir() -> Path:
    return Path(os.environ.get("PREFLIGHT_INSPECTOR_CACHE") or Path.home() / ".cache/gpu-preflight/inspector")


def entry_point(root: Path | None = None) -> Path:
    """The CLI's launcher script (``bin.mcp-inspector`` of the package), run by ``node``."""
    return (root or cache_dir()) / "node_modules" / PACKAGE / "clients" / "launcher" / "build" / "index.js"


def installed_version(root: Path | None = None) -> str | None:
    try:
        meta = (root or cache_dir()) / "node_modules" / PACKAGE / "package.json"
        return str(json.loads(meta.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _node_major() -> int | None:
    version = node_version()
    return version[0] if version else None


def _problem() -> str | None:
    """Why the Inspector cannot run now (None: it can)."""
    major = _node_major()
    if major is None:
        return "inspector: node not found on PATH"
    if major < 20:
        return f"inspector: needs node >= 20 on PATH (found {major})"
    have = installed_version()
    if have != VERSION:
        return f"inspector: {PACKAGE}@{VERSION} is not installed in {cache_dir()} (found {have or 'nothing'})"
    if not entry_point().is_file():
        return f"inspector: launcher missing at {entry_point()}"
    return None


def install() -> str | None:
    """``npm install`` the pinned package into the cache (under a lock); an error line or None."""
    return npm_install_pinned(cache_dir(), "gpu-preflight-inspector", [f"{PACKAGE}@{VERSION}"],
                              lambda: _problem() is None, NPM_TIMEOUT_S)


def ensure_installed() -> Path | None:
    """The launcher script at the pinned version, installing it if needed; None if it can't be had."""
    if _problem() is None:
        return entry_point()
    if _failed:
        return None
    if os.environ.get("PREFLIGHT_AGENT_INSTALL") == "0" or (_node_major() or 0) < 20:
        _failed.append(f"{_problem()} (PREFLIGHT_AGENT_INSTALL=0 or no usable node: run .ci/install-agents)")
        return None
    error = install() or _problem()
    if error:
        _failed.append(error)
        return None
    return entry_point()


def why_missing() -> str:
    return (_failed[0] if _failed else "") or _problem() or ""


@dataclass(frozen=True)
class Answer:
    """One Inspector CLI call: exit code, stdout parsed as JSON (None if it is not JSON), raw streams."""

    rc: int
    value: Any
    stdout: str
    stderr: str


def run(target: Sequence[str], *args: str, env: dict[str, str] | None = None,
        timeout_s: float = CALL_TIMEOUT_S) -> Answer:
    """``inspector --cli [args] [target]``; ``target`` is the stdio command, or empty with ``--server-url``.

    ``env`` is passed to the server over stdio with ``-e KEY=VALUE`` (the Inspector starts it with only
    those and its own defaults); the Inspector itself runs with a temp HOME and no standard input.
    """
    node = shutil.which("node") or "node"
    server_env = [x for key, value in (env or {}).items() for x in ("-e", f"{key}={value}")]
    with tempfile.TemporaryDirectory(prefix="pf-inspector-home-") as home:
        child_env = {"HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                     "NO_UPDATE_NOTIFIER": "1", "NODE_NO_WARNINGS": "1"}
        done = subprocess.run([node, str(entry_point()), "--cli", *args, *server_env, *target],
                              capture_output=True, text=True, timeout=timeout_s, env=child_env,
                              stdin=subprocess.DEVNULL, check=False)
    try:
        value = json.loads(done.stdout)
    except ValueError:
        value = None
    return Answer(done.returncode, value, done.stdout, done.stderr)


def main() -> int:
    """Install the pinned Inspector (CI); one line; exit 0 when it is there, 1 otherwise."""
    problem = _problem() and (install() or _problem())
    print(f"warning: {problem}" if problem else f"inspector: {PACKAGE}@{VERSION} {entry_point()}",
          file=sys.stderr if problem else sys.stdout)
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
