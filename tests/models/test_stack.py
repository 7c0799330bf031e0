"""The stack kind: a monotone second-level booster on the members' out-of-fold scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from glc.config import resolve
from glc.experiment import fit_predict
from glc.metrics import score_submission
from glc.models import registry
from glc.models.registry import ModelSpec
from glc.models.stack import _LAST, combine_stack, member_pairs
from glc.predict.scores import ScoreTable, top_n
from tests.fakes import toy_surveys


def _f1(table: ScoreTable, truth: dict[int, Any], k: int = 4) -> float:
    return score_submission(
        {int(s): truth[int(s)] for s in table.survey_ids},
        {int(s): table.species[i, :k] for i, s in enumerate(table.survey_ids)},
    )["sample_f1"]


def _stack_cfg(**over: Any) -> dict[str, Any]:
    return resolve(
        {"model": {"kind": "stack", "top_n": 60, "n_estimators": 60, "threads": 1, "block_km": 20.0, **over}}
    )


def test_member_pairs_are_the_union_of_the_members_top_species_with_their_scores_and_ranks() -> None:
    a = top_n(np.array([1, 2]), np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.3]], np.float32), np.array([10, 11, 12]), 3)
    b = top_n(np.array([2, 1]), np.array([[0.7, 0.6], [0.4, 0.3]], np.float32), np.array([12, 13]), 2)
    rows, species, X, names = member_pairs([a, b], np.array([1, 2]), top=1, names=["a", "b"])
    # survey 1: a's best 10, b's best 12; survey 2: a's best 11, b's best 12
    assert list(zip(rows.tolist(), species.tolist())) == [(0, 10), (0, 12), (1, 11), (1, 12)]
    col = {n: X[:, i] for i, n in enumerate(names)}
    assert col["a:score"].tolist() == pytest.approx([0.9, 0.1, 0.8, 0.3])
    assert col["a:rank"].tolist() == [0, 2, 0, 1]
    assert col["b:score"].tolist() == pytest.approx([0.0, 0.4, 0.0, 0.7])  # 10 and 11 are outside b's table
    assert col["b:rank"].tolist() == [2, 0, 2, 0]  # absent: the table width
    assert col["b:rel"].tolist() == pytest.approx([0.0, 1.0, 0.0, 1.0])
    assert col["n_members_top"].tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="no scores for 1 survey"):
        member_pairs([a], np.array([1, 2, 3]), top=1)


def test_a_stack_of_one_member_keeps_that_members_ranking() -> None:
    """Without context the stacker sees only the member, and its monotone booster never reverses the member's order of
    two species (ties allowed); with context it re-ranks, and must not do worse than the member."""
    df = toy_surveys(600, seed=2)
    train, query = df[df["y"] < 3.3e6], df[df["y"] >= 3.3e6]
    truth = dict(zip(df["surveyId"].astype(int), df["speciesIds"]))
    member = fit_predict(train, query, resolve({"model": {"kind": "random_forest", "top_n": 60}}))
    stack = fit_predict(train, query, _stack_cfg(models=["random_forest"], member_top=20, context=False))
    # every pair of species the member orders strictly (in its top 20): does the stack reverse it, keep it?
    reversed_, kept, n = 0, 0, 0
    pos = {int(s): i for i, s in enumerate(stack.survey_ids)}
    for i, s in enumerate(member.survey_ids):
        sp, pm = member.species[i, :20], member.prob[i, :20]
        ps = dict(zip(stack.species[pos[int(s)]].tolist(), stack.prob[pos[int(s)]].tolist()))
        q = np.array([ps.get(int(x), 0.0) for x in sp])
        strict = pm[:, None] > pm[None, :]
        reversed_ += int((strict & (q[:, None] < q[None, :])).sum())
        kept += int((strict & (q[:, None] > q[None, :])).sum())
        n += int(strict.sum())
    assert n > 1000 and reversed_ == 0 and kept / n >= 0.9, (reversed_, kept, n)
    assert abs(_f1(stack, truth) - _f1(member, truth)) <= 0.01
    ctx = fit_predict(train, query, _stack_cfg(models=["random_forest"], member_top=20))
    assert _f1(ctx, truth) >= _f1(member, truth) - 0.01


@pytest.mark.parametrize("queries", ["refit", "fold_mean"])
def test_the_stackers_training_scores_come_from_members_fitted_without_the_survey(monkeypatch, queries) -> None:
    """A member that leaks (scores 0.9 for surveys it was fitted on, 0.4 otherwise) must show the stacker 0.4 only;
    the queries are scored by members refitted on all of train (refit) or by the fold fits (fold_mean)."""
    calls: list[tuple[set[int], np.ndarray]] = []

    def spy(train: pd.DataFrame, query: pd.DataFrame, cfg: Any, seed: int = 0) -> ScoreTable:
        fitted = set(train["surveyId"].astype(int))
        ids = query["surveyId"].to_numpy(np.int64)
        calls.append((fitted, ids))
        leak = np.isin(ids, list(fitted))
        P = np.tile(np.linspace(1.0, 0.5, 8), (len(ids), 1)) * np.where(leak, 0.9, 0.4)[:, None]
        return top_n(ids, P.astype(np.float32), np.arange(8), 8)

    spec = ModelSpec("leaky_spy", "test member", runner="memory", fit_predict=spy, benchmarks={"leaky_spy": {}})
    monkeypatch.setitem(registry._SPECS, "leaky_spy", spec)
    df = toy_surveys(300, seed=5)
    df["speciesIds"] = [np.array([0, 3]) if i % 2 else np.array([1]) for i in range(len(df))]
    train, query = df[df["y"] < 3.3e6].reset_index(drop=True), df[df["y"] >= 3.3e6]
    out = fit_predict(train, query, _stack_cfg(models=["leaky_spy"], folds=3, context=False, queries=queries))
    stk = _LAST["stacker"]
    scores = stk.train_X_[:, stk.names_.index("leaky_spy:score")]
    assert scores.max() <= 0.4 + 1e-6 and scores.max() > 0  # no training pair saw a leaked score
    oof = calls[:3]
    for fitted, ids in oof:  # each out-of-fold call scores surveys its member was not fitted on
        assert not fitted & set(ids.tolist())
    train_ids, query_ids = set(train["surveyId"].tolist()), set(query["surveyId"].tolist())
    scored = np.concatenate([ids for _, ids in oof]).tolist()
    assert set(stk.train_survey_ids_.tolist()) == train_ids and set(out.survey_ids.tolist()) == query_ids
    if queries == "refit":
        assert sorted(scored) == sorted(train_ids) and len(calls) == 4
        assert calls[3][0] == train_ids  # the queries are scored by members fitted on all of train
    else:  # every fold fit also scores the queries; no fit on all of train
        assert len(calls) == 3 and sorted(scored) == sorted(list(train_ids) + 3 * list(query_ids))


def _member(ids: np.ndarray, truth: dict[int, Any], good: np.ndarray, seed: int) -> ScoreTable:
    """Scores that know the truth where ``good`` (per survey) and are noise elsewhere, over species 0..59."""
    rng = np.random.default_rng(seed)
    P = rng.uniform(0.0, 0.5, (len(ids), 60))
    for i, s in enumerate(ids):
        if good[i]:
            P[i, np.asarray(truth[int(s)], np.int64)] += 0.5
    return top_n(ids, P.astype(np.float32), np.arange(60), 60)


def test_stacking_experiments_learns_which_member_to_trust_where() -> None:
    df = toy_surveys(900, seed=4)
    df["split"] = np.where(df["y"] >= 3.33e6, "test", "train")
    truth = dict(zip(df["surveyId"].astype(int), df["speciesIds"]))
    val_q = df[(df["split"] == "train") & (df["y"] >= 3.2e6)]
    test_q = df[df["split"] == "test"]
    members = {}
    for name, side, seed in (("west", True, 0), ("east", False, 1)):
        tables = []
        for q in (val_q, test_q):
            ids = q["surveyId"].to_numpy(np.int64)
            tables.append(_member(ids, truth, (q["x"].to_numpy() < 4.2e6) == side, seed))
        members[name] = tuple(tables)
    cfg = _stack_cfg(experiments=["west", "east"], member_top=20, folds=4, min_child_samples=20)["model"]
    val, test, info = combine_stack(members, truth, cfg, surveys=df, seed=0)
    assert set(val.survey_ids.tolist()) == set(val_q["surveyId"].tolist())
    assert set(test.survey_ids.tolist()) == set(test_q["surveyId"].tolist())
    assert info["val_f1_cross_fitted"] > max(info["member_val_f1"].values()) + 0.1
    best_member_test = max(_f1(members[n][1], truth) for n in members)
    assert _f1(test, truth) > best_member_test + 0.1
    other = {"west": members["west"], "east": (members["east"][0], members["west"][0])}
    with pytest.raises(ValueError, match="other test surveys"):
        combine_stack(other, truth, cfg, surveys=df)


def test_stack_config_names_its_members_once() -> None:
    with pytest.raises(ValueError, match="model.models is empty"):
        fit_predict(toy_surveys(50), toy_surveys(10, seed=1), resolve({"model": {"kind": "stack"}}))
    with pytest.raises(ValueError, match="give exactly one"):
        resolve({"model": {"kind": "stack", "models": ["gbm"], "experiments": ["gbm"]}})


def test_the_mass_outside_the_candidates_is_learned_per_survey(monkeypatch) -> None:
    """West surveys hold 6 species no member ranks, east ones none: with ``rest = "model"`` the stack's prob_rest says
    so (learned from the out-of-fold surveys, by location); with the default it stays 0."""

    def member(train: pd.DataFrame, query: pd.DataFrame, cfg: Any, seed: int = 0) -> ScoreTable:
        ids = query["surveyId"].to_numpy(np.int64)
        P = np.tile(np.linspace(0.9, 0.2, 8), (len(ids), 1))
        return top_n(ids, P.astype(np.float32), np.arange(8), 8)

    spec = ModelSpec("narrow", "test member", runner="memory", fit_predict=member, benchmarks={"narrow": {}})
    monkeypatch.setitem(registry._SPECS, "narrow", spec)
    df = toy_surveys(500, seed=6)
    west = df["x"].to_numpy() < np.median(df["x"])
    df["speciesIds"] = [np.r_[0, 2, 100 + np.arange(6)] if w else np.array([0, 2]) for w in west]
    train, query = df[df["y"] < 3.3e6].reset_index(drop=True), df[df["y"] >= 3.3e6].reset_index(drop=True)
    qwest = query["x"].to_numpy() < np.median(df["x"])
    out = fit_predict(train, query, _stack_cfg(models=["narrow"], folds=3, rest="model", member_top=8))
    rest = pd.Series(out.prob_rest, index=out.survey_ids).loc[query["surveyId"]].to_numpy()
    assert rest[qwest].mean() == pytest.approx(6.0, abs=1.0) and rest[~qwest].mean() < 1.0
    none = fit_predict(train, query, _stack_cfg(models=["narrow"], folds=3, member_top=8))
    assert none.prob_rest.max() < 0.05  # the default: no mass outside the candidates
    stk = _LAST["stacker"]
    stk.cfg["rest"] = "model"  # candidates that held every species: nothing outside, and no Poisson fit to fail
    F = np.ones((40, 3), np.float32)
    assert stk.fit_rest(F, np.zeros(40)).predict_rest(F).tolist() == [0.0] * 40
    # the experiments path: cross-fitted over the validation surveys, then the test surveys
    df["split"] = np.where(df["y"] >= 3.33e6, "test", "train")
    truth = dict(zip(df["surveyId"].astype(int), df["speciesIds"]))
    val_q, test_q = df[(df["split"] == "train") & (df["y"] >= 3.1e6)], df[df["split"] == "test"]
    tabs = tuple(member(df, q, None) for q in (val_q, test_q))
    cfg = _stack_cfg(experiments=["narrow"], member_top=8, folds=3, min_child_samples=20, rest="model")["model"]
    val, test, _ = combine_stack({"narrow": tabs}, truth, cfg, surveys=df, seed=0)
    for t, q in ((val, val_q), (test, test_q)):
        r = pd.Series(t.prob_rest, index=t.survey_ids).loc[q["surveyId"]].to_numpy()
        w = q["x"].to_numpy() < np.median(df["x"])
        assert r[w].mean() > 4.0 and r[~w].mean() < 1.5, (r[w].mean(), r[~w].mean())
