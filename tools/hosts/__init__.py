"""Remote hosts reached over SSH (issue 17, part 1): the registry, the runner, fault statuses, ``hosts check``.

Public API (plain functions and pydantic models; the CLI and MCP layers wrap these):

* :func:`make_host`, :func:`add_host`, :func:`list_hosts`, :func:`get_host`, :func:`remove_host` -> :class:`Host`
* :func:`run_remote` / :func:`call` (one ssh call, local deadline) -> ``(rc, stdout, stderr)`` / :class:`RemoteCall`
* :func:`classify` -> :class:`Fault` (``host_unreachable``, ``auth_refused``, ``host_key_changed``, ...)
* :func:`check_host` -> :class:`HostCheck`; :func:`import_vast_file` -> :class:`VastImport`
"""

from __future__ import annotations

from gpu_preflight.tools.hosts.check import GpuInfo, HostCheck, check, check_host
from gpu_preflight.tools.hosts.faults import Fault, HostStatus, classify
from gpu_preflight.tools.hosts.registry import Host, add_host, get_host, list_hosts, make_host, remove_host
from gpu_preflight.tools.hosts.ssh import DEFAULT_TIMEOUT_S, RemoteCall, call, close_master, run_remote
from gpu_preflight.tools.hosts.vast import VastImport, hosts_from_vast, import_vast_file

__all__ = [
    "DEFAULT_TIMEOUT_S", "Fault", "GpuInfo", "Host", "HostCheck", "HostStatus", "RemoteCall", "VastImport",
    "add_host", "call", "check", "check_host", "classify", "close_master", "get_host", "hosts_from_vast",
    "import_vast_file", "list_hosts", "make_host", "remove_host", "run_remote",
]
