"""Tiny seeded fake GLC24 metadata in the real Kaggle layout, with deliberately bad rows.

``make_fake_metadata`` writes ``GLC24_PA_metadata_train.csv`` (one row per survey x species, float speciesId, empty
and ``-inf`` areaInM2, an empty geoUncertaintyInM), ``GLC24_PA_metadata_test.csv`` and ``GLC24_P0_metadata_train.csv``
(PO column order). With ``bad_rows=True`` the train file also holds :data:`QUARANTINED_ROWS` — one short row, one long
row, one non-numeric lat (:data:`BAD_ROWS`) and one empty speciesId (dropped and counted, not a bad row) — whose
rejection the tests assert.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

REGIONS = ("ATLANTIC", "CONTINENTAL", "MEDITERRANEAN", "ALPINE")
#: (line, the reason SurveyTable must give). The short row lacks its last field (surveyId).
BAD_ROWS = (
    ("2.5,45.1,2019,10.0,100.0,ATLANTIC,France,17.0\n", "required field empty (short row?)"),
    ("2.5,45.1,2019,10.0,100.0,ATLANTIC,France,17.0,990001,extra\n", "too many fields"),
    ("2.5,north,2019,10.0,100.0,ATLANTIC,France,17.0,990002\n", "lon/lat not numeric"),
)
#: A train row with an empty speciesId: quarantined with its own reason, never counted as a bad row.
EMPTY_SPECIES_ROW = (
    "2.5,45.1,2019,10.0,100.0,ATLANTIC,France,,990003\n",
    "speciesId empty (row dropped and counted; not a bad row)",
)
#: Every row the train file's quarantine holds, in file order.
QUARANTINED_ROWS = BAD_ROWS + (EMPTY_SPECIES_ROW,)


def make_fake_metadata(
    root: str | Path, n_train: int = 120, n_test: int = 30, n_species: int = 40, seed: int = 0, bad_rows: bool = True
) -> dict:
    """Write the fake world; return the truth (train label sets, test ids)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    species = np.sort(rng.choice(11255, n_species, replace=False))
    labels: dict[int, np.ndarray] = {}
    train_lines = ["lon,lat,year,geoUncertaintyInM,areaInM2,region,country,speciesId,surveyId\n"]
    test_lines = ["lon,lat,year,geoUncertaintyInM,areaInM2,region,country,surveyId\n"]
    ids = rng.choice(np.arange(200, 900000), n_train + n_test, replace=False)
    for i, sid in enumerate(ids):
        r = int(rng.integers(len(REGIONS)))
        lon, lat = -5 + 20 * rng.random() + r, 40 + 15 * rng.random()
        year = int(rng.integers(2017, 2022))
        unc = "" if i == 3 else f"{float(rng.choice([1, 5, 10])):.1f}"
        area = "-inf" if i % 17 == 5 else ("" if i % 13 == 4 else f"{float(rng.choice([10, 100, 707])):.1f}")
        meta = f"{lon:.5f},{lat:.5f},{year},{unc},{area},{REGIONS[r]},France"
        if i < n_train:
            p = np.where(np.arange(n_species) % len(REGIONS) == r, 0.5, 0.08)
            sp = species[rng.random(n_species) < p]
            if len(sp) == 0:
                sp = species[:1]
            labels[int(sid)] = sp
            for s in sp:
                train_lines.append(f"{meta},{float(s):.1f},{sid}\n")
        else:
            test_lines.append(f"{meta},{sid}\n")
    if bad_rows:
        train_lines[5:5] = [line for line, _ in QUARANTINED_ROWS]
    (root / "GLC24_PA_metadata_train.csv").write_text("".join(train_lines))
    (root / "GLC24_PA_metadata_test.csv").write_text("".join(test_lines))
    po = ["year,month,day,lat,lon,geoUncertaintyInM,taxonRank,date,dayOfYear,speciesId,surveyId\n"]
    for j in range(200):
        lon, lat = -5 + 24 * rng.random(), 40 + 15 * rng.random()
        po.append(
            f"2019,5.0,5.0,{lat:.5f},{lon:.5f},10.0,SPECIES,2019-05-05,125,{float(rng.choice(species)):.1f},{j + 1}\n"
        )
    (root / "GLC24_P0_metadata_train.csv").write_text("".join(po))
    return {"labels": labels, "test_ids": np.sort(ids[n_train:]), "species": species}


def toy_surveys(n: int = 600, seed: int = 0, n_env: int = 5) -> pd.DataFrame:
    """A seeded survey frame with spatially and environmentally structured species (for tree and blend models).

    Surveys lie in a 400 x 400 km square of EPSG:3035 (four regions = quadrants, two countries = halves); species
    0..59 each have an environmental optimum along ``env[0]`` (which follows x) and a home region, so neighbours,
    region and environment all carry signal. Columns: surveyId, lon, lat, x, y, year, region, country, areaInM2
    (some NaN), geoUncertaintyInM, env (float64 vectors), speciesIds.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = 4.0e6 + rng.uniform(0, 400e3, n)
    y = 3.0e6 + rng.uniform(0, 400e3, n)
    region = np.where(x < 4.2e6, "A", "B").astype(object) + np.where(y < 3.2e6, "1", "2").astype(object)
    env = np.column_stack(
        [(x - 4.0e6) / 400e3 + rng.normal(0, 0.05, n)] + [rng.normal(0, 1, n) for _ in range(n_env - 1)]
    )
    opt = np.linspace(0, 1, 60)
    home = np.array(["A1", "A2", "B1", "B2"])[np.arange(60) % 4]
    area = rng.uniform(10, 500, n)
    richness = 0.3 + 1.4 * (area - 10) / 490  # larger plots hold more species
    species = []
    for i in range(n):
        p = np.minimum(
            1.0,
            richness[i]
            * 0.6
            * np.exp(-((env[i, 0] - opt) ** 2) / (2 * 0.08**2))
            * np.where(home == region[i], 1.0, 0.35),
        )
        s = np.flatnonzero(rng.random(60) < p)
        species.append(s if len(s) else np.array([int(np.argmax(p))]))
    area[::17] = np.nan
    return pd.DataFrame(
        {
            "surveyId": np.arange(1, n + 1, dtype=np.int64),
            "lon": 5.0 + (x - 4.0e6) / 8e4,
            "lat": 45.0 + (y - 3.0e6) / 1.1e5,
            "x": x,
            "y": y,
            "year": rng.integers(2017, 2022, n),
            "region": region.astype(str),
            "country": np.where(x < 4.2e6, "West", "East"),
            "areaInM2": area,
            "geoUncertaintyInM": rng.uniform(1, 50, n),
            "env": list(env),
            "speciesIds": species,
        }
    )
