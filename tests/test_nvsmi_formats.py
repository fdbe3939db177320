"""Every common nvidia-smi output (issue 21): the default table, pmon, noheader query CSV, and the rest.

Two kinds of input. The captures people committed to public repositories, read in place from
``../shared/fixtures/nvidia-smi/wild`` (their SOURCES.md names each one's traps; these tests skip where
``../shared`` is absent), and our own lines in ``fixtures/nvidia-smi/own`` (written from the layouts,
numbers invented: see that folder's SOURCES.md). Every expected value below was read off the file by eye.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.telemetry.ingest import detect_format, ingest
from gpu_preflight.tools.telemetry.models import GpuSample, IngestResult, ProcessSample
from gpu_preflight.tools.telemetry.tail import LogTail, read_source
from gpu_preflight.tools.telemetry.timeline import build_timeline
from gpu_preflight.tools.telemetry.windows import fold_windows

WILD = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "nvidia-smi" / "wild"
wild = pytest.mark.skipif(not WILD.is_dir(), reason=f"found nvidia-smi captures not at {WILD}")
OWN = Path(__file__).parent / "fixtures" / "nvidia-smi" / "own"
FIXTURES = Path(__file__).parent / "fixtures"
PREFLIGHT = shutil.which("preflight")
KIND = {"query": "nvidia_smi_query", "dmon": "nvidia_smi_dmon", "pmon": "nvidia_smi_pmon", "table": "nvidia_smi_table"}
SKYNET2_COLUMNS = ("index,uuid,name,pci.bus_id,driver_version,utilization.gpu,utilization.memory,memory.total,"
                   "memory.used,memory.free,temperature.gpu,temperature.memory,power.draw,power.limit,clocks.gr,"
                   "clocks.mem,clocks.max.gr,clocks.max.mem,fan.speed,pstate,pcie.link.gen.current,"
                   "pcie.link.width.current,encoder.stats.sessionCount")


def gpu(result: IngestResult, index: int, seq: int) -> GpuSample:
    [found] = [s for s in result.gpu_samples() if s.gpu_index == index and s.seq == seq]
    return found


def reading(s: GpuSample) -> tuple[Any, ...]:
    """(fan %, temp C, perf, power W, cap W, used MiB, total MiB, util %) in the table's own order."""
    return (s.fan_pct, s.temp_c, s.perf_state, s.power_w, s.power_limit_w, s.mem_used_mib, s.mem_total_mib,
            s.gpu_util_pct)


def proc(p: ProcessSample) -> tuple[Any, ...]:
    return (p.gpu_index, p.pid, p.type, p.command, p.fb_mib)


# --- the wild captures, in place -----------------------------------------------------------------------


def _wild_files() -> list[Path]:
    return sorted(p for p in WILD.glob("*.txt")) if WILD.is_dir() else []


@wild
@pytest.mark.parametrize("path", _wild_files(), ids=lambda p: p.name)
def test_every_wild_capture_is_recognised_without_fmt(path: Path) -> None:
    expected = KIND[path.name.split("_")[0]]
    assert detect_format(path.read_text()) == expected
    if "noheader" in path.name:  # no header: only the command knows the columns, so ask for them
        with pytest.raises(PreflightError) as err:
            ingest(path)
        assert err.value.field == "columns" and "pass columns=... (the --query-gpu fields in order)" in err.value.hint
        return
    result = ingest(path)
    assert result.format == expected and result.samples


@wild
def test_table_h200x8_single_with_process_list() -> None:
    r = ingest(WILD / "table_h200x8_vt-arc-workshop.txt")
    assert (r.format, len(r.samples), r.skipped_lines) == ("nvidia_smi_table", 8, 0)
    assert sorted(s.gpu_index for s in r.gpu_samples()) == list(range(8))
    assert {s.timestamp for s in r.gpu_samples()} == {"2026-02-12T13:43:04"}
    assert {s.name for s in r.gpu_samples()} == {"NVIDIA H200"}
    assert reading(gpu(r, 0, 0)) == (None, 53.0, "P0", 178.0, 700.0, 3941.0, 143771.0, 16.0)
    assert reading(gpu(r, 3, 0)) == (None, 77.0, "P0", 548.0, 700.0, 12641.0, 143771.0, 100.0)
    assert reading(gpu(r, 7, 0)) == (None, 38.0, "P0", 77.0, 700.0, 0.0, 143771.0, 0.0)
    procs = r.process_samples()
    assert len(procs) == 9 and {p.seq for p in procs} == {0}
    assert proc(procs[0]) == (0, 3446290, "C", "python", 3932.0)
    assert proc(procs[1]) == (1, 3412541, "C", "ray::ray_math_ppl", None)  # "13319..." cut by nvidia-smi
    assert proc(procs[-1]) == (6, 3412548, "C", "ray::ray_math_ppl", None)
    assert [p.gpu_index for p in procs if p.pid == 3160599] == [3, 4]
    assert 7 not in {p.gpu_index for p in procs}
    assert [p.fb_mib for p in procs if p.gpu_index == 4] == [1542.0, 714.0]


