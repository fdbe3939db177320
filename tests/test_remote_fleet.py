"""``heartbeat_all`` over a fleet (issue 17, part 3): three real sshd's stand in for three boxes.

Each box is this machine behind its own sshd, but with its own tmux server: the sshd sets ``TMUX_TMPDIR``
for its sessions (``SetEnv``), so the same ``-L`` socket name names a different server on each box, and a
sweep that mixed boxes up would report the wrong panes. Box ``c`` sleeps 3 s before any command that lists
panes (a ``ForceCommand``), so stopping its sshd during that sleep stops it mid-sweep.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import Sshd, close_ssh_masters

from gpu_preflight.server.cli import main
from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch import dispatch, heartbeat_all
from gpu_preflight.tools.dispatch.heartbeat_model import HeartbeatReport
from gpu_preflight.tools.hosts import Host, call

SHELL = "exec env PS1='$ ' HISTFILE=/dev/null PROMPT_COMMAND= /bin/bash --norc --noprofile"
SLOW_SWEEP = '#!/bin/sh\ncase " $* " in *" list-panes -a "*) sleep 3;; esac\nexec {tmux} "$@"\n'
"""Box c's ``tmux``, first on its PATH: a sweep's pane listing takes 3 s there, whichever way ssh carried it
(one ssh per command, or a line written into an open remote shell: an sshd ForceCommand sees only the latter's
``sh``)."""


def _slow_tmux(root: Path) -> Path:
    shim = root / "slowbin"
    shim.mkdir(exist_ok=True)
    (shim / "tmux").write_text(SLOW_SWEEP.format(tmux=shutil.which("tmux")))
    (shim / "tmux").chmod(0o755)
    return shim


class Fleet:
    def __init__(self, socket_name: str) -> None:
        self.socket_name = socket_name
        self.hosts: dict[str, Host] = {}
        self.servers: dict[str, Sshd] = {}
        self.tmpdirs: dict[str, Path] = {}

    def tmux(self, name: str, *args: str) -> str:
        done = call(self.hosts[name], ["tmux", "-L", self.socket_name, *args], timeout_s=10)
        assert done.rc == 0, done
        return done.stdout

    def shell(self, name: str) -> str:
        pane = self.tmux(name, "new-window", "-d", "-P", "-F", "#{pane_id}", SHELL).strip()
        deadline = time.monotonic() + 10
        while self.tmux(name, "capture-pane", "-p", "-t", pane).rstrip().splitlines()[-1:] != ["$"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return pane

    def pane_ids(self, name: str) -> set[str]:
        return set(self.tmux(name, "list-panes", "-a", "-F", "#{pane_id}").split())


@pytest.fixture
def fleet(ssh_client_key: Path, tmp_path: Path, sshd_factory: list[Sshd],
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.setenv("PREFLIGHT_REMOTE_STATE_DIR", str(tmp_path / "box-state"))
    boxes = Fleet(f"pffleet-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    for name in ("a", "b", "c"):
        tmpdir = tmp_path / f"tmux-{name}"
        tmpdir.mkdir()
        slow = [f"PATH={_slow_tmux(tmp_path)}:/usr/local/bin:/usr/bin:/bin"] if name == "c" else []
        extra = [" ".join(["SetEnv", f"TMUX_TMPDIR={tmpdir}", *slow])]
        srv = Sshd(tmp_path / f"sshd-{name}", ssh_client_key, extra_config=extra)
        sshd_factory.append(srv)
        srv.trust()
        srv.start()
        boxes.servers[name], boxes.tmpdirs[name] = srv, tmpdir
        boxes.hosts[name] = srv.register(name)
        boxes.tmux(name, "-f", "/dev/null", "new-session", "-d", "-s", "box", "-x", "100", "-y", "30", "sleep 100000")
    try:
        yield boxes
    finally:
        close_ssh_masters()
        for tmpdir in boxes.tmpdirs.values():
            for sock in tmpdir.glob(f"tmux-*/{boxes.socket_name}"):
                subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True, timeout=10, check=False)


def _by_host(report: HeartbeatReport) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for hb in report.heartbeats:
        found.setdefault(hb.host or "?", {})[hb.pane_id or "?"] = hb.state
    return found


def test_fleet_sweep_reports_each_box_and_a_box_stopped_mid_sweep(fleet: Fleet, tmp_path: Path) -> None:
    shell_a = fleet.shell("a")
    done = dispatch(shell_a, "(exit 3)", host="a", socket_name=fleet.socket_name)
    assert done.status == "submitted", done
    shell_b = fleet.shell("b")
    fleet.tmux("b", "send-keys", "-t", shell_b, "sleep 60", "Enter")
    fleet.shell("c")
    want = {name: fleet.pane_ids(name) for name in ("a", "b")}
    assert want["a"] & want["b"]  # the same pane ids on two boxes: only the host tells them apart

    reports: list[HeartbeatReport] = []
    worker = threading.Thread(target=lambda: reports.append(
        heartbeat_all(hosts="all", socket_name=fleet.socket_name, timeout_s=8)))
    started = time.monotonic()
    worker.start()
    time.sleep(1.0)  # box c is in its 3 s sleep before listing its panes
    fleet.servers["c"].stop()
    worker.join(timeout=20)
    elapsed_s = time.monotonic() - started
    assert reports, "the sweep did not return"
    report = reports[0]
    assert elapsed_s < 8, elapsed_s
    hosts = {h.name: h for h in report.hosts or []}
    assert set(hosts) == {"a", "b", "c"}
    assert hosts["a"].reachable and hosts["b"].reachable and hosts["a"].panes == len(want["a"])
    assert not hosts["c"].reachable and hosts["c"].status in {"connection_dropped", "host_unreachable"}, hosts["c"]
    states = _by_host(report)
    assert set(states) == {"a", "b"}  # nothing is claimed about c's panes: not pane_gone, not listed
    assert {name: set(panes) for name, panes in states.items()} == want
    assert states["b"][shell_b] == "running"
    beat_a = next(hb for hb in report.heartbeats if hb.host == "a" and hb.pane_id == shell_a)
    assert (beat_a.state, beat_a.exit_code, beat_a.job_id) == ("idle_at_prompt", 3, done.job_id), beat_a


def test_cli_sweep_of_named_hosts_and_unknown_host(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    pane = fleet.shell("b")
    assert main(["heartbeat", "--all", "--host", "a", "--host", "b", "-L", fleet.socket_name, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [h["name"] for h in data["hosts"]] == ["a", "b"] and all(h["reachable"] for h in data["hosts"])
    assert {(hb["host"], hb["pane_id"]) for hb in data["heartbeats"]} >= {("b", pane)}
    assert {hb["host"] for hb in data["heartbeats"]} == {"a", "b"}
    with pytest.raises(PreflightError, match="nosuch"):
        heartbeat_all(hosts=["a", "nosuch"], socket_name=fleet.socket_name)



def test_a_run_launched_on_a_host_keeps_it(fleet: Fleet, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from gpu_preflight.tools.dispatch import launch_command
    from gpu_preflight.tools.dispatch.stop import interrupt_run
    from gpu_preflight.tools.telemetry.runcheck import resolve_run

    pane = fleet.shell("a")
    marker = tmp_path / "ran-on-a"
    launched = launch_command(pane, f"touch {marker}; sleep 1; exit 4", kind="full", host="a",
                              socket_name=fleet.socket_name, log_path="/box/only/train.log")
    assert launched.dispatch.status == "submitted" and launched.run is not None, launched
    run = launched.run
    assert run.host == "a"
    assert main(["heartbeat", run.run_id, "--json"]) == 0  # no --host, no socket: the record has them
    live = json.loads(capsys.readouterr().out)
    assert (live["host"], live["run_id"], live["pane_id"]) == ("a", run.run_id, pane)
    assert live["state"] == "running" and live["log_size_bytes"] is None, live  # no log on the box yet
    deadline = time.monotonic() + 10
    while True:
        assert main(["heartbeat", run.run_id, "--json"]) == 0
        ended = json.loads(capsys.readouterr().out)
        if ended["state"] == "exited" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (ended["state"], ended["exit_code"], ended["exit_source"]) == ("exited", 4, "exit_record"), ended
    assert 1.0 <= ended["elapsed_s"] < 5 and marker.exists()
    inputs, _, _, _ = resolve_run(run.run_id, {}, with_heartbeat=False)
    assert (inputs.log_path, inputs.log_host) == ("/box/only/train.log", "a"), inputs  # read on the box
    assert interrupt_run(run.run_id).already_ended  # read on the box, never a local pane with the same id
    fleet.servers["a"].stop()
    assert main(["heartbeat", "--runs", "--json"]) == 0
    down = [hb for hb in json.loads(capsys.readouterr().out)["heartbeats"] if hb["run_id"] == run.run_id]
    assert [hb["state"] for hb in down] == ["host_unreachable"], down


def _type(fleet: Fleet, name: str, pane: str, line: str) -> None:
    fleet.tmux(name, "send-keys", "-t", pane, "-l", line)
    fleet.tmux(name, "send-keys", "-t", pane, "Enter")


def test_sweep_reads_an_agent_samples_cpu_and_sees_a_read_in_one_round_trip(
        fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Box a runs the real Claude Code (idle: silent, no CPU, read from its screen), ``sleep 1000`` (silent, no
    CPU: hung), a silent busy loop (silent, CPU: running), ``python3 -c 'input()'`` and ``sh -c 'read x'``
    (blocked reading the terminal: waiting_for_input); one sweep, ONE ssh round trip to the box."""
    from realapps.apps import start_app
    from realapps.install import ensure_installed, why_missing
    from realapps.model_server import ModelServer

    from gpu_preflight.tools.dispatch import heartbeat
    from gpu_preflight.tools.dispatch.tmuxcmd import Tmux

    if ensure_installed("claude") is None:
        pytest.skip(why_missing("claude"))
    monkeypatch.setenv("TMUX_TMPDIR", str(fleet.tmpdirs["a"]))  # start_app's local tmux calls reach box a's server
    (tmp_path / "project").mkdir()
    with ModelServer() as server:
        app = start_app("claude", server, fleet.socket_name, tmp_path / "project")
        try:
            panes = {what: fleet.shell("a") for what in ("sleep", "spin", "input", "read")}
            _type(fleet, "a", panes["sleep"], "sleep 1000")
            _type(fleet, "a", panes["spin"], "python3 -c 'while True: pass'")
            _type(fleet, "a", panes["input"], "python3 -c 'input()'")
            _type(fleet, "a", panes["read"], "sh -c 'read x'")
            time.sleep(2.0)  # every pane silent past a 1 s hang threshold
            calls: list[int] = []
            real = Tmux._remote

            def counted(self: Tmux, *args: object, **kwargs: object) -> str:
                calls.append(1)
                return real(self, *args, **kwargs)  # type: ignore[arg-type]

            monkeypatch.setattr(Tmux, "_remote", counted)
            sweeps, deadline = 0, time.monotonic() + 15  # just booted, the app redraws its welcome screen a while
            while True:
                report = heartbeat_all(hosts=["a"], socket_name=fleet.socket_name, hang_after_s=1.0,
                                       cpu_sample_s=0.3)
                sweeps += 1
                beats = {hb.pane_id: hb for hb in report.heartbeats}
                if beats[app.pane_id].state != "working" or time.monotonic() > deadline:
                    break
            monkeypatch.setattr(Tmux, "_remote", real)
            assert len(calls) == sweeps, calls  # one script per sweep: every pane, agent and CPU sample included
            print(f"sweep of box a, {len(beats)} panes (an agent, 0.3 s CPU sample): {report.scan_ms:.0f} ms")
            agent = beats[app.pane_id]
            assert (agent.state, agent.agent, agent.last_error_line) == ("idle", "claude", None), agent
            hung = beats[panes["sleep"]]
            assert (hung.state, hung.cpu_sample_busy) == ("hung", False), hung
            assert "no CPU in a 0.3 s sample on the box" in hung.reason, hung
            spin = beats[panes["spin"]]
            assert (spin.state, spin.cpu_sample_busy) == ("running", True), spin
            assert spin.seconds_since_output_s is not None and spin.seconds_since_output_s >= 1.0, spin
            for what in ("input", "read"):
                assert beats[panes[what]].state == "waiting_for_input", beats[panes[what]]
            # a single remote pane heartbeat says the same, from its own look
            one = {what: heartbeat(target=panes[what], socket_name=fleet.socket_name, host="a", hang_after_s=1.0)
                   for what in ("input", "spin")}
            assert (one["input"].state, one["spin"].state) == ("waiting_for_input", "running"), one
            _type(fleet, "a", panes["input"], "typed")  # the read returns: the shell is back at its prompt
            deadline = time.monotonic() + 10
            while (after := heartbeat(target=panes["input"], socket_name=fleet.socket_name, host="a")).state \
                    != "idle_at_prompt":
                assert time.monotonic() < deadline, after
                time.sleep(0.1)
            fleet.tmux("a", "send-keys", "-t", panes["spin"], "C-c")
        finally:
            app.stop()
