"""Reference pages generated from the code: the model catalogue, the configuration reference, the feature sets.

The documentation site (``make docs``; ``docs/gen_pages.py`` through mkdocs-gen-files) writes these pages at build
time, so they cannot drift from the registries they describe:

* :func:`model_catalogue`: every registered ``model.kind`` (:mod:`glc.models.registry`) with its one-line
  description, how it runs, the feature sets it reads, its ``[model]`` keys (type, default, valid values) and the
  experiments in ``tasks/`` that use it, each with the system it reproduces (the experiment file's header comment);
  the encoder kinds (``tasks/encoders/``) after them;
* :func:`configuration_reference`: every key of :data:`glc.config.SCHEMA` and of the loss table, by section;
* :func:`feature_set_reference`: every :class:`glc.features.sets.FeatureSet`: its artifact, columns, what an edition
  must ship for it.

Each function returns one markdown page; nothing here reads data or runs a model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from glc.params import Param, Schema, _table

__all__ = [
    "configuration_reference",
    "experiment_header",
    "experiments_by_kind",
    "feature_set_reference",
    "model_catalogue",
    "param_table",
    "schema_keys",
]


def _cell(text: str) -> str:
    """``text`` safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _value(v: Any) -> str:
    """A default value as TOML would spell it, in code style."""
    if isinstance(v, bool):
        return f"`{str(v).lower()}`"
    if isinstance(v, str):
        return f'`"{v}"`'
    return f"`{json.dumps(v)}`"


def _valid(p: Param) -> str:
    """The valid values of ``p`` in words: its choices, its range, or nothing."""
    choices = p.valid_choices()
    parts = []
    if choices is not None:
        parts.append(", ".join(f"`{c}`" for c in sorted(map(str, choices))))
    if p.min is not None:
        parts.append(f"{'>' if p.min_exclusive else '≥'} {p.min:g}")
    if p.max is not None:
        parts.append(f"≤ {p.max:g}")
    return "; ".join(parts)


def schema_keys(schema: Schema, prefix: str = "") -> list[tuple[str, Param]]:
    """Every ``(dotted key, Param)`` of ``schema``, nested tables (also callables returning one) flattened."""
    out: list[tuple[str, Param]] = []
    for k, p in schema.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(p, Param):
            out.append((key, p))
        else:
            out.extend(schema_keys(_table(p), key))
    return out


def param_table(params: Iterable[tuple[str, Param]]) -> str:
    """A markdown table: key, type, default, valid values, what it does."""
    lines = ["| key | type | default | valid values | what it does |", "|---|---|---|---|---|"]
    for key, p in params:
        lines.append(f"| `{key}` | {p.value_type} | {_cell(_value(p.default))} | {_cell(_valid(p))} | {_cell(p.doc)} |")
    return "\n".join(lines) + "\n"


