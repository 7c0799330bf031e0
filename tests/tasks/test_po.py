"""The POSites artifact: one labelled row per presence-only site, from the raw PO CSV through Spark."""

from __future__ import annotations

import json
from pathlib import Path

import luigi
import numpy as np
import pandas as pd

from glc.data.layout import detect_layout
from glc.tasks.po import POSites
from glc.training.po_pretrain import read_po_sites


def test_po_sites_group_the_records_by_site_with_their_distinct_species(
    spark, tiny_world: Path, tmp_path: Path
) -> None:
    task = POSites(data_root=str(tiny_world), out_root=str(tmp_path))
    assert luigi.build([task], local_scheduler=True, workers=1)
    sites = read_po_sites(task.output().dir)
    raw = pd.read_csv(detect_layout(tiny_world).po_metadata()).dropna(subset=["speciesId"])
    want = raw.groupby("surveyId")["speciesId"].agg(lambda s: sorted({int(v) for v in s}))
    assert len(sites) == len(want) and sites["surveyId"].is_monotonic_increasing
    got = dict(zip(sites["surveyId"].astype(int), sites["speciesIds"].map(list)))
    assert got == {int(k): v for k, v in want.items()}
    assert (sites["n_records"].to_numpy() == raw.groupby("surveyId").size().loc[sites["surveyId"]].to_numpy()).all()
    first = raw.sort_values(["surveyId", "speciesId"]).groupby("surveyId").first()
    assert np.allclose(sites["lon"], first.loc[sites["surveyId"], "lon"]) and np.isfinite(sites[["x", "y"]]).all().all()
    report = json.loads((task.output().dir / "report.json").read_text())
    assert report["n_sites"] == len(sites) and report["n_records"] == int(sites["n_records"].sum())
    assert report["po_records"]["total_rows"] >= report["n_records"]
