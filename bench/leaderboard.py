"""Synthetic leaderboard: every experiment in ``tasks/`` run on the demo world and scored on its hidden test labels.

One leaderboard per edition: ``--edition glc24`` (default; the demo world ``data/synthetic/demo-seed0``,
``bench/results/synth_leaderboard.json``) or ``--edition glc25`` (``data/synthetic/glc25-demo-seed0``,
``bench/results/synth_leaderboard_glc25.json``, same schema, its table in ``docs/glc25.md`` between the
``<!-- leaderboard-glc25:start -->`` markers). An experiment the edition refuses (it reads data the edition does not
ship, :func:`glc.config.check_edition`) is listed under ``refused`` with the reason, never run.

``python -m bench.leaderboard [--edition glc25] [--only a,b] [--fresh]`` (``make bench-leaderboard [EDITION=glc25]``)
runs, for each ``tasks/*.toml``, ``luigi --module glc.tasks Submission --experiment <name>`` on the demo synthetic world
(generated if missing) into one output root (``out-bench/leaderboard``; artifacts shared by experiments, e.g.
PatchTiles, are built once by the first experiment that needs them), then scores its ``submission.csv`` against the
world's hidden test labels (``_truth/GLC24_SOLUTION_FILE.csv``) exactly as Kaggle would (experiments whose
``[train] accelerator`` is ``"gpu"`` are skipped on a machine without one) (``glc.metrics.score_submission``), beside
the oracle on the same surveys (the expected-F1 decoding of the true probabilities: the best any model can reach there).

Writes ``bench/results/synth_leaderboard.json``::

    {"machine": {...}, "world": ..., "oracle_test_sample_f1": ...,
     "experiments": [{"experiment", "model", "decoder", "test_sample_f1", "val_sample_f1", "wall_seconds", ...}]}

sorted by test sample-F1, and ``bench/results/synth_leaderboard.md``, which also replaces the table between the
``<!-- leaderboard:start -->`` / ``<!-- leaderboard:end -->`` markers of ``docs/results.md``. ``--only`` re-runs a
subset and keeps the other rows of the existing JSON (when their config hash is unchanged). An experiment whose DAG was
already complete in the output root keeps the wall time of the run that built it (``--fresh`` removes the output
root first so every time is measured). A failed experiment fails the whole run (non-zero exit), after the others.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MARK_START, MARK_END = "<!-- leaderboard:start -->", "<!-- leaderboard:end -->"


def run_experiment(name: str, world: Path, out_root: Path) -> tuple[float, bool, str]:
    """Run the experiment's DAG in a subprocess; return (wall seconds, whether it did work, the output tail)."""
    env = {
        **os.environ,
        "LUIGI_CONFIG_PATH": str(REPO / "conf" / "luigi.cfg"),
        "PYTHONHASHSEED": "0",
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
        "WANDB_SILENT": "true",
    }
    cmd = [
        sys.executable,
        "-m",
        "luigi",
        "--module",
        "glc.tasks",
        "--local-scheduler",
        "Submission",
        "--experiment",
        name,
        "--data-root",
        str(world),
        "--out-root",
        str(out_root),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    tail = (proc.stdout + proc.stderr)[-4000:]
    if proc.returncode != 0:
        raise RuntimeError(f"experiment {name!r} failed (exit {proc.returncode}); last output:\n{tail}")
    return wall, "Did not run any tasks" not in tail, tail


def score(name: str, world: Path, out_root: Path) -> dict[str, Any]:
    """The experiment's row: test sample-F1 (hidden labels), validation sample-F1 (its report), model, decoder."""
    from glc.config import config_hash, load_experiment
    from glc.data.layout import detect_layout
    from glc.data.metadata import read_species_lists
    from glc.metrics import score_submission
    from glc.tasks.base import dataset_key

    cfg = load_experiment(name, detect_layout(world).edition)
    exp_dir = out_root / dataset_key(world) / "experiments" / f"{cfg['name']}-{config_hash(cfg)}"
    sub = read_species_lists(exp_dir / "submission.csv")
    res = score_submission(read_species_lists(world / "_truth" / "GLC24_SOLUTION_FILE.csv"), sub)
    report = json.loads((exp_dir / "report" / "report.json").read_text())
    return {
        "experiment": name,
        "model": cfg["model"]["kind"],
        "decoder": cfg["decoder"]["kind"],
        "test_sample_f1": round(float(res["sample_f1"]), 4),
        "test_micro_f1": round(float(res["micro_f1"]), 4),
        "val_sample_f1": round(float(report["validation"]["sample_f1"]), 4),
        "n_test": int(res["n_surveys"]),
        "config_hash": config_hash(cfg),
        "shuffled_inputs": cfg["inputs"]["shuffle"],
    }


def pick_experiments(text: str, flag: str) -> list[str]:
    """The experiments named in ``text`` (comma-separated; empty = every ``tasks/*.toml``); an unknown name exits
    naming ``flag`` and the known ones."""
    from glc.config import tasks_dir

    known = sorted(p.stem for p in tasks_dir().glob("*.toml"))
    names = [n.strip() for n in text.split(",") if n.strip()] or known
    bad = [n for n in names if n not in known]
    if bad:
        raise SystemExit(f"{flag}: unknown experiment(s) {bad}; known: {known}")
    return names


def _gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def markdown(result: dict[str, Any]) -> str:
    """The leaderboard as a markdown table (oracle first)."""
    lines = [
        "| experiment (`make <name>`) | model | test sample-F1 (hidden labels) "
        "| validation sample-F1 | DAG wall time |",
        "|---|---|---|---|---|",
        f"| **oracle** (true probabilities, expected-F1) | — | **{result['oracle_test_sample_f1']:.3f}** | — | — |",
    ]
    for r in result["experiments"]:
        name = r["experiment"] + (" (control: inputs shuffled)" if r.get("shuffled_inputs") else "")
        wall = f"{r['wall_seconds']:.0f} s" if r.get("wall_seconds") is not None else "—"
        lines.append(f"| `{name}` | {r['model']} | {r['test_sample_f1']:.3f} | {r['val_sample_f1']:.3f} | {wall} |")
    return "\n".join(lines) + "\n"


#: The page whose marked tables the benchmarks rewrite (the leaderboard, the full-scale DAG).
RESULTS_DOC = REPO / "docs" / "results.md"


def update_readme(table: str, readme: Path = RESULTS_DOC, marks: tuple[str, str] = (MARK_START, MARK_END)) -> bool:
    """Replace the text of a documentation page (``docs/results.md`` by default) between the ``marks`` (the
    leaderboard's by default); False if they are absent."""
    start, end = marks
    text = readme.read_text()
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    from glc.io import atomic_file

    with atomic_file(readme) as fh:
        fh.write(f"{head}{start}\n{table}{end}{tail}")
    return True


def world_paths(edition: str, seed: int, po_records: int | None) -> tuple[Path, Path, str]:
    """The default world, output root and results-file suffix of a leaderboard run: the demo world of ``edition`` and
    ``seed``, drawn with ``po_records`` presence-only records where given (``demo-seed0-po510000``,
    ``out-bench/leaderboard-po510000``, ``_po510000``); seed 0 with the default records is the one the docs show."""
    from glc.tasks.synth import world_dir_name

    po = "" if po_records is None else f"po{po_records}"
    world = REPO / "data" / "synthetic" / world_dir_name(edition, "demo", seed, po_records or 0)
    tags = ([] if edition == "glc24" else [edition]) + ([f"seed{seed}"] if seed else []) + ([po] if po else [])
    out_root = REPO / "out-bench" / "-".join(["leaderboard", *tags])
    return world, out_root, "".join(f"_{t}" for t in tags)


def main(argv: list[str] | None = None) -> int:
    """Run the leaderboard and write the results."""
    from bench.common import RESULTS, machine, repo_relative
    from glc.config import tasks_dir
    from glc.io import write_json
    from glc.synth import generate_world
    from glc.synth.oracle import oracle_sample_f1

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edition", choices=["glc24", "glc25"], default="glc24", help="which edition's demo world")
    ap.add_argument("--world", type=Path, default=None, help="default: data/synthetic/[glc25-]demo-seed0")
    ap.add_argument("--out-root", type=Path, default=None, help="default: out-bench/leaderboard[-glc25]")
    ap.add_argument("--only", default="", help="comma-separated experiment names (default: every tasks/*.toml)")
    ap.add_argument("--fresh", action="store_true", help="remove the output root first (every wall time measured)")
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the demo world's seed: another seed rechecks results on an unseen world (its own output root and "
        "results file, *_seed<N>.json; the docs and README tables stay those of seed 0)",
    )
    ap.add_argument(
        "--po-records",
        type=int,
        default=None,
        metavar="N",
        help="a demo world with about N presence-only records instead of 30,000 (data/synthetic/demo-seed<S>-po<N>, "
        "generated if missing; its own output root and results file, *_po<N>.json; the docs and README tables stay "
        "those of the default world)",
    )
    a = ap.parse_args(argv)
    if a.po_records is not None and a.po_records < 1:
        ap.error(f"--po-records {a.po_records}: expected a positive number of presence-only records")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from glc.config import ConfigError
    from glc.data.layout import EDITIONS

    glc24 = a.edition == "glc24"
    recheck = bool(a.seed or a.po_records is not None)  # an unseen or a variant world: its own files only
    world, out_root, suffix = world_paths(a.edition, a.seed, a.po_records)
    a.world = a.world or world
    a.out_root = a.out_root or out_root
    known = sorted(p.stem for p in tasks_dir().glob("*.toml"))
    names = pick_experiments(a.only, "--only")
    if not (a.world / "_SUCCESS").exists():
        from glc.synth.scales import scale_with_po_records

        generate_world(
            a.world,
            scale=scale_with_po_records("demo", a.po_records),
            seed=a.seed,
            flavour="kaggle" if glc24 else a.edition,
        )
    if a.fresh and a.out_root.exists():
        shutil.rmtree(a.out_root)
    path = RESULTS / f"synth_leaderboard{suffix}.json"
    old = {r["experiment"]: r for r in (json.loads(path.read_text()).get("experiments", []) if path.exists() else [])}
    rows: dict[str, dict[str, Any]] = {n: r for n, r in old.items() if n in known and n not in names}
    failures = []
    refused: list[dict[str, str]] = []
    from glc.config import load_experiment

    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name}", flush=True)  # print: importing glc.tasks sets the root logger to WARNING
        try:
            load_experiment(name, EDITIONS[a.edition])
        except ConfigError as e:
            print(f"{name}: refused on {a.edition} ({e})", flush=True)
            refused.append({"experiment": name, "reason": str(e).split(": ", 1)[-1]})
            rows.pop(name, None)
            continue
        if load_experiment(name)["train"]["accelerator"] in ("gpu", "cuda") and not _gpu():
            print(
                f"{name}: skipped (its [train] accelerator needs a GPU, this machine has none); the old row is kept",
                flush=True,
            )
            if name in old:
                rows[name] = old[name]
            continue
        try:
            wall, worked, _ = run_experiment(name, a.world, a.out_root)
        except RuntimeError as e:
            print(f"ERROR {e}", file=sys.stderr, flush=True)
            failures.append(name)
            continue
        row = score(name, a.world, a.out_root)
        prev = old.get(name)
        if worked or prev is None or prev.get("config_hash") != row["config_hash"]:
            row["wall_seconds"] = round(wall, 1) if worked else None
        else:
            row["wall_seconds"] = prev.get("wall_seconds")
        rows[name] = row
        wall_text = f"{row['wall_seconds']} s" if row["wall_seconds"] is not None else "reused"
        print(
            f"{name}: test sample-F1 {row['test_sample_f1']:.4f} (validation {row['val_sample_f1']:.4f}), {wall_text}",
            flush=True,
        )
    oracle = round(float(oracle_sample_f1(a.world)), 4)
    result = {
        "machine": machine(),
        "world": a.world.name,
        "protocol": (
            "each experiment's submission.csv scored on the world's hidden PA-test labels (_truth/), like Kaggle"
        ),
        "oracle_test_sample_f1": oracle,
        "experiments": sorted(rows.values(), key=lambda r: -r["test_sample_f1"]),
    }
    if a.seed:
        result["seed"] = a.seed
    if a.po_records is not None:
        result["po_records"] = a.po_records
    if not glc24:
        result["edition"] = a.edition
        old_refused = json.loads(path.read_text()).get("refused", []) if path.exists() else []
        result["refused"] = sorted(
            [r for r in old_refused if r["experiment"] not in names] + refused, key=lambda r: r["experiment"]
        )
    write_json(path, repo_relative(result))
    table = markdown(result)
    (RESULTS / f"synth_leaderboard{suffix}.md").write_text(
        f"# Synthetic leaderboard ({a.world.name}, hidden test labels)\n\n{table}"
    )
    if recheck:  # a recheck on an unseen or a variant world: its own files only
        print(table)
        return 1 if failures else 0
    if glc24:
        update_readme(table)
    else:
        update_readme(
            table,
            REPO / "docs" / f"{a.edition}.md",
            (f"<!-- leaderboard-{a.edition}:start -->", f"<!-- leaderboard-{a.edition}:end -->"),
        )
    from bench.pages import update_readme_table

    update_readme_table()  # the README's best-per-family table reads this file
    print(table)
    if failures:
        print(f"FAILED: {failures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
