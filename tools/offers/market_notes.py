"""What a plan says about the offer set as a whole: one line per kind of note, with counts.

Why aggregate: a whole-market dump (``vastai search offers --raw``, 1,396 offers on 2024-11-05) made
the option table print one note per offer group, 62 of them, most saying the same thing about the
same GPU model. A reader needs each kind once, with how many offers it touches.

Vast's measured ``gpu_mem_bw`` is judged per GPU MODEL, not per offer: on that market every Ada
card measures far above its datasheet (RTX 4090 median 3,395 GB/s against 1,008; L40S 4,032 against
864 - the test most likely fits in their large L2 cache), and the HBM data-centre cards measure far
below (A100 SXM4 median 0.69 of the datasheet, H100 SXM 0.64, H100 NVL 0.59). It is a property of
the model and the test, not a fault of one host, so the note names each model once and the estimate
keeps the datasheet figure. Bands, from the per-model medians of measured / datasheet over the 61
models of that market (typical 0.8-0.9, the copy test's usual share of the peak):
``BW_MODEL_HIGH`` 1.25 (the lowest Ada median above it is 1.84) and ``BW_MODEL_LOW`` 0.7. One offer
under ``BW_OFFER_OUTLIER`` of its datasheet (an RTX 3090 at 0.03, an RTX 3080 at 0.12) is a different
thing, most likely a host problem, and gets its own line with the offer ids. It is not measured against
the model's median: RTX 4090s split into L2-cached (~3,400 GB/s) and DRAM-bound (~1,000) readings.

>>> notes = MarketNotes()
>>> for i, measured in enumerate([3400.0, 3300.0, 900.0]):
...     notes.note_bandwidth("RTX 4090", i, measured, 1008.0)
>>> for i, measured in enumerate([780.0, 770.0, 30.0], start=7):
...     notes.note_bandwidth("RTX 3090", i, measured, 936.0)
>>> for line in notes.lines():  # doctest: +NORMALIZE_WHITESPACE
...     print(line)
Vast's measured gpu_mem_bw is above the datasheet on 1 GPU model, 3 offers (median GB/s vs datasheet:
    RTX 4090 3300 vs 1008): a large L2 cache likely holds Vast's test; the datasheet figure is used
1 offer measures under 50% of its datasheet memory bandwidth (ids 9): a shared or faulty host is likely;
    the datasheet figure is used
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from gpu_preflight.tools.estimator.catalogue import ResolvedGpu
from gpu_preflight.tools.offers.records import Offer

BW_MODEL_HIGH = 1.25
BW_MODEL_LOW = 0.7
BW_OFFER_OUTLIER = 0.5
MAX_NAMED = 8
"""Models (or offer ids) named in one line; the count covers the rest."""


@dataclass
class MarketNotes:
    """Collects per offer while planning; :meth:`lines` writes one line per kind."""

    unknown_offers: Counter[str] = field(default_factory=Counter)
    bandwidth_gbps: dict[str, list[tuple[int, float, float]]] = field(default_factory=lambda: defaultdict(list))
    """Per GPU model: (offer id, Vast's measured, datasheet) memory bandwidth."""

    def add(self, offer: Offer, gpu: ResolvedGpu) -> None:
        if gpu.tflops_source == "vast_fp32":
            self.unknown_offers[offer.gpu_name] += 1
        elif offer.gpu_mem_bw_gbps:
            self.note_bandwidth(offer.gpu_name, offer.offer_id, offer.gpu_mem_bw_gbps, gpu.hbm_bw_gbps)

    def note_bandwidth(self, model: str, offer_id: int, measured_gbps: float, datasheet_gbps: float) -> None:
        self.bandwidth_gbps[model].append((offer_id, measured_gbps, datasheet_gbps))

    def lines(self) -> list[str]:
        out: list[str] = []
        if self.unknown_offers:
            n = sum(self.unknown_offers.values())
            out.append(f"{_count(n, 'offer')} on {_count(len(self.unknown_offers), 'GPU model')} not in the "
                       f"catalogue ({_named(self.unknown_offers)}): priced from Vast's FP32 total_flops, bf16 speed "
                       "understated")
        high: Counter[str] = Counter()
        low: Counter[str] = Counter()
        medians: dict[str, tuple[float, float]] = {}
        outliers: list[int] = []
        for name, values in self.bandwidth_gbps.items():
            measured = statistics.median(m for _, m, _ in values)
            datasheet = statistics.median(d for _, _, d in values)  # memory variants can differ
            medians[name] = (measured, datasheet)
            ratio = statistics.median(m / d for _, m, d in values)
            if ratio > BW_MODEL_HIGH:
                high[name] = len(values)
            elif ratio < BW_MODEL_LOW:
                low[name] = len(values)
            outliers += [i for i, m, d in values if m < BW_OFFER_OUTLIER * d]
        for models, where, why in ((high, "above", "a large L2 cache likely holds Vast's test"),
                                   (low, "below", "Vast's copy test reaches less of the peak on these cards")):
            if models:
                each = _first([f"{m} {medians[m][0]:.0f} vs {medians[m][1]:.0f}" for m, _ in models.most_common()])
                out.append(f"Vast's measured gpu_mem_bw is {where} the datasheet on "
                           f"{_count(len(models), 'GPU model')}, {_count(sum(models.values()), 'offer')} "
                           f"(median GB/s vs datasheet: {each}): {why}; the datasheet figure is used")
        if outliers:
            ids = ", ".join(str(i) for i in sorted(outliers)[:MAX_NAMED])
            one = len(outliers) == 1
            out.append(f"{_count(len(outliers), 'offer')} measure{'s' if one else ''} under "
                       f"{BW_OFFER_OUTLIER:.0%} of {'its' if one else 'their'} datasheet memory bandwidth "
                       f"(ids {ids}{', ...' if len(outliers) > MAX_NAMED else ''}): a shared or faulty host is likely; "
                       "the datasheet figure is used")
        return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _named(counts: Counter[str]) -> str:
    """``"A 3, B 1"``, most common first."""
    return _first([f"{name} {n}" for name, n in counts.most_common()])


def _first(items: list[str]) -> str:
    """The first MAX_NAMED items, then how many more."""
    more = f", +{len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else ""
    return ", ".join(items[:MAX_NAMED]) + more
