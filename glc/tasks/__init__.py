"""The glc Luigi DAG: ``luigi --module glc.tasks Submission --local-scheduler``.

Importing this module registers every task. When ``LUIGI_CONFIG_PATH`` is not set, ``luigi.cfg`` of the
runtime-configuration folder (:func:`glc.config.conf_dir`: ``$GLC_CONF_DIR``, ``./conf`` or the checkout's ``conf/``)
is added to Luigi's config path, so the ``[retcode]`` section (non-zero exit on failure) and the
``[paths]`` defaults apply however the command is started.
"""

from __future__ import annotations

import logging
import logging.config
import os
from pathlib import Path

import luigi.configuration

from glc.config import conf_dir

_CONF_DIR = conf_dir() or Path(os.devnull)  # $GLC_CONF_DIR, ./conf or the source checkout's conf/
if not os.environ.get("LUIGI_CONFIG_PATH") and (_CONF_DIR / "luigi.cfg").exists():
    luigi.configuration.add_config_path(str(_CONF_DIR / "luigi.cfg"))
if not logging.getLogger("glc").handlers and (_CONF_DIR / "logging.cfg").exists():
    logging.config.fileConfig(_CONF_DIR / "logging.cfg", disable_existing_loggers=False)

from glc.tasks.base import GlcTask, paths  # noqa: E402
from glc.tasks.benchmark import RealCV, RealLabels  # noqa: E402
from glc.tasks.experiment import Decoder, Predict, Report, Submission  # noqa: E402
from glc.tasks.features import CubeFeatures, EnvFeatures, PatchTiles, RasterTiles  # noqa: E402
from glc.tasks.maps import SpeciesMap  # noqa: E402
from glc.tasks.neighbours import GraphFeatures, Neighbours, POCorrection  # noqa: E402
from glc.tasks.po import POPatchTiles, PORasterTiles, POSites  # noqa: E402
from glc.tasks.pretrain import Embeddings, PretrainEncoder  # noqa: E402
from glc.tasks.raw import GLC24Data  # noqa: E402
from glc.tasks.surveys import SurveyTable  # noqa: E402
from glc.tasks.synth import SyntheticPOPatches, SyntheticWorld  # noqa: E402
from glc.tasks.training import ModelInputs, TrainModel  # noqa: E402

__all__ = [
    "CubeFeatures",
    "Decoder",
    "Embeddings",
    "EnvFeatures",
    "GLC24Data",
    "GlcTask",
    "GraphFeatures",
    "ModelInputs",
    "Neighbours",
    "POCorrection",
    "POPatchTiles",
    "PORasterTiles",
    "POSites",
    "RealCV",
    "RealLabels",
    "PatchTiles",
    "Predict",
    "PretrainEncoder",
    "RasterTiles",
    "Report",
    "SpeciesMap",
    "Submission",
    "SurveyTable",
    "SyntheticPOPatches",
    "SyntheticWorld",
    "TrainModel",
    "paths",
]
