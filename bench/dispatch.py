"""Benchmark of the tmux dispatcher (issue 5): confirmation latency, Enters, false confirmations, lost
deliveries, and heartbeat cost over 100 panes.

Why a bench and not only tests: the tests prove each failure mode is handled once; this counts how
often, how fast, and with how many Enters, over >= 100 tries per scenario, scored against the
fixture apps' own logs (what the app really received), never against the screen.

Usage: ``python bench/dispatch.py [--quick] [--tries N] [--json]``. It runs a private tmux server
(``-L pfbench-<pid>``, killed at the end) and a temporary state directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "tests" / "tui_apps"


class Server:
    """A private tmux server for the bench."""

    def __init__(self) -> None:
        self.name = f"pfbench-{os.getpid()}"
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "bench", "-x", "100", "-y", "30", "sleep 100000")
        self.tmux("set-option", "-g", "default-size", "100x30")
        self.socket_path = self.tmux("display-message", "-p", "#{socket_path}").strip()

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.name, *args], capture_output=True, timeout=20, check=True)
        return done.stdout.decode()

    def window(self, command: str) -> str:
        return self.tmux("new-window", "-d", "-P", "-F", "#{pane_id}", command).strip()

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.name, "kill-server"], capture_output=True, timeout=20, check=False)
        Path(self.socket_path).unlink(missing_ok=True)  # tmux 3.3a leaves the socket file behind


def wait_until(check: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError("bench: condition never became true")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def summary(name: str, latencies: list[float], enters: list[int], false_ok: int, lost: int, tries: int,
            confirms: list[float] | None = None) -> dict[str, Any]:
    confirms = confirms or []
    return {
        "enter_to_proof_median_ms": round(statistics.median(confirms), 1) if confirms else None,
        "scenario": name, "tries": tries, "median_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p90_ms": round(pct(latencies, 0.9), 1) if latencies else None,
        "enters_mean": round(statistics.mean(enters), 2) if enters else None, "enters_max": max(enters, default=0),
        "false_confirmations": false_ok, "lost": lost,
    }


def bench_shell(srv: Server, tries: int) -> dict[str, Any]:
    from gpu_preflight.tools.dispatch import dispatch, paneinfo, wait_for_exit
    from gpu_preflight.tools.dispatch.target import make_tmux

    tmux = make_tmux(srv.name)
    pane = srv.window("exec env PS1='$ ' HISTFILE=/dev/null bash --norc --noprofile")
    wait_until(lambda: srv.tmux("capture-pane", "-p", "-t", pane).strip() == "$")
    latencies, enters, lost = [], [], 0
    for _ in range(tries):
        result = dispatch(pane, "true", socket_name=srv.name)
        if result.status != "submitted" or result.job_id is None:
            lost += 1
            continue
        latencies.append(result.confirm_latency_ms or 0.0)
        enters.append(result.enter_count)
        wait_for_exit(result.job_id, tmux, timeout_s=5)
        wait_until(lambda: (info := paneinfo.fetch_pane(tmux, pane)) is not None and info.shell_in_foreground)
        srv.tmux("clear-history", "-t", pane)
        srv.tmux("send-keys", "-t", pane, "C-l")
        wait_until(lambda: srv.tmux("capture-pane", "-p", "-t", pane).strip() == "$")
    return summary("shell (start record)", latencies, enters, 0, lost, tries, latencies)


def bench_tui(srv: Server, folder: Path, name: str, app: str, flags: list[str], tries: int) -> dict[str, Any]:
    from gpu_preflight.tools.dispatch import dispatch

    log = folder / f"{app}-{len(flags)}-{time.monotonic_ns()}.jsonl"
    pane = srv.window("exec " + shlex.join([sys.executable, str(APPS / app), "--log", str(log), *flags]))
    wait_until(lambda: log.exists() and "ready" in log.read_text())
    latencies, enters, confirms, false_ok, lost = [], [], [], 0, 0
    for index in range(tries):
        text = f"prompt {index} for {name}"
        result = dispatch(pane, text, "tui", socket_name=srv.name)
        got = [json.loads(line).get("text") for line in log.read_text().splitlines() if '"submit"' in line]
        delivered = got.count(text) == 1
        if result.status in {"submitted", "queued"}:
            latencies.append(result.latency_ms)
            enters.append(result.enter_count)
            confirms.append(result.confirm_latency_ms or 0.0)
            if not delivered:
                false_ok += 1
        if not delivered:
            lost += 1
            if result.status not in {"submitted", "queued"}:
                print(f"  {name}: try {index} {result.status}: {result.reason}", file=sys.stderr)
                break  # the composer may hold our text now; later tries would be refused
    return summary(name, latencies, enters, false_ok, lost, tries, confirms)


def bench_heartbeat(srv: Server, panes: int, sweeps: int) -> dict[str, Any]:
    from gpu_preflight.tools.dispatch import heartbeat_all

    kinds = {"idle shell": 0, "sleep": 0, "printing loop": 0, "exited (remain-on-exit)": 0}
    srv.tmux("set-option", "-g", "remain-on-exit", "on")
    for index in range(panes):
        slot = index % 10
        if slot < 4:
            srv.window("exec env PS1='$ ' bash --norc --noprofile")
            kinds["idle shell"] += 1
        elif slot < 7:
            srv.window("exec sleep 100000")
            kinds["sleep"] += 1
        elif slot < 9:
            srv.window("while :; do echo tick; sleep 0.5; done")
            kinds["printing loop"] += 1
        else:
            srv.window("exit 3")
            kinds["exited (remain-on-exit)"] += 1
    time.sleep(1.0)
    costs: list[float] = []
    states: dict[str, int] = {}
    for _ in range(sweeps):
        started = time.perf_counter()
        report = heartbeat_all(socket_name=srv.name)
        costs.append((time.perf_counter() - started) * 1000.0)
        states = {}
        for beat in report.heartbeats:
            states[beat.state] = states.get(beat.state, 0) + 1
    return {"scenario": f"heartbeat_all over {report.pane_count} panes", "sweeps": sweeps,
            "median_ms": round(statistics.median(costs), 1), "p90_ms": round(pct(costs, 0.9), 1),
            "max_ms": round(max(costs), 1), "goal_ms": 500, "states": states, "panes_by_program": kinds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="20 tries per scenario (about 30 s)")
    parser.add_argument("--tries", type=int, default=None, help="tries per scenario (default 100)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--real", action=argparse.BooleanOptionalAction, default=True,
                        help="also bench the real Claude Code, Codex and Gemini CLI first (bench/dispatch_real.py)")
    parser.add_argument("--apps", default="claude,codex,gemini", help="real apps to bench, comma-separated")
    args = parser.parse_args()
    tries = args.tries or (20 if args.quick else 100)
    sys.path.insert(0, str(ROOT))
    real: list[dict[str, Any]] = []
    if args.real:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import dispatch_real

        apps = [a.strip() for a in args.apps.split(",") if a.strip()]
        real = dispatch_real.run_real(15 if args.quick else 56, apps)
        if not args.json:
            print("real agent TUIs (scored against the model server's record):")
            dispatch_real.print_table(real)
            print("\nfixture stand-in apps (scored against their own logs):")
    folder = Path(tempfile.mkdtemp(prefix="pfbench-"))
    os.environ["PREFLIGHT_STATE_DIR"] = str(folder / "state")
    srv = Server()
    results: list[dict[str, Any]] = []
    try:
        results.append(bench_shell(srv, tries))
        results.append(bench_tui(srv, folder, "tui ink-like, 0-30 ms stalls", "ink_like.py", ["--stall-ms", "0-30"],
                                 tries))
        results.append(bench_tui(srv, folder, "tui ink-like, 0-300 ms stalls", "ink_like.py",
                                 ["--stall-ms", "0-300"], tries))
        results.append(bench_tui(srv, folder, "tui codex-like (burst -> newline)", "codex_like.py", [], tries))
        results.append(bench_heartbeat(srv, 100, 10 if args.quick else 30))
    finally:
        srv.kill()
    if args.json:
        print(json.dumps({"real_apps": real, "results": results}, indent=1, ensure_ascii=False))
        return 0
    print(f"{'scenario':36} {'tries':>5} {'median':>7} {'p90':>7} {'Enter->proof':>12} {'enters':>6} {'max':>4}"
          f" {'false':>5} {'lost':>4}")
    for row in results[:-1]:
        print(f"{row['scenario']:36} {row['tries']:>5} {row['median_ms']!s:>7} {row['p90_ms']!s:>7} "
              f"{row['enter_to_proof_median_ms']!s:>12} {row['enters_mean']!s:>6} {row['enters_max']:>4} "
              f"{row['false_confirmations']:>5} {row['lost']:>4}")
    hb = results[-1]
    print("(ms; shell median/p90 = Enter to start record; tui median/p90 = whole dispatch incl. preflight, echo wait"
          " and the 150 ms typed-text margin; false = 'submitted' but the app's log lacks it)")
    print(f"{hb['scenario']}: median {hb['median_ms']} ms, p90 {hb['p90_ms']} ms, max {hb['max_ms']} ms over "
          f"{hb['sweeps']} sweeps (goal < {hb['goal_ms']} ms); states {hb['states']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
