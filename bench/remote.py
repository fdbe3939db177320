"""Remote benchmark (issue 17's goals), local and remote side by side in one run; prints figures, no asserts.

Why: the issue sets four goals, each measured here against real ``sshd``'s on 127.0.0.1 (tests/sshd.py,
Debian's ``/usr/sbin/sshd``), each box with its own tmux server (``SetEnv TMUX_TMPDIR``):

1. a confirmed shell dispatch over SSH on a warm connection costs at most 3x the local one (median of
   ``--dispatches``; also with ``PREFLIGHT_SSH_SESSION=0``, one ssh per command, for comparison);
2. the first call to a host costs at most one connection set-up more: (first dispatch - warm median) vs a
   cold ``ssh ... true`` (no master open), each ``--cold`` times;
3. ``heartbeat_all`` over ``--hosts`` boxes x ``--panes`` panes costs at most 2x one box's sweep;
4. every fault is detected within the 10 s default, with 0 false ``submitted``: an unreachable host, sshd
   stopped mid-dispatch (the pane's ``bash`` waits 3 s before running the wrapper, so the dispatch is still
   polling for the start record when sshd dies) and mid-sweep (the box's ``tmux`` waits 3 s before listing
   panes), ``--faults`` times each.

Goals 1 and 3 again at a network distance: loopback has a ~0.05 ms round trip, a rented box 20-100 ms. Each
box is registered a second time (``<name>-wan``) with its ssh going through ``bench/wan_relay.py`` as its
``ProxyCommand``, which delays each direction by half of ``--rtt-ms`` (default 50 ms RTT). Every box is an
sshd on this machine, so the boxes' side of a fleet sweep (sshd sessions, shells, tmux servers) competes for
this machine's cores: each sweep line prints the CPU seconds that side used per sweep, and the machine's
busy share, so a reader sees when a ratio is CPU-bound rather than a property of the tool.

Everything it started is stopped at the end. Run: ``python bench/remote.py [--rounds 3] [--dispatches 5]
[--cold 2] [--faults 1] [--panes 25] [--hosts 4] [--rtt-ms 50]`` (needs sshd and tmux; ~1 minute at the
defaults).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sshd import Sshd, _descendants, keygen, missing_reason

SHELL = "exec env {env}PS1='$ ' HISTFILE=/dev/null PROMPT_COMMAND= /bin/bash --norc --noprofile"
SLOW_TMUX = '#!/bin/sh\ncase " $* " in *" list-panes -a "*) sleep 3;; esac\nexec {tmux} "$@"\n'
SLOW_BASH = "#!/bin/sh\nsleep 3\nexec /bin/bash \"$@\"\n"


def _wait(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting")
        time.sleep(0.05)


class Bench:
    """The boxes (sshd + tmux server each), a local tmux server, and what the bench needs from the package."""

    def __init__(self, root: Path, socket_name: str) -> None:
        from gpu_preflight.tools.hosts import add_host, call, make_host

        self.root, self.socket_name = root, socket_name
        self.key = keygen(root / "id_ed25519")
        self.servers: dict[str, Sshd] = {}
        self._add, self._make, self.call = add_host, make_host, call
        self.local = f"pfbench-local-{uuid.uuid4().hex[:8]}"

    def box(self, name: str, path: str = "") -> None:
        tmux_dir = self.root / f"tmux-{name}"
        tmux_dir.mkdir()
        env = " ".join(["SetEnv", f"TMUX_TMPDIR={tmux_dir}", *([f"PATH={path}"] if path else [])])
        srv = Sshd(self.root / f"sshd-{name}", self.key, extra_config=[env])
        self.servers[name] = srv
        srv.trust()
        srv.start()
        self._add(self._make(name, "127.0.0.1", port=srv.port, identity=str(self.key),
                             options=[f"UserKnownHostsFile={srv.known_hosts}", "IdentitiesOnly=yes"]))
        self.tmux(name, "-f", "/dev/null", "new-session", "-d", "-s", "b", "-x", "80", "-y", "24", "sleep 1000000")

    def wan(self, name: str, rtt_ms: float) -> str:
        """Box ``name`` again as ``<name>-wan``: its ssh through the relay (``rtt_ms`` round trip), its own master.

        The destination is 127.0.0.2 (loopback too, never dialled: the relay connects to the box's real port)
        because the master socket is named by destination, port and user (``%C``): the same as the loopback
        host's would share its master and skip the relay.
        """
        srv, wan_name = self.servers[name], f"{name}-wan"
        kind, key = (srv.root / "host_key.pub").read_text().split()[:2]
        known = self.root / f"known-{wan_name}"
        known.write_text(f"[127.0.0.2]:{srv.port} {kind} {key}\n")
        relay = f"{sys.executable} {Path(__file__).with_name('wan_relay.py')} {rtt_ms / 2:g} 127.0.0.1 {srv.port}"
        self._add(self._make(wan_name, "127.0.0.2", port=srv.port, identity=str(self.key),
                             options=[f"UserKnownHostsFile={known}", "IdentitiesOnly=yes", f"ProxyCommand={relay}"]))
        return wan_name

    def box_side_cpu_s(self) -> float:
        """CPU seconds used so far by every box's side: each sshd and what it forked (sessions, their shells and
        the commands those waited for), and each box's tmux server with its children."""
        pids: set[int] = set()
        for srv in self.servers.values():
            if srv.proc is not None:
                pids.update([srv.proc.pid, *_descendants(srv.proc.pid)])
        for sock in self.root.glob(f"tmux-*/tmux-*/{self.socket_name}"):
            done = subprocess.run(["tmux", "-S", str(sock), "display-message", "-p", "#{pid}"], capture_output=True,
                                  text=True, timeout=10, check=False)
            if done.stdout.strip().isdigit():
                server = int(done.stdout)
                pids.update([server, *_descendants(server)])
        return sum(_proc_cpu_s(pid) for pid in pids)

    def tmux(self, name: str, *args: str) -> str:
        from gpu_preflight.tools.hosts import get_host

        done = self.call(get_host(name), ["tmux", "-L", self.socket_name, *args], timeout_s=30)
        if done.rc != 0:
            raise RuntimeError(f"tmux on {name}: {done.stderr}")
        return done.stdout

    def shell(self, name: str | None, path: str = "") -> str:
        """A bash at a ``$ `` prompt on box ``name`` (None: the local server); ``path`` goes before its PATH."""
        env = f"PATH={path}:\"$PATH\" " if path else ""
        argv = ["new-window", "-d", "-P", "-F", "#{pane_id}", SHELL.format(env=env)]
        pane = (self.tmux(name, *argv) if name else self.local_tmux(*argv)).strip()
        _wait(lambda: (self.tmux(name, "capture-pane", "-p", "-t", pane) if name else
                       self.local_tmux("capture-pane", "-p", "-t", pane)).rstrip().splitlines()[-1:] == ["$"])
        return pane

    def local_tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.local, *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout

    def close(self) -> None:
        from gpu_preflight.tools.hosts import close_master, list_hosts

        for host in list_hosts():
            close_master(host)
        for srv in self.servers.values():
            srv.stop()
        for sock in self.root.glob(f"tmux-*/tmux-*/{self.socket_name}"):
            subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True, timeout=10, check=False)
        subprocess.run(["tmux", "-L", self.local, "kill-server"], capture_output=True, timeout=10, check=False)