@wild
def test_table_repeated_five_times_six_mixed_gpus() -> None:
    r = ingest(WILD / "table_repeated_rtx3090x4-2080tix2_hstu-gpulog.txt")
    assert (r.format, len(r.samples), r.skipped_lines, r.processes) == ("nvidia_smi_table", 30, 0, [])
    assert sorted({s.gpu_index for s in r.gpu_samples()}) == list(range(6))
    assert sorted({s.seq for s in r.gpu_samples()}) == list(range(5))
    stamps = [gpu(r, 0, k).timestamp for k in range(5)]
    assert stamps == ["2025-04-09T10:26:15", "2025-04-09T12:19:50", "2025-04-09T12:23:36", "2025-04-09T12:38:13",
                      "2025-04-09T23:58:40"]
    assert gpu(r, 0, 0).name == "NVIDIA GeForce RTX 3090" and gpu(r, 5, 4).name == "NVIDIA GeForce RTX 2080 Ti"
    assert reading(gpu(r, 0, 0)) == (30.0, 22.0, "P8", 13.0, 350.0, 17706.0, 24576.0, 0.0)
    assert reading(gpu(r, 5, 0)) == (29.0, 25.0, "P8", 1.0, 250.0, 0.0, 11264.0, 0.0)
    assert reading(gpu(r, 0, 4)) == (30.0, 24.0, "P8", 30.0, 350.0, 0.0, 24576.0, 0.0)
    assert reading(gpu(r, 3, 4)) == (30.0, 54.0, "P2", 231.0, 350.0, 24086.0, 24576.0, 16.0)
    assert reading(gpu(r, 5, 4)) == (29.0, 24.0, "P8", 1.0, 250.0, 0.0, 11264.0, 0.0)


@wild
def test_table_repeated_seven_times_same_timestamp() -> None:
    r = ingest(WILD / "table_repeated_l40s_slurmmwe.txt")
    assert (r.format, len(r.samples), r.skipped_lines) == ("nvidia_smi_table", 7, 0)
    assert [s.seq for s in r.gpu_samples()] == list(range(7))  # the tables, told apart by order alone
    assert {s.timestamp for s in r.gpu_samples()} == {"2024-10-29T19:13:04"}
    assert reading(gpu(r, 0, 0)) == (None, 56.0, "P0", 328.0, 350.0, 11948.0, 46068.0, 100.0)
    assert reading(gpu(r, 0, 6)) == (None, 56.0, "P0", 293.0, 350.0, 11950.0, 46068.0, 93.0)
    procs = r.process_samples()
    assert [p.seq for p in procs] == list(range(7)) and {p.pid for p in procs} == {3796615}
    assert (procs[0].fb_mib, procs[-1].fb_mib) == (11942.0, 11944.0)


