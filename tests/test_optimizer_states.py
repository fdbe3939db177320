"""``training.optimizer`` lion and muon: the optimizer state the memory model counts is what the real optimizers
keep. lion-pytorch's ``Lion`` holds one ``exp_avg`` per parameter; torch's ``Muon`` one ``momentum_buffer`` per
layer matrix, with AdamW's two moments on embeddings, head and norms; torch's ``AdamW`` two moments everywhere.

Why a real run: the issue's Muon line ("one state per matrix parameter") is a claim about an implementation; one
CPU step of a tiny transformers Llama under each optimizer (tests/realprograms/optimizer_state_bytes.py) measures
it. The published Muon runs are nanochat's (tests/test_nanochat_cases.py); no published LLM run with Lion was
found, so this is Lion's only check against a real implementation.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers_spec import spec
from helpers_torch import torch_python

from gpu_preflight.tools.estimator.estimate import estimate_run
from gpu_preflight.tools.estimator.spec import parse_spec

PROGRAM = Path(__file__).resolve().parent / "realprograms" / "optimizer_state_bytes.py"
HIDDEN, INTER, LAYERS, VOCAB = 512, 1376, 4, 32000


@pytest.fixture(scope="module")
def real_states() -> dict[str, int]:
    python, why = torch_python("torch, transformers, lion_pytorch")
    if python is None:
        pytest.skip(why)
    probe = subprocess.run([python, "-c", "import torch; torch.optim.Muon"], capture_output=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip("this torch has no torch.optim.Muon (torch >= 2.9)")
    out = subprocess.run([python, str(PROGRAM), str(HIDDEN), str(INTER), str(LAYERS), str(VOCAB)],
                         capture_output=True, text=True, timeout=600, check=True)
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("optimizer", ["adamw", "lion", "muon"])
def test_optimizer_state_matches_the_real_optimizer(real_states: dict[str, int], optimizer: str) -> None:
    model = {"name": "custom", "family": "llama", "n_layers": LAYERS, "hidden_size": HIDDEN, "n_heads": 4,
             "n_kv_heads": 4, "intermediate_size": INTER, "vocab_size": VOCAB, "tied_embeddings": False}
    est = estimate_run(parse_spec(spec(model=model, precision="fp32", optimizer=optimizer, seq_len=16)), "A100 SXM4")
    assert est.model.params_total == real_states["params_total"]
    # optimizer_gb is rounded to the MB: half an MB of rounding, and nothing else, may separate the two
    assert est.memory.gpu.breakdown.optimizer_gb == pytest.approx(real_states[optimizer] / 1e9, abs=0.0006)


def test_lion_and_muon_keep_less_than_adamw(real_states: dict[str, int]) -> None:
    assert real_states["lion"] * 2 == real_states["adamw"]
    assert real_states["lion"] < real_states["muon"] < real_states["adamw"]
