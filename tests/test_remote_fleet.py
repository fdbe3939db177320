"""``heartbeat_all`` over a fleet (issue 17, part 3): three real sshd's stand in for three boxes.

Each box is this machine behind its own sshd, but with its own tmux server: the sshd sets ``TMUX_TMPDIR``
for its sessions (``SetEnv``), so the same ``-L`` socket name names a different server on each box, and a
sweep that mixed boxes up would report the wrong panes. Box ``c`` sleeps 3 s before any command that lists
panes (a ``ForceCommand``), so stopping its sshd during that sleep stops it mid-sweep.
"""

from __future__ import annotations

import contextlib
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
from sshd import Sshd

from gpu_preflight.server.cli import main
from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch import dispatch, heartbeat_all
from gpu_preflight.tools.dispatch.heartbeat_model import HeartbeatReport
from gpu_preflight.tools.hosts import Host, add_host, call, close_master, list_hosts, make_host
from gpu_preflight.tools.hosts.ssh import control_dir

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
        boxes.hosts[name] = add_host(make_host(name, "127.0.0.1", port=srv.port, identity=str(srv.client_key),
                                               options=[f"UserKnownHostsFile={srv.known_hosts}",
                                                        "IdentitiesOnly=yes"]))
        boxes.tmux(name, "-f", "/dev/null", "new-session", "-d", "-s", "box", "-x", "100", "-y", "30", "sleep 100000")
    try:
        yield boxes
    finally:
        for host in list_hosts():
            close_master(host)
        with contextlib.suppress(OSError):
            control_dir().rmdir()
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
