"""Vast offers in: unit conversions and prices checked by hand against the real captured records.

Every expected number below is worked out from the fixture record itself (arithmetic in the comments);
provenance of each fixture is in tests/fixtures/vast/SOURCES.md. Nothing here touches the network.
"""

from __future__ import annotations

import importlib.util
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.offers.live import cache_path, resolve_api_key, search_live
from gpu_preflight.tools.offers.records import Offer, age_text, dph_total_for_storage, load_offers

FIXTURES = Path(__file__).parent / "fixtures" / "vast"
GUANGXI_4090 = FIXTURES / "rtx4090_guangxi_cli_raw_2024.json"
NORWAY_3090 = FIXTURES / "rtx3090_norway_bundles_2022.json"
FARM_5090 = FIXTURES / "rtx5090_500farm_offers_2025-07-26.json"
MULTI_GPU = FIXTURES / "recorded_market_multi_gpu_2026-07-30_TRIMMED.json"
SHOW_INSTANCE = FIXTURES / "a5000_show_instance_record.json"
SNAPSHOT = Path(__file__).parent.parent / "tools" / "offers" / "data" / "offers_snapshot.json"


def only(path: Path) -> Offer:
    offers = load_offers(path).offers
    assert len(offers) == 1
    return offers[0]


def guangxi_record() -> dict[str, Any]:
    record: dict[str, Any] = json.loads(GUANGXI_4090.read_text())[0]
    return record


# ---------------------------------------------------------------- 4090, `vastai search offers --raw` (2024)

def test_4090_cli_raw_units() -> None:
    o = only(GUANGXI_4090)
    assert o.offer_id == 11684738 and o.gpu_name == "RTX 4090" and o.num_gpus == 1
    # gpu_ram 24564 MiB * 1,048,576 B/MiB = 25,757,220,864 B = 25.757220864 GB
    assert o.gpu_ram_gb_per_gpu == pytest.approx(25.757220864)
    assert o.gpu_total_ram_gb == pytest.approx(25.757220864)  # 1 GPU
    # total_flops is FP32 CUDA-core TFLOPS: 16384 cores * 2 * 2.532 GHz = 82.97; the record says 82.968576
    assert o.total_flops_fp32_tflops == pytest.approx(82.968576)
    # cpu_ram 64393 MB = 64.393 GB for the host; this offer has gpu_frac 0.25 -> 64.393 * 0.25 = 16.09825 GB
    assert o.cpu_ram_host_gb == pytest.approx(64.393)
    assert o.cpu_ram_gb == pytest.approx(16.09825)
    assert (o.inet_up_mbps, o.inet_down_mbps) == (77.7, 105.9)  # Mbit/s as measured
    assert (o.gpu_mem_bw_gbps, o.pcie_bw_gbps) == (3108.4, 12.3)  # measured GB/s; 3108 is absurd for a 4090
    assert o.disk_space_gb == pytest.approx(1607.875)
    assert o.cpu_cores_effective == 24.0
    assert o.reliability == pytest.approx(0.9700835)
    assert (o.cuda_max_good, o.driver_version) == (12.2, "535.183.01")
    assert (o.verified, o.datacenter, o.hosting_type, o.interruptible) == (True, False, 0, False)
    assert o.geolocation == "Guangxi, CN"
    assert o.warnings == []


def test_4090_price_formula_and_repricing() -> None:
    o = only(GUANGXI_4090)
    # storage_total_cost 9.25925925925926e-06 $/h * 720 h / 0.0013333333333333335 $/GB/month = 5.0 GB (CLI default)
    assert o.storage_gb_allocated == pytest.approx(5.0)
    # dph_total = dph_base + storage_cost * GB / 720 = 0.24666666666666665 + 0.0013333333333333335 * 5 / 720
    #           = 0.24666666666666665 + 0.00000925925925926 = 0.2466759259259259
    assert o.dph_total_usd == pytest.approx(0.24666666666666665 + 0.0013333333333333335 * 5 / 720, rel=1e-12)
    assert o.dph_total_usd == pytest.approx(0.2466759259259259, rel=1e-12)
    # repriced for a 100 GB disk: 0.24666666666666665 + 0.0013333333333333335 * 100 / 720 = 0.24685185185185185
    assert dph_total_for_storage(o, 100) == pytest.approx(0.24685185185185185, rel=1e-12)
    assert dph_total_for_storage(o, 5) == pytest.approx(o.dph_total_usd, rel=1e-12)
    assert (o.inet_up_cost_usd_per_tb, o.inet_down_cost_usd_per_tb) == (0.0, 0.0)  # internet_*_cost_per_tb 0.0