@wild
def test_pmon_rtx4080super_five_cycles_of_seven() -> None:
    r = ingest(WILD / "pmon_rtx4080super_nvgpuexp-capture.txt")
    assert (r.format, len(r.samples), r.skipped_lines) == ("nvidia_smi_pmon", 35, 0)
    procs = r.process_samples()
    assert r.gpu_samples() == [] and all(isinstance(p, ProcessSample) for p in r.samples)
    cycle = [2165, 2496, 2620, 2954, 3527, 5021, 5022]
    assert [p.pid for p in procs] == cycle * 5
    assert [p.seq for p in procs] == [k for k in range(5) for _ in cycle]
    assert proc(procs[0]) == (0, 2165, "C+G", "kwin_wayland", None) and procs[0].dec_pct == 0.0
    assert procs[1].command == "plasma-keyboard" and procs[4].command == "xwaylandvideobr"
    assert [p.type for p in procs[:7]] == ["C+G", "G", "G", "G", "G", "C", "C"]
    first = procs[5]  # 0  5021  C  0  0  15  -  -  -  ffmpeg
    assert (first.sm_pct, first.mem_pct, first.enc_pct, first.dec_pct, first.jpg_pct) == (0.0, 0.0, 15.0, None, None)
    third = procs[19]  # 0  5021  C  -  -  42  ...: "-" is null, not 0
    assert (third.seq, third.sm_pct, third.mem_pct, third.enc_pct) == (2, None, None, 42.0)
    last = procs[-1]
    assert (last.pid, last.sm_pct, last.mem_pct, last.enc_pct, last.command) == (5022, 3.0, 1.0, 55.0, "ffmpeg")


@wild
def test_pmon_rtxpro6000x4_new_columns() -> None:
    r = ingest(WILD / "pmon_rtxpro6000x4_candy-top.txt")
    assert (r.format, len(r.samples), r.skipped_lines) == ("nvidia_smi_pmon", 6, 0)
    procs = r.process_samples()
    assert [(p.gpu_index, p.pid) for p in procs] == [(0, 2094147), (1, 2094383), (2, 377306), (2, 377813),
                                                     (3, 377306), (3, 377814)]
    assert {p.seq for p in procs} == {0}
    assert (procs[0].sm_pct, procs[0].mem_pct, procs[0].fb_mib, procs[0].command) == (92.0, 52.0, 90480.0,
                                                                                      "sglang::schedul")
    idle = procs[2]  # every metric "-" but fb 550
    assert (idle.sm_pct, idle.mem_pct, idle.enc_pct, idle.fb_mib, idle.command) == (None, None, None, 550.0, "python3")
    assert (procs[5].sm_pct, procs[5].mem_pct, procs[5].fb_mib, procs[5].command) == (100.0, 70.0, 47560.0,
                                                                                      "sgl_diffusion::")


@wild
def test_query_noheader_with_the_command_columns() -> None:
    path = WILD / "query_csv_noheader_nounits_rtxpro6000x4_skynet2-findings.txt"
    r = ingest(path, columns=SKYNET2_COLUMNS)  # no fmt: the columns say it is the query format
    assert (r.format, len(r.samples), r.skipped_lines) == ("nvidia_smi_query", 4, 0)
    first, last = r.gpu_samples()[0], r.gpu_samples()[-1]
    assert first.name == "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition"
    assert (first.gpu_index, first.gpu_util_pct, first.mem_util_pct, first.mem_total_mib, first.mem_used_mib) == (
        0, 99.0, 55.0, 97887.0, 90538.0)
    assert (first.temp_c, first.mem_temp_c, first.power_w, first.power_limit_w) == (81.0, None, 299.35, 300.0)
    assert (first.sm_clock_mhz, first.mem_clock_mhz, first.fan_pct, first.perf_state) == (1927.0, 13365.0, 54.0, "P1")
    assert (last.gpu_index, last.gpu_util_pct, last.mem_used_mib, last.temp_c, last.sm_clock_mhz, last.fan_pct) == (
        3, 100.0, 48209.0, 71.0, 1177.0, 43.0)


@wild
@pytest.mark.parametrize(("name", "samples", "gpus", "skipped"), [
    ("dmon_teslak80x4_pubsum-notes.txt", 12, 4, 1),  # the crash-truncated last row is not a sample
    ("dmon_rtxpro6000x4_skynet2-findings.txt", 4, 4, 0),
    ("dmon_h100_nvgpuexp-capture.txt", 5, 1, 0),
    ("query_csv_units_lms_h200x2_vt-arc-workshop.txt", 14, 2, 0),
    ("query_csv_units_rtx4090_vlm-optimization.txt", 25, 1, 0),
    ("query_csv_allfields_h100_nvgpuexp-capture.txt", 1, 1, 0),
])
def test_formats_read_before_still_read(name: str, samples: int, gpus: int, skipped: int) -> None:
    r = ingest(WILD / name)
    assert (len(r.samples), len({s.gpu_index for s in r.gpu_samples()}), r.skipped_lines) == (samples, gpus, skipped)


