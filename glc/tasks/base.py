"""Luigi conventions shared by every glc task.

* One task per output artifact, named after it; ``output()`` returns one target.
* Directory artifacts complete through ``_SUCCESS`` (written last by :func:`glc.io.atomic_dir`); the flag file is
  the task's only output, so a half-written directory is never "done".
* Output paths derive from significant parameters only: ``{out_root}/{dataset}/<artifact>/...`` where ``dataset``
  names the data root (its folder name + a short hash of its absolute path). ``out_root`` is insignificant (moving
  the output root does not change what a task computes) but it is part of the path.
* Raw inputs are ``ExternalTask`` s, except the default synthetic world, which :class:`glc.tasks.synth.SyntheticWorld`
  generates when missing (so ``luigi --module glc.tasks Submission --local-scheduler`` works on a fresh machine).
* ``run()`` is thin glue over functions in ``glc/`` that tests call directly.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import luigi

from glc.io import SUCCESS


class paths(luigi.Config):  # noqa: N801 - luigi config sections are lower case
    """``[paths]`` section of ``conf/luigi.cfg``: where data comes from and where artifacts go."""

    data_root = luigi.Parameter(default="data/synthetic/demo-seed0", description="GLC24 data root (Kaggle or Seafile layout)")
    out_root = luigi.Parameter(default="out", description="root folder of every artifact")


class GlcTask(luigi.Task):
    """Base of every glc task: carries the data root and the output root.

    Both default to the ``[paths]`` section of ``conf/luigi.cfg`` (read when the task is created, so the task id
    and the execution summary show the resolved value, never ``None``).
    """

    data_root = luigi.Parameter(
        default=paths.data_root._default, config_path={"section": "paths", "name": "data_root"},
        description="GLC24 data root; default: [paths] data_root",
    )
    out_root = luigi.Parameter(
        default=paths.out_root._default, config_path={"section": "paths", "name": "out_root"}, significant=False,
        description="artifact root; default: [paths] out_root",
    )

    @property
    def dataset_key(self) -> str:
        """Short name of the data root used in artifact paths."""
        return dataset_key(self.data_root)

    def artifact_path(self, *parts: str) -> Path:
        """``{out_root}/{dataset}/{parts...}``."""
        return Path(self.out_root) / self.dataset_key / Path(*parts)

    def raw_data(self) -> luigi.Task:
        """The task that provides the raw data root."""
        from glc.tasks.synth import raw_data_task

        return raw_data_task(self.data_root)


def dataset_key(data_root: str | Path) -> str:
    """``<folder name>-<8 hex of the absolute path>``, stable across runs on one machine."""
    p = Path(data_root).expanduser().resolve()
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", p.name) or "root"
    return f"{name}-{hashlib.sha256(str(p).encode()).hexdigest()[:8]}"


class FlagTarget(luigi.LocalTarget):
    """The ``_SUCCESS`` flag of a directory artifact; ``.dir`` is the artifact folder."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        super().__init__(str(self.dir / SUCCESS))


class ExperimentTask(GlcTask):
    """A task of one named experiment (``tasks/<experiment>.toml``)."""

    experiment = luigi.Parameter(default="frequency", description="experiment name in tasks/ or a path to a .toml")

    @property
    def cfg(self) -> dict[str, Any]:
        """The resolved, checked experiment config (defaults + the file; unknown keys and bad values raise)."""
        if not hasattr(self, "_cfg"):
            from glc.config import load_experiment

            self._cfg = load_experiment(self.experiment)
        return self._cfg

    def exp_path(self, *parts: str) -> Path:
        """``{out}/{dataset}/experiments/{name}-{hash}/{parts}``."""
        from glc.config import config_hash

        return self.artifact_path("experiments", f"{self.cfg['name']}-{config_hash(self.cfg)}", *parts)
