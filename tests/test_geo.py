"""Projection sanity: EPSG:3035 (pitfall 1: a wrong projection skews every km cutoff)."""

import numpy as np
import pytest

from glc.geo import to_laea, to_lonlat


def test_laea_origin_is_false_easting_northing():
    # EPSG:3035 is centred on 10E 52N with false easting 4,321,000 m and false northing 3,210,000 m.
    x, y = to_laea(10.0, 52.0)
    assert float(x) == pytest.approx(4321000.0, abs=1e-6)
    assert float(y) == pytest.approx(3210000.0, abs=1e-6)


def test_distances_are_metric():
    # 1 degree of latitude along the central meridian is ~111.2 km in an equal-area projection near 52N
    x, y = to_laea(np.array([10.0, 10.0]), np.array([52.0, 53.0]))
    assert np.hypot(np.diff(x), np.diff(y))[0] == pytest.approx(111_250, rel=2e-3)


def test_round_trip_and_bad_input():
    lon, lat = np.array([-5.5, 3.1, 25.3]), np.array([40.1, 43.1, 57.7])
    lo, la = to_lonlat(*to_laea(lon, lat))
    np.testing.assert_allclose(lo, lon, atol=1e-9)
    np.testing.assert_allclose(la, lat, atol=1e-9)
    with pytest.raises(ValueError, match=r"not valid WGS84 lon/lat, first at index 1: lon=200"):
        to_laea([1.0, 200.0], [45.0, 45.0])
