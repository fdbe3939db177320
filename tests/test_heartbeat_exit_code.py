"""A pane heartbeat at a shell prompt reports the exit of the last command WE dispatched there (issue 17).

Ground truth is the shell's own ``$?``: after each heartbeat the test types ``echo "rc=$?"`` into the
pane and reads what the shell prints. That command is itself typed by hand, so the next heartbeat
must stop reporting our job's code. All on real tmux with private sockets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from helpers_tmux import TmuxTestServer, retry_until
from mcp import Client
from mcp.types import TextContent

from gpu_preflight.tools.dispatch import dispatch, heartbeat, heartbeat_all, wait_for_exit
from gpu_preflight.tools.dispatch.heartbeat import Heartbeat
from gpu_preflight.tools.dispatch.target import make_tmux


@pytest.fixture
def srv() -> Iterator[TmuxTestServer]:
    server = TmuxTestServer()
    yield server
    server.kill()


def run_ours(srv: TmuxTestServer, pane: str, command: str) -> str:
    """Dispatch ``command`` as a shell job, wait for its exit record; return its job id."""
    done = dispatch(pane, command, "shell", socket_name=srv.socket_name)
    assert done.status == "submitted" and done.job_id, done
    wait_for_exit(done.job_id, make_tmux(srv.socket_name), timeout_s=10)
    return done.job_id


def beat_at_prompt(srv: TmuxTestServer, pane: str) -> Heartbeat:
    return retry_until(lambda: (hb := heartbeat(target=pane, socket_name=srv.socket_name)).state
                       == "idle_at_prompt" and hb, what="the shell back at its prompt")


def shells_status(srv: TmuxTestServer, pane: str) -> int:
    """What the shell itself says ``$?`` is, typed by hand (so it supersedes our job)."""
    srv.tmux("send-keys", "-t", pane, "-l", 'echo "rc=$?"')
    srv.tmux("send-keys", "-t", pane, "Enter")
    line = retry_until(lambda: next((row for row in srv.capture(pane) if row.startswith("rc=")), None),
                       what="the shell's echo of $?")
    retry_until(lambda: srv.capture(pane)[-1:] == ["$"], what="the prompt after echo")
    return int(line[3:])


@pytest.mark.parametrize(("command", "code", "signal", "end"), [
    ("sh -c 'exit 0'", 0, None, "ok"),
    ("sh -c 'exit 3'", 3, None, "error"),
    ("sh -c 'kill -TERM $$'", 143, 15, "killed"),
])
def test_our_ended_command_is_reported_until_a_hand_typed_one(
        srv: TmuxTestServer, command: str, code: int, signal: int | None, end: str) -> None:
    pane = srv.shell()
    job_id = run_ours(srv, pane, command)
    hb = beat_at_prompt(srv, pane)
    assert (hb.exit_code, hb.signal, hb.job_id, hb.exit_source, hb.end_class) == (
        code, signal, job_id, "exit_record", end)
    assert hb.job_ended_at_epoch_s is not None and job_id in hb.reason
    assert shells_status(srv, pane) == code  # the shell agrees

    after = beat_at_prompt(srv, pane)
    assert (after.exit_code, after.signal, after.exit_source, after.end_class) == (None, None, None, None)
    assert "echo" in after.reason and after.job_id == job_id


def test_running_then_interrupted(srv: TmuxTestServer) -> None:
    pane = srv.shell()
    done = dispatch(pane, "sleep 30", "shell", socket_name=srv.socket_name)
    assert done.status == "submitted" and done.job_id
    running = heartbeat(target=pane, socket_name=srv.socket_name)
    assert (running.state, running.exit_code, running.job_id) == ("running", None, done.job_id)

    srv.tmux("send-keys", "-t", pane, "C-c")
    hb = beat_at_prompt(srv, pane)
    assert (hb.exit_code, hb.signal, hb.end_class, hb.job_id) == (130, 2, "interrupted", done.job_id)
    assert shells_status(srv, pane) == 130


def test_a_second_dispatch_replaces_the_first_and_an_empty_enter_does_not(srv: TmuxTestServer) -> None:
    pane = srv.shell()
    first = run_ours(srv, pane, "sh -c 'exit 3'")
    assert beat_at_prompt(srv, pane).exit_code == 3
    second = run_ours(srv, pane, "sh -c 'exit 5'")
    hb = beat_at_prompt(srv, pane)
    assert (hb.exit_code, hb.job_id, hb.exit_source) == (5, second, "exit_record") and second != first

    srv.tmux("send-keys", "-t", pane, "Enter")  # bash keeps $? over an empty line
    retry_until(lambda: srv.capture(pane)[-2:] == ["$", "$"], what="a second prompt")
    hb = beat_at_prompt(srv, pane)
    assert (hb.exit_code, hb.job_id, hb.exit_source) == (5, second, "exit_record")
    assert shells_status(srv, pane) == 5


def test_a_two_line_prompt(srv: TmuxTestServer) -> None:
    pane = srv.window("exec env PS1='ctx here\n% ' HISTFILE=/dev/null PROMPT_COMMAND= bash --norc --noprofile")
    retry_until(lambda: srv.capture(pane)[-2:] == ["ctx here", "%"], what="the two-line prompt")
    job_id = run_ours(srv, pane, "sh -c 'exit 4'")
    hb = retry_until(lambda: (b := heartbeat(target=pane, socket_name=srv.socket_name)).state
                     == "idle_at_prompt" and b)
    assert (hb.exit_code, hb.job_id, hb.exit_source) == (4, job_id, "exit_record")
    srv.tmux("send-keys", "-t", pane, "true", "Enter")
    retry_until(lambda: "% true" in srv.capture(pane) and srv.capture(pane)[-1:] == ["%"], what="true ran")
    assert heartbeat(target=pane, socket_name=srv.socket_name).exit_code is None


def test_no_tmux_pane_variable_still_gives_the_code_unverified(srv: TmuxTestServer) -> None:
    """Without ``TMUX_PANE`` the wrapper can reach neither the pane option nor the cursor: the pane
    heartbeat used to report no code at all; now the exit record's, marked unverified, with its end time."""
    pane = srv.window("exec env -u TMUX_PANE PS1='$ ' HISTFILE=/dev/null PROMPT_COMMAND= bash --norc --noprofile")
    retry_until(lambda: srv.capture(pane)[-1:] == ["$"], what="bash prompt")
    job_id = run_ours(srv, pane, "sh -c 'exit 6'")
    assert srv.display(pane, "#{@pf_job}") == ""
    hb = beat_at_prompt(srv, pane)
    assert (hb.exit_code, hb.job_id, hb.exit_source) == (6, job_id, "exit_record_unverified")
    assert hb.job_ended_at_epoch_s is not None and "cannot be ruled out" in hb.reason


