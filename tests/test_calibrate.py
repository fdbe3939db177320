"""Calibration (run-calibrated stages B-D) by hand, each decision branch, and a run-check replay.

The worked example: Llama 3.2 1B LoRA, seq 2048 x micro-batch 2 = 4,096 tokens per step, 36,000
target steps, a probe at 0.5 s/step on an RTX 4090 billed $2.50/h, 0.5 h of setup so far, one 40 s
eval every 1,000 steps.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers_probe import PROBE as BASE_PROBE
from helpers_probe import SPEC

from gpu_preflight.checklist import checklist_status, load_policy, record_evidence, start_checklist
from gpu_preflight.checklist.examples import example
from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.offers.records import OfferSet, offers_from_json
from gpu_preflight.tools.telemetry import runcheck
from gpu_preflight.tools.telemetry.assess import assess_samples
from gpu_preflight.tools.telemetry.calibrate import calibrate, parse_probe
from gpu_preflight.tools.telemetry.calibrate_evidence import calibration_evidence
from gpu_preflight.tools.telemetry.calibrate_run import calibrate_files, measure_probe
from gpu_preflight.tools.telemetry.ingest import ingest
from gpu_preflight.tools.telemetry.runcheck import RunInputs, check_run, decide_run
from gpu_preflight.tools.telemetry.triggers import TriggerResult

FIXTURES = Path(__file__).parent / "fixtures"
NANOGPT = FIXTURES / "logs/nanogpt_a100_issue178_mfu.log"
V100_SMI = FIXTURES / "nvidia-smi/query_csv_units_v100_aau_2020-11-12.csv"
RAW_4090: dict[str, Any] = json.loads((FIXTURES / "vast/rtx4090_guangxi_cli_raw_2024.json").read_text())[0]
PROBE: dict[str, Any] = {**BASE_PROBE, "predicted_tokens_per_s": 10000.0}


def offer(offer_id: int, gpu: str = "RTX 4090", dph: float = 2.0, gpu_ram_mib: int = 24564) -> dict[str, Any]:
    """The real RTX 4090 record with the GPU, price and id changed."""
    record = copy.deepcopy(RAW_4090)
    record.update(id=offer_id, ask_contract_id=offer_id, gpu_name=gpu, dph_base=dph, dph_total=dph, gpu_ram=gpu_ram_mib,
                  inet_down=1000.0)
    return record


def offers(*records: dict[str, Any]) -> OfferSet:
    return offers_from_json(list(records), source="test")


def test_stage_c_and_d_by_hand() -> None:
    cal = calibrate(SPEC, PROBE)
    # step_s = 1 / 0.5 = 2 steps/s; tokens/s = 4096 / 0.5 = 8192, 82% of the 10,000 predicted.
    assert (cal.steps_per_s, cal.tokens_per_s, cal.tokens_per_step) == (2.0, 8192.0, 4096)
    assert (cal.comparison.ratio, cal.comparison.predicted_source) == (0.8192, "probe.predicted_tokens_per_s")
    # train_hours = 36000 / (2 * f * 3600): opt (f 1.2) 4.1667, base 5.0, pess (f 0.6) 8.3333.
    # eval = (36000 // 1000) * 40 s = 1440 s = 0.4 h; wall = 0.5 setup + train + 0.4.
    assert cal.eval_overhead_hours == 0.4
    assert cal.time_hours.model_dump() == {"optimistic": 5.0667, "base": 5.9, "pessimistic": 9.2333}
    # cost = wall * $2.50: 12.67 / 14.75 / 23.08.
    assert cal.cost_usd.model_dump() == {"optimistic": 12.67, "base": 14.75, "pessimistic": 23.08}
    # Nothing done yet: to finish = train + eval = wall - setup.
    assert cal.time_to_finish_hours.model_dump() == {"optimistic": 4.5667, "base": 5.4, "pessimistic": 8.7333}
    assert cal.cost_to_finish_usd.base == 13.5 and cal.cost_so_far_usd == 1.25  # 0.5 h x $2.50
    # Stage D: tax = 0.5 / 5.9 = 8.5% <= 25%.
    assert cal.tax.model_dump() == {"setup_debug_hours": 0.5, "wall_hours": 5.9, "setup_debug_tax": 0.0847,
                                    "expensive_hardware_justified": True}
    assert cal.decision.decision == "keep" and cal.decision.reason.startswith("on track: 8,192 tokens/s live, 82%")


def test_rest_of_the_run_and_tokens_per_s_probe() -> None:
    cal = calibrate(SPEC, PROBE | {"median_step_time_s": None, "tokens_per_s": 8192.0, "steps_done": 6000})
    assert cal.step_time_s == 0.5 and cal.steps_remaining == 30000
    # 30000 / (2 * 3600) = 4.1667 h of training; evals left: (36 - 6) x 40 s = 0.3333 h.
    assert cal.time_to_finish_hours.base == 4.5 and cal.eval_remaining_hours == 0.3333
    assert cal.cost_to_finish_usd.base == 11.25
    # So far: (0.5 h setup + 6000 x 0.5 s) x $2.50 = (0.5 + 0.8333) x 2.5.
    assert cal.cost_so_far_usd == 3.33
    assert cal.time_hours.base == 5.9  # the whole run's wall does not depend on where it stands


def test_switch_when_another_offer_is_materially_better_including_migration() -> None:
    h100 = offer(900, "H100 SXM", dph=2.4, gpu_ram_mib=81559)
    cal = calibrate(SPEC, PROBE, offers=offers(h100, offer(901, dph=2.3)))
    assert cal.decision.decision == "switch" and cal.decision.switch_to_offer == "900"
    best = next(o for o in cal.options if o.offer_id == 900)
    # The probe scaled to an H100 (baseline-scaled, efficiency 0.9): far faster, so cheaper despite setup again.
    assert best.pred_tokens_per_s > 3 * cal.tokens_per_s and best.qualifies
    assert best.time_gain_frac >= 0.2 and best.cost_gain_frac is not None and best.cost_gain_frac >= 0.2
    # Migration is in: 0.5 h setting up again (the setup so far) + 0.5 h migration_hours, at the H100's price.
    assert (best.time_to_finish_hours.base or 0) > 1.0
    same = next(o for o in cal.options if o.offer_id == 901)
    assert not same.qualifies and same.time_gain_frac < 0  # same GPU at 0.9 efficiency plus migration: slower
    assert "offer 900" in cal.decision.reason and "incl. migration" in cal.decision.reason
    assert ">= 20%" in cal.decision.rule


def test_keep_when_nothing_is_materially_better() -> None:
    cal = calibrate(SPEC, PROBE, offers=offers(offer(901, dph=2.3), offer(902, dph=2.6)))
    assert cal.decision.decision == "keep" and cal.options_considered == 2
    assert not any(o.qualifies for o in cal.options)
    assert "no offer >= 20% better including migration" in cal.decision.reason


def test_high_tax_rules_out_a_pricier_machine() -> None:
    # 3 h of setup so far: tax 3 / 8.4 = 36% > 25%; the H100 at $9/h is pricier than $2.50/h.
    probe = PROBE | {"setup_debug_hours_so_far": 3.0, "resetup_hours": 0.1}
    cal = calibrate(SPEC, probe, offers=offers(offer(900, "H100 SXM", dph=9.0, gpu_ram_mib=81559)), priority="time")
    assert not cal.tax.expensive_hardware_justified
    h100 = cal.options[0]
    assert h100.time_gain_frac > 0.2 and not h100.qualifies
    assert h100.risks[0].startswith("setup/debug tax > 25%")
    assert cal.decision.decision == "keep" and "stay on cheap hardware" in cal.decision.reason


def test_kill_on_low_probe_utilization_and_on_fired_triggers() -> None:
    cal = calibrate(SPEC, PROBE | {"gpu_util_pct": 41.0}, offers=offers(offer(900, "H100 SXM", 2.4, 81559)))
    assert cal.decision.decision == "kill"  # a trigger wins over a better offer
    assert "gpu_util_low: probe averaged 41% GPU utilization (< 60%)" in cal.decision.reason

    fired = TriggerResult(name="memory_pressure", rule="r", status="fired", message="GPU 0 at 95%")
    assert calibrate(SPEC, PROBE, fired=[fired]).decision.reason.startswith("trigger fired: memory_pressure: GPU 0")

    replay = assess_samples(ingest(V100_SMI).gpu_samples(), ingest(NANOGPT).log_samples(), window_s=30)
    cal = calibrate(SPEC, PROBE, assessment=replay)
    assert cal.decision.decision == "kill"
    assert "Bottleneck memory (high): lower the micro-batch" in cal.decision.reason


def test_warnings_for_a_slow_probe_and_high_vram() -> None:
    cal = calibrate(SPEC, PROBE | {"predicted_tokens_per_s": 20000.0, "vram_used_gb": 23.0})
    assert cal.comparison.ratio == 0.4096 and cal.decision.decision == "keep"
    assert any(w.startswith("probe at 41% of the pre-estimate") for w in cal.warnings)
    assert any("(> 92%): OOM risk" in w for w in cal.warnings)
    # Without a given prediction, the estimator's on the probe's GPU is the pre-estimate.
    cold = calibrate(SPEC, {k: v for k, v in PROBE.items() if k != "predicted_tokens_per_s"})
    assert cold.comparison.predicted_source.startswith("estimate_run on 1x RTX 4090")
    assert cold.comparison.ratio == pytest.approx(8192 / (cold.comparison.predicted_tokens_per_s or 1), abs=1e-4)


@pytest.mark.parametrize(("probe", "needle"), [
    ({"gpu": "RTX 4090", "steps_measured": 50}, "probe: got"),
    (PROBE | {"median_step_time_s": -1}, "probe.median_step_time_s: got -1"),
    (PROBE | {"steps_done": 50000}, "probe.steps_done: got 50000; allowed: <= the target's 36000 steps"),
    (PROBE | {"gpu_util_pct": 140}, "probe.gpu_util_pct: got 140"),
    ("fast", "probe: got 'fast'"),
])
def test_bad_probe_is_one_line(probe: Any, needle: str) -> None:
    with pytest.raises(PreflightError) as err:
        calibrate(SPEC, probe)
    assert needle in err.value.one_line() and "\n" not in err.value.one_line()


def test_evidence_fills_the_run_calibrated_items() -> None:
    cal = calibrate(SPEC, PROBE, offers=offers(offer(900, "H100 SXM", 2.4, 81559)))
    items, skipped = calibration_evidence(cal, parse_probe(PROBE))
    assert skipped == {} and set(items) == {"probe_measurements", "live_estimate", "setup_debug_tax", "decision"}
    assert items["decision"] == {"decision": "switch", "reason": cal.decision.reason, "decided_within_minutes": 8.0,
                                 "switch_to_offer": "900"}
    view = start_checklist("probe", "run-calibrated", spec=SPEC)
    record_evidence(view.id, "stage_a_checks", example("stage_a_checks"))
    decision_sources = load_policy("run-calibrated").item("decision").spec.supplied_by
    for name, evidence in items.items():
        source = "calibrate" if name != "decision" or "calibrate" in decision_sources else "checklist_record"
        state = record_evidence(view.id, name, evidence, source=source, spec=SPEC)
        assert state.state == "done", (name, state.reason)
    status = checklist_status(view.id)
    assert status.gate.full and status.full_only_for_offer == "900"


def test_evidence_left_out_when_not_measured() -> None:
    probe = {k: v for k, v in PROBE.items() if k not in ("gpu_util_pct", "dph_total_usd")}
    items, skipped = calibration_evidence(calibrate(SPEC, probe), parse_probe(probe))
    assert skipped == {"probe_measurements": "probe lacks gpu_util_pct",
                       "live_estimate": "no price (dph_total_usd): cost_usd cannot be given"}
    assert set(items) == {"setup_debug_tax", "decision"}


def test_probe_measured_from_a_recorded_log_and_capture() -> None:
    logs, gpu = ingest(NANOGPT).log_samples(), ingest(V100_SMI).gpu_samples()
    measured = measure_probe(logs, gpu, data_end_s=214.6)
    # Last 100 steps: records at iterations 150..240, one every 10 -> 240 - 150 + 10 = 100 steps.
    window = [s.step_time_s for s in logs if s.kind == "train" and (s.step or 0) > 140 and s.step_time_s]
    assert measured["steps_measured"] == 100 and len(window) == 10
    assert measured["median_step_time_s"] == pytest.approx(sorted(window)[4] / 2 + sorted(window)[5] / 2)
    assert measured["vram_used_gb"] == round(30994 * 1048576 / 1e9, 3) and measured["probe_minutes"] == 3.577
    assert measured["gpu_util_pct"] == pytest.approx(sum(s.gpu_util_pct or 0 for s in gpu) / len(gpu), abs=0.01)

    inputs = RunInputs(log_path=str(NANOGPT), nvsmi_path=str(V100_SMI), window_s=30)
    cal, probe, _ = calibrate_files(SPEC, inputs, probe={"gpu": "A100 SXM4", "dph_total_usd": 1.5})
    assert probe.median_step_time_s == measured["median_step_time_s"] and probe.gpu == "A100 SXM4"
    assert cal.decision.decision == "kill" and "memory_pressure" in cal.decision.reason  # 95% of a V100 held


def test_decide_run_from_the_heartbeat() -> None:
    quiet = assess_samples([], ingest(NANOGPT).log_samples()[:3], window_s=600)
    logs = ingest(NANOGPT).log_samples()[:3]
    cases: list[tuple[dict[str, Any] | None, str]] = [
        ({"state": "exited", "exit_code": 0}, "done"), ({"state": "exited", "exit_code": 1}, "kill"),
        ({"state": "idle_at_prompt", "exit_code": 137}, "kill"), ({"state": "hung", "reason": "no output"}, "kill"),
        # Running (or no heartbeat) while every trigger is pending or without data: too soon to keep (issue 15).
        ({"state": "waiting_for_input"}, "wait"), ({"state": "running"}, "wait"), (None, "wait")]
    for hb, expected in cases:
        assert decide_run(hb, quiet, logs, None).decision == expected, hb
    assert decide_run(None, quiet, [], None).decision == "wait"


def test_replay_a_growing_log_through_the_run_check(tmp_path: Path) -> None:
    """nanoGPT on an A100 (issue 178) appended in four chunks; predicted 0.6 s/step, 30 s windows."""
    data = NANOGPT.read_bytes()
    log = tmp_path / "train.log"
    log.write_bytes(b"")
    checks = []
    for i in range(4):
        with log.open("ab") as handle:
            handle.write(data[i * len(data) // 4 : (i + 1) * len(data) // 4])
        checks.append(check_run(
            RunInputs(log_path=str(log), predicted_step_time_s=0.6, window_s=30, total_steps=5000,
                      early_checkpoint_s=60, dph_total_usd=3.0, started_at_epoch_s=1000.0),
            now_epoch_s=1000.0 + 3600))
    assert [c.decision.decision for c in checks] == ["keep", "kill", "kill", "kill"]
    assert [c.step_last for c in checks] == [50, 120, 180, 240]
    assert [c.log.samples if c.log else None for c in checks] == [6, 13, 19, 26]
    first, last = checks[0], checks[-1]
    # One complete window only: the two-window throughput rule cannot fire yet. The metric moved and the
    # early checkpoint passed an hour ago on the wall clock (not the log's), so no_metric_movement is clear.
    # The one complete window is already below 80 % of predicted: pending (not clear), the ratio shown.
    assert [t.status for t in first.triggers] == ["pending", "no_data", "no_data", "clear"]
    assert first.triggers[0].message.startswith("throughput at 67% of predicted in windows [0]; the rule needs 2")
    assert "throughput_below_predicted: throughput at 67% of predicted" in first.decision.reason
    assert last.fired == ["throughput_below_predicted"]
    throughput = last.triggers[0]
    assert throughput.evidence["windows"] == [0, 1] and throughput.evidence["ratios"] == [0.6709, 0.6711]
    assert last.window is not None and (last.window.index, last.window.step_time_median_s) == (7, 0.89531)
    # ETA: (5000 - 240) x 0.89531 s; cost: an hour since the start at $3/h, ETA x $3/h to finish.
    assert (last.eta_s, last.eta_trend, last.throughput_ratio) == (4261.6756, "stable", 0.6702)
    assert (last.elapsed_hours, last.cost_so_far_usd, last.cost_to_finish_usd, last.cost_total_usd) == (
        1.0, 3.0, 3.55, 6.55)
    assert last.bottleneck is not None and last.decision.reason.startswith("throughput_below_predicted: throughput")


def test_run_check_without_the_dispatcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runcheck, "dispatch_module", lambda: None)
    log = tmp_path / "train.log"
    shutil.copy(NANOGPT, log)
    c = runcheck.run_check("r123", log_path=str(log), total_steps=5000)
    assert c.heartbeat is None and c.notes[0].startswith("dispatcher not installed")
    # No prediction and no spec: every trigger lacks data, so the honest answer is wait, not keep.
    assert c.decision.decision == "wait" and c.run_id == "r123"
    with pytest.raises(PreflightError) as err:
        runcheck.run_check("r123")
    assert err.value.one_line().startswith("run_id: got 'r123'; allowed: a recorded run; without the dispatcher")
