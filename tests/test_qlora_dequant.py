"""QLoRA's dequantized weight in the peak: bitsandbytes' 4-bit matmul (and torchao's NF4) dequantizes the whole
weight for each matmul, so the largest one lives beside every saved activation.

Why a term: with the LM head quantized (LitGPT: Lightning swaps every ``nn.Linear``) the head's ``vocab x hidden``
bf16 copy appears at the end of the forward, next to the logits. Pinned on LitGPT's 2023 resource tables
(bench/cases/published_extra.json, QLoRA rows with ``quant_lm_head``), whose peaks are ``max_memory_allocated``.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers_cases import load_bench_module
from helpers_spec import spec

from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.estimator.spec import parse_spec


@pytest.fixture(scope="module")
def qlora_rows() -> list[dict[str, Any]]:
    acc = load_bench_module("accuracy")
    path = next(p for p in acc.published_paths() if p.name == "published_extra.json")
    return [c for c in acc.load_cases(path) if c["id"].startswith("litgpt-rt-") and c["training"]["method"] == "qlora"]


def test_quantized_head_dequant_brings_litgpt_rows_nearer(qlora_rows: list[dict[str, Any]]) -> None:
    assert len(qlora_rows) == 3
    for case in qlora_rows:
        est = estimate_run({k: case[k] for k in ("model", "training", "target")}, case["gpu"])
        g, measured = est.memory.gpu, case["measured"]["value"]
        m = case["model"]
        assert g.breakdown.dequant_gb == pytest.approx(m["vocab_size"] * m["hidden_size"] * 2 / 1e9, abs=0.002)
        assert abs(g.allocated_peak_gb / measured - 1) < abs((g.allocated_peak_gb - g.breakdown.dequant_gb)
                                                             / measured - 1)
        assert abs(g.allocated_peak_gb / measured - 1) < 0.06, case["id"]


@pytest.mark.parametrize(("fmt", "head", "expect"), [
    ("nf4", True, "head"), ("nf4", False, "none"), ("gptq", True, "none"), ("torchao_int4", True, "none")])
def test_which_formats_dequantize_in_the_peak(fmt: str, head: bool, expect: str) -> None:
    """A 4-bit head under bitsandbytes NF4 adds its bf16 copy; an unquantized head leaves only a layer matrix,
    smaller here than the loss buffers it never meets; GPTQ and torchao int4 kernels read the packed weight."""
    est = estimate_run(parse_spec(spec(model={"name": "llama-3.1-8b"}, method="qlora", lora_rank=8, seq_len=512,
                                       micro_batch=2, quant_format=fmt, quant_lm_head=head, loss="chunked")), "A10")
    dequant = est.memory.gpu.breakdown.dequant_gb
    if expect == "head":
        assert dequant == pytest.approx(128256 * 4096 * 2 / 1e9, abs=0.002)
    else:
        assert dequant == 0.0
