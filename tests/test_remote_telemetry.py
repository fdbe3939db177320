"""A run's log on a box, read over ssh (issue 17): ``check``, the run heartbeat and the reader itself.

The box is this machine behind a real sshd (tests/sshd.py) with its own tmux server (``TMUX_TMPDIR`` set by
the sshd for its sessions). The run is a real program launched on the box through the dispatcher: a python
loop printing nanoGPT-style ``iter N: loss X, time Yms`` lines to a log file, then waiting. Every expected
value below is computed from the lines the program printed (read back from the file), not from our parser.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from sshd import Sshd, close_ssh_masters

from gpu_preflight.server.cli import main
from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.hosts import Host, call, close_master
from gpu_preflight.tools.hosts.remotefile import RemoteFileUnreachable, read_remote

SHELL = "exec env PS1='$ ' HISTFILE=/dev/null PROMPT_COMMAND= /bin/bash --norc --noprofile"
STEPS = 40
TRAIN = """import sys, time
for i in range(1, {steps} + 1):
    print(f"iter {{i}}: loss {{5.0 - i * 0.01:.4f}}, time {{20 + i % 7}}.50ms", flush=True)
    time.sleep(0.02)
print("waiting", flush=True)
time.sleep({wait})
"""


@dataclass
class Box:
    host: Host
    sshd: Sshd
    socket_name: str
    tmpdir: Path

    def tmux(self, *args: str) -> str:
        done = call(self.host, ["tmux", "-L", self.socket_name, *args], timeout_s=10)
        assert done.rc == 0, done
        return done.stdout

    def shell(self) -> str:
        pane = self.tmux("new-window", "-d", "-P", "-F", "#{pane_id}", SHELL).strip()
        deadline = time.monotonic() + 10
        while self.tmux("capture-pane", "-p", "-t", pane).rstrip().splitlines()[-1:] != ["$"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return pane


STUB_BIN = "stub-bin"
"""A folder per box first on its PATH (``SetEnv PATH``): tests put a stand-in ``nvidia-smi`` there, for the GPU
this machine does not have (empty, the box has no ``nvidia-smi``, as this machine has none), or a ``tmux``
that answers late."""


def _start_box(name: str, key: Path, root: Path, factory: list[Sshd], socket_name: str) -> Box:
    tmpdir = root / f"tmux-{name}"
    tmpdir.mkdir()
    (root / STUB_BIN / name).mkdir(parents=True)
    path = f"{root / STUB_BIN / name}:/usr/local/bin:/usr/bin:/bin"
    srv = Sshd(root / f"sshd-{name}", key, extra_config=[f"SetEnv TMUX_TMPDIR={tmpdir} PATH={path}"])
    factory.append(srv)
    srv.trust()
    srv.start()
    host = srv.register(name)
    found = Box(host, srv, socket_name, tmpdir)
    found.tmux("-f", "/dev/null", "new-session", "-d", "-s", "box", "-x", "120", "-y", "30", "sleep 100000")
    return found


def _kill_tmux(one: Box) -> None:
    for sock in one.tmpdir.glob(f"tmux-*/{one.socket_name}"):
        subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True, timeout=10, check=False)


@pytest.fixture
def box(ssh_client_key: Path, tmp_path: Path, sshd_factory: list[Sshd],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Box]:
    monkeypatch.setenv("PREFLIGHT_REMOTE_STATE_DIR", str(tmp_path / "box-state"))
    found = _start_box("box", ssh_client_key, tmp_path, sshd_factory, f"pftele-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield found
    finally:
        close_ssh_masters()
        _kill_tmux(found)


@pytest.fixture
def box2(box: Box, ssh_client_key: Path, tmp_path: Path, sshd_factory: list[Sshd]) -> Iterator[Box]:
    """A second box (its own sshd and tmux server) beside ``box``."""
    found = _start_box("box2", ssh_client_key, tmp_path, sshd_factory, box.socket_name)
    try:
        yield found
    finally:
        _kill_tmux(found)


def _launch(box: Box, tmp_path: Path, *, kind: Literal["probe", "full"] = "full",
            cap_steps: int | None = None) -> tuple[str, Path]:
    from gpu_preflight.tools.dispatch import launch_command

    script = tmp_path / f"train-{box.host.name}.py"
    script.write_text(TRAIN.format(steps=STEPS, wait=60))
    log = tmp_path / f"train-{box.host.name}.log"
    launched = launch_command(box.shell(), f"python3 -u {script} > {log} 2>&1", kind=kind, host=box.host.name,
                              socket_name=box.socket_name, log_path=str(log), cap_steps=cap_steps)
    assert launched.dispatch.status == "submitted" and launched.run is not None, launched
    deadline = time.monotonic() + 20
    while "waiting" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the run on the box never finished its steps"
        time.sleep(0.1)
    return launched.run.run_id, log


def _printed(log: Path) -> list[tuple[int, float, float]]:
    """(step, loss, step time in s) of each line the program printed, split by hand."""
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("iter "):
            head, took = line.split(", ")  # "iter 3: loss 4.9700", "time 23.50ms"
            words = head.split()
            out.append((int(words[1].rstrip(":")), float(words[3]), float(took.split()[1][:-2]) / 1000))
    return out


def test_check_of_a_run_on_a_box_reads_its_log_over_ssh(box: Box, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    run_id, log = _launch(box, tmp_path)
    printed = _printed(log)
    assert len(printed) == STEPS
    assert main(["check", run_id, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["log"]["host"] == "box" and got["log"]["path"] == str(log), got["log"]
    assert got["log"]["format"] == "nanogpt" and got["log"]["samples"] == STEPS
    assert got["log"]["size_bytes"] == log.stat().st_size
    assert got["step_last"] == printed[-1][0] == STEPS
    assert got["step_time_source"] == "log"
    assert got["window"]["loss_last"] == pytest.approx(printed[-1][1])
    times = [t for _, _, t in printed]  # 20.5 .. 26.5 ms as printed: a window's median lies among them
    assert min(times) <= got["window"]["step_time_median_s"] <= max(times)
    assert got["window"]["step_last"] == STEPS
    beat = got["heartbeat"]
    assert (beat["host"], beat["state"]) == ("box", "running"), beat
    assert beat["log_size_bytes"] == log.stat().st_size and beat["last_log_line"] == "waiting"
    assert 0 <= beat["seconds_since_log_write_s"] < 30
    assert not any("not read" in note for note in got["notes"]), got["notes"]

    from gpu_preflight.tools.telemetry.calibrate_run import measure_files
    from gpu_preflight.tools.telemetry.plot_inputs import plot_inputs
    from gpu_preflight.tools.telemetry.runcheck import resolve_run

    drawn = plot_inputs(run_id, {})  # run_plot / preflight plot of the run: the same remote read
    assert [p.sample.step for p in drawn.timeline.logs] == [step for step, _, _ in printed]
    inputs, _, _, _ = resolve_run(run_id, {}, with_heartbeat=False)  # calibrate --run: the same again
    measured, _, _ = measure_files(inputs)
    assert measured["steps_measured"] == STEPS - 1  # the first record is dropped as warm-up
    assert measured["median_step_time_s"] == pytest.approx(statistics.median(t for _, _, t in printed[1:]))


def test_box_down_is_host_unreachable_not_a_crash(box: Box, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run_id, log = _launch(box, tmp_path)
    box.sshd.stop()
    close_master(box.host)
    assert main(["check", run_id, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["heartbeat"]["state"] == "host_unreachable", got["heartbeat"]
    assert got["decision"]["decision"] == "wait" and "host_unreachable" in got["decision"]["reason"]
    assert any(f"the log {log} on box was not read: host_unreachable" in n for n in got["notes"]), got["notes"]
    assert got.get("step_last") is None  # nothing is claimed from a log that was not read
    assert main(["heartbeat", run_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "host_unreachable"


def test_reader_takes_the_path_as_text_and_names_it_on_the_host(box: Box, tmp_path: Path) -> None:
    marker = Path.home() / f"pf-injected-{uuid.uuid4().hex[:8]}"  # a remote shell runs in the home folder
    odd = tmp_path / f"a $(touch {marker.name}); b.log"
    odd.write_bytes(b"one\ntwo\nthree\n")
    whole = read_remote(box.host, str(odd))
    assert whole is not None and whole.data == b"one\ntwo\nthree\n" and whole.size_bytes == 14
    assert whole.mtime_epoch_s == pytest.approx(odd.stat().st_mtime, abs=1e-6)
    assert (whole.dev, whole.ino) == (odd.stat().st_dev, odd.stat().st_ino)
    assert not marker.exists()
    tail = read_remote(box.host, str(odd), last_bytes=6)
    assert tail is not None and (tail.data, tail.start_bytes, tail.to_end) == (b"three\n", 8, True)
    part = read_remote(box.host, str(odd), offset_bytes=4, max_bytes=3)
    assert part is not None and (part.data, part.to_end) == (b"two", False)
    missing = str(tmp_path / "nope.log")
    assert read_remote(box.host, missing, must_exist=False) is None
    with pytest.raises(PreflightError, match="does not exist there") as refused:
        read_remote(box.host, missing, field="log_path")
    assert (refused.value.field, refused.value.got) == ("log_path", f"{missing} on box")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(PreflightError, match="not a regular file"):
        read_remote(box.host, str(fifo))
    assert time.monotonic() - started < 5
    box.sshd.stop()
    close_master(box.host)
    with pytest.raises(RemoteFileUnreachable) as down:
        read_remote(box.host, str(odd), timeout_s=5)
    assert down.value.status == "host_unreachable" and down.value.field == "host"


def test_probe_past_its_step_cap_on_a_box_is_stopped_and_proven(box: Box, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    run_id, _ = _launch(box, tmp_path, cap_steps=10, kind="probe")
    assert main(["check", run_id, "--json"]) == 3  # kill: past its cap
    got = json.loads(capsys.readouterr().out)
    assert got["kind"] == "probe" and got["probe_cap"]["reached"] and got["probe_cap"]["steps_done"] == STEPS
    stop = got["enforced"]
    assert stop["stopped"] and stop["interrupts_sent"] >= 1 and stop["exit_code"] == 130, stop
    records = list((tmp_path / "box-state" / "jobs").glob("*.exit"))  # the proof, on the box
    assert len(records) == 1 and records[0].read_text().split()[0] == "130"
    assert main(["heartbeat", run_id, "--json"]) == 0
    beat = json.loads(capsys.readouterr().out)
    assert (beat["state"], beat["exit_code"], beat["exit_source"]) == ("exited", 130, "exit_record"), beat


SMI_ROWS = (
    "0, NVIDIA H100 80GB HBM3, GPU-0f1e2d3c-aaaa-bbbb-cccc-000000000001, 97, 41, 61234, 81559, 612.40, 700.00, 63, "
    "1980, 2619, [N/A], 0x0000000000000000, 550.54.15\n"
    "1, NVIDIA H100 80GB HBM3, GPU-0f1e2d3c-aaaa-bbbb-cccc-000000000002, 12, 3, 1020, 81559, 88.10, 700.00, 41, "
    "345, 2619, [N/A], 0x0000000000000004, 550.54.15\n"
)
"""Two rows we wrote ourselves in nvidia-smi's documented ``--format=csv,noheader,nounits`` layout."""


