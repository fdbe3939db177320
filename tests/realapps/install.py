"""Install the pinned agent TUIs from npm into a cache folder, and find their executables.

The cache is ``$PREFLIGHT_AGENT_CACHE`` (default ``~/.cache/gpu-preflight/agent-tuis``), an npm prefix
whose ``node_modules`` holds the three packages (about 0.9 GB). Nothing else is ever downloaded: tests
call ``ensure_installed(app)`` (which runs ``npm install`` for a missing app, once per process; set
``PREFLIGHT_AGENT_INSTALL=0`` to forbid that) and skip with ``why_missing(app)`` when it returns None.

Executables (found by inspecting the installed ``node_modules``):

* Claude Code: the native binary of its platform package, ``@anthropic-ai/claude-code-linux-x64/claude``
  (the main package's ``bin/claude.exe`` is a copy its postinstall makes, which npm may not run).
* Codex: the native musl binary ``@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex``
  (``bin/codex.js`` only execs it); ``codex-path/`` next to ``bin/`` holds the ``rg`` it wants on PATH.
* Gemini CLI: ``@google/gemini-cli/bundle/gemini.js``, run by ``node`` (>= 20).

Run ``python -m tests.realapps.install`` or ``python tests/realapps/install.py`` to install all three (CI).
This module imports nothing from the package so that it also runs as a plain script.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

CLAUDE_VERSION = "2.1.332"
CODEX_VERSION = "0.171.0"
GEMINI_VERSION = "0.61.0"
PACKAGES: dict[str, tuple[str, str]] = {
    "claude": ("@anthropic-ai/claude-code", CLAUDE_VERSION),
    "codex": ("@openai/codex", CODEX_VERSION),
    "gemini": ("@google/gemini-cli", GEMINI_VERSION),
}
APPS = tuple(PACKAGES)
NPM_TIMEOUT_S = 900.0
_failed: dict[str, str] = {}  # app -> why the install failed, so one run tries npm once per app


def cache_dir() -> Path:
    return Path(os.environ.get("PREFLIGHT_AGENT_CACHE") or Path.home() / ".cache/gpu-preflight/agent-tuis")


def _arch() -> tuple[str, str]:
    """(npm arch suffix, rust target arch), e.g. ("x64", "x86_64")."""
    machine = platform.machine().lower()
    return ("arm64", "aarch64") if machine in ("aarch64", "arm64") else ("x64", "x86_64")


def _musl() -> bool:
    return any(Path("/lib").glob("ld-musl-*"))


def binary_path(app: str, root: Path | None = None) -> Path:
    """Where ``app``'s executable lives once installed (whether or not it is there)."""
    modules = (root or cache_dir()) / "node_modules"
    npm_arch, rust_arch = _arch()
    if app == "claude":
        return modules / "@anthropic-ai" / f"claude-code-linux-{npm_arch}{'-musl' if _musl() else ''}" / "claude"
    if app == "codex":
        vendor = modules / "@openai" / f"codex-linux-{npm_arch}" / "vendor"
        return vendor / f"{rust_arch}-unknown-linux-musl" / "bin" / "codex"
    if app == "gemini":
        return modules / "@google" / "gemini-cli" / "bundle" / "gemini.js"
    raise ValueError(f"unknown app {app!r} (one of {', '.join(APPS)})")


def installed_version(app: str, root: Path | None = None) -> str | None:
    package, _ = PACKAGES[app]
    meta = (root or cache_dir()) / "node_modules" / package / "package.json"
    try:
        return str(json.loads(meta.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def node_version() -> tuple[int, ...] | None:
    node = shutil.which("node")
    if not node:
        return None
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20, check=True).stdout
        return tuple(int(x) for x in out.strip().lstrip("v").split("."))
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _problem(app: str) -> str | None:
    """Why the installed ``app`` cannot run now (None: it can)."""
    if sys.platform != "linux":
        return f"{app}: the real-app tests run on Linux only"
    if app == "gemini" and (node_version() or (0,)) < (20,):
        return "gemini: needs node >= 20 on PATH"
    want = PACKAGES[app][1]
    have = installed_version(app)
    if have != want:
        return f"{app}: {PACKAGES[app][0]}@{want} is not installed in {cache_dir()} (found {have or 'nothing'})"
    exe = binary_path(app)
    if not exe.is_file() or (app != "gemini" and not os.access(exe, os.X_OK)):
        return f"{app}: executable missing at {exe} (platform package not installed?)"
    return None


def npm_install_pinned(root: Path, package_name: str, specs: list[str], ready: Callable[[], bool],
                       timeout_s: float = NPM_TIMEOUT_S) -> str | None:
    """``npm install`` exact ``specs`` into ``root`` under a lock (parallel test workers install once).

    ``ready`` is asked again inside the lock: another worker may have finished meanwhile. Returns an
    error line (npm's first few error lines, its advice dropped) or None.
    """
    npm = shutil.which("npm")
    if not npm:
        return "npm not found on PATH"
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "package.json").exists():
        (root / "package.json").write_text(json.dumps({"name": package_name, "private": True}) + "\n")
    cmd = [npm, "install", "--prefix", str(root), "--no-audit", "--no-fund", "--loglevel=error",
           "--save-exact", *specs]
    with open(root / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready():
            return None
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"npm install {' '.join(specs)} failed: {exc}"
    if done.returncode != 0:
        noise = ("If you are behind a proxy", "A complete log", "npm error\n")
        lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines(keepends=True)
                 if ln.strip() and ln.strip() != "npm error" and not any(n in ln for n in noise)]
        return f"npm install {' '.join(specs)} failed (rc {done.returncode}): {' | '.join(lines[:3])}"
    return None


def _npm_install(apps: tuple[str, ...]) -> str | None:
    """``npm install`` the pinned agent packages into the cache; returns an error text or None."""
    specs = [f"{PACKAGES[a][0]}@{PACKAGES[a][1]}" for a in apps]
    return npm_install_pinned(cache_dir(), "gpu-preflight-agent-tuis", specs,
                              lambda: all(_problem(a) is None for a in apps))


def ensure_installed(app: str) -> Path | None:
    """The executable of ``app`` at its pinned version, installing it with npm if needed; None if not."""
    if app not in PACKAGES:
        raise ValueError(f"unknown app {app!r} (one of {', '.join(APPS)})")
    if _problem(app) is None:
        return binary_path(app)
    if app in _failed:
        return None
    if os.environ.get("PREFLIGHT_AGENT_INSTALL") == "0":
        _failed[app] = f"{_problem(app)} (PREFLIGHT_AGENT_INSTALL=0: run .ci/install-agents)"
        return None
    error = _problem(app) if app == "gemini" and (node_version() or (0,)) < (20,) else _npm_install((app,))
    problem = error or _problem(app)
    if problem:
        _failed[app] = problem
        return None
    return binary_path(app)


def why_missing(app: str) -> str:
    """Why ``ensure_installed(app)`` returned None (a line for ``pytest.skip``); empty if it is there."""
    return _failed.get(app) or _problem(app) or ""


def main(argv: list[str] | None = None) -> int:
    """Install all (or the named) apps; prints one line each. Exit 0 when all are there, 1 otherwise."""
    apps = tuple(argv or APPS)
    missing = tuple(a for a in apps if _problem(a) is not None)
    if missing:
        error = _npm_install(missing)
        if error:
            print(f"warning: {error}", file=sys.stderr)
    status = 0
    for app in apps:
        problem = _problem(app)
        print(problem or f"{app}: {PACKAGES[app][0]}@{PACKAGES[app][1]} {binary_path(app)}")
        status |= bool(problem)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
