"""Loaders of the model-input table: pyarrow writers/checks, three readers behind one interface, the data module.

* :mod:`glc.loaders.tables` -- the on-disk layout: :func:`write_input_table`, :func:`write_meta`,
  :func:`read_meta`, :func:`scan_split`.
* :mod:`glc.loaders.readers` -- :class:`BatchSource` readers (Petastorm, pyarrow, in-memory), exact per-epoch
  shuffling, and the torch ``IterableDataset``.
* :mod:`glc.loaders.datamodule` -- :class:`SurveyDataModule`, the ``LightningDataModule`` the trainers use.
"""

from __future__ import annotations

from glc.loaders.datamodule import SurveyDataModule
from glc.loaders.readers import (
    READER_CHOICES,
    READERS,
    ArrowSource,
    BatchSource,
    EpochPlan,
    MemorySource,
    PetastormSource,
    make_source,
    multi_hot,
)
from glc.loaders.tables import read_meta, scan_split, write_input_table, write_meta

__all__ = [
    "READER_CHOICES",
    "READERS",
    "ArrowSource",
    "BatchSource",
    "EpochPlan",
    "MemorySource",
    "PetastormSource",
    "SurveyDataModule",
    "make_source",
    "multi_hot",
    "read_meta",
    "scan_split",
    "write_input_table",
    "write_meta",
]
