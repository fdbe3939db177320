"""One point of ``bench/measure_grid.py``: build the preset's model in plain PyTorch, train it, measure.

Why plain PyTorch and random weights: the lent GPU machines reach no network (no Hub download), and
the estimator predicts from the shape alone, so the model is built from the same
:class:`~gpu_preflight.tools.estimator.modelshape.ResolvedModel` the estimator reads. ``build_model`` is
checked against every preset's published parameter count, and the LoRA wrapper against
``lora_trainable_params``, so the measured run is the configuration the estimate describes.

Why a process per point: ``max_memory_reserved``, the CUDA context and the caching allocator's pools
carry over between runs inside one process; a fresh process sees memory the way one user's training
script does.

What runs is what HF Trainer's common path does: fp32 weights under ``torch.autocast`` bf16 (the
spec's ``master_weights_fp32: true``), fused AdamW, SDPA attention (flash on Ampere and newer),
grouped-query K/V repeated as in HF's ``repeat_kv``, fp32 logits into cross-entropy (HF upcasts),
and, for ``activation_checkpointing``, ``torch.utils.checkpoint`` around every block (non-reentrant).
Output: one JSON line on stdout. Needs ``torch``; it is not a project dependency.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from gpu_preflight.tools.estimator.modelshape import ResolvedModel, lora_trainable_params, resolve_model
from gpu_preflight.tools.estimator.spec import ModelSpec

BIAS_EVERYWHERE = ("gpt2", "gpt_neox", "bert", "opt")
DROPOUT_P = 0.1  # GPT-2's resid/attn/embd dropout in its config.json
LORA_ALPHA = 32


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def _norm(m: ResolvedModel) -> nn.Module:
    return nn.LayerNorm(m.hidden_size) if m.layer_norm else RMSNorm(m.hidden_size)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, m: ResolvedModel) -> None:
        super().__init__()
        bias_all = m.family in BIAS_EVERYWHERE
        qkv_bias = m.qkv_bias or bias_all
        self.n_heads, self.n_kv, self.head_dim, self.rotary = m.n_heads, m.n_kv_heads, m.head_dim, m.rotary
        self.dropout = DROPOUT_P if m.dropout else 0.0
        self.q = nn.Linear(m.hidden_size, m.q_dim, bias=qkv_bias)
        self.k = nn.Linear(m.hidden_size, m.kv_dim, bias=qkv_bias)
        self.v = nn.Linear(m.hidden_size, m.kv_dim, bias=qkv_bias)
        self.o = nn.Linear(m.q_dim, m.hidden_size, bias=bias_all)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k(x).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.v(x).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        if self.rotary:
            pos = torch.arange(t, device=x.device, dtype=torch.float32)
            inv = 1.0 / (10000.0 ** (torch.arange(0, self.head_dim, 2, device=x.device).float() / self.head_dim))
            freqs = torch.outer(pos, inv)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos().to(q.dtype), emb.sin().to(q.dtype)
            q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        if self.n_kv != self.n_heads:  # HF's repeat_kv: the grouped K/V are materialized per head
            k = k.repeat_interleave(self.n_heads // self.n_kv, dim=1)
            v = v.repeat_interleave(self.n_heads // self.n_kv, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.o(y.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, m: ResolvedModel) -> None:
        super().__init__()
        self.gated = m.mlp_gated
        bias = m.family in BIAS_EVERYWHERE
        self.up = nn.Linear(m.hidden_size, m.intermediate_size, bias=bias)
        self.gate = nn.Linear(m.hidden_size, m.intermediate_size, bias=False) if self.gated else None
        self.down = nn.Linear(m.intermediate_size, m.hidden_size, bias=bias)
        self.act = nn.SiLU() if m.family in ("llama", "mistral", "qwen2") else nn.GELU(approximate="tanh")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            return self.down(self.act(self.gate(x)) * self.up(x))
        return self.down(self.act(self.up(x)))


class Block(nn.Module):
    def __init__(self, m: ResolvedModel) -> None:
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = _norm(m), Attention(m), _norm(m), MLP(m)
        two = m.family == "gemma2"  # Gemma 2 adds a post-norm after attention and after the MLP
        self.post1: nn.Module = _norm(m) if two else nn.Identity()
        self.post2: nn.Module = _norm(m) if two else nn.Identity()
        self.drop = nn.Dropout(DROPOUT_P if m.dropout else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.post1(self.attn(self.norm1(x))))
        return x + self.drop(self.post2(self.mlp(self.norm2(x))))


class Decoder(nn.Module):
    def __init__(self, m: ResolvedModel) -> None:
        super().__init__()
        self.embed = nn.Embedding(m.vocab_size, m.hidden_size)
        self.pos = nn.Embedding(m.learned_positions, m.hidden_size) if m.learned_positions else None
        self.drop = nn.Dropout(DROPOUT_P if m.dropout else 0.0)
        self.blocks = nn.ModuleList(Block(m) for _ in range(m.n_layers))
        self.norm = _norm(m)
        self.head = nn.Linear(m.hidden_size, m.vocab_size, bias=False)
        if m.tied_embeddings:
            self.head.weight = self.embed.weight
        self.checkpointing = False

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        if self.pos is not None:
            x = x + self.pos(torch.arange(ids.shape[1], device=ids.device))
        x = self.drop(x)
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False) if self.checkpointing else block(x)
        return self.head(self.norm(x))


def build_model(m: ResolvedModel) -> Decoder:
    """The preset as a PyTorch module: embeddings, ``n_layers`` pre-norm blocks, final norm, LM head.

    Weights start as HF initialises them (normal, std 0.02; zero biases), so the loss starts near
    ln(vocab) and bf16 stays finite; the values do not change speed or memory.
    """
    model = Decoder(m)
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    return model


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class LoRALinear(nn.Module):
    """PEFT's LoRA: the frozen base plus ``B(A(x)) * alpha / r``, B zero-initialised."""

    def __init__(self, base: nn.Linear, rank: int) -> None:
        super().__init__()
        self.base = base
        self.a = nn.Linear(base.in_features, rank, bias=False)
        self.b = nn.Linear(rank, base.out_features, bias=False)
        nn.init.zeros_(self.b.weight)
        self.scale = LORA_ALPHA / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.b(self.a(x)) * self.scale


