"""Dispatch and pane heartbeats on a remote box (issue 17, part 2), against a real ``sshd`` (tests/sshd.py).

The "box" is this machine reached through the test sshd; its tmux server is started, driven and read
only through ssh (each test its own ``-L`` socket), and the box keeps its job files in its own state dir
(``PREFLIGHT_REMOTE_STATE_DIR``), apart from the local one, so a remote dispatch that read or wrote
local files instead of the box's would find nothing. Each test checks what a user would: the command's
side effect on the box, the job file holding the exact text, a stopped sshd giving a fault status and
never a false ``submitted``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import Sshd

from gpu_preflight.server.cli import main
from gpu_preflight.tools.dispatch import dispatch, heartbeat
from gpu_preflight.tools.dispatch.models import DispatchResult
from gpu_preflight.tools.dispatch.target import make_tmux
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable, TmuxError
from gpu_preflight.tools.hosts import Host, call

SHELL = "exec env {env}PS1='$ ' HISTFILE=/dev/null PROMPT_COMMAND= /bin/bash --norc --noprofile"


class Box:
    """A tmux server on the box, reached only through ssh."""

    def __init__(self, host: Host, socket_name: str, state: Path) -> None:
        self.host, self.socket_name, self.state = host, socket_name, state

    def tmux(self, *args: str) -> str:
        done = call(self.host, ["tmux", "-L", self.socket_name, *args], timeout_s=10)
        assert done.rc == 0, done
        return done.stdout

    def shell(self, path: str = "") -> str:
        """A bash at a ``$ `` prompt; ``path``: directories put before PATH in that shell."""
        env = f"PATH={shlex.quote(path)}:\"$PATH\" " if path else ""
        pane = self.tmux("new-window", "-d", "-P", "-F", "#{pane_id}", SHELL.format(env=env)).strip()
        deadline = time.monotonic() + 10
        while self.screen(pane).rstrip().splitlines()[-1:] != ["$"]:
            assert time.monotonic() < deadline, self.screen(pane)
            time.sleep(0.05)
        return pane

    def screen(self, pane: str) -> str:
        return self.tmux("capture-pane", "-p", "-t", pane)

    def job_file(self, job_id: str) -> Path:
        return self.state / "jobs" / f"{job_id}.sh"


@pytest.fixture
def box(sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Box]:
    host = sshd.register()
    state = tmp_path / "box-state"
    monkeypatch.setenv("PREFLIGHT_REMOTE_STATE_DIR", str(state))
    socket_name = f"pfremote-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    started = call(host, ["tmux", "-L", socket_name, "-f", "/dev/null", "new-session", "-d", "-s", "box", "-x", "100",
                          "-y", "30", "sleep 100000"], timeout_s=10)
    assert started.rc == 0, started
    try:
        yield Box(host, socket_name, state)
    finally:  # sshd may be stopped by now: end this test's server directly
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, timeout=10, check=False)


def _wait(check: object, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_shell_dispatch_over_ssh_is_submitted_and_runs_on_the_box(box: Box, tmp_path: Path) -> None:
    pane = box.shell()
    out = tmp_path / "ran-on-box"
    result = dispatch(pane, f"echo hello-from-box > {out}", host="box", socket_name=box.socket_name)
    assert result.status == "submitted", result
    assert result.enter_count == 1 and result.pid and result.job_id
    _wait(lambda: out.exists() and out.read_text() == "hello-from-box\n", "the command's file")
    # The proof is the box's start record; our local state has no job files at all.
    assert (box.state / "jobs" / f"{result.job_id}.start").read_text().split()[0] == str(result.pid)
    assert not list((tmp_path / "state").glob("jobs/*.sh"))
    assert box.tmux("display-message", "-p", "-t", pane, "#{@pf_job}").strip().startswith(result.job_id)


INJECTIONS = [  # (command, the file it writes, what that file must hold)
    ("find {d} -name marker -exec touch {{}}.found \\;", "marker.found", ""),  # a trailing ';' tmux eats
    ("cat > {d}/heredoc <<'EOF'\ncol1\tcol2\n$(id) `id` $HOME\nEOF", "heredoc",
     "col1\tcol2\n$(id) `id` $HOME\n"),  # TAB (completion), substitutions, several lines
    ("printf %s '{big}' | wc -c > {d}/count", "count", "20000\n"),  # over tmux's 16 KB command limit
    ("echo \"it's\" -n '; rm -rf /' && echo $((6*7)) > {d}/quotes", "quotes", "42\n"),  # quotes, '-n', ';'
]


@pytest.mark.parametrize(("template", "name", "text"), INJECTIONS, ids=["semicolon", "heredoc", "16kb", "quotes"])
def test_dispatcher_payloads_arrive_verbatim_over_ssh(box: Box, tmp_path: Path, template: str, name: str,
                                                      text: str) -> None:
    (tmp_path / "marker").touch()
    command = template.format(d=tmp_path, big="A" * 20_000)
    result = dispatch(box.shell(), command, host="box", socket_name=box.socket_name)
    assert result.status == "submitted", result
    assert box.job_file(result.job_id or "").read_text() == command + "\n"  # byte for byte on the box
    _wait(lambda: (tmp_path / name).exists() and (tmp_path / name).read_text() == text, f"{name} written")


def test_remote_preflight_refuses_a_draft_and_a_busy_shell(box: Box, tmp_path: Path) -> None:
    draft = box.shell()
    box.tmux("send-keys", "-t", draft, "-l", "echo DRAFT")
    _wait(lambda: "echo DRAFT" in box.screen(draft), "the draft")
    refused = dispatch(draft, f"touch {tmp_path / 'x'}", host="box", socket_name=box.socket_name)
    assert refused.status == "refused" and "input line" in refused.reason and refused.enter_count == 0
    busy = box.shell()
    box.tmux("send-keys", "-t", busy, "cat", "Enter")
    _wait(lambda: box.tmux("display-message", "-p", "-t", busy, "#{pane_current_command}").strip() == "cat", "cat")
    refused = dispatch(busy, f"touch {tmp_path / 'x'}", host="box", socket_name=box.socket_name)
    assert refused.status == "refused" and "cat runs in the foreground" in refused.reason, refused
    gone = dispatch("%999", "true", host="box", socket_name=box.socket_name)
    assert gone.status == "refused" and "pane not found" in gone.reason
    assert not (tmp_path / "x").exists()


def test_sshd_stopped_mid_dispatch_is_unconfirmed_never_submitted(box: Box, sshd: Sshd, tmp_path: Path) -> None:
    # The pane's PATH finds a `bash` that waits 3 s before running the wrapper: the start record comes late,
    # so the send round trip is still polling for it when the server (and every session) is killed.
    shim = tmp_path / "slowbin"
    shim.mkdir()
    (shim / "bash").write_text("#!/bin/sh\nsleep 3\nexec /bin/bash \"$@\"\n")
    (shim / "bash").chmod(0o755)
    pane = box.shell(path=str(shim))
    out = tmp_path / "late"
    results: list[DispatchResult] = []
    worker = threading.Thread(target=lambda: results.append(
        dispatch(pane, f"touch {out}", host="box", socket_name=box.socket_name, start_timeout_s=6)))
    started = time.monotonic()
    worker.start()
    _wait(lambda: "pf-job" in subprocess.run(["tmux", "-L", box.socket_name, "capture-pane", "-p", "-t", pane],
                                             capture_output=True, text=True).stdout, "the handle typed")
    sshd.stop()
    worker.join(timeout=20)
    elapsed_s = time.monotonic() - started
    assert results and results[0].status == "unconfirmed", results
    assert results[0].reason.split(":")[0] in {"connection_dropped", "host_unreachable"}, results[0].reason
    assert elapsed_s < 10, elapsed_s  # the default fault timeout
    _wait(out.exists, "the job ran anyway on the box (it was typed): unconfirmed was the honest answer")


def test_unreachable_host_is_refused_before_typing(box: Box, sshd: Sshd) -> None:
    pane = box.shell()
    sshd.stop()
    started = time.monotonic()
    result = dispatch(pane, "true", host="box", socket_name=box.socket_name)
    assert result.status == "refused" and result.reason.startswith("host_unreachable: ")
    assert "nothing was typed" in result.reason and time.monotonic() - started < 10
    with pytest.raises(HostUnreachable) as caught:
        make_tmux(box.socket_name, host="box").run("list-panes")
    assert caught.value.status == "host_unreachable" and not isinstance(caught.value, TmuxError)


def test_cli_dispatch_with_host_contract(box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pane = box.shell()
    out = tmp_path / "cli"
    code = main(["dispatch", pane, f"touch {out}", "--mode", "shell", "--host", "box", "-L", box.socket_name,
                 "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["status"] == "submitted"
    _wait(out.exists, "the CLI's command ran")


def test_confirmed_dispatch_cost_local_vs_remote_warm(box: Box, tmp_path: Path) -> None:
    """The issue's goal is remote <= 3x local on a warm master; reported (printed), bounded loosely here."""
    local_srv = f"pflocal-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["tmux", "-L", local_srv, "-f", "/dev/null", "new-session", "-d", "-s", "l", "-x", "100", "-y",
                    "30", SHELL.format(env="")], check=True, timeout=10)
    try:
        local_pane = "%0"
        _wait(lambda: subprocess.run(["tmux", "-L", local_srv, "capture-pane", "-p", "-t", local_pane],
                                     capture_output=True, text=True).stdout.strip() == "$", "local prompt")
        remote_pane = box.shell()
        dispatch(remote_pane, "true", host="box", socket_name=box.socket_name)  # the master connection is warm now
        local_ms, remote_ms = [], []
        for _ in range(5):
            for pane, host, srv, into in ((local_pane, None, local_srv, local_ms),
                                          (remote_pane, "box", box.socket_name, remote_ms)):
                time.sleep(0.3)  # the previous `true` is back at its prompt
                result = dispatch(pane, "true", host=host, socket_name=srv)
                assert result.status == "submitted", result
                into.append(result.latency_ms)
    finally:
        subprocess.run(["tmux", "-L", local_srv, "kill-server"], capture_output=True, timeout=10, check=False)
    local, remote = sorted(local_ms)[2], sorted(remote_ms)[2]
    print(f"\nconfirmed shell dispatch, median of 5: local {local:.0f} ms, remote (warm) {remote:.0f} ms, "
          f"ratio {remote / local:.1f}x")
    assert remote < local + 1500  # two warm round trips (~170 ms each here) plus the same work as locally