@wild
def test_a_table_log_flows_through_the_tail_and_the_windows(tmp_path: Path) -> None:
    path = WILD / "table_repeated_rtx3090x4-2080tix2_hstu-gpulog.txt"
    whole = ingest(path)
    streamed, summary = read_source(str(path))
    assert streamed == whole.samples and summary.format == "nvidia_smi_table"
    timeline = build_timeline(whole.gpu_samples(), [])  # timed by the date lines: no interval needed
    assert sorted({p.t_s for p in timeline.gpu}) == [0.0, 6815.0, 7041.0, 7918.0, 48745.0]
    series = fold_windows(timeline, window_s=3600)
    assert series.windows[0].gpu_util_avg_pct == pytest.approx((0 + 0 + 48 + 83 + 0 + 0) / 6)


# --- our own fixtures: the layouts no wild capture shows ------------------------------------------------


def test_table_pre_520_layout_truncated_names() -> None:
    r = ingest(OWN / "table_470_v100x2.txt")
    assert (r.format, len(r.samples), r.skipped_lines) == ("nvidia_smi_table", 2, 0)
    assert [s.name for s in r.gpu_samples()] == ["Tesla V100-SXM2...", "Tesla V100-SXM2..."]  # kept as printed
    assert reading(gpu(r, 0, 0)) == (None, 34.0, "P0", 56.0, 300.0, 15012.0, 16160.0, 87.0)
    assert gpu(r, 1, 0).timestamp == "2024-03-04T09:15:02"
    assert [proc(p) for p in r.processes] == [(0, 12345, "C", "/usr/bin/python3", 15009.0)]


def test_table_418_err_cells_and_old_process_box() -> None:
    r = ingest(OWN / "table_418_gtx1080tix2_err.txt")
    assert (r.format, len(r.samples), r.skipped_lines) == ("nvidia_smi_table", 2, 0)
    assert gpu(r, 0, 0).timestamp is None  # no date line was captured: untimed, ordered by seq
    assert reading(gpu(r, 0, 0)) == (23.0, 41.0, "P8", 11.0, 250.0, 526.0, 11175.0, 1.0)
    assert reading(gpu(r, 1, 0)) == (None, 45.0, "P2", None, 250.0, 8010.0, 11178.0, 97.0)  # ERR! is null
    assert [proc(p) for p in r.processes] == [(0, 1391, "G", "/usr/lib/xorg/Xorg", 18.0),
                                              (0, 2236, "G", "compiz", 12.0), (1, 30211, "C", "python", 7997.0)]
    assert {(p.gi_id, p.ci_id) for p in r.processes} == {(None, None)}


def test_table_windows_wddm() -> None:
    r = ingest(OWN / "table_546_windows_rtx4090.txt")
    assert (r.format, len(r.samples), r.skipped_lines) == ("nvidia_smi_table", 1, 0)
    assert gpu(r, 0, 0).name == "NVIDIA GeForce RTX 4090 ..."
    assert reading(gpu(r, 0, 0)) == (0.0, 44.0, "P8", 17.0, 450.0, 1874.0, 24564.0, 3.0)
    assert [proc(p) for p in r.processes] == [(0, 1468, "C+G", "C:\\Windows\\explorer.exe", None),
                                              (0, 9876, "C+G", "...es\\Mozilla Firefox\\firefox.exe", None),
                                              (0, 12044, "C", "...\\envs\\torch\\python.exe", None)]


def test_table_mig_box_is_not_read_as_gpus() -> None:
    r = ingest(OWN / "table_535_a100_mig.txt")
    assert (r.format, len(r.samples), r.skipped_lines) == ("nvidia_smi_table", 1, 0)
    assert reading(gpu(r, 0, 0)) == (None, 32.0, "P0", 91.0, 400.0, 87.0, 40960.0, None)  # util N/A under MIG
    assert [(p.pid, p.gi_id, p.ci_id, p.fb_mib) for p in r.processes] == [(41234, 1, 0, 12.0), (41240, 2, 0, 24.0)]


def _loop_l5() -> str:
    """``nvidia-smi -l 5 | tee`` as a user captures it: a prompt line, three tables 5 s apart, a trailing ``^C``.

    Built from our own 470 table (the loop layout is the single table repeated under its date line),
    so no line of a found capture is copied here.
    """
    table = (OWN / "table_470_v100x2.txt").read_text()
    first = table.splitlines()[0]
    tables = [table.replace(first, f"Mon Mar  4 09:15:{s:02d} 2024       ", 1) for s in (2, 7, 12)]
    return "user@node:~$ nvidia-smi -l 5 | tee smi.log\n" + "".join(tables) + "^C\n"


