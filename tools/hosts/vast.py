"""``hosts import-vast``: register each running Vast instance from ``vastai show instances --raw``.

The fields, from the vast CLI's source (``show__instances`` returns the API's ``instances`` rows as they
are; its table shows ``id`` and ``actual_status``) and a recorded ``show instance`` record
(``ssh_host: "ssh2281.vast.ai"``, ``ssh_port: 10882``): each row has ``id``, ``actual_status``
(``running`` once the box is up), ``ssh_host`` and ``ssh_port``. Vast logs in as ``root`` (its own
instructions: ``ssh -p PORT root@HOST``), so the destination is ``root@<ssh_host>``. The host is named by
the instance id. A row that is not running or has no SSH address yet is skipped with the reason.

Both shapes are read: the CLI's list of rows and the API's ``{"instances": [...]}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gpu_preflight.tools.common.errors import PreflightError, is_existing_file

from .registry import Host, add_host, make_host

MAX_FILE_BYTES = 20_000_000


class VastImport(BaseModel):
    added: list[Host]
    skipped: list[str]


def vast_rows(data: Any) -> list[dict[str, Any]]:
    """The instance rows of ``show instances --raw`` (a list) or of the API answer (``{"instances": ...}``)."""
    if isinstance(data, dict) and "instances" in data:
        data = data["instances"]
    if isinstance(data, dict):  # `show instance ID --raw`: one row
        data = [data]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise PreflightError("file", "(JSON)", "the JSON of `vastai show instances --raw`: a list of instance objects")
    return data


def hosts_from_vast(data: Any) -> VastImport:
    """The hosts to register (not yet registered) and why the other rows were skipped.

    >>> rows = [{"id": 883, "actual_status": "running", "ssh_host": "ssh2281.vast.ai", "ssh_port": 10882},
    ...         {"id": 884, "actual_status": "loading", "ssh_host": None, "ssh_port": None}]
    >>> found = hosts_from_vast(rows)
    >>> [(h.name, h.destination, h.port) for h in found.added], found.skipped
    ([('883', 'root@ssh2281.vast.ai', 10882)], ['884: actual_status is loading, not running'])
    """
    added: list[Host] = []
    skipped: list[str] = []
    for row in vast_rows(data):
        ident = str(row.get("id", "?"))
        status = row.get("actual_status")
        if status != "running":
            skipped.append(f"{ident}: actual_status is {status}, not running")
            continue
        host, port = row.get("ssh_host"), row.get("ssh_port")
        if not isinstance(host, str) or not host or not isinstance(port, int):
            skipped.append(f"{ident}: no ssh_host/ssh_port yet")
            continue
        try:
            added.append(make_host(ident, f"root@{host}", port=port))
        except PreflightError as exc:
            skipped.append(f"{ident}: {exc.one_line()}")
    return VastImport(added=added, skipped=skipped)


def import_vast_file(path: str) -> VastImport:
    """Read ``path`` (the saved ``--raw`` output) and register every running instance in it."""
    if not is_existing_file(path):
        raise PreflightError("file", path, "a regular file holding `vastai show instances --raw` output")
    if Path(path).stat().st_size > MAX_FILE_BYTES:
        raise PreflightError("file", path, f"at most {MAX_FILE_BYTES // 1_000_000} MB")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        raise PreflightError("file", path, "JSON (`vastai show instances --raw` output)",
                             f"not JSON at line {exc.lineno}") from None
    found = hosts_from_vast(data)
    for host in found.added:
        add_host(host)
    return found
