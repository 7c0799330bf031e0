"""The shared Luigi parameter types normalise equal values to one task id; the checks name the parameter."""

from __future__ import annotations

import pytest

from glc.tasks.parameters import (
    FloatParameter,
    OptionalFloatParameter,
    SiteKindsParameter,
    check_choice,
    check_count,
    check_kinds,
    check_positive,
)


def test_site_kinds_are_canonical_known_first_unknown_last() -> None:
    p = SiteKindsParameter()
    assert p.normalize("po, pa_train,po") == p.normalize(["pa_train", "po"]) == "pa_train,po"
    assert p.normalize("zz,pa_test,aa") == "pa_test,aa,zz"
    assert check_kinds("sources", "pa_train,po", ("pa_train", "pa_test", "po")) == ("pa_train", "po")
    with pytest.raises(ValueError, match=r"sources='pa_test,aa': .*unknown: aa"):
        check_kinds("sources", "pa_test,aa", ("pa_train", "pa_test"))
    with pytest.raises(ValueError, match="non-empty"):
        check_kinds("sources", "", ("pa_train",))


def test_floats_are_floats_so_50_and_50_0_are_one_task() -> None:
    assert FloatParameter().normalize(50) == 50.0 and isinstance(FloatParameter().normalize(50), float)
    assert OptionalFloatParameter().normalize(None) is None and OptionalFloatParameter().normalize(2) == 2.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: check_choice("method", "fast", ("exact", "lsh")), r"method='fast': expected one of exact, lsh"),
        (lambda: check_positive("radius_km", float("nan"), "km"), r"radius_km=nan: expected a positive number of km"),
        (lambda: check_positive("radius_km", 0.0, "km"), "radius_km=0.0"),
        (lambda: check_count("k", 2.5, 1), r"k=2.5: expected an integer >= 1"),
        (lambda: check_count("k", 0, 1), r"k=0"),
    ],
)
def test_checks_name_the_parameter_and_what_was_expected(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
