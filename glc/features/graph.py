"""Graph feature vectors (GFV, after Tighnari, GLC24 3rd place): neighbour PA labels aggregated over a survey graph.

Graph: an edge joins query survey ``i`` and source survey ``j`` when they are at most ``radius_km`` (10 km) apart
**and** have the same ``year`` **and** the same ``region``. Its weight is ``w_ij = radius_km - d_ij`` (km), so a
neighbour at 0 km weighs 10 and one at 10 km weighs 0. Then, over the 11,255-species space::

    GFV_i = sum_j w_ij * y_j / sqrt(deg_i)           y_j: 0/1 label vector of source j

``deg_i`` is the **number of edges** of ``i`` (unweighted degree, as Tighnari; ``degree="weighted"`` uses
``sum_j w_ij`` instead). A survey without edges gets an empty vector (counted in the log).

Normalisation: a single **global** constant, ``GFV / scale`` with ``scale`` = the largest raw value over the training
surveys' out-of-fold features, so values lie in [0, 1] for training surveys and the same scale is reused for test
surveys (pass ``scale=`` to :func:`graph_features`); per-batch scales would make train and test features
incomparable.

Leak rules: queries connect only to the sources they are given (test surveys -> training surveys; a training survey
-> the training surveys of the other folds, :func:`oof_graph_features`). A source with the query's own id is
dropped, and with ``exclude_same_site=True`` (default) so is every source within ``same_site_m`` (1 m): a repeat
visit of the same site never carries the survey's own site labels into its feature.

Stored sparse: ``gfv_idx array<int>`` (species ids, ascending), ``gfv_val array<float>`` (:func:`graph_feature_frame`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.spatial import cKDTree

from glc.data.layout import NUM_CLASSES
from glc.features.neighbours import query_tree, validate_params, validate_unique_ids, validate_xy

log = logging.getLogger(__name__)

ArrayLike = np.ndarray | Sequence


class GraphFeatures(NamedTuple):
    """CSR rows of graph feature vectors: row ``i`` is ``idx[indptr[i]:indptr[i+1]]`` (species ids) with ``val``."""

    indptr: np.ndarray  # (n + 1,) int64
    idx: np.ndarray  # (nnz,) int32 species ids, ascending within a row
    val: np.ndarray  # (nnz,) float32


def _labels_csr(labels: Sequence[np.ndarray], n_species: int) -> sparse.csr_matrix:
    lists = [np.unique(np.asarray(a, dtype=np.int64)) for a in labels]
    for i, a in enumerate(lists):
        if len(a) and (a[0] < 0 or a[-1] >= n_species):
            raise ValueError(
                f"src_labels[{i}] has species id(s) outside 0..{n_species - 1} "
                f"({a[0]}..{a[-1]}); fix the labels or n_species"
            )
    lens = np.array([len(a) for a in lists], dtype=np.int64)
    cols = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    return sparse.csr_matrix((np.ones(len(cols), np.float64), cols, indptr), shape=(len(lists), n_species))


def _keys(name: str, year: ArrayLike, region: ArrayLike, n: int) -> list[np.ndarray]:
    yr = pd.Series(np.asarray(year))
    rg = pd.Series(np.asarray(region, dtype=object))
    if len(yr) != n or len(rg) != n:
        raise ValueError(f"{name}: year ({len(yr)}) and region ({len(rg)}) must have one value per site ({n})")
    yr_num = pd.to_numeric(yr, errors="coerce")
    bad = yr_num.isna() | (yr_num != np.floor(yr_num)) | rg.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{name}: {int(bad.sum())} site(s) lack an integer year or a "
            f"region, first at index {i} (year={yr[i]!r}, region={rg[i]!r})"
        )
    return [yr_num.astype(np.int64).to_numpy(), rg.astype(str).to_numpy()]


def graph_features_raw(
    query_x: ArrayLike,
    query_y: ArrayLike,
    query_year: ArrayLike,
    query_region: ArrayLike,
    src_x: ArrayLike,
    src_y: ArrayLike,
    src_year: ArrayLike,
    src_region: ArrayLike,
    src_labels: Sequence[np.ndarray],
    radius_km: float = 10.0,
    exclude_same_site: bool = True,
    query_ids: ArrayLike | None = None,
    src_ids: ArrayLike | None = None,
    same_site_m: float = 1.0,
    degree: Literal["count", "weighted"] = "count",
    n_species: int = NUM_CLASSES,
) -> GraphFeatures:
    """Unnormalised graph features ``sum_j w_ij y_j / sqrt(deg_i)`` (see the module docstring).

    Args:
        query_x: Query EPSG:3035 x in metres.
        query_y: Query EPSG:3035 y in metres.
        query_year: Query survey years.
        query_region: Query biogeographic regions.
        src_x: Source (training survey) x in metres.
        src_y: Source y in metres.
        src_year: Source years.
        src_region: Source regions.
        src_labels: Species ids of each source.
        radius_km: Edge cutoff (``d <= radius_km``) and the weight's origin (``w = radius_km - d``).
        exclude_same_site: Drop sources within ``same_site_m`` metres of the query.
        query_ids: Query surveyIds (with ``src_ids``: a source with the query's id is dropped).
        src_ids: Source surveyIds (unique).
        same_site_m: Same-site distance in metres.
        degree: ``"count"`` (number of edges, Tighnari) or ``"weighted"`` (sum of edge weights).
        n_species: Size of the species id space (ids ``0..n_species-1``).

    Returns:
        :class:`GraphFeatures` with one row per query.

    Raises:
        ValueError: on mismatched lengths, non-finite coordinates, missing year/region, out-of-range species ids,
            duplicate source ids, or ``query_ids`` given without ``src_ids`` (or the reverse).
    """
    validate_params(radius_km, None, same_site_m)
    if degree not in ("count", "weighted"):
        raise ValueError(f"degree={degree!r}: expected 'count' (number of edges) or 'weighted' (sum of weights)")
    qx, qy = validate_xy("queries", query_x, query_y)
    sx, sy = validate_xy("sources", src_x, src_y)
    if len(src_labels) != len(sx):
        raise ValueError(f"sources: {len(sx)} sites but {len(src_labels)} label lists")
    if (query_ids is None) != (src_ids is None):
        raise ValueError("give both query_ids and src_ids (to drop self-edges by id) or neither")
    qids = sids = None
    if query_ids is not None:
        qids = np.asarray(query_ids, dtype=np.int64)
        sids = np.asarray(src_ids, dtype=np.int64)
        if len(qids) != len(qx) or len(sids) != len(sx):
            raise ValueError(
                f"{len(qids)} query ids for {len(qx)} queries / {len(sids)} source ids for {len(sx)} sources"
            )
        validate_unique_ids("sources", sids)
    qkey = _keys("queries", query_year, query_region, len(qx))
    skey = _keys("sources", src_year, src_region, len(sx))
    Y = _labels_csr(src_labels, n_species)

    rows, cols, wts = [], [], []
    src_groups = pd.Series(np.arange(len(sx))).groupby(skey).indices if len(sx) else {}
    for key, q_idx in pd.Series(np.arange(len(qx))).groupby(qkey).indices.items() if len(qx) else []:
        s_idx = src_groups.get(key)
        if s_idx is None:
            continue
        tree = cKDTree(np.column_stack([sx[s_idx], sy[s_idx]]))
        ids_in_group = sids[s_idx] if sids is not None else np.arange(len(s_idx), dtype=np.int64)
        indptr, j, d = query_tree(
            tree,
            ids_in_group,
            qx[q_idx],
            qy[q_idx],
            None if qids is None else qids[q_idx],
            radius_km,
            None,
            exclude_same_site,
            same_site_m,
        )
        rows.append(np.repeat(q_idx, np.diff(indptr)))
        cols.append(s_idx[j])
        wts.append(radius_km - d)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    w = np.concatenate(wts) if wts else np.zeros(0, np.float64)
    if degree == "count":
        deg = np.bincount(r, minlength=len(qx)).astype(np.float64)
    else:
        deg = np.bincount(r, weights=w, minlength=len(qx))
    isolated = int((np.bincount(r, minlength=len(qx)) == 0).sum())
    if isolated:
        log.info(
            "graph features: %d of %d surveys have no edge (no same-year, same-region source within %g km)",
            isolated,
            len(qx),
            radius_km,
        )
    scale_row = np.zeros(len(qx))
    np.divide(1.0, np.sqrt(deg), out=scale_row, where=deg > 0)
    W = sparse.csr_matrix((w * scale_row[r], (r, c)), shape=(len(qx), len(sx)))
    G = (W @ Y).tocsr()
    G.eliminate_zeros()  # weight-0 edges (sources exactly at radius_km) add nothing
    G.sort_indices()
    return GraphFeatures(G.indptr.astype(np.int64), G.indices.astype(np.int32), G.data.astype(np.float32))


def normalise(features: GraphFeatures, scale: float) -> GraphFeatures:
    """Divide every value by the global ``scale`` (> 0)."""
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number (the training features' global max), got {scale!r}")
    return GraphFeatures(features.indptr, features.idx, (features.val / np.float32(scale)).astype(np.float32))


def global_scale(features: GraphFeatures) -> float:
    """The largest value of ``features`` (1.0 when there is none, logged)."""
    if len(features.val) == 0:
        log.warning("graph features: no survey has any edge; global scale set to 1.0")
        return 1.0
    return float(features.val.max())


def graph_features(
    query_x: ArrayLike,
    query_y: ArrayLike,
    query_year: ArrayLike,
    query_region: ArrayLike,
    src_x: ArrayLike,
    src_y: ArrayLike,
    src_year: ArrayLike,
    src_region: ArrayLike,
    src_labels: Sequence[np.ndarray],
    radius_km: float = 10.0,
    exclude_same_site: bool = True,
    scale: float | None = None,
    **kwargs: object,
) -> GraphFeatures:
    """Normalised graph features of queries against sources (e.g. PA-test surveys against all training surveys).

    Args:
        query_x: Query EPSG:3035 x in metres.
        query_y: Query y in metres.
        query_year: Query years.
        query_region: Query regions.
        src_x: Source x in metres.
        src_y: Source y in metres.
        src_year: Source years.
        src_region: Source regions.
        src_labels: Species ids of each source.
        radius_km: Edge cutoff in km.
        exclude_same_site: Drop sources within ``same_site_m`` metres of the query.
        scale: Global normaliser; pass the one :func:`oof_graph_features` returned for the training surveys.
            None uses this call's own maximum (only right when this call covers all training surveys).
        **kwargs: ``query_ids``, ``src_ids``, ``same_site_m``, ``degree``, ``n_species`` (:func:`graph_features_raw`).

    Returns:
        :class:`GraphFeatures` ``(indptr, idx, val)``.
    """
    raw = graph_features_raw(
        query_x,
        query_y,
        query_year,
        query_region,
        src_x,
        src_y,
        src_year,
        src_region,
        src_labels,
        radius_km,
        exclude_same_site,
        **kwargs,  # type: ignore[arg-type]
    )
    return normalise(raw, global_scale(raw) if scale is None else scale)


def oof_graph_features(
    x: ArrayLike,
    y: ArrayLike,
    year: ArrayLike,
    region: ArrayLike,
    labels: Sequence[np.ndarray],
    folds: ArrayLike,
    ids: ArrayLike | None = None,
    radius_km: float = 10.0,
    exclude_same_site: bool = True,
    **kwargs: object,
) -> tuple[GraphFeatures, float]:
    """Out-of-fold graph features of training surveys: fold ``f`` is featurised from the other folds only.

    Args:
        x: Training EPSG:3035 x in metres.
        y: Training y in metres.
        year: Years.
        region: Regions.
        labels: Species ids of each training survey.
        folds: Fold id of each survey (e.g. the spatial splitter's blocks). Repeat visits of one site should share a
            fold; if they do not, ``exclude_same_site=True`` still keeps them out of each other's features.
        ids: SurveyIds (optional; drops self-edges by id as well).
        radius_km: Edge cutoff in km.
        exclude_same_site: Drop sources within ``same_site_m`` metres of the query.
        **kwargs: ``same_site_m``, ``degree``, ``n_species`` (:func:`graph_features_raw`).

    Returns:
        ``(features, scale)``: normalised features in input order, and the global scale to reuse for test surveys.

    Raises:
        ValueError: if ``folds`` has the wrong length or a single fold (nothing to learn from).
    """
    xs, ys = validate_xy("training surveys", x, y)
    f = np.asarray(folds)
    if f.shape != xs.shape:
        raise ValueError(f"folds: {len(f)} fold ids for {len(xs)} training surveys; give one fold id per survey")
    uniq = np.unique(f)
    if len(uniq) < 2:
        raise ValueError(f"folds: found {len(uniq)} distinct fold id(s); out-of-fold features need at least 2 folds")
    yr, rg = np.asarray(year), np.asarray(region, dtype=object)
    sid = None if ids is None else np.asarray(ids, dtype=np.int64)
    if sid is not None:
        validate_unique_ids("training surveys", sid)
    n = len(xs)
    row_vals: list[np.ndarray] = [None] * n  # type: ignore[list-item]
    row_idx: list[np.ndarray] = [None] * n  # type: ignore[list-item]
    for fold in uniq:
        q = np.flatnonzero(f == fold)
        s = np.flatnonzero(f != fold)
        extra = {} if sid is None else {"query_ids": sid[q], "src_ids": sid[s]}
        g = graph_features_raw(
            xs[q],
            ys[q],
            yr[q],
            rg[q],
            xs[s],
            ys[s],
            yr[s],
            rg[s],
            [labels[i] for i in s],
            radius_km,
            exclude_same_site,
            **extra,
            **kwargs,  # type: ignore[arg-type]
        )
        for r, i in enumerate(q):
            a, b = g.indptr[r], g.indptr[r + 1]
            row_idx[i], row_vals[i] = g.idx[a:b], g.val[a:b]
    lens = np.array([len(a) for a in row_idx], dtype=np.int64)
    raw = GraphFeatures(
        np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
        np.concatenate(row_idx).astype(np.int32) if n else np.zeros(0, np.int32),
        np.concatenate(row_vals).astype(np.float32) if n else np.zeros(0, np.float32),
    )
    scale = global_scale(raw)
    return normalise(raw, scale), scale


def graph_feature_frame(survey_ids: ArrayLike, features: GraphFeatures) -> pd.DataFrame:
    """The artifact's rows: ``surveyId`` (int64), ``gfv_idx`` (int32 arrays), ``gfv_val`` (float32 arrays)."""
    ids = np.asarray(survey_ids, dtype=np.int64)
    if len(ids) != len(features.indptr) - 1:
        raise ValueError(f"{len(ids)} survey ids for {len(features.indptr) - 1} feature rows")
    cut = features.indptr[1:-1]
    return pd.DataFrame(
        {
            "surveyId": ids,
            "gfv_idx": pd.Series(np.split(features.idx.astype(np.int32), cut), dtype=object),
            "gfv_val": pd.Series(np.split(features.val.astype(np.float32), cut), dtype=object),
        }
    )


def to_csr(features: GraphFeatures, n_species: int = NUM_CLASSES) -> sparse.csr_matrix:
    """The features as a ``(n, n_species)`` CSR matrix (float32)."""
    return sparse.csr_matrix((features.val, features.idx, features.indptr), shape=(len(features.indptr) - 1, n_species))


def graph_feature_table(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    radius_km: float = 10.0,
    n_folds: int = 5,
    block_km: float = 10.0,
    seed: int = 0,
    degree: str = "count",
    exclude_same_site: bool = True,
    same_site_m: float = 1.0,
    holdout: np.ndarray | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Out-of-fold graph features of the training surveys plus test-survey features, as artifact rows.

    Without ``holdout``: folds are :func:`glc.eval.split.spatial_block_folds` of all training surveys (``n_folds``
    folds of whole ``block_km`` blocks, ``seed``); the training features come from
    :func:`glc.features.graph.oof_graph_features` and the test features from :func:`graph_features` against all
    training surveys with the training features' global ``scale``.

    With ``holdout`` (a model's validation hold-out: True for the training surveys it validates on), the features
    follow that model's splits, so no validation label reaches a training feature (pitfall 15 in docs/contributing.md):

    * training-split surveys (``~holdout``): out of fold over :func:`glc.eval.split.training_folds` of the
      training split alone (the k-fold trainer's folds): a survey's vector comes from the other folds of the
      training split, never from a validation survey;
    * validation surveys (fold ``-2``): from the whole training split, as a test survey would see it;
    * test surveys (fold ``-1``): from every training survey (training split and validation), as before.

    Args:
        train: Training surveys (``surveyId, x, y, year, region, speciesIds``).
        test: Test surveys (``surveyId, x, y, year, region``).
        radius_km: Edge cutoff in km.
        n_folds: Number of spatial folds.
        block_km: Block side of the folds in km.
        seed: Seed of the fold assignment.
        degree: ``count`` or ``weighted``.
        exclude_same_site: Drop sources within ``same_site_m`` metres of the query.
        same_site_m: Same-site distance in metres.
        holdout: Optional boolean mask over ``train`` rows (True = validation survey of the model).

    Returns:
        ``(rows, stats)``: rows ``surveyId, split, fold (-1 for test, -2 for validation), gfv_idx, gfv_val`` sorted
        by ``surveyId``; stats ``scale``, ``fold_sizes``, ``n_empty_vectors`` (no edge, or only weight-0 edges) and
        ``mean_nnz`` per split (and ``n_holdout``).
    """
    import pandas as pd

    from glc.eval.split import spatial_block_folds, training_folds

    kw = {"same_site_m": same_site_m, "degree": degree}
    train = train.reset_index(drop=True)
    if holdout is None:
        fit = np.ones(len(train), bool)
        folds = spatial_block_folds(
            train["x"].to_numpy(), train["y"].to_numpy(), n_folds=n_folds, block_km=block_km, seed=seed
        )
    else:
        hold = np.asarray(holdout, bool)
        if hold.shape != (len(train),):
            raise ValueError(
                f"holdout: {hold.shape} mask for {len(train)} training surveys; give one flag per training survey"
            )
        if hold.all() or not hold.any():
            raise ValueError(
                f"holdout holds out {int(hold.sum())} of {len(train)} training surveys; it must keep some on each side"
            )
        fit = ~hold
        folds = np.full(len(train), -2, np.int64)
        folds[fit] = training_folds(train.loc[fit, "x"], train.loc[fit, "y"], n_folds, block_km, seed)
    src = train[fit].reset_index(drop=True)
    g_fit, scale = oof_graph_features(
        src["x"],
        src["y"],
        src["year"],
        src["region"],
        list(src["speciesIds"]),
        folds[fit],
        ids=src["surveyId"],
        radius_km=radius_km,
        exclude_same_site=exclude_same_site,
        **kw,
    )

    def against(frame: pd.DataFrame, sources: pd.DataFrame) -> GraphFeatures:
        return graph_features(
            frame["x"],
            frame["y"],
            frame["year"],
            frame["region"],
            sources["x"],
            sources["y"],
            sources["year"],
            sources["region"],
            list(sources["speciesIds"]),
            radius_km=radius_km,
            exclude_same_site=exclude_same_site,
            scale=scale,
            query_ids=frame["surveyId"],
            src_ids=sources["surveyId"],
            **kw,
        )

    g_te = against(test, train)
    parts = [graph_feature_frame(src["surveyId"], g_fit).assign(split="train", fold=folds[fit].astype(np.int32))]
    empty = {"train": int((np.diff(g_fit.indptr) == 0).sum())}
    nnz = {"train": float(np.diff(g_fit.indptr).mean()) if len(src) else 0.0}
    if holdout is not None:
        val = train[~fit].reset_index(drop=True)
        g_val = against(val, src)
        parts.append(graph_feature_frame(val["surveyId"], g_val).assign(split="train", fold=np.int32(-2)))
        empty["validation"] = int((np.diff(g_val.indptr) == 0).sum())
        nnz["validation"] = float(np.diff(g_val.indptr).mean())
    parts.append(graph_feature_frame(test["surveyId"], g_te).assign(split="test", fold=np.int32(-1)))
    empty["test"] = int((np.diff(g_te.indptr) == 0).sum())
    nnz["test"] = float(np.diff(g_te.indptr).mean()) if len(test) else 0.0
    rows = pd.concat(parts, ignore_index=True)[["surveyId", "split", "fold", "gfv_idx", "gfv_val"]]
    rows = rows.sort_values("surveyId", ignore_index=True)
    stats = {
        "scale": float(scale),
        "fold_sizes": {int(f): int(c) for f, c in zip(*np.unique(folds[fit], return_counts=True))},
        "n_holdout": int((~fit).sum()),
        "n_empty_vectors": empty,
        "mean_nnz": nnz,
    }
    return rows, stats
