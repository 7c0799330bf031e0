"""Where and when the synthetic world was surveyed: PA plots (clustered, revisited, split by spatial blocks) and PO
occurrences (biased toward towns), with GLC24-like ids, dates, plot areas and location uncertainties.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from glc.synth.geography import EUROPE, KM_PER_DEG, PA_COUNTRY_WEIGHTS, RasterGrid, cities, country_of, is_valid_site

#: Largest survey id of GLC24 (PO ids reach 3,919,662).
ID_MAX = 3_919_662
#: Ids planted in every world to exercise the no-zero-padding patch path rule (``642`` -> ``42/6/642.jpeg``);
#: 212, 80000 and 300100 are real PA-train ids, 642, 1792 and 3256 real PA-test ids.
FORCED_TRAIN_IDS: tuple[int, ...] = (212, 1105, 80000, 300100)
FORCED_TEST_IDS: tuple[int, ...] = (642, 1792, 3256)

YEARS = np.arange(2017, 2022)
_YEAR_P = np.array([0.31, 0.27, 0.24, 0.09, 0.09])
# Plot areas (m2) and location uncertainties (m) with their GLC24 PA-test frequencies.
_AREAS = np.array(
    [79, 4, 25, 100, 707, 10, 9, 16, 400, 200, 50, 30, 20, 1, 150, 40, 250, 6, 15, 8, 5, 2, 60, 3, 12, 70],
    dtype=np.float64,
)
_AREA_P = np.array(
    [1226, 495, 320, 279, 227, 224, 200, 174, 145, 127, 86, 53, 52, 49, 35, 35, 27, 25, 22, 17, 15, 13, 13, 11, 8, 6],
    dtype=np.float64,
)
_UNC = np.array([10, 3, 1, 0, 5, 20, 4, 50, 25, 2, 100, 9, 6, 8, 7, 11], dtype=np.float64)
_UNC_P = np.array([1956, 1059, 578, 408, 274, 151, 103, 63, 33, 12, 11, 10, 6, 5, 3, 2], dtype=np.float64)
_AREA_EMPTY, _AREA_NEG_INF, _UNC_EMPTY = 0.09, 0.03, 0.01
_VISITS = np.array([1, 2, 3, 4, 5])
_VISITS_P = np.array([0.62, 0.2, 0.1, 0.05, 0.03])


def _offset(lon: np.ndarray, lat: np.ndarray, dx_km: np.ndarray, dy_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move points by (east, north) kilometres."""
    nlat = lat + dy_km / KM_PER_DEG
    nlon = lon + dx_km / (KM_PER_DEG * np.cos(np.radians(np.clip(nlat, -80, 80))))
    return nlon, nlat


def _cluster_centres(rng: np.random.Generator, n: int, grid: RasterGrid) -> tuple[np.ndarray, np.ndarray]:
    """``n`` valid cluster centres: a country by PA weight, then a point near one of its cities, in that country."""
    c = cities()
    names = np.asarray(c.names, dtype=object)
    countries = list(PA_COUNTRY_WEIGHTS)
    w = np.array([PA_COUNTRY_WEIGHTS[k] for k in countries])
    want = rng.choice(len(countries), size=n, p=w / w.sum())
    out_lon = np.full(n, np.nan)
    out_lat = np.full(n, np.nan)
    anchors = {k: np.flatnonzero(names[c.country] == k) for k in countries}
    for _ in range(200):
        todo = np.flatnonzero(np.isnan(out_lon))
        if len(todo) == 0:
            break
        k = np.array([countries[i] for i in want[todo]], dtype=object)
        pick = np.array([rng.choice(anchors[name]) for name in k])
        lon, lat = _offset(c.lon[pick], c.lat[pick], rng.normal(0, 110, len(todo)), rng.normal(0, 110, len(todo)))
        ok = is_valid_site(lon, lat, grid) & (country_of(lon, lat) == k)
        out_lon[todo[ok]] = lon[ok]
        out_lat[todo[ok]] = lat[ok]
    if np.isnan(out_lon).any():
        raise RuntimeError("could not place every survey cluster on land after 200 rounds; check the raster grid")
    return out_lon, out_lat


