"""Bytes autograd keeps for backward per token in one decoder layer of a tiny Llama under real PEFT LoRA.

Run with a Python that has torch, transformers and peft (tests/test_lora_adapter_dtype_real.py passes it
``PREFLIGHT_TORCH_PYTHON``). Prints one JSON object: for each case, the saved bytes per token, parameters
excluded (counted once per storage, the way the caching allocator holds them).

argv: hidden intermediate tokens rank, then one or more cases ``targets:adapter:amp[:dropout]``, e.g.
``q_proj,v_proj:fp32:0`` (adapter fp32 or base, amp 0 or 1, LoRA dropout 0 unless given). Prints a JSON list, one
figure per case.
"""

from __future__ import annotations

import json
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM
from transformers_memory import saved_storage_bytes


def saved_bytes_per_token(hidden: int, inter: int, tokens: int, rank: int, targets: list[str],
                          fp32_adapters: bool, amp: bool, dropout: float = 0.0) -> float:
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=256, attn_implementation="sdpa")
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model = get_peft_model(model, LoraConfig(r=rank, target_modules=targets, lora_dropout=dropout),
                           autocast_adapter_dtype=fp32_adapters)
    inner = model.base_model.model.model
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    hid = torch.randn(1, tokens, hidden, dtype=torch.bfloat16, requires_grad=True)
    rotary = inner.rotary_emb(hid, torch.arange(tokens)[None])

    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            inner.layers[0](hid, position_embeddings=rotary, attention_mask=None)

    # The layer's input belongs to the layer before.
    return saved_storage_bytes(run, params | {hid.untyped_storage().data_ptr()}) / tokens


if __name__ == "__main__":
    hidden, inter, tokens, rank = (int(a) for a in sys.argv[1:5])
    figures = []
    for case in sys.argv[5:]:
        targets, adapter, amp, *dropout = case.split(":")
        figures.append(saved_bytes_per_token(hidden, inter, tokens, rank, targets.split(","), adapter == "fp32",
                                             amp == "1", float(dropout[0]) if dropout else 0.0))
    print(json.dumps(figures))
