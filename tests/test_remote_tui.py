"""An agent TUI on a remote box (issue 17): tui dispatch, agent heartbeats, wait_idle and list_panes over SSH.

The box is this machine reached through the real test sshd (tests/sshd.py); the real Claude Code (the
pinned npm install of tests/realapps, its native binary boots fastest of the three) runs offline against
the scripted model server in a private tmux server, and every dispatch, heartbeat and wait below reaches
that server only through ssh (``host="box"``). The ground truth that a prompt was delivered is the model
server's record of the user messages it received (each exactly once, verbatim), never the screen. An app
that cannot be installed, or no sshd, skips with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from realapps.apps import RunningApp, start_app
from realapps.install import ensure_installed, why_missing
from realapps.model_server import ModelServer
from sshd import Sshd, close_ssh_masters

from gpu_preflight.tools.dispatch import dispatch, heartbeat, list_pane_infos, wait_idle

APP = "claude"
CLI = [sys.executable, "-m", "gpu_preflight.server"]
SLOW = "\n\n".join(f"{a} {b} is line {i}." for i, (a, b) in enumerate(
    [("amber", "basalt"), ("cobalt", "dune"), ("ember", "fjord"), ("garnet", "harbor"), ("indigo", "juniper")]))


@pytest.fixture(scope="module")
def agent(tmux_socket: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningApp, ModelServer]]:
    """The real app booted once for this module, in the tmux server the box's ssh sessions see."""
    if ensure_installed(APP) is None:
        pytest.skip(why_missing(APP))
    with ModelServer() as server:
        app = start_app(APP, server, tmux_socket, tmp_path_factory.mktemp("claude-project"))
        try:
            yield app, server
        finally:
            app.stop()


