"""Raw GLC24 inputs as external tasks (Luigi never creates them; it only checks they exist)."""

from __future__ import annotations

import socket
from pathlib import Path

import luigi

from glc.data.layout import LayoutError, detect_layout


class GLC24Data(luigi.ExternalTask):
    """A GLC data root of any known edition and distribution (GLC24 Kaggle or Seafile, GLC25): complete when its PA
    metadata files exist."""

    data_root = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        """The PA test metadata file of the root (its presence marks the root as available)."""
        try:
            layout = detect_layout(self.data_root)
        except LayoutError:
            # A target that does not exist: Luigi reports the missing external data by this path.
            return luigi.LocalTarget(f"{self.data_root}/GLC24_PA_metadata_test.csv")
        return luigi.LocalTarget(str(layout.pa_metadata("test")))


class MirrorData(luigi.Task):
    """A URL data root (``gs://bucket/glc24``) mirrored into the local cache (:func:`glc.storage.mirror`); complete
    when the mirror's ``_SUCCESS`` (written last) exists. The tasks read the mirror (``GlcTask.local_data_root``)."""

    data_root = luigi.Parameter()
    # The mirror is local to a machine: with one luigid serving several machines, each mirrors for itself.
    host = luigi.Parameter(default=socket.gethostname(), description="the machine whose mirror this is")
    mirror_dir = luigi.Parameter(default="", description="the mirror folder (default: from GLC_CACHE and the URL)")

    def output(self) -> luigi.LocalTarget:
        """The mirror's ``_SUCCESS``."""
        from glc.io import SUCCESS
        from glc.storage import local_copy

        return luigi.LocalTarget(str(Path(self.mirror_dir or local_copy(self.data_root, "data")) / SUCCESS))

    def run(self) -> None:
        """Download what the mirror lacks, then write its marker."""
        from glc.storage import mirror

        mirror(self.data_root, Path(self.output().path).parent)
