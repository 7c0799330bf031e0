"""Pretraining benchmark: the self-supervised encoders and what they transfer, on the demo world.

``python -m bench.pretraining`` (``make bench-pretraining``) runs, in one output root (``out-bench/leaderboard`` by
default, shared with the synthetic leaderboard so nothing is built twice):

* the experiments ``tile2vec``, ``tile2vec-untrained``, ``tile2vec-finetune``, ``geolocation-satclip`` and
  ``geolocation-asl`` to their submissions (which pretrain the encoders ``tasks/encoders/tile2vec*.toml`` and
  ``satclip.toml`` on the way), each scored on the world's hidden test labels (:func:`bench.leaderboard.score`);
* from each encoder's ``summary.json``: held-out triplet accuracy (tile2vec), SatCLIP retrieval median / p90 error of
  the test images over >= 100,000 grid location embeddings against the same retrieval with a random (untrained)
  encoder, pretraining samples/s and the device;
* optional ``--gpu-results FILE``: a JSON of GPU runs (``python -m glc.training.pretrain`` on a GPU machine) merged
  under ``gpu`` as they are (absolute GPU timings are the only ones worth quoting).

Writes ``bench/results/pretraining.json`` and prints the acceptance checks of the issue (triplet accuracy >= 0.90;
tile2vec beats tile2vec-untrained by >= 0.02 and the global frequency reference; geolocation-satclip >=
geolocation-asl; retrieval median <= 0.5 x random). A failed check is reported, not hidden (exit code 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = ("tile2vec", "tile2vec-untrained", "tile2vec-finetune", "geolocation-satclip", "geolocation-asl")
ENCODERS = ("tile2vec", "tile2vec-untrained", "satclip")


def encoder_summary(name: str, world: Path, out_root: Path) -> dict[str, Any]:
    """The published summary of encoder ``name`` (its artifact must exist)."""
    from glc.config import config_hash, load_encoder_config
    from glc.tasks.base import dataset_key

    cfg = load_encoder_config(name)
    d = out_root / dataset_key(world) / "encoders" / f"{cfg['name']}-{config_hash(cfg)}"
    s = json.loads((d / "summary.json").read_text())
    keep = (
        "kind",
        "objective",
        "monitor",
        "best_monitor",
        "epochs_to_best",
        "sites",
        "parameters",
        "train_samples_per_s",
        "fit_seconds",
        "seconds",
        "device",
        "counts",
        "evaluation",
        "curve",
    )
    return {"path": str(d), **{k: s.get(k) for k in keep}}


def checks(
    rows: dict[str, dict[str, Any]], enc: dict[str, dict[str, Any]], reference: float
) -> dict[str, dict[str, Any]]:
    """The issue's acceptance numbers, each with its value and whether it holds."""
    f1 = {n: r["test_sample_f1"] for n, r in rows.items()}
    acc = enc["tile2vec"]["evaluation"]["heldout_triplet_acc"]
    ret = enc["satclip"]["evaluation"]
    curve = [c.get("val/sample_f1") for c in rows["tile2vec"].get("curve", [])]
    return {
        "triplet_accuracy_ge_0.90": {"value": round(acc, 4), "ok": acc >= 0.90},
        "tile2vec_minus_untrained_ge_0.02": {
            "value": round(f1["tile2vec"] - f1["tile2vec-untrained"], 4),
            "ok": f1["tile2vec"] - f1["tile2vec-untrained"] >= 0.02,
        },
        "tile2vec_above_global_frequency": {
            "value": f1["tile2vec"],
            "reference": reference,
            "ok": f1["tile2vec"] > reference,
        },
        "geolocation_satclip_ge_geolocation_asl": {
            "value": round(f1["geolocation-satclip"] - f1["geolocation-asl"], 4),
            "ok": f1["geolocation-satclip"] >= f1["geolocation-asl"],
        },
        "retrieval_median_le_half_random": {"value": round(ret["median_ratio"], 4), "ok": ret["median_ratio"] <= 0.5},
        "tile2vec_val_f1_rises": {
            "value": curve[:5],
            "ok": len(curve) >= 2 and curve[min(4, len(curve) - 1)] > curve[0],
        },
    }


def training_curve(world: Path, out_root: Path, name: str) -> list[dict[str, float]]:
    """Per-epoch validation sample-F1 of an experiment's trained head (its CSV log)."""
    import pandas as pd

    from glc.config import load_experiment, model_key
    from glc.tasks.base import dataset_key

    cfg = load_experiment(name)
    files = sorted(
        (out_root / dataset_key(world) / "models" / f"{cfg['name']}-{model_key(cfg)}" / "training").glob(
            "csv/version_*/metrics.csv"
        )
    )
    if not files:
        return []
    df = pd.concat([pd.read_csv(f) for f in files]).dropna(subset=["val/sample_f1"])
    return [
        {"epoch": int(e), "val/sample_f1": round(float(v), 4)}
        for e, v in df.groupby("epoch")["val/sample_f1"].last().items()
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the experiments, collect the encoder summaries, write the result."""
    from bench.common import RESULTS, machine, repo_relative
    from bench.leaderboard import run_experiment, score
    from glc.io import write_json

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=REPO / "data" / "synthetic" / "demo-seed0")
    ap.add_argument("--out-root", type=Path, default=REPO / "out-bench" / "leaderboard")
    ap.add_argument("--gpu-results", type=Path, default=None, help="JSON of GPU pretraining runs to merge under 'gpu'")
    a = ap.parse_args(argv)
    world, out = a.data_root.resolve(), a.out_root.resolve()
    rows: dict[str, dict[str, Any]] = {}
    for name in EXPERIMENTS:
        wall, worked, _ = run_experiment(name, world, out)
        rows[name] = {
            **score(name, world, out),
            "wall_seconds": round(wall, 1) if worked else None,
            "curve": training_curve(world, out, name),
        }
        print(f"{name}: test sample-F1 {rows[name]['test_sample_f1']:.4f}", flush=True)
    enc = {}
    for name in ENCODERS:
        enc[name] = encoder_summary(name, world, out)
    from glc.synth.oracle import frequency_baseline_sample_f1

    reference = round(float(frequency_baseline_sample_f1(world)[1]), 4)
    result: dict[str, Any] = {
        "machine": machine(),
        "world": world.name,
        "experiments": rows,
        "encoders": enc,
        "global_frequency_test_f1": reference,
        "checks": checks(rows, enc, reference),
    }
    if a.gpu_results:
        result["gpu"] = json.loads(a.gpu_results.read_text())
    write_json(RESULTS / "pretraining.json", repo_relative(result))
    for k, v in result["checks"].items():
        print(f"{'ok  ' if v['ok'] else 'FAIL'} {k}: {v['value']}")
    return 0 if all(v["ok"] for v in result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
