"""nvidia-smi parsers on every recorded capture (see fixtures/nvidia-smi/SOURCES.md), exact values."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.telemetry.models import GpuSample
from gpu_preflight.tools.telemetry.nvsmi import (
    DmonParser,
    QueryCsvParser,
    parse_dmon,
    parse_query_csv,
    smi_timestamp_to_iso,
)

SMI = Path(__file__).parent / "fixtures" / "nvidia-smi"


def query(name: str) -> tuple[list[GpuSample], int]:
    return parse_query_csv((SMI / name).read_text())


def dmon(name: str) -> tuple[list[GpuSample], int]:
    return parse_dmon((SMI / name).read_text())


# --- query CSV ---------------------------------------------------------------------------------


def test_v100_with_units_index_column_first() -> None:
    samples, skipped = query("query_csv_units_v100_aau_2020-11-12.csv")
    assert (len(samples), skipped) == (17, 0)
    s = samples[5]  # "0, 2020/11/12 13:48:36.427, 32 %, 33 %, 32480 MiB, 30994 MiB, 1486 MiB"
    assert s.gpu_index == 0 and s.seq == 5
    assert s.timestamp == "2020-11-12T13:48:36.427"
    assert (s.gpu_util_pct, s.mem_util_pct, s.mem_used_mib, s.mem_total_mib) == (32.0, 33.0, 30994.0, 32480.0)
    assert s.power_w is None  # not queried: null, not 0


def test_a100_nounits_header_keeps_brackets() -> None:
    samples, skipped = query("query_csv_nounits_a100_80gb_nesi_2024-03-13.csv")
    assert (len(samples), skipped) == (7, 0)
    s = samples[2]  # "2024/03/13 07:04:38.839, 28, 0, 80257, 81920"
    assert (s.timestamp, s.gpu_util_pct, s.mem_util_pct, s.mem_used_mib, s.mem_total_mib) == (
        "2024-03-13T07:04:38.839",
        28.0,
        0.0,
        80257.0,
        81920.0,
    )


def test_gh200_padded_values_and_elision_line_skipped() -> None:
    samples, skipped = query("query_csv_power_gh200_exercise_2026-03-06_ELIDED.txt")
    assert (len(samples), skipped) == (5, 1)  # "...  (idle for ~33 seconds)" is not data
    s = samples[3]  # "2026/03/06 16:46:00, 0, NVIDIA GH200 120GB,  0 %, 2589 MiB, 97871 MiB, 128.78 W, 33"
    assert (s.timestamp, s.name, s.gpu_util_pct, s.mem_used_mib, s.power_w, s.temp_c) == (
        "2026-03-06T16:46:00",
        "NVIDIA GH200 120GB",
        0.0,
        2589.0,
        128.78,
        33.0,
    )


def test_bpytop_alias_headers_shell_noise_and_two_gpus_by_row_order() -> None:
    samples, skipped = query("query_csv_power_bpytop_issue26_2020-11.txt")
    # 3 header lines; the prompts, `time` lines and comments are 14 skipped lines.
    assert (len(samples), skipped) == (4, 14)
    first = samples[0]  # "GeForce RTX 2080 Ti, 20 %, 11019 MiB, 0 MiB, 0 %, 60, 33.09 W, 1350 MHz, 7000 MHz"
    assert (first.gpu_index, first.fan_pct, first.power_w, first.temp_c) == (0, 20.0, 33.09, 60.0)
    assert (first.sm_clock_mhz, first.mem_clock_mhz) == (1350.0, 7000.0)  # clocks.current.graphics stands in
    gtx1080, gtx1060 = samples[2], samples[3]
    assert (gtx1080.gpu_index, gtx1080.name, gtx1080.mem_used_mib, gtx1080.power_w) == (
        0,
        "GeForce GTX 1080 Ti",
        2856.0,
        106.56,
    )
    assert (gtx1060.gpu_index, gtx1060.name, gtx1060.mem_total_mib, gtx1060.power_w) == (
        1,
        "GeForce GTX 1060 6GB",
        6078.0,
        5.68,
    )


def test_rtx5070ti_na_power_limits_become_null() -> None:
    samples, skipped = query("query_csv_power_limit_NA_rtx5070ti.txt")
    assert (len(samples), skipped) == (1, 1)  # the ssh command line
    s = samples[0]
    assert (s.name, s.mem_total_mib, s.power_limit_w) == ("NVIDIA GeForce RTX 5070 Ti", 16303.0, None)


def test_compute_apps_table_beside_gpu_table() -> None:
    samples, skipped = query("query_csv_single_gtx1650ti_maxq.txt")
    assert (len(samples), skipped) == (1, 1)  # the process row has no GPU reading
    s = samples[0]
    assert (s.mem_used_mib, s.mem_total_mib, s.power_w, s.temp_c) == (1493.0, 4096.0, 40.43, 47.0)


def test_not_supported_dash_and_malformed_rows() -> None:
    text = (
        "index, utilization.gpu [%], memory.used [MiB], power.draw [W], clocks_event_reasons.active\n"
        "0, [Not Supported], 100 MiB, [N/A], 0x0000000000000044\n"
        "1, -, 200 MiB, 50.5 W, 0x0000000000000000\n"
        "2, eighty, 300 MiB, 50 W, 0x0\n"
        "3, 10 %, 300 MiB\n"
    )
    samples, skipped = parse_query_csv(text)
    assert skipped == 2  # a word where a number belongs; a short row
    assert [(s.gpu_index, s.gpu_util_pct, s.power_w) for s in samples] == [(0, None, None), (1, None, 50.5)]
    assert samples[0].throttle_reasons == ["sw_power_cap", "hw_thermal_slowdown"]
    assert samples[1].throttle_reasons == []


def test_multi_gpu_rows_by_order_within_timestamp_any_column_order() -> None:
    text = (
        "memory.total [MiB], power.draw [W], timestamp, utilization.gpu [%]\n"
        "81920 MiB, 300.00 W, 2024/01/01 10:00:00.000, 90 %\n"
        "81920 MiB, 100.00 W, 2024/01/01 10:00:00.000, 10 %\n"
        "81920 MiB, 310.00 W, 2024/01/01 10:00:10.000, 95 %\n"
        "81920 MiB, 110.00 W, 2024/01/01 10:00:10.000, 15 %\n"
    )
    samples, _ = parse_query_csv(text)
    assert [(s.gpu_index, s.seq, s.gpu_util_pct, s.power_w) for s in samples] == [
        (0, 0, 90.0, 300.0),
        (1, 0, 10.0, 100.0),
        (0, 1, 95.0, 310.0),
        (1, 1, 15.0, 110.0),
    ]


def test_uuid_column_identifies_gpus() -> None:
    text = "uuid, utilization.gpu [%]\nGPU-b, 1 %\nGPU-a, 2 %\nGPU-b, 3 %\n"
    samples, _ = parse_query_csv(text)
    assert [(s.gpu_index, s.seq, s.gpu_util_pct) for s in samples] == [(0, 0, 1.0), (1, 0, 2.0), (0, 1, 3.0)]


def test_noheader_assumes_playbook_columns_or_takes_given_ones() -> None:
    row = "2024/03/13 07:04:38.839, 28, 3, 80257, 81920, 250.10"
    samples, _ = parse_query_csv(row)  # six cells: the playbook's command
    assert (samples[0].gpu_util_pct, samples[0].mem_util_pct, samples[0].power_w) == (28.0, 3.0, 250.1)
    nesi = "2024/03/13 07:04:38.839, 28, 0, 80257, 81920"
    assert parse_query_csv(nesi) == ([], 1)  # five cells: not the playbook's layout, so not guessed
    columns = ["timestamp", "utilization.gpu", "utilization.memory", "memory.used", "memory.total"]
    samples, skipped = parse_query_csv(nesi, columns=columns)
    assert (samples[0].mem_used_mib, skipped) == (80257.0, 0)


def test_bad_columns_argument_refused() -> None:
    with pytest.raises(PreflightError) as err:
        QueryCsvParser(["timestamp", " [MiB]"])
    assert err.value.field == "columns"


def test_timestamp_conversion() -> None:
    assert smi_timestamp_to_iso("2020/11/12 13:48:11.412") == "2020-11-12T13:48:11.412"
    with pytest.raises(ValueError):
        smi_timestamp_to_iso("12 Nov 2020")


# --- dmon ----------------------------------------------------------------------------------------


def test_dmon_default_new_driver_gtemp_mtemp_dash() -> None:
    samples, skipped = dmon("dmon_default_issue_dcgm_exporter_2025.txt")
    assert (len(samples), skipped) == (4, 1)  # the "nvidia-smi dmon" command line
    s = samples[1]  # "0    267     39      -    100     95      0      0      0      0   6250   1710"
    assert (s.power_w, s.temp_c, s.mem_temp_c, s.gpu_util_pct, s.mem_util_pct) == (267.0, 39.0, None, 100.0, 95.0)
    assert (s.mem_clock_mhz, s.sm_clock_mhz, s.seq, s.timestamp) == (6250.0, 1710.0, 1, None)


def test_dmon_t4_535_with_elision() -> None:
    samples, skipped = dmon("dmon_default_t4_driver535_d2.txt")
    assert (len(samples), skipped) == (3, 2)
    assert (samples[2].power_w, samples[2].temp_c, samples[2].sm_clock_mhz) == (15.0, 40.0, 300.0)


def test_dmon_header_without_hash_and_prompt_glued() -> None:
    samples, skipped = dmon("dmon_default_wsl2_paste_missing_hash.txt")
    assert (len(samples), skipped) == (1, 1)
    assert (samples[0].gpu_util_pct, samples[0].mem_util_pct, samples[0].power_w) == (1.0, 28.0, 12.0)


def test_dmon_two_a100s_interleaved_with_fb() -> None:
    samples, skipped = dmon("dmon_pucm_a100x2_slurm_log.txt")
    assert (len(samples), skipped) == (5, 2)  # two "." lines
    assert [(s.gpu_index, s.seq, s.mem_used_mib) for s in samples] == [
        (0, 0, 4.0),
        (1, 0, 4.0),
        (0, 1, 452.0),
        (1, 1, 24.0),
        (0, 2, 916.0),
    ]
    assert (samples[4].mem_temp_c, samples[4].sm_clock_mhz) == (45.0, 1410.0)


def test_dmon_2016_pucvmet_four_gpus() -> None:
    samples, skipped = dmon("dmon_pucvmet_2016_deepspeech_issue178.txt")
    assert (len(samples), skipped) == (4, 1)  # the provenance comment line
    s = samples[3]  # "3    86    70    18     6     0     0  4513  1784     0     0 11660 ..."
    assert (s.gpu_index, s.power_w, s.temp_c, s.gpu_util_pct, s.mem_used_mib) == (3, 86.0, 70.0, 18.0, 11660.0)


def test_dmon_s_u_variants() -> None:
    samples, skipped = dmon("dmon_s_u_new_driver_jpg_ofa_dashes.txt")
    assert (len(samples), skipped) == (1, 0)
    assert (samples[0].gpu_util_pct, samples[0].mem_util_pct, samples[0].power_w) == (99.0, 46.0, None)
    samples, _ = dmon("dmon_s_u_new_driver_jpg_ofa_example.txt")
    assert [s.gpu_util_pct for s in samples] == [94.0, 97.0, 91.0]
    samples, skipped = dmon("dmon_s_u_old_driver_blog.txt")
    assert (len(samples), skipped) == (8, 0)
    assert [s.gpu_util_pct for s in samples] == [67.0, 57.0, 69.0, 30.0, 95.0, 65.0, 68.0, 73.0]


def test_dmon_s_uc_and_s_um() -> None:
    samples, skipped = dmon("dmon_s_uc_t4_old_driver.txt")
    assert (len(samples), skipped) == (15, 1)
    assert (samples[12].gpu_util_pct, samples[12].sm_clock_mhz, samples[12].mem_clock_mhz) == (35.0, 1275.0, 5000.0)
    samples, skipped = dmon("dmon_s_um_old_driver_ec2.txt")
    assert (len(samples), skipped) == (5, 2)  # "$ nvidia-smi dmon -s um" and "..."
    assert samples[0].mem_used_mib == 60.0


def test_dmon_date_time_columns_and_repeated_header() -> None:
    text = (
        "#Date       Time        gpu    pwr     sm    mem\n"
        "#YYYYMMDD   HH:MM:SS    Idx      W      %      %\n"
        " 20240102   10:46:25      0     70     50     20\n"
        " 20240102   10:46:25      1     71     51     21\n"
        "#Date       Time        gpu     sm    mem\n"
        "#YYYYMMDD   HH:MM:SS    Idx      %      %\n"
        " 20240102   10:46:35      0     60     x0\n"
        " 20240102   10:46:35      0     60     30\n"
    )
    parser = DmonParser()
    samples = parser.feed_text(text)
    assert [(s.gpu_index, s.seq, s.timestamp, s.gpu_util_pct, s.power_w) for s in samples] == [
        (0, 0, "2024-01-02T10:46:25", 50.0, 70.0),
        (1, 0, "2024-01-02T10:46:25", 51.0, 71.0),
        (0, 1, "2024-01-02T10:46:35", 60.0, None),
    ]
    assert parser.skipped_lines == 1  # "x0" is not a number


def test_dmon_rows_before_any_header_are_skipped() -> None:
    assert parse_dmon("    0    67    40     0     0\n") == ([], 1)