@pytest.fixture
def box(sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    sshd.register()
    monkeypatch.setenv("PREFLIGHT_REMOTE_STATE_DIR", str(tmp_path / "box-state"))
    yield "box"
    close_ssh_masters()


def _settle(app: RunningApp) -> None:
    app.wait_idle(timeout_s=30)
    time.sleep(0.3)


def test_prompt_over_ssh_is_delivered_then_working_then_idle(agent: tuple[RunningApp, ModelServer], box: str
                                                             ) -> None:
    app, server = agent
    _settle(app)
    listed = {p.pane_id: p for p in list_pane_infos(app.socket_name, host=box)}
    assert listed[app.pane_id].current_command == "claude" and not listed[app.pane_id].shell_in_foreground
    deadline = time.monotonic() + 15  # just booted, the app still redraws its welcome screen for a few seconds
    while (idle := heartbeat(target=app.pane_id, socket_name=app.socket_name, host=box)).state == "working":
        assert time.monotonic() < deadline, idle
    assert (idle.state, idle.agent, idle.host) == ("idle", APP, box), idle
    time.sleep(1.2)  # silent past a 1 s hang threshold, no CPU: a shell program would read "hung", an agent idle
    quiet = heartbeat(target=app.pane_id, socket_name=app.socket_name, host=box, hang_after_s=1.0)
    assert (quiet.state, quiet.agent, quiet.last_error_line) == ("idle", APP, None), quiet
    server.script(reply_text=SLOW, first_token_delay_s=2.5, stream_s=3.0, chunks=5)
    text = "over ssh: $(id) `whoami` 'quoted' \"double\" ends with a semicolon;"
    try:
        before = len(server.received_texts())
        sent = dispatch(app.pane_id, text, "tui", host=box, socket_name=app.socket_name)
        assert sent.status == "submitted", (sent.reason, app.screen())
        assert sent.profile == APP and sent.enter_count == 1  # found from the box's /proc
        early = heartbeat(target=app.pane_id, socket_name=app.socket_name, host=box)
        assert early.state == "working", early  # the model has not answered yet (2.5 s)
        done = wait_idle(app.pane_id, 40, socket_name=app.socket_name, host=box)
        assert done.idle and done.state == "idle" and done.agent == APP, done
        assert done.waited_s >= 1.0, done  # it really waited for the turn: the reply takes 2.5 + 3 s
        assert any("indigo juniper" in line for line in done.answer_tail), done
        assert server.wait_for(before + 1, timeout_s=20)[before:] == [text]  # exactly once, verbatim
    finally:
        server.script()


def test_cli_multiline_prompt_and_wait_idle_over_ssh(agent: tuple[RunningApp, ModelServer], box: str) -> None:
    """What a user runs: ``dispatch --mode tui --host``, then ``wait-idle --host``; a multi-line prompt goes
    through the paste buffer (``load-buffer -`` on the box, its text on ssh's stdin)."""
    app, server = agent
    _settle(app)
    text = "\n".join(f"line {i:02d} of a remote multi-line prompt; -n --flag \\x1b[31m" for i in range(12))
    before = len(server.received_texts())
    server.script(reply_text=SLOW)
    try:
        sent = subprocess.run([*CLI, "dispatch", app.pane_id, text, "--mode", "tui", "--host", box, "-L",
                               app.socket_name, "--json"], capture_output=True, text=True, timeout=90, check=False)
        assert sent.returncode == 0 and json.loads(sent.stdout)["status"] == "submitted", sent.stdout + sent.stderr
        waited = subprocess.run([*CLI, "wait-idle", app.pane_id, "--timeout-s", "60", "--host", box, "-L",
                                 app.socket_name, "--json"], capture_output=True, text=True, timeout=90, check=False)
        result = json.loads(waited.stdout)
        assert waited.returncode == 0 and result["idle"] and result["agent"] == APP, result
        assert server.wait_for(before + 1, timeout_s=20)[before:] == [text]
    finally:
        server.script()


def test_an_agent_quit_back_to_its_shell_reads_exited_over_ssh(agent: tuple[RunningApp, ModelServer], box: str,
                                                                 tmp_path: Path) -> None:
    """Last in the module (it boots a second app): the real app started FROM a shell in the pane, given a prompt
    over ssh, then quit with Ctrl-C twice, as a user quits it. The shell is back at its prompt, so the box's
    processes no longer show an agent; our audit of the prompt we sent says one ran there: ``exited``, for a
    single heartbeat and for a sweep. No exit code: the shell keeps ``$?`` to itself (the local heartbeat gives
    none on this path either)."""
    import shlex
    import tempfile

    from realapps.apps import SPECS, _prepare

    from gpu_preflight.tools.dispatch import heartbeat_all

    app, server = agent
    exe = ensure_installed(APP)
    assert exe is not None
    home = tempfile.TemporaryDirectory(prefix="pf-claude-home-")
    argv, env = _prepare(APP, exe, Path(home.name), tmp_path, server.port)
    command = "env -i TERM=\"$TERM\" " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " " + \
        shlex.join(argv)
    shell = "exec env PS1='$ ' HISTFILE=/dev/null PROMPT_COMMAND= /bin/bash --norc --noprofile"
    pane = app.tmux("new-window", "-d", "-t", app.session, "-c", str(tmp_path), "-P", "-F", "#{pane_id}",
                    shell).strip()
    quit_app = RunningApp(SPECS[APP], app.socket_name, app.session, pane, 0, Path(home.name), tmp_path)
    try:
        quit_app.wait(lambda lines: lines[-1:] == ["$"], 10, "the shell prompt")
        app.tmux("send-keys", "-t", pane, "-l", command)
        app.tmux("send-keys", "-t", pane, "Enter")
        quit_app.wait_idle(60)
        time.sleep(0.5)
        before = len(server.received_texts())
        sent = dispatch(pane, "one prompt, then quit", "tui", host=box, socket_name=app.socket_name)
        assert sent.status == "submitted", (sent.reason, quit_app.screen())
        assert server.wait_for(before + 1, timeout_s=20)[before:] == ["one prompt, then quit"]
        assert wait_idle(pane, 40, socket_name=app.socket_name, host=box).idle
        live = heartbeat(target=pane, socket_name=app.socket_name, host=box)
        assert (live.state, live.agent) == ("idle", APP), live  # the agent runs under the shell: read as an agent
        for _ in range(2):
            app.tmux("send-keys", "-t", pane, "C-c")
            time.sleep(0.3)
        deadline = time.monotonic() + 15
        while app.tmux("display-message", "-p", "-t", pane, "#{pane_current_command}").strip() != "bash":
            assert time.monotonic() < deadline, quit_app.screen()
            time.sleep(0.1)
        gone = heartbeat(target=pane, socket_name=app.socket_name, host=box)
        assert (gone.state, gone.host, gone.exit_code) == ("exited", box, None), gone
        assert "agent TUI that took our last prompt here" in gone.reason and "back at its prompt" in gone.reason
        swept = [hb for hb in heartbeat_all(hosts=[box], socket_name=app.socket_name).heartbeats if hb.pane_id == pane]
        assert [hb.state for hb in swept] == ["exited"], swept
    finally:
        app.tmux("kill-window", "-t", pane)
        home.cleanup()
