"""Sample NVML on a background thread at a fixed interval, and stop cleanly.

Why a thread: the validation loop wants a reading every 10 s (the playbook's ``-l 10``) while
the caller does other work. The sampler opens one NVML session for its whole life (init once),
keeps the most recent readings in a bounded buffer, and stops within one wait when asked: the
wait is an ``Event.wait`` rather than a sleep, so :meth:`NvmlSampler.stop` never waits out an
interval. A lost GPU ends the sampling and is kept in :attr:`NvmlSampler.last_error`, since
nothing further can be read and the run on it is dead.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from gpu_preflight.tools.common.errors import PreflightError

from .nvml import Nvml, NvmlGpuReading
from .nvml_errors import NvmlAnswer, NvmlUnavailable, explain_nvml_error

DEFAULT_INTERVAL_S = 10.0
MIN_INTERVAL_S = 1.0  # NVML's counters average over 1/6 s to 1 s: faster sampling reads the same window twice
DEFAULT_MAX_READINGS = 100_000


class NvmlSampler:
    """Background NVML sampling; :meth:`start` raises :class:`NvmlUnavailable` when there is no GPU."""

    def __init__(
        self,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        max_readings: int = DEFAULT_MAX_READINGS,
        on_sample: Callable[[list[NvmlGpuReading]], None] | None = None,
    ) -> None:
        if not interval_s >= MIN_INTERVAL_S:
            raise PreflightError("interval_s", interval_s, f"seconds between samples, >= {MIN_INTERVAL_S:g}")
        if max_readings < 1:
            raise PreflightError("max_readings", max_readings, "a positive count")
        self.interval_s = interval_s
        self._on_sample = on_sample
        self._readings: deque[NvmlGpuReading] = deque(maxlen=max_readings)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml: Nvml | None = None
        self.last_error: NvmlAnswer | None = None

    def __enter__(self) -> NvmlSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the sampling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Open NVML (raising its answer if it cannot) and start sampling, first reading at once."""
        if self.running:
            return
        self._nvml = Nvml()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._nvml is not None
        while True:
            try:
                batch = self._nvml.sample()
            except NvmlUnavailable as exc:
                self.last_error = exc.answer
                return
            except Exception as exc:  # one failed reading must not kill the watcher
                self.last_error = explain_nvml_error(exc)
            else:
                with self._lock:
                    self._readings.extend(batch)
                if self._on_sample is not None:
                    self._on_sample(batch)
            if self._stop.wait(self.interval_s):
                return

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (within one NVML sample) and close the session."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None

    def readings(self) -> list[NvmlGpuReading]:
        """A copy of the readings kept so far, oldest first."""
        with self._lock:
            return list(self._readings)
