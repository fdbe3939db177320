"""MCP server and the ``preflight`` CLI: thin wiring over :mod:`gpu_preflight.tools`."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gpu-preflight")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
