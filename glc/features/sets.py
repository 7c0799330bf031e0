"""The feature-set registry: every input a model can read from the model-input table, declared once.

A :class:`FeatureSet` names one input (the survey location, the patch DCT planes, a raster group's DCT tiles, the
Landsat DCT series, ...) and declares

* the **artifact** that makes it: the name of a Luigi task in :mod:`glc.tasks` (``"PatchTiles"``) and the task's
  significant parameters (``{"k": 8}``); :class:`glc.tasks.training.ModelInputs` requires that task and
  :mod:`glc.etl.inputs` joins its ``data/`` parquet on ``surveyId``;
* its **columns** in the model-input table: name, dtype and per-row shape (``()`` for a scalar; a shape whose
  first entry is ``-1`` takes that size from the artifact, e.g. the number of bands of a raster group), and the
  artifact column each one is read from;
* its **transform** while writing (``copy``; ``standardize`` with train-split statistics; ``dense_gfv``, the
  sparse graph feature vector made dense over the species columns; ``plot``, the plot's area and uncertainty with
  "known" flags), a lookup key of :data:`glc.etl.inputs.TRANSFORMS`;
* its **missing-row policy**: ``"error"`` (a survey without a row in the artifact fails the build, naming the
  survey and the artifact) or ``"fill"`` (the row is filled with the train-split mean of the column and a
  ``<column>_mask`` column is 0 for it, 1 elsewhere); either way the count per split is in ``meta.json``;
* whether the writer records per-element **statistics** (train-split mean and standard deviation) in
  ``meta.json`` for the networks to standardise with (the stored values stay raw, so the DCT planes can still be
  inverted and augmented exactly);
* the edition data it **needs** (``"rasters"``: full-extent GeoTIFFs; ``"patch_jpeg128"``: GLC24's 128 px uint8
  patches), checked against the data root's :class:`glc.data.layout.Edition` when an experiment is loaded
  (:func:`check_edition`): GLC25 ships neither, so an experiment reading a raster group fails there at once, naming
  the feature set and the edition, instead of deep inside the DAG;
* whether its values are computed **out of fold** from labels (``holdout``: the graph feature vector), in which
  case its task is built for the table's own validation hold-out and training folds.

The table always holds ``surveyId`` and ``labels`` plus the sets in :data:`ALWAYS` (``location`` and ``meta``); an
experiment's model declares what else it reads (:mod:`glc.models.registry`). Loaders, the fake-table maker
(:mod:`glc.loaders.fake`) and the networks all follow the shapes recorded in ``meta.json`` under ``columns``.

Adding an input = one :func:`register` call here (and, if its artifact is new, its Luigi task).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from glc.data.layout import CAPABILITIES, RASTER_GROUPS, Edition

__all__ = [
    "ALWAYS",
    "EditionError",
    "check_edition",
    "HOLDOUT_PARAMS",
    "DTYPES",
    "FEATURE_SETS",
    "MISSING_POLICIES",
    "Column",
    "FeatureSet",
    "feature_set",
    "po_capable",
    "register",
    "resolve_feature_sets",
]

#: Element dtypes a column may have (numpy names); ``uint8`` columns are stored as parquet binary.
DTYPES: tuple[str, ...] = ("float64", "float32", "int32", "uint8")
MISSING_POLICIES: tuple[str, ...] = ("error", "fill")
TRANSFORMS: tuple[str, ...] = ("copy", "standardize", "dense_gfv", "plot")


@dataclass(frozen=True)
class Column:
    """One column of the model-input table.

    Attributes:
        name: the column name in the table (and the key in a loader batch).
        dtype: element dtype, one of :data:`DTYPES`.
        shape: per-row shape; ``()`` is a scalar. A leading ``-1`` is filled in from the artifact when the table is
            written (``meta.json`` always holds concrete shapes).
        source: the artifact column it is read from (default: ``name``).
    """

    name: str
    dtype: str
    shape: tuple[int, ...] = ()
    source: str | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"Column {self.name!r}: dtype {self.dtype!r} is not one of {DTYPES}")
        if any((d < 1 and not (i == 0 and d == -1)) for i, d in enumerate(self.shape)):
            raise ValueError(
                f"Column {self.name!r}: shape {self.shape} must be positive (a leading -1 = from the artifact)"
            )

    @property
    def artifact_column(self) -> str:
        """The column of the artifact's parquet this one is read from."""
        return self.source or self.name

    @property
    def width(self) -> int:
        """Number of stored values per row (1 for a scalar); -1 while the shape is still open."""
        return -1 if self.shape[:1] == (-1,) else math.prod(self.shape)


