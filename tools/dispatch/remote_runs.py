"""``heartbeat_all(scope="runs")`` for runs recorded on hosts: one thread per host, one deadline for all.

Why per host and not per run: runs on one box share its ssh master connection and its faults; one box's
runs go one after another (a look and a log read each, :func:`.remote_beat.remote_run_heartbeat`), boxes in
parallel, so a sweep costs about its slowest box, not the sum. Once a box fails to answer, its remaining
runs are ``host_unreachable`` at once (asking again would only wait out the same timeout per run), and a box
still busy at the deadline has its unswept runs reported ``host_unreachable`` too: their state is unknown,
never ``pane_gone`` or ``exited``.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

from gpu_preflight.tools.dispatch.heartbeat_model import Heartbeat, HostSweep
from gpu_preflight.tools.dispatch.runs import RunRecord


def _unknown(run: RunRecord, reason: str) -> Heartbeat:
    return Heartbeat(state="host_unreachable", target=run.target, host=run.host, run_id=run.run_id,
                     job_id=run.job_id, pane_id=run.pane_id, reason=f"{reason} (the run's state is unknown, not gone)")


def _host_runs(runs: list[RunRecord]) -> tuple[list[Heartbeat], HostSweep]:
    from gpu_preflight.tools.dispatch.remote_beat import remote_run_heartbeat

    name = runs[0].host or ""
    beats: list[Heartbeat] = []
    for at, run in enumerate(runs):
        hb = remote_run_heartbeat(run)
        beats.append(hb)
        if hb.state == "host_unreachable":
            status, _, reason = hb.reason.partition(": ")
            beats += [_unknown(rest, hb.reason.removesuffix(" (the run's state is unknown, not gone)"))
                      for rest in runs[at + 1:]]
            return beats, HostSweep(name=name, reachable=False, status=status, reason=reason)
    return beats, HostSweep(name=name, reachable=True, status="ok", reason="answered")


def remote_run_heartbeats(runs: list[RunRecord], timeout_s: float) -> tuple[list[Heartbeat], list[HostSweep]]:
    """Heartbeats of ``runs`` (each with a ``host``), hosts in parallel, all within ``timeout_s`` (+1 s)."""
    by_host: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_host.setdefault(run.host or "", []).append(run)
    if not by_host:
        return [], []
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=len(by_host), thread_name_prefix="pf-runs")
    futures: dict[str, Future[tuple[list[Heartbeat], HostSweep]]] = {
        name: pool.submit(_host_runs, group) for name, group in by_host.items()}
    beats: list[Heartbeat] = []
    sweeps: list[HostSweep] = []
    for name, future in futures.items():
        left_s = max(0.0, started + timeout_s + 1.0 - time.monotonic())
        try:
            found, sweep = future.result(timeout=left_s)
        except TimeoutError:
            why = f"host_unreachable: no answer from {name} within {timeout_s:g} s"
            found = [_unknown(run, why) for run in by_host[name]]
            sweep = HostSweep(name=name, reachable=False, status="host_unreachable",
                              reason=f"no answer within {timeout_s:g} s")
        beats += found
        sweeps.append(sweep)
    pool.shutdown(wait=False, cancel_futures=True)
    return beats, sweeps
