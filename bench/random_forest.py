"""Random-forest cost benchmark (GLC2020 run 1): fit time, forest size and peak RSS on a synthetic world.

``python -m bench.random_forest [--data-root DIR] [--probe-trees 4] [--settings JSON]`` (``make bench-rf``) builds the
world's ``SurveyTable`` and ``EnvFeatures`` (Luigi, Spark), expands the training surveys into (survey, species) rows
and, for each setting, fits ``--probe-trees`` trees of the forest in a **fresh subprocess** (so its peak RSS is its
own), recording fit seconds, the bytes of the trees' class-histogram arrays, and the process's peak RSS. Trees are
independent, so the full forest's time and tree memory are the probe's times ``n_estimators / probe_trees`` (the
extrapolation is written beside the measurement, never in place of it); the whole forest is fitted for real when
``--probe-trees`` equals ``n_estimators``.

Settings (``--settings``, a JSON list of ``[model]`` overrides; default: GLC2020's 100 trees of depth 10 on every
species — 13.1 GB peak RSS on the full-scale world's 7,820 species — then a lighter setting for bigger species
pools: the 1,000 most frequent species, 25 % bootstrap rows per tree). Writes ``bench/results/random_forest.json``
(``--name`` to keep several worlds apart).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SETTINGS = [
    {"n_estimators": 100, "max_depth": 10},
    {"n_estimators": 100, "max_depth": 10, "max_classes": 1000, "max_samples": 0.25},
]


def _child(frame_path: str, setting: dict[str, Any], probe: int) -> dict[str, Any]:
    """Fit ``probe`` trees of ``setting`` on the pickled frame (runs in the subprocess)."""
    import resource
    import time

    import numpy as np
    import pandas as pd

    from glc.models.random_forest import RandomForestModel

    frame = pd.read_pickle(frame_path)
    cfg = {"kind": "random_forest", "top_n": 100, "features": ["env"], **setting, "n_estimators": probe}
    t0 = time.perf_counter()
    m = RandomForestModel(cfg, seed=0).fit(frame)
    secs = time.perf_counter() - t0
    tree_bytes = int(sum(e.tree_.value.nbytes + e.tree_.__getstate__()["nodes"].nbytes for e in m.rf_.estimators_))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "probe_trees": probe,
        "fit_seconds": round(secs, 2),
        "tree_bytes": tree_bytes,
        "peak_rss_gb": round(peak / 2**30, 3),
        "rows": m.info_["rows"],
        "classes": m.info_["classes"],
        "dropped_pairs": m.info_["dropped_pairs"],
        "max_depth_reached": int(max(e.tree_.max_depth for e in m.rf_.estimators_)),
        "n_nodes_mean": float(np.mean([e.tree_.node_count for e in m.rf_.estimators_])),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    import luigi

    from bench.common import write_result
    from glc.features.tabular import join_feature_sets
    from glc.tasks.features import EnvFeatures
    from glc.tasks.surveys import SurveyTable, read_surveys

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-root", default=str(REPO / "data" / "synthetic" / "demo-seed0"))
    ap.add_argument("--out-root", default=str(REPO / "out-bench" / "leaderboard"))
    ap.add_argument("--probe-trees", type=int, default=4)
    ap.add_argument(
        "--settings", default="", help="JSON list of [model] overrides (default: GLC2020 and the fitting setting)"
    )
    ap.add_argument("--name", default="random_forest", help="result file stem under bench/results/")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(_child(a.child[0], json.loads(a.child[1]), int(a.child[2]))))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = json.loads(a.settings) if a.settings else DEFAULT_SETTINGS
    st, env = (
        SurveyTable(data_root=a.data_root, out_root=a.out_root),
        EnvFeatures(data_root=a.data_root, out_root=a.out_root),
    )
    if not luigi.build([st, env], local_scheduler=True):
        raise SystemExit("SurveyTable / EnvFeatures failed; see the log above")
    surveys = read_surveys(st.output())
    train = join_feature_sets(surveys[surveys["split"] == "train"].reset_index(drop=True), {"env": env.output().dir})
    rows = []
    with tempfile.TemporaryDirectory() as d:
        fp = str(Path(d) / "train.pkl")
        train.to_pickle(fp)
        for s in settings:
            n = int(s.get("n_estimators", 100))
            probe = min(int(a.probe_trees), n)
            cmd = [sys.executable, "-m", "bench.random_forest", "--child", fp, json.dumps(s), str(probe)]
            proc = subprocess.run(
                cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}
            )
            if proc.returncode != 0:
                raise SystemExit(f"setting {s} failed:\n{proc.stderr[-3000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            scale = n / probe
            r.update(
                {
                    "setting": s,
                    "n_estimators": n,
                    "surveys": len(train),
                    "projected_fit_seconds": round(r["fit_seconds"] * scale, 1),
                    "projected_tree_gb": round(r["tree_bytes"] * scale / 2**30, 3),
                    "projected_peak_rss_gb": round(r["peak_rss_gb"] + r["tree_bytes"] * (scale - 1) / 2**30, 3),
                }
            )
            rows.append(r)
            print(json.dumps(r), flush=True)
    path = write_result(a.name, {"world": a.data_root, "settings": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
