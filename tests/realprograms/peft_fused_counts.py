"""Parameter counts of tiny fused-projection models under real PEFT LoRA: Phi-3 (qkv_proj, gate_up_proj), GPT-2
(c_attn) and GPT-NeoX (query_key_value), each built by transformers from a small config (random weights, CPU).

Run with a Python that has torch, transformers and peft (tests/test_fused_projections.py passes it
``PREFLIGHT_TORCH_PYTHON``). argv: rank. Prints one JSON object: for each family, the model's total parameters
and, per target list, PEFT's trainable parameters.
"""

from __future__ import annotations

import json
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedModel,
)

# hidden 256, 4 heads, 2 layers, vocab 512 (GPT-2 keeps its 1,024 positions): small enough for a CPU, every
# projection still distinct in size.
MODELS = {
    "phi3": (lambda: Phi3ForCausalLM(Phi3Config(hidden_size=256, intermediate_size=688, num_hidden_layers=2,
                                                num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                                                pad_token_id=0, tie_word_embeddings=False)),
             {"all": "all-linear", "attn": ["qkv_proj"], "mlp": ["gate_up_proj", "down_proj"]}),
    "gpt2": (lambda: GPT2LMHeadModel(GPT2Config(n_embd=256, n_layer=2, n_head=4, vocab_size=512, n_positions=1024)),
             {"all": "all-linear", "attn": ["c_attn"]}),
    "gpt_neox": (lambda: GPTNeoXForCausalLM(GPTNeoXConfig(hidden_size=256, intermediate_size=1024, num_hidden_layers=2,
                                                          num_attention_heads=4, vocab_size=512)),
                 {"all": "all-linear", "attn": ["query_key_value"]}),
}


def trainable(build: object, targets: str | list[str], rank: int) -> int:
    torch.manual_seed(0)
    model = build()  # type: ignore[operator]
    peft_model = get_peft_model(model, LoraConfig(r=rank, target_modules=targets, lora_dropout=0.0))
    return sum(p.numel() for p in peft_model.parameters() if p.requires_grad)


if __name__ == "__main__":
    rank = int(sys.argv[1])
    out: dict[str, dict[str, int]] = {}
    for family, (build, cases) in MODELS.items():
        model: PreTrainedModel = build()
        out[family] = {"total": sum(p.numel() for p in model.parameters())}
        for key, targets in cases.items():
            out[family][key] = trainable(build, targets, rank)
    print(json.dumps(out))
