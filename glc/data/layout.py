"""Where every GLC component lives on disk, for each edition (GLC24, GLC25) and distribution.

GLC24 is shipped twice with different file names for the same content (glc24-format.md §1):

* ``kaggle``: ``kaggle competitions download -c geolifeclef-2024`` (``GLC24_P0_metadata_train.csv`` with a
  *zero*, doubled folders such as ``TimeSeries-Cubes/TimeSeries-Cubes``, folder names with spaces);
* ``seafile``: the organizers' share (``PresenceAbsenceSurveys/GLC24-PA-metadata-train.csv``, hyphens,
  ``-average``/``-monthly`` suffixes, pre-extractions for PO too, and the full GeoTIFF rasters).

:data:`LAYOUTS` also holds GLC25 (``glc25``: the Kaggle ``geolifeclef-2025`` download: ``GLC25_*`` names, one int16
4-band GeoTIFF patch per survey under ``SatelitePatches/``, cubes under ``SateliteTimeSeries-Landsat/cubes`` and
``BioclimTimeSeries/cubes``, pre-extracted ``EnvironmentalValues/`` CSVs and no full GeoTIFF rasters). What an edition
ships beyond names (patch format, test id range, rasters) is its :class:`Edition` in :data:`EDITIONS`.

:class:`Layout` is the only place in glc that knows these names: they are the templates of :data:`LAYOUTS`, one
table per distribution. Everything else asks it for a path. Adding an edition = one :class:`Edition`, one
:class:`LayoutTable` and, for a new patch format, one reader in :data:`glc.data.patches.PATCH_FORMATS`.
The synthetic world (:mod:`glc.synth`) writes through the same class, so the generator and the readers
can never disagree about a name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Flavour = Literal["kaggle", "seafile", "glc25"]
Split = Literal["train", "test"]
#: Patch splits: the PA splits, and ``"po"`` for presence-only sites (Seafile ``PO-Train-SatellitePatches-*``).
PatchSplit = Literal["train", "test", "po"]
PatchKind = Literal["rgb", "nir", "tiff"]

#: Landsat bands in cube order (index 0..5) and the CSV file suffixes.
LANDSAT_BANDS: tuple[str, ...] = ("red", "green", "blue", "nir", "swir1", "swir2")
#: Bioclimatic monthly variables in cube order.
BIOCLIM_VARS: tuple[str, ...] = ("pr", "tas", "tasmax", "tasmin")
#: Years covered by the cubes.
LANDSAT_YEARS: tuple[int, ...] = tuple(range(2000, 2021))  # 21
BIOCLIM_YEARS: tuple[int, ...] = tuple(range(2000, 2019))  # 19

#: Pre-extracted environmental components (one CSV per split each).
ENV_COMPONENTS: tuple[str, ...] = (
    "bioclimatic",
    "bioclimatic_monthly",
    "elevation",
    "human_footprint",
    "landcover",
    "soilgrids",
)

#: Columns of each environmental CSV besides ``surveyId`` (select by name, never by position).
HUMAN_FOOTPRINT_COLUMNS: tuple[str, ...] = tuple(
    f"HumanFootprint-{n}"
    for n in (
        "Built1994",
        "Built2009",
        "croplands1992",
        "croplands2005",
        "Lights1994",
        "Lights2009",
        "NavWater1994",
        "NavWater2009",
        "Pasture1993",
        "Pasture2009",
        "Popdensity1990",
        "Popdensity2010",
        "Railways",
        "Roads",
        "HFP1993",
        "HFP2009",
    )
)
SOILGRID_VARS: tuple[str, ...] = ("bdod", "cec", "cfvo", "clay", "nitrogen", "phh2o", "sand", "silt", "soc")
SOILGRID_COLUMNS: tuple[str, ...] = tuple(f"Soilgrid-{v}" for v in SOILGRID_VARS)
BIOCLIM_COLUMNS: tuple[str, ...] = tuple(f"Bio{i}" for i in range(1, 20))
ENV_COLUMNS: dict[str, tuple[str, ...]] = {
    "bioclimatic": BIOCLIM_COLUMNS,
    "elevation": ("Elevation",),
    "landcover": ("LandCover",),
    "human_footprint": HUMAN_FOOTPRINT_COLUMNS,
    "soilgrids": SOILGRID_COLUMNS,
    "bioclimatic_monthly": tuple(
        f"Bio-{v}_{m:02d}_{y}" for v in BIOCLIM_VARS for y in BIOCLIM_YEARS for m in range(1, 13)
    ),
}
LANDSAT_CSV_COLUMNS: tuple[str, ...] = tuple(f"{y}_{q}" for y in LANDSAT_YEARS for q in range(1, 5))

#: GeoTIFF raster groups: relative paths below the rasters root (the unzipped Seafile ``EnvironmentalRasters``).
HF_RASTER_STEMS: tuple[str, ...] = (
    "Built1994",
    "Built2009",
    "croplands1992",
    "croplands2005",
    "Lights1994",
    "Lights2009",
    "NavWater1994",
    "NavWater2009",
    "Pasture1993",
    "Pasture2009",
    "Popdensity1990",
    "Popdensity2010",
    "Railways",
    "Roads",
)
RASTER_GROUPS: dict[str, tuple[str, ...]] = {
    "climate": tuple(f"Climate/BioClimatic_Average_1981-2010/bio{i}.tif" for i in range(1, 20)),
    "elevation": ("Elevation/ASTER_Elevation.tif",),
    "human_footprint": tuple(f"HumanFootprint/detailed/{s}_WGS84.tif" for s in HF_RASTER_STEMS)
    + ("HumanFootprint/summarized/HFP1993_WGS84.tif", "HumanFootprint/summarized/HFP2009_WGS84.tif"),
    "landcover": ("LandCover/LandCover_MODIS_Terra-Aqua_500m.tif",),
    "soilgrids": tuple(f"Soilgrids/crop_proj_{v}_5-15cm_mean_1000.tif" for v in SOILGRID_VARS),
}

#: The GLC study area (lon/lat), from the organizers' raster README.
GLC_BBOX: tuple[float, float, float, float] = (-32.26344, 26.63842, 35.58677, 72.18392)
NUM_CLASSES = 11255


def patch_subdirs(survey_id: int) -> tuple[str, str]:
    """Return the two folder names of a survey's patch: last two digits, then the two before them.

    GLC24 and GLC25 slice the decimal string with **no zero padding**: ``642`` lives in ``42/6/642.jpeg`` and
    ``1322301`` in ``01/23/1322301.jpeg`` (glc24-format.md §3.2); GLC25 PO cubes use the same folders.

    Args:
        survey_id: the survey id (non-negative int).

    Returns:
        ``(CD, AB)`` as strings.
    """
    if int(survey_id) < 0:
        raise ValueError(f"surveyId must be non-negative, got {survey_id}")
    s = str(int(survey_id))
    return s[-2:], s[-4:-2]


class LayoutError(FileNotFoundError):
    """A GLC file or folder is not where any known edition and distribution puts it."""


# ---------------------------------------------------------------------------------------------------- editions
@dataclass(frozen=True)
class Edition:
    """What one GeoLifeCLEF edition ships, independent of its file names.

    Attributes:
        name: ``"glc24"``, ``"glc25"``.
        title: for messages (``"GLC24"``).
        patch_format: key of the patch readers (:data:`glc.data.patches.PATCH_FORMATS`): ``"jpeg_pair"`` (an RGB
            and a NIR JPEG per survey, 128 px uint8) or ``"geotiff"`` (one 4-band int16 GeoTIFF, 64 px, nodata -1).
        patch_kinds: the files of one survey's patch, in reading order (``("rgb", "nir")`` or ``("tiff",)``).
        test_id_min: the smallest PA-test ``surveyId`` (GLC25 numbers its test surveys from 5,000,000; a test id
            below it is a bad row). 0 = no rule.
        provides: the data this edition ships that only some editions have; a feature set that needs one that is
            absent is refused when an experiment is loaded (:attr:`glc.features.sets.FeatureSet.needs`):
            ``"rasters"`` (full-extent environmental GeoTIFFs), ``"patch_jpeg128"`` (the 128 px uint8 patches).
        validation_scheme: the default ``[validation] scheme`` of experiments run on it
            (:data:`glc.eval.split.VALIDATION_SCHEMES`; an experiment file that sets one keeps its own): the scheme
            whose validation score best predicted the hidden-test score on the edition's synthetic world
            (``bench/results/validation_shift_<edition>.json``).
    """

    name: str
    title: str
    patch_format: str
    patch_kinds: tuple[str, ...]
    test_id_min: int
    provides: frozenset[str]
    validation_scheme: str = "blocks"


#: Every known edition by name.
EDITIONS: dict[str, Edition] = {
    "glc24": Edition("glc24", "GLC24", "jpeg_pair", ("rgb", "nir"), 0, frozenset({"rasters", "patch_jpeg128"})),
    # test_like: its validation predicted the shifted test best (bench/results/validation_shift_glc25.json)
    "glc25": Edition("glc25", "GLC25", "geotiff", ("tiff",), 5_000_000, frozenset(), validation_scheme="test_like"),
}
#: Every capability some edition provides (the valid values of ``FeatureSet.needs``).
CAPABILITIES: frozenset[str] = frozenset().union(*(e.provides for e in EDITIONS.values()))


@dataclass(frozen=True)
class LayoutTable:
    """The file names of one distribution of one edition: path templates relative to the data root.

    A template is a ``str.format`` pattern with the fields ``split`` (``train``/``test``), ``Split``
    (``Train``/``Test``), ``kind``/``KIND`` (patch kind, lower/upper case), ``id``, ``cd``/``ab`` (the patch
    folders, :func:`patch_subdirs`), ``band`` (Landsat band) and ``component`` (environmental CSV). A key looked
    up for a split first tries ``"<key>.<split>"`` (names that differ between train and test), then ``"<key>"``.
    A key a distribution lacks raises :class:`LayoutError` naming what is missing.

    Attributes:
        flavour: the distribution's name (``Layout.flavour``).
        edition: key of :data:`EDITIONS`.
        markers: files whose presence identifies the distribution (:func:`detect_layout`).
        paths: key -> template.
        po_metadata_alternates: other names of the PO metadata file, used when the main one is absent.
    """

    flavour: str
    edition: str
    markers: tuple[str, ...]
    paths: Mapping[str, str]
    po_metadata_alternates: tuple[str, ...] = ()


_ENV_KAGGLE24 = {
    "env_csv.bioclimatic": "EnvironmentalRasters/EnvironmentalRasters/Climate/Average 1981-2010/GLC24-PA-{split}-bioclimatic.csv",
    "env_csv.bioclimatic_monthly": "EnvironmentalRasters/EnvironmentalRasters/Climate/Monthly/GLC24-PA-{split}-bioclimatic_monthly.csv",
    "env_csv.elevation": "EnvironmentalRasters/EnvironmentalRasters/Elevation/GLC24-PA-{split}-elevation.csv",
    "env_csv.human_footprint": "EnvironmentalRasters/EnvironmentalRasters/Human Footprint/GLC24-PA-{split}-human_footprint.csv",
    "env_csv.landcover": "EnvironmentalRasters/EnvironmentalRasters/LandCover/GLC24-PA-{split}-landcover.csv",
    "env_csv.soilgrids": "EnvironmentalRasters/EnvironmentalRasters/SoilGrids/GLC24-PA-{split}-soilgrids.csv",
}
_ENV_SEAFILE24 = {
    "env_csv.bioclimatic": "EnvironmentalRasters/Climate/GLC24-PA-{split}-bioclimatic-average.csv",
    "env_csv.bioclimatic_monthly": "EnvironmentalRasters/Climate/GLC24-PA-{split}-bioclimatic-monthly.csv",
    "env_csv.elevation": "EnvironmentalRasters/Elevation/GLC24-PA-{split}-elevation.csv",
    "env_csv.human_footprint": "EnvironmentalRasters/HumanFootprint/GLC24-PA-{split}-human-footprint.csv",
    "env_csv.landcover": "EnvironmentalRasters/LandCover/GLC24-PA-{split}-landcover.csv",
    "env_csv.soilgrids": "EnvironmentalRasters/Soilgrids/GLC24-PA-{split}-soilgrids.csv",
}

#: Every known distribution by ``Layout.flavour``. Adding an edition = one :class:`Edition`, one table here and,
#: if its patches are in a new format, one reader in :data:`glc.data.patches.PATCH_FORMATS`.
LAYOUTS: dict[str, LayoutTable] = {
    # GLC24 on Kaggle (`kaggle competitions download -c geolifeclef-2024`): P0 with a zero, doubled folders, spaces.
    "kaggle": LayoutTable(
        "kaggle", "glc24", ("GLC24_PA_metadata_train.csv", "GLC24_PA_metadata_test.csv"),
        {
            "pa_metadata": "GLC24_PA_metadata_{split}.csv",
            "po_metadata": "GLC24_P0_metadata_train.csv",
            "sample_submission": "GLC24_SAMPLE_SUBMISSION.csv",
            "patch_root": "PA_{Split}_SatellitePatches_{KIND}/pa_{split}_patches_{kind}",
            # PO patches ship in the Seafile share only; both GLC24 flavours expect them unzipped at its path.
            "patch_root.po": "SatellitePatches/PO-Train-SatellitePatches-{KIND}",
            "patch_file": "{id}.jpeg",
            "cube_dir.landsat": "TimeSeries-Cubes/TimeSeries-Cubes/GLC24-PA-{split}-landsat_time_series",
            "cube_dir.bioclim": "TimeSeries-Cubes/TimeSeries-Cubes/GLC24-PA-{split}-bioclimatic_monthly",
            # hyphens in train, underscores in test (the real Kaggle names)
            "cube_file.landsat.train": "GLC24-PA-train-landsat-time-series_{id}_cube.pt",
            "cube_file.landsat.test": "GLC24-PA-test-landsat_time_series_{id}_cube.pt",
            "cube_file.bioclim": "GLC24-PA-{split}-bioclimatic_monthly_{id}_cube.pt",
            "landsat_csv": "PA-{split}-landsat_time_series/GLC24-PA-{split}-landsat_time_series-{band}.csv",
            "env_root": "EnvironmentalRasters/EnvironmentalRasters",
            "raster_root": "EnvironmentalRasters/EnvironmentalRasters",
            **_ENV_KAGGLE24,
        },
        po_metadata_alternates=("GLC24_PO_metadata_train.csv",),  # an old draft used the letter O
    ),
    # GLC24 on the organizers' Seafile share: hyphens, -average/-monthly suffixes, the full GeoTIFF rasters.
    "seafile": LayoutTable(
        "seafile", "glc24",
        ("PresenceAbsenceSurveys/GLC24-PA-metadata-train.csv", "PresenceAbsenceSurveys/GLC24-PA-metadata-test.csv"),
        {
            "pa_metadata": "PresenceAbsenceSurveys/GLC24-PA-metadata-{split}.csv",
            "po_metadata": "PresenceOnlyOccurrences/GLC24-PO-metadata-train.csv",
            "sample_submission": "GLC24_SAMPLE_SUBMISSION.csv",
            # Seafile ships zips SatellitePatches/PA-Train-SatellitePatches-RGB.zip; unzipped beside them.
            "patch_root": "SatellitePatches/PA-{Split}-SatellitePatches-{KIND}",
            "patch_root.po": "SatellitePatches/PO-Train-SatellitePatches-{KIND}",
            "patch_file": "{id}.jpeg",
            "cube_dir.landsat": "SatelliteTimeSeries/cubes/GLC24-PA-{split}-landsat-time-series",
            "cube_dir.bioclim": "EnvironmentalRasters/Climate/Climatic_Monthly_2000-2019_cubes/GLC24-PA-{split}-bioclimatic-monthly",
            "cube_file.landsat": "GLC24-PA-{split}-landsat-time-series_{id}_cube.pt",
            "cube_file.bioclim": "GLC24-PA-{split}-bioclimatic-monthly_{id}_cube.pt",
            "landsat_csv": "SatelliteTimeSeries/GLC24-PA-{split}-landsat-time-series-{band}.csv",
            "env_root": "EnvironmentalRasters",
            "raster_root": "EnvironmentalRasters",
            **_ENV_SEAFILE24,
        },
    ),
    # GLC25 on Kaggle (`kaggle competitions download -c geolifeclef-2025`): one int16 GeoTIFF patch per survey
    # ("Satelite" with one l), pre-extracted EnvironmentalValues CSVs, no full GeoTIFF rasters.
    "glc25": LayoutTable(
        "glc25", "glc25", ("GLC25_PA_metadata_train.csv", "GLC25_PA_metadata_test.csv"),
        {
            "pa_metadata": "GLC25_PA_metadata_{split}.csv",
            "po_metadata": "GLC25_P0_metadata_train.csv",
            "sample_submission": "GLC25_SAMPLE_SUBMISSION.csv",
            "patch_root": "SatelitePatches/PA-{split}",
            "patch_root.po": "SatelitePatches/PO-train",
            "patch_file": "{id}.tiff",
            "cube_dir.landsat": "SateliteTimeSeries-Landsat/cubes/PA-{split}",
            "cube_dir.bioclim": "BioclimTimeSeries/cubes/PA-{split}",
            "cube_file.landsat.train": "GLC25-PA-train-landsat-time-series_{id}_cube.pt",
            "cube_file.landsat.test": "GLC25-PA-test-landsat_time_series_{id}_cube.pt",
            "cube_file.bioclim": "GLC25-PA-{split}-bioclimatic_monthly_{id}_cube.pt",
            # PO cubes sit in the patch folders of their id; the Landsat stem has the letter O, the bioclim a zero.
            "po_cube.landsat": "SateliteTimeSeries-Landsat/cubes/PO-train/{cd}/{ab}/GLC25-PO-train-landsat_time_series_{id}_cube.pt",
            "po_cube.bioclim": "BioclimTimeSeries/cubes/PO-train/{cd}/{ab}/GLC25-P0-train-bioclimatic_monthly_{id}_cube.pt",
            "landsat_csv": "SateliteTimeSeries-Landsat/values/PA-{split}/GLC25-PA-{split}-landsat_time_series-{band}.csv",
            "env_root": "EnvironmentalValues",
            "env_csv.bioclimatic": "EnvironmentalValues/ClimateAverage_1981-2010/GLC25-PA-{split}-bioclimatic.csv",
            "env_csv.elevation": "EnvironmentalValues/Elevation/GLC25-PA-{split}-elevation.csv",
            "env_csv.human_footprint": "EnvironmentalValues/HumanFootprint/GLC25-PA-{split}-human_footprint.csv",
            "env_csv.landcover": "EnvironmentalValues/LandCover/GLC25-PA-{split}-landcover.csv",
            "env_csv.soilgrids": "EnvironmentalValues/SoilGrids/GLC25-PA-{split}-soilgrids.csv",
            # the monthly bioclim values live beside their cubes, not under EnvironmentalValues
            "env_csv.bioclimatic_monthly": "BioclimTimeSeries/values/GLC25-PA-{split}-bioclimatic_monthly.csv",
        },
    ),
}
#: Valid ``Layout.flavour`` values.
FLAVOURS: tuple[str, ...] = tuple(LAYOUTS)


@dataclass(frozen=True)
class Layout:
    """Paths of one data root.

    Args:
        root: the folder the dataset was unzipped into.
        flavour: a key of :data:`LAYOUTS` (``"kaggle"`` or ``"seafile"`` for GLC24, ``"glc25"``); use
            :func:`detect_layout` to find it.
    """

    root: Path
    flavour: Flavour = "kaggle"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if self.flavour not in LAYOUTS:
            raise ValueError(
                f"Layout flavour must be 'kaggle' or 'seafile' (GLC24) or 'glc25' (GLC25), got {self.flavour!r}"
            )

    # ------------------------------------------------------------------ tables
    @property
    def table(self) -> LayoutTable:
        """The distribution's file-name table."""
        return LAYOUTS[self.flavour]

    @property
    def edition(self) -> Edition:
        """The edition the data root holds (what it ships: patch format, test id range, rasters)."""
        return EDITIONS[self.table.edition]

    def _path(self, key: str, split: str | None = None, **fields: Any) -> Path:
        """``root / template(key)`` filled with ``fields`` (see :class:`LayoutTable`)."""
        paths = self.table.paths
        for k in ((f"{key}.{split}",) if split else ()) + (key,):
            if k in paths:
                if split is not None:
                    fields.update(split=split, Split=split.capitalize())
                return self.root / paths[k].format(**fields)
        raise LayoutError(
            f"the {self.edition.title} distribution {self.flavour!r} has no {key.replace('.', ' ')}"
            + (f" for split {split!r}" if split else "") + f" (data root {self.root})"
        )

    # ------------------------------------------------------------------ metadata
    def pa_metadata(self, split: Split) -> Path:
        """PA metadata CSV of ``split`` (train: one row per survey x species; test: one row per survey)."""
        _check_split(split)
        return self._path("pa_metadata", split)

    def po_metadata(self) -> Path:
        """PO metadata CSV (Kaggle spells it ``P0`` with a zero; an old GLC24 draft used the letter O)."""
        main = self._path("po_metadata")
        if not main.exists():
            for alt in self.table.po_metadata_alternates:
                if (self.root / alt).exists():
                    return self.root / alt
        return main

    def sample_submission(self) -> Path:
        """The sample submission shipped at the Kaggle root."""
        return self._path("sample_submission")

    # ------------------------------------------------------------------ patches
    def patch_root(self, split: PatchSplit, kind: PatchKind) -> Path:
        """Folder holding the ``CD/AB/<id>.<ext>`` tree of one split (``train``, ``test`` or ``po``) and patch kind.

        ``kind`` is one of the edition's :attr:`Edition.patch_kinds`: ``"rgb"``/``"nir"`` (GLC24's two JPEGs) or
        ``"tiff"`` (GLC25's one GeoTIFF). GLC24 PO patches ship only in the Seafile share
        (``SatellitePatches/PO-Train-SatellitePatches-{RGB,NIR}.zip``); both GLC24 flavours expect them unzipped at
        that Seafile path under the data root.
        """
        kinds = self.edition.patch_kinds
        if kind not in kinds:
            raise ValueError(f"patch kind must be one of {kinds} for {self.edition.title}, got {kind!r}")
        if split != "po":
            _check_split(split)
        return self._path("patch_root", split, kind=kind, KIND=kind.upper())

    def patch_path(self, split: PatchSplit, survey_id: int, kind: PatchKind) -> Path:
        """Path of one survey's patch file of ``kind`` (no zero padding, see :func:`patch_subdirs`)."""
        cd, ab = patch_subdirs(survey_id)
        return self.patch_root(split, kind) / cd / ab / self.table.paths["patch_file"].format(id=int(survey_id))

    def patch_paths(self, split: PatchSplit, survey_id: int) -> tuple[Path, ...]:
        """Every file of one survey's patch, in :attr:`Edition.patch_kinds` order."""
        return tuple(self.patch_path(split, survey_id, k) for k in self.edition.patch_kinds)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ cubes
    def cube_dir(self, split: Split, kind: Literal["landsat", "bioclim"]) -> Path:
        """Folder of the ``.pt`` cubes of one split and kind."""
        _check_split(split)
        _check_cube_kind(kind)
        return self._path(f"cube_dir.{kind}", split)

    def cube_path(self, split: Split, kind: Literal["landsat", "bioclim"], survey_id: int) -> Path:
        """Path of one survey's cube.

        The Kaggle Landsat file stems differ by split in both editions: train uses hyphens
        (``GLC24-PA-train-landsat-time-series_<id>_cube.pt``), test underscores
        (``GLC24-PA-test-landsat_time_series_<id>_cube.pt``).
        """
        _check_cube_kind(kind)
        name = self._path(f"cube_file.{kind}", split, id=int(survey_id)).name
        return self.cube_dir(split, kind) / name

    def po_cube_path(self, kind: Literal["landsat", "bioclim"], survey_id: int) -> Path:
        """Path of a presence-only survey's cube (GLC25 ships them in ``PO-train/<CD>/<AB>/`` folders).

        Raises:
            LayoutError: for an edition that ships no PO cubes (GLC24).
        """
        _check_cube_kind(kind)
        cd, ab = patch_subdirs(survey_id)
        return self._path(f"po_cube.{kind}", None, id=int(survey_id), cd=cd, ab=ab)

    # ------------------------------------------------------------------ time-series / env CSVs
    def landsat_csv(self, split: Split, band: str) -> Path:
        """Per-band Landsat CSV (``surveyId`` + 84 quarter columns)."""
        _check_split(split)
        if band not in LANDSAT_BANDS:
            raise ValueError(f"Landsat band must be one of {LANDSAT_BANDS}, got {band!r}")
        return self._path("landsat_csv", split, band=band)

    def env_root(self) -> Path:
        """Root of the environmental CSVs (and, for GLC24 unzipped, of the GeoTIFF rasters)."""
        return self._path("env_root")

    def env_csv(self, split: Split, component: str) -> Path:
        """Pre-extracted environmental CSV of one component (see :data:`ENV_COMPONENTS`)."""
        _check_split(split)
        if component not in ENV_COMPONENTS:
            raise ValueError(f"environmental component must be one of {ENV_COMPONENTS}, got {component!r}")
        return self._path(f"env_csv.{component}", split)

    # ------------------------------------------------------------------ rasters
    def raster_paths(self, group: str) -> list[Path]:
        """GeoTIFF files of one raster group, found case-insensitively below the raster root.

        Raises:
            LayoutError: if the group is unknown, the edition ships no full rasters (GLC25), or none of its files
                exist.
        """
        if group not in RASTER_GROUPS:
            raise ValueError(f"raster group must be one of {tuple(RASTER_GROUPS)}, got {group!r}")
        if "raster_root" not in self.table.paths:
            raise LayoutError(
                f"{self.edition.title} ({self.root}) ships no full-extent environmental GeoTIFFs, so raster group "
                f"{group!r} cannot be tiled; use its pre-extracted values (EnvFeatures, feature set 'env') instead"
            )
        base = self._path("raster_root")
        found = [p for rel in RASTER_GROUPS[group] if (p := _find_case_insensitive(base, rel)) is not None]
        if not found:
            raise LayoutError(
                f"no GeoTIFF of raster group {group!r} under {base} (expected e.g. {base / RASTER_GROUPS[group][0]}); "
                "unzip the organizers' EnvironmentalRasters/<group>.zip there, or generate a synthetic world "
                "with `python -m glc synth`"
            )
        return found


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _check_cube_kind(kind: str) -> None:
    if kind not in ("landsat", "bioclim"):
        raise ValueError(f"cube kind must be 'landsat' or 'bioclim', got {kind!r}")


