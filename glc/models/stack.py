"""Stacking (``model.kind = "stack"``): a second-level LightGBM re-ranker trained on its members' out-of-fold scores.

Averaging members (``blend``) cannot beat the best one when it is best almost everywhere; a second-level model can,
by learning *where* each member is right. The stacker scores (survey, species) pairs:

* **candidates** = the union of the members' top ``member_top`` species of the survey (a species no member ranks
  there scores 0);
* **member features**, per member: its score for the species (0 outside its table), its rank in the survey's row
  (the table width when absent), the score over the survey's best score, and per survey its best score and its sum
  of scores (the expected number of species); plus how many members rank the species in their top ``member_top``;
* **context features** (``context = true``): the pair features of the ``gbm`` re-ranker
  (:data:`glc.models.candidates.PAIR_NAMES`: neighbour frequencies, region / country / year / plot-size frequencies,
  distance to the species' nearest record, niche distance), from a builder fitted on the surveys the members were
  fitted on, and the survey features (:class:`glc.features.tabular.TabularEncoder` location, year, area, region,
  country, ``features`` sets; :func:`glc.features.tabular.context_features` neighbour density and richness) — so the
  stacker knows which survey, region and species it is looking at.

The booster is monotone: never decreasing in a member's score and its relative score, never increasing in its rank.
A stack of one member therefore never reverses that member's order of two species of a survey (it may tie them).

**The mass outside the candidates** (``rest = "model"``). A species no member ranks is no candidate and scores 0, so
a stacked table knows nothing of the survey's species it cannot rank — on the real surveys ~39 % of them. The
expected-F1 decoders (``expected_f1``, ``expected_f1_mc``; the Platt-calibrated one ignores it) size each set from the
expected number of present species, ``prob_rest`` included, and an empty ``prob_rest`` tells them a species-poor
survey. With ``rest = "model"`` a Poisson LightGBM learns, from the
out-of-fold surveys (their species outside their out-of-fold candidates), how many of a survey's species fall
outside its candidates, from its survey-level columns (each member's best score and sum of scores, the survey and
context features, the number of candidates); its prediction is the stacked table's ``prob_rest``.

**Out-of-fold scores, never scores of surveys a member was fitted on.** Two ways to name the members, as in
``blend``:

* ``models = ["gbm", "random_forest", ...]`` (in-memory benchmark entries, e.g. inside ``bench.real_cv``): the
  training surveys are cut into ``folds`` spatial folds of ``block_km`` blocks; each member is fitted on all folds
  but one and scores that one (its pair context from a builder fitted on the same folds). The stacker is trained on
  these out-of-fold pairs; then the members are refitted on all training surveys and score the queries
  (``queries = "refit"``), or (``"fold_mean"``) each fold's fit also scores the queries and their mean is used: the
  kind of scores the stacker was trained on, with one fit fewer per member.
* ``experiments = ["fusion-concat", "gbm", ...]`` (other experiments of ``tasks/``, their ``Predict`` artifacts read,
  nothing retrained): the members' scores of the experiment's validation surveys are out-of-fold by construction
  (every member was fitted without the validation blocks). The stacker is **cross-fitted** over them: the validation
  surveys are cut into ``folds`` spatial folds, and each fold's stacked scores come from a stacker trained on the
  other folds, so the decoder is still fitted on scores of surveys nothing in the chain was trained on. The test
  surveys are scored by a stacker trained on every validation survey.

Candidate recall, the fold sizes, each member's and the stack's validation sample-F1 and the booster's top features
go to the summary (``Predict``'s for experiments).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from glc.models.blend import blend_tables, member_specs, same_surveys
from glc.models.candidates import PAIR_NAMES
from glc.models.gbm import binary_params, tabular_feature_sets
from glc.models.registry import ModelSpec, register
from glc.params import Param
from glc.predict.scores import ScoreTable, top_n

log = logging.getLogger(__name__)

__all__ = ["STACK_PARAMS", "Stacker", "combine_stack", "fit_predict_stack", "member_pairs"]

STACK_PARAMS: dict[str, Param] = {
    "experiments": Param(
        [], "member experiments (tasks/<name>.toml): their validation and test scores are stacked", type="list[str]"
    ),
    "models": Param(
        [],
        "member benchmark entries of in-memory kinds (e.g. gbm, random_forest), refitted out of fold",
        type="list[str]",
    ),
    "member_top": Param(40, "each member's best species per survey that become candidates (their union)", min=1),
    "folds": Param(
        5,
        "spatial folds: out-of-fold member scores (models) or the stacker's cross-fitting over the validation "
        "surveys (experiments)",
        min=2,
    ),
    "block_km": Param(10.0, "block size (km) of the folds", min=0.0, min_exclusive=True),
    "queries": Param(
        "refit",
        "models: the queries' member scores: refit (members refitted on all training surveys) or fold_mean (the mean "
        "of the out-of-fold fits' scores, the kind of scores the stacker trained on; one fit fewer per member)",
        choices=("refit", "fold_mean"),
    ),
    "context": Param(True, "add the gbm re-ranker's pair features and the survey features to the member features"),
    "features": Param(
        [],
        'feature sets joined as survey features (e.g. ["env"]); none on the real surveys',
        type="list[str]",
        choices=tabular_feature_sets,
    ),
    "rest": Param(
        "none",
        "the mass outside the candidates (a score table's prob_rest, read by the expected_f1 and expected_f1_mc "
        "decoders): none (0) or "
        "model (a Poisson booster's expected number of a survey's species that no member ranks in its top member_top, "
        "fitted on the out-of-fold surveys)",
        choices=("none", "model"),
    ),
    "n_estimators": Param(400, "boosting rounds", min=1),
    "learning_rate": Param(0.03, "LightGBM learning rate", min=0.0, min_exclusive=True),
    "num_leaves": Param(15, "leaves per tree", min=2),
    "min_child_samples": Param(100, "minimum pairs per leaf", min=1),
    "subsample": Param(0.8, "row fraction per round (bagging)", min=0.0, max=1.0, min_exclusive=True),
    "colsample": Param(0.8, "feature fraction per tree", min=0.0, max=1.0, min_exclusive=True),
    "threads": Param(2, "LightGBM threads (results are deterministic for a given value)", min=1),
}

_BIG = np.int64(1) << np.int64(32)
#: Per-member feature names (``{member}:{name}``) and their monotone constraint in the booster.
MEMBER_FEATURES: tuple[tuple[str, int], ...] = (("score", 1), ("rank", -1), ("rel", 1), ("top1", 0), ("sum", 0))
#: Design columns that describe the pair, not the survey (left out of the missing-mass booster's survey features).
_PAIR_LEVEL = frozenset(("n_members_top", *PAIR_NAMES))


def _aligned(table: ScoreTable, ids: np.ndarray, who: str) -> np.ndarray:
    """Row of ``table`` for each survey of ``ids``."""
    pos = pd.Series(np.arange(len(table.survey_ids)), index=table.survey_ids)
    missing = np.setdiff1d(ids, table.survey_ids)
    if len(missing):
        raise ValueError(
            f"stack: member {who!r} has no scores for {len(missing)} survey(s) (e.g. {missing[:5].tolist()}); "
            "members must score the same surveys"
        )
    return pos.loc[ids].to_numpy()


def member_pairs(
    tables: Sequence[ScoreTable], ids: np.ndarray, top: int, names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Candidate pairs of surveys ``ids`` (the union of each member's ``top`` species) and their member features.

    Returns:
        ``(rows, species, X, feature names)``: pair ``p`` is (row ``rows[p]`` of ``ids``, species ``species[p]``),
        sorted by row then species.
    """
    names = list(names or [f"m{i}" for i in range(len(tables))])
    ids = np.asarray(ids, np.int64)
    rowsets = [_aligned(t, ids, n) for t, n in zip(tables, names)]
    keys = []
    for t, r in zip(tables, rowsets):
        k = min(int(top), t.species.shape[1])
        keys.append(np.repeat(np.arange(len(ids)), k) * _BIG + t.species[r, :k].reshape(-1))
    cand = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    rows, species = (cand // _BIG).astype(np.int64), (cand % _BIG).astype(np.int64)
    cols, fnames = [], []
    votes = np.zeros(len(cand))
    for t, r, name, kk in zip(tables, rowsets, names, keys):
        N = t.species.shape[1]
        flat = np.repeat(np.arange(len(ids)), N) * _BIG + t.species[r].reshape(-1)
        order = np.argsort(flat, kind="stable")
        at = np.minimum(np.searchsorted(flat[order], cand), len(flat) - 1)
        hit = flat[order][at] == cand
        j = order[at]  # flat index (row * N + position) of the pair in the member's table
        prob = t.prob[r].reshape(-1).astype(np.float64)
        score = np.where(hit, prob[j], 0.0)
        rank = np.where(hit, j % N, N).astype(np.float64)
        best = t.prob[r].max(axis=1).astype(np.float64) if N else np.zeros(len(ids))
        total = t.prob[r].sum(axis=1).astype(np.float64) + t.prob_rest[r].astype(np.float64)
        rel = np.divide(score, best[rows], out=np.zeros_like(score), where=best[rows] > 0)
        cols += [score, rank, rel, best[rows], total[rows]]
        fnames += [f"{name}:{f}" for f, _ in MEMBER_FEATURES]
        votes += np.isin(cand, kk)
    cols.append(votes)
    fnames.append("n_members_top")
    X = np.column_stack(cols).astype(np.float32) if cols else np.zeros((len(cand), 0), np.float32)
    return rows, species, X, fnames


class Stacker:
    """The second-level booster over candidate pairs (module docstring).

    Args:
        model_cfg: a resolved ``[model]`` table of kind ``stack`` (see :data:`STACK_PARAMS`).
        names: member names (feature-name prefixes).
        seed: random seed (folds, bagging).
    """

    def __init__(self, model_cfg: Mapping[str, Any], names: Sequence[str], seed: int = 0) -> None:
        self.cfg = {**{k: p.default for k, p in STACK_PARAMS.items()}, **dict(model_cfg)}
        self.member_names = list(names)
        self.seed = int(seed)

    def design(
        self, tables: Sequence[ScoreTable], query: pd.DataFrame, source: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, species, X)`` of the candidate pairs of ``query`` (rows of ``query``, reset index) scored by
        ``tables``, whose members were fitted on ``source`` (the context features' training surveys)."""
        from glc.features.tabular import CONTEXT_NAMES, TabularEncoder, context_features
        from glc.models.candidates import PAIR_NAMES, CandidateBuilder

        query = query.reset_index(drop=True)
        ids = query["surveyId"].to_numpy(np.int64)
        rows, species, X, names = member_pairs(tables, ids, int(self.cfg["member_top"]), self.member_names)
        if self.cfg["context"]:
            sets = tuple(self.cfg["features"])
            builder = CandidateBuilder(1, sets).fit(source)
            if not hasattr(self, "enc_"):
                self.enc_ = TabularEncoder(arrays=sets).fit(source)
            S = np.hstack([self.enc_.transform(query), context_features(source, query)]).astype(np.float32)
            X = np.hstack([X, builder.pair_features(query, rows, species), S[rows]])
            names = names + list(PAIR_NAMES) + self.enc_.names_ + list(CONTEXT_NAMES)
        self.names_ = names
        return rows, species, X

    def fit(self, X: np.ndarray, y: np.ndarray) -> Stacker:
        """Train the booster on pair features ``X`` and pair labels ``y`` (1 = the species is present)."""
        import lightgbm as lgb

        if len(y) == 0 or y.min() == y.max():
            raise ValueError(
                f"stack: {len(y)} training pair(s), {int(y.sum())} positive; the stacker needs both present and "
                "absent candidates (more surveys, or a larger member_top)"
            )
        c = self.cfg
        mono = {f"{m}:{f}": s for m in self.member_names for f, s in MEMBER_FEATURES}
        cat = [i for i, n in enumerate(self.names_) if n in ("region", "country")]
        params = {
            **binary_params(c, self.seed),
            "monotone_constraints": [mono.get(n, 0) for n in self.names_],
            "monotone_constraints_method": "advanced",
        }
        data = lgb.Dataset(X, y, feature_name=[_safe(n) for n in self.names_], categorical_feature=cat)
        self.booster_ = lgb.train(params, data, num_boost_round=int(c["n_estimators"]))
        self.n_train_pairs_, self.train_positive_ = len(y), float(y.mean())
        return self

    def survey_features(self, rows: np.ndarray, X: np.ndarray, n: int) -> np.ndarray:
        """Per survey (``n`` rows): the design's survey-level columns (each member's best score and sum of scores,
        the survey and context features) and its number of candidates."""
        keep = [
            i
            for i, nm in enumerate(self.names_)
            if nm.endswith((":top1", ":sum")) or (":" not in nm and nm not in _PAIR_LEVEL)
        ]
        F = np.full((n, len(keep) + 1), np.nan, np.float32)
        first = np.unique(rows, return_index=True)
        F[first[0], :-1] = X[first[1]][:, keep]
        F[:, -1] = np.bincount(rows, minlength=n)
        return F

    def fit_rest(self, F: np.ndarray, missing: np.ndarray) -> Stacker:
        """Fit the missing-mass booster: survey features ``F`` -> number of the survey's species outside its
        candidates (``rest = "model"``). A small fixed Poisson booster (300 rounds of 7 leaves, 50 surveys a leaf):
        one number per survey from a few thousand surveys. None without ``rest = "model"``, or when no survey has a
        species outside (Poisson needs a positive label): then :meth:`predict_rest` gives 0."""
        import lightgbm as lgb

        missing = np.asarray(missing, np.float64)
        if self.cfg["rest"] != "model" or missing.sum() == 0:
            self.rest_ = None
            return self
        params = {
            **binary_params(self.cfg, self.seed),
            "objective": "poisson",
            "num_leaves": 7,
            "min_child_samples": 50,
            "learning_rate": 0.03,
        }
        self.rest_ = lgb.train(params, lgb.Dataset(F, missing), num_boost_round=300)  # region/country as their codes
        return self

    def predict_rest(self, F: np.ndarray) -> np.ndarray:
        """Expected number of a survey's species outside its candidates (0 without ``rest = "model"``)."""
        if not hasattr(self, "rest_"):
            raise RuntimeError("Stacker.predict_rest called before fit_rest")
        if self.rest_ is None:
            return np.zeros(len(F))
        r = self.rest_.predict(F, num_threads=int(self.cfg["threads"]))
        if not np.isfinite(r).all():
            raise ValueError("stack: the missing-mass booster returned non-finite values")
        return np.maximum(r, 0.0)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Presence probability of each pair."""
        if not hasattr(self, "booster_"):
            raise RuntimeError("Stacker.score called before fit")
        p = self.booster_.predict(X, num_threads=int(self.cfg["threads"]))
        if not np.isfinite(p).all():
            raise ValueError("stack: the booster returned non-finite probabilities")
        return p

    def top_features(self, k: int = 12) -> dict[str, float]:
        """The ``k`` features with the largest share of the booster's gain."""
        gain = self.booster_.feature_importance("gain")
        share = gain / max(gain.sum(), 1e-12)
        return {self.names_[i]: round(float(share[i]), 4) for i in np.argsort(-share)[:k]}


def _safe(name: str) -> str:
    """A LightGBM-safe feature name."""
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def _labels(rows: np.ndarray, species: np.ndarray, lists: Sequence[Any]) -> np.ndarray:
    from glc.models.candidates import CandidatePairs, pair_labels

    return pair_labels(CandidatePairs(rows, species, np.zeros((len(rows), 0), np.float32)), list(lists))


def _n_species(lists: Sequence[Any]) -> np.ndarray:
    """Distinct species of each survey's list."""
    return np.array([len(np.unique(np.asarray(s))) for s in lists], np.float64)


def _recall(y: np.ndarray, lists: Sequence[Any]) -> float:
    total = _n_species(lists).sum()
    return round(float(y.sum() / total), 4) if total else float("nan")


def pairs_table(
    ids: np.ndarray, rows: np.ndarray, species: np.ndarray, prob: np.ndarray, n: int, rest: np.ndarray | None = None
) -> ScoreTable:
    """The top-``n`` score table of surveys ``ids`` from scored pairs (a species that is no candidate scores 0);
    ``rest`` (per survey) is added to its ``prob_rest``: the expected mass outside the candidates."""
    vocab, col = np.unique(species, return_inverse=True)
    if len(vocab) == 0:
        raise ValueError("stack: no candidate pair; the members' tables are empty")
    P = np.zeros((len(ids), len(vocab)), np.float32)
    P[rows, col] = prob
    t = top_n(np.asarray(ids, np.int64), P, vocab, n)
    if rest is None:
        return t
    return ScoreTable(t.survey_ids, t.species, t.prob, (t.prob_rest + np.asarray(rest)).astype(t.prob_rest.dtype))


def _missing(rows: np.ndarray, y: np.ndarray, lists: Sequence[Any]) -> np.ndarray:
    """Per survey: how many of its species are not among its candidate pairs (``y`` their labels)."""
    n_true = _n_species(lists)
    return n_true - np.bincount(rows, weights=y, minlength=len(n_true))


def fit_predict_stack(
    train: pd.DataFrame, query: pd.DataFrame, model_cfg: Mapping[str, Any], seed: int = 0
) -> ScoreTable:
    """In-memory stack of registry benchmark entries ``model_cfg["models"]`` (module docstring)."""
    from glc.eval.split import spatial_block_folds

    t0 = time.time()
    names = list(model_cfg["models"])
    specs = member_specs(names, int(model_cfg["top_n"]), "stack")
    stk = Stacker(model_cfg, names, seed)
    train, query = train.reset_index(drop=True), query.reset_index(drop=True)
    K = int(stk.cfg["folds"])
    folds = spatial_block_folds(
        train["x"].to_numpy(), train["y"].to_numpy(), n_folds=K, block_km=float(stk.cfg["block_km"]), seed=seed + 31
    )
    Xs, ys, sids, Fs, miss = [], [], [], [], []
    mean = stk.cfg["queries"] == "fold_mean"
    query_tables: list[list[ScoreTable]] = [[] for _ in specs]
    qids = query["surveyId"].to_numpy(np.int64)
    for f in range(K):
        held = folds == f
        src, q = train[~held].reset_index(drop=True), train[held].reset_index(drop=True)
        both = pd.concat([q, query], ignore_index=True) if mean else q  # one fit scores the fold and the queries
        tables = [s.fit_predict(src, both, c) for s, c in specs]
        if mean:
            for i, t in enumerate(tables):
                query_tables[i].append(_subset(t, qids))
            tables = [_subset(t, q["surveyId"].to_numpy(np.int64)) for t in tables]
        rows, species, X = stk.design(tables, q, src)
        Xs.append(X)
        ys.append(_labels(rows, species, q["speciesIds"]))
        sids.append(q["surveyId"].to_numpy(np.int64)[rows])
        Fs.append(stk.survey_features(rows, X, len(q)))
        miss.append(_missing(rows, ys[-1], q["speciesIds"]))
        log.info("stack: fold %d/%d scored out of fold by %s (%d pairs)", f + 1, K, names, len(rows))
    y, X_train = np.concatenate(ys), np.vstack(Xs)
    del Xs
    stk.fit(X_train, y).fit_rest(np.vstack(Fs), np.concatenate(miss))
    stk.train_survey_ids_ = np.concatenate(sids)  # the survey of each training pair (tests read it)
    stk.train_X_ = X_train
    if mean:
        n = int(model_cfg["top_n"])
        tables = [blend_tables(ts, [1.0 / K] * K, "none", n) for ts in query_tables]
    else:
        tables = [s.fit_predict(train, query, c) for s, c in specs]
    rows, species, X = stk.design(tables, query, train)
    rest = stk.predict_rest(stk.survey_features(rows, X, len(query)))
    log.info(
        "stack of %s: %d out-of-fold pairs (%.1f%% positive, candidate recall %.3f), %.1f s",
        names,
        len(y),
        100 * y.mean(),
        _recall(y, train["speciesIds"]),
        time.time() - t0,
    )
    _LAST["stacker"] = stk
    return pairs_table(qids, rows, species, stk.score(X), int(model_cfg["top_n"]), rest)


def _subset(table: ScoreTable, ids: np.ndarray) -> ScoreTable:
    """The rows of ``table`` for surveys ``ids``, in that order."""
    r = _aligned(table, ids, "subset")
    return ScoreTable(table.survey_ids[r], table.species[r], table.prob[r], table.prob_rest[r])


#: The last in-memory stacker fitted in this process (its training pairs, for inspection and tests).
_LAST: dict[str, Stacker] = {}


def combine_stack(
    members: Mapping[str, tuple[ScoreTable, ScoreTable]],
    truth: Mapping[int, np.ndarray],
    model_cfg: Mapping[str, Any],
    surveys: pd.DataFrame | None = None,
    seed: int = 0,
    **_: Any,
) -> tuple[ScoreTable, ScoreTable, dict[str, Any]]:
    """The stack of member experiments' ``(validation, test)`` score tables (module docstring), cross-fitted over
    the validation surveys.

    Args:
        surveys: the survey table (training and test rows; with the ``features`` sets joined when ``context``).

    Raises:
        ValueError: members scoring other surveys; no survey table.
    """
    from glc.decoding import fit_decoder
    from glc.eval.split import spatial_block_folds

    if surveys is None:
        raise ValueError("stack: combine needs the survey table (surveys=...)")
    t0 = time.time()
    names = list(members)
    same_surveys(names, [members[n] for n in names], "stack")
    vals, tests = [members[n][0] for n in names], [members[n][1] for n in names]
    by_id = surveys.drop_duplicates("surveyId").set_index("surveyId", drop=False)
    val_ids, test_ids = vals[0].survey_ids.astype(np.int64), tests[0].survey_ids.astype(np.int64)
    train = surveys[surveys["split"] == "train"]
    val_q, test_q = by_id.loc[val_ids].reset_index(drop=True), by_id.loc[test_ids].reset_index(drop=True)
    fitted_on = train[~train["surveyId"].isin(val_ids)].reset_index(drop=True)  # what the members were fitted on
    stk = Stacker(model_cfg, names, seed)
    rows, species, X = stk.design(vals, val_q, fitted_on)
    lists = [truth[int(s)] for s in val_ids]
    y = _labels(rows, species, lists)
    K = int(stk.cfg["folds"])
    folds = spatial_block_folds(
        val_q["x"].to_numpy(), val_q["y"].to_numpy(), n_folds=K, block_km=float(stk.cfg["block_km"]), seed=seed + 37
    )
    F, miss = stk.survey_features(rows, X, len(val_ids)), _missing(rows, y, lists)
    p, rest = np.zeros(len(rows)), np.zeros(len(val_ids))
    for f in range(K):
        held = folds[rows] == f
        fold = copy.copy(stk).fit(X[~held], y[~held])  # a fold stacker: same features
        p[held] = fold.score(X[held])
        rest[folds == f] = fold.fit_rest(F[folds != f], miss[folds != f]).predict_rest(F[folds == f])
    n = int(model_cfg["top_n"])
    val = pairs_table(val_ids, rows, species, p, n, rest)
    stk.fit(X, y).fit_rest(F, miss)
    t_rows, t_species, tX = stk.design(tests, test_q, train.reset_index(drop=True))  # the same survey encoding
    test_rest = stk.predict_rest(stk.survey_features(t_rows, tX, len(test_ids)))
    test = pairs_table(test_ids, t_rows, t_species, stk.score(tX), n, test_rest)

    def f1(t: ScoreTable) -> float:
        cols = t.truth_columns(truth)
        k = min(100, t.prob.shape[1])
        return round(float(fit_decoder("expected_f1", t.prob, cols, k_max=k, prob_rest=t.prob_rest)["f1"]), 4)

    info = {
        "members": names,
        "member_val_f1": {nm: f1(t) for nm, t in zip(names, vals)},
        "val_f1_cross_fitted": f1(val),
        "n_val_surveys": len(val_ids),
        "n_pairs": len(y),
        "positive_share": round(float(y.mean()), 5),
        "candidate_recall": _recall(y, lists),
        "folds": K,
        "fit": "members' validation scores, stacker cross-fitted over spatial folds of the validation surveys",
        "top_features": stk.top_features(),
        "fit_seconds": round(time.time() - t0, 2),
    }
    log.info("stack of %s: validation F1 %s (members %s)", names, info["val_f1_cross_fitted"], info["member_val_f1"])
    return val, test, info


#: The real benchmark's stack members (in-memory entries, refitted on 4 inner folds) and tasks/stack.toml's booster and
#: candidates (chosen on the full world's cross-fitted validation).
_TREE_MEMBERS = ("gbm", "random_forest", "radius50km", "knn10")
_CHOSEN: dict[str, Any] = {"folds": 4, "member_top": 60, "n_estimators": 800, "num_leaves": 31}


def _check(m: Mapping[str, Any]) -> None:
    if m["experiments"] and m["models"]:
        raise ValueError(
            "model.experiments (member experiments of tasks/) or model.models (in-memory benchmark entries): "
            "give exactly one"
        )


register(
    ModelSpec(
        "stack",
        "stacking: a monotone LightGBM re-ranker on the members' out-of-fold scores, ranks and the gbm pair context",
        runner="memory",
        params=STACK_PARAMS,
        fit_predict=fit_predict_stack,
        check=_check,
        features=lambda m: tuple(m["features"]) if m["context"] else (),
        members=lambda m: tuple(m["experiments"]),
        combine=combine_stack,
        benchmarks={
            # the expected number of a survey's species outside the candidates as the table's prob_rest (chosen on the
            # stacker's inner-fold validation: 0.2535 against 0.2501 without; the union of the members' top 60 holds
            # only ~61 % of a real survey's species, and the expected-F1 decoders size the sets from that mass), and
            # 100 boosting rounds, not the full world's 800 (the same inner-fold validation: 0.2560 against 0.2526;
            # 3,773 training surveys an outer fold, against the full world's ~70,000, want a lighter booster)
            "stack_trees": {"models": list(_TREE_MEMBERS), **_CHOSEN, "rest": "model", "n_estimators": 100},
            # plus a member of another family: graph-feature neighbours (gfv10km) beside the spatial ones
            "stack_trees_gfv": {"models": [*_TREE_MEMBERS, "gfv10km"], **_CHOSEN},
            # members refitted on 7/8 of an outer fold's training surveys for the out-of-fold scores, not 3/4: closer
            # to the refit that scores the queries (the gbm's own inner folds gained from 4 -> 8 for the same reason)
            "stack_trees_f8": {"models": list(_TREE_MEMBERS), **{**_CHOSEN, "folds": 8}},
            "stack_trees_mean": {"models": list(_TREE_MEMBERS), "folds": 4, "queries": "fold_mean"},
            # stack_trees with the gbm that also reads the protocol-group neighbours (gbm_protocol)
            "stack_trees_protocol": {
                "models": ["gbm_protocol", *_TREE_MEMBERS[1:]],
                **_CHOSEN,
                "rest": "model",
                "n_estimators": 100,
            },
        },
    )
)
