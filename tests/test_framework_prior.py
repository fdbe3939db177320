"""``training.framework``: each stack's MFU class and memory defaults, overrides, errors, and the output's why.

The expected classes below are written by hand from issue 18 and the brief (tuned pretraining stacks
well_tuned, fine-tuning stacks on the HF Trainer normal), not read back from ``data/frameworks.toml``,
so a wrong row in the data file fails here.
"""

from __future__ import annotations

import copy
import json
import typing
from pathlib import Path
from typing import Any

import pytest
from helpers_spec import spec

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.estimator.frameworks import framework_rows
from gpu_preflight.tools.estimator.spec import Framework, TrainingSpec, parse_spec

GPU_100 = {"name": "flat", "gpu_ram_gb": 80, "bf16_tflops": 100, "hbm_bw_gbps": 2000}
"""No architecture: the playbook MFU applies unscaled (A100's x1.35 is tested on a bench case below)."""
WELL_TUNED = ("llm_foundry", "torchtitan", "megatron_lm", "nemo", "nanogpt")
NORMAL = ("hf_trainer", "trl", "peft", "axolotl", "unsloth", "torchtune", "llama_factory", "litgpt", "lightning",
          "deepspeed")
CASES = Path(__file__).resolve().parents[1] / "bench" / "cases" / "published.json"
GPT2_PARAMS = 124_439_808


def test_the_allowed_values_are_the_data_rows_plus_custom_and_other() -> None:
    assert set(typing.get_args(Framework)) == set(framework_rows()) | {"custom", "other"}
    assert set(WELL_TUNED) | set(NORMAL) == set(framework_rows())


def test_every_row_cites_its_prior_and_every_default_it_sets() -> None:
    for row in framework_rows().values():
        assert len(row.prior_source) >= 30 and row.prior_why, row.name
        if row.defaults.model_dump(exclude_none=True):
            assert row.defaults_source and all("http" in s for s in row.defaults_source), row.name
        assert row.unverified, row.name  # what was left unset, and why


@pytest.mark.parametrize("name", WELL_TUNED)
def test_tuned_pretraining_stacks_get_the_well_tuned_prior(name: str) -> None:
    tp = estimate_run(spec(framework=name), GPU_100).throughput
    assert tp.mfu_assumed == 0.40
    assert tp.mfu_prior_source is not None and tp.mfu_prior_source.startswith(f"framework {name} -> well_tuned (")


@pytest.mark.parametrize("name", NORMAL)
def test_fine_tuning_stacks_keep_the_normal_prior(name: str) -> None:
    tp = estimate_run(spec(framework=name), GPU_100).throughput
    assert tp.mfu_assumed == 0.30
    assert tp.mfu_prior_source is not None and tp.mfu_prior_source.startswith(f"framework {name} -> normal (")


def test_explicit_tuning_and_mfu_override_the_framework() -> None:
    tp = estimate_run(spec(framework="torchtitan", tuning="untuned"), GPU_100).throughput
    assert tp.mfu_assumed == 0.20
    assert tp.mfu_prior_source == "training.tuning untuned (given; overrides framework torchtitan -> well_tuned)"
    tp = estimate_run(spec(framework="torchtitan", mfu=0.55), GPU_100).throughput
    assert (tp.mfu_assumed, tp.mfu_prior_source) == (0.55, "training.mfu (given)")


def test_absent_framework_is_todays_behaviour_and_says_how_to_do_better() -> None:
    est = estimate_run(spec(), GPU_100)
    assert est.throughput.mfu_assumed == 0.30
    source = est.throughput.mfu_prior_source
    assert source == "training.tuning normal (default; set training.framework for a cited prior)"
    assert not any("training.framework" in w for w in est.warnings)


@pytest.mark.parametrize("name", ["custom", "other"])
def test_custom_and_other_keep_todays_numbers_and_warn_to_name_the_stack(name: str) -> None:
    plain, named = estimate_run(spec(), GPU_100), estimate_run(spec(framework=name), GPU_100)
    assert named.throughput.tokens_per_s == plain.throughput.tokens_per_s
    assert named.memory.gpu.peak_gb == plain.memory.gpu.peak_gb
    warning = [w for w in named.warnings if w.startswith(f"training.framework={name}")]
    assert len(warning) == 1 and "torchtitan" in warning[0] and "hf_trainer" in warning[0]