def test_4090_capture_time_from_the_record() -> None:
    # Vast serves duration = end_date - now: 1735707781.0 - 13356528.565657616 = 1722351252.434 s = 2024-07-30 14:54:12Z
    offers = load_offers(GUANGXI_4090)
    assert offers.captured_at_source == "records"
    assert offers.captured_at is not None
    assert offers.captured_at.timestamp() == pytest.approx(1722351252.434342, abs=1e-3)
    now = datetime(2024, 7, 30, 17, 54, 12, tzinfo=UTC)  # 3 h later
    assert age_text(offers.captured_at, now) == "captured 3 h ago at 2024-07-30T14:54:12Z"


def test_unknown_keys_kept_verbatim() -> None:
    o = only(GUANGXI_4090)
    assert o.extra["dph_total_adj"] == 0.2466759259259259
    assert o.extra["machine_id"] == 22990
    assert o.extra["search"]["totalHour"] == 0.2466759259259259
    assert o.extra["gpu_ids"] == [82267]
    assert "dph_total" not in o.extra and "gpu_ram" not in o.extra  # modelled keys live in the fields


# ---------------------------------------------------------------- 3090, legacy /bundles/ API (2022)

def test_3090_legacy_record() -> None:
    o = only(NORWAY_3090)  # a single offer object, not a list
    # gpu_ram 24576 MiB * 1,048,576 = 25,769,803,776 B = 25.769803776 GB
    assert o.gpu_ram_gb_per_gpu == pytest.approx(25.769803776)
    assert o.reliability == pytest.approx(0.9993718)  # only reliability2 in the 2022 API
    # storage_total_cost 0.00277777777777778 * 720 / 0.2 = 10 GB (the query's allocated_storage: 10)
    assert o.storage_gb_allocated == pytest.approx(10.0)
    # 0.32 + 0.2 * 10 / 720 = 0.32 + 0.002777... = 0.322777...; the record says 0.322777777777778
    assert o.dph_total_usd == pytest.approx(0.322777777777778, rel=1e-12)
    assert o.dph_total_usd == pytest.approx(0.32 + 0.2 * 10 / 720, rel=1e-12)
    # no internet_*_cost_per_tb in 2022: inet_*_cost 0.03 $/GB * 1024 GB/TB = 30.72 $/TB
    assert o.inet_up_cost_usd_per_tb == pytest.approx(30.72)
    assert o.inet_down_cost_usd_per_tb == pytest.approx(30.72)
    assert o.cpu_ram_gb == pytest.approx(128.556 * 0.25)  # 32.139 GB
    assert o.total_flops_fp32_tflops == pytest.approx(44.39808)  # 10496 cores * 2 * 2.115 GHz
    assert (o.hosting_type, o.datacenter) == (None, None)  # hosting_type null: unknown, not "no"
    assert o.disk_bw_mbps == pytest.approx(410.279733614187)
    assert o.warnings == []


# ---------------------------------------------------------------- 5090, 500.farm mirror (dph_total dropped)

def test_5090_mirror_without_dph_total() -> None:
    offers = load_offers(FARM_5090)
    a, b = offers.offers
    # diskHour 0.010370370370370372 * 720 / 0.9333333333333335 = 7.4667 / 0.9333 = 8.0 GB
    assert a.storage_gb_allocated == pytest.approx(8.0)
    # 0.10533333333333333 + 0.9333333333333335 * 8 / 720 = 0.10533333 + 0.01037037 = 0.11570370
    assert a.dph_total_usd == pytest.approx(0.10533333333333333 + 0.9333333333333335 * 8 / 720, rel=1e-12)
    assert a.dph_total_usd == pytest.approx(0.11570370370370371, rel=1e-12)  # = search.totalHour
    assert any("dph_total missing" in w for w in a.warnings)
    # second offer: 0.12 + 0.6 * 8 / 720 = 0.12 + 0.0066667 = 0.1266667
    assert b.dph_total_usd == pytest.approx(0.12 + 0.6 * 8 / 720, rel=1e-12)
    # bandwidth: internet_down_cost_per_tb 2 = inet_down_cost 0.001953125 * 1024; 1.2 = 0.001171875 * 1024
    assert (a.inet_down_cost_usd_per_tb, b.inet_down_cost_usd_per_tb) == (2.0, 1.2)
    # gpu_ram 32607 MiB * 1,048,576 = 34,190,917,632 B = 34.190917632 GB; gpu_frac 1 -> all 63.745 GB of host RAM
    assert a.gpu_ram_gb_per_gpu == pytest.approx(34.190917632)
    assert a.cpu_ram_gb == pytest.approx(63.745)
    assert a.verified is False  # the exporter's `verified`, agreeing with verification "unverified"
    assert a.extra["gpu_max_power"] == 575


