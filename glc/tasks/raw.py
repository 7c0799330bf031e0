"""Raw GLC24 inputs as external tasks (Luigi never creates them; it only checks they exist)."""

from __future__ import annotations

import luigi

from glc.data.layout import LayoutError, detect_layout


class GLC24Data(luigi.ExternalTask):
    """A GLC24 data root in the Kaggle or Seafile layout (complete when its PA metadata files exist)."""

    data_root = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        """The PA test metadata file of the root (its presence marks the root as available)."""
        try:
            layout = detect_layout(self.data_root)
        except LayoutError:
            # A target that does not exist: Luigi reports the missing external data by this path.
            return luigi.LocalTarget(f"{self.data_root}/GLC24_PA_metadata_test.csv")
        return luigi.LocalTarget(str(layout.pa_metadata("test")))