def test_a_bad_value_is_one_line_naming_the_field_and_the_allowed_values() -> None:
    with pytest.raises(PreflightError) as err:
        estimate_run(spec(framework="pytorch"), GPU_100)
    line = err.value.one_line()
    assert "\n" not in line
    assert line.startswith("spec.training.framework: got 'pytorch'")
    assert all(f"'{v}'" in line for v in ("hf_trainer", "torchtitan", "nanogpt", "custom", "other"))


def test_hf_trainer_means_fused_adamw_in_the_optimizer_term() -> None:
    # transformers >= torch 2.8 defaults to adamw_torch_fused: fp32 states moved by the fused kernel, 28 B/param,
    # plus 12 B for clipping (steptime_terms), over 0.8 x 2000 GB/s; torch's own default (foreach) moves 92 B.
    terms = estimate_run(spec(framework="hf_trainer"), GPU_100).throughput.step_time_terms_s
    plain = estimate_run(spec(), GPU_100).throughput.step_time_terms_s
    assert terms is not None and plain is not None
    assert terms.optimizer == pytest.approx(GPT2_PARAMS * 40 / 1.6e12, rel=1e-4)
    assert plain.optimizer == pytest.approx(GPT2_PARAMS * 92 / 1.6e12, rel=1e-4)


def test_torchtune_fills_its_recipe_defaults_but_never_what_the_spec_says() -> None:
    t = parse_spec(spec(framework="torchtune", loss="standard")).training
    assert (t.optimizer_impl, t.activation_checkpointing, t.loss) == ("fused", True, "standard")
    assert t.from_framework == ("tuning", "optimizer_impl", "activation_checkpointing")
    plain = estimate_run(spec(model={"name": "llama-3.1-8b"}, seq_len=2048), "RTX 4090")
    tuned = estimate_run(spec(model={"name": "llama-3.1-8b"}, seq_len=2048, framework="torchtune"), "RTX 4090")
    # Checkpointing keeps one layer input instead of every activation, and the chunked loss drops the fp32 logits.
    assert tuned.memory.gpu.peak_gb < plain.memory.gpu.peak_gb
    assert any(w.startswith("activation checkpointing: about 20% slower") for w in tuned.warnings)


def test_a_spec_round_trips_to_the_same_estimate() -> None:
    t = parse_spec(spec(framework="trl")).training
    again = TrainingSpec.model_validate(t.model_dump())
    assert again.model_dump() == t.model_dump()  # the values; where they came from is not dumped
    assert estimate_run({**spec(), "training": t.model_dump()}, GPU_100).throughput.tokens_per_s == \
        estimate_run(spec(framework="trl"), GPU_100).throughput.tokens_per_s


def _case(case_id: str) -> dict[str, Any]:
    cases = json.loads(CASES.read_text(encoding="utf-8"))["cases"]
    case: dict[str, Any] = copy.deepcopy(next(c for c in cases if c["id"] == case_id))
    return case


def test_a_bench_case_naming_only_its_framework_gets_the_tuned_prior_and_lands_close() -> None:
    # torchtitan docs/performance.md, Llama 3 8B on 64 A100 80GB, selective op AC: 2973 tokens/s per GPU.
    case = _case("torchtitan-llama3-8b-64xa100-tps")
    assert case["training"]["framework"] == "torchtitan"
    del case["training"]["tuning"]  # what an agent that only knows its stack would send
    spec_only = {k: case[k] for k in ("model", "training", "target") if k in case}
    measured = 2973 * 64
    named = estimate_run(spec_only, case["gpu"]).throughput
    assert named.mfu_assumed == pytest.approx(0.40 * 1.35)  # well_tuned x the A100 factor
    assert named.tokens_per_s.base is not None and abs(named.tokens_per_s.base / measured - 1) < 0.05
    del spec_only["training"]["framework"]
    unnamed = estimate_run(spec_only, case["gpu"]).throughput
    assert unnamed.mfu_assumed == pytest.approx(0.30 * 1.35)
    assert unnamed.tokens_per_s.base is not None and unnamed.tokens_per_s.base / measured - 1 < -0.2
