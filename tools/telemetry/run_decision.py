"""keep / kill / done / wait for a running job: the rules :func:`.runcheck.check_run` applies, first match wins.

The run exited or its job ended (``done`` on exit code 0, else ``kill``: the GPU is idle and billed); hung
or the GPU fell off the bus (``kill``); a probe at its step or time cap (``kill``: see :mod:`.probecap`); a
fired trigger (``kill``: pause, reclassify, change one variable, relaunch); waiting for input, its pane gone
or its host unreachable (``wait``: look before paying on); no training record yet (``wait``); every trigger
still undecided (``wait``); otherwise ``keep``, naming any trigger that is pending and its numbers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from gpu_preflight.tools.common.nextstep import call

from .assess import Assessment
from .models import LogSample
from .nvml import NvmlSnapshot
from .probecap import ProbeCap, stop_hint

RunDecisionName = Literal["keep", "kill", "done", "wait"]


class RunDecision(BaseModel):
    decision: RunDecisionName
    reason: str


END_ADVICE = {
    "oom": "out of memory: reduce micro_batch or seq_len (or turn on activation checkpointing), then relaunch",
    "nccl": "NCCL failed: check the interconnect and every rank's log before relaunching",
    "killed": "killed from outside (host OOM killer or a scheduler): check host RAM and limits, then relaunch",
}
"""What to change before relaunching, by the heartbeat's ``end_class``; anything else: read the log tail."""


def decide_run(hb: dict[str, Any] | None, a: Assessment, logs: list[LogSample],
               gpu_now: NvmlSnapshot | None, cap: ProbeCap | None = None) -> RunDecision:
    """keep / kill / done / wait for a running job (rules in the module doc)."""
    state = hb.get("state") if hb else None
    code, signal = (hb.get("exit_code"), hb.get("signal")) if hb else (None, None)
    if state in ("exited", "idle_at_prompt") and (code is not None or signal is not None or state == "exited"):
        if code == 0:
            return RunDecision(decision="done", reason="the job exited with code 0: stop the machine if nothing else"
                               " runs on it")
        how = f"signal {signal}" if signal is not None else f"code {code}"
        err = hb.get("last_error_line") if hb else None
        said = f"; last error: {err}" if err else ""
        fix = END_ADVICE.get(str(hb.get("end_class")) if hb else "", "read the log tail, fix, relaunch")
        return RunDecision(decision="kill", reason=f"the job ended ({how}{said}): the GPU is idle and still billed;"
                           f" {fix}")
    if state == "hung":
        return RunDecision(decision="kill", reason=f"hung: {hb.get('reason') if hb else ''}; stop paying")
    if gpu_now is not None and gpu_now.answer is not None and gpu_now.answer.run_killing:
        return RunDecision(decision="kill", reason=f"GPU lost: {gpu_now.answer.message}")
    if cap is not None and cap.reached:
        return RunDecision(decision="kill", reason=f"{cap.reason}: {stop_hint()}, "
                           f"{call('calibrate')} from what it measured, then launch the full run through the gate")
    if a.fired:
        fired = [r for r in a.triggers if r.status == "fired"]
        reason = "; ".join(f"{r.name}: {r.message}" for r in fired)
        if a.bottleneck is not None:
            reason += f". Bottleneck {a.bottleneck.bottleneck_class}: {a.bottleneck.suggestion}"
        seen = f" (heartbeat: {state})" if state not in (None, "running") else ""
        return RunDecision(decision="kill", reason=reason + f". Pause, change one variable, relaunch{seen}.")
    if state in ("waiting_for_input", "pane_gone", "host_unreachable"):
        return RunDecision(decision="wait", reason=f"{state}: {hb.get('reason') if hb else ''}; look before paying on")
    if not any(s.kind == "train" for s in logs):
        return RunDecision(decision="wait", reason="no training record yet: check again after the first log lines")
    pending = [r.name for r in a.triggers if r.status in ("pending", "no_data")]
    if a.triggers and len(pending) == len(a.triggers):
        why = "; ".join(f"{r.name}: {r.message}" for r in a.triggers)
        return RunDecision(decision="wait", reason=f"no trigger can judge yet ({why}): check again later")
    tail = f" ({', '.join(pending)} not decided yet)" if pending else ""
    tail += "".join(f"; {r.name}: {r.message}" for r in a.triggers if r.status == "pending")
    return RunDecision(decision="keep", reason=f"no trigger fired{tail}")