def _proc_cpu_s(pid: int) -> float:
    """utime + stime + its waited-for children's (cutime + cstime) of ``pid``, from /proc; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> tuple[float, int]:
    """(busy CPU seconds of the whole machine since boot, cores) from /proc/stat (everything but idle, iowait)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1


def _dispatch_ms(bench: Bench, pane: str, host: str | None) -> float:
    from gpu_preflight.tools.dispatch import dispatch

    time.sleep(0.3)  # the previous `true` is back at its prompt
    result = dispatch(pane, "true", host=host, socket_name=bench.socket_name if host else bench.local)
    if result.status != "submitted":
        raise RuntimeError(f"dispatch: {result}")
    return result.latency_ms or 0.0


def dispatch_goals(bench: Bench, dispatches: int, cold: int, wan_host: str, rtt_ms: float) -> None:
    """Goals 1 and 2: warm local vs remote, with and without the session, and through the relay; the first call
    vs a cold ``ssh true``."""
    from gpu_preflight.tools.hosts import close_master, get_host
    from gpu_preflight.tools.hosts.ssh import ssh_argv

    bench.local_tmux("-f", "/dev/null", "new-session", "-d", "-s", "l", "-x", "80", "-y", "24", "sleep 1000000")
    local, remote = bench.shell(None), bench.shell("box0")
    host = get_host("box0")
    _dispatch_ms(bench, remote, "box0")  # warm
    times: dict[str, list[float]] = {"local": [], "remote": [], "remote, one ssh per command": []}
    for _ in range(dispatches):
        times["local"].append(_dispatch_ms(bench, local, None))
        times["remote"].append(_dispatch_ms(bench, remote, "box0"))
    os.environ["PREFLIGHT_SSH_SESSION"] = "0"
    _dispatch_ms(bench, remote, "box0")
    times["remote, one ssh per command"] = [_dispatch_ms(bench, remote, "box0") for _ in range(dispatches)]
    del os.environ["PREFLIGHT_SSH_SESSION"]
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"confirmed shell dispatch, median of {dispatches}: local {med['local']:.1f} ms, remote warm "
          f"{med['remote']:.1f} ms (ratio {med['remote'] / med['local']:.2f}x; goal <= 3x); one ssh per command "
          f"{med['remote, one ssh per command']:.1f} ms ({med['remote, one ssh per command'] / med['local']:.2f}x)")
    _dispatch_ms(bench, remote, wan_host)  # its master and session, through the relay
    wan = statistics.median([_dispatch_ms(bench, remote, wan_host) for _ in range(dispatches)])
    print(f"confirmed shell dispatch at {rtt_ms:g} ms RTT (bench/wan_relay.py), median of {dispatches}: remote warm "
          f"{wan:.1f} ms (ratio {wan / med['local']:.2f}x local; goal <= 3x), {(wan - med['remote']) / rtt_ms:.1f} "
          "round trips more than on loopback")
    firsts, setups = [], []
    for _ in range(cold):
        close_master(host)
        firsts.append(_dispatch_ms(bench, remote, "box0"))
        close_master(host)
        started = time.monotonic()
        done = subprocess.run(ssh_argv(host, ["true"]), stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        setups.append((time.monotonic() - started) * 1000)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode())
    extra, setup = statistics.median(firsts) - med["remote"], statistics.median(setups)
    print(f"first dispatch to a host (no master), median of {cold}: {statistics.median(firsts):.0f} ms = warm + "
          f"{extra:.0f} ms; one connection set-up (cold `ssh true`) {setup:.0f} ms (ratio {extra / setup:.2f}; "
          "goal <= 1)")


