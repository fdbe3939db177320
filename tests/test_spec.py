"""The spec file format: what loads, and the one clear error for each kind of bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from helpers_spec import EXAMPLES, spec, with_change

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.estimator.spec import load_spec_file, parse_spec

FULL_KEYS_TOML = """
[model]
name = "llama-3.2-1b"
params_total = 1235814400
params_trainable = 1235814400

[training]
method = "full"
precision = "bf16"
optimizer = "adamw"
seq_len = 2048
micro_batch = 2
grad_accum = 4
global_batch = 16
activation_checkpointing = true
offload = "none"
num_gpus = 2
sharding = "zero2"

[target]
target_tokens = 1_000_000_000

[overheads]
setup_debug_hours = 1.5
eval_ckpt_overhead_hours = 0.25
disk = { model_gb = 2.5, data_gb = 4.0, checkpoint_gb = 17.0, logs_gb = 0.5, temp_gb = 8.0 }
"""


def test_every_documented_key_loads_from_toml_and_json(tmp_path: Path) -> None:
    toml_file = tmp_path / "spec.toml"
    toml_file.write_text(FULL_KEYS_TOML)
    from_toml = load_spec_file(toml_file)
    assert from_toml.training.global_batch == 16
    assert from_toml.training.sharding_resolved == "zero2"
    assert from_toml.overheads.disk.checkpoint_gb == 17.0

    json_file = tmp_path / "spec.json"
    json_file.write_text(json.dumps(from_toml.model_dump(exclude_none=True)))
    assert load_spec_file(json_file) == from_toml


@pytest.mark.parametrize("name", ["llama-3-8b-full.json", "llama-3.2-1b-lora.toml", "qwen2.5-7b-qlora.json"])
def test_examples_load(name: str) -> None:
    loaded = load_spec_file(EXAMPLES / name)
    assert loaded.model.name


def test_lora_rank_lora_targets_and_epochs() -> None:
    s = parse_spec(spec(method="lora", lora_rank=8) | {"target": {"epochs": 2, "dataset_tokens": 1000}})
    assert s.training.lora_rank == 8 and s.target.epochs == 2


# Each bad spec must name the field, show what was sent and what is allowed.
BAD_SPECS: list[tuple[str, Any, str, str]] = [
    ("training.micro_batch", -1, "spec.training.micro_batch", "greater than 0"),
    ("training.seq_len", 0, "spec.training.seq_len", "greater than 0"),
    ("model.params_total", 0, "spec.model.params_total", "greater than 0"),
    ("training.global_batch", 7, "spec.training", "global_batch=7"),
    ("training.method", "lora", "spec.training", "lora_rank"),
    ("training.precision", "int4", "spec.training.precision", "'bf16', 'fp16', 'fp32' or 'fp8'"),
    ("target.target_steps", ..., "spec.target", "exactly one of"),
    ("training.micro_batch_size", 4, "spec.training.micro_batch_size", "Extra inputs are not permitted"),
    ("overheads.setup_debug_hours", -2.0, "spec.overheads.setup_debug_hours", "greater than or equal to 0"),
    ("training.offload", "optimizer", "spec.training", "needs sharding"),
]


@pytest.mark.parametrize(("key", "value", "field", "allowed"), BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_is_one_clear_error(key: str, value: Any, field: str, allowed: str) -> None:
    with pytest.raises(PreflightError) as info:
        parse_spec(with_change(spec(), key, value))
    text = info.value.one_line()
    assert "\n" not in text
    assert text.startswith(field)
    assert allowed in text


def test_nan_is_refused_with_its_field() -> None:
    with pytest.raises(PreflightError) as info:
        parse_spec(with_change(spec(), "overheads.setup_debug_hours", math.nan))
    assert info.value.field == "spec.overheads.setup_debug_hours"
    assert "finite" in info.value.allowed


def test_unknown_gpu_lists_what_is_allowed() -> None:
    with pytest.raises(PreflightError) as info:
        estimate_run(spec(), "RTX 9999")
    assert info.value.field == "gpu"
    assert "the GPU list" in info.value.allowed  # outside a door the next step reads as plain words
    with pytest.raises(PreflightError) as near:
        estimate_run(spec(), "H100 SMX")
    assert "closest: H100 SXM" in str(near.value)


def test_trainable_cannot_exceed_total() -> None:
    bad = with_change(spec(), "model.params_trainable", 10**12)
    with pytest.raises(PreflightError, match="params_trainable"):
        estimate_run(bad, "RTX 4090")


def test_unknown_model_without_sizes_says_what_to_give() -> None:
    with pytest.raises(PreflightError) as info:
        estimate_run(spec(model={"name": "my-model"}), "RTX 4090")
    assert "preset" in info.value.allowed and "params_total" in info.value.allowed


def test_bad_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(PreflightError, match="it does not exist"):
        load_spec_file(missing)
    # ValueError from open(), not OSError
    with pytest.raises(PreflightError, match="a regular file holding a JSON or TOML run spec"):
        load_spec_file(tmp_path / "nul\x00.json")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b"# caf\xe9\n")
    with pytest.raises(PreflightError, match="a regular file holding a JSON or TOML run spec"):
        load_spec_file(latin1)
    garbage = tmp_path / "bad.json"
    garbage.write_text("{not json")
    with pytest.raises(PreflightError, match="JSON or TOML"):
        load_spec_file(garbage)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(PreflightError, match="an object with sections"):
        load_spec_file(listed)
