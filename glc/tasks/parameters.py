"""Luigi parameter types and value checks shared by glc's tasks.

* :class:`SiteKindsParameter`: site kinds (``pa_train,po``) normalised to one canonical string, so equal sets make
  one task id;
* :class:`FloatParameter`, :class:`OptionalFloatParameter`: floats that are always ``float`` (``50`` and ``50.0``
  make one task id);
* :func:`check_kinds`, :func:`check_choice`, :func:`check_positive`, :func:`check_count`: raise a ``ValueError``
  naming the parameter, what was expected and the value given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import luigi

from glc.etl.neighbours import SITE_KINDS

__all__ = [
    "FloatParameter",
    "OptionalFloatParameter",
    "SiteKindsParameter",
    "check_choice",
    "check_count",
    "check_kinds",
    "check_positive",
]


class SiteKindsParameter(luigi.Parameter):
    """Site kinds as a comma-separated string (``pa_train,po``) or a list; normalised to a canonical string.

    Known kinds come first in :data:`glc.etl.neighbours.SITE_KINDS` order, duplicates are dropped and unknown names
    are kept (last, sorted) so that the task can reject them with a message naming the parameter.
    """

    def normalize(self, x: Any) -> str:
        """Canonical ``"a,b"`` string (see the class docstring)."""
        items = x.split(",") if isinstance(x, str) else [str(v) for v in (x or ())]
        names = {s.strip() for s in items if s.strip()}
        return ",".join([k for k in SITE_KINDS if k in names] + sorted(names - set(SITE_KINDS)))


class FloatParameter(luigi.FloatParameter):
    """A float parameter whose value is always a ``float`` (so ``radius_km=50`` and ``50.0`` are one task id)."""

    def normalize(self, x: Any) -> float:
        """``float(x)``."""
        return float(x)


class OptionalFloatParameter(luigi.OptionalFloatParameter):
    """An optional float parameter normalised to ``float`` (``None`` stays ``None``)."""

    def normalize(self, x: Any) -> float | None:
        """``None`` or ``float(x)``."""
        return None if x is None else float(x)


def check_kinds(name: str, value: str, allowed: Sequence[str]) -> tuple[str, ...]:
    """Split a normalised kinds string; raise ValueError naming the parameter unless it is a non-empty subset."""
    kinds = tuple(v for v in value.split(",") if v)
    bad = [v for v in kinds if v not in allowed]
    if bad or not kinds:
        raise ValueError(
            f"{name}={value!r}: expected a non-empty comma-separated subset of {', '.join(allowed)}"
            + (f" (unknown: {', '.join(bad)})" if bad else "")
        )
    return kinds


def check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")


def check_positive(name: str, value: float, unit: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r}: expected a positive number of {unit}")


def check_count(name: str, value: int, minimum: int) -> None:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name}={value!r}: expected an integer >= {minimum}")
