"""Issue 18 part 3 knobs: lion/muon/paged 8-bit optimizers, variable-length data, LoRA module lists.

Every expected figure is arithmetic on the model's published shape, written out here; none is read back
from the estimator. No bench case exists for these knobs yet (none is invented).
"""

from __future__ import annotations

import pytest
from helpers_spec import spec

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.estimator.spec import parse_spec

GPU_100 = {"name": "flat", "gpu_ram_gb": 80, "bf16_tflops": 100, "hbm_bw_gbps": 2000}
BW = 0.8 * 2000e9  # HBM_ACHIEVED_FRACTION x datasheet bandwidth
L1B = {"name": "llama-3.2-1b"}
# Llama-3.2-1B: h 2048, 16 layers, 32 q heads / 8 kv heads of 64, MLP 8192 (gated), vocab 128,256 tied.
P_1B = 1_235_814_400
MATRIX_1B = 16 * (2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 8192)  # 973,078,528 in the layers' matrices
REST_1B = P_1B - MATRIX_1B  # embedding 262,668,288 + norms: what Muon leaves to AdamW


def _ns(a: int, b: int) -> int:
    """Five quintic Newton-Schulz iterations on an a x b matrix, a <= b: X X^T, A A, B X."""
    return 5 * (2 * a * a * b + 2 * a * a * a + 2 * a * a * b)


NS_1B = 16 * (2 * _ns(2048, 2048) + 2 * _ns(512, 2048) + 3 * _ns(2048, 8192))
"""4.574e13 FLOPs per step: 0.91 s at 50 TFLOPS, about 5x the model's matmuls in a 1,024-token step."""


def _gpu_mem(**training: object) -> tuple[float, float]:
    g = estimate_run(spec(model=L1B, **training), GPU_100).memory.gpu.breakdown
    return g.optimizer_gb, g.step_transient_gb


def test_optimizer_state_bytes_by_hand() -> None:
    # Mixed precision (fp32 states): AdamW 2 x 4 B, Lion one momentum 4 B, 8-bit AdamW (paged or not) 2 x 1 B.
    assert _gpu_mem() == (round(8 * P_1B / 1e9, 3), round(4 * P_1B / 1e9, 3))  # foreach temporary: one fp32 copy
    assert _gpu_mem(optimizer="lion") == (round(4 * P_1B / 1e9, 3), 0.0)
    assert _gpu_mem(optimizer="adamw_8bit") == _gpu_mem(optimizer="paged_adamw_8bit") == (round(2 * P_1B / 1e9, 3), 0.0)
    # Muon: one fp32 momentum on the layer matrices, AdamW's two moments (and foreach temporary) on the rest.
    assert _gpu_mem(optimizer="muon") == (round((4 * MATRIX_1B + 8 * REST_1B) / 1e9, 3), round(4 * REST_1B / 1e9, 3))
    # Pure bf16: every state is 2 B.
    assert _gpu_mem(optimizer="lion", master_weights_fp32=False)[0] == round(2 * P_1B / 1e9, 3)


def test_optimizer_step_time_by_hand() -> None:
    def opt_s(**training: object) -> float:
        terms = estimate_run(spec(model=L1B, mfu=0.5, **training), GPU_100).throughput.step_time_terms_s
        assert terms is not None
        return terms.optimizer

    clip = 3 * 4  # clip_grad_norm_: three fp32 gradient passes
    assert opt_s(optimizer="lion") == pytest.approx(P_1B * (76 + clip) / BW, rel=1e-4)
    assert opt_s(optimizer="lion", optimizer_impl="fused") == pytest.approx(P_1B * (20 + clip) / BW, rel=1e-4)
    # Muon: 52 B on the matrices, foreach AdamW's 80 B on the rest, plus Newton-Schulz at 100 TFLOPS x 0.5.
    elementwise = (MATRIX_1B * 52 + REST_1B * 80 + P_1B * clip) / BW
    assert opt_s(optimizer="muon") == pytest.approx(elementwise + NS_1B / 50e12, rel=1e-4)


