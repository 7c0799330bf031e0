"""The benchmarks page of the documentation site, generated from ``bench/results/*.json`` when the site is built.

One section per result file: the ``make`` target that rewrites it (found in the Makefile's help text), the machine it
ran on, then its figures: the tables the benchmark itself writes where it has a renderer (the leaderboards, the full
DAG) or a markdown copy beside the JSON (``<name>.md``), otherwise every scalar figure of its ``results`` object by
dotted key and one table per list of rows. Nothing is pasted: rerunning a benchmark and rebuilding the site updates
the page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
#: Longest text figure shown in full; a longer one is cut with an ellipsis (the JSON keeps it whole).
MAX_TEXT = 160
#: Most rows of one list table.
MAX_ROWS = 40


def _leaderboard(data: dict[str, Any]) -> str:
    from bench.leaderboard import markdown

    return markdown(data["results"] if "results" in data and "experiments" not in data else data)


def _full_dag(data: dict[str, Any]) -> str:
    from bench.full_dag import render_table

    return render_table(data["results"])


def _faults(data: dict[str, Any]) -> str:
    from bench.faults import render_table

    return render_table(data)


#: Result stems with a renderer of their own (the same one the benchmark uses for its doc table).
RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "synth_leaderboard": _leaderboard,
    "synth_leaderboard_glc25": _leaderboard,
    "synth_leaderboard_seed1": _leaderboard,
    "synth_leaderboard_glc25_seed1": _leaderboard,
    "full_dag": _full_dag,
    "full_dag_glc25": _full_dag,
    "faults": _faults,
}


def make_targets(makefile: Path = REPO / "Makefile") -> dict[str, str]:
    """``result stem -> make target`` from the Makefile's ``## ...`` help comments that name
    ``bench/results/<stem>``."""
    out: dict[str, str] = {}
    for line in makefile.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+):.*##(.*)$", line)
        if not m:
            continue
        for stem, optional in re.findall(r"bench/results/([A-Za-z0-9_]+)(?:\[(_[a-z0-9]+)\])?\.json", m.group(2)):
            out.setdefault(stem, m.group(1))
            if optional:  # "[_glc25]": the EDITION=glc25 variant; "[_seed1]": SEED=1
                var = re.sub(r"^_seed(\d+)$", r"SEED=\1", re.sub(r"^_(glc\d+)$", r"EDITION=\1", optional))
                out.setdefault(f"{stem}{optional}", f"{m.group(1)} {var}")
    return out


def _text(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    s = s if len(s) <= MAX_TEXT else s[: MAX_TEXT - 1] + "…"
    return s.replace("|", "\\|").replace("\n", " ")


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``(dotted key, value)`` whose value is a scalar or a list of scalars."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif _scalar(obj) or (isinstance(obj, list) and all(_scalar(x) for x in obj) and len(obj) <= 12):
        yield prefix, obj


def _row_lists(obj: Any, prefix: str = "") -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Every list of dicts (a table of rows) inside ``obj``, by dotted key."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _row_lists(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        yield prefix, obj


def generic(data: dict[str, Any]) -> str:
    """A result file without a renderer: its scalar figures, then its tables of rows."""
    body = {k: v for k, v in data.items() if k != "machine"}
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| `{k}` | {_text(v)} |" for k, v in _flatten(body)]
    out = "\n".join(lines) + "\n" if len(lines) > 2 else ""
    for key, rows in _row_lists(body):
        cols = [c for c in dict.fromkeys(c for r in rows for c in r) if all(_scalar(r.get(c)) for r in rows)]
        if not cols:
            continue
        table = [
            f"\n**`{key}`** ({len(rows)} rows{f', first {MAX_ROWS}' if len(rows) > MAX_ROWS else ''}):\n",
            "| " + " | ".join(cols) + " |",
            "|" + "---|" * len(cols),
        ]
        table += ["| " + " | ".join(_text(r.get(c, "")) for c in cols) + " |" for r in rows[:MAX_ROWS]]
        out += "\n".join(table) + "\n"
    return out


def _machine(data: dict[str, Any]) -> str:
    m = data.get("machine")
    if not isinstance(m, dict):
        return ""
    return (
        f"Machine: {m.get('cores', '?')} cores, {m.get('ram_gb', '?')} GB RAM, Python {m.get('python', '?')}"
        f" ({m.get('platform', '?')}).\n"
    )


def section(path: Path, targets: dict[str, str]) -> str:
    """One result file's section of the page."""
    data = json.loads(path.read_text(encoding="utf-8"))
    stem = path.stem
    target = targets.get(stem)
    how = f"`make {target}`" if target else "its bench module (see the Makefile)"
    out = [f"## {stem}\n", f"`bench/results/{path.name}`, rewritten by {how}. {_machine(data)}"]
    md = path.with_suffix(".md")
    if stem in RENDERERS:
        out.append(RENDERERS[stem](data))
    elif md.exists():
        out.append(md.read_text(encoding="utf-8"))
    else:
        out.append(generic(data))
    return "\n".join(out)


