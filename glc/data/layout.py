"""Where every GLC24 component lives on disk, under both distributions.

GLC24 is shipped twice with different file names for the same content (see ``shared/docs/glc24-format.md`` §1):

* ``kaggle``: ``kaggle competitions download -c geolifeclef-2024`` (``GLC24_P0_metadata_train.csv`` with a
  *zero*, doubled folders such as ``TimeSeries-Cubes/TimeSeries-Cubes``, folder names with spaces);
* ``seafile``: the organizers' share (``PresenceAbsenceSurveys/GLC24-PA-metadata-train.csv``, hyphens,
  ``-average``/``-monthly`` suffixes, pre-extractions for PO too, and the full GeoTIFF rasters).

:class:`Layout` is the only place in glc that knows these names. Everything else asks it for a path.
The synthetic world (:mod:`glc.synth`) writes through the same class, so the generator and the readers
can never disagree about a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Flavour = Literal["kaggle", "seafile"]
Split = Literal["train", "test"]
#: Patch splits: the PA splits, and ``"po"`` for presence-only sites (Seafile ``PO-Train-SatellitePatches-*``).
PatchSplit = Literal["train", "test", "po"]
PatchKind = Literal["rgb", "nir"]

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

    GLC24 slices the decimal string with **no zero padding**: ``642`` lives in ``42/6/642.jpeg`` and
    ``1322301`` in ``01/23/1322301.jpeg`` (glc24-format.md §3.2).

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
    """A GLC24 file or folder is not where either distribution puts it."""


@dataclass(frozen=True)
class Layout:
    """Paths of one GLC24 data root.

    Args:
        root: the folder the dataset was unzipped into.
        flavour: ``"kaggle"`` or ``"seafile"``; use :func:`detect_layout` to find it.
    """

    root: Path
    flavour: Flavour = "kaggle"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if self.flavour not in ("kaggle", "seafile"):
            raise ValueError(f"Layout flavour must be 'kaggle' or 'seafile', got {self.flavour!r}")

    # ------------------------------------------------------------------ metadata
    def pa_metadata(self, split: Split) -> Path:
        """PA metadata CSV of ``split`` (train: one row per survey x species; test: one row per survey)."""
        _check_split(split)
        if self.flavour == "kaggle":
            return self.root / f"GLC24_PA_metadata_{split}.csv"
        return self.root / "PresenceAbsenceSurveys" / f"GLC24-PA-metadata-{split}.csv"

    def po_metadata(self) -> Path:
        """PO metadata CSV (Kaggle spells it ``P0`` with a zero; an old draft used the letter O)."""
        if self.flavour == "kaggle":
            zero = self.root / "GLC24_P0_metadata_train.csv"
            letter = self.root / "GLC24_PO_metadata_train.csv"
            return letter if (not zero.exists() and letter.exists()) else zero
        return self.root / "PresenceOnlyOccurrences" / "GLC24-PO-metadata-train.csv"

    def sample_submission(self) -> Path:
        """The sample submission shipped at the Kaggle root."""
        return self.root / "GLC24_SAMPLE_SUBMISSION.csv"

    # ------------------------------------------------------------------ patches
    def patch_root(self, split: PatchSplit, kind: PatchKind) -> Path:
        """Folder holding the ``CD/AB/<id>.jpeg`` tree of one split (``train``, ``test`` or ``po``) and channel kind.

        PO patches ship only in the Seafile share (``SatellitePatches/PO-Train-SatellitePatches-{RGB,NIR}.zip``);
        both flavours expect them unzipped at that Seafile path under the data root.
        """
        if kind not in ("rgb", "nir"):
            raise ValueError(f"patch kind must be 'rgb' or 'nir', got {kind!r}")
        if split == "po":
            return self.root / "SatellitePatches" / f"PO-Train-SatellitePatches-{kind.upper()}"
        _check_split(split)
        cap = "Train" if split == "train" else "Test"
        if self.flavour == "kaggle":
            return self.root / f"PA_{cap}_SatellitePatches_{kind.upper()}" / f"pa_{split}_patches_{kind}"
        # Seafile ships zips ``SatellitePatches/PA-Train-SatellitePatches-RGB.zip``; we expect them unzipped
        # beside the zip, into a folder of the same stem.
        return self.root / "SatellitePatches" / f"PA-{cap}-SatellitePatches-{kind.upper()}"

    def patch_path(self, split: PatchSplit, survey_id: int, kind: PatchKind) -> Path:
        """Path of one survey's RGB or NIR JPEG (no zero padding, see :func:`patch_subdirs`)."""
        cd, ab = patch_subdirs(survey_id)
        return self.patch_root(split, kind) / cd / ab / f"{int(survey_id)}.jpeg"

    # ------------------------------------------------------------------ cubes
    def cube_dir(self, split: Split, kind: Literal["landsat", "bioclim"]) -> Path:
        """Folder of the ``.pt`` cubes of one split and kind."""
        _check_split(split)
        if self.flavour == "kaggle":
            base = self.root / "TimeSeries-Cubes" / "TimeSeries-Cubes"
            name = f"GLC24-PA-{split}-landsat_time_series" if kind == "landsat" else f"GLC24-PA-{split}-bioclimatic_monthly"
            return base / name
        if kind == "landsat":
            return self.root / "SatelliteTimeSeries" / "cubes" / f"GLC24-PA-{split}-landsat-time-series"
        return self.root / "EnvironmentalRasters" / "Climate" / "Climatic_Monthly_2000-2019_cubes" / f"GLC24-PA-{split}-bioclimatic-monthly"

    def cube_path(self, split: Split, kind: Literal["landsat", "bioclim"], survey_id: int) -> Path:
        """Path of one survey's cube.

        The Kaggle Landsat file stem differs by split: train uses hyphens
        (``GLC24-PA-train-landsat-time-series_<id>_cube.pt``), test underscores
        (``GLC24-PA-test-landsat_time_series_<id>_cube.pt``), inside ``..._landsat_time_series`` folders.
        """
        if kind not in ("landsat", "bioclim"):
            raise ValueError(f"cube kind must be 'landsat' or 'bioclim', got {kind!r}")
        d = self.cube_dir(split, kind)
        if self.flavour == "kaggle":
            if kind == "landsat":
                stem = "GLC24-PA-train-landsat-time-series" if split == "train" else "GLC24-PA-test-landsat_time_series"
            else:
                stem = f"GLC24-PA-{split}-bioclimatic_monthly"
        else:
            stem = d.name
        return d / f"{stem}_{int(survey_id)}_cube.pt"

    # ------------------------------------------------------------------ time-series / env CSVs
    def landsat_csv(self, split: Split, band: str) -> Path:
        """Per-band Landsat CSV (``surveyId`` + 84 quarter columns)."""
        _check_split(split)
        if band not in LANDSAT_BANDS:
            raise ValueError(f"Landsat band must be one of {LANDSAT_BANDS}, got {band!r}")
        if self.flavour == "kaggle":
            return self.root / f"PA-{split}-landsat_time_series" / f"GLC24-PA-{split}-landsat_time_series-{band}.csv"
        return self.root / "SatelliteTimeSeries" / f"GLC24-PA-{split}-landsat-time-series-{band}.csv"

    def env_root(self) -> Path:
        """Root of the environmental CSVs (and, unzipped, of the GeoTIFF rasters)."""
        if self.flavour == "kaggle":
            return self.root / "EnvironmentalRasters" / "EnvironmentalRasters"
        return self.root / "EnvironmentalRasters"

    def env_csv(self, split: Split, component: str) -> Path:
        """Pre-extracted environmental CSV of one component (see :data:`ENV_COMPONENTS`)."""
        _check_split(split)
        if component not in ENV_COMPONENTS:
            raise ValueError(f"environmental component must be one of {ENV_COMPONENTS}, got {component!r}")
        e = self.env_root()
        if self.flavour == "kaggle":
            rel = {
                "bioclimatic": f"Climate/Average 1981-2010/GLC24-PA-{split}-bioclimatic.csv",
                "bioclimatic_monthly": f"Climate/Monthly/GLC24-PA-{split}-bioclimatic_monthly.csv",
                "elevation": f"Elevation/GLC24-PA-{split}-elevation.csv",
                "human_footprint": f"Human Footprint/GLC24-PA-{split}-human_footprint.csv",
                "landcover": f"LandCover/GLC24-PA-{split}-landcover.csv",
                "soilgrids": f"SoilGrids/GLC24-PA-{split}-soilgrids.csv",
            }[component]
        else:
            rel = {
                "bioclimatic": f"Climate/GLC24-PA-{split}-bioclimatic-average.csv",
                "bioclimatic_monthly": f"Climate/GLC24-PA-{split}-bioclimatic-monthly.csv",
                "elevation": f"Elevation/GLC24-PA-{split}-elevation.csv",
                "human_footprint": f"HumanFootprint/GLC24-PA-{split}-human-footprint.csv",
                "landcover": f"LandCover/GLC24-PA-{split}-landcover.csv",
                "soilgrids": f"Soilgrids/GLC24-PA-{split}-soilgrids.csv",
            }[component]
        return e / rel

    # ------------------------------------------------------------------ rasters
    def raster_paths(self, group: str) -> list[Path]:
        """GeoTIFF files of one raster group, found case-insensitively below :meth:`env_root`.

        Raises:
            LayoutError: if the group is unknown or none of its files exist.
        """
        if group not in RASTER_GROUPS:
            raise ValueError(f"raster group must be one of {tuple(RASTER_GROUPS)}, got {group!r}")
        base = self.env_root()
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


