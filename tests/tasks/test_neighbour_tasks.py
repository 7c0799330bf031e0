"""Neighbour tasks on the tiny synthetic world: each artifact equals the library's in-memory result on the same inputs
(exact neighbours also equal an independent cKDTree reference), PA and PO ids that collide stay apart, bad PO rows
are counted or fail the task, reruns do no work, paths follow significant parameters only, bad parameters are named.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import luigi
import numpy as np
import pandas as pd
import pytest
from luigi.execution_summary import LuigiStatusCode, _summary_dict
from scipy.spatial import cKDTree

from glc.data.layout import Layout
from glc.data.metadata import read_po_metadata
from glc.etl.neighbours import neighbours_lsh, select_sites
from glc.etl.po import PO_ID_OFFSET, decode_site_ids, read_po_records
from glc.eval.split import spatial_block_folds
from glc.features.graph import graph_features, oof_graph_features
from glc.features.neighbours import NeighbourTable, neighbour_recall, neighbours_numpy
from glc.features.po_correction import po_correction_lists
from glc.geo import to_laea
from glc.tasks import SurveyTable
from glc.tasks.features import read_summary
from glc.tasks.neighbours import GraphFeatures, Neighbours, POCorrection
from glc.tasks.surveys import read_surveys
from glc.tasks.tables import read_neighbour_table, read_table

RADIUS, K = 50.0, 5
PO_RADIUS = 10.0


def _build(*tasks: luigi.Task):
    return luigi.build(list(tasks), local_scheduler=True, detailed_summary=True, workers=1)


def _tasks(root: Path, out: Path) -> dict[str, luigi.Task]:
    c = {"data_root": str(root), "out_root": str(out)}
    return {
        "exact": Neighbours(sources="pa_train", queries="pa_train,pa_test", radius_km=RADIUS, k=K, **c),
        "lsh": Neighbours(sources="pa_train", queries="pa_train,pa_test", radius_km=RADIUS, k=K, method="lsh", **c),
        "po": Neighbours(sources="po,pa_train", queries=["pa_test", "po", "pa_train"], radius_km=PO_RADIUS, k=0, **c),
        "graph": GraphFeatures(n_folds=3, **c),
        "poc": POCorrection(queries="pa_train,pa_test", **c),
    }


def metadata_world(tiny_world: Path, root: Path) -> list[int]:
    """Copy the tiny world's metadata CSVs to ``root`` and make its PO file hard: three PO sites take the ids of
    three PA-train surveys and sit ~111 m north of them, one row has a non-numeric lon, one an extra field and one
    an empty speciesId. Returns the three colliding ids."""
    root.mkdir(parents=True)
    for f in ("GLC24_PA_metadata_train.csv", "GLC24_PA_metadata_test.csv"):
        shutil.copy(tiny_world / f, root / f)
    pa = pd.read_csv(root / "GLC24_PA_metadata_train.csv").drop_duplicates("surveyId").head(3)
    po = pd.read_csv(Layout(tiny_world).po_metadata(), dtype=str)
    for i, (sid, lon, lat) in enumerate(zip(pa["surveyId"], pa["lon"], pa["lat"])):
        rows = po["surveyId"] == po["surveyId"].unique()[i]
        po.loc[rows, ["surveyId", "lon", "lat"]] = [str(sid), repr(float(lon)), repr(float(lat) + 0.001)]
    text = po.to_csv(index=False).splitlines()

    def set_field(line: int, column: str, value: str) -> None:
        fields = text[line].split(",")
        fields[po.columns.get_loc(column)] = value
        text[line] = ",".join(fields)

    set_field(-1, "lon", "abc")  # lon not numeric
    text[-2] += ",extra"  # too many fields
    set_field(-3, "speciesId", "")  # no species: dropped and counted apart, not a bad row
    (root / "GLC24_P0_metadata_train.csv").write_text("\n".join(text) + "\n")
    return [int(v) for v in pa["surveyId"]]


@pytest.fixture(scope="module")
def built(spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("neighbour_tasks")
    root, out = tmp / "tiny-metadata", tmp / "out"
    colliding = metadata_world(tiny_world, root)
    tasks = _tasks(root, out)
    res = _build(*tasks.values())
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    surveys = read_surveys(SurveyTable(data_root=str(root), out_root=str(out)).output())
    return {
        "tasks": tasks,
        "surveys": surveys.sort_values("surveyId", ignore_index=True),
        "out": out,
        "root": root,
        "colliding": colliding,
    }


def _sites(surveys: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = surveys[surveys["split"] == split]
    return s["surveyId"].to_numpy(np.int64), s["x"].to_numpy(), s["y"].to_numpy()


def _po_reference(root: Path) -> pd.DataFrame:
    """PO records read by the pandas reader (independent of the Spark reader; bad rows skipped), with EPSG:3035 x/y."""
    po = read_po_metadata(Layout(root).po_metadata(), on_bad_rows="skip")
    x, y = to_laea(po["lon"].to_numpy(), po["lat"].to_numpy())
    return po.assign(x=x, y=y)


def _cat(*parts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def ckdtree_reference(q, s, radius_km: float, k: int | None, same_site_m: float = 1.0) -> NeighbourTable:
    """Independent reference: ball query, then the documented rules (d <= r, not self, not within 1 m, by (d, id))."""
    (qids, qx, qy), (sids, sx, sy) = q, s
    cand = cKDTree(np.column_stack([sx, sy])).query_ball_point(
        np.column_stack([qx, qy]), r=radius_km * 1000 * (1 + 1e-9)
    )
    ids, dists = [], []
    for i, js in enumerate(cand):
        js = np.asarray(js, dtype=np.int64)
        d = np.hypot(sx[js] - qx[i], sy[js] - qy[i])
        keep = (d <= radius_km * 1000) & (sids[js] != qids[i]) & (d > same_site_m)
        js, d = js[keep], d[keep]
        order = np.lexsort((sids[js], d))[:k]
        ids.append(sids[js][order])
        dists.append(d[order] / 1000)
    return NeighbourTable.from_pandas(pd.DataFrame({"surveyId": qids, "nbr_ids": ids, "nbr_dist_km": dists}))


def _sorted(t: NeighbourTable) -> NeighbourTable:
    return NeighbourTable.from_pandas(t.to_pandas().sort_values("surveyId", ignore_index=True))


def assert_tables_equal(got: NeighbourTable, want: NeighbourTable, rtol: float = 0.0) -> None:
    want = _sorted(want)
    np.testing.assert_array_equal(got.query_ids, want.query_ids)
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.nbr_ids, want.nbr_ids)
    np.testing.assert_allclose(got.nbr_dist_km, want.nbr_dist_km, rtol=rtol, atol=0)


def test_exact_equals_library_and_ckdtree_reference(built) -> None:
    tasks, surveys = built["tasks"], built["surveys"]
    got = read_neighbour_table(tasks["exact"].output())
    q = _cat(_sites(surveys, "train"), _sites(surveys, "test"))
    s = _sites(surveys, "train")
    assert_tables_equal(got, neighbours_numpy(*q, *s, RADIUS, K))  # bit-identical to the in-memory library call
    assert_tables_equal(got, ckdtree_reference(q, s, RADIUS, K), rtol=1e-12)
    counts = got.counts()
    assert counts.max() == K and (counts == 0).any() and (got.nbr_dist_km <= RADIUS).all()
    summary = read_summary(tasks["exact"].output())
    assert summary["n_queries"] == len(got) == len(surveys)
    assert summary["n_queries_by_kind"] == {"pa_train": len(s[0]), "pa_test": len(q[0]) - len(s[0])}
    assert summary["n_queries_without_neighbours"] == int((counts == 0).sum())
    assert summary["n_pairs"] == len(got.nbr_ids) and summary["seconds"] > 0 and summary["po_id_offset"] is None


def test_lsh_equals_library_call_and_is_precise(built, spark) -> None:
    tasks, surveys, out = built["tasks"], built["surveys"], built["out"]
    got = read_neighbour_table(tasks["lsh"].output())
    sv = spark.read.parquet(
        str(SurveyTable(data_root=tasks["lsh"].data_root, out_root=str(out)).output().dir / "surveys")
    )
    lib = neighbours_lsh(
        select_sites(sv, None, ["pa_train", "pa_test"]), select_sites(sv, None, ["pa_train"]), RADIUS, K
    )
    assert_tables_equal(got, NeighbourTable.from_pandas(lib.toPandas()))
    # every LSH neighbour is a true neighbour at its true distance (the join only approximates recall)
    full = read_neighbour_table(tasks["exact"].output())
    q = _cat(_sites(surveys, "train"), _sites(surveys, "test"))
    truth = neighbours_numpy(*q, *_sites(surveys, "train"), RADIUS, None)
    true_d = {
        (int(a), int(b)): d
        for a, b, d in zip(np.repeat(truth.query_ids, truth.counts()), truth.nbr_ids, truth.nbr_dist_km)
    }
    pairs = list(zip(np.repeat(got.query_ids, got.counts()), got.nbr_ids, got.nbr_dist_km))
    assert pairs and all(abs(true_d[(int(a), int(b))] - d) < 1e-9 for a, b, d in pairs)
    assert neighbour_recall(full, got) > 0.9


def test_po_sites_equal_library_with_offset_ids(built) -> None:
    tasks, surveys = built["tasks"], built["surveys"]
    got = read_neighbour_table(tasks["po"].output())
    po = _po_reference(built["root"]).drop_duplicates("surveyId")
    po_sites = (po["surveyId"].to_numpy(np.int64) + PO_ID_OFFSET, po["x"].to_numpy(), po["y"].to_numpy())
    queries = _cat(_sites(surveys, "train"), _sites(surveys, "test"), po_sites)
    assert_tables_equal(got, neighbours_numpy(*queries, *_cat(_sites(surveys, "train"), po_sites), PO_RADIUS, None))
    is_po, raw = decode_site_ids(got.nbr_ids)
    assert is_po.any() and (~is_po).any() and set(raw[is_po]) <= set(po["surveyId"])
    # a PO site numbered like a PA-train survey is that survey's nearest neighbour (~111 m), not dropped as "self"
    first = {int(q): (ids[0], d[0]) for q, ids, d in zip(got.query_ids, *got.lists()) if len(ids)}
    for sid in built["colliding"]:
        assert first[sid][0] == PO_ID_OFFSET + sid and 0.1 < first[sid][1] < 0.12
    summary = read_summary(tasks["po"].output())
    assert summary["n_sources_by_kind"] == {"pa_train": int((surveys["split"] == "train").sum()), "po": len(po)}
    assert summary["n_queries"] == len(got) == len(queries[0]) and summary["po_id_offset"] == PO_ID_OFFSET


def test_bad_po_rows_are_counted_or_fail_the_task(built) -> None:
    report = read_summary(built["tasks"]["po"].output())["po_records"]
    assert report["by_reason"] == {"lon/lat not numeric": 1, "too many fields": 1} and report["bad_rows"] == 2
    assert report["dropped_missing_species"] == 1 and len(report["bad_examples"]) == 2
    strict = Neighbours(**{**built["tasks"]["po"].param_kwargs, "po_max_bad_fraction": 0.0})
    with pytest.raises(
        ValueError, match=r"GLC24_P0_metadata_train\.csv: 2 of \d+ PO rows are malformed.*po_max_bad_fraction=0\.0"
    ):
        strict.run()


def test_graph_features_equal_library(built) -> None:
    tasks, surveys = built["tasks"], built["surveys"]
    df = read_table(tasks["graph"].output())
    tr = surveys[surveys["split"] == "train"]
    te = surveys[surveys["split"] == "test"]
    labels = [np.asarray(a, np.int64) for a in tr["speciesIds"]]
    folds = spatial_block_folds(tr["x"].to_numpy(), tr["y"].to_numpy(), n_folds=3, block_km=10.0, seed=0)
    g_tr, scale = oof_graph_features(
        tr["x"], tr["y"], tr["year"], tr["region"], labels, folds, ids=tr["surveyId"], radius_km=10.0
    )
    g_te = graph_features(
        te["x"],
        te["y"],
        te["year"],
        te["region"],
        tr["x"],
        tr["y"],
        tr["year"],
        tr["region"],
        labels,
        radius_km=10.0,
        scale=scale,
        query_ids=te["surveyId"],
        src_ids=tr["surveyId"],
    )
    assert df["surveyId"].tolist() == surveys["surveyId"].tolist()
    rows = df.set_index("surveyId")
    for ids, g, split, fold in (
        (tr["surveyId"], g_tr, "train", folds),
        (te["surveyId"], g_te, "test", np.full(len(te), -1)),
    ):
        part = rows.loc[ids.to_numpy()]
        assert (part["split"] == split).all() and part["fold"].tolist() == fold.tolist()
        np.testing.assert_array_equal(np.concatenate([np.asarray(a, np.int32) for a in part["gfv_idx"]] or [[]]), g.idx)
        np.testing.assert_array_equal(
            np.concatenate([np.asarray(a, np.float32) for a in part["gfv_val"]] or [[]]), g.val
        )
        assert [len(a) for a in part["gfv_idx"]] == np.diff(g.indptr).tolist()
    assert len(g_tr.val) and len(g_te.val) and g_tr.val.max() == 1.0  # non-trivial, normalised by the train maximum
    summary = read_summary(tasks["graph"].output())
    assert summary["scale"] == pytest.approx(scale) and summary["n_empty_vectors"]["train"] == int(
        (np.diff(g_tr.indptr) == 0).sum()
    )


def test_po_correction_equals_library(built) -> None:
    tasks, surveys = built["tasks"], built["surveys"]
    df = read_table(tasks["poc"].output())
    tr = surveys[surveys["split"] == "train"]
    po = _po_reference(built["root"])
    want = po_correction_lists(
        surveys["surveyId"],
        surveys["x"],
        surveys["y"],
        tr["surveyId"],
        tr["x"],
        tr["y"],
        [np.asarray(a, np.int64) for a in tr["speciesIds"]],
        po["surveyId"],
        po["x"],
        po["y"],
        po["speciesId"],
    )
    assert df["surveyId"].tolist() == surveys["surveyId"].tolist() and df["split"].tolist() == surveys["split"].tolist()
    assert {int(s): list(v) for s, v in zip(df["surveyId"], df["species"])} == {s: v.tolist() for s, v in want.items()}
    assert sum(len(v) > 0 for v in want.values()) > len(want) // 2
    assert read_summary(tasks["poc"].output())["n_empty_lists"] == sum(len(v) == 0 for v in want.values())


def test_missing_po_file_is_named(spark, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"GLC24_P0_metadata_train\.csv not found.*drop 'po'"):
        read_po_records(spark, Layout(tmp_path))


def test_rerun_does_no_work(built) -> None:
    tasks, out = built["tasks"], built["out"]
    mtimes = {p: p.stat().st_mtime_ns for p in Path(out).rglob("*") if p.is_file()}
    res = _build(*tasks.values())
    assert res.status == LuigiStatusCode.SUCCESS
    d = _summary_dict(res.worker)
    assert not d["completed"] and not d["failed"]
    assert {t.task_family for t in d["already_done"]} >= {"Neighbours", "GraphFeatures", "POCorrection"}
    assert {p: p.stat().st_mtime_ns for p in Path(out).rglob("*") if p.is_file()} == mtimes


def test_paths_follow_significant_parameters_only(tmp_path: Path) -> None:
    c = {"data_root": str(tmp_path / "root"), "out_root": str(tmp_path / "out")}
    base = Neighbours(**c)
    assert (
        base.output().dir.name == "pa_train-pa_train+pa_test-r50-k10-exact"
        and base.output().dir.parent.name == "neighbours"
    )
    same = [
        Neighbours(sources=["pa_train"], queries="pa_test, pa_train,pa_test", radius_km=50, k=10, **c),
        Neighbours(cell_km=300.0, po_max_bad_fraction=0.5, **c),  # insignificant: performance knob, acceptance gate
    ]
    for t in same:
        assert t.task_id == base.task_id and t.output().path == base.output().path
    # the roots are part of the id (a central luigid must not take runs into two out-roots for one task)
    assert Neighbours(out_root=str(tmp_path / "elsewhere"), data_root=c["data_root"]).task_id != base.task_id
    names = {
        Neighbours(sources="po,pa_train", queries="po", **c): "pa_train+po-po-r50-k10-exact",
        Neighbours(radius_km=2.5, k=0, **c): "pa_train-pa_train+pa_test-r2.5-kall-exact",
        Neighbours(method="lsh", **c): "pa_train-pa_train+pa_test-r50-k10-lsh-b20-t5-seed0",
        Neighbours(
            method="lsh", bucket_length_km=10, num_hash_tables=3, lsh_seed=7, **c
        ): "pa_train-pa_train+pa_test-r50-k10-lsh-b10-t3-seed7",
        Neighbours(exclude_same_site=False, **c): "pa_train-pa_train+pa_test-r50-k10-exact-keepsite",
        Neighbours(same_site_m=2.0, **c): "pa_train-pa_train+pa_test-r50-k10-exact-ss2m",
        GraphFeatures(**c): "r10-f5-b10-seed0-count",
        GraphFeatures(
            radius_km=5, n_folds=3, block_km=20, seed=1, degree="weighted", exclude_same_site=False, **c
        ): "r5-f3-b20-seed1-weighted-keepsite",
        POCorrection(**c): "pa_test-n5-l4-a10-m8-site",
        POCorrection(
            queries="pa_test,pa_train", n_train=3, min_train_count=1, po_unit="record", max_km=25, **c
        ): "pa_train+pa_test-n3-l1-a10-m8-record-max25",
    }
    for t, name in names.items():
        assert t.output().dir.name == name
    paths = [t.output().path for t in names] + [base.output().path]
    assert len(set(paths)) == len(paths)
    assert GraphFeatures(**c).output().dir.parent.parent.name == "features"


@pytest.mark.parametrize(
    ("cls", "kw", "match"),
    [
        (Neighbours, {"sources": "pa_tran"}, r"sources='pa_tran'.*pa_train, pa_test, po.*unknown: pa_tran"),
        (Neighbours, {"queries": ""}, r"queries='': expected a non-empty"),
        (Neighbours, {"radius_km": 0}, r"radius_km=0.0"),
        (Neighbours, {"k": -1}, r"k=-1: expected an integer >= 1, or 0"),
        (Neighbours, {"method": "fast"}, r"method='fast': expected one of exact, lsh"),
        (Neighbours, {"same_site_m": -1}, r"same_site_m=-1.0"),
        (Neighbours, {"method": "lsh", "num_hash_tables": 0}, r"num_hash_tables=0"),
        (Neighbours, {"cell_km": 10.0}, r"cell_km=10.0.*radius_km=50.0"),
        (Neighbours, {"po_max_bad_fraction": 2.0}, r"po_max_bad_fraction=2.0"),
        (GraphFeatures, {"n_folds": 1}, r"n_folds=1: expected an integer >= 2"),
        (GraphFeatures, {"degree": "mean"}, r"degree='mean': expected one of count, weighted"),
        (GraphFeatures, {"block_km": -1}, r"block_km=-1.0"),
        (POCorrection, {"queries": "po"}, r"queries='po'.*pa_train, pa_test"),
        (POCorrection, {"min_po_count": 10}, r"n_po/min_po_count=10/10"),
        (POCorrection, {"po_unit": "plot"}, r"po_unit='plot'"),
        (POCorrection, {"max_km": 0}, r"max_km=0.0"),
    ],
)
def test_bad_parameters_are_named(cls, kw, match: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=match):
        cls(data_root=str(tmp_path), **kw)
