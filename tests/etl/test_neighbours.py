"""Spark neighbour tables: exact == the cKDTree reference of glc.features.neighbours (borders, duplicates, ties), LSH
recall and units, input validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glc.etl.neighbours import neighbours, neighbours_exact, neighbours_lsh, select_sites, validate_sites
from glc.features.neighbours import NEIGHBOUR_SCHEMA, NeighbourTable, neighbour_recall, neighbours_numpy
from tests.features.test_neighbours import RADIUS, clustered


def _to_table(df) -> NeighbourTable:
    return NeighbourTable.from_pandas(df.toPandas().sort_values("surveyId").reset_index(drop=True))


def _expected(ref: NeighbourTable) -> NeighbourTable:
    order = np.argsort(ref.query_ids)
    return NeighbourTable.from_pandas(ref.to_pandas().iloc[order].reset_index(drop=True))


@pytest.mark.spark
def test_exact_spark_equals_ckdtree_reference_on_20k_clustered_sites(spark):
    from pyspark.testing import assertSchemaEqual

    ids, x, y = clustered(20_000, seed=0)
    sites = spark.createDataFrame(pd.DataFrame({"surveyId": ids, "x": x, "y": y}))
    got_df = neighbours_exact(sites, sites, RADIUS, k=10, exclude_same_site=True)
    assertSchemaEqual(got_df.schema, spark.createDataFrame([], NEIGHBOUR_SCHEMA).schema)
    got = _to_table(got_df)
    want = _expected(neighbours_numpy(ids, x, y, ids, x, y, RADIUS, k=10, exclude_same_site=True))
    # identical tables: same queries, neighbour ids in the same order, bit-identical distances
    assert np.array_equal(got.query_ids, want.query_ids)
    assert np.array_equal(got.indptr, want.indptr)
    assert np.array_equal(got.nbr_ids, want.nbr_ids)
    assert np.array_equal(got.nbr_dist_km, want.nbr_dist_km)
    # each site of a pair exactly RADIUS km apart across a cell border has its partner as its only neighbour
    b = len(ids) // 20
    m = np.arange(b // 2)
    rows = dict(zip(got.query_ids.tolist(), zip(*got.lists())))
    for i, j in zip(ids[2 * b + 2 * m], ids[2 * b + 2 * m + 1]):
        assert rows[i][0].tolist() == [j] and rows[j][0].tolist() == [i]
        assert rows[i][1].tolist() == [RADIUS]
    assert got.counts().min() >= 0 and got.counts().sum() > 5 * len(ids)


@pytest.mark.spark
def test_exact_spark_radius_mode_disjoint_queries_and_cell_of_radius(spark):
    from pyspark.testing import assertDataFrameEqual

    ids, x, y = clustered(1_500, seed=2, extent_m=60_000.0)
    rng = np.random.default_rng(3)
    q = rng.choice(len(ids), 400, replace=False)
    qids = np.arange(400, dtype=np.int64) + 10**9  # test ids: disjoint from the sources
    qx, qy = x[q].copy(), y[q].copy()
    qx[:50] += rng.normal(0, 1500, 50)  # half on top of a source (a repeat visit), half nearby
    qx[-1], qy[-1] = -5.0e6, -5.0e6  # far from everything: must keep its row, with empty arrays
    queries = spark.createDataFrame(pd.DataFrame({"surveyId": qids, "x": qx, "y": qy}))
    sources = spark.createDataFrame(pd.DataFrame({"surveyId": ids, "x": x, "y": y}))
    want = neighbours_numpy(qids, qx, qy, ids, x, y, RADIUS, k=None, exclude_same_site=False).to_pandas()
    want_df = spark.createDataFrame(
        want.assign(nbr_ids=want.nbr_ids.map(list), nbr_dist_km=want.nbr_dist_km.map(list)), NEIGHBOUR_SCHEMA
    )
    for cell_km in (RADIUS, None):  # the spec's cell of radius_km, and the faster default
        got_df = neighbours(
            queries, sources, RADIUS, k=None, method="exact", exclude_same_site=False, cell_km=cell_km
        ).cache()
        assertDataFrameEqual(got_df, want_df, rtol=0, atol=0)
    got = _to_table(got_df)
    assert got.counts()[got.query_ids == qids[-1]].tolist() == [0]
    assert (got.nbr_dist_km == 0).sum() > 0  # repeat visits kept at 0 km when exclude_same_site=False


@pytest.mark.spark
def test_lsh_recall_with_km_units_and_the_metres_pitfall(spark):
    ids, x, y = clustered(1_000, seed=4, extent_m=1_500_000.0)
    sites = spark.createDataFrame(pd.DataFrame({"surveyId": ids, "x": x, "y": y})).cache()
    ref = neighbours_numpy(ids, x, y, ids, x, y, 50.0, k=10)
    lsh = _to_table(neighbours_lsh(sites, sites, radius_km=50.0, k=10, bucket_length_km=20.0, num_hash_tables=5))
    assert len(lsh) == len(ids)  # every query keeps a row
    recall = neighbour_recall(ref, lsh)
    assert recall >= 0.95, recall
    # no self, sorted by distance, within the cutoff
    lsh_ids, lsh_d = lsh.lists()
    assert all(q not in n for q, n in zip(lsh.query_ids, lsh_ids))
    assert all((np.diff(d) >= 0).all() and (d < 50.0).all() for d in lsh_d)
    # DS@GT's mistake: a 20 *metre* bucket (0.02 km here) finds almost nothing
    wrong = _to_table(
        neighbours_lsh(sites, sites, radius_km=50.0, k=10, bucket_length_km=0.02, num_hash_tables=5, validate=False)
    )
    assert neighbour_recall(ref, wrong) < 0.2


@pytest.mark.spark
def test_spark_inputs_are_validated(spark):
    dup = spark.createDataFrame(pd.DataFrame({"surveyId": [1, 1, 2], "x": [0.0, 5.0, 1.0], "y": [0.0, 0.0, 1.0]}))
    with pytest.raises(ValueError, match="sources: 1 duplicate surveyId"):
        validate_sites(dup, "sources")
    nan = spark.createDataFrame(pd.DataFrame({"surveyId": [1, 2], "x": [0.0, float("nan")], "y": [0.0, 1.0]}))
    with pytest.raises(ValueError, match="queries: 1 of 2 row.*x or y"):
        neighbours_exact(nan, nan, 1.0)
    with pytest.raises(ValueError, match="cell_km=1 must be >= radius_km=5"):
        neighbours_exact(nan, nan, 5.0, cell_km=1)
    with pytest.raises(ValueError, match="method='kd'"):
        neighbours(nan, nan, 5.0, method="kd")
    surveys = spark.createDataFrame(
        pd.DataFrame(
            {"surveyId": [1, 2, 3], "x": [0.0, 1.0, 2.0], "y": [0.0, 0.0, 0.0], "split": ["train", "test", "train"]}
        )
    )
    po = spark.createDataFrame(
        pd.DataFrame({"surveyId": [7, 7, 8], "x": [5.0, 5.0, 6.0], "y": [0.0, 0.0, 0.0], "speciesId": [1, 2, 1]})
    )
    got = select_sites(surveys, po, ["pa_train", "po"]).toPandas().sort_values("surveyId")
    assert got["surveyId"].tolist() == [1, 3, 7, 8]
    with pytest.raises(ValueError, match="no PO table"):
        select_sites(surveys, None, ["po"])
