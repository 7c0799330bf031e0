"""``SyntheticWorld``: the generated GLC24-like dataset (glc's embedded default data)."""

from __future__ import annotations

import re
from pathlib import Path

import luigi

from glc.tasks.raw import GLC24Data

_SYNTH_DIR = re.compile(r"^(tiny|demo|full)-seed(\d+)$")


class SyntheticWorld(luigi.Task):
    """Generate ``{root}/{scale}-seed{seed}`` with :func:`glc.synth.generate_world` (complete when ``_SUCCESS`` exists)."""

    scale = luigi.ChoiceParameter(choices=["tiny", "demo", "full"], default="demo")
    seed = luigi.IntParameter(default=0)
    root = luigi.Parameter(default="data/synthetic", description="parent folder of generated worlds")

    def output(self) -> luigi.LocalTarget:
        """The world's ``_SUCCESS`` marker (written last by the generator)."""
        return luigi.LocalTarget(str(Path(self.root) / f"{self.scale}-seed{self.seed}" / "_SUCCESS"))

    def run(self) -> None:
        """Generate the world (atomically: a temp folder renamed into place)."""
        from glc.synth import generate_world

        generate_world(Path(self.root) / f"{self.scale}-seed{self.seed}", scale=self.scale, seed=self.seed)


def raw_data_task(data_root: str) -> luigi.Task:
    """``SyntheticWorld`` for a path named ``.../<scale>-seed<N>`` below a ``synthetic`` folder, else ``GLC24Data``."""
    p = Path(data_root)
    m = _SYNTH_DIR.match(p.name)
    if m and p.parent.name == "synthetic":
        return SyntheticWorld(scale=m.group(1), seed=int(m.group(2)), root=str(p.parent))
    return GLC24Data(data_root=str(data_root))
