"""The shared base of every training-log parser: ANSI stripping and per-step de-duplication.

Why de-duplicate here: every rank of a multi-GPU job prints the same metrics line and tqdm
redraws its bar; counting each copy would weight medians by the number of ranks. A record that
repeats the previous record's (kind, epoch, step) is dropped and counted in ``duplicate_lines``.
"""

from __future__ import annotations

from .lines import StreamParser, strip_ansi
from .models import LogSample


class LogParser(StreamParser[LogSample]):
    """Base: ANSI stripping and per-step de-duplication shared by every log family."""

    def __init__(self) -> None:
        super().__init__()
        self._last_key: tuple[str, float | None, int] | None = None

    def feed(self, segment: str) -> list[LogSample]:
        return self.feed_clean(strip_ansi(segment))

    def feed_clean(self, segment: str) -> list[LogSample]:
        """Consume one ANSI-free segment (subclasses implement)."""
        raise NotImplementedError

    def _emit(self, sample: LogSample) -> list[LogSample]:
        if sample.step is None:
            return [sample]
        key = (sample.kind, sample.epoch, sample.step)
        if key == self._last_key:
            self.duplicate_lines += 1
            return []
        self._last_key = key
        return [sample]