def sample_pa_sites(
    rng: np.random.Generator, n_sites: int, grid: RasterGrid, mean_per_cluster: float, cluster_km: float
) -> pd.DataFrame:
    """Draw ``n_sites`` PA plots in clusters (~``cluster_km`` sd around valid centres).

    Returns:
        DataFrame with ``cluster, lon, lat`` (one row per plot).
    """
    n_clusters = max(1, int(np.ceil(n_sites / mean_per_cluster)))
    clon, clat = _cluster_centres(rng, n_clusters, grid)
    sizes = 1 + rng.poisson(max(mean_per_cluster - 1.0, 0.0), size=n_clusters)
    cluster = np.repeat(np.arange(n_clusters), sizes)[:n_sites]
    if len(cluster) < n_sites:  # top up with extra plots in random clusters
        cluster = np.concatenate([cluster, rng.integers(0, n_clusters, n_sites - len(cluster))])
    lon = np.full(n_sites, np.nan)
    lat = np.full(n_sites, np.nan)
    for _ in range(50):
        todo = np.flatnonzero(np.isnan(lon))
        if len(todo) == 0:
            break
        cl = cluster[todo]
        x, y = _offset(clon[cl], clat[cl], rng.normal(0, cluster_km, len(todo)), rng.normal(0, cluster_km, len(todo)))
        ok = is_valid_site(x, y, grid)
        lon[todo[ok]] = x[ok]
        lat[todo[ok]] = y[ok]
    bad = np.isnan(lon)  # plots that kept falling into the sea: put them on their cluster centre
    lon[bad], lat[bad] = clon[cluster[bad]], clat[cluster[bad]]
    decimals = rng.choice([5, 6], size=n_sites)
    r_lon = np.where(decimals == 5, np.round(lon, 5), np.round(lon, 6))
    r_lat = np.where(decimals == 5, np.round(lat, 5), np.round(lat, 6))
    # a plot that rounding moves into a sea pixel keeps 6 decimals (~0.1 m), or if those cross too its place unrounded
    # (checked in the loop above); none does in the demo worlds of seeds 0 and 1
    crossed = np.flatnonzero(~is_valid_site(r_lon, r_lat, grid))
    r_lon[crossed], r_lat[crossed] = np.round(lon[crossed], 6), np.round(lat[crossed], 6)
    still = crossed[~is_valid_site(r_lon[crossed], r_lat[crossed], grid)]
    r_lon[still], r_lat[still] = lon[still], lat[still]
    return pd.DataFrame({"cluster": cluster, "lon": r_lon, "lat": r_lat})