def sweep_goal(bench: Bench, names: list[str], rounds: int, panes: int, wan_names: list[str], rtt_ms: float) -> None:
    """Goal 3: one box's sweep vs the fleet's, warm, on loopback and through the relay."""
    from gpu_preflight.tools.hosts import get_host

    script = f"for i in $(seq 2 {panes}); do tmux -L {bench.socket_name} new-window -d bash --norc; done"
    for name in names:
        done = bench.call(get_host(name), ["sh", "-c", script], timeout_s=60)
        if done.rc != 0:
            raise RuntimeError(done.stderr)
    time.sleep(1.0)  # the shells reach their prompts
    _sweeps(bench, names, rounds, "loopback")
    _sweeps(bench, wan_names, rounds, f"at {rtt_ms:g} ms RTT")


def _sweeps(bench: Bench, names: list[str], rounds: int, label: str) -> None:
    """``rounds`` sweeps of the first box, then of all; their medians, the boxes' CPU and the machine's load."""
    from gpu_preflight.tools.dispatch import heartbeat_all

    def timed(hosts: list[str]) -> tuple[float, int]:
        started = time.monotonic()
        report = heartbeat_all(hosts=hosts, socket_name=bench.socket_name)
        return (time.monotonic() - started) * 1000, report.pane_count

    timed(names)  # every master and session open
    cpu_s, busy_s, wall_s = [bench.box_side_cpu_s()], [_machine_busy_s()[0]], [time.monotonic()]
    found: list[list[tuple[float, int]]] = []
    for hosts in (names[:1], names):
        found.append([timed(hosts) for _ in range(rounds)])
        cpu_s.append(bench.box_side_cpu_s())
        busy_s.append(_machine_busy_s()[0])
        wall_s.append(time.monotonic())
    one, fleet = found
    one_ms, fleet_ms = statistics.median(ms for ms, _ in one), statistics.median(ms for ms, _ in fleet)
    one_cpu, fleet_cpu = ((cpu_s[i + 1] - cpu_s[i]) / rounds for i in (0, 1))
    load = (busy_s[2] - busy_s[1]) / (wall_s[2] - wall_s[1])
    print(f"heartbeat_all {label}, warm median of {rounds}: one box ({one[0][1]} panes) {one_ms:.0f} ms, "
          f"{len(names)} boxes ({fleet[0][1]} panes) {fleet_ms:.0f} ms (ratio {fleet_ms / one_ms:.2f}x; goal <= 2x)"
          f"; boxes' side CPU per sweep: one box {one_cpu:.2f} s, {len(names)} boxes {fleet_cpu:.2f} s "
          f"({fleet_cpu / fleet_ms * 1000:.2f} cores busy for the boxes alone); machine busy during the "
          f"{len(names)}-box sweeps: {load:.2f} of {_machine_busy_s()[1]} cores")


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(work()))
    worker.start()
    return worker, out