def test_table_loop_l5_is_a_time_series() -> None:
    r = ingest(_loop_l5())
    assert (r.format, len(r.samples), r.skipped_lines) == ("nvidia_smi_table", 6, 2)  # the prompt and the ^C
    assert [(s.gpu_index, s.seq, s.timestamp) for s in r.gpu_samples()] == [
        (0, 0, "2024-03-04T09:15:02"), (1, 0, "2024-03-04T09:15:02"), (0, 1, "2024-03-04T09:15:07"),
        (1, 1, "2024-03-04T09:15:07"), (0, 2, "2024-03-04T09:15:12"), (1, 2, "2024-03-04T09:15:12")]
    assert reading(gpu(r, 0, 1)) == (None, 34.0, "P0", 56.0, 300.0, 15012.0, 16160.0, 87.0)  # as printed
    assert [(p.seq, p.gpu_index, p.pid, p.fb_mib) for p in r.processes] == [
        (0, 0, 12345, 15009.0), (1, 0, 12345, 15009.0), (2, 0, 12345, 15009.0)]
    assert [p.t_s for p in build_timeline(r.gpu_samples(), []).gpu] == [0.0, 0.0, 5.0, 5.0, 10.0, 10.0]


def test_a_table_without_date_line_does_not_inherit_the_last_one() -> None:
    dated, undated = (OWN / "table_470_v100x2.txt").read_text(), (OWN / "table_418_gtx1080tix2_err.txt").read_text()
    r = ingest(dated + undated)
    assert [(s.gpu_index, s.seq, s.timestamp) for s in r.gpu_samples()] == [
        (0, 0, "2024-03-04T09:15:02"), (1, 0, "2024-03-04T09:15:02"), (0, 1, None), (1, 1, None)]
    assert [(p.seq, p.pid) for p in r.processes] == [(0, 12345), (1, 1391), (1, 2236), (1, 30211)]


