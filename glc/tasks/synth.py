"""``SyntheticWorld``: the generated GLC24- or GLC25-like dataset (glc's embedded default data).

A data root named ``.../synthetic/<scale>-seed<N>`` is a GLC24 world, ``.../synthetic/glc25-<scale>-seed<N>`` a GLC25
one, and either name ending in ``-po<R>`` the same world drawn with about ``R`` presence-only records instead of its
scale's (``glc synth --po-records R``); each is generated on first use. ``SyntheticPOPatches`` renders its
presence-only patches on first use (only the tasks reading PO patches need them: ``glc.tasks.po.POPatchTiles``).
"""

from __future__ import annotations

import re
from pathlib import Path

import luigi

from glc.tasks.raw import GLC24Data

_SYNTH_DIR = re.compile(r"^(?:(glc25)-)?(tiny|demo|full)-seed(\d+)(?:-po([1-9]\d*))?$")


def world_dir_name(edition: str, scale: str, seed: int, po_records: int = 0) -> str:
    """Folder name of a synthetic world: ``<scale>-seed<N>`` (GLC24) or ``glc25-<scale>-seed<N>``, with ``-po<R>``
    when it is drawn with ``po_records`` presence-only records (0: the scale's)."""
    return (
        ("" if edition == "glc24" else f"{edition}-")
        + f"{scale}-seed{seed}"
        + (f"-po{po_records}" if po_records else "")
    )


def synthetic_edition(data_root: str) -> str | None:
    """The edition of a synthetic world's data root by its name (``None`` if the name is not a synthetic world's)."""
    p = Path(data_root)
    m = _SYNTH_DIR.match(p.name)
    return (m.group(1) or "glc24") if m and p.parent.name == "synthetic" else None


class SyntheticWorld(luigi.Task):
    """Generate ``{root}/{scale}-seed{seed}`` with :func:`glc.synth.generate_world` (complete when ``_SUCCESS``
    exists)."""

    scale = luigi.ChoiceParameter(choices=["tiny", "demo", "full"], default="demo")
    seed = luigi.IntParameter(default=0)
    root = luigi.Parameter(default="data/synthetic", description="parent folder of generated worlds")
    edition = luigi.ChoiceParameter(choices=["glc24", "glc25"], default="glc24", description="GLC edition to imitate")
    po_records = luigi.IntParameter(default=0, description="presence-only records to draw (0: the scale's)")

    def output(self) -> luigi.LocalTarget:
        """The world's ``_SUCCESS`` marker (written last by the generator)."""
        return luigi.LocalTarget(
            str(Path(self.root) / world_dir_name(self.edition, self.scale, self.seed, self.po_records) / "_SUCCESS")
        )

    def run(self) -> None:
        """Generate the world (atomically: a temp folder renamed into place)."""
        from glc.synth import generate_world
        from glc.synth.scales import scale_with_po_records

        generate_world(
            Path(self.root) / world_dir_name(self.edition, self.scale, self.seed, self.po_records),
            scale=scale_with_po_records(self.scale, self.po_records),
            seed=self.seed,
            flavour="glc25" if self.edition == "glc25" else "kaggle",
        )


class SyntheticPOPatches(luigi.Task):
    """The presence-only patches of a generated world (:func:`glc.synth.world.add_po_patches`, every PO survey);
    complete when the world's ``_SUCCESS`` counts a patch for each PO survey."""

    scale = luigi.ChoiceParameter(choices=["tiny", "demo", "full"], default="demo")
    seed = luigi.IntParameter(default=0)
    root = luigi.Parameter(default="data/synthetic", description="parent folder of generated worlds")
    edition = luigi.ChoiceParameter(choices=["glc24", "glc25"], default="glc24", description="GLC edition to imitate")
    po_records = luigi.IntParameter(default=0, description="presence-only records of the world (0: the scale's)")

    def requires(self) -> SyntheticWorld:
        """The world."""
        return SyntheticWorld(
            scale=self.scale, seed=self.seed, root=self.root, edition=self.edition, po_records=self.po_records
        )

    def output(self) -> luigi.LocalTarget:
        """The world's ``_SUCCESS`` marker (its counts say whether the PO patches are there: :meth:`complete`)."""
        return self.requires().output()

    def complete(self) -> bool:
        """Every PO survey of the world has its patch."""
        import json

        flag = Path(self.output().path)
        if not flag.exists():
            return False
        counts = json.loads(flag.read_text()).get("counts", {})
        return int(counts.get("po_patches", 0)) >= int(counts.get("po_surveys", 1))

    def run(self) -> None:
        """Render them into the world."""
        from glc.data.fingerprint import clear_caches
        from glc.synth.world import add_po_patches

        add_po_patches(Path(self.output().path).parent)
        clear_caches()  # the PO patch folders changed: their cached fingerprints are stale


def po_patches_task(raw: luigi.Task) -> luigi.Task:
    """The task providing a data root with its PO patches: for a synthetic world (``raw`` a :class:`SyntheticWorld`)
    :class:`SyntheticPOPatches`, else ``raw`` itself (real data ships them, or the PO ETL says it does not)."""
    if isinstance(raw, SyntheticWorld):
        return SyntheticPOPatches(
            scale=raw.scale, seed=raw.seed, root=raw.root, edition=raw.edition, po_records=raw.po_records
        )
    return raw


def raw_data_task(data_root: str) -> luigi.Task:
    """``SyntheticWorld`` for a path named ``.../<scale>-seed<N>[-po<R>]`` below a ``synthetic`` folder, else
    ``GLC24Data``."""
    p = Path(data_root)
    m = _SYNTH_DIR.match(p.name)
    if m and p.parent.name == "synthetic":
        return SyntheticWorld(
            scale=m.group(2),
            seed=int(m.group(3)),
            root=str(p.parent),
            edition=m.group(1) or "glc24",
            po_records=int(m.group(4) or 0),
        )
    return GLC24Data(data_root=str(data_root))
