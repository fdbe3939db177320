"""The agent-facing doors of dispatch: ``preflight dispatch --profile/--on-busy``, ``preflight wait-idle`` and
the MCP ``wait_idle`` tool, on throwaway tmux servers from libtmux's pytest plugin (``session`` fixture).

Bad input must be one line naming the argument and exit 2 (CLI) or a tool error naming it (MCP); a shell pane
is not an agent, and ``wait-idle`` says so instead of waiting out its timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from libtmux import Session
from mcp import Client
from mcp.types import TextContent

CLI = [sys.executable, "-m", "gpu_preflight.server"]


def preflight(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout_s, check=False,
                          env=os.environ.copy())


def shell_pane(session: Session) -> str:
    pane = session.active_window.active_pane
    assert pane is not None and pane.pane_id is not None
    pane.send_keys("export PS1='$ '", enter=True)
    deadline = time.monotonic() + 5
    while not any(line.strip() == "$" for line in pane.capture_pane()):
        assert time.monotonic() < deadline, pane.capture_pane()
        time.sleep(0.05)
    return pane.pane_id


@pytest.mark.parametrize(("args", "named"), [
    (["--mode", "tui", "--profile", "claud"], "--profile"),
    (["--mode", "tui", "--on-busy", "later"], "--on-busy"),
])
def test_bad_dispatch_options_are_one_line_and_exit_2(session: Session, args: list[str], named: str) -> None:
    done = preflight("dispatch", shell_pane(session), "hello", *args, "-L", str(session.server.socket_name))
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and named in done.stderr


def test_wait_idle_rejects_a_non_positive_timeout_naming_it(session: Session) -> None:
    done = preflight("wait-idle", shell_pane(session), "--timeout-s", "0", "-L", str(session.server.socket_name))
    assert done.returncode == 2 and "timeout_s" in done.stderr and "Traceback" not in done.stderr


def test_wait_idle_on_a_shell_pane_returns_at_once_and_says_what_it_is(session: Session) -> None:
    started = time.monotonic()
    done = preflight("wait-idle", shell_pane(session), "--timeout-s", "30", "-L", str(session.server.socket_name),
                     "--json")
    assert time.monotonic() - started < 15  # did not wait out the 30 s
    result = json.loads(done.stdout)
    assert done.returncode == 1 and result["idle"] is False and result["state"] == "idle_at_prompt"
    assert result["agent"] is None


def test_tui_dispatch_into_a_shell_pane_is_refused_before_typing(session: Session) -> None:
    pane = shell_pane(session)
    done = preflight("dispatch", pane, "not a command", "--mode", "tui", "-L", str(session.server.socket_name),
                     "--json")
    result = json.loads(done.stdout)
    assert done.returncode == 1 and result["status"] == "refused" and result["enter_count"] == 0
    assert "mode='shell'" in result["reason"]


@pytest.mark.anyio
async def test_mcp_wait_idle_and_dispatch_arguments_are_checked(mcp_client: Client) -> None:
    tools = {tool.name: tool for tool in (await mcp_client.list_tools()).tools}
    assert {"wait_idle", "dispatch"} <= set(tools)
    assert {"profile", "on_busy", "busy_timeout_s"} <= set(tools["dispatch"].input_schema["properties"])
    bad = await mcp_client.call_tool("wait_idle", {"target": "%0", "timeout_s": 0})
    assert bad.is_error and isinstance(bad.content[0], TextContent) and "timeout_s" in bad.content[0].text
    bad = await mcp_client.call_tool("dispatch", {"target": "%0", "text": "x", "mode": "tui", "on_busy": "later"})
    assert bad.is_error and isinstance(bad.content[0], TextContent) and "on_busy" in bad.content[0].text