def test_table_streamed_in_pieces_matches_whole(tmp_path: Path) -> None:
    text = _loop_l5()
    log = tmp_path / "smi.log"
    log.write_text("")
    got: list[Any] = []
    with LogTail(log) as tail:
        for cut in (len(text) // 3, 2 * len(text) // 3, len(text)):  # cuts fall mid-table and mid-line
            with log.open("a") as handle:
                handle.write(text[len(log.read_text()):cut])
            got.extend(tail.poll().samples)
    assert got == ingest(text).samples


def test_pmon_date_time_columns_idle_rows_and_cut_rows() -> None:
    r = ingest(OWN / "pmon_o_dt_s_um_470.txt")
    assert (r.format, len(r.samples), r.skipped_lines) == ("nvidia_smi_pmon", 3, 1)  # the row cut short
    assert [(p.seq, p.timestamp, p.gpu_index, p.pid, p.sm_pct, p.mem_pct, p.fb_mib, p.command)
            for p in r.process_samples()] == [
        (0, "2024-03-04T09:15:02", 0, 12345, 87.0, 40.0, 15009.0, "python3"),
        (1, "2024-03-04T09:15:03", 0, 12345, 91.0, 42.0, 15009.0, "python3"),
        (1, "2024-03-04T09:15:03", 1, 12400, 3.0, 0.0, 310.0, "Web Content")]  # GPU 1 idle at 09:15:02
    assert all(p.enc_pct is None and p.jpg_pct is None for p in r.process_samples())


def test_pmon_json_round_trip_keeps_the_process_samples() -> None:
    r = ingest(OWN / "pmon_o_dt_s_um_470.txt")
    again = IngestResult.model_validate_json(r.model_dump_json())
    assert again == r and isinstance(again.samples[0], ProcessSample)


def test_noheader_query_needs_columns_and_takes_them_as_list_or_string() -> None:
    path = OWN / "query_csv_noheader_units_a100x2.txt"
    assert detect_format(path.read_text()) == "nvidia_smi_query"
    with pytest.raises(PreflightError) as err:
        ingest(path)
    assert err.value.field == "columns" and err.value.hint == "pass columns=... (the --query-gpu fields in order)"
    columns = "index,name,utilization.gpu,memory.used,memory.total,power.draw"
    r = ingest(path, columns=columns)
    assert r == ingest(path, columns=columns.split(",")) and r.format == "nvidia_smi_query"
    assert [(s.gpu_index, s.seq, s.gpu_util_pct, s.mem_used_mib, s.power_w) for s in r.gpu_samples()] == [
        (0, 0, 97.0, 71234.0, 312.45), (1, 0, 95.0, 71230.0, None), (0, 1, 98.0, 71240.0, 318.02),
        (1, 1, 96.0, 71236.0, 309.77)]
    with pytest.raises(PreflightError) as err:
        ingest(path, columns=columns, fmt="nvidia_smi_dmon")
    assert err.value.field == "columns"


def test_no_false_positives() -> None:
    csv_log = "step, loss, lr\n10, 3.2202, 0.0003\n20, 3.1007, 0.0003\n"  # a training CSV: no GPU mark
    assert detect_format(csv_log) is None
    with pytest.raises(PreflightError) as err:
        ingest(csv_log)
    assert err.value.field == "fmt"
    # a job log that prints nvidia-smi once at its top is still the training log
    table = (OWN / "table_470_v100x2.txt").read_text()
    nanogpt = (FIXTURES / "logs/nanogpt_a100_issue178_mfu.log").read_text()
    assert detect_format(table + nanogpt) == "nanogpt"
    assert ingest(table + nanogpt).format == "nanogpt"


# --- the CLI and the MCP tool ----------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    assert PREFLIGHT is not None
    return subprocess.run([PREFLIGHT, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.skipif(PREFLIGHT is None, reason="the preflight console script is not installed")
def test_cli_table_pmon_and_columns() -> None:
    table = json.loads(_cli("ingest", str(OWN / "table_470_v100x2.txt"), "--json").stdout)
    assert {"format", "samples", "skipped_lines"} <= set(table) and table["format"] == "nvidia_smi_table"
    assert table["samples"][0]["mem_used_mib"] == 15012.0 and table["processes"][0]["pid"] == 12345
    human = _cli("ingest", str(OWN / "table_470_v100x2.txt")).stdout
    assert "processes in the last snapshot (seq 0): 1" in human and "| 0 | 12345 | C | /usr/bin/python3 |" in human
    pmon = json.loads(_cli("ingest", str(OWN / "pmon_o_dt_s_um_470.txt"), "--json").stdout)
    assert pmon["format"] == "nvidia_smi_pmon" and [s["pid"] for s in pmon["samples"]] == [12345, 12345, 12400]
    noheader = str(OWN / "query_csv_noheader_units_a100x2.txt")
    bad = _cli("ingest", noheader)
    assert bad.returncode == 2 and bad.stderr.startswith("preflight: error: --columns: got None")
    assert "pass --columns A,B,... (the --query-gpu fields in order)" in bad.stderr and bad.stderr.count("\n") == 1
    good = json.loads(_cli("ingest", noheader, "--columns", "index,name,utilization.gpu,memory.used,memory.total,"
                           "power.draw", "--json").stdout)
    assert good["format"] == "nvidia_smi_query" and good["samples"][3]["power_w"] == 309.77


@pytest.mark.anyio
async def test_mcp_ingest_table_processes_and_columns(mcp_client: Client) -> None:
    text = _loop_l5()
    result = await mcp_client.call_tool("ingest_nvidia_smi", {"text": text, "max_samples": 2})
    sc = result.structured_content
    assert result.is_error is False and sc is not None
    assert (sc["format"], sc["sample_count"], sc["summary"]["gpu_count"]) == ("nvidia_smi_table", 6, 2)
    assert [(p["seq"], p["pid"]) for p in sc["processes"]] == [(1, 12345), (2, 12345)]  # the last, capped
    noheader = (OWN / "query_csv_noheader_units_a100x2.txt").read_text()
    refused = await mcp_client.call_tool("ingest_nvidia_smi", {"text": noheader})
    assert refused.is_error is True
    read = await mcp_client.call_tool("ingest_nvidia_smi", {
        "text": noheader, "columns": "index,name,utilization.gpu,memory.used,memory.total,power.draw"})
    assert read.structured_content is not None and read.structured_content["sample_count"] == 4
