"""The option table over whole real markets, read in place from ../shared (never copied here).

``vastcli_search_offers_raw_all_2024-11-05.json`` is an unedited ``vastai search offers --raw`` dump of
the whole market (1,396 offers, 61 GPU models); the 2026-09-28 file holds 12 records of the newest
schema (RTX 5090, 5090D, RTX PRO 6000 ...). See SOURCES.md beside them. What a user checks: a plan
over the whole market prints a few aggregated notes, not one per offer; the rows are priced from
datasheets, not from Vast's FP32 figure; and a plan over the bundled sample says it is old and how
to plan over today's market.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers_spec import EXAMPLES, spec

from gpu_preflight.server.nextsteps import CLI, MCP
from gpu_preflight.tools.common.nextstep import speaking
from gpu_preflight.tools.estimator.catalogue import lookup_gpu
from gpu_preflight.tools.estimator.spec import load_spec_file
from gpu_preflight.tools.offers.options import PlanResult, plan_options
from gpu_preflight.tools.offers.planning import offers_for, snapshot_path
from gpu_preflight.tools.offers.records import load_offers

FOUND = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "vast" / "found"
MARKET_2024 = FOUND / "vastcli_search_offers_raw_all_2024-11-05.json"
MARKET_2026 = FOUND / "vastgpubroker_bundles_ondemand_first12_2026-09-28.json"
needs_found = pytest.mark.skipif(not MARKET_2024.is_file() or not MARKET_2026.is_file(),
                                 reason=f"found Vast markets absent ({FOUND}): ../shared is not checked out")
SMALL_LORA = EXAMPLES / "llama-3.2-1b-lora.toml"


def _raw(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    assert isinstance(data, list)
    return data


@pytest.fixture(scope="module")
def whole_market_plan() -> PlanResult:
    # limit 1000: every fitting row is shown, so the share below covers all of them.
    return plan_options(load_spec_file(SMALL_LORA), load_offers(MARKET_2024), limit=1000)


@needs_found
def test_every_gpu_model_on_both_markets_is_in_the_catalogue() -> None:
    names = {r["gpu_name"] for path in (MARKET_2024, MARKET_2026) for r in _raw(path)}
    assert len(names) >= 60  # 61 models in 2024, plus the 5090D of 2026
    missing = sorted(n for n in names if lookup_gpu(n) is None)
    assert missing == []
    for name in names:
        row = lookup_gpu(name)
        assert row is not None and row.source.strip() and "http" in row.source, name


@needs_found
def test_whole_market_plan_prints_a_few_aggregated_notes(whole_market_plan: PlanResult) -> None:
    plan = whole_market_plan
    assert len(plan.rows) + len(plan.rejected) == 1396  # every offer is either ranked or rejected with reasons
    assert len(plan.warnings) <= 4, plan.warnings
    kinds = Counter(note.split(" on ")[0] for note in plan.warnings)
    assert all(n == 1 for n in kinds.values()), kinds
    # Each GPU model is named once across the bandwidth notes, never once per offer.
    bandwidth = [n for n in plan.warnings if "gpu_mem_bw" in n]
    assert len(bandwidth) == 2
    above, below = (next(n for n in bandwidth if f"is {w} the datasheet" in n) for w in ("above", "below"))
    for model in ("RTX 4090", "L40S", "RTX 6000Ada"):
        assert above.count(f"{model} ") == 1 and model not in below
    assert "A100 SXM4 " in below and "A100 SXM4" not in above
    # The figures are the capture's: the median of Vast's gpu_mem_bw over the 4090 offers vs the datasheet.
    # Four 4090 records carry gpu_mem_bw 0.0 (not measured); they do not count.
    measured = statistics.median(r["gpu_mem_bw"] for r in _raw(MARKET_2024)
                                 if r["gpu_name"] == "RTX 4090" and r["gpu_mem_bw"] > 0)
    assert f"RTX 4090 {measured:.0f} vs 1008" in above
    assert 3000 < measured < 3600  # above 3 TB/s on a card whose GDDR6X peaks at 1 TB/s


@needs_found
def test_whole_market_rows_are_priced_from_datasheets(whole_market_plan: PlanResult) -> None:
    rows = whole_market_plan.rows
    assert len(rows) > 500  # a 1B LoRA fits most of the market (584 offers on 2024-11-05)
    priced = sum(r.tflops_source == "catalogue" for r in rows)
    assert priced / len(rows) >= 0.99
    # Datasheet dense bf16, not Vast's FP32 total_flops: an A30 row carries 165 per GPU (A30 datasheet),
    # where Vast's total_flops says about 10 per GPU (its CUDA-core FP32).
    row = next(r for r in rows if r.gpu_option.endswith("x A30"))
    assert row.tflops == pytest.approx(165.0 * row.num_gpus, abs=0.1)
    vast = next(r["total_flops"] for r in _raw(MARKET_2024) if r["id"] == row.offer_id)
    assert vast < 0.1 * row.tflops
    assert all(r.captured_on == "2024-11-05" for r in rows)


@needs_found
def test_a_small_job_on_consumer_cards_is_priced_from_datasheets() -> None:
    # GPT-2 124M fits nearly every offer, so the GeForce, GTX and Quadro cards of the market are ranked too.
    plan = plan_options(spec(micro_batch=1), load_offers(MARKET_2024), limit=1000)
    assert len(plan.rows) > 900
    assert all(r.tflops_source == "catalogue" for r in plan.rows)
    assert not any("not in the catalogue" in n for n in plan.warnings)
    by_gpu = {r.gpu_option: r for r in plan.rows}
    # GeForce Ampere: bf16 with FP32 accumulate = 2 x FP32 (3,584 cores x 2 x 1.777 GHz = 12.74).
    assert by_gpu["1x RTX 3060"].tflops == pytest.approx(25.5, abs=0.1)
    # Consumer Pascal has no usable fp16/bf16 path: the FP32 rate (1,920 x 2 x 1.683 GHz = 6.46).
    assert by_gpu["1x GTX 1070"].tflops == pytest.approx(6.5, abs=0.1)


@needs_found
def test_newest_market_prices_the_5090d_below_the_5090() -> None:
    plan = plan_options(load_spec_file(SMALL_LORA), load_offers(MARKET_2026), limit=50)
    by_gpu = {r.gpu_option: r for r in plan.rows}
    d, full = by_gpu["1x RTX 5090D"], by_gpu["1x RTX 5090"]
    assert d.tflops_source == full.tflops_source == "catalogue"
    assert d.tflops < full.tflops and full.tflops == pytest.approx(209.5, abs=0.1)
    assert all(r.captured_on == "2026-09-28" for r in plan.rows)


def test_bundled_sample_says_it_is_old_and_how_to_plan_today() -> None:
    spec = load_spec_file(SMALL_LORA)
    with speaking(CLI):  # the note names the next step in the caller's interface
        plan = plan_options(spec, offers_for(spec), limit=20)
    assert plan.offers_sample
    sample_notes = [n for n in plan.warnings if "bundled sample" in n]
    assert len(sample_notes) == 1
    note = sample_notes[0]
    assert "--live" in note and "VAST_API_KEY" in note and "--offers" in note and "vastai search offers --raw" in note
    with speaking(MCP):
        mcp_note = next(n for n in plan_options(spec, offers_for(spec), limit=20).warnings if "bundled" in n)
    assert "live_query" in mcp_note and "offers_file" in mcp_note and "--live" not in mcp_note
    # Each row states its own record's capture date (end_date - duration), not the oldest one.
    raw = {r["id"]: r for r in _raw(snapshot_path())}
    dates = {r.captured_on for r in plan.rows}
    assert len(dates) > 1, dates
    for row in plan.rows:
        rec = raw[row.offer_id]
        if "end_date" in rec and "duration" in rec:
            from datetime import UTC, datetime

            served = datetime.fromtimestamp(rec["end_date"] - rec["duration"], UTC).date().isoformat()
            assert row.captured_on == served


def test_a_users_file_is_not_called_a_sample(tmp_path: Path) -> None:
    spec = load_spec_file(SMALL_LORA)
    mine = tmp_path / "offers.json"
    mine.write_text(snapshot_path().read_text())
    plan = plan_options(spec, offers_for(spec, offers_file=str(mine)), limit=20)
    assert not plan.offers_sample
    assert not any("bundled sample" in n for n in plan.warnings)


PREFLIGHT = shutil.which("preflight")


@pytest.mark.skipif(PREFLIGHT is None, reason="the preflight console script is not installed")
def test_cli_plan_on_the_sample_shows_dates_and_one_sample_line() -> None:
    out = subprocess.run([str(PREFLIGHT), "plan", str(SMALL_LORA), "--markdown"], capture_output=True, text=True,
                         timeout=60, check=False, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    header = next(line for line in out.stdout.splitlines() if line.startswith("| GPU option"))
    assert header.rstrip(" |").endswith("captured")
    assert out.stdout.count("Note: bundled sample") == 1  # the one line saying how to plan over today's market
    assert "Offers: the bundled sample, captured 20" in out.stdout
