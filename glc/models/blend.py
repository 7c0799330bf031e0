"""Late fusion (GLC2020 run 4, generalised): ``model.kind = "blend"`` averages the score tables of other models.

Two ways to name the members:

* ``experiments = ["rf", "inception"]`` — other experiments of ``tasks/``: ``Predict`` of the blend requires their
  ``Predict`` artifacts and reads their validation and test score tables (nothing is retrained). Their validation
  surveys must be the same (same ``[validation]`` and ``seed``), or the blend refuses.
* ``models = ["knn10", "radius50km"]`` — benchmark entries of the model registry (:attr:`ModelSpec.benchmarks`,
  in-memory kinds): fitted in memory by :func:`fit_predict_blend`, so the blend runs inside the spatial-CV
  benchmarks (e.g. on the real surveys). Its weights are fitted on a spatial hold-out of the training surveys
  (``validation_fraction``, 10 km blocks), then the members are refitted on all training surveys.

Blending: each member's table is made dense over the union of their species (a species outside a member's top-N
scores 0 there), optionally normalised per survey (``normalise = "sum"``: each row divided by its sum, the
probability-distribution average of GLC2020; ``"none"``: the members' scores as they are, right for calibrated
presence probabilities), and averaged with weights ``w`` (``w >= 0``, ``sum w = 1``), then re-ranked (top ``top_n``).

Weights: fixed (``weights = [0.5, 0.5]``: the equal-weight GLC2020 fusion) or, when ``weights`` is empty, fitted
on the validation scores: every point of the simplex grid with step ``weight_step`` (vertices included, so a single
member is always a candidate) is scored by the validation sample-F1 of the expected-F1 decoder fitted on it; the
best wins (ties: the first in grid order). The fitted weights and every member's validation F1 go to ``Predict``'s
summary.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from glc.models.registry import ModelSpec, register
from glc.params import Param
from glc.predict.scores import ScoreTable, top_n

log = logging.getLogger(__name__)

__all__ = [
    "blend_tables",
    "combine_experiments",
    "fit_blend_weights",
    "fit_predict_blend",
    "member_specs",
    "same_surveys",
    "simplex_grid",
]

NORMALISE = ("none", "sum")


def _dense(tables: Sequence[ScoreTable], ids: np.ndarray, normalise: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Each table as a dense (len(ids) x vocab) matrix over the union vocabulary, rows in ``ids`` order, normalised
    per survey (``normalise``)."""
    vocab = np.unique(np.concatenate([t.species.reshape(-1) for t in tables]))
    out = []
    for t in tables:
        pos = pd.Series(np.arange(len(t.survey_ids)), index=t.survey_ids)
        missing = np.setdiff1d(ids, t.survey_ids)
        if len(missing):
            raise ValueError(
                f"blend: a member has no scores for {len(missing)} survey(s) (e.g. "
                f"{missing[:5].tolist()}); members must score the same surveys"
            )
        r = pos.loc[ids].to_numpy()
        M = np.zeros((len(ids), len(vocab)), np.float64)
        rows = np.repeat(np.arange(len(ids)), t.species.shape[1])
        M[rows, np.searchsorted(vocab, t.species[r].reshape(-1))] = t.prob[r].reshape(-1)
        out.append(_normalise(M, normalise))
    return out, vocab


def _normalise(M: np.ndarray, how: str) -> np.ndarray:
    if how not in NORMALISE:
        raise ValueError(f"normalise={how!r}: expected one of {NORMALISE}")
    if how == "sum":
        s = M.sum(axis=1, keepdims=True)
        return np.divide(M, s, out=np.zeros_like(M), where=s > 0)
    return M


def blend_tables(
    tables: Sequence[ScoreTable], weights: Sequence[float], normalise: str = "none", n: int = 256
) -> ScoreTable:
    """The weighted average of ``tables`` (rows of the first table's surveys), re-ranked to the top ``n``.

    Raises:
        ValueError: weights not one per table, negative, or not summing to 1; members scoring other surveys.
    """
    w = np.asarray(weights, np.float64)
    if len(tables) == 0 or w.shape != (len(tables),):
        raise ValueError(f"blend: {len(tables)} member table(s) but {w.size} weight(s); give one weight per member")
    if (w < 0).any() or not np.isclose(w.sum(), 1.0, atol=1e-6):
        raise ValueError(f"blend weights {w.tolist()} must be >= 0 and sum to 1")
    ids = tables[0].survey_ids
    return _mix(ids, *_dense(tables, ids, normalise), w, n)


