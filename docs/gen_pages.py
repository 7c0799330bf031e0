"""Pages generated from the code when the site is built (mkdocs-gen-files runs this script; nothing is pasted).

* ``reference/experiments.md``, ``reference/configuration.md``, ``reference/feature-sets.md``: from the model,
  configuration and feature-set registries (:mod:`glc.docgen`);
* ``benchmarks.md``: from ``bench/results/*.json`` (:mod:`bench.pages`);
* ``index.md``: the README, its ``docs/`` links made relative to the site;
* ``api/``: one page per package of ``glc`` with every module's docstrings (mkdocstrings), and an index.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mkdocs_gen_files

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.pages import benchmarks_page
from glc import docgen

PAGES = {
    "reference/experiments.md": docgen.model_catalogue,
    "reference/configuration.md": docgen.configuration_reference,
    "reference/feature-sets.md": docgen.feature_set_reference,
    "benchmarks.md": benchmarks_page,
}

for name, render in PAGES.items():
    with mkdocs_gen_files.open(name, "w") as f:
        f.write(render())

with mkdocs_gen_files.open("index.md", "w") as f:
    f.write(docgen.readme_page((REPO / "README.md").read_text(encoding="utf-8")))

with mkdocs_gen_files.open("api/index.md", "w") as index:
    index.write(docgen.api_index(REPO / "glc"))
for package, modules in docgen.api_packages(REPO / "glc").items():
    with mkdocs_gen_files.open(f"api/{package}.md", "w") as f:
        f.write(docgen.api_page(package, modules))
