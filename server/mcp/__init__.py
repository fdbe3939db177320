"""The MCP door: one module per capability, each exposing ``register(mcp)`` for :func:`..app.create_server`.

``estimate`` (estimate_run, gpus, models), ``offers`` (plan_options), ``checklist`` (checklist_* and gate_check),
``telemetry`` (ingest, run_check, run_plot, calibrate, gpu_snapshot), ``dispatch`` (dispatch, heartbeat, launch_run,
panes).
The CLI door for the same capability is the module of the same name in :mod:`gpu_preflight.server.cli`.
"""
