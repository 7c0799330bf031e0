"""The same DAG on a Spark standalone cluster (master + worker on 127.0.0.1) gives the artifacts of local[*].

The cluster run is a child process (the test session owns the one local SparkSession of this interpreter) with
``GLC_SPARK_MASTER=spark://127.0.0.1:<port>``. Compared: SurveyTable and Neighbours are written by Spark (part files
named by a random job UUID), so they are compared row for row; RasterTiles ``data/`` files are written by the
executors with pyarrow (:mod:`glc.etl.staging`), so they are compared byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import luigi
import pandas as pd
import pytest

from glc.tasks import RasterTiles, SurveyTable
from glc.tasks.neighbours import Neighbours
from tests.spark_cluster import StandaloneCluster

REPO = Path(__file__).resolve().parents[2]


def _tasks(root: Path, out: Path) -> list[luigi.Task]:
    common = {"data_root": str(root), "out_root": str(out)}
    return [
        SurveyTable(**common),
        RasterTiles(raster_group="human_footprint", k=2, tile_size=8, **common),
        Neighbours(**common),
    ]


_CHILD = """
import sys, luigi
from pathlib import Path
from tests.tasks.test_cluster import _tasks
from glc.spark import get_spark
master = get_spark("glc-cluster-test").sparkContext.master
assert master.startswith("spark://"), master
ok = luigi.build(_tasks(Path(sys.argv[1]), Path(sys.argv[2])), local_scheduler=True, workers=1)
sys.exit(0 if ok else 3)
"""


@pytest.fixture()
def cluster(tmp_path: Path):
    c = StandaloneCluster(tmp_path / "cluster")
    try:
        yield c.start()
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()


def _rows(folder: Path) -> pd.DataFrame:
    """The artifact's rows in a canonical order (array cells as tuples, sorted by every column)."""
    df = pd.read_parquet(folder)
    for c in df.columns:
        if df[c].dtype == object and len(df) and not isinstance(df[c].iloc[0], (str, bytes)):
            df[c] = df[c].map(lambda v: None if v is None else tuple(v))
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def test_standalone_cluster_gives_the_local_artifacts(spark, cluster: str, tiny_world: Path, tmp_path: Path) -> None:
    local_out, cluster_out = tmp_path / "local", tmp_path / "cluster-out"
    assert luigi.build(_tasks(tiny_world, local_out), local_scheduler=True, workers=1)
    env = {
        **os.environ,
        "GLC_SPARK_MASTER": cluster,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "GLC_SPARK_CONF": "spark.driver.host=127.0.0.1,spark.driver.bindAddress=127.0.0.1,spark.executor.memory=2g",
    }
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tiny_world), str(cluster_out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    local_tasks, cluster_tasks = _tasks(tiny_world, local_out), _tasks(tiny_world, cluster_out)
    for lt, ct in zip(local_tasks, cluster_tasks):
        ldir, cdir = Path(lt.output().path).parent, Path(ct.output().path).parent
        assert ldir.relative_to(local_out) == cdir.relative_to(cluster_out)
        data = "surveys" if isinstance(lt, SurveyTable) else "data"
        pd.testing.assert_frame_equal(_rows(ldir / data), _rows(cdir / data), obj=f"{lt.task_family} {data}/")
        if isinstance(lt, RasterTiles):
            lf, cf = sorted((ldir / "data").glob("*.parquet")), sorted((cdir / "data").glob("*.parquet"))
            assert [f.name for f in lf] == [f.name for f in cf]
            assert all(a.read_bytes() == b.read_bytes() for a, b in zip(lf, cf)), "RasterTiles data/ bytes differ"
