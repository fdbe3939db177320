"""Domain library: estimator, GPU catalogue, offers, telemetry, dispatch. Plain Python, no MCP import."""
