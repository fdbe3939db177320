"""Where offers come from for a plan: a recorded file, a live Vast search, or the bundled snapshot.

One function so the CLI and the MCP tools cannot disagree about precedence or the disk size a
live search is priced for.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.estimator.spec import RunSpec
from gpu_preflight.tools.offers.records import OfferSet, load_offers

SNAPSHOT_NAME = "data/offers_snapshot.json"


def snapshot_path() -> Path:
    """The bundled snapshot of real offer records (see tests/fixtures/vast/SOURCES.md)."""
    return Path(str(resources.files("gpu_preflight.tools.offers").joinpath(SNAPSHOT_NAME)))


def planned_disk_gb(spec: RunSpec) -> float:
    """Disk the run needs (playbook 1.3); independent of the GPU, so any catalogue GPU will do."""
    from gpu_preflight.tools.estimator.estimate import estimate_run

    return estimate_run(spec, "RTX 4090").memory.disk.required_gb


def offers_for(spec: RunSpec | None, *, offers_file: str | None = None, live_query: str | None = None,
               storage_gb: float | None = None, limit: int = 64, field: str = "offers_file") -> OfferSet:
    """``field`` is what the caller calls the file argument (``offers_file`` in MCP, ``--offers`` in the CLI)."""
    if storage_gb is not None and not (isinstance(storage_gb, int | float) and 0 < storage_gb <= 100_000):
        raise PreflightError("storage_gb", storage_gb, "a disk size in GB, > 0 and <= 100000")
    if offers_file and live_query:
        raise PreflightError(field, "both a file and a live query", f"one of {field} / live_query")
    if live_query:
        from gpu_preflight.tools.offers.live import search_live

        disk = storage_gb if storage_gb is not None else (planned_disk_gb(spec) if spec is not None else 50.0)
        return search_live(live_query, storage_gb=max(1.0, round(disk)), limit=limit)
    try:
        if not offers_file:
            return load_offers(snapshot_path()).model_copy(update={"bundled_sample": True})
        return load_offers(offers_file)
    except PreflightError as exc:
        if exc.field != "offers":
            raise
        raise PreflightError(field, exc.got, exc.allowed, exc.hint) from None
