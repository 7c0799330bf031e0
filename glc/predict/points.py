"""Predict anywhere: species scores of a trained experiment at any lon/lat (``python -m glc predict``, maps).

A :class:`PointModel` is an experiment's model ready to score new points: the training surveys of its survey table
(in-memory kinds are fitted on all of them, exactly as ``Predict`` fits them for the test surveys) or its published
checkpoint (trained kinds, scored with the same network and the same column encodings as the loaders produce).
Only models whose inputs exist at a new point can do this: those that read the ``location`` and ``meta`` feature sets
only (:data:`POINT_FEATURE_SETS`; kNN, radius, GFV, the frequency models, the geolocation MLP). A model that reads
per-survey data a new point lacks (satellite patches, Landsat or bioclim cubes, env vectors of the pre-extracted
CSVs) raises :class:`PointInputError` naming the missing inputs.

Per point (:func:`point_frame`):

* ``x``/``y``: EPSG:3035 with the same pyproj transform the survey table uses;
* ``year``: the point's own (column ``year``), else the latest training year (said in the output's ``year_source``);
* ``region``/``country``: the point's own columns when given, else those of the nearest training survey
  (``region_from_km`` = its distance; GLC24's biogeographic regions are polygons the data does not ship);
* ``status``: ``ok``, ``sea`` or ``outside_extent`` from the data root's land mask (:mod:`glc.data.extent`). Only
  ``ok`` points are scored; the others are listed with their status and no species (never a silent zero), counted in
  the summary and the log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glc.data.extent import DataExtent
from glc.predict.scores import ScoreTable, top_n

log = logging.getLogger(__name__)

__all__ = ["POINT_FEATURE_SETS", "PointInputError", "PointModel", "point_frame", "points_table", "read_points"]

#: Feature sets a new point has (everything else is per-survey data a point lacks).
POINT_FEATURE_SETS: tuple[str, ...] = ("location", "meta")
#: Rows scored per call of the network / the in-memory model.
DEFAULT_BATCH = 8192


class PointInputError(ValueError):
    """The model reads inputs a new point does not have."""


# ---------------------------------------------------------------------------------------------- reading points
def _numeric(df: pd.DataFrame, col: str, source: str, integer: bool = False) -> np.ndarray:
    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(vals)
    if integer:
        bad |= np.isfinite(vals) & (np.round(vals) != vals)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "an integer" if integer else "a finite number"
        raise ValueError(
            f"{source}: {int(bad.sum())} row(s) with a bad {col!r}; first at data row {i + 1} (line {i + 2}): "
            f"{col}={raw.iloc[i]!r} is not {what}. Fix or drop those rows."
        )
    return vals


def read_points(path: str | Path, what: str = "points") -> pd.DataFrame:
    """Read a points file: CSV (``-`` = standard input) or parquet with ``lon``, ``lat`` and optionally ``id``,
    ``year``, ``region``, ``country``.

    Raises:
        ValueError: a missing ``lon``/``lat`` column, a non-numeric coordinate or year, or repeated ids (naming the
            file, the column and the first bad line).
    """
    import io

    from glc.data.metadata import read_text_source

    p = str(path)
    if p.endswith(".parquet") or (Path(p).is_dir() and any(Path(p).glob("*.parquet"))):
        df = pd.read_parquet(p)
    else:
        df = pd.read_csv(
            io.StringIO(read_text_source(p, what)), dtype=str, keep_default_na=False, skipinitialspace=True
        )
        df.columns = [c.strip() for c in df.columns]
    return points_table(df, source=p)


def points_table(df: pd.DataFrame, source: str = "points") -> pd.DataFrame:
    """Validate a points frame (see :func:`read_points`): ``id`` (default the row number), ``lon``, ``lat``, and the
    optional ``year``, ``region``, ``country`` columns, typed."""
    missing = [c for c in ("lon", "lat") if c not in df.columns]
    if missing:
        raise ValueError(
            f"{source}: no column(s) {missing}; a points file needs lon,lat "
            "(degrees, EPSG:4326) and may have id,year,region,country"
        )
    if len(df) == 0:
        raise ValueError(f"{source}: no points")
    out = pd.DataFrame({"lon": _numeric(df, "lon", source), "lat": _numeric(df, "lat", source)})
    bad = (np.abs(out["lon"]) > 180) | (np.abs(out["lat"]) > 90)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{source}: line {i + 2}: lon={out['lon'][i]}, lat={out['lat'][i]} "
            "is not a WGS84 coordinate (|lon| <= 180, |lat| <= 90)"
        )
    ids = (
        _numeric(df, "id", source, integer=True).astype(np.int64)
        if "id" in df.columns
        else np.arange(len(df), dtype=np.int64)
    )
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise ValueError(f"{source}: id {ids[i]} appears more than once (first at line {i + 2}); ids must be unique")
    out.insert(0, "id", ids)
    if "year" in df.columns:  # a blank year is missing (the model's default year is used and said so)
        given = ~df["year"].isna().to_numpy() & (df["year"].astype(str).str.strip() != "").to_numpy()
        years = np.full(len(df), np.nan)
        if given.any():
            years[given] = _numeric(df.loc[given].reset_index(drop=True), "year", source, integer=True)
        out["year"] = pd.array(np.where(given, years, 0).astype(np.int64), dtype="Int64")
        out.loc[~given, "year"] = pd.NA
    for col in ("region", "country"):
        if col in df.columns:
            vals = df[col].astype(str).str.strip()
            out[col] = vals.where(vals != "", None)
    return out


# ---------------------------------------------------------------------------------------------- point frames
def point_frame(
    points: pd.DataFrame, train: pd.DataFrame, extent: DataExtent | None = None, tree: Any = None
) -> pd.DataFrame:
    """The survey-like frame of ``points`` (see the module docstring): ``surveyId`` (= ``id``), lon, lat, x, y,
    year, region, country, and ``status``, ``year_source``, ``region_from_km``. ``tree``: a ``cKDTree`` over the
    training surveys' x/y, when the caller keeps one."""
    from scipy.spatial import cKDTree

    from glc.geo import to_laea

    pts = points_table(points) if "id" not in points.columns else points
    lon, lat = pts["lon"].to_numpy(np.float64), pts["lat"].to_numpy(np.float64)
    x, y = to_laea(lon, lat)
    frame = pd.DataFrame({"surveyId": pts["id"].to_numpy(np.int64), "lon": lon, "lat": lat, "x": x, "y": y})
    years = pd.to_numeric(train["year"], errors="coerce").dropna()
    default_year = int(years.max()) if len(years) else 0
    given = ~pd.isna(pts["year"]).to_numpy() if "year" in pts.columns else np.zeros(len(pts), bool)
    year_vals = pts["year"].to_numpy(dtype=np.float64, na_value=np.nan) if "year" in pts.columns else np.zeros(len(pts))
    frame["year"] = np.where(given, np.nan_to_num(year_vals), default_year).astype(np.int64)
    frame["year_source"] = np.where(given, "given", f"latest training year {default_year}")
    if tree is None:
        tree = cKDTree(np.c_[train["x"].to_numpy(), train["y"].to_numpy()])
    _, nearest = tree.query(np.c_[x, y], k=1)
    near = train.iloc[nearest]
    dist_km = np.hypot(near["x"].to_numpy() - x, near["y"].to_numpy() - y) / 1000.0
    for col in ("region", "country"):
        given = pts[col].to_numpy(object) if col in pts.columns else np.full(len(pts), None, object)
        fill = near[col].to_numpy(object) if col in near.columns else np.full(len(pts), None, object)
        frame[col] = np.where(pd.isna(given), fill, given)
    frame["region_from_km"] = np.where(
        pd.isna(pts["region"]) if "region" in pts.columns else True, np.round(dist_km, 3), 0.0
    )
    frame["status"] = extent.statuses(lon, lat) if extent is not None else "ok"
    return frame


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class PointModel:
    """An experiment's model ready to score new points (see the module docstring).

    Attributes:
        cfg: the resolved experiment config.
        train: all training surveys of the survey table (surveyId, lon, lat, x, y, year, region, country, speciesIds).
        extent: the data root's extent and land mask.
        checkpoint: trained kinds: the published checkpoint; ``meta``: its model-input table's ``meta.json``.
    """

    cfg: Mapping[str, Any]
    train: pd.DataFrame
    extent: DataExtent | None = None
    checkpoint: Path | None = None
    meta: Mapping[str, Any] | None = None
    _module: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_point_capable(self.cfg)
        from glc.models.registry import get_model

        self.spec = get_model(self.cfg["model"]["kind"])
        if self.spec.needs_inputs and (self.checkpoint is None or self.meta is None):
            raise ValueError(f"model.kind={self.spec.kind!r} is trained: give its checkpoint and model-input meta.json")

    @property
    def vocab(self) -> np.ndarray:
        """Species the model can score, sorted."""
        if getattr(self, "_vocab", None) is None:
            if self.meta is not None:
                self._vocab = np.asarray(self.meta["vocab"], np.int64)
            else:
                self._vocab = np.unique(np.concatenate([np.asarray(s, np.int64) for s in self.train["speciesIds"]]))
        return self._vocab

    def frame(self, points: pd.DataFrame) -> pd.DataFrame:
        """:func:`point_frame` with this model's training surveys and extent."""
        if getattr(self, "_tree", None) is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(np.c_[self.train["x"].to_numpy(), self.train["y"].to_numpy()])
        return point_frame(points, self.train, self.extent, self._tree)

    def species_positions(self, species: Sequence[int]) -> np.ndarray:
        """Column of each species id in :attr:`vocab`.

        Raises:
            KeyError: a species id the model does not know (naming it).
        """
        vocab = self.vocab
        sp = np.asarray(list(species), np.int64)
        pos = np.searchsorted(vocab, sp)
        unknown = [int(s) for s, p in zip(sp, pos) if p >= len(vocab) or vocab[p] != s]
        if unknown:
            raise KeyError(
                f"species id(s) {unknown} are not in the model's vocabulary ({len(vocab)} "
                "species seen in training); pick ids from the training labels"
            )
        return pos

    def _batches(self, frame: pd.DataFrame, batch: int) -> Iterator[pd.DataFrame]:
        for start in range(0, len(frame), batch):
            yield frame.iloc[start : start + batch]

    def _probs_trained(self, frame: pd.DataFrame) -> np.ndarray:
        """Dense sigmoid probabilities ``[n, vocab]`` of a trained kind, batches built like the loaders'."""
        import torch

        from glc.loaders.readers import to_torch_batch
        from glc.loaders.tables import column_specs
        from glc.training.fit import predict_probs
        from glc.training.trainer import input_columns, load_module

        assert self.meta is not None and self.checkpoint is not None
        if self._module is None:
            self._module = load_module(self.checkpoint, self.cfg, self.meta)
        specs = column_specs(self.meta)
        cols = input_columns(self.cfg, self.meta)
        codes = {
            "region": {r: i for i, r in enumerate(self.meta["regions"])},
            "country": {c: i for i, c in enumerate(self.meta.get("countries", []))},
        }
        batch: dict[str, np.ndarray] = {"surveyId": frame["surveyId"].to_numpy(np.int64)}
        for c in cols:
            if c in codes:
                names = frame[c].fillna("UNKNOWN").astype(str)
                unknown = sorted(set(names) - set(codes[c]))
                if unknown:
                    raise ValueError(
                        f"{c} value(s) {unknown[:5]} are not among the model's {c}s "
                        f"{sorted(codes[c])[:10]}...; fix the points' {c} column"
                    )
                values = names.map(codes[c]).to_numpy()
            else:
                values = frame[c].to_numpy()
            batch[c] = np.ascontiguousarray(values.astype(specs[c].batch_dtype()))
        C = int(self.meta["num_classes"])
        _, probs = predict_probs(
            self._module, [to_torch_batch(batch, C, with_target=False)], device=torch.device("cpu")
        )
        return probs

    def scores(self, frame: pd.DataFrame, top: int | None = None, batch: int = DEFAULT_BATCH) -> ScoreTable:
        """Top-``top`` score table (default ``model.top_n``) of the ``ok`` rows of ``frame``."""
        from glc.predict.scores import concat_scores

        top = int(self.cfg["model"]["top_n"] if top is None else top)
        ok = frame[frame["status"] == "ok"]
        parts = [self._scores(b, top) for b in self._batches(ok, batch)]
        return (
            concat_scores(parts)
            if parts
            else top_n(np.zeros(0, np.int64), np.zeros((0, len(self.vocab)), np.float32), self.vocab, top)
        )

    def _scores(self, frame: pd.DataFrame, top: int) -> ScoreTable:
        if self.spec.needs_inputs:
            return top_n(frame["surveyId"].to_numpy(np.int64), self._probs_trained(frame), self.vocab, top)
        assert self.spec.fit_predict is not None
        return self.spec.fit_predict(self.train, frame.reset_index(drop=True), {**self.cfg["model"], "top_n": top})

    def dense(self, frame: pd.DataFrame, species: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of ``species`` ``[n, len(species)]`` and the richness (sum of every species' score)
        ``[n]`` for every row of ``frame`` (status is not looked at: the caller masks).

        Raises:
            KeyError: a species id the model does not know (naming it).
        """
        vocab = self.vocab
        sp = np.asarray(list(species), np.int64)
        pos = self.species_positions(sp)
        if self.spec.needs_inputs:
            P = self._probs_trained(frame)
            return P[:, pos].astype(np.float32), P.sum(axis=1, dtype=np.float64).astype(np.float32)
        sc = self._scores(frame, len(vocab))
        order = pd.Series(np.arange(len(sc)), index=sc.survey_ids).loc[frame["surveyId"].to_numpy()].to_numpy()
        spec_, prob = sc.species[order], sc.prob[order]
        out = np.zeros((len(frame), len(sp)), np.float32)
        for j, s in enumerate(sp):
            hit = spec_ == s
            out[:, j] = np.where(hit.any(axis=1), (prob * hit).sum(axis=1), 0.0)
        richness = prob.sum(axis=1, dtype=np.float64) + sc.prob_rest[order]
        return out, richness.astype(np.float32)


def check_point_capable(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`PointInputError` when the experiment's model reads inputs a new point lacks."""
    from glc.features.sets import feature_set, resolve_feature_sets
    from glc.models.registry import get_model

    spec = get_model(cfg["model"]["kind"])
    members = spec.members(cfg["model"])
    if members:
        raise PointInputError(
            f"experiment {cfg['name']!r} (model.kind={spec.kind!r}) combines the predictions of experiments "
            f"{list(members)} for their surveys; it cannot score a new point itself: predict at points with each member"
        )
    extra = [s for s in resolve_feature_sets(spec.features(cfg["model"])) if s not in POINT_FEATURE_SETS]
    if extra:
        detail = ", ".join(f"{s} ({feature_set(s).artifact}: {feature_set(s).description})" for s in extra)
        raise PointInputError(
            f"experiment {cfg['name']!r} (model.kind={spec.kind!r}) reads {detail}, which a new point does not have "
            f"(only {list(POINT_FEATURE_SETS)} can be computed at any lon/lat); predict at points with a location "
            "model (e.g. knn, geolocation-asl), or score surveys that have those inputs with the DAG"
        )


def write_point_predictions(path: str | Path, frame: pd.DataFrame, scores: ScoreTable, k: int) -> pd.DataFrame:
    """One row per point: id, lon, lat, status, year, region, region_from_km, and the top-``k`` species with their
    probabilities (``species`` and ``probs`` space-separated; empty for a point that was not scored). CSV or parquet
    by the suffix; written atomically. Returns the frame written."""
    from glc.io import atomic_file

    by_id = {int(s): i for i, s in enumerate(scores.survey_ids)}
    sp, pr = [], []
    for sid in frame["surveyId"].to_numpy(np.int64):
        i = by_id.get(int(sid))
        if i is None:
            sp.append("")
            pr.append("")
            continue
        keep = scores.prob[i, :k] > 0
        sp.append(" ".join(str(int(s)) for s in scores.species[i, :k][keep]))
        pr.append(" ".join(f"{float(p):.6f}" for p in scores.prob[i, :k][keep]))
    out = pd.DataFrame(
        {
            "id": frame["surveyId"].to_numpy(np.int64),
            "lon": frame["lon"],
            "lat": frame["lat"],
            "status": frame["status"],
            "year": frame["year"],
            "region": frame["region"],
            "region_from_km": frame["region_from_km"],
            "species": sp,
            "probs": pr,
        }
    )
    p = Path(path)
    if p.suffix == ".parquet":
        with atomic_file(p, mode="wb") as fh:
            out.to_parquet(fh, index=False)
    else:
        with atomic_file(p) as fh:
            out.to_csv(fh, index=False)
    return out
