"""Replays of recorded runs through the live loop: tail -> windows -> triggers -> bottleneck -> action.

No public capture pairs an nvidia-smi log with the training log of the same run, so the first
replay pairs two real recordings (a V100 at 95% memory, AAU 2020; nanoGPT on an A100, issue
178): the pairing is ours, every number is theirs. Both files grow on disk in four chunks and
the loop re-assesses after each poll, as the live watcher does.
"""

from __future__ import annotations

from pathlib import Path

from gpu_preflight.tools.telemetry.assess import PLAYBOOK_ACTIONS, Assessment, assess_samples
from gpu_preflight.tools.telemetry.ingest import ingest
from gpu_preflight.tools.telemetry.models import GpuSample, LogSample
from gpu_preflight.tools.telemetry.tail import LogTail
from gpu_preflight.tools.telemetry.triggers import Prediction, TriggerConfig

FIXTURES = Path(__file__).parent / "fixtures"
SMI = FIXTURES / "nvidia-smi/query_csv_units_v100_aau_2020-11-12.csv"
LOG = FIXTURES / "logs/nanogpt_a100_issue178_mfu.log"


def replay(tmp_path: Path, chunks: int = 4) -> list[Assessment]:
    smi, log = SMI.read_bytes(), LOG.read_bytes()
    smi_path, log_path = tmp_path / "smi.csv", tmp_path / "train.log"
    smi_path.write_bytes(b"")
    log_path.write_bytes(b"")
    gpu: list[GpuSample] = []
    logs: list[LogSample] = []
    out = []
    with LogTail(smi_path) as smi_tail, LogTail(log_path) as log_tail:
        for i in range(chunks):
            with smi_path.open("ab") as handle:
                handle.write(smi[i * len(smi) // chunks : (i + 1) * len(smi) // chunks])
            with log_path.open("ab") as handle:
                handle.write(log[i * len(log) // chunks : (i + 1) * len(log) // chunks])
            gpu += smi_tail.poll().samples  # type: ignore[arg-type]
            logs += log_tail.poll().samples  # type: ignore[arg-type]
            out.append(
                assess_samples(
                    gpu,
                    logs,
                    prediction=Prediction(step_time_s=0.6),
                    config=TriggerConfig(early_checkpoint_s=60),
                    window_s=30,
                    total_steps=5000,
                )
            )
    assert gpu == ingest(SMI).gpu_samples() and logs == ingest(LOG).log_samples()  # tailing lost nothing
    return out


def test_replay_triggers_fire_as_data_arrives(tmp_path: Path) -> None:
    polls = replay(tmp_path)
    assert [a.fired for a in polls] == [
        ["memory_pressure"],  # window 0 already holds 6 readings at 95.4%
        ["throughput_below_predicted", "memory_pressure"],  # windows 0 and 1 closed at ~67% of predicted
        ["throughput_below_predicted", "memory_pressure"],
        ["throughput_below_predicted", "memory_pressure"],
    ]
    assert [a.triggers[3].status for a in polls] == ["pending", "clear", "clear", "clear"]  # checkpoint at 60 s
    assert [a.series.data_end_s for a in polls] == [44.68591, 107.3111, 160.98788, 214.60271]


def test_replay_final_windows_triggers_eta_and_action(tmp_path: Path) -> None:
    final = replay(tmp_path)[-1]
    w0, w1 = final.series.windows[:2]
    assert (w0.gpu_sample_count, w0.gpu_util_avg_pct, w0.mem_util_avg_pct, w0.mem_util_peak_pct) == (
        6,
        87.833333,
        62.5,
        90.0,
    )
    assert (w0.mem_used_peak_mib, w0.mem_used_peak_pct, w0.mem_used_floor_pct) == (30994.0, 95.424877, 95.424877)
    assert (w0.log_sample_count, w0.step_time_median_s, w0.mfu_median_pct, w0.step_last) == (4, 0.89432, 16.68, 30)
    assert (w1.gpu_util_avg_pct, w1.step_time_median_s, w1.step_last) == (98.833333, 0.89409, 60)
    assert len(final.series.windows) == 8 and final.series.windows[-1].complete is False

    throughput, util, memory, movement = final.triggers
    assert (throughput.status, throughput.window_index) == ("fired", 1)
    assert throughput.evidence == {
        "windows": [0, 1],
        "ratios": [0.6709, 0.6711],
        "ratio_min": 0.7,
        "measured_step_time_s": 0.89409,
        "predicted_step_time_s": 0.6,
    }
    assert util.status == "clear"  # 86-99% busy: alive; efficiency is what the step time says
    assert (memory.status, memory.window_index, memory.evidence["mem_used_min_pct"]) == ("fired", 0, 95.424877)
    assert (movement.status, movement.evidence["loss_first"], movement.evidence["loss_min"]) == (
        "clear",
        4.2648,
        2.4706,
    )

    # ETA: (5000 - 240) steps x 0.89531 s median in the last window; the projected finish held steady.
    assert (final.eta_s, final.eta_trend) == (4261.6756, "stable")
    assert final.bottleneck is not None
    assert (final.bottleneck.bottleneck_class, final.bottleneck.confidence) == ("memory", "high")
    assert final.bottleneck.reasoning[1:] == [
        "GPU utilization averaged 93.3% (lowest GPU 93.3%) in windows [0, 1]",
        "the log reports MFU 16.7%",
    ]
    assert final.action[:3] == list(PLAYBOOK_ACTIONS)
    assert final.action[3] == (
        "Change one variable and relaunch: lower the micro-batch (keep the global batch with gradient"
        " accumulation) or enable gradient checkpointing."
    )


def test_replay_a100_full_memory_low_util() -> None:
    """NeSI A100 80 GB: 80257 of 81920 MiB held while only 26-32% busy."""
    gpu = ingest(FIXTURES / "nvidia-smi/query_csv_nounits_a100_80gb_nesi_2024-03-13.csv").gpu_samples()
    result = assess_samples(gpu, [], window_s=15)
    assert result.fired == ["gpu_util_low", "memory_pressure"]
    util, memory = result.triggers[1], result.triggers[2]
    assert (util.window_index, util.evidence["gpu_util_avg_pct"]) == (0, 9.333333)  # 0, 0, 28 % over 0-15 s
    assert (memory.window_index, memory.evidence["mem_used_min_pct"]) == (1, 97.969971)
    assert result.bottleneck is not None and result.bottleneck.bottleneck_class == "memory"


def test_replay_torchtitan_per_device_tps_against_job_prediction() -> None:
    """torchtitan PR 1287: ~5,860 tokens/s per device, timestamps in the log; a 4-GPU job predicted at 40k."""
    logs = ingest(FIXTURES / "logs/torchtitan_pr1287_2025-06.log").log_samples()
    config = TriggerConfig(gpu_count=4)
    result = assess_samples([], logs, prediction=Prediction(tokens_per_s=40_000), config=config, window_s=20)
    # 20 s windows from 22:30:50.322: steps 200+210 (median 5724.5), 220 (5868), 230+240, 250 (still filling).
    assert [(w.step_first, w.tokens_per_s_median, w.complete) for w in result.series.windows] == [
        (200, 5724.5, True),
        (220, 5868.0, True),
        (230, 5866.5, True),
        (250, 5862.0, False),
    ]
    throughput = result.triggers[0]
    assert (throughput.status, throughput.evidence["windows"], throughput.evidence["ratios"]) == (
        "fired",
        [0, 1],
        [0.5725, 0.5868],  # 4 GPUs x 5724.5 / 40000, 4 x 5868 / 40000
    )
    assert throughput.evidence["measured_tokens_per_s"] == 4 * 5868.0
    assert result.bottleneck is not None
    assert (result.bottleneck.bottleneck_class, result.bottleneck.confidence) == ("compute", "low")
    assert result.bottleneck.reasoning == [
        "throughput below prediction with no sign of waiting, memory or logging overhead",
        "the log reports MFU 33.9%",  # mean of the window medians 33.52 (34.29, 32.75) and 34.36
    ]
