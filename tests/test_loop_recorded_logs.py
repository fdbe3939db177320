"""The recorded real CPU training logs (../shared/fixtures/logs/real-cpu-runs/) parsed with their truths.

Read in place, never copied; where ``../shared`` is absent the tests skip with the reason. Each
truth is SOURCES.md's: 80 steps in 52.64 s (12,450 tokens/s) for the HF log without a progress bar,
a median nanoGPT step of 0.404875 s (20,233 tokens/s), a crash after step 29, a hang after step 19.
A toy model is 8,192 tokens per step (micro-batch 64 x seq 128), which is what the spec below says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpu_preflight.tools.telemetry.calibrate import calibrate
from gpu_preflight.tools.telemetry.calibrate_rules import pct
from gpu_preflight.tools.telemetry.calibrate_run import calibrate_files
from gpu_preflight.tools.telemetry.ingest import ingest
from gpu_preflight.tools.telemetry.runcheck import check_run, make_inputs

LOGS = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "logs" / "real-cpu-runs"
pytestmark = pytest.mark.skipif(not (LOGS / "SOURCES.md").is_file(),
                                reason=f"the recorded real CPU logs are not here ({LOGS} is absent)")
TOKENS_PER_STEP = 64 * 128
# The toy GPT-2 of the recordings as a spec: 1,053,184 parameters, micro-batch 64 x seq 128 = 8,192 tokens/step.
SPEC: dict[str, Any] = {
    "model": {"params_total": 1_053_184, "family": "gpt2", "hidden_size": 128, "n_layers": 2, "n_heads": 4,
              "vocab_size": 5000},
    "training": {"method": "full", "precision": "fp32", "seq_len": 128, "micro_batch": 64},
    "target": {"target_steps": 2000},
    "overheads": {"setup_debug_hours": 0.05},
}


def _log(name: str) -> str:
    return str(LOGS / name)


def test_transformers_5_quoted_numbers_parse() -> None:
    got = ingest(LOGS / "hf_probe.log")
    train = [s for s in got.log_samples() if s.kind == "train"]
    assert got.format == "hf_trainer" and len(train) == 16  # logging_steps 5 over 80 steps
    assert (train[0].loss, train[-1].loss) == (8.476, 8.459)
    summary = [s for s in got.log_samples() if s.kind == "summary"][-1]
    assert (summary.elapsed_s, summary.samples_per_s) == (52.64, 97.26)


def test_check_uses_the_hf_summary_and_the_specs_tokens_per_step() -> None:
    c = check_run(make_inputs({"log_path": _log("hf_probe.log"), "tokens_per_step": TOKENS_PER_STEP,
                               "predicted_tokens_per_s": 12_000.0}))
    # 80 steps in 52.64 s: 8192 x 80 / 52.64 = 12,449.8 tokens/s (SOURCES.md: 12,450).
    assert c.measured_tokens_per_s == pytest.approx(12_450, rel=1e-3)
    assert c.throughput_ratio == pytest.approx(12_449.8 / 12_000, rel=1e-3)
    assert any("closing summary: 80 steps" in n for n in c.notes)


def test_calibrate_from_the_hf_summary_gets_the_true_rate() -> None:
    inputs = make_inputs({"log_path": _log("hf_probe.log")})
    cal, probe, notes = calibrate_files(SPEC, inputs, probe={"gpu": "RTX 4090", "dph_total_usd": 0.4})
    assert probe.steps_measured == 80
    assert cal.tokens_per_s == pytest.approx(12_450, rel=1e-3)
    assert any("closing summary" in n for n in notes)
    assert cal.decision.decision in ("keep", "switch")  # 80 steps >= the policy's 20: judged, not wait


def test_nanogpt_median_step_and_rate() -> None:
    inputs = make_inputs({"log_path": _log("nano_probe.log")})
    cal, _, _ = calibrate_files(SPEC, inputs, probe={"gpu": "RTX 4090"})
    # Iteration 0 (659 ms, warm-up) is dropped; the median of the other 18 records is 0.404875 s.
    assert cal.step_time_s == pytest.approx(0.404875, abs=1e-6)
    assert cal.tokens_per_s == pytest.approx(20_233, rel=1e-3)


def test_nanogpt_rate_far_from_the_prediction_fires_the_trigger_on_its_own() -> None:
    # The log prints no tokens; the spec's 8,192 tokens/step turn the 60,000 tokens/s promise into a
    # 0.1365 s step, and 0.405 s steps are 34% of it. Windows of 15 s: two complete ones below 70%.
    c = check_run(make_inputs({"log_path": _log("nano_probe.log"), "tokens_per_step": TOKENS_PER_STEP,
                               "predicted_tokens_per_s": 60_000.0, "window_s": 15.0}))
    assert "throughput_below_predicted" in c.fired
    assert c.decision.decision == "kill"
    assert c.throughput_ratio == pytest.approx(20_233 / 60_000, rel=0.02)


def test_check_waits_while_no_trigger_can_judge() -> None:
    c = check_run(make_inputs({"log_path": _log("hf_probe.log")}))
    assert {t.status for t in c.triggers} <= {"no_data", "pending"}
    assert c.decision.decision == "wait"


def test_crashed_log_parses_up_to_the_crash() -> None:
    got = ingest(LOGS / "hf_crash.log")
    steps = [s.step for s in got.log_samples() if s.kind == "train" and s.step is not None]
    assert steps[-1] == 29


def test_hung_log_stops_at_step_19() -> None:
    got = ingest(LOGS / "hf_hang.log")
    steps = [s.step for s in got.log_samples() if s.kind == "train" and s.step is not None]
    assert steps[-1] == 19


def test_overcap_log_passes_the_cap_of_100() -> None:
    got = ingest(LOGS / "hf_overcap.log")
    steps = [s.step for s in got.log_samples() if s.kind == "train" and s.step is not None]
    assert steps[-1] == 108 and max(s.total_steps or 0 for s in got.log_samples()) == 300


@pytest.mark.parametrize(("state", "code", "sig", "words"), [
    ("exited", 1, None, "exited with code 1"), ("exited", 130, 2, "killed by signal 2"),
    ("hung", None, None, "hung")])
def test_a_dead_probe_is_never_keep(state: str, code: int | None, sig: int | None, words: str) -> None:
    hb = {"state": state, "exit_code": code, "signal": sig, "reason": "no output for 61 s",
          "last_error_line": "RuntimeError: injected crash at step 30"}
    probe = {"gpu": "RTX 4090", "median_step_time_s": 0.6, "steps_measured": 29, "dph_total_usd": 0.4}
    cal = calibrate(SPEC, probe, heartbeat=hb)
    assert cal.decision.decision == "kill" and words in cal.decision.reason
    assert cal.decision.numbers["exit_code"] == code and cal.decision.numbers["heartbeat_state"] == state


def test_a_clean_exit_is_judged_on_its_numbers() -> None:
    probe = {"gpu": "RTX 4090", "median_step_time_s": 0.6, "steps_measured": 80, "dph_total_usd": 0.4}
    cal = calibrate(SPEC, probe, heartbeat={"state": "exited", "exit_code": 0})
    assert cal.decision.decision in ("keep", "switch")
    assert cal.decision.numbers["steps_measured"] == 80 and "min_steps" in cal.decision.numbers


def test_too_short_is_wait_with_what_is_missing() -> None:
    probe = {"gpu": "RTX 4090", "median_step_time_s": 0.6, "steps_measured": 19, "dph_total_usd": 0.4}
    cal = calibrate(SPEC, probe)
    assert cal.decision.decision == "wait"
    assert "19 steps measured" in cal.decision.reason and ">= 20" in cal.decision.reason


def test_ratios_keep_the_digits_they_need() -> None:
    assert pct(0.0018) == "0.18%" and pct(0.2) == "20%" and pct(0.6891) == "69%" and pct(0) == "0%"
