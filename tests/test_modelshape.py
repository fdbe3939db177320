"""Parameter counts and shapes from presets and real Hugging Face config.json files."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.modelshape import lora_trainable_params, preset_names, resolve_model
from gpu_preflight.tools.estimator.spec import ModelSpec

HF_CONFIGS = Path(__file__).parent / "fixtures" / "hf_configs"

# Published totals (model cards / safetensors metadata); the shape formula must reproduce them exactly.
PUBLISHED = {
    "llama-3.2-1b": 1_235_814_400,
    "llama-3.1-8b": 8_030_261_248,
    "gpt2": 124_439_808,
    "mistral-7b-v0.1": 7_241_732_096,
    "qwen2.5-0.5b": 494_032_768,
    "qwen2.5-7b": 7_615_616_512,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shape_count_matches_published_total(name: str) -> None:
    m = resolve_model(ModelSpec(name=name))
    assert m.params_computed == PUBLISHED[name]
    assert m.params_total == PUBLISHED[name]


def test_every_preset_is_self_consistent() -> None:
    for name in preset_names():
        m = resolve_model(ModelSpec(name=name))
        assert m.params_computed == m.params_total, name
        assert m.shape_source == "preset"


@pytest.mark.parametrize("path", sorted(HF_CONFIGS.glob("*.json")), ids=lambda p: p.stem)
def test_hf_config_gives_the_same_model_as_the_preset(path: Path) -> None:
    from_config = resolve_model(ModelSpec(hf_config=str(path)))
    preset = resolve_model(ModelSpec(name=path.stem))
    assert from_config.shape_source == "hf_config"
    assert from_config.params_total == preset.params_total
    assert (from_config.n_layers, from_config.hidden_size, from_config.vocab_size) == (
        preset.n_layers, preset.hidden_size, preset.vocab_size)


def test_untied_llama_counts_its_lm_head() -> None:
    # AutoModel-based peers report Llama-3.1-8B as 7.50B: the 128256 x 4096 LM head is missing.
    m = resolve_model(ModelSpec(name="llama-3.1-8b"))
    assert m.params_total - 128_256 * 4096 == 7_504_924_672


def test_lora_rank16_all_linear_on_llama_3_2_1b() -> None:
    # Per layer r*(in+out): q 2048+2048, k 2048+512, v 2048+512, o 2048+2048, gate/up/down 3*(2048+8192)
    # = 4096 + 2560 + 2560 + 4096 + 30720 = 44032; x16 layers x r=16 = 11,272,192 (PEFT prints the same).
    m = resolve_model(ModelSpec(name="llama-3.2-1b"))
    assert lora_trainable_params(m, 16, "all_linear") == 11_272_192
    assert lora_trainable_params(m, 16, "attention") == 16 * 16 * (4096 + 2560 + 2560 + 4096)


def test_explicit_fields_override_the_preset() -> None:
    m = resolve_model(ModelSpec(name="llama-3.2-1b", vocab_size=32_000))
    assert m.vocab_size == 32_000
    assert m.params_total == m.params_computed != 1_235_814_400


def test_overridden_heads_carry_the_derived_head_numbers() -> None:
    """A preset's multi-head k/v count and derived head_dim follow the spec's n_heads; grouped-query stays."""
    gpt2 = resolve_model(ModelSpec(name="gpt2", n_heads=4))
    assert (gpt2.n_kv_heads, gpt2.head_dim) == (4, 192)
    llama = resolve_model(ModelSpec(name="llama-3.1-8b", n_heads=16))
    assert (llama.n_kv_heads, llama.head_dim) == (8, 256)
    assert resolve_model(ModelSpec(name="gpt2", n_heads=4, n_kv_heads=2, head_dim=64)).kv_dim == 128


@pytest.mark.parametrize(("heads", "kv"), [(4, 12), (12, 8)])
def test_kv_heads_must_divide_the_heads(heads: int, kv: int) -> None:
    with pytest.raises(PreflightError) as err:
        resolve_model(ModelSpec(family="llama", n_layers=2, hidden_size=768, n_heads=heads, n_kv_heads=kv,
                                vocab_size=512))
    assert err.value.field == "spec.model.n_kv_heads" and f"a divisor of n_heads ({heads})" in str(err.value)


def test_bare_params_total_infers_a_shape_and_says_so() -> None:
    m = resolve_model(ModelSpec(name="mystery", params_total=7_000_000_000))
    assert m.shape_source == "inferred"
    assert m.params_total == 7_000_000_000
    assert 0.7 < m.params_computed / m.params_total < 1.3


def test_unsupported_architecture_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "mamba", "architectures": ["MambaForCausalLM"]}')
    with pytest.raises(PreflightError) as info:
        resolve_model(ModelSpec(hf_config=str(cfg)))
    assert info.value.field == "spec.model.hf_config"
    assert "llama" in info.value.allowed


@pytest.mark.parametrize("name", ["config\x00.json", "bad-utf8.json", "not-json.json"])
def test_unreadable_hf_config_is_refused_naming_the_field(tmp_path: Path, name: str) -> None:
    """Regression (the MCP fuzz): a NUL in the path raised ValueError past the OSError handler."""
    if "\x00" not in name:
        (tmp_path / name).write_bytes(b"\xff\xfe{" if "utf8" in name else b"{not json")
    with pytest.raises(PreflightError) as info:
        resolve_model(ModelSpec(hf_config=str(tmp_path / name)))
    assert info.value.field == "spec.model.hf_config"
    assert "config.json" in info.value.allowed  # issue 14: "a regular file holding ..." / "... object" (bad JSON)
