"""Text plumbing shared by every parser: line splitting, ANSI stripping, forgiving numbers.

Real logs are messier than their formats: tqdm redraws a bar with ``\\r`` so one "line" holds
hundreds of states, torchtitan colours its fields on a TTY, wrappers prefix ranks (``0:``,
``[rank0]:``), and numbers carry thousands separators (``5,856``) or come out as ``nan``.
Doing this once here keeps each format parser to its own layout.

>>> list(split_segments("a\\r b\\n\\nc\\r\\n"))
['a', ' b', 'c']
>>> parse_number("529,882"), parse_number("nan") != parse_number("nan"), parse_number("[N/A]")
(529882.0, True, None)
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Generic, TypeVar

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SEGMENT_SPLIT = re.compile(r"\r\n|\r|\n")
_NUMBER = re.compile(r"^[+-]?(\d[\d,]*\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_MISSING = frozenset({"", "-", "n/a", "[n/a]", "[not supported]", "not supported", "[unknown error]", "none", "?"})

T = TypeVar("T")


def split_segments(text: str) -> Iterator[str]:
    """Non-blank segments of ``text``, split at ``\\n``, ``\\r\\n`` and lone ``\\r`` (tqdm redraws)."""
    for segment in _SEGMENT_SPLIT.split(text):
        if segment.strip():
            yield segment


def strip_ansi(text: str) -> str:
    """Remove terminal colour and cursor codes (torchtitan colours its metrics on a TTY)."""
    return _ANSI.sub("", text)


def parse_number(token: str) -> float | None:
    """A float from a log token; ``None`` for the spellings of "absent"; ``nan``/``inf`` kept.

    Thousands separators are removed. Raises ``ValueError`` for text that is neither a number
    nor an absent marker, so a caller can count the line as malformed.
    """
    cleaned = token.strip()
    if cleaned.lower() in _MISSING:
        return None
    lowered = cleaned.lower()
    if lowered in {"nan", "+nan", "-nan"}:
        return math.nan
    if lowered in {"inf", "+inf", "infinity"}:
        return math.inf
    if lowered in {"-inf", "-infinity"}:
        return -math.inf
    if not _NUMBER.match(cleaned):
        raise ValueError(f"not a number: {token!r}")
    return float(cleaned.replace(",", ""))


def finite_or_none(value: float | None) -> float | None:
    """``value`` unless it is NaN or infinite; used where a sentinel must not become a reading."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


class StreamParser(ABC, Generic[T]):
    """A parser fed one segment at a time, so ``ingest`` and :class:`LogTail` share one code path.

    Multi-line records (Composer's ``[batch=N/M]`` blocks, pretty-printed Hugging Face dicts)
    are held until complete; :meth:`finish` flushes what is still open at end of input.
    """

    format: str = ""

    def __init__(self) -> None:
        self.skipped_lines = 0
        self.duplicate_lines = 0

    @abstractmethod
    def feed(self, segment: str) -> list[T]:
        """Consume one non-blank segment; return the samples it completed."""

    def finish(self) -> list[T]:
        """Flush a record still open at end of input (none by default)."""
        return []

    def feed_text(self, text: str) -> list[T]:
        """Feed every segment of ``text`` and finish; the whole-file path."""
        out: list[T] = []
        for segment in split_segments(text):
            out.extend(self.feed(segment))
        out.extend(self.finish())
        return out
