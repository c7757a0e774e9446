"""The compass table's rows, and how a measurement is summarised honestly on a shared, noisy machine: the median,
the spread (min-max) of the runs, and the load average while the row was measured."""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field

#: A row measured while the 1-minute load average was above this (per CPU) is marked as measured under load.
BUSY_PER_CPU = 0.5


@dataclass(frozen=True)
class Row:
    name: str
    measured: str
    baseline: str
    ratio: float | None
    target: float | None
    load: float | None = None
    """The highest 1-minute load average seen while the row was measured."""

    @property
    def busy(self) -> bool:
        return self.load is not None and self.load > BUSY_PER_CPU * (os.cpu_count() or 1)

    @property
    def verdict(self) -> str:
        if self.measured == "error":
            return "FAIL"
        if self.target is None or self.ratio is None:
            return "info"
        return ("pass" if self.ratio <= self.target else "FAIL") + (" (load)" if self.busy else "")

    def cells(self) -> list[str]:
        return [self.name, self.measured, self.baseline, "" if self.ratio is None else f"{self.ratio:.2f}",
                "" if self.target is None else f"<= {self.target:g}", "" if self.load is None else f"{self.load:.1f}",
                self.verdict]


HEADER = ["what", "measured (median, min-max)", "baseline (median, min-max)", "ratio", "target", "load", "result"]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s"


def mib(size: float) -> str:
    return f"{size / (1 << 20):.0f} MiB"


def spread(values: list[float], unit=ms) -> str:
    """``median (min-max)`` in ``unit``; a single run is just its value."""
    if len(values) == 1:
        return unit(values[0])
    return f"{unit(statistics.median(values))} ({unit(min(values)).split()[0]}-{unit(max(values))})"


@dataclass
class Load:
    """The load average sampled at the start and end of a measurement (and whenever :meth:`sample` is called)."""

    samples: list[float] = field(default_factory=list)

    def sample(self) -> None:
        self.samples.append(os.getloadavg()[0])

    @property
    def peak(self) -> float | None:
        return max(self.samples) if self.samples else None


@contextlib.contextmanager
def load_during() -> Iterator[Load]:
    load = Load()
    load.sample()
    try:
        yield load
    finally:
        load.sample()


def with_load(rows: list[Row], load: Load) -> list[Row]:
    return [Row(r.name, r.measured, r.baseline, r.ratio, r.target, load.peak if r.load is None else r.load)
            for r in rows]