def experiment_header(path: Path) -> str:
    """The leading comment block of an experiment file, as one paragraph (its ``Run:`` line left out)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith("Run:"):
            continue
        lines.append(text)
    return " ".join(t for t in lines if t)


def experiments_by_kind(folder: Path | None = None) -> dict[str, list[tuple[str, str]]]:
    """``model.kind -> [(experiment name, header comment)]`` of the experiment files in ``folder`` (default
    :func:`glc.config.tasks_dir`)."""
    from glc.config import experiment_table, tasks_dir

    out: dict[str, list[tuple[str, str]]] = {}
    for path in sorted((folder or tasks_dir()).glob("*.toml")):
        table = experiment_table(str(path))
        kind = table.get("model", {}).get("kind", "frequency")
        out.setdefault(kind, []).append((path.stem, experiment_header(path)))
    return out


def _features_read(spec: Any, tasks: list[tuple[str, str]], folder: Path | None) -> str:
    """The feature sets a kind reads with its defaults and in each of its experiments."""
    from glc.config import load_experiment, tasks_dir
    from glc.params import defaults_of

    seen: dict[str, None] = {}
    for name in spec.features({"kind": spec.kind, **defaults_of(dict(spec.params))}):
        seen[name] = None
    for name, _ in tasks:
        cfg = load_experiment(str((folder or tasks_dir()) / f"{name}.toml"))
        for f in spec.features(cfg["model"]):
            seen[f] = None
    return ", ".join(f"`{f}`" for f in seen) or "none besides `location` and `meta`"


def model_catalogue(folder: Path | None = None) -> str:
    """The experiments-and-models page: every registered model kind, then every encoder kind."""
    from glc.models.registry import encoder_kinds, get_encoder, get_model, model_kinds

    by_kind = experiments_by_kind(folder)
    out = [
        "# Experiments and models\n",
        "Generated from the model registry (`glc.models.registry`) and the experiment files in `tasks/` when the site "
        "is built. Every model kind below is a `[model] kind` value; its keys go in the experiment's `[model]` table "
        "beside the common ones (`kind`, `top_n`; see the configuration reference). Run an experiment with "
        "`make <experiment>` or `luigi --module glc.tasks Submission --experiment <experiment>`.\n",
        "| kind | what it is | runs | experiments |",
        "|---|---|---|---|",
    ]
    kinds = model_kinds()
    for kind in kinds:
        spec = get_model(kind)
        names = ", ".join(f"`{n}`" for n, _ in by_kind.get(kind, [])) or "—"
        out.append(f"| [`{kind}`](#{kind.replace('_', '-')}) | {_cell(spec.description)} | {spec.runner} | {names} |")
    out.append("")
    for kind in kinds:
        spec = get_model(kind)
        tasks = by_kind.get(kind, [])
        out.append(f"## {kind.replace('_', '-')}\n")
        out.append(f'`kind = "{kind}"`: {spec.description}\n')
        how = (
            "fitted in memory on the survey table"
            if spec.runner == "memory"
            else "a network trained by Lightning on the `ModelInputs` table"
        )
        out.append(f"* **Runs**: {how}; validation metric `{spec.monitor}` ({spec.monitor_mode}).")
        out.append(f"* **Reads**: {_features_read(spec, tasks, folder)}.")
        for name, header in tasks:
            out.append(f"* **Experiment `{name}`**: {header or 'no description in its file'}")
        if not tasks:
            out.append("* **Experiments**: none in `tasks/` (used through the CV benchmarks or as a member).")
        out.append("")
        if spec.params:
            out.append(param_table(schema_keys(dict(spec.params), "model")))
        else:
            out.append("No keys of its own.\n")
    out.append("## Encoders\n")
    out.append(
        "Self-supervised encoders (`tasks/encoders/<name>.toml`, `[encoder] kind`), pretrained by "
        "`PretrainEncoder` and read by models as embedding feature sets.\n"
    )
    for kind in encoder_kinds():
        enc = get_encoder(kind)
        out.append(f"### {kind.replace('_', '-')}\n")
        out.append(
            f'`kind = "{kind}"`: {enc.description} Objective `{enc.objective}`; embeddings '
            + ", ".join(f"`{e}`" for e in enc.embeddings)
            + ".\n"
        )
        if enc.params:
            out.append(param_table(schema_keys(dict(enc.params), "encoder")))
    return "\n".join(out)


def configuration_reference() -> str:
    """The configuration page: every key of an experiment file, by section, from :data:`glc.config.SCHEMA`."""
    from glc.config import ENCODER_SCHEMA, SCHEMA, UNHASHED_KEYS

    out = [
        "# Configuration reference\n",
        "Generated from the typed schema (`glc.config.SCHEMA`) when the site is built. An experiment file "
        "(`tasks/<name>.toml`) sets any of these keys; every other key keeps its default. Unknown keys, wrong types "
        "and values out of range are refused when the file is loaded, naming the file and the key. A model kind's "
        "own `[model]` keys are in the experiments-and-models catalogue.\n",
        "Keys left out of the config hash (they never change a trained model): "
        + ", ".join(f"`{a}.{b}`" for a, b in UNHASHED_KEYS)
        + ".\n",
    ]
    top = [(k, p) for k, p in SCHEMA.items() if isinstance(p, Param)]
    out.append("## Top level\n")
    out.append(param_table(top))
    for section, table in SCHEMA.items():
        if isinstance(table, Param):
            continue
        out.append(f"## [{section}]\n")
        out.append(param_table(schema_keys(_table(table), section)))
    out.append("## Encoder files (`tasks/encoders/<name>.toml`)\n")
    out.append(param_table(schema_keys(ENCODER_SCHEMA)))
    return "\n".join(out)


def feature_set_reference() -> str:
    """The feature-set page: every registered feature set with its artifact, columns and needs."""
    from glc.features.sets import ALWAYS, FEATURE_SETS

    out = [
        "# Feature sets\n",
        "Generated from the feature-set registry (`glc.features.sets.FEATURE_SETS`) when the site is built. A model "
        "kind names the feature sets it reads; `ModelInputs` joins exactly those into its parquet table "
        f"({', '.join(f'`{a}`' for a in ALWAYS)} are always there). A feature set that needs data an edition does "
        "not ship is refused when an experiment reading it is loaded for that edition.\n",
        "| feature set | what it holds | artifact | columns | needs | out of fold |",
        "|---|---|---|---|---|---|",
    ]
    for name, fs in FEATURE_SETS.items():
        cols = ", ".join(f"`{c.name}`" for c in fs.columns)
        needs = ", ".join(fs.needs) or "—"
        params = ", ".join(f"{k}={v}" for k, v in fs.params.items())
        artifact = f"`{fs.artifact}`" + (f" ({_cell(params)})" if params else "")
        out.append(
            f"| `{name}` | {_cell(fs.description)} | {artifact} | {cols} | {needs} | {'yes' if fs.holdout else 'no'} |"
        )
    return "\n".join(out) + "\n"


def _module_summary(path: Path) -> str:
    """The first sentence of a module's docstring (read without importing it)."""
    import ast

    doc = (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").strip()
    paragraph = " ".join(doc.split("\n\n")[0].split())
    sentence = paragraph.split(". ")[0]
    return sentence if sentence.endswith(".") or sentence == paragraph else sentence + "."


def api_packages(root: Path) -> dict[str, list[str]]:
    """``package -> [module dotted names]`` of the package at ``root`` (``glc``): one entry per sub-package, the
    top-level modules under the package's own name; ``__main__`` and private modules left out."""
    out: dict[str, list[str]] = {}
    base = root.parent
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(base).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__main__" or any(p.startswith("_") and p != "__init__" for p in parts):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        package = ".".join(parts[:2]) if (root / Path(*parts[1:2])).is_dir() and len(parts) > 1 else parts[0]
        out.setdefault(package, []).append(".".join(parts))
    return out


def api_page(package: str, modules: list[str]) -> str:
    """One API page: every module of ``package`` rendered by mkdocstrings from its docstrings."""
    out = [f"# {package}\n"]
    for m in modules:
        out.append(f"::: {m}\n    options:\n      heading_level: 2\n")
    return "\n".join(out)


def api_index(root: Path) -> str:
    """The API reference's index: each package and its modules, with the first line of each module's docstring."""
    out = [
        "# API reference\n",
        "Generated from the docstrings when the site is built (mkdocstrings). The data flows "
        "one way through the packages: data → etl → features → loaders → models → training → decoding → eval → "
        "tasks.\n",
    ]
    base = root.parent
    for package, modules in api_packages(root).items():
        out.append(f"## [{package}]({package}.md)\n")
        for m in modules:
            path = base / Path(*m.split("."))
            path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
            out.append(f"* `{m}`: {_module_summary(path)}")
        out.append("")
    return "\n".join(out)


def readme_page(readme: str) -> str:
    """The README as the site's home page: links into ``docs/`` made relative to the site; other repository files
    (not pages of the site) become code spans."""
    import re

    text = re.sub(r"\]\(docs/([^)]+)\)", r"](\1)", readme)
    return re.sub(r"\[([^\]]+)\]\((?!https?://|#)([^)]+\.(?:py|toml|json|cfg|txt|ipynb))\)", r"\1 (`\2`)", text)
