"""Where an ETL job's time goes: per-phase seconds inside the executors' Python and on the driver (profiling only).

Every per-survey feature job (:mod:`glc.etl.raster_tiles`, :mod:`glc.etl.patches`, :mod:`glc.etl.cubes`) runs its
partition function under a :class:`PhaseClock`. The clock splits the Python worker's wall time into laps:

* ``input``: waiting for the next Arrow batch from the JVM (JVM -> Python transfer, Spark's upstream operators);
* the job's own phases (``open``: opening files / rasters; ``read``: file read + decode; ``transform``: fill, DCT;
  ``arrow``: building the output Arrow batch);
* ``output``: from a ``yield`` until the worker asks for more, i.e. Arrow serialisation of the batch and the
  Python -> JVM transfer.

The laps of every task are summed into a Spark accumulator (:class:`DictSum`), read on the driver after the job.
Accumulator values of a *transformation* may double-count retried tasks, so they are used for the profile only, never
for a count that decides anything (counts come from aggregations over the data).

On the driver, :class:`DriverPhases` times the jobs of :func:`glc.etl.artifact.write_feature_artifact` (compute +
counts, the sorted ``data/`` write with its parquet encoding, quarantine, summaries).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark import Accumulator
    from pyspark.sql import SparkSession

__all__ = ["DictSum", "DriverPhases", "PhaseClock", "phase_accumulator", "python_profile"]


class DictSum:
    """Spark ``AccumulatorParam`` summing ``{phase: seconds}`` dicts key by key (duck-typed, picklable)."""

    def zero(self, value: dict[str, float]) -> dict[str, float]:
        """The empty dict."""
        return {}

    def addInPlace(self, a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        """``a += b`` key by key."""
        for k, v in b.items():
            a[k] = a.get(k, 0.0) + float(v)
        return a


def phase_accumulator(spark: SparkSession) -> Accumulator:
    """A fresh ``{phase: seconds}`` accumulator for one job's partition function."""
    return spark.sparkContext.accumulator({}, DictSum())  # type: ignore[arg-type]


class PhaseClock:
    """Lap timer of one partition function: ``lap(phase)`` charges the time since the previous lap to ``phase``.

    Args:
        acc: the accumulator the laps are added to by :meth:`flush` (``None``: keep them local, e.g. in tests).
    """

    def __init__(self, acc: Any = None) -> None:
        self.acc = acc
        self.seconds: dict[str, float] = defaultdict(float)
        self.rows = 0
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        """Charge the time since the previous lap (or the clock's creation) to ``phase``."""
        now = time.perf_counter()
        self.seconds[phase] += now - self._last
        self._last = now

    def batches(self, it: Iterator[Any]) -> Iterator[Any]:
        """Iterate ``it``, charging the wait for each item to ``input`` and the consumer's time after a ``yield``
        (serialisation and transfer of what the caller yielded meanwhile) to ``output``."""
        while True:
            self.lap("output")
            try:
                item = next(it)
            except StopIteration:
                self.lap("input")
                return
            self.lap("input")
            yield item

    def emit(self, batch: Any) -> Iterator[Any]:
        """``yield from clock.emit(batch)``: charge the time so far to ``arrow`` (building the batch), yield it, then
        charge the consumer's time (Arrow serialisation, Python -> JVM transfer) to ``output``."""
        self.lap("arrow")
        yield batch
        self.lap("output")

    def flush(self) -> None:
        """Add the laps (and the row count) to the accumulator; call once, when the partition is done."""
        if self.acc is not None:
            self.acc.add({**self.seconds, "rows": float(self.rows)})


class DriverPhases:
    """Wall seconds of named driver-side phases (each phase runs one or more Spark jobs)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as ``name`` (added to any earlier time of the same name)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def rounded(self) -> dict[str, float]:
        """The phases, seconds rounded to ms."""
        return {k: round(v, 3) for k, v in self.seconds.items()}


def python_profile(acc: Accumulator | None) -> dict[str, float]:
    """The summed laps of an accumulator (rounded to ms; ``rows`` as counted by the partition functions)."""
    if acc is None:
        return {}
    return {k: (int(v) if k == "rows" else round(v, 3)) for k, v in sorted(acc.value.items())}
