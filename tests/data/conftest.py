"""Fixtures for the GLC24 reader tests: the real sample files in ``../shared/data`` (read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from glc.data.layout import Layout

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
#: The real sample survey whose patch, Landsat cube and bioclim cube are all in the samples folder.
SAMPLE_SURVEY = 1322301


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; tests that need it are skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real GLC24 sample data not found at {SHARED_DATA} (expected the project's ../shared/data)")
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