def draw_areas(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` true plot areas (m2, GLC24 frequencies) and their CSV text (9 % empty, 3 % ``-inf``)."""
    area = rng.choice(_AREAS, size=n, p=_AREA_P / _AREA_P.sum())
    text = np.array([f"{a:.1f}" for a in area], dtype=object)
    u = rng.uniform(size=n)
    text[u < _AREA_EMPTY] = ""
    text[(u >= _AREA_EMPTY) & (u < _AREA_EMPTY + _AREA_NEG_INF)] = "-inf"
    return area, text


@dataclass
class PASurveys:
    """The PA surveys of a world.

    Attributes:
        sites: one row per plot: ``lon, lat, cluster, area, area_text, country`` (index = site id).
        surveys: one row per survey: ``surveyId, site, year, unc_text, split`` sorted by ``(split, surveyId)``.
    """

    sites: pd.DataFrame
    surveys: pd.DataFrame


#: GLC25-like geographic shift (:func:`make_pa_surveys`): each country is a "shifted" country with this probability
#: (at least one is), and a block of a shifted country is this many times as likely to be drawn for the test set.
SHIFT_COUNTRY_RATE = 0.3


def make_pa_surveys(
    rng: np.random.Generator,
    n_train: int,
    n_test: int,
    grid: RasterGrid,
    block_deg: float,
    mean_per_cluster: float,
    cluster_km: float,
    shift: float = 1.0,
) -> PASurveys:
    """Draw plots and visits, split them by spatial blocks, and give them GLC24-like ids.

    Test surveys are the surveys of whole spatial blocks (``block_deg`` squares) taken in random order until
    ``n_test`` surveys are reached (surplus surveys of the last block are dropped); train surveys are drawn from the
    remaining blocks. Each plot is visited 1-5 times in distinct years of 2017-2021.

    ``shift > 1`` shifts the test set geographically, as GLC25's is: a seeded draw marks some countries
    (:data:`SHIFT_COUNTRY_RATE`) and the blocks of those countries are ``shift`` times as likely to come first in
    the test order (weighted sampling without replacement by Gumbel keys), so the test set over-represents them and
    the train set, drawn from what is left, under-represents them. ``shift = 1`` is GLC24's uniform order (and
    the same random draws as before the option existed).
    """
    need = n_train + n_test
    mean_visits = float((_VISITS * _VISITS_P).sum())
    n_sites = int(np.ceil(1.3 * need / mean_visits)) + 20
    sites = sample_pa_sites(rng, n_sites, grid, mean_per_cluster, cluster_km)
    sites["area"], sites["area_text"] = draw_areas(rng, n_sites)
    visits = rng.choice(_VISITS, size=n_sites, p=_VISITS_P)
    site_idx = np.repeat(np.arange(n_sites), visits)
    years = np.concatenate([np.sort(rng.choice(YEARS, size=v, replace=False, p=_YEAR_P)) for v in visits])
    surveys = pd.DataFrame({"site": site_idx, "year": years})
    # spatial blocks
    bx = np.floor(sites["lon"].to_numpy() / block_deg).astype(np.int64)
    by = np.floor(sites["lat"].to_numpy() / block_deg).astype(np.int64)
    block = (bx * 100_003 + by)[site_idx]
    blocks, inverse = np.unique(block, return_inverse=True)
    if shift == 1.0:
        order = rng.permutation(len(blocks))
    else:
        country = country_of(sites["lon"].to_numpy(), sites["lat"].to_numpy())[site_idx]
        names = np.unique(country)
        marked = rng.random(len(names)) < SHIFT_COUNTRY_RATE
        if not marked.any():
            marked[int(rng.integers(len(names)))] = True
        _, first = np.unique(inverse, return_index=True)  # a survey of each block (its first)
        weight = np.where(np.isin(country[first], names[marked]), float(shift), 1.0)
        order = np.argsort(-(np.log(weight) + rng.gumbel(size=len(blocks))), kind="stable")
    rank = np.empty(len(blocks), dtype=np.int64)
    rank[order] = np.arange(len(blocks))
    survey_rank = rank[inverse]
    srt = np.argsort(survey_rank, kind="stable")
    counts = np.bincount(survey_rank, minlength=len(blocks))
    cum = np.cumsum(counts)
    last = int(np.searchsorted(cum, n_test))  # block rank reaching n_test surveys
    test_idx = srt[:n_test]
    pool = srt[cum[last] :]  # whole blocks after the last test block (its surplus is dropped)
    if len(pool) < n_train:
        raise RuntimeError(f"only {len(pool)} train candidates for n_train={n_train}; increase the site surplus")
    train_idx = np.sort(rng.choice(pool, size=n_train, replace=False))
    surveys["split"] = ""
    surveys.loc[test_idx, "split"] = "test"
    surveys.loc[train_idx, "split"] = "train"
    surveys = surveys[surveys["split"] != ""].copy()
    # uncertainty text per survey
    unc = rng.choice(_UNC, size=len(surveys), p=_UNC_P / _UNC_P.sum())
    unc_text = np.array([f"{u:.1f}" for u in unc], dtype=object)
    unc_text[rng.uniform(size=len(surveys)) < _UNC_EMPTY] = ""
    surveys["unc_text"] = unc_text
    used = np.unique(surveys["site"].to_numpy())
    sites = sites.loc[used].copy()
    sites["country"] = country_of(sites["lon"].to_numpy(), sites["lat"].to_numpy())
    return PASurveys(sites=sites, surveys=surveys)


def assign_ids(rng: np.random.Generator, pa: PASurveys, n_po_surveys: int, test_id_start: int = 0) -> np.ndarray:
    """Give PA surveys distinct ids (train, test and PO disjoint) and return the sorted PO survey ids.

    PA ids are >= 100 (at least three digits, like GLC24's smallest, 212); the :data:`FORCED_TRAIN_IDS` and
    :data:`FORCED_TEST_IDS` are planted when the split is large enough. With ``test_id_start`` (GLC25: 5,000,000)
    the test surveys are numbered ``test_id_start, test_id_start + 1, ...`` in a random order instead (no forced
    test ids). ``pa.surveys`` gets its ``surveyId`` column and is sorted by ``(split, surveyId)``.
    """
    s = pa.surveys
    forced = set(FORCED_TRAIN_IDS) | set(FORCED_TEST_IDS)
    n_pa = len(s)
    total = n_pa + n_po_surveys
    if total + len(forced) > ID_MAX // 2:
        raise ValueError(f"{total} survey ids requested; at most {ID_MAX // 2} fit in 1..{ID_MAX}")
    draw = rng.choice(ID_MAX, size=total + len(forced) + 64, replace=False) + 1
    draw = draw[~np.isin(draw, list(forced))]
    pa_pool = draw[draw >= 1000][:n_pa]
    po_ids = np.setdiff1d(draw, pa_pool, assume_unique=True)
    po_ids = rng.permutation(po_ids)[:n_po_surveys]
    ids = pa_pool.copy()
    split = s["split"].to_numpy()
    for name, forced_ids in (("train", FORCED_TRAIN_IDS), ("test", FORCED_TEST_IDS)):
        rows = np.flatnonzero(split == name)
        if len(rows) >= 4 * len(forced_ids) and not (name == "test" and test_id_start):
            ids[rng.choice(rows, size=len(forced_ids), replace=False)] = forced_ids
    if test_id_start:
        if test_id_start <= ID_MAX:
            raise ValueError(f"test_id_start={test_id_start} must be above every train/PO id (> {ID_MAX})")
        rows = np.flatnonzero(split == "test")
        ids[rows] = test_id_start + rng.permutation(len(rows))
    s = s.assign(surveyId=ids)
    s["split_order"] = (s["split"] == "test").astype(int)
    pa.surveys = s.sort_values(["split_order", "surveyId"]).drop(columns="split_order").reset_index(drop=True)
    return np.sort(po_ids)


def make_po_surveys(
    rng: np.random.Generator,
    n_records: int,
    records_per_survey: float,
    grid: RasterGrid,
    town_lon: np.ndarray,
    town_lat: np.ndarray,
    town_pop: np.ndarray,
    town_radius_km: np.ndarray,
) -> pd.DataFrame:
    """Draw PO "surveys" (one place and date, 1+ records): 70 % near towns (by population), 30 % anywhere in Europe.

    Returns:
        DataFrame with ``lon, lat, year, month, day, dayOfYear, date, unc_text, n_records, taxonRank`` (one row per
        PO survey; ids are assigned by the caller).
    """
    n = max(1, int(round(n_records / records_per_survey)))
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    near_town = rng.uniform(size=n) < 0.7
    c = cities()
    eu_city = np.flatnonzero(np.isin(np.asarray(c.names, dtype=object)[c.country], list(EUROPE)))
    p_town = town_pop**0.7 / (town_pop**0.7).sum()
    for _ in range(200):
        todo = np.flatnonzero(np.isnan(lon))
        if len(todo) == 0:
            break
        t = rng.choice(len(town_lon), size=len(todo), p=p_town)
        a = rng.choice(eu_city, size=len(todo))
        nt = near_town[todo]
        base_lon = np.where(nt, town_lon[t], c.lon[a])
        base_lat = np.where(nt, town_lat[t], c.lat[a])
        sd = np.where(nt, 1.5 * town_radius_km[t], 150.0)
        x, y = _offset(base_lon, base_lat, rng.normal(0, 1, len(todo)) * sd, rng.normal(0, 1, len(todo)) * sd)
        x, y = np.round(x, 5), np.round(y, 5)  # checked where the CSV puts it: rounding can cross into a sea pixel
        ok = is_valid_site(x, y, grid)
        lon[todo[ok]] = x[ok]
        lat[todo[ok]] = y[ok]
    if np.isnan(lon).any():
        raise RuntimeError("could not place every PO occurrence on land after 200 rounds")
    year = rng.choice(YEARS, size=n, p=np.array([0.15, 0.18, 0.2, 0.23, 0.24]))
    month_p = np.array([2, 3, 6, 10, 16, 17, 14, 11, 9, 6, 4, 2], dtype=np.float64)
    month = rng.choice(np.arange(1, 13), size=n, p=month_p / month_p.sum())
    first = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": 1}))
    day = 1 + np.floor(rng.uniform(size=n) * first.dt.days_in_month.to_numpy()).astype(int)
    dates = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day}))
    unc = np.where(
        rng.uniform(size=n) < 0.4,
        rng.choice([1.0, 3.0, 4.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0], size=n),
        np.round(rng.lognormal(np.log(12.0), 1.0, size=n), 2),
    )
    unc_text = np.array([repr(float(u)) for u in unc], dtype=object)
    unc_text[rng.uniform(size=n) < 0.05] = ""
    rank = rng.choice(np.array(["SPECIES", "SUBSPECIES", "VARIETY"], dtype=object), size=n, p=[0.96, 0.03, 0.01])
    return pd.DataFrame(
        {
            "lon": np.round(lon, 5),
            "lat": np.round(lat, 5),
            "year": year,
            "month": month,
            "day": day,
            "dayOfYear": dates.dt.dayofyear.to_numpy(),
            "date": dates.dt.strftime("%Y-%m-%d").to_numpy(),
            "unc_text": unc_text,
            "n_records": 1 + rng.poisson(max(records_per_survey - 1.0, 0.0), size=n),
            "taxonRank": rank,
        }
    )
