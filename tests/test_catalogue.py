"""The GPU catalogue: lookups by the names Vast and nvidia-smi use, and dense (not sparse) peaks."""

from __future__ import annotations

import pytest

from gpu_preflight.tools.estimator.catalogue import catalogue, lookup_gpu, resolve_gpu

VAST_NAMES = ["H100 SXM", "H100 PCIE", "H100 NVL", "H200", "A100 SXM4", "A100 PCIE", "A100X", "L40S", "L40",
              "RTX 6000Ada", "RTX A6000", "A40", "A10", "RTX 5090", "RTX 4090", "RTX 3090", "RTX A5000",
              "Tesla V100", "Tesla T4", "B200", "GH200"]


@pytest.mark.parametrize("name", VAST_NAMES)
def test_vast_names_resolve(name: str) -> None:
    assert lookup_gpu(name) is not None


def test_every_row_has_a_source_and_sane_units() -> None:
    for row in catalogue():
        assert row.source.strip(), row.name
        assert 4 <= row.gpu_ram_gb <= 300, row.name
        assert 50 <= row.hbm_bw_gbps <= 10_000, row.name  # Quadro K2200 (GDDR5, 2014): 80 GB/s
        if row.bf16_tflops is not None:
            # Dense tensor throughput is far above the CUDA-core FP32 rate but below 5 PFLOPS.
            assert row.fp32_tflops < row.bf16_tflops < 5000, row.name


def test_dense_fp32_accumulate_figures_not_the_marketing_ones() -> None:
    # NVIDIA datasheets: H100 SXM 989 dense (1979 is with sparsity); A100 312; L40S 362 (733 sparse);
    # GeForce bf16 with FP32 accumulate: RTX 4090 165 (330 is FP16-accumulate), RTX 3090 71 (142).
    expected = {"H100 SXM": 989, "A100 SXM4": 312, "L40S": 362, "RTX 4090": 165, "RTX 3090": 71}
    for name, tflops in expected.items():
        row = lookup_gpu(name)
        assert row is not None and row.bf16_tflops is not None
        assert abs(row.bf16_tflops - tflops) / tflops < 0.01, name


def test_gpus_without_bf16_fall_back_and_say_so() -> None:
    t4 = resolve_gpu("Tesla T4")
    assert t4.bf16_tflops is None
    peak, note = t4.peak_tflops("bf16")
    assert "no bf16" in note and peak < 65
    assert t4.peak_tflops("fp16")[0] == pytest.approx(65, rel=0.01)


def test_aliases_are_case_and_punctuation_insensitive() -> None:
    assert lookup_gpu("nvidia geforce rtx 4090") is lookup_gpu("RTX_4090") is lookup_gpu("RTX 4090")


def test_memory_variant_from_the_name() -> None:
    small, large = resolve_gpu("A100-SXM4-40GB"), resolve_gpu("A100 SXM4 80GB")
    assert small.gpu_ram_gb < 45 < 80 < large.gpu_ram_gb
    assert small.hbm_bw_gbps < large.hbm_bw_gbps


def test_explicit_gpu_object() -> None:
    g = resolve_gpu({"name": "mine", "gpu_ram_gb": 48, "bf16_tflops": 200, "hbm_bw_gbps": 900})
    assert g.tflops_source == "explicit" and g.gpu_ram_gb == 48
