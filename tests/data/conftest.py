"""Fixtures for the reader tests: the real sample files (``$GLC_REAL_DATA`` or ``data/real``; read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from glc.data.layout import Layout
from glc.eval.real import real_data_dir

SHARED_DATA = real_data_dir()
#: The real sample survey whose patch, Landsat cube and bioclim cube are all in the samples folder.
SAMPLE_SURVEY = 1322301


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; tests that need it are skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (set GLC_REAL_DATA or link the folder at data/real)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def samples(shared_data: Path) -> Path:
    """Real GLC24 files in the Kaggle layout (patches, cubes, rasters, metadata excerpts)."""
    return shared_data / "glc24-samples"


@pytest.fixture(scope="session")
def real(shared_data: Path) -> Path:
    """Real PA-test metadata and its solution file."""
    return shared_data / "glc24-real"


@pytest.fixture(scope="session")
def kaggle_samples(samples: Path) -> Layout:
    """A Kaggle :class:`Layout` over the samples folder."""
    return Layout(samples, "kaggle")


#: The real GLC25 sample surveys (train, test); in the organizers' fixture the train survey's patch and cubes are
#: copies of the test survey's.
GLC25_TRAIN_SURVEY, GLC25_TEST_SURVEY = 1027998, 5000108


@pytest.fixture(scope="session")
def glc25_samples(shared_data: Path) -> Layout:
    """A GLC25 :class:`Layout` over the real GLC25 sample files (patch GeoTIFFs, cubes, band statistics)."""
    return Layout(shared_data / "glc25-samples", "glc25")