def test_missing_dph_total_and_search_recomputed_from_storage() -> None:
    record = guangxi_record()
    del record["dph_total"], record["search"]
    o = load_offers(json.dumps(record)).offers[0]
    # dph_base + storage_total_cost = 0.24666666666666665 + 9.25925925925926e-06 = 0.2466759259259259
    assert o.dph_total_usd == pytest.approx(0.2466759259259259, rel=1e-12)
    assert "dph_total missing: recomputed as dph_base + storage per hour" in o.warnings


def test_5090_capture_time_from_file_timestamp() -> None:
    offers = load_offers(FARM_5090)
    assert offers.captured_at_source == "file"
    assert offers.captured_at == datetime(2025, 7, 26, 8, 1, 10, 576217, tzinfo=UTC)
    # per record: end_date 1756666345 - duration 3149474.3556768894 = 1753516870.644 s, 0.07 s after the file's
    assert offers.offers[0].captured_at is not None
    assert offers.offers[0].captured_at.timestamp() == pytest.approx(1753516870.6443, abs=1e-3)


# ---------------------------------------------------------------- multi-GPU (hand-trimmed live-market capture)

def test_multi_gpu_total_ram_is_per_gpu_times_count() -> None:
    rtx3090x2, h100x2, rtx4090x4 = load_offers(MULTI_GPU).offers
    # 2 * 24576 MiB = 49152 MiB (the record's gpu_total_ram) = 51,539,607,552 B = 51.539607552 GB
    assert rtx3090x2.gpu_total_ram_gb == pytest.approx(51.539607552)
    # 2 * 81559 MiB = 163118 MiB = 171,041,619,968 B = 171.041619968 GB; per GPU 85.520809984 GB
    assert h100x2.gpu_ram_gb_per_gpu == pytest.approx(85.520809984)
    assert h100x2.gpu_total_ram_gb == pytest.approx(171.041619968)
    # 4 * 24564 MiB = 98256 MiB = 103,028,883,456 B
    assert rtx4090x4.gpu_total_ram_gb == pytest.approx(103.028883456)
    # (dph_total 0.305 - dph_base 0.301) * 720 / storage_cost 0.12 = 0.004 * 720 / 0.12 = 24 GB
    assert rtx3090x2.storage_gb_allocated == pytest.approx(24.0)
    # 4x4090 has neither dph_base nor storage_cost: the recorded 1.42 is kept and cannot be repriced
    assert rtx4090x4.dph_base_usd == 1.42 and dph_total_for_storage(rtx4090x4, 200) == 1.42
    assert any("cannot reprice" in w for w in rtx4090x4.warnings)
    # no gpu_frac: the share of 85.864 GB host RAM is unknown, so it is left empty rather than guessed
    assert rtx3090x2.cpu_ram_host_gb == pytest.approx(85.864) and rtx3090x2.cpu_ram_gb is None


def test_file_mtime_when_records_carry_no_time(tmp_path: Path) -> None:
    path = tmp_path / "offers.json"
    path.write_text(MULTI_GPU.read_text())
    os.utime(path, (1785400000, 1785400000))
    offers = load_offers(path)
    assert offers.captured_at_source == "file_mtime"
    assert offers.captured_at == datetime.fromtimestamp(1785400000, UTC)
    now = offers.captured_at + timedelta(minutes=20)
    assert age_text(offers.captured_at, now, source="file_mtime").startswith("file saved 20 min ago at ")
    assert load_offers(MULTI_GPU.read_text()).captured_at is None  # inline text: no time at all
    assert age_text(None, now) == "capture time unknown"


