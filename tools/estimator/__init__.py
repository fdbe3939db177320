"""The estimator: one run spec on one GPU, from memory fit to time and cost (pre-estimation §0-§4, run-calibrated
Stages A, C and D).

Public: :func:`estimate.estimate_run` (the whole estimate), :func:`spec.parse_spec` / :func:`spec.load_spec_file`,
:func:`modelshape.resolve_model`, :func:`catalogue.lookup_gpu` / :func:`catalogue.resolve_gpu`,
:func:`memory_gpu.estimate_gpu_memory` (§1.1), :func:`memory_host.estimate_cpu_memory` / ``estimate_disk`` /
``estimate_network`` (§1.2-1.3), :func:`throughput.estimate_throughput` (§2.1-2.2), :func:`costing.time_and_cost`
and :func:`costing.setup_tax` (§3), :func:`optimizations.optimization_menu` (§4), :func:`render.estimate_markdown`.
Submodules are imported on use, not here, so a cold ``preflight serve`` pays only for what it calls.
"""