def _mix(ids: np.ndarray, mats: Sequence[np.ndarray], vocab: np.ndarray, w: np.ndarray, n: int) -> ScoreTable:
    """The weighted sum of the members' dense matrices, re-ranked to the top ``n``."""
    return top_n(ids, sum(wi * M for wi, M in zip(w, mats)), vocab, n)


def simplex_grid(n_members: int, step: float) -> np.ndarray:
    """Every weight vector of ``n_members`` non-negative multiples of ``step`` summing to 1 (vertices first)."""
    m = int(round(1.0 / step))
    if m < 1 or not np.isclose(m * step, 1.0):
        raise ValueError(f"weight_step={step!r} must divide 1 (e.g. 0.1, 0.25)")
    pts = [c for c in itertools.product(range(m + 1), repeat=n_members) if sum(c) == m]
    pts.sort(key=lambda c: (-max(c), c[::-1]))
    return np.asarray(pts, np.float64) / m


def fit_blend_weights(
    val_tables: Sequence[ScoreTable],
    truth: Mapping[int, np.ndarray],
    normalise: str = "none",
    step: float = 0.1,
    k_max: int = 100,
    n: int = 256,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Weights maximising the validation sample-F1 of expected-F1 decoding of the blend (module docstring).

    Returns:
        ``(weights, info)``: ``info`` holds the best F1, each member's F1 alone and the number of grid points.
    """
    from glc.decoding import fit_decoder

    ids = val_tables[0].survey_ids
    mats, vocab = _dense(val_tables, ids, normalise)  # once, not per grid point

    def f1(w: np.ndarray) -> float:
        t = _mix(ids, mats, vocab, w, n)
        return float(
            fit_decoder(
                "expected_f1", t.prob, t.truth_columns(truth), k_max=min(k_max, t.prob.shape[1]), prob_rest=t.prob_rest
            )["f1"]
        )

    grid = simplex_grid(len(val_tables), step) if len(val_tables) > 1 else np.ones((1, 1))
    scores = np.array([f1(w) for w in grid])
    best = int(np.argmax(scores))
    members = [float(scores[i]) for i in range(len(val_tables))] if len(val_tables) > 1 else [float(scores[0])]
    return grid[best], {
        "val_f1": float(scores[best]),
        "member_val_f1": members,
        "grid_points": int(len(grid)),
        "fit": "in-sample expected-F1 on validation",
    }


def _weights(
    model_cfg: Mapping[str, Any], val_tables: Sequence[ScoreTable], truth: Mapping[int, np.ndarray]
) -> tuple[np.ndarray, dict[str, Any]]:
    if model_cfg["weights"]:
        w = np.asarray(model_cfg["weights"], np.float64)
        return w, {"fit": "fixed"}
    return fit_blend_weights(
        val_tables, truth, model_cfg["normalise"], float(model_cfg["weight_step"]), n=int(model_cfg["top_n"])
    )


def combine_experiments(
    members: Mapping[str, tuple[ScoreTable, ScoreTable]],
    truth: Mapping[int, np.ndarray],
    model_cfg: Mapping[str, Any],
    **_: Any,
) -> tuple[ScoreTable, ScoreTable, dict[str, Any]]:
    """The blend of member experiments' ``(validation, test)`` score tables (``Predict`` of ``experiments`` blends).

    Raises:
        ValueError: members whose validation (or test) surveys differ.
    """
    names = list(members)
    same_surveys(names, [members[n] for n in names], "blend")
    vals = [members[n][0] for n in names]
    tests = [members[n][1] for n in names]
    w, info = _weights(model_cfg, vals, truth)
    n = int(model_cfg["top_n"])
    info = {"members": names, "weights": [round(float(x), 6) for x in w], **info}
    log.info("blend of %s with weights %s", names, info["weights"])
    return blend_tables(vals, w, model_cfg["normalise"], n), blend_tables(tests, w, model_cfg["normalise"], n), info


def member_specs(names: Sequence[str], top_n: int, who: str) -> list[tuple[Any, dict[str, Any]]]:
    """``(spec, resolved [model] table)`` of each in-memory benchmark entry in ``names`` (members of ``who``).

    Raises:
        ValueError: no member, or a member of a kind trained from model inputs.
    """
    from glc.models.registry import benchmark_entry, get_model

    if not names:
        raise ValueError(
            f"model.models is empty: the in-memory {who} needs member "
            "benchmark entries (or give model.experiments: member experiments)"
        )
    specs = []
    for name in names:
        kind, over = benchmark_entry(name)
        spec = get_model(kind)
        if spec.needs_inputs or spec.fit_predict is None:
            raise ValueError(
                f"{who} member {name!r} (kind {kind!r}) is trained from "
                f"model inputs; only in-memory kinds {who} in memory"
            )
        specs.append((spec, {**{k: p.default for k, p in spec.params.items()}, "kind": kind, "top_n": top_n, **over}))
    return specs


def same_surveys(names: Sequence[str], tables: Sequence[tuple[ScoreTable, ScoreTable]], who: str) -> None:
    """Refuse member experiments whose validation (or test) surveys differ.

    Raises:
        ValueError: naming the first member that scored other surveys than the first one.
    """
    for i, what in enumerate(("validation", "test")):
        ref = np.sort(tables[0][i].survey_ids)
        for name, t in zip(names[1:], tables[1:]):
            if not np.array_equal(np.sort(t[i].survey_ids), ref):
                raise ValueError(
                    f"{who}: experiment {name!r} scored other {what} surveys than {names[0]!r}; {who} only "
                    "experiments with the same [validation] settings and seed"
                )


def fit_predict_blend(
    train: pd.DataFrame, query: pd.DataFrame, model_cfg: Mapping[str, Any], seed: int = 0
) -> ScoreTable:
    """In-memory blend of registry benchmark entries ``model_cfg["models"]`` (module docstring)."""
    from glc.eval.split import spatial_holdout

    names = list(model_cfg["models"])
    specs = member_specs(names, int(model_cfg["top_n"]), "blend")
    train = train.reset_index(drop=True)
    n = int(model_cfg["top_n"])
    if model_cfg["weights"]:
        w = np.asarray(model_cfg["weights"], np.float64)
    else:
        held = spatial_holdout(
            train["x"].to_numpy(), train["y"].to_numpy(), float(model_cfg["validation_fraction"]), 10.0, seed + 29
        )
        vals = [s.fit_predict(train[~held], train[held], c) for s, c in specs]
        truth = dict(zip(train["surveyId"].astype(int), train["speciesIds"]))
        w, _ = fit_blend_weights(vals, truth, model_cfg["normalise"], float(model_cfg["weight_step"]), n=n)
        log.info(
            "blend of %s: weights %s fitted on %d held-out training surveys",
            names,
            np.round(w, 3).tolist(),
            int(held.sum()),
        )
    return blend_tables([s.fit_predict(train, query, c) for s, c in specs], w, model_cfg["normalise"], n)


def _check(m: Mapping[str, Any]) -> None:
    if m["experiments"] and m["models"]:
        raise ValueError(
            "model.experiments (member experiments of tasks/) or "
            "model.models (in-memory benchmark entries): give exactly one"
        )
    k = len(m["experiments"]) or len(m["models"])
    if m["weights"] and len(m["weights"]) != k:
        raise ValueError(f"model.weights has {len(m['weights'])} value(s) for {k} member(s)")
    if m["weights"] and not np.isclose(sum(m["weights"]), 1.0):
        raise ValueError(f"model.weights {list(m['weights'])} must sum to 1")


register(
    ModelSpec(
        "blend",
        "late fusion: weighted average of member experiments' (or in-memory models') score tables, re-ranked",
        runner="memory",
        fit_predict=fit_predict_blend,
        check=_check,
        params={
            "experiments": Param(
                [], "member experiments (tasks/<name>.toml): their Predict artifacts are blended", type="list[str]"
            ),
            "models": Param(
                [],
                "member benchmark entries of in-memory kinds (e.g. knn10, radius50km), fitted in memory",
                type="list[str]",
            ),
            "weights": Param(
                [],
                "fixed weights, one per member, summing to 1 (empty: fitted on validation)",
                type="list[float]",
                min=0.0,
                unique=False,
            ),
            "normalise": Param("none", "per-survey normalisation before averaging", choices=NORMALISE),
            "weight_step": Param(0.1, "grid step of the fitted weights", min=0.0, max=1.0, min_exclusive=True),
            "validation_fraction": Param(
                0.2,
                "in-memory blend: share of training surveys (10 km blocks) its weights are fitted on",
                min=0.05,
                max=0.5,
            ),
        },
        members=lambda m: tuple(m["experiments"]),
        combine=combine_experiments,
        benchmarks={
            "blend_neighbours": {"models": ["knn10", "radius10km", "radius50km"]},
            "blend_trees": {"models": ["gbm", "random_forest"]},
        },
    )
)
