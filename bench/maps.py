"""Whole-Europe species maps: time and peak memory of ``glc map`` at 5 km on the demo world.

``python -m bench.maps [--experiments knn,geolocation-asl] [--resolution-km 5]`` (``make bench-maps``): for each
experiment, its prerequisites (survey table; trained model for trained kinds) are built or reused in
``out-bench/leaderboard`` first; then one child process writes the map (richness + two species bands over the whole
data extent, EPSG:3035) and reports its wall time and peak RSS (``ru_maxrss`` of that process: the map writer
itself, prerequisites excluded). Results: ``bench/results/maps.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import write_result

REPO = Path(__file__).resolve().parents[1]
WORLD = REPO / "data" / "synthetic" / "demo-seed0"
OUT = REPO / "out-bench" / "leaderboard"


def _one(experiment: str, resolution_km: float, out: Path) -> dict[str, Any]:
    """Child: build the point model (prerequisites already complete), write the map, report time and RSS."""
    import numpy as np

    from glc.predict.maps import map_grid, write_species_map
    from glc.tasks.maps import build_point_model

    model = build_point_model(experiment, str(WORLD), str(OUT))
    freq = np.bincount(np.concatenate([np.asarray(s, np.int64) for s in model.train["speciesIds"]]))
    species = [int(s) for s in np.argsort(-freq)[:2]]
    grid = map_grid(model.extent, None, resolution_km)
    t0 = time.perf_counter()
    summary = write_species_map(model, grid, out, species, richness=True, progress=False)
    wall = time.perf_counter() - t0
    return {
        "experiment": experiment,
        "model": model.cfg["model"]["kind"],
        "resolution_km": resolution_km,
        "grid": f"{grid.width} x {grid.height}",
        "cells": summary["cells"],
        "land_cells": summary["land"],
        "bands": summary["bands"],
        "map_seconds": round(wall, 2),
        "land_cells_per_second": round(summary["land"] / wall, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "geotiff_mb": round(out.stat().st_size / 2**20, 2),
        "land_mask": summary["land_mask"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--experiments", default="knn,geolocation-asl")
    p.add_argument("--resolution-km", type=float, default=5.0)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        out = OUT / "bench-maps" / f"{a.one}-{a.resolution_km:g}km.tif"
        out.parent.mkdir(parents=True, exist_ok=True)
        print("RESULT " + json.dumps(_one(a.one, a.resolution_km, out)))
        return 0
    if not (WORLD / "_SUCCESS").exists():
        subprocess.run(
            [sys.executable, "-m", "glc", "synth", "--scale", "demo", "--seed", "0", "--out", str(WORLD)], check=True
        )
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
        "WANDB_SILENT": "true",
        "LUIGI_CONFIG_PATH": str(REPO / "conf" / "luigi.cfg"),
    }
    rows = []
    for name in [e for e in a.experiments.split(",") if e]:
        # prerequisites (survey table, trained model) first, so the measured child only draws the map
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"from glc.tasks.maps import build_point_model as b; b({name!r}, {str(WORLD)!r}, {str(OUT)!r})",
            ],
            cwd=REPO,
            env=env,
            check=True,
        )
        proc = subprocess.run(
            [sys.executable, "-m", "bench.maps", "--one", name, "--resolution-km", str(a.resolution_km)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"map of {name!r} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        row = json.loads(
            next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT ") :]
        )
        print(row)
        rows.append(row)
    write_result("maps", {"world": str(WORLD.relative_to(REPO)), "maps": rows, "command": "make bench-maps"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
