"""``SurveyTable``: the one-row-per-survey parquet every other artifact keys on."""

from __future__ import annotations

import luigi

from glc.tasks.base import FlagTarget, GlcTask


class SurveyTable(GlcTask):
    """PA train + test metadata -> ``{out}/{dataset}/surveys/`` (``surveys/`` and ``quarantine/`` parquet)."""

    max_bad_fraction = luigi.FloatParameter(default=0.01, description="fail when more malformed rows than this")
    bad_test_rows = luigi.ChoiceParameter(
        choices=["error", "fallback"],
        default="error",
        description="a bad PA-test metadata row: fail naming it (error), or quarantine it and let Submission predict "
        "that survey with the fallback (fallback); a test survey is never dropped",
    )

    def requires(self) -> luigi.Task:
        """The raw data root."""
        return self.raw_data()

    def raw_inputs(self) -> list:
        """The PA train and test metadata CSVs."""
        lay = self.layout_or_none()
        return [lay.pa_metadata("train"), lay.pa_metadata("test")] if lay else []

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the artifact folder."""
        return FlagTarget(
            self.artifact_path("surveys" if self.bad_test_rows == "error" else f"surveys-{self.bad_test_rows}")
        )

    def run(self) -> None:
        """Spark job: :func:`glc.etl.surveys.write_survey_table`."""
        from glc.data.layout import detect_layout
        from glc.etl.surveys import write_survey_table
        from glc.io import remove_stale_temps
        from glc.spark import get_spark

        remove_stale_temps(self.output().dir.parent)
        write_survey_table(
            get_spark(),
            detect_layout(self.local_data_root),
            self.output().dir,
            self.max_bad_fraction,
            self.bad_test_rows,
        )


def read_surveys(flag: FlagTarget):
    """Load a SurveyTable artifact into pandas (one row per survey)."""
    import pandas as pd

    from glc.io import is_complete

    if not is_complete(flag.dir):
        raise FileNotFoundError(f"survey table {flag.dir} is incomplete (no _SUCCESS); rerun SurveyTable")
    return pd.read_parquet(flag.dir / "surveys")
