"""The generated reference pages list everything the registries hold (so the docs cannot drift from the code), the
benchmarks page shows every result file, and the repository cites nothing outside itself."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bench.pages import benchmarks_page, generic, make_targets
from glc import docgen
from glc.config import ENCODER_SCHEMA, SCHEMA
from glc.features.sets import FEATURE_SETS
from glc.models.registry import encoder_kinds, get_encoder, get_model, model_kinds

REPO = Path(__file__).resolve().parents[1]


def test_the_catalogue_has_every_model_kind_its_keys_and_experiments() -> None:
    page = docgen.model_catalogue()
    by_kind = docgen.experiments_by_kind()
    for kind in model_kinds():
        spec = get_model(kind)
        assert f"\n## {kind.replace('_', '-')}\n" in page, kind
        assert spec.description in page
        for key, _ in docgen.schema_keys(dict(spec.params), "model"):
            assert f"| `{key}` |" in page, key
        for name, _ in by_kind.get(kind, []):
            assert f"**Experiment `{name}`**" in page
    assert sum(len(v) for v in by_kind.values()) == len(list((REPO / "tasks").glob("*.toml")))
    for kind in encoder_kinds():
        assert f"### {kind.replace('_', '-')}" in page and get_encoder(kind).objective in page


def test_the_configuration_page_has_every_key_with_its_default() -> None:
    page = docgen.configuration_reference()
    keys = docgen.schema_keys(SCHEMA) + docgen.schema_keys(ENCODER_SCHEMA)
    assert len(keys) > 40
    for key, param in keys:
        row = next((line for line in page.splitlines() if line.startswith(f"| `{key}` |")), None)
        assert row is not None, key
        assert param.value_type in row


def test_the_feature_set_page_has_every_set_and_what_it_needs() -> None:
    page = docgen.feature_set_reference()
    for name, fs in FEATURE_SETS.items():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"`{fs.artifact}`" in row
        assert all(n in row for n in fs.needs)


def test_experiment_header_is_the_leading_comment_without_the_run_line(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text('# Tighnari fusion\n# on the full world.\n# Run: make x\nname = "x"\n# not this\n')
    assert docgen.experiment_header(p) == "Tighnari fusion on the full world."


def test_param_table_escapes_pipes_and_shows_ranges() -> None:
    from glc.params import Param

    table = docgen.param_table([("a.b", Param(2, "x | y", min=1, max=5)), ("c", Param("p", choices=("p", "q")))])
    assert "| `a.b` | int | `2` | ≥ 1; ≤ 5 | x \\| y |" in table
    assert "`p`, `q`" in table


def test_api_packages_cover_every_public_module() -> None:
    packages = docgen.api_packages(REPO / "glc")
    modules = {m for ms in packages.values() for m in ms}
    for path in (REPO / "glc").rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("")
        if rel.name in ("__main__",) or rel.name.startswith("_") and rel.name != "__init__":
            continue
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        assert name in modules, name


def test_readme_links_become_site_links() -> None:
    text = docgen.readme_page("see [results](docs/results.md) and [x](tasks/knn.toml) and [y](https://a.b/c.py)")
    assert text == "see [results](results.md) and x (`tasks/knn.toml`) and [y](https://a.b/c.py)"


def test_benchmarks_page_has_a_section_and_a_make_target_for_every_result() -> None:
    page = benchmarks_page()
    targets = make_targets()
    for path in sorted((REPO / "bench" / "results").glob("*.json")):
        assert f"\n## {path.stem}\n" in page, path.name
    assert targets["synth_leaderboard"] == "bench-leaderboard"
    assert targets["synth_leaderboard_glc25"] == "bench-leaderboard EDITION=glc25"
    assert targets["full_dag"] == "bench-full"


def test_generic_rendering_flattens_figures_and_tabulates_rows() -> None:
    text = generic({"machine": {"cores": 2}, "results": {"a": {"b": 1.5}, "rows": [{"x": 1, "y": "p|q"}, {"x": 2}]}})
    assert "| `results.a.b` | 1.5 |" in text
    assert "| x | y |" in text and "| 1 | p\\|q |" in text and "| 2 |  |" in text
    assert "cores" not in text


def test_no_absolute_machine_path_in_bench_results() -> None:
    pattern = re.compile(r'"(/(?:work|home|root|tmp|mnt|Users|data|opt)/[^"]*)"')
    for path in (REPO / "bench" / "results").glob("*"):
        hits = pattern.findall(path.read_text(encoding="utf-8"))
        assert not hits, f"{path.name}: absolute paths {hits[:3]}; store paths relative to the repository or data root"


_SOURCES = ("glc", "bench", "tests", "docs", "tasks", "conf", "notebooks")


def _repo_text_files() -> list[Path]:
    files = [REPO / n for n in ("README.md", "Makefile", "pyproject.toml", "mkdocs.yml")]
    for d in _SOURCES:
        files += [p for p in (REPO / d).rglob("*") if p.suffix in (".py", ".md", ".toml", ".cfg", ".conf", ".ipynb")]
    return [p for p in files if p.is_file() and "results" not in p.parts]


def test_nothing_cites_a_file_outside_the_repository_or_an_issue_number() -> None:
    outside = re.compile(r"\.\./shared|pitfalls\.md|shared/docs")
    issue = re.compile(r"\b[Ii]ssue\s+#?\d+|\(#\d+\)")
    bad = []
    for path in _repo_text_files():
        if path.name == "test_docgen.py":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if outside.search(line) or issue.search(line):
                bad.append(f"{path.relative_to(REPO)}:{i}: {line.strip()[:100]}")
    assert not bad, "\n".join(bad)


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(REPO / ".venv" / "bin" / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((tmp_path / "search" / "search_index.json").read_text())["docs"]


def test_the_readme_results_table_is_the_one_generated_from_bench_results() -> None:
    from bench.pages import README_MARKS, readme_table

    text = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = README_MARKS
    assert start in text and end in text
    current = text.split(start, 1)[1].split(end, 1)[0].strip()
    assert current == readme_table().strip(), "the README's results table is stale: run python -m bench.pages --readme"


def test_readme_table_takes_each_familys_best_and_the_oracles(tmp_path: Path) -> None:
    from bench.pages import readme_table

    rows = [
        {"experiment": "knn", "test_sample_f1": 0.4},
        {"experiment": "gbm", "test_sample_f1": 0.5},
        {"experiment": "rf", "test_sample_f1": 0.45},
        {"experiment": "inception", "test_sample_f1": 0.2},
        {"experiment": "gone-experiment", "test_sample_f1": 0.9},
        {"experiment": "fusion"},
    ]
    (tmp_path / "synth_leaderboard.json").write_text(json.dumps({"experiments": rows, "oracle_test_sample_f1": 0.61}))
    table = readme_table(tmp_path)
    lines = table.splitlines()
    assert lines[0] == "| model family | GLC24 demo world |"
    assert lines[2] == "| trees | `gbm` 0.500 |"  # best family first
    assert "| glc2020 | `rf` 0.450 |" in lines and "gone-experiment" not in table and "fusion" not in table
    assert lines[-1] == "| *oracle (true probabilities)* | *0.610* |"
