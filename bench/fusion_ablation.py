"""Fusion ablation (Tighnari's Table 3, our numbers): from the concat baseline to the full design, one step at a time.

``python -m bench.fusion_ablation [--rows a,b]`` (``make bench-fusion``) derives one experiment per row from
``tasks/fusion.toml`` (the full design), each row adding one step to the previous one:

====================  ============================================================================================
row                   change (cumulative)
====================  ============================================================================================
``concat``            the baseline: the organizers' ResNet18 cube branches, image + tabular, concatenated; no GFV,
                      one model, no mixup; top-K decoding (K fitted on validation), no PO correction
``+temporal_swin``    temporal Swin on the cubes instead of ResNet18
``+gfv``              the graph branch (out-of-fold GFV with the model's folds)
``+hcam``             hierarchical cross-attention instead of concatenation
``+mixup``            mixup of every input and the labels
``+kfold``            3-fold cross fusion (folds 2-3 fine-tuned from fold 1, logits averaged)
``+threshold_topk``   Tighnari's threshold-top-K decoder (fitted on validation; same model)
``+expected_f1``      Platt-calibrated expected-F1 decoding instead (same model)
``+po_correction``    the PO output correction after decoding (same model) = ``tasks/fusion.toml``
====================  ============================================================================================

Every row runs the whole Luigi DAG (``Submission``) on the demo world into the synthetic leaderboard's output root
(``out-bench/leaderboard``: the feature artifacts ``make bench-leaderboard`` built for ``fusion`` are reused, so
every row's wall time is its training + prediction + decoding + report; rows that change only the decoder share the
trained model, and the rows that train the full design's model share it with ``make fusion``, so they take seconds:
their ``wall_note`` says whose training they reused), and its ``submission.csv`` is scored on the world's hidden test
labels exactly as Kaggle would (:func:`bench.leaderboard.score`). Writes ``bench/results/fusion_ablation.json`` (rows
with test and validation sample-F1, the change against the previous row, the DAG wall time),
``bench/results/fusion_ablation.md`` and its copy in ``docs/models.md`` (section "Multimodal fusion", between the
``fusion-ablation`` markers).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: The copy of the table in ``docs/models.md`` sits between these markers (section "Multimodal fusion").
README_MARKS = ("<!-- fusion-ablation:start -->", "<!-- fusion-ablation:end -->")

#: ``(row name, what it changes, overrides applied to the previous row's config)``.
ROWS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "concat",
        "baseline: ResNet18 cube branches + image + tabular, concatenated; top-K decoding",
        {
            "model": {"fusion": "concat", "cube_encoder": "resnet18", "graph": {"enabled": False}},
            "train": {"mixup_alpha": 0.0, "kfold": 1},
            "decoder": {"kind": "topk", "po_correction": {"enabled": False}},
        },
    ),
    ("+temporal_swin", "temporal Swin on the cubes", {"model": {"cube_encoder": "swin"}}),
    (
        "+gfv",
        "graph branch (out-of-fold GFV, the model's folds)",
        {"model": {"graph": {"enabled": True, "tokens": 1, "width": 128}}},
    ),
    (
        "+hcam",
        "hierarchical cross-attention fusion",
        {"model": {"fusion": "hcam", "graph": {"tokens": 4, "width": 64}}},
    ),
    ("+mixup", "mixup of every input and the labels", {"train": {"mixup_alpha": None}}),
    ("+kfold", "3-fold cross fusion, folds 2-3 fine-tuned from fold 1", {"train": {"kfold": None}}),
    ("+threshold_topk", "threshold-top-K decoder (same model)", {"decoder": {"kind": "threshold_topk"}}),
    ("+expected_f1", "Platt-calibrated expected-F1 decoder (same model)", {"decoder": {"kind": None}}),
    (
        "+po_correction",
        "PO output correction after decoding (same model) = tasks/fusion.toml",
        {"decoder": {"po_correction": {"enabled": True}}},
    ),
]


def _merge(base: dict[str, Any], over: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``over`` (nested); a ``None`` value takes the full design's value (``full``)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict):
            out[k] = _merge(out.get(k, {}), v, full.get(k, {}))
        else:
            out[k] = copy.deepcopy(full[k]) if v is None else v
    return out


def row_configs(full: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The experiment table of every row (``full``: the raw TOML table of ``tasks/fusion.toml``).

    Rows that train the same model (only the decoder differs) share one experiment name, so they share the trained
    model (its folder is ``{name}-{model_key}``); rows that train the full design's model are named after it
    (``fusion``), so they reuse what ``make fusion`` / the leaderboard trained and the last row is that experiment.
    """
    from glc.config import model_key, resolve

    full_key = model_key(resolve(full, "tasks/fusion.toml"))
    names: dict[str, str] = {full_key: full["name"]}
    out, cur = [], copy.deepcopy(full)
    for i, (name, what, over) in enumerate(ROWS):
        cur = _merge(cur, over, full)
        cur["name"] = f"fusion-ablation-{i}-{name.lstrip('+')}"
        cur["name"] = names.setdefault(model_key(resolve(cur, f"ablation row {name}")), cur["name"])
        out.append((name, what, copy.deepcopy(cur)))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the ablation rows and write the results."""
    import tomli_w

    from bench.common import RESULTS, machine
    from bench.leaderboard import run_experiment, score
    from glc.config import config_hash, experiment_table, model_key, resolve
    from glc.io import atomic_file
    from glc.synth import generate_world
    from glc.synth.oracle import oracle_sample_f1
    from glc.tasks.base import dataset_key

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, default=REPO / "data" / "synthetic" / "demo-seed0")
    ap.add_argument("--out-root", type=Path, default=REPO / "out-bench" / "leaderboard")
    ap.add_argument(
        "--rows", default="", help="comma-separated row names to (re)run (default: all); others keep their results"
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    full = experiment_table("fusion")
    rows = row_configs(full)
    wanted = [r.strip() for r in a.rows.split(",") if r.strip()] or [r[0] for r in rows]
    unknown = [r for r in wanted if r not in {n for n, _, _ in rows}]
    if unknown:
        raise SystemExit(f"--rows: unknown {unknown}; rows are {[n for n, _, _ in rows]}")
    if not (a.world / "_SUCCESS").exists():
        generate_world(a.world, scale="demo", seed=0)
    conf_dir = a.out_root / "configs"
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "fusion_ablation.json"
    old = {r["row"]: r for r in (json.loads(path.read_text()).get("rows", []) if path.exists() else [])}
    oracle = round(float(oracle_sample_f1(a.world)), 4)
    models_dir = a.out_root / dataset_key(a.world) / "models"
    trained_by: dict[str, str] = {}  # model folder -> the row that trained it in this run
    results: list[dict[str, Any]] = []
    for i, (name, what, table) in enumerate(rows, 1):
        cfg = resolve(table, f"ablation row {name}")
        toml = conf_dir / f"fusion-ablation-{i - 1}-{name.lstrip('+')}.toml"
        with atomic_file(toml) as fh:
            fh.write(f"# fusion ablation row {name!r}: {what}\n" + tomli_w.dumps(table))
        model = f"{cfg['name']}-{model_key(cfg)}"
        prev = old.get(name)
        if name not in wanted and prev is not None and prev.get("config_hash") == config_hash(cfg):
            results.append(prev)
            trained_by.setdefault(model, name)
            continue
        note = (
            f"decoder only: the model of row {trained_by[model]}"
            if model in trained_by
            else f"model {model} trained before this run"
            if (models_dir / model / "model" / "_SUCCESS").exists()
            else None
        )
        trained_by.setdefault(model, name)
        print(f"[{i}/{len(rows)}] {name}: {what}", flush=True)
        t0 = time.perf_counter()
        wall, worked, _ = run_experiment(str(toml), a.world, a.out_root)
        r = score(str(toml), a.world, a.out_root)
        exp_dir = a.out_root / dataset_key(a.world) / "experiments" / f"{cfg['name']}-{config_hash(cfg)}"
        report = json.loads((exp_dir / "report" / "report.json").read_text())
        results.append(
            {
                "row": name,
                "change": what,
                "experiment": cfg["name"],
                "model": model,
                "test_sample_f1": r["test_sample_f1"],
                "val_sample_f1": r["val_sample_f1"],
                "test_micro_f1": r["test_micro_f1"],
                "decoder": cfg["decoder"]["kind"],
                "po_correction": report.get("po_correction"),
                "wall_seconds": round(wall, 1),
                "wall_note": note,
                "seconds_including_scoring": round(time.perf_counter() - t0, 1),
                "did_work": worked,
                "config_hash": r["config_hash"],
            }
        )
        print(
            f"{name}: test sample-F1 {r['test_sample_f1']:.4f} (validation {r['val_sample_f1']:.4f}), {wall:.0f} s",
            flush=True,
        )
        # after every row (with the old results of the rows still to come): an interrupted run keeps what it measured
        write_results(path, results + [old[n] for n, _, _ in rows[i:] if n in old], a.world.name, oracle, machine())
    out = write_results(path, results, a.world.name, oracle, machine())
    print(markdown(out))
    return 0


def write_results(
    path: Path, results: list[dict[str, Any]], world: str, oracle: float, host: dict[str, Any]
) -> dict[str, Any]:
    """Fill each row's change against the previous one; write the JSON, the markdown and the copy in docs/models.md."""
    from bench.common import repo_relative
    from bench.leaderboard import update_readme
    from glc.io import atomic_file, write_json

    for prev, cur in zip([None, *results[:-1]], results):
        cur["delta_test"] = None if prev is None else round(cur["test_sample_f1"] - prev["test_sample_f1"], 4)
        cur["helps"] = None if prev is None else cur["test_sample_f1"] > prev["test_sample_f1"]
    out = {
        "machine": host,
        "world": world,
        "oracle_test_sample_f1": oracle,
        "protocol": "each row's submission.csv scored on the world's hidden PA-test labels (_truth/), like Kaggle; "
        "rows are cumulative, derived from tasks/fusion.toml; rows sharing a model share its training",
        "rows": results,
    }
    write_json(path, repo_relative(out))
    with atomic_file(path.with_suffix(".md")) as fh:
        fh.write(markdown(out))
    update_readme(markdown(out, heading=False), REPO / "docs" / "models.md", marks=README_MARKS)
    return out


def markdown(result: dict[str, Any], heading: bool = True) -> str:
    """The ablation table (oracle last), under a heading unless ``heading`` is False (the README's copy)."""
    lines = [f"# Fusion ablation ({result['world']}, hidden test labels)", ""] if heading else []
    lines += [
        "| row | change | test sample-F1 | vs previous | validation sample-F1 | DAG wall time |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        d = (
            "—"
            if r.get("delta_test") is None
            else f"{r['delta_test']:+.4f}" + ("" if r["helps"] else " (does not help)")
        )
        wall = f"{r['wall_seconds']:.0f} s" + (f" ({r['wall_note']})" if r.get("wall_note") else "")
        lines.append(
            f"| `{r['row']}` | {r['change']} | {r['test_sample_f1']:.4f} | {d} | {r['val_sample_f1']:.4f} | {wall} |"
        )
    lines.append(f"| oracle | true probabilities, expected-F1 | {result['oracle_test_sample_f1']:.4f} | | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
