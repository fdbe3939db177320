"""GPU names as people and tools print them, matched to catalogue rows (or to a list of candidates).

Why: the same card reaches us as a Vast ``gpu_name`` ("A100 SXM4", "RTX 4070S"), an
``nvidia-smi --query-gpu=name`` string ("NVIDIA A100-SXM4-80GB", "NVIDIA GeForce RTX 4070 SUPER",
"NVIDIA H100 80GB HBM3") or the marketing name a person types ("A100 80GB", "H100 SXM"). Only the
first were accepted; "A100 80GB" was refused. Names are compared as *keys*: lower case, the vendor
and product-line words dropped (NVIDIA, GeForce, Tesla, "Generation", "with Max-Q Design"), SUPER as
S (Vast's spelling), SXM2/4/5 as SXM, memory technology (HBM3, GDDR6X) dropped, and the memory size
taken out as a hint that picks the row's memory variant.

A bare family name ("A100", "H100") stands for cards that differ in what an estimate depends on
(40 or 80 GB; 989 or 756 dense bf16 TFLOPS), so it is not silently read as one of them: the caller
gets the candidates and picks. Candidates that agree on memory and peak within 10 % ("A100 80GB":
the SXM4 and PCIe cards, 312 TFLOPS and 80 GB both) are read as the first catalogue row.

>>> gpu_key("NVIDIA GeForce RTX 4070 SUPER"), gpu_key("NVIDIA A100-SXM4-80GB"), gpu_key("H100 80GB HBM3")
(('rtx', '4070', 's'), ('a100', 'sxm'), ('h100',))
>>> memory_hint_gb("NVIDIA A100-SXM4-80GB"), memory_hint_gb("RTX 4090")
(80.0, None)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

_SIZE = re.compile(r"(?<![a-z0-9])(\d{1,3})\s*g(?:b|ib)?(?![a-z0-9])", re.IGNORECASE)
_DROP = {"nvidia", "geforce", "tesla", "generation", "gpu", "with", "design", "edition", "graphics", "card"}
_MEMORY_TECH = re.compile(r"^(hbm\d?e?|g?ddr\d?x?)$")
_RENAME = {"super": "s", "quadro": "q", "sxm2": "sxm", "sxm4": "sxm", "sxm5": "sxm", "sxm6": "sxm"}
PEAK_TOLERANCE = 0.10
"""Candidates whose dense peak and memory agree this closely are the same card for an estimate."""


class Row(Protocol):
    """What matching reads of a catalogue row."""

    name: str
    aliases: list[str]
    gpu_ram_gb: float
    bf16_tflops: float | None
    fp16_tflops: float | None
    fp32_tflops: float

    def memory_options_gb(self) -> list[float]: ...


def memory_hint_gb(name: str) -> float | None:
    """The memory size a name states ("80GB", "144G"), or None."""
    found = _SIZE.search(name)
    return float(found.group(1)) if found else None


def gpu_key(name: str) -> tuple[str, ...]:
    """The comparable tokens of a GPU name (see the module docstring)."""
    text = _SIZE.sub(" ", name.lower())
    tokens = []
    for token in re.split(r"[^a-z0-9]+", text):
        token = _RENAME.get(token, token)
        if token and token not in _DROP and not _MEMORY_TECH.match(token):
            tokens.append(token)
    return tuple(tokens)


def _joined(key: Sequence[str]) -> str:
    return "".join(key)


def _peak(row: Row) -> float:
    return float(row.bf16_tflops or row.fp16_tflops or row.fp32_tflops)


def _same_card(rows: Sequence[Row], hint: float | None) -> bool:
    """Whether every candidate gives the same estimate: one memory size each (or the hinted one), and
    peaks within :data:`PEAK_TOLERANCE`."""
    if hint is None and any(len(r.memory_options_gb()) > 1 for r in rows):
        return False
    memories = {hint} if hint is not None else {r.memory_options_gb()[0] for r in rows}
    peaks = [_peak(r) for r in rows]
    return len(memories) == 1 and max(peaks) <= min(peaks) * (1 + PEAK_TOLERANCE)


def _fits_hint(row: Row, hint: float) -> bool:
    return any(abs(m - hint) <= 0.1 * hint for m in row.memory_options_gb())


def match_gpu(name: str, rows: Sequence[Row]) -> list[Row]:
    """The catalogue rows ``name`` may mean: one when it is clear, several when the caller must pick,
    none when nothing is close.

    Order of trust: a row's own name or an alias written in full (memory size included) wins; then a
    key equal to a row's key; then the family, the rows whose name starts with the given words.
    """
    key, hint = gpu_key(name), memory_hint_gb(name)
    if not key:
        return []
    raw = re.sub(r"[^a-z0-9]", "", name.lower())
    names = {_joined(gpu_key(r.name)): r for r in rows}
    if _joined(key) in names:
        return [names[_joined(key)]]
    family = [r for r in rows if gpu_key(r.name)[: len(key)] == key and len(gpu_key(r.name)) > len(key)]
    plain = (raw, raw.removeprefix("nvidia"))
    exact = [r for r in rows if any(re.sub(r"[^a-z0-9]", "", a.lower()) in plain for a in r.aliases)]
    if exact and (raw != _joined(key) or all(r is exact[0] for r in family)):
        return exact[:1]  # written in full, or a bare name only one row can mean
    by_alias = [r for r in rows if any(_joined(gpu_key(a)) == _joined(key) for a in r.aliases)]
    candidates: list[Row] = []
    for row in [*by_alias, *family]:
        if all(row is not c for c in candidates):
            candidates.append(row)
    if hint is not None:
        fitting = [r for r in candidates if _fits_hint(r, hint)]
        candidates = fitting or candidates
    if len(candidates) > 1 and _same_card(candidates, hint):
        return candidates[:1]
    return candidates


def describe(rows: Sequence[Row]) -> str:
    """Candidates for an error: "A100 SXM4 (40/80 GB, 312 TFLOPS), A100 PCIE (...)"."""
    return ", ".join(f"{r.name} ({'/'.join(f'{m:g}' for m in r.memory_options_gb())} GB, {_peak(r):g} TFLOPS)"
                     for r in rows)