def _stub_smi(tmp_path: Path, body: str) -> Path:
    """A stand-in ``nvidia-smi`` first on the box's PATH; it logs its arguments so the query can be checked."""
    stub = tmp_path / STUB_BIN / "box" / "nvidia-smi"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/smi-args"\n{body}\n')
    stub.chmod(0o755)
    return stub


def test_gpu_snapshot_of_a_box_without_nvidia_smi_is_no_gpu(box: Box, capsys: pytest.CaptureFixture[str]) -> None:
    assert call(box.host, ["sh", "-c", "command -v nvidia-smi || echo none"]).stdout.strip() == "none"
    assert main(["gpu-snapshot", "--host", "box", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["available"], got["source"], got["host"]) == (False, "nvidia-smi", "box"), got
    assert got["answer"]["kind"] == "no_gpu" and "no nvidia-smi on the box" in got["answer"]["message"]


def test_gpu_snapshot_over_ssh_parses_nvidia_smi_rows(box: Box, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from gpu_preflight.tools.telemetry.remote_nvsmi import QUERY_COLUMNS

    _stub_smi(tmp_path, f"cat <<'EOF'\n{SMI_ROWS}EOF")
    assert main(["gpu-snapshot", "--host", "box", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    args = (tmp_path / "smi-args").read_text().split()
    assert args == [f"--query-gpu={','.join(QUERY_COLUMNS)}", "--format=csv,noheader,nounits"]
    assert (got["available"], got["source"], got["host"], got["driver_version"]) == (
        True, "nvidia-smi", "box", "550.54.15")
    first, second = got["gpus"]
    assert (first["gpu_index"], first["name"], first["uuid"]) == (
        0, "NVIDIA H100 80GB HBM3", "GPU-0f1e2d3c-aaaa-bbbb-cccc-000000000001")
    assert (first["gpu_util_pct"], first["mem_used_mib"], first["mem_total_mib"], first["power_w"]) == (
        97, 61234, 81559, 612.4)
    assert (first["temp_c"], first["sm_clock_mhz"], first["power_limit_w"]) == (63, 1980, 700)
    assert "fan_pct" not in first  # [N/A] in the row
    assert (second["gpu_index"], second["gpu_util_pct"], second["mem_used_mib"]) == (1, 12, 1020)
    assert second["throttle_reasons"] and not first["throttle_reasons"]  # mask 0x4 vs 0x0

    _stub_smi(tmp_path, "echo 'NVIDIA-SMI has failed because it couldn'\\''t communicate with the NVIDIA driver.'"
              "; exit 9")
    assert main(["gpu-snapshot", "--host", "box", "--json"]) == 0
    failed = json.loads(capsys.readouterr().out)
    assert failed["available"] is False and failed["answer"]["kind"] == "no_gpu"
    assert "status 9" in failed["answer"]["message"] and "communicate" in failed["answer"]["message"]


def test_ingest_of_a_capture_on_a_box_matches_the_local_read(box: Box, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "smi.csv"
    header = ("timestamp, index, utilization.gpu [%], utilization.memory [%], memory.used [MiB], "
              "memory.total [MiB], power.draw [W]\n")
    capture.write_text(header + "".join(f"2026/12/07 19:00:{s:02d}.000, 0, {50 + s} %, 20 %, 1000 MiB, 81559 MiB, "
                                        f"300.00 W\n" for s in range(5)))
    assert main(["ingest", str(capture), "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(["ingest", str(capture), "--host", "box", "--json"]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert remote == local and len(remote["samples"]) == 5
    assert [s["gpu_util_pct"] for s in remote["samples"]] == [50, 51, 52, 53, 54]
    assert main(["ingest", str(tmp_path / "nope.csv"), "--host", "box", "--json"]) != 0
    said = capsys.readouterr().err
    assert "FILE: got" in said and "a file that exists on box (it does not exist there)" in said


def test_heartbeat_runs_sweeps_the_runs_of_every_host_and_a_box_down(
        box: Box, box2: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_a, log_a = _launch(box, tmp_path)
    run_b, _ = _launch(box2, tmp_path)
    box2.sshd.stop()
    close_master(box2.host)
    started = time.monotonic()
    assert main(["heartbeat", "--runs", "--json"]) == 0
    assert time.monotonic() - started < 10  # within the runner's default deadline
    got = json.loads(capsys.readouterr().out)
    beats = {hb["run_id"]: hb for hb in got["heartbeats"]}
    assert set(beats) == {run_a, run_b}
    assert (beats[run_a]["host"], beats[run_a]["state"]) == ("box", "running"), beats[run_a]
    assert beats[run_a]["log_size_bytes"] == log_a.stat().st_size and beats[run_a]["last_log_line"] == "waiting"
    assert (beats[run_b]["host"], beats[run_b]["state"]) == ("box2", "host_unreachable"), beats[run_b]
    hosts = {h["name"]: h for h in got["hosts"]}
    assert hosts["box"]["reachable"] and not hosts["box2"]["reachable"]
    assert hosts["box2"]["status"] == "host_unreachable", hosts["box2"]
    assert main(["heartbeat", "--runs", "--host", "box", "--json"]) == 0
    only = json.loads(capsys.readouterr().out)
    assert [hb["run_id"] for hb in only["heartbeats"]] == [run_a]
    assert [h["name"] for h in only["hosts"]] == ["box"]


def test_runs_sweep_returns_at_its_deadline_with_a_slow_box_unknown(
        box: Box, box2: Box, tmp_path: Path) -> None:
    from gpu_preflight.tools.dispatch import heartbeat_all

    run_a, _ = _launch(box, tmp_path)
    run_b, _ = _launch(box2, tmp_path)
    slow = tmp_path / "box2-slow"
    shim = tmp_path / STUB_BIN / "box2" / "tmux"  # box2's tmux answers 6 s late once the mark exists
    shim.write_text(f'#!/bin/sh\n[ -e "{slow}" ] && sleep 6\nexec {shutil.which("tmux")} "$@"\n')
    shim.chmod(0o755)
    slow.touch()
    started = time.monotonic()
    report = heartbeat_all(scope="runs", timeout_s=2)
    elapsed_s = time.monotonic() - started
    assert elapsed_s < 4.5, elapsed_s  # the deadline (2 s, +1 s grace), not box2's 6 s
    beats = {hb.run_id: hb for hb in report.heartbeats}
    assert beats[run_a].state == "running" and beats[run_b].state == "host_unreachable", beats
    assert "within 2 s" in beats[run_b].reason
    hosts = {h.name: h.reachable for h in report.hosts or []}
    assert hosts == {"box": True, "box2": False}


UNTIMED = """import os, time
for i in range(1, 6):
    print(f"step {{i}} loss {{5 - i * 0.1:.2f}}", flush=True)
while not os.path.exists("{go}"):
    time.sleep(0.05)
for i in range(6, 11):
    time.sleep(0.15)
    print(f"step {{i}} loss {{5 - i * 0.1:.2f}}", flush=True)
time.sleep(60)
"""


def test_a_remote_log_without_step_times_is_timed_by_the_box_write_times(
        box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gpu_preflight.tools.dispatch import launch_command

    go, log = tmp_path / "go", tmp_path / "untimed.log"
    script = tmp_path / "untimed.py"
    script.write_text(UNTIMED.format(go=go))
    launched = launch_command(box.shell(), f"python3 -u {script} > {log} 2>&1", kind="full", host="box",
                              socket_name=box.socket_name, log_path=str(log),
                              log_regex=r"^step (?P<step>\d+) loss (?P<loss>[\d.]+)$")
    assert launched.run is not None, launched

    def grown_to(step: int) -> float:
        deadline = time.monotonic() + 20
        while f"step {step} " not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return log.stat().st_mtime_ns / 1e9

    first = grown_to(5)
    assert main(["check", launched.run.run_id, "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["step_last"] == 5 and before.get("step_time_source") is None  # one look: nothing to time yet
    go.touch()
    second = grown_to(10)
    assert main(["check", launched.run.run_id, "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert (after["step_last"], after["step_time_source"]) == (10, "write_times"), after
    # (written at step 10 - written at step 5) / 5 steps, from this machine's stat of the same file
    assert after["window"]["step_time_median_s"] == pytest.approx((second - first) / 5, abs=1e-6)