@dataclass(frozen=True)
class FeatureSet:
    """One input of the model-input table (see the module docstring).

    Attributes:
        name: registry key (``ModelInputs(features=[...])``, ``[model]`` tables).
        description: one line for ``meta.json``, reports and ``--help``.
        artifact: the Luigi task (a class name in :mod:`glc.tasks`) whose artifact holds the values.
        params: the task's significant parameters.
        columns: the columns it adds to the table.
        transform: how the writer turns artifact values into table values (a key of ``glc.etl.inputs.TRANSFORMS``).
        missing: ``"error"`` or ``"fill"`` (see the module docstring).
        stats: record per-element train-split mean/std in ``meta.json``.
        data_dir: the artifact's parquet sub-folder.
        needs: edition capabilities the artifact reads (:attr:`glc.data.layout.Edition.provides`).
        holdout: the artifact's values are computed *out of fold* from survey labels, so its task takes the
            model-input table's validation hold-out and training folds as parameters (:data:`HOLDOUT_PARAMS`): a
            training row's value never comes from validation labels, a validation row's only from training rows
            (pitfall 15 in docs/contributing.md).
    """

    name: str
    description: str
    artifact: str
    params: Mapping[str, Any] = field(default_factory=dict)
    columns: tuple[Column, ...] = ()
    transform: str = "copy"
    missing: str = "error"
    stats: bool = False
    data_dir: str = "data"
    holdout: bool = False
    needs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [c for c in self.needs if c not in CAPABILITIES]
        if unknown:
            raise ValueError(
                f"FeatureSet {self.name!r}: needs {unknown} are not "
                f"capabilities of any edition ({sorted(CAPABILITIES)})"
            )
        if self.missing not in MISSING_POLICIES:
            raise ValueError(f"FeatureSet {self.name!r}: missing={self.missing!r} is not one of {MISSING_POLICIES}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"FeatureSet {self.name!r}: transform={self.transform!r} is not one of {TRANSFORMS}")
        if not self.columns:
            raise ValueError(f"FeatureSet {self.name!r} declares no column")

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of its columns in the table (the ``_mask`` column of a ``fill`` set is extra)."""
        return tuple(c.name for c in self.columns)

    def mask_column(self) -> str | None:
        """``<first column>_mask`` for a ``fill`` set (1 = the survey had a row in the artifact), else None."""
        return f"{self.columns[0].name}_mask" if self.missing == "fill" else None


#: Parameters a ``holdout`` set's task receives from the model-input table (see :attr:`FeatureSet.holdout`):
#: the validation hold-out (block size, fraction, seed) and the spatial folds of the training split (count, block
#: size, seed), the same folds the k-fold trainer uses (:func:`glc.eval.split.training_folds`).
HOLDOUT_PARAMS: tuple[str, ...] = (
    "holdout_block_km",
    "holdout_fraction",
    "holdout_seed",
    "holdout_scheme",
    "n_folds",
    "block_km",
    "seed",
)

#: Every feature set by name.
FEATURE_SETS: dict[str, FeatureSet] = {}
#: Sets every model-input table holds (the survey table's own columns).
ALWAYS: tuple[str, ...] = ("location", "meta")


def register(fs: FeatureSet) -> FeatureSet:
    """Add ``fs`` to :data:`FEATURE_SETS` (a name may be registered once; column names must be unique)."""
    if fs.name in FEATURE_SETS:
        raise ValueError(f"feature set {fs.name!r} is registered twice")
    taken = {c: s.name for s in FEATURE_SETS.values() for c in s.column_names}
    clash = [c for c in fs.column_names if c in taken or c in ("surveyId", "labels")]
    if clash:
        raise ValueError(f"feature set {fs.name!r}: column(s) {clash} already belong to another set or the table")
    FEATURE_SETS[fs.name] = fs
    return fs


def feature_set(name: str) -> FeatureSet:
    """The registered set ``name``.

    Raises:
        KeyError: naming the valid sets.
    """
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise KeyError(f"unknown feature set {name!r}; valid feature sets are {sorted(FEATURE_SETS)}") from None


class EditionError(ValueError):
    """An experiment reads a feature set whose data the data root's edition does not ship."""


def check_edition(names: Iterable[str], edition: Edition, what: str = "the experiment") -> None:
    """Refuse feature sets that need data ``edition`` lacks (see :attr:`FeatureSet.needs`).

    Raises:
        EditionError: naming each such feature set, what it needs, the edition, and what to use instead.
    """
    refused = []
    for n in names:
        lacking = [c for c in feature_set(n).needs if c not in edition.provides]
        if lacking:
            refused.append(f"{n!r} (needs {', '.join(_NEED_TEXT[c] for c in lacking)})")
    if refused:
        raise EditionError(
            f"{what} reads feature set(s) {', '.join(refused)}, which {edition.title} does not ship. Run it on a "
            f"GLC24 data root, or use feature sets {edition.title} has: 'env' (its pre-extracted environmental values) "
            "instead of raster tiles, 'patch_dct' / 'patch_dct16' instead of 'patch_raw' / 'patch_dct128'."
        )


#: How each capability is named in messages.
_NEED_TEXT: dict[str, str] = {
    "rasters": "the full-extent environmental GeoTIFFs",
    "patch_jpeg128": "GLC24's 128 px uint8 JPEG patches",
}


def po_capable(name: str) -> bool:
    """Whether glc builds feature set ``name`` at the presence-only sites as well (for ``[train.pretrain_po]``): the
    satellite patch sets of DCT tiles (``PatchTiles`` without ``keep_raw``: ``POPatchTiles`` on the PO patches) and
    the environmental raster tile sets (``RasterTiles``: ``PORasterTiles`` from the full-extent GeoTIFFs). The
    location is always there; nothing else is (time series, env vectors, neighbour and graph features)."""
    fs = feature_set(name)
    return (fs.artifact == "PatchTiles" and not fs.params.get("keep_raw")) or fs.artifact == "RasterTiles"


def resolve_feature_sets(names: Iterable[str]) -> tuple[str, ...]:
    """Canonical, sorted tuple of the requested sets plus :data:`ALWAYS` (unknown names raise ``KeyError``)."""
    out = set(ALWAYS)
    for n in names:
        feature_set(n)
        out.add(n)
    return tuple(sorted(out))


# ------------------------------------------------------------------------------------------------ the registry
register(
    FeatureSet(
        "location",
        "survey location: EPSG:3035 x/y (m) and lon/lat (deg)",
        "SurveyTable",
        columns=(Column("x", "float64"), Column("y", "float64"), Column("lon", "float64"), Column("lat", "float64")),
    )
)
register(
    FeatureSet(
        "meta",
        "survey metadata: year (0 if unknown), region and country codes (index into meta.json regions/countries)",
        "SurveyTable",
        columns=(Column("year", "int32"), Column("region", "int32"), Column("country", "int32")),
    )
)
register(
    FeatureSet(
        "env",
        "environmental vector (EnvFeatures: bioclim, soil, land cover, human footprint at the site), "
        "standardised with train-split mean/std",
        "EnvFeatures",
        columns=(Column("env", "float32", (-1,)),),
        transform="standardize",
    )
)
register(
    FeatureSet(
        "plot",
        "plot metadata: log1p(areaInM2), area known (0/1), log1p(geoUncertaintyInM), uncertainty known (0/1); "
        "an empty or infinite value is 0 with its flag 0, never NaN (SurveyTable)",
        "SurveyTable",
        columns=(Column("plot", "float32", (4,)),),
        transform="plot",
        stats=True,
        data_dir="surveys",
    )
)
register(
    FeatureSet(
        "gfv",
        "graph feature vector (GraphFeatures) dense over the species columns: out-of-fold over the training "
        "split's folds, validation rows from the training split only, test rows from every training survey",
        "GraphFeatures",
        columns=(Column("gfv", "float32", (-1,)),),
        transform="dense_gfv",
        data_dir="data",
        holdout=True,
    )
)
register(
    FeatureSet(
        "patch_dct",
        "Sentinel-2 patch R, G, B, NIR: top-left 8x8 orthonormal DCT-II block per channel (PatchTiles k=8)",
        "PatchTiles",
        {"k": 8},
        columns=(Column("patch_dct", "float32", (4, 8, 8), source="dct"),),
        stats=True,
    )
)
register(
    FeatureSet(
        "patch_dct16",
        "Sentinel-2 patch R, G, B, NIR: 16x16 DCT block per channel (PatchTiles k=16)",
        "PatchTiles",
        {"k": 16},
        columns=(Column("patch_dct16", "float32", (4, 16, 16), source="dct"),),
        stats=True,
    )
)
register(
    FeatureSet(
        "patch_dct128",
        "Sentinel-2 patch R, G, B, NIR: the full 128x128 DCT per channel (PatchTiles k=128; lossless, 4x the raw "
        "bytes; the fusion's image branch inverts it)",
        "PatchTiles",
        {"k": 128},
        columns=(Column("patch_dct128", "float32", (4, 128, 128), source="dct"),),
        stats=True,
        needs=("patch_jpeg128",),
    )
)
register(
    FeatureSet(
        "patch_raw",
        "Sentinel-2 patch R, G, B, NIR: the raw uint8 pixels (4, 128, 128) (PatchTiles keep_raw)",
        "PatchTiles",
        {"k": 8, "keep_raw": True},
        columns=(Column("patch_raw", "uint8", (4, 128, 128), source="raw"),),
        needs=("patch_jpeg128",),
    )
)
for _group in sorted(RASTER_GROUPS):
    register(
        FeatureSet(
            f"raster_{_group}",
            f"environmental raster group {_group!r}: 8x8 DCT block of the 128-pixel tile of every band "
            "at the site (RasterTiles k=8; band names in meta.json)",
            "RasterTiles",
            {"raster_group": _group, "k": 8},
            columns=(Column(f"raster_{_group}", "float32", (-1, 8, 8), source="dct"),),
            stats=True,
            needs=("rasters",),
        )
    )
register(
    FeatureSet(
        "landsat_dct",
        "Landsat bands (blue, green, red, nir, swir1, swir2): first 64 1D-DCT coefficients of each "
        "band's quarterly 2000-2020 series (CubeFeatures n=64)",
        "CubeFeatures",
        {"n": 64},
        columns=(Column("landsat_dct", "float32", (6, 64)),),
        stats=True,
    )
)
register(
    FeatureSet(
        "bioclim_dct",
        "monthly bioclimatic variables (pr, tas, tasmax, tasmin): first 64 1D-DCT coefficients of each "
        "variable's 2000-2018 monthly series (CubeFeatures n=64)",
        "CubeFeatures",
        {"n": 64},
        columns=(Column("bioclim_dct", "float32", (4, 64)),),
        stats=True,
    )
)
register(
    FeatureSet(
        "landsat_cube",
        "Landsat cube (6 bands, 4 quarters, 20 years 2001-2020), NaN-filled (CubeFeatures)",
        "CubeFeatures",
        {"n": 64},
        columns=(Column("landsat_cube", "float32", (6, 4, 20)),),
        stats=True,
    )
)
register(
    FeatureSet(
        "bioclim_cube",
        "monthly bioclimatic cube (4 variables, 18 years 2001-2018, 12 months), NaN-filled (CubeFeatures)",
        "CubeFeatures",
        {"n": 64},
        columns=(Column("bioclim_cube", "float32", (4, 18, 12)),),
        stats=True,
    )
)
del _group
# Embeddings of the self-supervised encoders (tasks/encoders/<encoder>.toml; glc.tasks.pretrain.Embeddings), one
# vector per survey, standardised with train-split statistics.
for _name, _encoder, _source, _what in (
    ("tile2vec", "tile2vec", "embedding", "tile2vec patch embedding (triplet-pretrained tile CNN body)"),
    (
        "tile2vec_untrained",
        "tile2vec-untrained",
        "embedding",
        "patch embedding of the seeded, untrained tile2vec encoder (control)",
    ),
    (
        "satclip_location",
        "satclip",
        "location_embedding",
        "SatCLIP location embedding (spherical harmonics + SIREN) at the survey's lon/lat",
    ),
    ("satclip_image", "satclip", "image_embedding", "SatCLIP image embedding of the survey's patch"),
):
    register(
        FeatureSet(
            _name,
            f"{_what}, standardised (Embeddings encoder={_encoder!r})",
            "Embeddings",
            {"encoder": _encoder},
            columns=(Column(_name, "float32", (-1,), source=_source),),
            transform="standardize",
        )
    )
del _name, _encoder, _source, _what
