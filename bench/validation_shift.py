"""Which validation predicts the hidden-test score under a geographic shift: ``blocks`` or ``test_like``?

``python -m bench.validation_shift [--edition glc25] [--experiments knn,gbm,fusion] [--seed N]``
(``make bench-validation-shift``) runs each experiment's whole DAG on the edition's demo world twice, once with each
validation scheme (:data:`glc.eval.split.VALIDATION_SCHEMES`: ``blocks``, 10 km blocks in uniform random order;
``test_like``, the same blocks drawn toward the test surveys' locations), each from a copy of its experiment file
with only ``[validation] scheme`` changed, and scores the submission on the world's hidden test labels. A scheme
predicts the leaderboard when its validation sample-F1 (the report's cross-fitted one) is close to the test
sample-F1: the result lists ``|validation - test|`` per experiment and scheme and their mean per scheme.

The runs share the leaderboard's output root (``out-bench/leaderboard[-<edition>]``), so a run the leaderboard
already made (the experiment's own scheme) is reused, not repeated.

Writes ``bench/results/validation_shift[_<edition>].json``::

    {"machine", "world", "oracle_test_sample_f1", "rows": [{"experiment", "scheme", "val_sample_f1",
     "test_sample_f1", "abs_gap", "config_hash", "wall_seconds"}], "mean_abs_gap": {scheme: ...}, "better": scheme}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.leaderboard import REPO, run_experiment, score

#: The schemes compared, in the order they run.
SCHEMES: tuple[str, ...] = ("blocks", "test_like")


def scheme_config(name: str, scheme: str, folder: Path) -> Path:
    """A copy of ``tasks/<name>.toml`` with ``[validation] scheme`` set (same experiment name)."""
    import tomli_w

    from glc.config import experiment_table

    table = experiment_table(name)
    table.setdefault("validation", {})["scheme"] = scheme
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}--{scheme}.toml"
    path.write_text(tomli_w.dumps(table))
    return path


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ``|validation - test|`` per scheme over the experiments run under every scheme, and the smaller one."""
    names = {r["experiment"] for r in rows}
    complete = [n for n in names if {r["scheme"] for r in rows if r["experiment"] == n} >= set(SCHEMES)]
    gaps = {
        s: round(
            sum(r["abs_gap"] for r in rows if r["scheme"] == s and r["experiment"] in complete) / max(len(complete), 1),
            4,
        )
        for s in SCHEMES
    }
    return {
        "mean_abs_gap": gaps,
        "experiments_compared": sorted(complete),
        "better": min(gaps, key=lambda s: (gaps[s], SCHEMES.index(s))) if complete else None,
    }


def markdown(result: dict[str, Any]) -> str:
    """The comparison as a markdown table: one line per experiment (validation / test and the gap under each
    scheme), then the mean gap per scheme; the experiments in the order they ran."""
    head = " | ".join(f"`{s}`: validation / test" for s in SCHEMES)
    lines = [f"| experiment | {head} |", "|---|" + "---|" * len(SCHEMES)]
    by = {(r["experiment"], r["scheme"]): r for r in result["rows"]}
    for name in dict.fromkeys(r["experiment"] for r in result["rows"]):
        cells = []
        for scheme in SCHEMES:
            r = by.get((name, scheme))
            cells.append(f"{r['val_sample_f1']:.3f} / {r['test_sample_f1']:.3f} (gap {r['abs_gap']:.3f})" if r else "—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    gaps = result["mean_abs_gap"]
    lines.append("| *mean gap* | " + " | ".join(f"*{gaps[s]:.3f}*" for s in SCHEMES) + " |")
    return "\n".join(lines) + "\n"


def doc_marks(edition: str, seed: int) -> tuple[str, str]:
    """The markers of the table's copy in ``docs/<edition>.md``."""
    tag = f"validation-shift-{edition}" + (f"-seed{seed}" if seed else "")
    return f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write the results."""
    from bench.common import RESULTS, machine, repo_relative
    from glc.io import write_json
    from glc.synth import generate_world
    from glc.synth.oracle import oracle_sample_f1
    from glc.tasks.synth import world_dir_name

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edition", choices=["glc24", "glc25"], default="glc25")
    ap.add_argument("--experiments", default="knn,gbm,fusion", help="comma-separated experiment names")
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the demo world's seed (default 0, the leaderboard's world); another seed rechecks the choice "
        "on an unseen world: its own out-root and result file (..._seed<N>.json)",
    )
    ap.add_argument("--world", type=Path, default=None, help="default: the edition's demo world of --seed")
    ap.add_argument("--table", action="store_true", help="run nothing: rewrite the docs' table from the last JSON")
    a = ap.parse_args(argv)
    glc24 = a.edition == "glc24"
    stem = "validation_shift" + ("" if glc24 else f"_{a.edition}") + (f"_seed{a.seed}" if a.seed else "")
    path = RESULTS / f"{stem}.json"
    if a.table:
        return 0 if _write_table(json.loads(path.read_text()), a.edition, a.seed) else 1
    world = a.world or REPO / "data" / "synthetic" / world_dir_name(a.edition, "demo", a.seed)
    tag = ("leaderboard" if glc24 else f"leaderboard-{a.edition}") + (f"-seed{a.seed}" if a.seed else "")
    out_root = REPO / "out-bench" / tag
    if not (world / "_SUCCESS").exists():
        generate_world(world, scale="demo", seed=a.seed, flavour="kaggle" if glc24 else a.edition)
    rows = []
    for name in [n.strip() for n in a.experiments.split(",") if n.strip()]:
        for scheme in SCHEMES:
            cfg_path = scheme_config(name, scheme, out_root / "validation-shift-configs")
            print(f"{name} / {scheme}", flush=True)
            wall, worked, _ = run_experiment(str(cfg_path), world, out_root)
            row = score(str(cfg_path), world, out_root)
            rows.append(
                {
                    "experiment": name,
                    "scheme": scheme,
                    "val_sample_f1": row["val_sample_f1"],
                    "test_sample_f1": row["test_sample_f1"],
                    "abs_gap": round(abs(row["val_sample_f1"] - row["test_sample_f1"]), 4),
                    "config_hash": row["config_hash"],
                    "wall_seconds": round(wall, 1) if worked else None,
                }
            )
            print(f"  validation {row['val_sample_f1']:.4f}  test {row['test_sample_f1']:.4f}", flush=True)
    result = {
        "machine": machine(),
        "world": world.name,
        "oracle_test_sample_f1": round(float(oracle_sample_f1(world)), 4),
        "protocol": "each experiment's DAG run once per validation scheme; validation = the report's cross-fitted "
        "sample-F1 on the scheme's hold-out, test = the submission on the hidden test labels",
        "rows": rows,
        **summarise(rows),
    }
    write_json(path, repo_relative(result))
    _write_table(result, a.edition, a.seed)
    print(f"mean |validation - test|: {result['mean_abs_gap']} -> better predictor: {result['better']}")
    return 0


def _write_table(result: dict[str, Any], edition: str, seed: int) -> bool:
    """Print the table and rewrite its copy in ``docs/<edition>.md``; False (and a message) without its markers."""
    from bench.leaderboard import update_readme

    table = markdown(result)
    print(table, end="")
    doc = REPO / "docs" / f"{edition}.md"
    if doc.exists() and update_readme(table, doc, marks=doc_marks(edition, seed)):
        return True
    print(f"docs/{edition}.md has no {doc_marks(edition, seed)[0]} markers: its table was not updated", file=sys.stderr)
    return False


if __name__ == "__main__":
    sys.exit(main())
