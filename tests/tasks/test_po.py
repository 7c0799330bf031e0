"""The POSites artifact: one labelled row per presence-only site, from the raw PO CSV through Spark."""

from __future__ import annotations

import json
from pathlib import Path

import luigi
import numpy as np
import pandas as pd
import pytest

from glc.data.layout import detect_layout
from glc.tasks.po import POSites
from glc.training.po_pretrain import read_po_sites

EXPERIMENT = """
name = "geoloc-po-test"
seed = 0
[model]
kind = "geolocation"
hidden = 32
[train]
max_epochs = 2
batch_size = 64
reader = "arrow"
[train.pretrain_po]
enabled = true
epochs = 2
batch_size = 128
[decoder]
kind = "topk"
compare = false
"""


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


def test_train_model_requires_the_po_sites_and_reports_its_pretraining(
    spark, tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glc.tasks import TrainModel

    monkeypatch.setenv("WANDB_MODE", "offline")
    exp = tmp_path / "geoloc-po-test.toml"
    exp.write_text(EXPERIMENT)
    task = TrainModel(data_root=str(tiny_world), out_root=str(tmp_path / "out"), experiment=str(exp))
    assert isinstance(task.requires()["po_sites"], POSites)
    assert luigi.build([task], local_scheduler=True, workers=1)
    summary = json.loads((task.output().dir / "_SUCCESS").read_text())
    po = summary["pretrain_po"]
    sites = json.loads((task.requires()["po_sites"].output().dir / "report.json").read_text())
    assert po["sites_read"] == sites["n_sites"] and 0 < po["sites_used"] <= po["sites_read"]
    assert po["epochs"] == 2 and len(po["epoch_loss"]) == 2 and po["pa_epochs"] >= 1 and po["inputs"]