def test_packed_and_unpacked_tokens_by_hand() -> None:
    n = 12 * 7_087_872 + 50_257 * 768  # GPT-2 124M matmul parameters (see test_throughput)

    def fpt(s: int) -> float:
        return 6 * n + 12 * 12 * 768 * s  # model FLOPs per token with attention over s positions

    packed = estimate_run(spec(grad_accum=4), GPU_100)
    one = estimate_run(spec(grad_accum=4, packing=False, mean_seq_len=256), GPU_100)
    four = estimate_run(spec(micro_batch=4, packing=False, mean_seq_len=256), GPU_100)
    rate = 100e12 * 0.30
    terms = [e.throughput.step_time_terms_s for e in (packed, one, four)]
    # Packed: 4 full windows of real tokens. Unpacked, one sample per micro-batch: no padding, attention over 256.
    # Four samples per micro-batch: padded to seq_len (assumed), but only 4 x 256 real tokens.
    assert terms[0] is not None and terms[1] is not None and terms[2] is not None
    assert terms[0].compute == pytest.approx(4 * 1024 * fpt(1024) / rate, rel=1e-4)
    assert terms[1].compute == pytest.approx(4 * 256 * fpt(256) / rate, rel=1e-4)
    assert terms[2].compute == pytest.approx(4 * 1024 * fpt(1024) / rate, rel=1e-4)
    for est, term, real in zip((packed, one, four), terms, (4 * 1024, 4 * 256, 4 * 256), strict=True):
        assert term is not None
        step_s = term.compute + term.optimizer + term.comm + term.host_dispatch + term.fixed
        assert est.throughput.tokens_per_s.base == pytest.approx(real / step_s, rel=1e-4)
    # Same compute, a quarter of the useful tokens: the padded run's useful rate is exactly 1/4 of the packed one.
    assert four.throughput.tokens_per_s.base == pytest.approx(packed.throughput.tokens_per_s.base / 4, rel=1e-3)
    assert any("packing=false" in note for note in four.throughput.notes)
    # seq_len is the longest sample: the memory peak does not move with packing or mean_seq_len.
    assert four.memory.gpu.peak_gb == estimate_run(spec(micro_batch=4), GPU_100).memory.gpu.peak_gb
    # Target in steps: the tokens trained are real tokens.
    assert parse_spec(spec(micro_batch=4, packing=False, mean_seq_len=256)).training.tokens_per_step == 1024


def test_lora_module_lists_by_hand() -> None:
    # Llama-3.1-8B (h 4096, kv 1024, vocab 128,256, 32 layers), rank 16 on q_proj and v_proj: r x (in + out).
    qv = 16 * ((4096 + 4096) + (4096 + 1024)) * 32
    assert qv == 6_815_744
    est = estimate_run(spec(model={"name": "llama-3.1-8b"}, method="lora", lora_rank=16,
                            lora_targets=["q_proj", "v_proj"]), GPU_100)
    assert est.model.params_trainable == qv
    assert "params_trainable: LoRA rank 16 on q_proj+v_proj matrices: r*(in+out) each" in est.assumptions
    head = estimate_run(spec(model={"name": "llama-3.1-8b"}, method="lora", lora_rank=16,
                             lora_targets=["q_proj", "v_proj", "lm_head"]), GPU_100)
    assert head.model.params_trainable == qv + 16 * (4096 + 128_256)
    # The named forms agree with the lists they stand for.
    names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    for short, listed in (("all_linear", names), ("attention", names[:4])):
        a = estimate_run(spec(model=L1B, method="lora", lora_rank=8, lora_targets=short), GPU_100)
        b = estimate_run(spec(model=L1B, method="lora", lora_rank=8, lora_targets=listed), GPU_100)
        assert a.model.params_trainable == b.model.params_trainable


@pytest.mark.parametrize(("training", "field", "allowed"), [
    ({"optimizer": "adam9"}, "spec.training.optimizer", "'lion' or 'muon'"),
    ({"optimizer": "muon", "method": "lora", "lora_rank": 8}, "spec.training.optimizer", "method=full"),
    ({"mean_seq_len": 2048}, "spec.training.mean_seq_len", "at most seq_len (1024"),
    ({"packing": "maybe"}, "spec.training.packing", "boolean"),
    ({"method": "lora", "lora_rank": 8, "lora_targets": ["q_proj", "qkv"]}, "spec.training.lora_targets",
     "q_proj, k_proj"),
    ({"method": "lora", "lora_rank": 8, "lora_targets": ["q_proj", "q_proj"]}, "spec.training.lora_targets",
     "distinct"),
    ({"method": "lora", "lora_rank": 8, "lora_targets": []}, "spec.training.lora_targets", "distinct"),
])
def test_bad_values_get_one_line_naming_the_field(training: dict[str, object], field: str, allowed: str) -> None:
    with pytest.raises(PreflightError) as exc:
        parse_spec(spec(**training))
    line = exc.value.one_line()
    assert line.startswith(f"{field}: got ") and allowed in line and "\n" not in line


def test_gate_proj_on_a_two_matrix_mlp_is_refused() -> None:
    with pytest.raises(PreflightError) as exc:
        estimate_run(spec(method="lora", lora_rank=8, lora_targets=["gate_proj"]), GPU_100)  # GPT-2
    assert exc.value.one_line().startswith("spec.training.lora_targets: got ['gate_proj']")