def benchmarks_page(results: Path = RESULTS) -> str:
    """The whole page: an introduction, then one section per ``*.json`` in ``results`` (sorted by name)."""
    targets = make_targets()
    paths = sorted(results.glob("*.json"))
    out = [
        "# Benchmarks\n",
        "Generated from `bench/results/*.json` when the site is built: every benchmark writes its JSON (and the "
        "machine it ran on), and this page shows each one. Speed figures compare variants side by side in one run "
        "(ratios); quality figures are test sample-F1 on the synthetic worlds' hidden labels or cross-validated on the "
        "real GLC24 surveys. The narrative around the main tables is in [Results](results.md) and [GLC25](glc25.md).\n",
        "Files: " + ", ".join(f"[{p.stem}](#{p.stem})" for p in paths) + ".\n",
    ]
    out += [section(p, targets) for p in paths]
    return "\n".join(out)


#: The README's results table sits between these markers (``python -m bench.pages --readme`` rewrites it).
README_MARKS = ("<!-- results:start -->", "<!-- results:end -->")


def _load(name: str, results: Path) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _best_by_family(rows: list[dict[str, Any]]) -> dict[str, tuple[str, float]]:
    """``family -> (experiment, test sample-F1)`` of the best scored row of each family (the experiment file's
    ``[wandb] group``; an experiment no longer in ``tasks/`` is left out)."""
    from glc.config import experiment_table, tasks_dir

    best: dict[str, tuple[str, float]] = {}
    for r in rows:
        score = r.get("test_sample_f1")
        path = tasks_dir() / f"{r['experiment']}.toml"
        if score is None or not path.exists():
            continue
        family = experiment_table(str(path)).get("wandb", {}).get("group", "baselines")
        if family not in best or score > best[family][1]:
            best[family] = (r["experiment"], float(score))
    return best


def readme_table(results: Path = RESULTS) -> str:
    """The README's small results table: the best experiment of each model family on the GLC24 demo world, the
    full-scale GLC24 world, the GLC25 demo world and the full-scale GLC25 world (hidden test labels), the worlds'
    oracles where measured, and the best models of the real benchmark (spatial CV on the real GLC24 test surveys)."""
    worlds = []  # (column title, {family: (experiment, score)}, oracle)
    demo = _load("synth_leaderboard", results)
    if demo:
        worlds.append(("GLC24 demo world", _best_by_family(demo["experiments"]), demo.get("oracle_test_sample_f1")))
    full = _load("full_dag", results)
    if full:
        synth = _load("synth", results) or {}
        oracle = full["results"].get("oracle_test_sample_f1") or synth.get("results", {}).get("full", {}).get(
            "oracle_sample_f1"
        )
        worlds.append(("GLC24 full world", _best_by_family(full["results"]["experiments"]), oracle))
    glc25 = _load("synth_leaderboard_glc25", results)
    if glc25:
        worlds.append(("GLC25 demo world", _best_by_family(glc25["experiments"]), glc25.get("oracle_test_sample_f1")))
    full25 = _load("full_dag_glc25", results)
    if full25:
        oracle = full25["results"].get("oracle_test_sample_f1")
        worlds.append(("GLC25 full world", _best_by_family(full25["results"]["experiments"]), oracle))
    families = sorted(
        {f for _, best, _ in worlds for f in best},
        key=lambda f: -max(best.get(f, ("", 0.0))[1] for _, best, _ in worlds),
    )
    lines = ["| model family | " + " | ".join(t for t, _, _ in worlds) + " |", "|---|" + "---|" * len(worlds)]
    for f in families:
        cells = [f"`{best[f][0]}` {best[f][1]:.3f}" if f in best else "—" for _, best, _ in worlds]
        lines.append(f"| {f.replace('_', ' ')} | " + " | ".join(cells) + " |")
    lines.append(
        "| *oracle (true probabilities)* | "
        + " | ".join(f"*{o:.3f}*" if o is not None else "—" for _, _, o in worlds)
        + " |"
    )
    out = "\n".join(lines) + "\n"
    real = _load("real_cv", results)
    if real:
        best: dict[str, dict[str, Any]] = {}
        for r in real["results"]:
            if r["model"] not in best or r["sample_f1_mean"] > best[r["model"]]["sample_f1_mean"]:
                best[r["model"]] = r
        top = sorted(best.values(), key=lambda r: -r["sample_f1_mean"])[:3]
        out += (
            "\nReal benchmark (5-fold spatial CV on the 4,716 real GLC24 test surveys and their released labels): "
            + ", ".join(f"`{r['model']}` {r['sample_f1_mean']:.3f} ± {r['sample_f1_std']:.3f}" for r in top)
            + " (malpolon's imagery ensemble: 0.2953).\n"
        )
    return out


def update_readme_table(readme: Path = REPO / "README.md", results: Path = RESULTS) -> bool:
    """Rewrite the README's results table from ``results``; returns whether the README changed."""
    from bench.leaderboard import update_readme

    before = readme.read_text(encoding="utf-8")
    if not update_readme(readme_table(results), readme, marks=README_MARKS):
        raise SystemExit(f"{readme} has no {README_MARKS[0]} ... {README_MARKS[1]} markers")
    return readme.read_text(encoding="utf-8") != before


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.pages --readme`` rewrites the README's results table; without it, print the benchmarks page."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--readme", action="store_true", help="rewrite the README's results table from bench/results/")
    a = ap.parse_args(argv)
    if a.readme:
        print("README.md " + ("updated" if update_readme_table() else "already up to date"))
    else:
        print(benchmarks_page())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