def test_a_restarted_server_reusing_the_pane_id_inherits_nothing(srv: TmuxTestServer) -> None:
    pane = srv.shell()
    run_ours(srv, pane, "sh -c 'exit 3'")
    srv.kill()

    def restart() -> bool:
        try:  # the old server can still be on its way out: "server exited unexpectedly"
            srv.tmux("-f", "/dev/null", "new-session", "-d", "-s", "base", "-x", "100", "-y", "30", "sleep 100000")
        except RuntimeError:
            return False
        return True

    retry_until(restart, what="a new server on the same socket")
    again = srv.shell()
    assert again == pane  # tmux numbers panes from %0 again: same id, different shell
    hb = beat_at_prompt(srv, again)
    assert (hb.exit_code, hb.job_id, hb.exit_source) == (None, None, None)


def test_heartbeat_all_and_the_cli_json(srv: TmuxTestServer) -> None:
    ours, untouched = srv.shell(), srv.shell()
    job_id = run_ours(srv, ours, "sh -c 'exit 3'")
    beat_at_prompt(srv, ours)
    beats = {hb.pane_id: hb for hb in heartbeat_all(socket_name=srv.socket_name).heartbeats}
    assert (beats[ours].exit_code, beats[ours].job_id) == (3, job_id)
    assert (beats[untouched].state, beats[untouched].exit_code, beats[untouched].job_id) == (
        "idle_at_prompt", None, None)

    done = subprocess.run([sys.executable, "-m", "gpu_preflight.server", "heartbeat", ours, "-L", srv.socket_name,
                           "--json"], capture_output=True, text=True, timeout=60, check=False, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {key: data[key] for key in ("state", "exit_code", "signal", "job_id", "exit_source")} == {
        "state": "idle_at_prompt", "exit_code": 3, "signal": None, "job_id": job_id, "exit_source": "exit_record"}
    assert isinstance(data["job_ended_at_epoch_s"], float)


@pytest.mark.anyio
async def test_mcp_heartbeat_and_heartbeat_all_carry_the_code(mcp_client: Client, srv: TmuxTestServer) -> None:
    pane = srv.shell()
    job_id = run_ours(srv, pane, "sh -c 'kill -TERM $$'")
    beat_at_prompt(srv, pane)
    one = (await mcp_client.call_tool("heartbeat", {"target": pane, "socket_name": srv.socket_name})
           ).structured_content
    assert one is not None
    assert {key: one[key] for key in ("state", "exit_code", "signal", "job_id", "exit_source", "end_class")} == {
        "state": "idle_at_prompt", "exit_code": 143, "signal": 15, "job_id": job_id, "exit_source": "exit_record",
        "end_class": "killed"}
    swept = await mcp_client.call_tool("heartbeat_all", {"socket_name": srv.socket_name})
    assert swept.structured_content is not None
    row = next(hb for hb in swept.structured_content["heartbeats"] if hb["pane_id"] == pane)
    assert (row["exit_code"], row["signal"], row["job_id"]) == (143, 15, job_id)
    assert isinstance(swept.content[0], TextContent) and "exit 143" in swept.content[0].text  # the table's reason
