"""Tiny seeded fake GLC24 metadata in the real Kaggle layout, with deliberately bad rows.

``make_fake_metadata`` writes ``GLC24_PA_metadata_train.csv`` (one row per survey x species, float speciesId, empty
and ``-inf`` areaInM2, an empty geoUncertaintyInM), ``GLC24_PA_metadata_test.csv`` and ``GLC24_P0_metadata_train.csv``
(PO column order). With ``bad_rows=True`` the train file also holds :data:`BAD_ROWS` — one short row, one long row,
one non-numeric lat and one missing speciesId — whose rejection the tests assert.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REGIONS = ("ATLANTIC", "CONTINENTAL", "MEDITERRANEAN", "ALPINE")
#: (line, the reason SurveyTable must give). The short row lacks its last field (surveyId).
BAD_ROWS = (
    ("2.5,45.1,2019,10.0,100.0,ATLANTIC,France,17.0\n", "required field empty (short row?)"),
    ("2.5,45.1,2019,10.0,100.0,ATLANTIC,France,17.0,990001,extra\n", "too many fields"),
    ("2.5,north,2019,10.0,100.0,ATLANTIC,France,17.0,990002\n", "lon/lat not numeric"),
    ("2.5,45.1,2019,10.0,100.0,ATLANTIC,France,,990003\n", "required field empty (short row?)"),
)


def make_fake_metadata(root: str | Path, n_train: int = 120, n_test: int = 30, n_species: int = 40, seed: int = 0, bad_rows: bool = True) -> dict:
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
        train_lines[5:5] = [line for line, _ in BAD_ROWS]
    (root / "GLC24_PA_metadata_train.csv").write_text("".join(train_lines))
    (root / "GLC24_PA_metadata_test.csv").write_text("".join(test_lines))
    po = ["year,month,day,lat,lon,geoUncertaintyInM,taxonRank,date,dayOfYear,speciesId,surveyId\n"]
    for j in range(200):
        lon, lat = -5 + 24 * rng.random(), 40 + 15 * rng.random()
        po.append(f"2019,5.0,5.0,{lat:.5f},{lon:.5f},10.0,SPECIES,2019-05-05,125,{float(rng.choice(species)):.1f},{j + 1}\n")
    (root / "GLC24_P0_metadata_train.csv").write_text("".join(po))
    return {"labels": labels, "test_ids": np.sort(ids[n_train:]), "species": species}
