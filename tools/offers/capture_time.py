"""Times of offer captures: parsing them, and saying how old a table's offers are.

Every option table states its offers' age because Vast prices move and offers vanish within minutes.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

CapturedAtSource = Literal["file", "records", "file_mtime", "live"]


def age_text(captured_at: datetime | None, now: datetime, *, source: CapturedAtSource | None = None) -> str:
    """How old the offers are, for every table: prices move and offers vanish within minutes.
    Naive datetimes are taken as UTC."""
    if captured_at is None:
        return "capture time unknown"
    captured_at, now = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (captured_at, now))
    stamp = captured_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    seconds = (now - captured_at).total_seconds()
    if seconds < -60:
        return f"captured in the future at {stamp} (clock skew?)"
    ago = _duration_text(max(seconds, 0.0))
    if source == "file_mtime":
        return f"file saved {ago} ago at {stamp} (capture time not recorded; offers may be older)"
    return f"captured {ago} ago at {stamp}"


def _duration_text(seconds: float) -> str:
    for unit, size, limit in (("s", 1, 90), ("min", 60, 90 * 60), ("h", 3600, 48 * 3600)):
        if seconds < limit:
            return f"{round(seconds / size)} {unit}"
    return f"{round(seconds / 86400)} d"


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 string or epoch seconds, as a UTC time; anything else -> None."""
    try:
        if isinstance(value, str) and value.strip():
            when = datetime.fromisoformat(value.strip())
            return when if when.tzinfo else when.replace(tzinfo=UTC)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None
