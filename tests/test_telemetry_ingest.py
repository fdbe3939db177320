"""ingest(): format detection on every recorded file, the JSON contract, and refusals."""

from __future__ import annotations

import doctest
import importlib
import json
import pkgutil
from pathlib import Path

import pytest

import gpu_preflight.tools.telemetry as telemetry
from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.telemetry.ingest import detect_format, ingest

FIXTURES = Path(__file__).parent / "fixtures"

# file -> (detected format, samples, skipped lines, duplicate lines)
EXPECTED: dict[str, tuple[str, int, int, int]] = {
    "nvidia-smi/dmon_default_issue_dcgm_exporter_2025.txt": ("nvidia_smi_dmon", 4, 1, 0),
    "nvidia-smi/dmon_default_t4_driver535_d2.txt": ("nvidia_smi_dmon", 3, 2, 0),
    "nvidia-smi/dmon_default_wsl2_paste_missing_hash.txt": ("nvidia_smi_dmon", 1, 1, 0),
    "nvidia-smi/dmon_pucm_a100x2_slurm_log.txt": ("nvidia_smi_dmon", 5, 2, 0),
    "nvidia-smi/dmon_pucvmet_2016_deepspeech_issue178.txt": ("nvidia_smi_dmon", 4, 1, 0),
    "nvidia-smi/dmon_s_u_new_driver_jpg_ofa_dashes.txt": ("nvidia_smi_dmon", 1, 0, 0),
    "nvidia-smi/dmon_s_u_new_driver_jpg_ofa_example.txt": ("nvidia_smi_dmon", 3, 0, 0),
    "nvidia-smi/dmon_s_u_old_driver_blog.txt": ("nvidia_smi_dmon", 8, 0, 0),
    "nvidia-smi/dmon_s_uc_t4_old_driver.txt": ("nvidia_smi_dmon", 15, 1, 0),
    "nvidia-smi/dmon_s_um_old_driver_ec2.txt": ("nvidia_smi_dmon", 5, 2, 0),
    "nvidia-smi/query_csv_nounits_a100_80gb_nesi_2024-03-13.csv": ("nvidia_smi_query", 7, 0, 0),
    "nvidia-smi/query_csv_power_bpytop_issue26_2020-11.txt": ("nvidia_smi_query", 4, 14, 0),
    "nvidia-smi/query_csv_power_gh200_exercise_2026-03-06_ELIDED.txt": ("nvidia_smi_query", 5, 1, 0),
    "nvidia-smi/query_csv_power_limit_NA_rtx5070ti.txt": ("nvidia_smi_query", 1, 1, 0),
    "nvidia-smi/query_csv_single_gtx1650ti_maxq.txt": ("nvidia_smi_query", 1, 1, 0),
    "nvidia-smi/query_csv_units_v100_aau_2020-11-12.csv": ("nvidia_smi_query", 17, 0, 0),
    "logs/composer_llmfoundry_mpt_aws.log": ("composer", 1, 2, 0),
    "logs/hf_trainer_gaudi_blog_summary.log": ("hf_trainer", 2, 0, 0),
    "logs/hf_trainer_new_string_format_trl_sft.log": ("hf_trainer", 4, 2, 0),
    "logs/hf_trainer_old_float_format_llama_lora.log": ("hf_trainer", 3, 1, 1),  # the closing redraw is no step
    "logs/lightning_progress_bars.log": ("lightning", 7, 5, 1),
    "logs/megatron_deepspeed_issue396.log": ("megatron", 3, 0, 0),
    "logs/nanochat_a100_pr147.log": ("nanochat", 7, 0, 0),
    "logs/nanogpt_8xa100_issue110_no_mfu.log": ("nanogpt", 11, 2, 0),
    "logs/nanogpt_a100_issue178_mfu.log": ("nanogpt", 26, 0, 0),
    "logs/nanogpt_cpu_shakespeare_char.log": ("nanogpt", 22, 3, 0),
    "logs/torchtitan_debug_model_2025-10.log": ("torchtitan", 3, 1, 0),
    "logs/torchtitan_like_ezpz_no_tflops.log": ("torchtitan", 2, 0, 0),
    "logs/torchtitan_pr1287_2025-06.log": ("torchtitan", 6, 4, 0),
    "logs/torchtitan_pr2389_2026-02_no_rank_prefix.log": ("torchtitan", 2, 0, 6),
}

GPU_KEYS = {"gpu_index", "timestamp", "gpu_util_pct", "mem_util_pct", "mem_used_mib", "mem_total_mib", "power_w"}
LOG_KEYS = {"step", "loss", "tokens_per_s", "step_time_s", "mfu_pct"}


