"""The option table over real Vast records: costs by hand, rejections with reasons, ranking, risks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from helpers_spec import spec

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.offers.options import plan_options
from gpu_preflight.tools.offers.planning import snapshot_path
from gpu_preflight.tools.offers.records import OfferSet, load_offers, offers_from_json

VAST = Path(__file__).parent / "fixtures" / "vast"
RAW_4090: dict[str, Any] = json.loads((VAST / "rtx4090_guangxi_cli_raw_2024.json").read_text())[0]
LORA_1B = spec(model={"name": "llama-3.2-1b"}, method="lora", lora_rank=16, seq_len=2048, micro_batch=2)


def offers(*records: dict[str, Any]) -> OfferSet:
    return offers_from_json(list(records), source="test")


def variant(**changes: Any) -> dict[str, Any]:
    """The real RTX 4090 record with some fields changed (id bumped so rows stay distinct)."""
    record = copy.deepcopy(RAW_4090)
    record.update(changes)
    return record


def test_cost_includes_storage_repriced_for_the_run_and_the_download() -> None:
    record = variant(internet_down_cost_per_tb=5.0, inet_down_cost=5.0 / 1024)
    plan = plan_options(LORA_1B, offers(record))
    row = plan.rows[0]
    e = estimate_run(LORA_1B, "RTX 4090")
    disk = e.memory.disk.required_gb
    # dph_total = dph_base + storage_cost * disk / 720 = 0.246667 + 0.0013333 * disk / 720
    dph = 0.24666666666666665 + 0.0013333333333333335 * disk / 720
    assert row.dph_total_usd == pytest.approx(dph, abs=1e-4)
    # time adds the download: (model + data) GB * 8000 / 105.9 Mbit/s / 3600
    download_h = e.memory.network.download_gb * 8000 / 105.9 / 3600
    assert row.download_hours == pytest.approx(download_h, abs=1e-3)
    assert row.time_hours.base == pytest.approx((e.time_hours.base or 0) + download_h, abs=2e-3)
    # cost = time * dph + download GB / 1000 * $5/TB
    expected = (row.time_hours.base or 0) * dph + e.memory.network.download_gb / 1000 * 5.0
    assert row.cost_usd.base == pytest.approx(expected, abs=0.01)
    assert row.vram_gb == pytest.approx(24564 * 1048576 / 1e9, abs=0.01)  # gpu_ram is MiB per GPU
    assert row.tflops == pytest.approx(165.2, abs=0.5) and row.tflops_source == "catalogue"


def test_absurd_vast_bandwidth_is_ignored_and_said() -> None:
    plan = plan_options(LORA_1B, offers(RAW_4090))
    assert plan.rows[0].hbm_bw_gbps == 1008
    assert any("3108" in w for w in plan.warnings)


def test_rejected_offers_are_listed_with_reasons() -> None:
    too_big = spec(model={"name": "llama-3.1-8b"}, seq_len=4096, micro_batch=4)
    plan = plan_options(too_big, offers(RAW_4090))
    assert plan.rows == []
    assert plan.rejected[0].offer_id == 11684738
    assert plan.rejected[0].reasons[0].startswith("gpu_memory: needs")
    assert "no offer fits" in plan.recommendation

    huge_data = copy.deepcopy(LORA_1B)
    huge_data["overheads"]["disk"] = {"data_gb": 5000}
    assert any(r.startswith("disk:") for r in plan_options(huge_data, offers(RAW_4090)).rejected[0].reasons)

    offload = spec(model={"name": "llama-3.2-1b"}, sharding="zero2", offload="optimizer")
    small_host = variant(cpu_ram=8000, gpu_frac=1.0)
    assert any(r.startswith("cpu_ram:") for r in plan_options(offload, offers(small_host)).rejected[0].reasons)

    assert any(r.startswith("network:") for r in
               plan_options(LORA_1B, offers(variant(inet_down=2.0))).rejected[0].reasons)
    over_budget = plan_options(LORA_1B, offers(RAW_4090), max_usd=0.01)
    assert any(r.startswith("budget:") for r in over_budget.rejected[0].reasons)


def test_ranking_by_cost_and_by_time() -> None:
    snapshot = load_offers(snapshot_path())
    by_cost = plan_options(LORA_1B, snapshot, rank="cost")
    by_time = plan_options(LORA_1B, snapshot, rank="time")
    costs = [r.cost_usd.base or 0 for r in by_cost.rows]
    times = [r.time_hours.base or 0 for r in by_time.rows]
    assert costs == sorted(costs) and times == sorted(times)
    assert [r.rank for r in by_cost.rows] == list(range(1, len(costs) + 1))
    assert by_cost.offers_captured_at is not None and "ago" in by_cost.offers_age


def _codes(plan: Any) -> set[str]:
    return {risk.code for row in plan.rows for risk in row.major_risks}


@pytest.mark.parametrize(("changes", "code"), [
    ({"reliability": 0.9, "reliability2": 0.9}, "low_reliability"),
    # 2.47 GB of Llama-3.2-1B weights at 10.5 Mbit/s: 2.47*8000/10.5/3600 = 0.52 h > half of the 1 h setup.
    ({"inet_down": 10.5}, "slow_download"),
    ({"cuda_max_good": 11.8}, "old_cuda"),
    ({"is_bid": True}, "interruptible"),
    ({"num_gpus": 2, "gpu_frac": 0.5, "total_flops": 165.9}, "multi_gpu_first_attempt"),
    ({"gpu_name": "RTX 9999", "total_flops": 90.0}, "unknown_gpu"),
])
def test_each_derived_risk(changes: dict[str, Any], code: str) -> None:
    plan = plan_options(LORA_1B, offers(variant(**changes)))
    assert code in _codes(plan)
    assert code not in _codes(plan_options(LORA_1B, offers(RAW_4090)))


def test_tight_host_ram_is_a_risk_not_a_rejection() -> None:
    offload = spec(model={"name": "llama-3.2-1b"}, sharding="zero2", offload="optimizer")
    need = estimate_run(offload, "RTX 4090").memory.cpu.required_gb
    # A host whose share is 90% of the need... no: share just above the need (close_to_limit band).
    host = variant(cpu_ram=need * 1000 / 0.9 * 0.9 + 1000, gpu_frac=1.0)
    plan = plan_options(offload, offers(host))
    assert "cpu_ram_tight" in _codes(plan)


def test_unknown_gpu_falls_back_to_vast_fp32_and_says_so() -> None:
    row = plan_options(LORA_1B, offers(variant(gpu_name="RTX 9999", total_flops=90.0))).rows[0]
    assert row.tflops_source == "vast_fp32" and row.tflops == pytest.approx(90.0)


def test_setup_tax_and_oom_risk_flags() -> None:
    slow_setup = copy.deepcopy(LORA_1B)
    slow_setup["overheads"]["setup_debug_hours"] = 50.0
    assert "setup_tax_high" in _codes(plan_options(slow_setup, offers(RAW_4090)))
    # Find a micro-batch that lands in the 0.8-0.9 band on this GPU, then the table must flag it.
    vram = 24564 * 1048576 / 1e9
    gpu = {"name": "4090-as-offered", "gpu_ram_gb": vram, "bf16_tflops": 165.2, "hbm_bw_gbps": 1008}
    for seq in range(512, 8193, 128):
        candidate = spec(model={"name": "llama-3.2-1b"}, method="lora", lora_rank=16, seq_len=seq, micro_batch=2)
        if estimate_run(candidate, gpu).memory.gpu.verdict == "high_oom_risk":
            plan = plan_options(candidate, offers(RAW_4090))
            assert "oom_risk" in _codes(plan)
            assert plan.rows[0].optimization_effort == "med"
            break
    else:
        pytest.fail("no sequence length lands in the high-OOM band")


def test_baseline_switches_every_row_to_scaled_throughput() -> None:
    with_base = copy.deepcopy(LORA_1B) | {"baseline": {"tokens_per_s": 5000.0, "gpu": "RTX 3090"}}
    plan = plan_options(with_base, load_offers(snapshot_path()))
    by_gpu = {r.gpu_option: r.pred_tokens_per_s for r in plan.rows}
    assert by_gpu["1x RTX 3090"] == pytest.approx(5000 * 0.9)  # same GPU: efficiency only
    assert by_gpu["1x RTX 4090"] != pytest.approx(4500)


def test_bad_arguments() -> None:
    with pytest.raises(PreflightError, match="rank"):
        plan_options(LORA_1B, offers(RAW_4090), rank="fastest")  # type: ignore[arg-type]
    with pytest.raises(PreflightError, match="max_usd"):
        plan_options(LORA_1B, offers(RAW_4090), max_usd=-3)