def _find_case_insensitive(base: Path, rel: str) -> Path | None:
    """Resolve ``base/rel`` matching each part case-insensitively (``croplands`` vs ``Croplands``)."""
    p = base / rel
    if p.exists():
        return p
    cur = base
    for part in Path(rel).parts:
        if not cur.is_dir():
            return None
        want = part.lower()
        match = next((c for c in sorted(cur.iterdir()) if c.name.lower() == want), None)
        if match is None:
            return None
        cur = match
    return cur


def detect_layout(root: str | Path) -> Layout:
    """Return the :class:`Layout` of a data root, telling the editions and distributions apart by their metadata
    file names (:attr:`LayoutTable.markers`; the first table with any marker present wins).

    Raises:
        LayoutError: if no distribution's metadata is found, naming for each what was looked for.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"data root {root} does not exist or is not a folder; pass --data-root or run `make demo` to generate the demo world")
    for table in LAYOUTS.values():
        if any((root / m).exists() for m in table.markers):
            return Layout(root, table.flavour)  # type: ignore[arg-type]
    missing = "; ".join(
        f"{EDITIONS[t.edition].title} {t.flavour}: missing {', '.join(t.markers)}" for t in LAYOUTS.values()
    )
    raise LayoutError(
        f"{root} holds neither GLC24 layout nor the GLC25 one ({missing}). Point --data-root at the folder the "
        "dataset was unzipped into."
    )


_ID_IN_NAME = re.compile(r"_(\d+)_cube\.pt$")


def survey_id_from_cube_name(name: str) -> int:
    """Parse the survey id out of a cube file name (``..._<id>_cube.pt``)."""
    m = _ID_IN_NAME.search(name)
    if not m:
        raise ValueError(f"not a GLC24 cube file name: {name!r} (expected '<stem>_<surveyId>_cube.pt')")
    return int(m.group(1))
