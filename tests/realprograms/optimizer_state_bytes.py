"""Optimizer state bytes of a tiny Llama after one real step: torch's AdamW, lion-pytorch's Lion, and torch's Muon
on the layer matrices with AdamW on the rest (embeddings, head, norms), the split nanochat and modded-nanogpt use.

Run with a Python that has torch (>= 2.9, for ``torch.optim.Muon``), transformers and lion-pytorch
(tests/test_optimizer_states.py passes it ``PREFLIGHT_TORCH_PYTHON``). argv: hidden, intermediate, layers, vocab.
Prints one JSON object: the model's parameters and, per optimizer, the bytes of the tensors it keeps per parameter
(step counters, one scalar per tensor, left out: they are not per-parameter state).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable

import torch
from lion_pytorch import Lion
from transformers import LlamaConfig, LlamaForCausalLM


def model(hidden: int, inter: int, layers: int, vocab: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                                        num_attention_heads=4, num_key_value_heads=4, vocab_size=vocab,
                                        tie_word_embeddings=False))


def optimizers(net: LlamaForCausalLM, name: str) -> list[torch.optim.Optimizer]:
    if name == "adamw":
        return [torch.optim.AdamW(net.parameters(), foreach=False)]
    if name == "lion":
        return [Lion(net.parameters())]
    matrices = [p for n, p in net.named_parameters() if n.startswith("model.layers.") and p.ndim == 2]
    ids = {id(p) for p in matrices}
    rest = [p for p in net.parameters() if id(p) not in ids]
    return [torch.optim.Muon(matrices), torch.optim.AdamW(rest, foreach=False)]


def state_bytes(opts: Iterable[torch.optim.Optimizer]) -> int:
    total = 0
    for opt in opts:
        for state in opt.state.values():
            total += sum(v.numel() * v.element_size() for v in state.values()
                         if isinstance(v, torch.Tensor) and v.numel() > 1)
    return total


def main() -> None:
    hidden, inter, layers, vocab = (int(a) for a in sys.argv[1:5])
    out: dict[str, int] = {}
    for name in ("adamw", "lion", "muon"):
        net = model(hidden, inter, layers, vocab)
        out["params_total"] = sum(p.numel() for p in net.parameters())
        opts = optimizers(net, name)
        ids = torch.randint(0, vocab, (1, 16))
        net(input_ids=ids, labels=ids).loss.backward()
        for opt in opts:
            opt.step()
        out[name] = state_bytes(opts)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
