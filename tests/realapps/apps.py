"""Start the real Claude Code, Codex and Gemini CLI offline in a private tmux server.

Each app gets an isolated HOME (a temp folder) holding config files that mark onboarding done, the
API key approved and the working folder trusted, and it talks only to the local ``ModelServer``.
The process environment is built from nothing (``env -i``) so no developer setting leaks in.

Launch (``PORT`` is the model server's port, ``KEY`` a fake key):

* claude: ``<cache>/@anthropic-ai/claude-code-linux-x64/claude`` with ``ANTHROPIC_BASE_URL=http://127.0.0.1:PORT``,
  ``ANTHROPIC_API_KEY=KEY``, ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``, ``DISABLE_AUTOUPDATER=1``,
  ``DISABLE_TELEMETRY=1``, ``DISABLE_ERROR_REPORTING=1``; ``~/.claude.json`` and ``~/.claude/settings.json``.
* codex: the native ``codex`` with ``CODEX_HOME=~/.codex`` (``config.toml``: provider ``fake`` at
  ``http://127.0.0.1:PORT/v1``, ``wire_api = "responses"``, key in ``FAKE_API_KEY``), ``rg`` on PATH.
* gemini: ``node bundle/gemini.js`` with ``GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:PORT``,
  ``GEMINI_API_KEY=KEY``, ``GEMINI_CLI_NO_RELAUNCH=true``; ``~/.gemini/settings.json`` and
  ``~/.gemini/trustedFolders.json``.

First-run dialogs: none show with these configs (Claude's onboarding, API-key approval, folder trust
and auto-mode nudge are pre-answered in ``.claude.json``; Codex's folder is trusted and its full-access
notice hidden; Gemini's folder trust is off). Notices that do show and need no answer: Gemini's ``True
color (24-bit) support not detected`` line; Codex's ``⚠ 1 warning · f2 to view`` (``Model metadata for
`fake-model` not found``); Claude's tips and ``tmux focus-events off`` hint.

The config text comes from ``shared/fixtures/agent-tuis/offline-config/`` when that folder exists and
from the copies below otherwise (they are our own small files, kept identical).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import libtmux

from .install import binary_path, ensure_installed
from .model_server import ModelServer

API_KEY = "sk-ant-api03-" + "preflight-offline-test-key-0123456789abcdefghij"
SHARED_CONFIG = Path(__file__).resolve().parents[3] / "shared/fixtures/agent-tuis/offline-config"
RULE = "─" * 20
CLAUDE_PROMPT = "\u276f"  # heavy right-pointing angle, then U+00A0 in the composer
CODEX_PROMPT = "\u203a "  # single right-pointing angle quotation mark

CONFIGS: dict[str, str] = {
    "claude.json": """{
  "numStartups": 5, "hasCompletedOnboarding": true, "lastOnboardingVersion": "2.1.332",
  "lastReleaseNotesSeen": "2.1.332", "theme": "dark", "autoUpdates": false,
  "bypassPermissionsModeAccepted": true, "hasSeenTasksHint": true,
  "customApiKeyResponses": {"approved": ["@KEY20@"], "rejected": []},
  "projects": {"@WORK@": {"allowedTools": [], "hasTrustDialogAccepted": true,
    "hasCompletedProjectOnboarding": true, "projectOnboardingSeenCount": 5,
    "hasClaudeMdExternalIncludesApproved": false, "hasClaudeMdExternalIncludesWarningShown": true}},
  "hasSeenAutoDefaultNudge": true
}
""",
    "claude-settings.json": '{\n  "permissions": {"defaultMode": "default"},\n  "env": {}\n}\n',
    "codex-config.toml": """model = "fake-model"
model_provider = "fake"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[model_providers.fake]
name = "Fake"
base_url = "http://127.0.0.1:@PORT@/v1"
env_key = "FAKE_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[projects."@WORK@"]
trust_level = "trusted"

[notice]
hide_full_access_warning = true
""",
    "gemini-settings.json": """{
  "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": false}},
  "general": {"disableAutoUpdate": true, "disableUpdateNag": true},
  "privacy": {"usageStatisticsEnabled": false},
  "telemetry": {"enabled": false},
  "ui": {"hideTips": true, "hideBanner": true}
}
""",
    "gemini-trusted.json": '{"@WORK@": "TRUST_FOLDER"}\n',
}


def config_text(name: str, work: Path, port: int) -> str:
    shared = SHARED_CONFIG / name
    text = shared.read_text() if shared.is_file() else CONFIGS[name]
    return text.replace("@WORK@", str(work)).replace("@PORT@", str(port)).replace("@KEY20@", API_KEY[-20:])


def _claude_idle(lines: list[str]) -> bool:
    """The composer: a bare ``\u276f`` (then U+00A0, stripped) between two full-width rules, and the status
    line's ``? for shortcuts`` (drawn a moment after the composer at start-up, hidden while a draft is in)."""
    composer = any(lines[i] == CLAUDE_PROMPT and lines[i - 1].startswith(RULE) and lines[i + 1].startswith(RULE)
                   for i in range(1, len(lines) - 1))
    return composer and any("? for shortcuts" in line for line in lines[-3:])