def test_every_fixture_file_is_listed() -> None:
    on_disk = {
        f"{p.parent.name}/{p.name}"
        for d in ("nvidia-smi", "logs")
        for p in (FIXTURES / d).iterdir()
        if p.suffix != ".md" and p.is_file()  # sub-folders (our own fixtures) have their own tests
    }
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_detects_and_counts(name: str) -> None:
    fmt, count, skipped, dups = EXPECTED[name]
    result = ingest(FIXTURES / name)
    assert (result.format, len(result.samples), result.skipped_lines, result.duplicate_lines) == (
        fmt,
        count,
        skipped,
        dups,
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_json_contract_keys(name: str) -> None:
    data = json.loads(ingest(FIXTURES / name).model_dump_json())
    assert {"format", "samples", "skipped_lines"} <= set(data)
    wanted = GPU_KEYS if data["format"].startswith("nvidia_smi") else LOG_KEYS
    for sample in data["samples"]:
        assert wanted <= set(sample)


def test_contract_values_for_one_gpu_and_one_log_line() -> None:
    gpu = json.loads(ingest(FIXTURES / "nvidia-smi/query_csv_units_v100_aau_2020-11-12.csv").model_dump_json())
    assert {k: gpu["samples"][0][k] for k in GPU_KEYS} == {
        "gpu_index": 0,
        "timestamp": "2020-11-12T13:48:11.412",
        "gpu_util_pct": 99.0,
        "mem_util_pct": 52.0,
        "mem_used_mib": 30994.0,
        "mem_total_mib": 32480.0,
        "power_w": None,
    }
    log = json.loads(ingest(FIXTURES / "logs/nanogpt_a100_issue178_mfu.log").model_dump_json())
    first = {k: log["samples"][1][k] for k in LOG_KEYS}
    assert first == {"step": 10, "loss": 3.2202, "tokens_per_s": None, "step_time_s": 0.89376, "mfu_pct": 16.68}


def test_path_as_string_and_text_are_the_same() -> None:
    path = FIXTURES / "logs/nanochat_a100_pr147.log"
    assert ingest(str(path)) == ingest(path.read_text()) == ingest(path)


def test_forced_format_overrides_detection() -> None:
    result = ingest(FIXTURES / "logs/nanochat_a100_pr147.log", fmt="nanogpt")
    assert (result.format, len(result.samples), result.skipped_lines) == ("nanogpt", 0, 7)


def test_regex_implies_regex_format() -> None:
    result = ingest("loss=1.5 at 3\nloss=1.25 at 4\n", regex=r"loss=(?P<loss>[\d.]+) at (?P<step>\d+)")
    assert result.format == "regex"
    assert [(s.step, s.loss) for s in result.log_samples()] == [(3, 1.5), (4, 1.25)]
    with pytest.raises(PreflightError):
        ingest("x", fmt="nanogpt", regex=r"(?P<step>\d+)")


def test_undetectable_text_and_missing_file() -> None:
    with pytest.raises(PreflightError) as err:
        ingest("hello\nworld\n")
    assert err.value.field == "fmt" and "fmt=" in err.value.hint
    with pytest.raises(PreflightError) as err:
        ingest("/no/such/run.log")
    assert err.value.hint == "no such file"
    with pytest.raises(PreflightError) as err:
        ingest(Path("/no/such/run.log"))
    assert err.value.field == "path"
    with pytest.raises(PreflightError) as err:
        ingest("iter 1: loss 1.0, time 1ms", fmt="wandb")
    assert err.value.field == "fmt"


def test_detect_format_none_on_empty() -> None:
    assert detect_format("") is None


def test_noheader_columns_pass_through() -> None:
    text = "2024/03/13 07:04:38.839, 28, 0, 80257, 81920\n"
    result = ingest(
        text,
        fmt="nvidia_smi_query",
        columns=["timestamp", "utilization.gpu", "utilization.memory", "memory.used", "memory.total"],
    )
    assert result.gpu_samples()[0].mem_used_mib == 80257.0
    assert detect_format(text) == "nvidia_smi_query"  # the timestamped row alone identifies it


def test_doctests_in_every_telemetry_module() -> None:
    failed = 0
    attempted = 0
    for info in pkgutil.iter_modules(telemetry.__path__):
        module = importlib.import_module(f"{telemetry.__name__}.{info.name}")
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        failed += result.failed
        attempted += result.attempted
    assert failed == 0
    assert attempted >= 10
