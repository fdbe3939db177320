"""Remote sweep benchmark (issue 17, part 3): ``heartbeat_all`` over 4 boxes x 25 panes vs one box's sweep.

Why: the issue's goal is that sweeping a fleet costs at most 2x sweeping one box (parallel, not serial).
The script starts its own sshd's on 127.0.0.1 (tests/sshd.py, Debian's ``/usr/sbin/sshd``), one per box,
each with its own tmux server (``SetEnv TMUX_TMPDIR``), fills each with 25 shell panes, and times warm
sweeps (bounded: ``--rounds`` of each). It also times the fault path: one box stopped, the sweep still
returns within its timeout. Everything it started is stopped at the end. It prints figures; no asserts.

Not measured here yet (brief H16 item 3): a confirmed shell dispatch local vs remote, and the first call's
cold master (tests/test_remote_dispatch.py prints the dispatch figures).

Run: ``python bench/remote.py [--rounds 5] [--panes 25] [--hosts 4]`` (needs sshd and tmux).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sshd import Sshd, keygen, missing_reason


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--panes", type=int, default=25)
    parser.add_argument("--hosts", type=int, default=4)
    args = parser.parse_args()
    reason = missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="pf-bench-remote-") as tmp:
        root = Path(tmp)
        os.environ["PREFLIGHT_STATE_DIR"] = str(root / "state")  # a throwaway registry, before any import
        os.environ["PREFLIGHT_REMOTE_STATE_DIR"] = str(root / "box-state")
        from gpu_preflight.tools.dispatch import heartbeat_all
        from gpu_preflight.tools.hosts import add_host, call, close_master, make_host

        key = keygen(root / "id_ed25519")
        socket_name = f"pfbench-{uuid.uuid4().hex[:8]}"
        servers: list[Sshd] = []
        names = [f"box{i}" for i in range(args.hosts)]
        try:
            for name in names:
                tmux_dir = root / f"tmux-{name}"
                tmux_dir.mkdir()
                srv = Sshd(root / f"sshd-{name}", key, extra_config=[f"SetEnv TMUX_TMPDIR={tmux_dir}"])
                servers.append(srv)
                srv.trust()
                srv.start()
                host = add_host(make_host(name, "127.0.0.1", port=srv.port, identity=str(key),
                                          options=[f"UserKnownHostsFile={srv.known_hosts}", "IdentitiesOnly=yes"]))
                script = f"tmux -L {socket_name} -f /dev/null new-session -d -s b -x 80 -y 24 bash --norc"
                script += f"; for i in $(seq 2 {args.panes}); do tmux -L {socket_name} new-window -d bash --norc; done"
                done = call(host, ["sh", "-c", script], timeout_s=60)
                assert done.rc == 0, done
            time.sleep(1.0)  # the shells reach their prompts

            def timed(hosts: list[str]) -> tuple[float, int]:
                started = time.monotonic()
                report = heartbeat_all(hosts=hosts, socket_name=socket_name)
                return (time.monotonic() - started) * 1000, report.pane_count

            cold_ms, _ = timed(names[:1])
            one = [timed(names[:1]) for _ in range(args.rounds)]
            fleet = [timed(names) for _ in range(args.rounds)]
            one_ms = statistics.median(ms for ms, _ in one)
            fleet_ms = statistics.median(ms for ms, _ in fleet)
            print(f"one box, {one[0][1]} panes: first sweep {cold_ms:.0f} ms (master opened by the set-up), "
                  f"warm median {one_ms:.0f} ms")
            print(f"{len(names)} boxes, {fleet[0][1]} panes: warm median {fleet_ms:.0f} ms "
                  f"(ratio {fleet_ms / one_ms:.2f}x; goal <= 2x)")
            servers[-1].stop()
            started = time.monotonic()
            report = heartbeat_all(hosts=names, socket_name=socket_name, timeout_s=10)
            down = [h for h in report.hosts or [] if not h.reachable]
            print(f"one box stopped: sweep returned in {(time.monotonic() - started) * 1000:.0f} ms (timeout 10 s), "
                  f"unreachable: {[(h.name, h.status) for h in down]}, panes from the others: {report.pane_count}")
        finally:
            from gpu_preflight.tools.hosts import list_hosts

            for host in list_hosts():
                close_master(host)
            for srv in servers:
                srv.stop()
            for sock in root.glob(f"tmux-*/tmux-*/{socket_name}"):
                subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True, timeout=10, check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
