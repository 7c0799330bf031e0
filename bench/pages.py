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


#: Result stems with a renderer of their own (the same one the benchmark uses for its doc table).
RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "synth_leaderboard": _leaderboard,
    "synth_leaderboard_glc25": _leaderboard,
    "full_dag": _full_dag,
    "full_dag_glc25": _full_dag,
}


def make_targets(makefile: Path = REPO / "Makefile") -> dict[str, str]:
    """``result stem -> make target`` from the Makefile's ``## ...`` help comments that name ``bench/results/<stem>``."""
    out: dict[str, str] = {}
    for line in makefile.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+):.*##(.*)$", line)
        if not m:
            continue
        for stem in re.findall(r"bench/results/([A-Za-z0-9_]+)(?:\[_glc25\])?\.json", m.group(2)):
            out.setdefault(stem, m.group(1))
            if "[_glc25]" in m.group(2):
                out.setdefault(f"{stem}_glc25", f"{m.group(1)} EDITION=glc25")
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
        table = [f"\n**`{key}`** ({len(rows)} rows{f', first {MAX_ROWS}' if len(rows) > MAX_ROWS else ''}):\n",
                 "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        table += ["| " + " | ".join(_text(r.get(c, "")) for c in cols) + " |" for r in rows[:MAX_ROWS]]
        out += "\n".join(table) + "\n"
    return out


def _machine(data: dict[str, Any]) -> str:
    m = data.get("machine")
    if not isinstance(m, dict):
        return ""
    return (f"Machine: {m.get('cores', '?')} cores, {m.get('ram_gb', '?')} GB RAM, Python {m.get('python', '?')}"
            f" ({m.get('platform', '?')}).\n")


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
        "Generated from `bench/results/*.json` when the site is built: every benchmark writes its JSON (and the machine "
        "it ran on), and this page shows each one. Speed figures compare variants side by side in one run (ratios); "
        "quality figures are test sample-F1 on the synthetic worlds' hidden labels or cross-validated on the real GLC24 "
        "surveys. The narrative around the main tables is in [Results](results.md) and [GLC25](glc25.md).\n",
        "Files: " + ", ".join(f"[{p.stem}](#{p.stem})" for p in paths) + ".\n",
    ]
    out += [section(p, targets) for p in paths]
    return "\n".join(out)