_KAGGLE_MARKERS = ("GLC24_PA_metadata_train.csv", "GLC24_PA_metadata_test.csv")
_SEAFILE_MARKERS = ("PresenceAbsenceSurveys/GLC24-PA-metadata-train.csv", "PresenceAbsenceSurveys/GLC24-PA-metadata-test.csv")


def detect_layout(root: str | Path) -> Layout:
    """Return the :class:`Layout` of a data root, telling Kaggle from Seafile by the metadata file names.

    Raises:
        LayoutError: if neither distribution's PA metadata is found, with the names looked for.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"data root {root} does not exist or is not a folder; pass --data-root or run `make demo` to generate the demo world")
    if any((root / m).exists() for m in _KAGGLE_MARKERS):
        return Layout(root, "kaggle")
    if any((root / m).exists() for m in _SEAFILE_MARKERS):
        return Layout(root, "seafile")
    raise LayoutError(
        f"{root} holds neither GLC24 layout: looked for {', '.join(_KAGGLE_MARKERS)} (Kaggle) and "
        f"{', '.join(_SEAFILE_MARKERS)} (Seafile). Point --data-root at the folder the dataset was unzipped into."
    )


_ID_IN_NAME = re.compile(r"_(\d+)_cube\.pt$")


def survey_id_from_cube_name(name: str) -> int:
    """Parse the survey id out of a cube file name (``..._<id>_cube.pt``)."""
    m = _ID_IN_NAME.search(name)
    if not m:
        raise ValueError(f"not a GLC24 cube file name: {name!r} (expected '<stem>_<surveyId>_cube.pt')")
    return int(m.group(1))