def test_bundled_snapshot_is_the_real_records() -> None:
    snapshot = json.loads(SNAPSHOT.read_text())
    farm = json.loads(FARM_5090.read_text())["offers"]
    assert snapshot == [json.loads(NORWAY_3090.read_text()), guangxi_record(), *farm]  # unmodified
    offers = load_offers(SNAPSHOT)
    assert [o.offer_id for o in offers.offers] == [5006600, 11684738, 21348645, 21348670]
    assert offers.skipped == []
    # the oldest record sets the age: 1668211200 - 688168.011926413 = 1667523031.99 s = 2022-11-04 00:50:31Z
    assert offers.captured_at is not None
    assert offers.captured_at.strftime("%Y-%m-%dT%H:%M:%SZ") == "2022-11-04T00:50:31Z"


# ---------------------------------------------------------------- odd records are skipped, named, never crash

@pytest.mark.parametrize(("key", "value", "reason"), [
    ("dph_base", -0.1, "dph_base=-0.1: must be >= 0"),
    ("gpu_ram", 0, "gpu_ram=0: must be > 0"),
    ("gpu_ram", "24564", "gpu_ram='24564': not a number"),
    ("num_gpus", 1.5, "num_gpus=1.5: must be an integer >= 1"),
    ("gpu_name", None, "gpu_name=None: must be a non-empty string"),
    ("id", None, "id missing"),
    ("dph_total", float("nan"), "dph_total=nan: not finite"),
])
def test_odd_record_skipped_with_reason(key: str, value: Any, reason: str) -> None:
    odd = guangxi_record()
    odd[key] = value
    good = guangxi_record()
    offers = load_offers(json.dumps([good, odd]))
    assert [o.offer_id for o in offers.offers] == [11684738]
    (skipped,) = offers.skipped
    assert (skipped.index, skipped.reason) == (1, reason)
    assert skipped.offer_id == (None if key == "id" else 11684738)
    assert skipped.message().startswith("record #1")


def test_non_objects_and_instances_in_a_list_are_skipped() -> None:
    instance = json.loads(SHOW_INSTANCE.read_text())["instances"]
    offers = load_offers(json.dumps([42, instance, guangxi_record()]))
    assert len(offers.offers) == 1
    assert [s.reason for s in offers.skipped] == [
        "not a JSON object but a JSON number", "a `show instance` record (a rented instance), not an offer"]


def test_odd_optional_values_are_dropped_with_a_warning() -> None:
    record = guangxi_record()
    record.update(inet_down="fast", reliability=1.5, reliability2=1.5, gpu_mem_bw=-3)
    o = load_offers(json.dumps(record)).offers[0]
    assert (o.inet_down_mbps, o.reliability, o.gpu_mem_bw_gbps) == (None, None, None)
    assert "ignored inet_down='fast': not a number" in o.warnings
    assert "ignored reliability=1.5: must be <= 1" in o.warnings
    del record["dph_base"], record["storage_cost"], record["cpu_ram"]  # missing optional keys are fine
    assert load_offers(json.dumps(record)).offers[0].cpu_ram_gb is None


# ---------------------------------------------------------------- bad files: one clear error each

@pytest.mark.parametrize(("text", "got"), [
    ('[{"id": 1,}]', "inline"),  # issue 14: the source is named, the parse error is the hint (never the text)
    ("[]", "an empty list"),
    ('{"offers": []}', "an empty list"),
    ('{"offers": {"id": 1}}', "a JSON object"),
    ('{"error": true, "status_code": 429, "msg": "search_quota_exceeded"}', "a Vast error: search_quota_exceeded"),
    ('{"rows": []}', "an object with keys rows"),
    ('[{"id": 1}]', "1 record(s), none usable; record #0 (offer 1) skipped: gpu_name=None: must be a non-empty string"),
])
def test_bad_offer_text_one_clear_error(text: str, got: str) -> None:
    with pytest.raises(PreflightError) as err:
        load_offers(text)
    assert err.value.got == got
    if got == "inline":
        assert err.value.hint == "not JSON: Expecting property name enclosed in double quotes at line 1, column 11"
    assert "\n" not in err.value.one_line()


