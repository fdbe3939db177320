"""The domain library, one room per capability; plain Python, no MCP import.

- :mod:`~gpu_preflight.tools.estimator`: run spec, model shapes, GPU catalogue, memory, throughput, time and cost.
- :mod:`~gpu_preflight.tools.offers`: Vast offers in, live search, the option table over real offers.
- :mod:`~gpu_preflight.tools.telemetry`: nvidia-smi logs, training logs, NVML, windows, triggers, keep/switch/kill.
- :mod:`~gpu_preflight.tools.dispatch`: confirmed tmux dispatch, launches, heartbeats.
- :mod:`~gpu_preflight.tools.common`: the plumbing every room shares (SQLite, state dir, errors, markdown).
"""