def _claude_busy(lines: list[str]) -> bool:
    """``esc to interrupt`` in the status line (spinner ``✻ Verbing… (3s · ↓ 12 tokens)`` above the rules)."""
    return any("esc to interrupt" in line for line in lines[-3:])


def _codex_composer(lines: list[str]) -> int | None:
    found = [i for i, line in enumerate(lines) if line.startswith(CODEX_PROMPT + "Ask Codex to do anything")]
    return found[-1] if found else None


def _codex_idle(lines: list[str]) -> bool:
    """The placeholder composer, and the full footer (``fake-model default · <cwd>`` / ``← for agents · ?
    for shortcuts``): at start-up the composer shows with a bare ``? for shortcuts`` footer while Codex is
    still starting, and a prompt sent then sits under ``Waiting for startup · esc cancel``."""
    composer = _codex_composer(lines)
    return (composer is not None and any("for agents" in line for line in lines[composer:])
            and not _codex_busy(lines))


def _codex_busy(lines: list[str]) -> bool:
    """``• Working (2s • esc to interrupt)`` until the first token; while the reply streams Codex shows no
    marker, but a finished turn always ends with ``Worked for <1s • 14:03`` just above the composer. So:
    busy if the nearest non-blank line above the composer is not that line and a turn (a ``\u203a `` prompt or
    ``• `` reply line) is on screen."""
    if any("esc to interrupt" in line for line in lines):
        return True
    composer = _codex_composer(lines)
    if composer is None:
        return False
    above = [line.strip() for line in lines[:composer] if line.strip()]
    turns = any(line.startswith((CODEX_PROMPT, "• ")) for line in lines[:composer])
    return turns and bool(above) and not above[-1].startswith("Worked for")


def _gemini_idle(lines: list[str]) -> bool:
    return any("Type your message" in line for line in lines) and not _gemini_busy(lines)


def _gemini_busy(lines: list[str]) -> bool:
    """``⠙ Thinking... (esc to cancel, 0s)`` from the send to the end of the streamed reply."""
    return any("esc to cancel" in line for line in lines)


@dataclass(frozen=True)
class AppSpec:
    name: str  # "claude" | "codex" | "gemini"
    api: str  # the ModelServer api it speaks
    is_idle: Callable[[list[str]], bool]  # the empty composer is on screen and no turn is running
    is_busy: Callable[[list[str]], bool]  # a turn is running (before its first token or streaming)


SPECS: dict[str, AppSpec] = {
    "claude": AppSpec("claude", "anthropic", _claude_idle, _claude_busy),
    "codex": AppSpec("codex", "openai", _codex_idle, _codex_busy),
    "gemini": AppSpec("gemini", "gemini", _gemini_idle, _gemini_busy),
}


def _tmux(socket_name: str, *args: str) -> str:
    done = subprocess.run(["tmux", "-L", socket_name, "-f", "/dev/null", *args], capture_output=True, text=True,
                          timeout=10, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tmux {' '.join(args[:3])} failed: {done.stderr.strip()}")
    return done.stdout


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def running_from(folder: Path) -> list[int]:
    """Processes whose command line names ``folder`` (Codex copies itself under CODEX_HOME and runs an
    ``app-server --managed-daemon`` from there in its own session; it outlives the TUI if that dies first)."""
    needle, out = str(folder).encode(), []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError, ValueError):
            if needle in cmdline.read_bytes():
                out.append(int(cmdline.parent.name))
    return [pid for pid in out if pid != os.getpid()]


def descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@dataclass
class RunningApp:
    spec: AppSpec
    socket_name: str
    session: str
    pane_id: str
    pid: int
    home: Path
    workdir: Path
    boot_s: float = 0.0
    _home_tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def tmux(self, *args: str) -> str:
        return _tmux(self.socket_name, *args)

    def capture(self) -> list[str]:
        lines = [line.rstrip() for line in self.tmux("capture-pane", "-p", "-t", self.pane_id).split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def screen(self) -> str:
        return "\n".join(self.capture())

    def is_idle(self) -> bool:
        return self.spec.is_idle(self.capture())

    def is_busy(self) -> bool:
        return self.spec.is_busy(self.capture())

    def wait(self, check: Callable[[list[str]], bool], timeout_s: float, what: str) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            lines = self.capture()
            if check(lines):
                return lines
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.spec.name}: timed out after {timeout_s} s waiting for {what}; screen:\n"
                                     + "\n".join(lines))
            time.sleep(0.05)

    def wait_idle(self, timeout_s: float = 30.0) -> list[str]:
        return self.wait(self.spec.is_idle, timeout_s, "the idle composer")

    def stop_process(self) -> None:
        """End the app itself (SIGTERM to its process group), leaving the tmux pane and session alone."""
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and _alive(self.pid):
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the app's process group and every descendant (Codex's ``app-server`` child), then its session."""
        pids = sorted({*descendants(self.pid), *running_from(self.home / ".codex" / "packages")})
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(OSError):
                os.killpg(self.pid, sig)
            for pid in [self.pid, *pids]:
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and any(_alive(p) for p in [self.pid, *pids]):
                time.sleep(0.05)
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            self.tmux("kill-session", "-t", self.session)
        if self._home_tmp is not None:
            self._home_tmp.cleanup()
            self._home_tmp = None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _prepare(app: str, exe: Path, home: Path, work: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """The argv and environment for ``app``, after writing its config files under ``home``."""
    base = f"http://127.0.0.1:{port}"
    path = os.pathsep.join(p for p in (str(Path(_which("node")).parent), "/usr/local/bin", "/usr/bin", "/bin") if p)
    env = {"HOME": str(home), "USER": os.environ.get("USER", "dev"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "SHELL": "/bin/bash", "TMPDIR": str(home / "tmp"), "PATH": path, "NO_UPDATE_NOTIFIER": "1"}
    (home / "tmp").mkdir()
    if app == "claude":
        (home / ".claude").mkdir()
        (home / ".claude.json").write_text(config_text("claude.json", work, port))
        (home / ".claude/settings.json").write_text(config_text("claude-settings.json", work, port))
        env.update(ANTHROPIC_BASE_URL=base, ANTHROPIC_API_KEY=API_KEY, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
                   DISABLE_AUTOUPDATER="1", DISABLE_TELEMETRY="1", DISABLE_ERROR_REPORTING="1")
        return [str(exe)], env
    if app == "codex":
        (home / ".codex").mkdir()
        (home / ".codex/config.toml").write_text(config_text("codex-config.toml", work, port))
        env.update(CODEX_HOME=str(home / ".codex"), FAKE_API_KEY=API_KEY,
                   PATH=str(exe.parent.parent / "codex-path") + os.pathsep + env["PATH"])
        return [str(exe)], env
    (home / ".gemini").mkdir()
    (home / ".gemini/settings.json").write_text(config_text("gemini-settings.json", work, port))
    (home / ".gemini/trustedFolders.json").write_text(config_text("gemini-trusted.json", work, port))
    env.update(GOOGLE_GEMINI_BASE_URL=base, GEMINI_API_KEY=API_KEY, GEMINI_CLI_NO_RELAUNCH="true")
    return [_which("node"), str(exe)], env


def _which(name: str) -> str:
    import shutil

    return shutil.which(name) or name


def start_app(app: str, server: ModelServer, tmux_socket_name: str, workdir: Path, width: int = 120,
              height: int = 35, boot_timeout_s: float = 60.0) -> RunningApp:
    """Start ``app`` in a new session (one window, ``width``x``height``) of the private tmux server
    ``tmux_socket_name`` (started if need be) and wait for its idle composer. Raises if it can't."""
    spec = SPECS[app]
    exe = ensure_installed(app) or binary_path(app)
    workdir = workdir.resolve()
    home_tmp = tempfile.TemporaryDirectory(prefix=f"pf-{app}-home-")
    home = Path(home_tmp.name)
    argv, env = _prepare(app, exe, home, workdir, server.port)
    command = "exec env -i TERM=\"$TERM\" TMUX=\"$TMUX\" " + " ".join(
        shlex.quote(f"{k}={v}") for k, v in env.items()) + " " + shlex.join(argv)
    session, channel = f"{app}-{uuid.uuid4().hex[:6]}", f"go-{uuid.uuid4().hex[:8]}"
    # libtmux's object model builds the session; the app waits on a channel until the session has no
    # status line and is exactly width x height (keys and captures go through plain tmux calls below).
    tmux_server = libtmux.Server(socket_name=tmux_socket_name, config_file="/dev/null")
    made = tmux_server.new_session(session_name=session, start_directory=str(workdir), x=width, y=height,
                              window_command=f"tmux wait-for {channel}; {command}")
    pane = made.active_window.active_pane
    assert pane is not None and pane.pane_id is not None and pane.pane_pid is not None
    running = RunningApp(spec, tmux_socket_name, session, pane.pane_id, int(pane.pane_pid), home, workdir,
                         _home_tmp=home_tmp)
    try:
        made.set_option("status", "off")
        made.active_window.resize(width=width, height=height)
        started = time.monotonic()
        tmux_server.cmd("wait-for", "-S", channel)
        running.wait_idle(boot_timeout_s)
    except BaseException:
        print(running.screen() if _alive(running.pid) else f"{app} exited")
        running.stop()
        raise
    running.boot_s = time.monotonic() - started
    return running