def fault_goals(bench: Bench, faults: int) -> None:
    """Goal 4: each fault's detection time (from the moment the box went away) vs the 10 s default."""
    from gpu_preflight.tools.dispatch import dispatch, heartbeat_all

    srv, slow_bin = bench.servers["faulty"], bench.root / "slowbash"
    slow_bin.mkdir()
    (slow_bin / "bash").write_text(SLOW_BASH)
    (slow_bin / "bash").chmod(0o755)
    found: dict[str, list[tuple[float, str]]] = {"unreachable host (dispatch)": [], "sshd stopped mid-dispatch": [],
                                                 "sshd stopped mid-sweep": []}
    false_submitted = 0
    for _ in range(faults):
        pane = bench.shell("faulty", path=str(slow_bin))
        worker, out = _in_thread(lambda p=pane: dispatch(p, "true", host="faulty", socket_name=bench.socket_name,
                                                          start_timeout_s=6))
        _wait(lambda p=pane: "pf-job" in bench.tmux("faulty", "capture-pane", "-p", "-t", p))
        stopped = time.monotonic()
        srv.stop()
        worker.join(timeout=30)
        found["sshd stopped mid-dispatch"].append(((time.monotonic() - stopped) * 1000, out[0].status))
        false_submitted += out[0].status == "submitted"
        stopped = time.monotonic()
        result = dispatch(pane, "true", host="faulty", socket_name=bench.socket_name)
        found["unreachable host (dispatch)"].append(((time.monotonic() - stopped) * 1000, result.status))
        false_submitted += result.status == "submitted"
        srv.start()
        worker, out = _in_thread(lambda: heartbeat_all(hosts=["box0", "faulty"], socket_name=bench.socket_name,
                                                       timeout_s=10))
        time.sleep(1.0)  # the faulty box is in its 3 s wait before listing its panes
        stopped = time.monotonic()
        srv.stop()
        worker.join(timeout=30)
        sweep = {h.name: h for h in out[0].hosts or []}
        found["sshd stopped mid-sweep"].append(((time.monotonic() - stopped) * 1000, sweep["faulty"].status))
        srv.start()
    for what, seen in found.items():
        print(f"{what}: detected in {max(ms for ms, _ in seen):.0f} ms at most over {len(seen)} "
              f"(goal <= 10000 ms), statuses {sorted({s for _, s in seen})}")
    print(f"false 'submitted' in {2 * faults} faulty dispatches: {false_submitted} (goal 0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dispatches", type=int, default=5)
    parser.add_argument("--cold", type=int, default=2)
    parser.add_argument("--faults", type=int, default=1)
    parser.add_argument("--panes", type=int, default=25)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--rtt-ms", type=float, default=50.0, help="round trip through bench/wan_relay.py")
    args = parser.parse_args()
    reason = missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="pf-bench-remote-") as tmp:
        root = Path(tmp)
        os.environ["PREFLIGHT_STATE_DIR"] = str(root / "state")  # a throwaway registry, before any import
        os.environ["PREFLIGHT_REMOTE_STATE_DIR"] = str(root / "box-state")
        os.environ.pop("PREFLIGHT_SSH_SESSION", None)
        bench = Bench(root, f"pfbench-{uuid.uuid4().hex[:8]}")
        names = [f"box{i}" for i in range(args.hosts)]
        slow_tmux = root / "slowtmux"
        slow_tmux.mkdir()
        (slow_tmux / "tmux").write_text(SLOW_TMUX.format(tmux=shutil.which("tmux")))
        (slow_tmux / "tmux").chmod(0o755)
        try:
            for name in names:
                bench.box(name)
            wan_names = [bench.wan(name, args.rtt_ms) for name in names]
            bench.box("faulty", path=f"{slow_tmux}:/usr/local/bin:/usr/bin:/bin")
            dispatch_goals(bench, args.dispatches, args.cold, wan_names[0], args.rtt_ms)
            sweep_goal(bench, names, args.rounds, args.panes, wan_names, args.rtt_ms)
            fault_goals(bench, args.faults)
        finally:
            bench.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
