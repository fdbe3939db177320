"""Clock-event ("throttle") reason bits, named, so a hex mask becomes evidence a person can read.

NVML and ``nvidia-smi --query-gpu=clocks_event_reasons.active`` report why clocks are below
maximum as a bitmask. Some bits are harmless (``gpu_idle``, ``applications_clocks_setting``);
the slowdown bits are infrastructure problems the job cannot fix (a hot or power-starved host),
which is why the bottleneck classifier looks for them.

>>> decode_throttle_mask(0x44)
['sw_power_cap', 'hw_thermal_slowdown']
>>> decode_throttle_mask(0)
[]
"""

from __future__ import annotations

# Values from nvml.h (nvmlClocksThrottleReason*), identical in nvidia-ml-py's pynvml module.
THROTTLE_BITS: tuple[tuple[int, str], ...] = (
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
    (0x200, "board_limit"),
    (0x400, "reliability"),
)

# Reasons that mean the host, not the training job, is holding the GPU back.
INFRA_THROTTLE_REASONS: frozenset[str] = frozenset(
    {"hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown", "board_limit"}
)


def decode_throttle_mask(mask: int) -> list[str]:
    """Names of the set bits, lowest bit first; unknown bits are kept as ``bit_0x...``."""
    names = [name for bit, name in THROTTLE_BITS if mask & bit]
    known = 0
    for bit, _ in THROTTLE_BITS:
        known |= bit
    rest = mask & ~known
    bit = 1
    while rest:
        if rest & bit:
            names.append(f"bit_{bit:#x}")
            rest &= ~bit
        bit <<= 1
    return names
