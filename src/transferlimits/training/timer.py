"""Wall seconds and device seconds of the timed sections of a run (fine-tuning epochs, pre-training steps).

:class:`Timer` was part of :mod:`.loop`, which re-exports it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

import torch

__all__ = ["Timer"]


class Timer:
    """Wall seconds and device seconds of timed sections.

    On CUDA, device seconds come from CUDA events around each section; on CPU they equal the section's
    wall seconds. ``wall`` counts only the timed sections; ``elapsed()`` is the time since creation.

    Example::

        timer = Timer(device)
        with timer.section():
            train_step()
        timer.wall, timer.device_seconds
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.wall = 0.0
        self.device_seconds = 0.0
        self._start = time.perf_counter()

    @contextlib.contextmanager
    def section(self) -> Iterator[None]:
        cuda = self.device.type == "cuda" and torch.cuda.is_available()
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                end.record()
                end.synchronize()
                self.device_seconds += begin.elapsed_time(end) / 1000.0
            dt = time.perf_counter() - t0
            self.wall += dt
            if not cuda:
                self.device_seconds += dt

    def elapsed(self) -> float:
        """Wall seconds since the timer was created."""
        return time.perf_counter() - self._start