def test_bad_files(tmp_path: Path) -> None:
    scalar = tmp_path / "n.json"
    scalar.write_text("3.5\n")
    with pytest.raises(PreflightError, match="got 'a JSON number'"):
        load_offers(scalar)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n {"id": 1\n')
    with pytest.raises(PreflightError, match="line 3, column 1"):
        load_offers(broken)
    with pytest.raises(PreflightError, match="a regular file holding a JSON offers file"):
        load_offers(tmp_path / "missing.json")
    # Regression (the MCP fuzz): the OS refuses to look these up; is_file() raised instead of saying no.
    for unlookable in ("A" * 10_000, "offers\x00.json"):
        with pytest.raises(PreflightError, match="a regular file holding a JSON offers file"):
            load_offers(unlookable)
    with pytest.raises(PreflightError, match="show instance"):
        load_offers(SHOW_INSTANCE)
    with pytest.raises(PreflightError, match="storage_gb: got -1"):
        dph_total_for_storage(only(GUANGXI_4090), -1)


# ---------------------------------------------------------------- live search: key resolution and cache only

@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME, config dir and state dir, with no Vast key anywhere."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PREFLIGHT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    return tmp_path


def test_api_key_resolution_order(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_api_key() is None
    (isolated / ".vast_api_key").write_text("legacy\n")
    assert resolve_api_key() == ("legacy", str(isolated / ".vast_api_key"))
    config = isolated / ".config" / "vastai"
    config.mkdir(parents=True)
    (config / "vast_api_key").write_text("  cli-key \n")
    assert resolve_api_key() == ("cli-key", str(config / "vast_api_key"))
    xdg = isolated / "xdg"
    (xdg / "vastai").mkdir(parents=True)
    (xdg / "vastai" / "vast_api_key").write_text("xdg-key")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert resolve_api_key() == ("xdg-key", str(xdg / "vastai" / "vast_api_key"))
    monkeypatch.setenv("VAST_API_KEY", "env-key")
    assert resolve_api_key() == ("env-key", "VAST_API_KEY")


def write_cache(query: str, captured_at: datetime, **params: Any) -> Path:
    path = cache_path(query, **params)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"captured_at": captured_at.isoformat(), "offers": json.loads(GUANGXI_4090.read_text())}
    path.write_text(json.dumps(record))
    return path


def test_fresh_cache_is_reused_without_key_or_network(isolated: Path) -> None:
    now = datetime(2026, 7, 30, 12, 0, tzinfo=UTC)
    params: dict[str, Any] = {"storage_gb": 50, "type": "on-demand", "order": "dph_total", "limit": 64}
    write_cache("gpu_name=RTX_4090", now - timedelta(minutes=5), **params)
    offers = search_live("gpu_name=RTX_4090", now=now, storage_gb=50)
    assert [o.offer_id for o in offers.offers] == [11684738]
    assert offers.captured_at_source == "live"
    assert age_text(offers.captured_at, now) == "captured 5 min ago at 2026-07-30T11:55:00Z"
    # a bid search marks every offer interruptible; a different storage size is a different cache entry
    write_cache("gpu_name=RTX_4090", now, **{**params, "type": "bid"})
    assert search_live("gpu_name=RTX_4090", now=now, storage_gb=50, type="bid").offers[0].interruptible
    with pytest.raises(PreflightError, match="Vast API key"):
        search_live("gpu_name=RTX_4090", now=now, storage_gb=60)


def test_stale_cache_and_no_key_says_how_to_fix(isolated: Path) -> None:
    now = datetime(2026, 7, 30, 12, 0, tzinfo=UTC)
    path = write_cache("num_gpus=2", now - timedelta(minutes=11), storage_gb=10, type="on-demand",
                       order="dph_total", limit=64)
    with pytest.raises(PreflightError) as err:
        search_live("num_gpus=2", now=now, storage_gb=10)
    text = err.value.one_line()
    assert "VAST_API_KEY" in text and "--offers FILE" in text
    assert f"a cached answer captured 11 min ago at 2026-07-30T11:49:00Z is in {path}" in text


def test_key_but_no_sdk_says_pip_install(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("vastai") is not None:
        pytest.skip("vastai is installed: this would search the network")
    monkeypatch.setenv("VAST_API_KEY", "dummy")
    with pytest.raises(PreflightError, match=r'pip install "gpu-preflight\[vast\]"'):
        search_live("gpu_name=RTX_4090", storage_gb=50)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"storage_gb": -1}, "storage_gb"),
    ({"storage_gb": 10, "limit": 0}, "limit"),
    ({"storage_gb": 10, "type": "spot"}, "type"),
    ({"storage_gb": 10, "order": "dph total"}, "order"),
])
def test_live_search_refuses_bad_arguments(isolated: Path, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(PreflightError) as err:
        search_live("gpu_name=RTX_4090", **kwargs)
    assert err.value.field == field

