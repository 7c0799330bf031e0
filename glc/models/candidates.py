"""Candidate species and per-(survey, species) features for learned re-ranking (the ``gbm`` model kind).

Scoring all 11,255 species for every survey with a tree model is neither needed nor affordable: a species no
neighbour, region or prior suggests is almost never present. :class:`CandidateBuilder` keeps, per query survey, the
``n_candidates`` species with the best *base score* (mean of the kNN-30 and radius-50 km neighbour frequencies and the
region frequency, global frequency as tie-break) and describes each pair by (:data:`PAIR_NAMES`):

* the distance-weighted neighbour frequencies of the species among the 10 / 30 nearest training surveys and among
  all training surveys within 10 / 50 / 200 km (:mod:`glc.models.neighbours`; a query without neighbours gets 0 there
  and its context features say so);
* the species' frequency in the query's region, in its country, its country and year, its country and plot-area
  class (:data:`GROUPS`; each with the global frequency as fallback below 20 surveys) and overall, and ``log1p`` of its
  number of training surveys;
* the base-score rank of the pair (0 = best);
* ``log1p`` of the distance (km) from the query to the nearest training survey holding the species (capped at
  5,000 km when the species is absent from the sources; repeat visits within 1 m excluded);
* ``niche_dist``: how far the survey's environment is from the species' environmental centroid — the RMS over the
  niche columns (``env`` vectors and ``feat_*`` raster values, standardised with the training mean/std) of the
  survey's value minus the mean over the training surveys holding the species (NaN-aware; NaN without niche
  columns). Species identity never enters the model, so this is how it learns species-environment fit.

With ``protocol_k > 0`` three more columns follow (:data:`PROTOCOL_NAMES`), from the ``protocol_k`` nearest training
surveys of the query's *protocol group* (its country and plot-area class, as the ``country_area`` frequency): the
species' frequency among them, ``log1p`` of the distance (km) to the nearest of them, and their mean number of species.
National programmes record different plot sizes and taxa, so a 4 m^2 plot's nearest neighbours may be 700 m^2 plots of
another programme that list other species; the nearest surveys of the same programme are the better local prior. A
query whose group has no training survey gets NaN in all three (the booster's missing value).

Leak rules are those of the neighbour predictors: the query itself and any source within 1 m of it (repeat visits)
are never used. Candidate recall (the share of a labelled query's species that are candidates) is reported by
:func:`candidate_recall`; what falls outside can never be predicted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from glc.models.frequency import FrequencyModel
from glc.models.neighbours import KNNPredictor, RadiusPredictor

log = logging.getLogger(__name__)

__all__ = ["PAIR_NAMES", "PROTOCOL_NAMES", "CandidateBuilder", "CandidatePairs", "candidate_recall", "pair_labels"]

PAIR_NAMES: tuple[str, ...] = (
    "knn10",
    "knn30",
    "radius10",
    "radius50",
    "radius200",
    "region_freq",
    "country_freq",
    "country_year_freq",
    "country_area_freq",
    "global_freq",
    "log_n_train",
    "base_rank",
    "log_nearest_km",
    "niche_dist",
)
#: Pair features appended with ``protocol_k > 0`` (module docstring).
PROTOCOL_NAMES: tuple[str, ...] = ("protocol_knn", "protocol_log_near_km", "protocol_richness")
_SCORERS: tuple[str, ...] = ("knn10", "knn30", "radius10", "radius50", "radius200")
_FAR_KM = 5000.0
#: Survey groups whose species frequencies are pair features: country; country and year; country and plot-area
#: class (half-decades of m^2). National survey programmes differ in protocol, year and plot size, and so in the
#: species they record.
GROUPS: tuple[str, ...] = ("country", "country_year", "country_area")


def _group_keys(frame: pd.DataFrame, group: str) -> list[str]:
    """The group key of every survey (missing values form their own group)."""
    n = len(frame)
    country = frame["country"].astype(str).to_numpy() if "country" in frame.columns else np.full(n, "?")
    if group == "country":
        return country.tolist()
    if group == "country_year":
        year = (
            pd.to_numeric(frame["year"], errors="coerce")
            if "year" in frame.columns
            else pd.Series(np.nan, index=frame.index)
        )
        return [f"{c}|{'' if pd.isna(y) else int(y)}" for c, y in zip(country, year)]
    area = (
        pd.to_numeric(frame["areaInM2"], errors="coerce").to_numpy(np.float64)
        if "areaInM2" in frame.columns
        else np.full(n, np.nan)
    )
    cls = np.where(np.isfinite(area) & (area > 0), np.round(2 * np.log10(np.where(area > 0, area, 1.0))) / 2, np.nan)
    return [f"{c}|{'' if np.isnan(a) else a}" for c, a in zip(country, cls)]


_CHUNK = 2048


@dataclass
class CandidatePairs:
    """Candidate pairs of ``n`` query surveys: pair ``p`` is (query row ``rows[p]``, species ``species[p]``)."""

    rows: np.ndarray  # (m,) int64 index into the query frame
    species: np.ndarray  # (m,) int64 species ids
    features: np.ndarray  # (m, len(builder.names)) float32: PAIR_NAMES, then PROTOCOL_NAMES with protocol_k


class CandidateBuilder:
    """Candidates and pair features of query surveys from labelled training surveys (module docstring).

    Args:
        n_candidates: species kept per query (at most the training vocabulary).
        niche: array feature sets of the niche distance (with every ``feat_*`` column).
        protocol_k: nearest training surveys of the query's protocol group behind the :data:`PROTOCOL_NAMES`
            columns (0: none).
    """

    def __init__(self, n_candidates: int = 150, niche: tuple[str, ...] = ("env",), protocol_k: int = 0) -> None:
        if int(n_candidates) < 1:
            raise ValueError(f"n_candidates={n_candidates!r} must be >= 1")
        if int(protocol_k) != protocol_k or protocol_k < 0:
            raise ValueError(f"protocol_k={protocol_k!r} must be an integer >= 0 (0: no protocol-group columns)")
        self.n_candidates = int(n_candidates)
        self.niche = tuple(niche)
        self.protocol_k = int(protocol_k)

    @property
    def names(self) -> list[str]:
        """The pair feature columns this builder returns."""
        return list(PAIR_NAMES) + (list(PROTOCOL_NAMES) if self.protocol_k else [])

    def _niche_matrix(self, frame: pd.DataFrame) -> np.ndarray | None:
        """The survey's niche vector: the ``niche`` array columns and every ``feat_*`` column present (NaN kept)."""
        blocks = [
            np.stack([np.asarray(v, np.float64) for v in frame[a]])
            for a in self.niche
            if a in frame.columns and len(frame)
        ]
        blocks += [
            pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64)[:, None]
            for c in sorted(frame.columns)
            if c.startswith("feat_")
        ]
        return np.hstack(blocks) if blocks else None

    def fit(self, train: pd.DataFrame) -> CandidateBuilder:
        """Index ``train`` (surveyId, x, y, region, speciesIds)."""
        if len(train) == 0:
            raise ValueError("CandidateBuilder.fit: no training survey")
        ids, x, y = (
            train["surveyId"].to_numpy(np.int64),
            train["x"].to_numpy(np.float64),
            train["y"].to_numpy(np.float64),
        )
        labels = [np.unique(np.asarray(s, np.int64)) for s in train["speciesIds"]]
        self.freq_ = FrequencyModel(by_region=True).fit(train["region"].astype(str).tolist(), labels)
        self.vocab_ = self.freq_.vocab
        self.scorers_ = {
            "knn10": KNNPredictor(k=10, fallback=None),
            "knn30": KNNPredictor(k=30, fallback=None),
            "radius10": RadiusPredictor(radius_km=10.0, fallback=None),
            "radius50": RadiusPredictor(radius_km=50.0, fallback=None),
            "radius200": RadiusPredictor(radius_km=200.0, fallback=None),
        }
        self.groups_ = {g: FrequencyModel(by_region=True).fit(_group_keys(train, g), labels) for g in GROUPS}
        self.protocol_: dict[str, KNNPredictor] = {}
        if self.protocol_k:
            keys = np.asarray(_group_keys(train, "country_area"))
            for key in np.unique(keys):
                g = np.flatnonzero(keys == key)
                knn = KNNPredictor(k=self.protocol_k, weighting="uniform", fallback=None)
                knn.fit(ids[g], x[g], y[g], [labels[i] for i in g], species_vocab=self.vocab_)
                self.protocol_[str(key)] = knn
        for s in self.scorers_.values():
            s.fit(ids, x, y, labels, species_vocab=self.vocab_)
        flat = np.concatenate(labels)
        owner = np.repeat(np.arange(len(labels)), [len(a) for a in labels])
        col = np.searchsorted(self.vocab_, flat)
        self.n_train_ = np.bincount(col, minlength=len(self.vocab_)).astype(np.float64)
        order = np.argsort(col, kind="stable")
        cut = np.searchsorted(col[order], np.arange(len(self.vocab_) + 1))
        pts = np.column_stack([x, y])
        self._occ = [(pts[owner[order[cut[c] : cut[c + 1]]]]) for c in range(len(self.vocab_))]
        self._trees: dict[int, cKDTree] = {}
        E = self._niche_matrix(train)
        self.niche_mu_ = None
        if E is not None:
            ok = np.isfinite(E)
            cnt = np.maximum(ok.sum(axis=0), 1)
            mean = np.where(ok, E, 0.0).sum(axis=0) / cnt
            sd = np.sqrt(np.where(ok, (E - mean) ** 2, 0.0).sum(axis=0) / cnt)
            sd = np.where(np.isfinite(sd) & (sd > 1e-12), sd, 1.0)
            self.niche_scale_ = (np.nan_to_num(mean), sd)
            Z = (E - self.niche_scale_[0]) / sd
            ok = np.isfinite(Z)
            S = np.zeros((len(self.vocab_), Z.shape[1]))
            N = np.zeros_like(S)
            np.add.at(S, col, np.where(ok, Z, 0.0)[owner])
            np.add.at(N, col, ok[owner].astype(np.float64))
            self.niche_mu_ = np.divide(S, N, out=np.full_like(S, np.nan), where=N > 0)  # species centroid in z units
        return self

    def _niche_dist(self, query: pd.DataFrame, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """RMS distance (train-standardised units) between each pair's survey niche vector and the species' centroid."""
        if self.niche_mu_ is None:
            return np.full(len(rows), np.nan)
        E = self._niche_matrix(query)
        if E is None or E.shape[1] != self.niche_mu_.shape[1]:
            raise ValueError(
                "CandidateBuilder: the query frame lacks the niche columns "
                "of the training frame (join the same feature sets)"
            )
        Z = (E - self.niche_scale_[0]) / self.niche_scale_[1]
        out = np.empty(len(rows))
        for lo in range(0, len(rows), 200_000):
            d = Z[rows[lo : lo + 200_000]] - self.niche_mu_[cols[lo : lo + 200_000]]
            ok = np.isfinite(d)
            n = ok.sum(axis=1)
            ss = np.where(ok, d * d, 0.0).sum(axis=1)
            out[lo : lo + 200_000] = np.where(n > 0, np.sqrt(ss / np.maximum(n, 1)), np.nan)  # no finite dimension: NaN
        return out

    def _nearest_km(self, cols: np.ndarray, qxy: np.ndarray) -> np.ndarray:
        """Distance (km) from each query point to the nearest source holding species column ``cols[p]`` (>= 1 m)."""
        out = np.full(len(cols), _FAR_KM)
        order = np.argsort(cols, kind="stable")
        uniq, start = np.unique(cols[order], return_index=True)
        bounds = np.append(start, len(order))
        for c, lo, hi in zip(uniq, bounds[:-1], bounds[1:]):
            occ = self._occ[int(c)]
            if len(occ) == 0:
                continue
            tree = self._trees.get(int(c))
            if tree is None:
                tree = self._trees[int(c)] = cKDTree(occ)
            sel = order[lo:hi]
            k = min(2, len(occ))
            d, _ = tree.query(qxy[sel], k=k)
            d = d.reshape(len(sel), k)
            d = np.where(d < 1.0, np.inf, d).min(axis=1)  # a source within 1 m is a repeat visit of the query's site
            out[sel] = np.minimum(d / 1000.0, _FAR_KM)
        return out

    def _chunk_scores(
        self, query: pd.DataFrame, lo: int, hi: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray, list[np.ndarray], np.ndarray]:
        """Dense (rows ``lo:hi`` x vocab) neighbour scores, region and group frequencies and base score."""
        q = query.iloc[lo:hi]  # only the chunk's rows are converted
        qx, qy = q["x"].to_numpy(np.float64), q["y"].to_numpy(np.float64)
        qids = q["surveyId"].to_numpy(np.int64)
        dense = {k: s.predict(qx, qy, query_ids=qids).toarray().astype(np.float64) for k, s in self.scorers_.items()}
        reg = self.freq_.predict(q["region"].astype(str).tolist()).astype(np.float64)
        grp = [self.groups_[g].predict(_group_keys(q, g)).astype(np.float64) for g in GROUPS]
        base = (dense["knn30"] + dense["radius50"] + reg) / 3.0 + 1e-6 * self.freq_.global_freq.astype(np.float64)
        return dense, reg, grp, base

    def _columns(
        self,
        scores: tuple[dict[str, np.ndarray], np.ndarray, list[np.ndarray], np.ndarray],
        r: np.ndarray,
        c: np.ndarray,
        rank: np.ndarray,
    ) -> np.ndarray:
        """The pair features but the last two (nearest record, niche distance) of chunk rows ``r``, columns ``c``."""
        dense, reg, grp, _ = scores
        cols = [dense[k][r, c] for k in _SCORERS]
        cols += [
            reg[r, c],
            *(G[r, c] for G in grp),
            self.freq_.global_freq.astype(np.float64)[c],
            np.log1p(self.n_train_)[c],
            rank.astype(np.float64),
        ]
        return np.column_stack(cols)

    def _finish(self, query: pd.DataFrame, rows: np.ndarray, cols: np.ndarray, head: np.ndarray) -> np.ndarray:
        """``head`` (the chunked columns) with the nearest-record and niche-distance columns appended."""
        qxy = np.column_stack([query["x"].to_numpy(np.float64), query["y"].to_numpy(np.float64)])
        near = self._nearest_km(cols, qxy[rows]) if len(rows) else np.zeros(0)
        out = [head, np.log1p(near)[:, None], self._niche_dist(query, rows, cols)[:, None]]
        if self.protocol_k:
            out.append(self._protocol(query, rows, cols))
        return np.hstack(out).astype(np.float32)

    def _protocol(self, query: pd.DataFrame, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The :data:`PROTOCOL_NAMES` columns of pairs (query row ``rows[p]``, vocabulary column ``cols[p]``)."""
        out = np.full((len(rows), len(PROTOCOL_NAMES)), np.nan)
        keys = np.asarray(_group_keys(query, "country_area"))
        qx, qy = query["x"].to_numpy(np.float64), query["y"].to_numpy(np.float64)
        qids = query["surveyId"].to_numpy(np.int64)
        for key in np.unique(keys[rows]) if len(rows) else []:
            if str(key) not in self.protocol_:
                continue  # no training survey of this group: NaN
            knn = self.protocol_[str(key)]
            qi = np.flatnonzero(keys == key)
            pos = np.full(len(query), -1)
            pos[qi] = np.arange(len(qi))
            indptr, j, d = knn.neighbours(qx[qi], qy[qi], query_ids=qids[qi])
            S = knn.scores(indptr, j, d)
            nearest = np.full(len(qi), np.nan)
            has = np.diff(indptr) > 0
            nearest[has] = d[indptr[:-1][has]]
            sel = np.flatnonzero(keys[rows] == key)
            r = pos[rows[sel]]
            out[sel, 0] = np.asarray(S[r, cols[sel]]).ravel()
            out[sel, 1] = np.log1p(nearest[r])
            rich = np.asarray(S.sum(axis=1)).ravel()
            out[sel, 2] = np.where(has[r], rich[r], np.nan)
        return out

    def pairs(self, query: pd.DataFrame) -> CandidatePairs:
        """The candidate pairs of ``query`` (surveyId, x, y, region), ``n_candidates`` per survey, best first."""
        if not hasattr(self, "vocab_"):
            raise RuntimeError("CandidateBuilder.pairs called before fit")
        n, V = len(query), len(self.vocab_)
        C = min(self.n_candidates, V)
        rows_p, cols_p, feats = [], [], []
        for lo in range(0, n, _CHUNK):
            hi = min(n, lo + _CHUNK)
            sc = self._chunk_scores(query, lo, hi)
            base = sc[3]
            top = np.argpartition(-base, C - 1, axis=1)[:, :C] if C < V else np.tile(np.arange(V), (hi - lo, 1))
            tb = np.take_along_axis(base, top, axis=1)
            top = np.take_along_axis(top, np.lexsort((top, -tb), axis=1), axis=1)
            r = np.repeat(np.arange(hi - lo), C)
            c = top.reshape(-1)
            feats.append(self._columns(sc, r, c, np.tile(np.arange(C), hi - lo)))
            rows_p.append(r + lo)
            cols_p.append(c)
        rows = np.concatenate(rows_p) if rows_p else np.zeros(0, np.int64)
        cols = np.concatenate(cols_p) if cols_p else np.zeros(0, np.int64)
        head = np.vstack(feats) if feats else np.zeros((0, len(PAIR_NAMES) - 2))
        return CandidatePairs(rows.astype(np.int64), self.vocab_[cols], self._finish(query, rows, cols, head))

    def pair_features(self, query: pd.DataFrame, rows: np.ndarray, species: np.ndarray) -> np.ndarray:
        """The :data:`PAIR_NAMES` features of given pairs (query row ``rows[p]``, species ``species[p]``), e.g. the
        candidates another model proposed. ``base_rank`` is the species' rank among the whole vocabulary; a species
        no training survey holds gets zero frequencies, rank = vocabulary size, the 5,000 km cap and a NaN niche
        distance."""
        if not hasattr(self, "vocab_"):
            raise RuntimeError("CandidateBuilder.pair_features called before fit")
        rows, species = np.asarray(rows, np.int64), np.asarray(species, np.int64)
        V = len(self.vocab_)
        col = np.minimum(np.searchsorted(self.vocab_, species), V - 1)
        known = self.vocab_[col] == species
        head = np.zeros((len(rows), len(PAIR_NAMES) - 2))
        for lo in range(0, len(query), _CHUNK):
            hi = min(len(query), lo + _CHUNK)
            sel = np.flatnonzero((rows >= lo) & (rows < hi) & known)
            if not len(sel):
                continue
            sc = self._chunk_scores(query, lo, hi)
            # rank by decreasing base score, ties by column (a stable sort), as pairs() orders its candidates
            rank = np.argsort(np.argsort(-sc[3], axis=1, kind="stable"), axis=1)
            r, c = rows[sel] - lo, col[sel]
            head[sel] = self._columns(sc, r, c, rank[r, c])
        head[~known, len(PAIR_NAMES) - 3] = V  # the other columns of an unknown species stay 0
        out = self._finish(query, rows, col, head)
        out[~known, len(PAIR_NAMES) - 2] = np.log1p(_FAR_KM)
        out[~known, len(PAIR_NAMES) - 1] = np.nan
        if self.protocol_k:
            out[~known, len(PAIR_NAMES)] = np.where(np.isnan(out[~known, len(PAIR_NAMES)]), np.nan, 0.0)
        return out


def pair_labels(pairs: CandidatePairs, species_lists: list[np.ndarray]) -> np.ndarray:
    """1.0 where the pair's species is in its query survey's species list, else 0.0."""
    lens = np.array([len(np.unique(np.asarray(s))) for s in species_lists], dtype=np.int64)
    truth_rows = np.repeat(np.arange(len(species_lists)), lens)
    truth_sp = (
        np.concatenate([np.unique(np.asarray(s, np.int64)) for s in species_lists])
        if len(species_lists)
        else np.zeros(0, np.int64)
    )
    big = np.int64(1) << np.int64(32)
    return np.isin(pairs.rows * big + pairs.species, truth_rows * big + truth_sp).astype(np.float32)


def candidate_recall(pairs: CandidatePairs, species_lists: list[np.ndarray]) -> float:
    """Share of the true (survey, species) pairs that are candidates."""
    total = sum(len(np.unique(np.asarray(s))) for s in species_lists)
    return float(pair_labels(pairs, species_lists).sum() / total) if total else float("nan")
