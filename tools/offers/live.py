"""Live Vast.ai offer search through the official ``vastai`` SDK (optional extra), with a local cache.

Why a cache: Vast rate-limits search (the OpenAPI says 10 requests/minute per IP, and a daily quota
answers 429 ``search_quota_exceeded`` until UTC midnight), and an agent re-planning a run asks the same
question many times. Results are stored as JSON with their capture time in the state directory and
reused while younger than a TTL; every table then says how old they are.
Why the SDK is optional: ``vastai`` pins heavy dependencies exactly; planning from a recorded file must
work without it. Tests exercise key resolution and the cache only; nothing here is called on the network
in tests.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.state import state_dir
from gpu_preflight.tools.offers.records import OfferSet, age_text, offers_from_json, parse_time

CACHE_DIR_NAME = "offers_cache"
DEFAULT_TTL_S = 600.0
MAX_LIMIT = 3000  # dstack's gpuhunt asks /bundles/ for 3000 offers at once; more is not a sane search
SEARCH_TYPES = ("on-demand", "reserved", "bid", "interruptible")
_ORDER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*[+-]?(,[A-Za-z_][A-Za-z0-9_]*[+-]?)*$")
_KEY_HOWTO = ("set VAST_API_KEY, or run `vastai set api-key KEY` (writes ~/.config/vastai/vast_api_key), "
              "or plan from a recorded file with --offers FILE")


def api_key_paths() -> list[Path]:
    """Where the vastai CLI keeps its key, in the SDK's own order (``vastai/_base.py``)."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    config = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return [config / "vastai" / "vast_api_key", Path.home() / ".vast_api_key"]


def resolve_api_key() -> tuple[str, str] | None:
    """``(key, where it came from)``: ``VAST_API_KEY``, then the key files; None when there is none."""
    key = os.environ.get("VAST_API_KEY", "").strip()
    if key:
        return key, "VAST_API_KEY"
    for path in api_key_paths():
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            return text, str(path)
    return None


def cache_path(query: str, *, storage_gb: float, type: str, order: str, limit: int) -> Path:
    """The cache file for one search; every parameter that changes Vast's answer is in the key."""
    key = json.dumps([query, float(storage_gb), type, order, limit])
    name = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return state_dir() / CACHE_DIR_NAME / f"{name}.json"


def search_live(query: str, *, storage_gb: float, limit: int = 64, order: str = "dph_total",
                type: str = "on-demand", max_age_s: float = DEFAULT_TTL_S,
                now: datetime | None = None) -> OfferSet:
    """Search Vast offers, priced for ``storage_gb`` of disk, reusing a cached answer younger than ``max_age_s``.

    ``storage_gb`` is passed to Vast as ``storage`` so ``dph_total`` already includes the run's disk.
    ``type`` ``bid``/``interruptible`` marks every offer interruptible.
    """
    _check_args(query, storage_gb, limit, order, type, max_age_s)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    path = cache_path(query, storage_gb=storage_gb, type=type, order=order, limit=limit)
    cached = _read_cache(path)
    if cached is not None and 0 <= (now - cached[0]).total_seconds() < max_age_s:
        return _offer_set(cached[1], query, path, type)
    stale = "" if cached is None else f"; a cached answer {age_text(cached[0], now)} is in {path}"
    found = resolve_api_key()
    if found is None:
        raise PreflightError("Vast API key", "(none found)", _KEY_HOWTO, stale.lstrip("; "))
    try:
        from vastai import VastAI  # type: ignore[import-not-found,import-untyped,unused-ignore]  # optional extra
    except ImportError:
        raise PreflightError("live search", "vastai not installed", 'pip install "gpu-preflight[vast]"',
                             "or plan from a recorded file with --offers FILE") from None
    try:
        rows: Any = VastAI(api_key=found[0]).search_offers(query=query, type=type, order=order, limit=limit,
                                                           storage=storage_gb)
    except Exception as exc:  # SDK raises RuntimeError/ValueError/requests errors; show one line
        first = (str(exc).strip().splitlines() or [type_name(exc)])[0]
        raise PreflightError("live search", f"{type_name(exc)}: {first}",
                             "a Vast search that succeeds (check the query syntax, the key and the rate limit)",
                             stale.lstrip("; ")) from None
    if isinstance(rows, str):
        rows = _json_or_error(rows)
    if isinstance(rows, dict) and isinstance(rows.get("offers"), list):
        rows = rows["offers"]
    if not isinstance(rows, list):
        raise PreflightError("live search", f"an answer of type {type_name(rows)}", "a list of offers")
    if not rows:
        raise PreflightError("live search", query, "a query that matches at least one offer",
                             "loosen the filters (note gpu_ram>=24 means 24000 MiB in Vast queries)")
    record = {"captured_at": now.isoformat(), "query": query, "storage_gb": storage_gb, "type": type,
              "order": order, "limit": limit, "offers": rows}
    _write_cache(path, record)
    return _offer_set(record, query, path, type)


def type_name(value: object) -> str:
    return type(value).__name__


def _check_args(query: str, storage_gb: float, limit: int, order: str, type: str, max_age_s: float) -> None:
    """Refuse bad parameters before spending one of the rate-limited searches."""
    if not isinstance(query, str):
        raise PreflightError("query", query, "a Vast query string such as 'gpu_name=RTX_4090 num_gpus=1'")
    if isinstance(storage_gb, bool) or not isinstance(storage_gb, int | float) or not math.isfinite(storage_gb) \
            or storage_gb <= 0:
        raise PreflightError("storage_gb", storage_gb, "a finite number of GB > 0 (the run's planned disk)")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise PreflightError("limit", limit, f"an integer from 1 to {MAX_LIMIT}")
    if not isinstance(order, str) or not _ORDER_RE.match(order):
        raise PreflightError("order", order, "comma-separated Vast fields, each optionally ending in - or +")
    if type not in SEARCH_TYPES:
        raise PreflightError("type", type, " | ".join(SEARCH_TYPES))
    if isinstance(max_age_s, bool) or not isinstance(max_age_s, int | float) or not max_age_s >= 0:
        raise PreflightError("max_age_s", max_age_s, "a number of seconds >= 0 (0 = always search)")


def _read_cache(path: Path) -> tuple[datetime, dict[str, Any]] | None:
    """A cached answer and its capture time; a missing or damaged cache is a cache miss, never an error."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("offers"), list):
        return None
    when = parse_time(record.get("captured_at"))
    return (when, record) if when is not None else None


def _write_cache(path: Path, record: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so a concurrent reader never sees half a file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _offer_set(record: dict[str, Any], query: str, path: Path, type: str) -> OfferSet:
    offers = offers_from_json(record, source=str(path), interruptible=type in ("bid", "interruptible"))
    return offers.model_copy(update={"captured_at_source": "live", "source": f"vast search {query!r} ({path})"})


def _json_or_error(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise PreflightError("live search", text, "a JSON list of offers from the vastai SDK") from None