def apply_lora(model: Decoder, rank: int, targets: str) -> None:
    """Freeze everything, then adapt the attention matrices (and the MLP's for ``all_linear``)."""
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.blocks:
        parents: list[tuple[nn.Module, tuple[str, ...]]] = [(block.attn, ("q", "k", "v", "o"))]
        if targets == "all_linear":
            parents.append((block.mlp, ("gate", "up", "down")))
        for parent, names in parents:
            for name in names:
                base = getattr(parent, name)
                if isinstance(base, nn.Linear):
                    setattr(parent, name, LoRALinear(base, rank))


def resolve(name: str) -> ResolvedModel:
    return resolve_model(ModelSpec(name=name))


def run_point(point: dict[str, Any], device: str, warmup: int, steps: int) -> dict[str, Any]:
    """Train ``warmup + steps`` optimizer steps on random tokens; time the last ``steps``."""
    torch.manual_seed(0)
    m = resolve(point["model"])
    model = build_model(m)
    expected_trainable = m.params_total
    if point["method"] == "lora":
        apply_lora(model, point["lora_rank"], point["lora_targets"])
        expected_trainable = lora_trainable_params(m, point["lora_rank"], point["lora_targets"])
    params_total = count_params(model) - (count_params(model, True) if point["method"] == "lora" else 0)
    model.checkpointing = bool(point["activation_checkpointing"])
    model.to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, fused=device.startswith("cuda"))
    mb, seq = point["micro_batch"], point["seq_len"]
    ids = torch.randint(0, m.vocab_size, (mb, seq + 1), device=device)
    inputs, labels = ids[:, :-1], ids[:, 1:]
    cuda = device.startswith("cuda")
    losses: list[float] = []
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float().reshape(-1, m.vocab_size), labels.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i in (0, warmup + steps - 1):
            losses.append(float(loss.item()))
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    result: dict[str, Any] = {
        "point": point, "device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
        "device_name": torch.cuda.get_device_name() if cuda else "cpu",
        "params_total": params_total, "params_trainable": count_params(model, True),
        "params_trainable_expected": expected_trainable, "warmup_steps": warmup, "timed_steps": steps,
        "step_time_s": elapsed / steps, "tokens_per_s": steps * mb * seq / elapsed,
        "loss_first": losses[0], "loss_last": losses[-1],
        "max_memory_allocated_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "max_memory_reserved_bytes": torch.cuda.max_memory_reserved() if cuda else None,
        "nvml_used_bytes": _nvml_used_bytes() if cuda else None,
    }
    if not all(math.isfinite(v) for v in losses):
        result["error"] = f"loss not finite: {losses}"
    return result


def _nvml_used_bytes() -> int | None:
    """The device's used memory as nvidia-smi shows it, read while this process still holds its pools."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            index = torch.cuda.current_device()
            return int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index)).used)
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Measure one grid point (see bench/measure_grid.py).")
    ap.add_argument("--point", required=True, help="the grid point as JSON")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    point = json.loads(args.point)
    try:
        result = run_point(point, args.device, args.warmup, args.steps)
    except torch.cuda.OutOfMemoryError as exc:
        result = {"point": point, "error": f"out of memory: {str(exc).splitlines()[0]}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
