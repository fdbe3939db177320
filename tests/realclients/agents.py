"""Run a real agent CLI headless with our MCP server registered as the README says, against a
:class:`~realclients.tool_server.ToolCallServer` on loopback: Codex (``codex exec``) or Claude Code
(``claude -p``), pinned by ``realapps.install``.

Isolation: a temp HOME (and ``CODEX_HOME``), an environment built from nothing, the offline model
configs of ``realapps.apps``, and the preflight state folder the caller names (``PREFLIGHT_STATE_DIR``
through the server's own environment).

* Codex: the README's ``[mcp_servers.preflight]`` block (``command = "preflight"``, ``args = ["serve"]``,
  ``env_vars``) plus ``required = true``. Without it ``codex exec`` 0.171.0 may send the first model
  request before our server (about 0.9 s to start) answered ``tools/list``: the model is offered no
  ``mcp__preflight`` tools and every call fails with ``unsupported call: mcp__preflightchecklist_start``
  (1 of 8 runs here, on a loaded 2-core machine). With it Codex waits for the handshake.
* Claude Code: the README's ``claude mcp add preflight -- preflight serve`` (``-e`` for the state
  folder), then ``claude -p --allowedTools mcp__preflight``: in print mode nobody can answer a permission
  prompt, and without the allow rule every call comes back "Claude requested permissions to use
  mcp__preflight__checklist_start, but you haven't granted it yet."
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from realapps.apps import API_KEY, config_text
from realapps.install import binary_path, ensure_installed, why_missing

from .tool_server import ToolCallServer

AGENTS = ("codex", "claude")
RUN_TIMEOUT_S = 120.0
README_ENV_VARS = ["TMUX", "TMUX_TMPDIR", "CUDA_VISIBLE_DEVICES", "VAST_API_KEY"]


@dataclass(frozen=True)
class AgentRun:
    rc: int
    stdout: str
    stderr: str


def find_agent(agent: str) -> tuple[Path | None, str]:
    """The pinned agent binary (installed if need be) or None with the reason."""
    exe = ensure_installed(agent)
    return exe, "" if exe else why_missing(agent)


def codex_mcp_block(state_dir: Path) -> str:
    """The README's ``[mcp_servers.preflight]`` with the state folder and ``required = true``."""
    return ("\n[mcp_servers.preflight]\n"
            'command = "preflight"\n'
            'args = ["serve"]\n'
            f"env_vars = {json.dumps(README_ENV_VARS)}\n"
            "required = true\n"
            f"env = {{PREFLIGHT_STATE_DIR = {json.dumps(str(state_dir))}}}\n")


def _preflight_dir() -> str:
    """The folder of the ``preflight`` console script (the venv's bin, next to this interpreter)."""
    found = shutil.which("preflight") or str(Path(sys.executable).with_name("preflight"))
    return str(Path(found).parent)


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout_s: float) -> AgentRun:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL, check=False)
    return AgentRun(done.returncode, done.stdout, done.stderr)


def run_agent(agent: str, server: ToolCallServer, prompt: str, state_dir: Path,
              timeout_s: float = RUN_TIMEOUT_S) -> AgentRun:
    """One headless turn of ``agent`` in a fresh HOME against ``server``; returns when the agent exits."""
    exe = binary_path(agent)
    with tempfile.TemporaryDirectory(prefix=f"pf-{agent}-headless-") as tmp:
        home = Path(tmp)
        work = home / "work"
        for folder in (work, home / "tmp", home / f".{agent}"):
            folder.mkdir()
        env = {"HOME": str(home), "USER": os.environ.get("USER", "dev"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "TMPDIR": str(home / "tmp"), "NO_COLOR": "1",
               "PATH": os.pathsep.join([_preflight_dir(), "/usr/local/bin", "/usr/bin", "/bin"])}
        if agent == "codex":
            (home / ".codex/config.toml").write_text(config_text("codex-config.toml", work, server.port)
                                                     + codex_mcp_block(state_dir))
            env.update(CODEX_HOME=str(home / ".codex"), FAKE_API_KEY=API_KEY,
                       PATH=str(exe.parent.parent / "codex-path") + os.pathsep + env["PATH"])
            argv = [str(exe), "exec", "--skip-git-repo-check", "--color", "never", "-C", str(work), prompt]
            return _run(argv, env, work, timeout_s)
        (home / ".claude.json").write_text(config_text("claude.json", work, server.port))
        (home / ".claude/settings.json").write_text(config_text("claude-settings.json", work, server.port))
        env.update(ANTHROPIC_BASE_URL=server.base_url, ANTHROPIC_API_KEY=API_KEY, DISABLE_AUTOUPDATER="1",
                   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_TELEMETRY="1", DISABLE_ERROR_REPORTING="1")
        added = _run([str(exe), "mcp", "add", "preflight", "-e", f"PREFLIGHT_STATE_DIR={state_dir}", "--",
                      "preflight", "serve"], env, work, 60.0)
        if added.rc != 0:
            return added
        return _run([str(exe), "-p", prompt, "--output-format", "text", "--allowedTools", "mcp__preflight"],
                    env, work, timeout_s)
