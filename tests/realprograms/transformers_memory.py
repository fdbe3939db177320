"""Memory facts of real transformers training code, measured on CPU (torch, transformers; no GPU).

Two measurements, each printed as one JSON number:

* ``loss MODE``: the peak of allocated bytes during one forward + backward of a causal LM with ``labels``,
  over (tokens x vocab). A 1-layer, 64-wide Llama with a 32,000-word vocabulary, so the LM head and the loss
  are all of it. ``MODE`` ``own_loop`` keeps the model's output alive through ``backward()`` (PEFT's method
  comparison, can-i-finetune-this); ``trainer`` drops it first, as the HF Trainer's ``training_step`` does.
* ``saved FAMILY``: bytes autograd keeps for backward per token in one decoder layer (parameters and the rotary
  tables, shared by all layers, excluded). ``llama``: Llama, bf16, sdpa, hidden 256, MLP 688, 4 heads;
  ``bert``: BERT, fp32, eager attention, dropout 0, hidden 256, MLP 1024, 4 heads.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import BertConfig, LlamaConfig, LlamaForCausalLM
from transformers.models.bert.modeling_bert import BertLayer

TOKENS = 1024


def loss_peak_per_logit(mode: str, vocab: int = 32_000) -> float:
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, vocab_size=vocab, attn_implementation="sdpa", tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    ids = torch.randint(0, vocab, (1, TOKENS))

    def step() -> None:
        out = model(input_ids=ids, labels=ids)
        if mode == "trainer":
            loss = out.loss
            del out
            loss.backward()
        else:
            out.loss.backward()

    step()  # warm-up: lazy initialisation stays out of the measured step
    model.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak / (TOKENS * vocab)


def saved_per_token(family: str) -> float:
    torch.manual_seed(0)
    extra: tuple[torch.Tensor, ...] = ()
    if family == "llama":
        cfg = LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=1, num_attention_heads=4,
                          num_key_value_heads=4, vocab_size=256, attn_implementation="sdpa")
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
        layer = model.model.layers[0]
        hid = torch.randn(1, TOKENS, 256, dtype=torch.bfloat16, requires_grad=True)
        rotary = model.model.rotary_emb(hid, torch.arange(TOKENS)[None])
        extra = rotary

        def run() -> None:
            layer(hid, position_embeddings=rotary, attention_mask=None)
    else:
        cfg_b = BertConfig(hidden_size=256, num_attention_heads=4, intermediate_size=1024, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0, attn_implementation="eager")
        layer = BertLayer(cfg_b).train()
        hid = torch.randn(1, TOKENS, 256, requires_grad=True)

        def run() -> None:
            layer(hid)
    skip = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    skip |= {t.untyped_storage().data_ptr() for t in extra}
    return saved_storage_bytes(run, skip) / TOKENS


def saved_storage_bytes(run: Callable[[], None], skip: set[int]) -> int:
    """Bytes of the storages autograd keeps for backward while ``run`` executes, each counted once (the way the
    caching allocator holds them), those in ``skip`` (parameters, shared tables) left out."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(seen.values())


if __name__ == "__main__":
    what, arg = sys.argv[1], sys.argv[2]
    print(json.dumps(loss_peak_per_logit(arg) if what == "loss" else saved_per_token(arg)))
