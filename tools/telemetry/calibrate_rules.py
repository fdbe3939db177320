"""calibrate's decision: the rules in order, each with the numbers it looked at.

Why a module of its own: the decision is what an agent acts on, so it must be impossible to read
``keep`` on a probe that crashed or hung (the run's heartbeat is asked first), or on a probe too
short to say anything (``wait`` with what is missing), and every answer carries the rule and the
figures behind it (``Decision.numbers``) instead of prose alone.

Rules, first match wins:

0. ``kill`` when the heartbeat says the probe is dead: exited with a non-zero code, killed by a
   signal, or hung (no output, no CPU, no log write). A clean exit (code 0) is judged on its numbers.
1. ``wait`` when the probe measured fewer steps than the policy's minimum and was not time-capped,
   and no complete telemetry window exists: too short to judge.
2. ``kill`` when a trigger fired.
3. ``switch`` when another offer is materially better, migration included.
4. ``keep`` otherwise.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .assess import Assessment

Priority = Literal["balanced", "cost", "time"]
DecisionName = Literal["keep", "switch", "kill", "wait"]
SWITCH_MIN_GAIN = 0.20
SWITCH_MAX_LOSS = 0.10


def policy_min_steps() -> int:
    """The run-calibrated policy's probe ``min_steps``, read from the policy file (the one place it is set;
    a copy here had drifted from nothing yet, but nothing read the file). ``load_policy`` is cached."""
    from gpu_preflight.checklist.policy import load_policy  # the checklist room owns policies: read, not copied

    return load_policy("run-calibrated").probe_caps.min_steps


class Decision(BaseModel):
    decision: DecisionName
    reason: str
    switch_to_offer: str | None = None
    rule: str
    numbers: dict[str, Any] = Field(default_factory=dict, description="The figures the rule compared.")


def pct(frac: float) -> str:
    """A fraction as a percentage with the digits it needs: 0.0018 -> '0.18%', never '0%'."""
    value = frac * 100
    if value == 0:
        return "0%"
    for digits in range(0, 4):
        text = f"{value:.{digits}f}"
        if float(text) != 0 and abs(float(text) - value) / abs(value) < 0.05:
            return text + "%"
    return f"{value:.2g}%"


def dead_probe(hb: dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """(reason, numbers) when the heartbeat says the probe died or hung; None when alive or clean."""
    if not hb:
        return None
    state, code, sig = hb.get("state"), hb.get("exit_code"), hb.get("signal")
    numbers: dict[str, Any] = {"heartbeat_state": state, "exit_code": code, "signal": sig}
    err = hb.get("last_error_line") or hb.get("last_log_line")
    if state == "hung":
        return f"the probe hung: {hb.get('reason', '')}", numbers
    ended = state == "exited" or (state == "idle_at_prompt" and (code is not None or sig is not None))
    if not ended or (code == 0 and sig is None):
        return None
    how = f"killed by signal {sig}" if sig is not None else f"exited with code {code}"
    end_class = hb.get("end_class")
    if end_class:
        numbers["end_class"] = end_class
    tail = f"; last error: {err}" if err and code not in (None, 0) else ""
    if end_class == "oom":
        return (f"the probe ran out of memory ({how}){tail}; reduce micro_batch or seq_len (or turn on activation "
                "checkpointing)"), numbers
    return f"the probe {how}{tail}", numbers


def switch_rule(priority: Priority) -> str:
    """The switch rule in words, with its thresholds."""
    gain = pct(SWITCH_MIN_GAIN)
    if priority == "time":
        return f"switch when another offer finishes >= {gain} sooner, migration included"
    if priority == "cost":
        return f"switch when another offer finishes >= {gain} cheaper, migration included"
    return (f"switch when another offer is >= {gain} sooner or cheaper to finish, migration included, and at most "
            f"{pct(SWITCH_MAX_LOSS)} worse on the other; no pricier $/h while the setup/debug tax is > 25%")


def full_rule(priority: Priority, min_steps: int) -> str:
    """Every rule of :mod:`.calibrate_rules` in order, as one line."""
    return (f"kill when the heartbeat says exited non-zero, killed by a signal, or hung; wait while fewer than "
            f"{min_steps} steps were measured (and no time cap, no full window); kill on a fired trigger; "
            + switch_rule(priority) + "; else keep")


def qualifies(t_gain: float, c_gain: float | None, priority: Priority) -> bool:
    """Does an offer's gain (time, cost; fractions) clear the switch rule?"""
    if priority == "time" or c_gain is None:
        return t_gain >= SWITCH_MIN_GAIN
    if priority == "cost":
        return c_gain >= SWITCH_MIN_GAIN
    return (t_gain >= SWITCH_MIN_GAIN and c_gain >= -SWITCH_MAX_LOSS) or (
        c_gain >= SWITCH_MIN_GAIN and t_gain >= -SWITCH_MAX_LOSS)


def too_short(steps_measured: int, min_steps: int, time_capped: bool, assessment: Assessment | None) -> bool:
    """Under the policy's minimum steps, not time-capped, and no complete window to judge instead."""
    if steps_measured >= min_steps or time_capped:
        return False
    if assessment is None:
        return True
    return not any(w.complete and (w.log_sample_count or w.gpu_sample_count) for w in assessment.series.windows)


def decide_wait(steps_measured: int, min_steps: int, numbers: dict[str, Any], rule: str) -> Decision:
    """``wait``: what is missing before a decision can be made."""
    return Decision(decision="wait", rule=rule, numbers=numbers | {"steps_measured": steps_measured,
                                                                  "min_steps": min_steps},
                    reason=f"too short to judge: {steps_measured} steps measured, the policy needs >= {min_steps} "
                    "(or a time cap, or one full window); let the probe run on and calibrate again")


def decide_kill(kills: list[str], assessment: Assessment | None, numbers: dict[str, Any], rule: str) -> Decision:
    """``kill`` on fired triggers, with the bottleneck when one was classified."""
    reason = "trigger fired: " + "; ".join(kills)
    if assessment is not None and assessment.bottleneck is not None:
        b = assessment.bottleneck
        reason += f". Bottleneck {b.bottleneck_class} ({b.confidence}): {b.suggestion}"
    return Decision(decision="kill", reason=reason + ". Pause, fix one variable, relaunch.", rule=rule,
                    numbers=numbers | {"fired": kills})