def _heartbeat(capsys: pytest.CaptureFixture[str], box: Box, pane: str) -> dict[str, object]:
    code = main(["heartbeat", pane, "--host", "box", "-L", box.socket_name, "--json"])
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    assert code == 0
    return data


def test_pane_heartbeat_over_ssh_running_idle_exit_code_and_unreachable(
        box: Box, sshd: Sshd, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pane = box.shell()
    idle = _heartbeat(capsys, box, pane)
    assert idle["state"] == "idle_at_prompt" and idle["exit_code"] is None, idle
    gate = tmp_path / "go"
    result = dispatch(pane, f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 7", host="box",
                      socket_name=box.socket_name)
    assert result.status == "submitted", result
    running = _heartbeat(capsys, box, pane)
    assert running["state"] == "running" and running["current_command"] == "bash", running
    gate.touch()
    _wait(lambda: (box.state / "jobs" / f"{result.job_id}.exit").exists(), "the job's exit record on the box")
    ended = _heartbeat(capsys, box, pane)
    assert ended["state"] == "idle_at_prompt" and ended["exit_code"] == 7, ended
    assert ended["job_id"] == result.job_id and ended["exit_source"] == "exit_record", ended
    sshd.stop()
    started = time.monotonic()
    down = _heartbeat(capsys, box, pane)
    assert down["state"] == "host_unreachable" and str(down["reason"]).startswith("host_unreachable: "), down
    assert time.monotonic() - started < 10
    gone_server = subprocess.run(["tmux", "-L", box.socket_name, "display-message", "-p", "-t", pane, "#{pane_id}"],
                                 capture_output=True, text=True)
    assert gone_server.stdout.strip() == pane  # the pane lives on: only the link is down


def test_pane_heartbeat_over_ssh_pane_gone(box: Box, capsys: pytest.CaptureFixture[str]) -> None:
    assert _heartbeat(capsys, box, "%999")["state"] == "pane_gone"


def test_pane_heartbeat_over_ssh_tells_hung_from_running_by_the_boxs_cpu(box: Box) -> None:
    """As the local heartbeat (tests/test_dispatch_heartbeat.py): silent past the threshold and no CPU in the
    sample is ``hung``; silent but burning CPU is ``running``. The sample is read on the box, in the look."""
    silent, burning, idle = box.shell(), box.shell(), box.shell()
    for pane, command in ((silent, "echo step 1 loss 2.7; sleep 1000"),
                          (burning, "echo step 1 loss 2.7; while :; do :; done")):
        result = dispatch(pane, command, host="box", socket_name=box.socket_name)
        assert result.status == "submitted", result
    time.sleep(2.1)  # window_activity has 1 s resolution: every pane quiet for > hang_after_s
    beats = {pane: heartbeat(target=pane, host="box", socket_name=box.socket_name, hang_after_s=1.0)
             for pane in (silent, burning, idle)}
    box.tmux("kill-pane", "-t", burning)
    assert beats[silent].state == "hung" and beats[silent].cpu_sample_busy is False, beats[silent]
    assert "no CPU in a 0.1 s sample on the box" in beats[silent].reason
    assert beats[silent].last_output_line == "step 1 loss 2.7"
    assert beats[burning].state == "running" and beats[burning].cpu_sample_busy is True, beats[burning]
    assert (beats[burning].process_tree_cpu_s or 0) > 0 and "using CPU" in beats[burning].reason
    assert beats[idle].state == "idle_at_prompt" and beats[idle].cpu_sample_busy is None  # no sample at a prompt
    patient = heartbeat(target=silent, host="box", socket_name=box.socket_name)  # the default threshold: 300 s
    assert patient.state == "running" and patient.cpu_sample_busy is False and "300 s" in patient.reason, patient


def test_run_heartbeat_over_ssh_hung_until_its_log_moves(box: Box, tmp_path: Path) -> None:
    """A run silent on screen, idle in the box's CPU sample and with a stale log is ``hung``; a fresh write to
    its log (read on the box) keeps it ``running``, as a local run's log does."""
    from gpu_preflight.tools.dispatch import launch_command

    log = tmp_path / "train.log"
    launched = launch_command(box.shell(), f"echo 'step 1 loss 2.7' > {log}; sleep 1000", kind="full", host="box",
                              socket_name=box.socket_name, log_path=str(log))
    assert launched.dispatch.status == "submitted" and launched.run is not None, launched
    _wait(log.exists, "the run's log")
    time.sleep(2.1)
    stale = heartbeat(launched.run.run_id, hang_after_s=1.0)
    assert stale.state == "hung" and stale.cpu_sample_busy is False and stale.host == "box", stale
    with log.open("a") as handle:
        handle.write("step 2 loss 2.5\n")
    fresh = heartbeat(launched.run.run_id, hang_after_s=1.0)
    assert fresh.state == "running" and "the log moved" in fresh.reason, fresh
    assert fresh.last_log_line == "step 2 loss 2.5"
