"""Confirmed delivery and heartbeats on the real Claude Code, Codex and Gemini CLI.

Every delivery is scored against the scripted model server's record of the user messages it received
(each prompt exactly once, verbatim), never against the screen. Each app runs offline in a private tmux
server; an app that cannot be installed skips with the reason (``.ci/install-agents`` installs them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from realapps.fixtures import Harness

from gpu_preflight.tools.dispatch import DispatchResult, dispatch, heartbeat, wait_idle

CLI = [sys.executable, "-m", "gpu_preflight.server"]
SLOW = "\n\n".join(f"{a} {b} is line {i}." for i, (a, b) in enumerate(
    [("amber", "basalt"), ("cobalt", "dune"), ("ember", "fjord"), ("garnet", "harbor"), ("indigo", "juniper")]))
PROMPTS = [
    "plain words, nothing special",
    "echo $HOME && ls | wc -l > out.txt; `whoami` $(id) 'quoted' \"double\" \\backslash",
    "-n --help: a leading dash is text, not a flag",
    "ends with a semicolon;",
    "unicode: naïve café, 日本語のテキスト, emoji 🚀, arrows → ⇒",
    "text about escapes: \\x1b[31m red \\e[0m and \\033[2J stay literal",
    "\n".join(f"line {i:03d} of a long multi-line prompt, with some padding text to make it wide" for i in range(40)),
]


def tui(h: Harness, text: str, **kwargs: Any) -> DispatchResult:
    return dispatch(h.app.pane_id, text, "tui", socket_name=h.app.socket_name, **kwargs)


def received_after(h: Harness, before: int, count: int, timeout_s: float = 20.0) -> list[str]:
    """The user messages the model server got after the first ``before`` ones (waits for ``count``)."""
    return h.server.wait_for(before + count, timeout_s=timeout_s)[before:]


def settle(h: Harness) -> None:
    """The app finished its turn and the server saw no stray request since."""
    h.app.wait_idle(timeout_s=30)
    time.sleep(0.3)


def test_each_prompt_arrives_exactly_once_verbatim(harness: Harness) -> None:
    assert len(PROMPTS[-1]) > 3000
    for text in PROMPTS:
        settle(harness)
        before = len(harness.server.received_texts())
        result = tui(harness, text)
        assert result.status == "submitted", (result.reason, harness.app.screen())
        assert result.profile == harness.app.spec.name  # picked from the pane's process
        assert received_after(harness, before, 1) == [text]
    settle(harness)
    assert harness.server.received_texts()[-len(PROMPTS):] == PROMPTS  # and nothing twice


def test_idle_working_idle_heartbeat_and_wait_idle(harness: Harness) -> None:
    app, server = harness.app, harness.server
    settle(harness)
    # A freshly started Claude Code redraws its welcome screen for a few seconds (seen as `working` in 2 of 5
    # loaded runs): idle must come once the screen is still, within 15 s.
    deadline = time.monotonic() + 15
    idle = heartbeat(target=app.pane_id, socket_name=app.socket_name)
    while idle.state == "working" and time.monotonic() < deadline:
        time.sleep(0.5)
        idle = heartbeat(target=app.pane_id, socket_name=app.socket_name)
    assert idle.state == "idle" and idle.agent == app.spec.name, idle
    server.script(reply_text=SLOW, first_token_delay_s=2.5, stream_s=3.0, chunks=5)
    try:
        before = len(server.received_texts())
        assert tui(harness, "answer slowly please").status == "submitted"
        early = heartbeat(target=app.pane_id, socket_name=app.socket_name)
        assert early.state == "working", early  # before the first token
        app.wait(lambda lines: any("amber" in line for line in lines), 8.0, "the first streamed line")
        streaming = heartbeat(target=app.pane_id, socket_name=app.socket_name)
        assert streaming.state == "working", streaming
        done = wait_idle(app.pane_id, 30, socket_name=app.socket_name)
        assert done.idle and done.state == "idle", done
        assert any("garnet harbor" in line or "indigo juniper" in line for line in done.answer_tail), done
        assert received_after(harness, before, 1) == ["answer slowly please"]
    finally:
        server.script()


def test_on_busy_refuse_wait_and_queue(harness: Harness) -> None:
    app, server = harness.app, harness.server
    settle(harness)
    before = len(server.received_texts())
    server.script(reply_text=SLOW, first_token_delay_s=1.5, stream_s=2.0, chunks=5)
    try:
        assert tui(harness, "first, a slow turn").status == "submitted"
        refused = tui(harness, "refused while busy")
        assert refused.status == "refused" and "busy" in refused.reason and refused.enter_count == 0
        waited = tui(harness, "sent after waiting", on_busy="wait", busy_timeout_s=30)
        assert waited.status == "submitted", waited.reason
        assert received_after(harness, before, 2) == ["first, a slow turn", "sent after waiting"]
        app.wait(app.spec.is_busy, 5.0, "the second turn to run")
        queued = tui(harness, "queued behind the turn", on_busy="queue")
        if app.spec.name == "codex":  # Enter sends into the running turn: reported as such
            assert queued.status == "submitted" and "running turn" in queued.reason, queued.reason
        else:
            assert queued.status == "queued" and "Queued" in queued.reason, queued.reason
        assert received_after(harness, before, 3, timeout_s=30)[2:] == ["queued behind the turn"]
        settle(harness)
        assert "refused while busy" not in server.received_texts()
    finally:
        server.script()


def test_a_selection_dialog_is_refused_by_name_and_reported_waiting(harness: Harness) -> None:
    app = harness.app
    settle(harness)
    app.tmux("send-keys", "-t", app.pane_id, "-l", "/model")
    time.sleep(0.6)
    app.tmux("send-keys", "-t", app.pane_id, "Enter")
    try:
        deadline = time.monotonic() + 8
        while (state := heartbeat(target=app.pane_id, socket_name=app.socket_name)).state != "waiting_for_input":
            assert time.monotonic() < deadline, (state, app.screen())
        assert state.dialog, state
        before = len(harness.server.received_texts())
        refused = tui(harness, "must not be typed into the dialog")
        assert refused.status == "refused" and "dialog" in refused.reason and refused.enter_count == 0
        assert state.dialog in refused.reason
    finally:
        app.tmux("send-keys", "-t", app.pane_id, "Escape")
    settle(harness)
    assert len(harness.server.received_texts()) == before


def test_the_cli_dispatches_then_waits_for_the_answer(harness: Harness) -> None:
    """What a user (or an orchestrating agent without MCP) runs: dispatch, wait-idle, read the answer."""
    app, server = harness.app, harness.server
    settle(harness)
    before = len(server.received_texts())
    server.script(reply_text=SLOW)
    try:
        sent = subprocess.run([*CLI, "dispatch", app.pane_id, "from the command line", "--mode", "tui", "-L",
                               app.socket_name, "--json"], capture_output=True, text=True, timeout=60, check=False)
        assert sent.returncode == 0 and json.loads(sent.stdout)["status"] == "submitted", sent.stdout + sent.stderr
        waited = subprocess.run([*CLI, "wait-idle", app.pane_id, "--timeout-s", "60", "-L", app.socket_name,
                                 "--json"], capture_output=True, text=True, timeout=90, check=False)
        result = json.loads(waited.stdout)
        assert waited.returncode == 0 and result["idle"] and result["agent"] == app.spec.name, result
        assert any("indigo juniper" in line for line in result["answer_tail"]), result
        assert received_after(harness, before, 1) == ["from the command line"]
    finally:
        server.script()


def test_exited_agent_is_reported_exited(harness: Harness) -> None:
    """Last in the module: the app is stopped here (remain-on-exit keeps its pane to read)."""
    app = harness.app
    app.tmux("set-option", "-p", "-t", app.pane_id, "remain-on-exit", "on")
    app.stop_process()
    deadline = time.monotonic() + 10
    while (hb := heartbeat(target=app.pane_id, socket_name=app.socket_name)).state != "exited":
        assert time.monotonic() < deadline, hb
        time.sleep(0.1)
    assert hb.exit_code is not None or hb.signal is not None, hb

