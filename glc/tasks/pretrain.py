"""Self-supervised encoders as artifacts: ``PretrainEncoder`` (the encoder) and ``Embeddings`` (its feature sets).

An encoder is one file ``tasks/encoders/<name>.toml`` (:func:`glc.config.load_encoder_config`: ``[encoder]`` kind +
its keys, ``[pretrain]``, ``[validation]``, ``[wandb]``). Its artifacts are keyed by the name and a hash of the
resolved file, so editing the file re-pretrains and re-embeds, and everything downstream (``ModelInputs`` of the
experiments reading the embedding feature sets) reruns:

* ``encoders/<name>-<hash>/``: ``encoder.pt`` (kind, config, tile statistics, weights), ``summary.json`` (counts
  of skipped / resampled sites, the validation curve, samples/s, the evaluation: held-out triplet accuracy, or
  SatCLIP retrieval errors against random embeddings), ``heatmap.png`` (SatCLIP), with ``--keep-data``
  ``pretrain_data.npz`` (the exact sites it was trained on: carry it to a GPU machine and run
  ``python -m glc.training.pretrain``), ``_SUCCESS``;
  the Lightning run lives in ``encoders/<name>-<hash>.training/`` (resumed after a crash);
* ``features/embeddings/<name>-<hash>/``: ``data/`` parquet, one row per survey (PA train and test) with
  ``surveyId``, ``split`` and the encoder's embedding columns (float32 arrays), ``report.json``, ``_SUCCESS``.

The embedding feature sets of :mod:`glc.features.sets` (``tile2vec``, ``tile2vec_untrained``, ``satclip_location``,
``satclip_image``) name this artifact with ``{"encoder": <name>}``. ``run()`` is glue over
:func:`glc.loaders.pretrain.pretrain_data`, :func:`glc.training.pretrain.pretrain` and
:func:`~glc.training.pretrain.embed`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import luigi

from glc.tasks.base import FlagTarget, GlcTask
from glc.tasks.surveys import SurveyTable

log = logging.getLogger(__name__)

__all__ = ["Embeddings", "PretrainEncoder", "experiment_encoders"]


class _EncoderTask(GlcTask):
    encoder = luigi.Parameter(default="tile2vec", description="encoder name in tasks/encoders/ or a path to a .toml")
    keep_data = luigi.BoolParameter(
        default=False,
        significant=False,
        description="also write pretrain_data.npz (the sites, to carry to a GPU machine)",
    )

    @property
    def cfg(self) -> dict[str, Any]:
        """The resolved encoder config, refused when its inputs need data the data root's edition does not ship."""
        if not hasattr(self, "_cfg"):
            from glc.config import check_encoder_edition, encoder_path, load_encoder_config

            cfg = load_encoder_config(self.encoder)
            edition = self.edition_or_none()
            if edition is not None:
                check_encoder_edition(cfg, edition, str(encoder_path(self.encoder)))
            self._cfg = cfg
        return self._cfg

    def key(self) -> str:
        """``<name>-<hash of the resolved file>``."""
        from glc.config import config_hash

        return f"{self.cfg['name']}-{config_hash(self.cfg)}"

    def data_tasks(self) -> dict[str, luigi.Task]:
        """Survey table, the tile artifact, the neighbour table (triplet objective) and cube artifacts."""
        from glc.models.registry import get_encoder
        from glc.tasks.neighbours import Neighbours

        enc = self.cfg["encoder"]
        req: dict[str, luigi.Task] = {"surveys": self.clone(SurveyTable)}
        for name in enc["tiles"]:
            req[f"tiles:{name}"] = _input_task(self, name)
        if get_encoder(enc["kind"]).uses_neighbours:
            req["neighbours"] = Neighbours(
                data_root=self.data_root,
                out_root=self.out_root,
                sources=",".join(enc["neighbour_sources"]),
                queries="pa_train,pa_test",
                radius_km=float(enc["neighbour_km"]),
                k=int(enc["neighbour_k"]),
            )
        for c in enc.get("cubes", ()):
            req[f"cube:{c}"] = _input_task(self, c)
        return req

    def load_data(self, inputs: dict[str, Any]):
        """:func:`glc.loaders.pretrain.pretrain_data` of the inputs, roles from the config's validation hold-out."""
        import pandas as pd

        from glc.eval.split import validation_mask
        from glc.features.sets import feature_set
        from glc.loaders.pretrain import pretrain_data

        enc = self.cfg["encoder"]
        surveys = pd.read_parquet(inputs["surveys"].dir / "surveys", columns=["surveyId", "split", "x", "y"])
        train = surveys[surveys["split"] == "train"].reset_index(drop=True)
        val_ids = train.loc[
            validation_mask(train, self.cfg, surveys[surveys["split"] == "test"]), "surveyId"
        ].to_numpy()
        tiles = {}
        for name in enc["tiles"]:
            col = feature_set(name).columns[0]
            folder = inputs[f"tiles:{name}"].dir
            tiles[name] = (folder, col.artifact_column, _concrete_shape(folder, col.artifact_column, col.shape))
        cubes = {}
        for c in enc.get("cubes", ()):
            cc = feature_set(c).columns[0]
            cubes[c] = (inputs[f"cube:{c}"].dir, cc.artifact_column, cc.shape)
        nb = inputs["neighbours"].dir if "neighbours" in inputs else None
        data = pretrain_data(inputs["surveys"].dir, tiles, val_ids, nb, cubes)
        data.counts.update(self.po_counts(data.ids))
        return data

    def raw_inputs(self) -> list[Path]:
        """The presence-only metadata CSV (read for the count of skipped PO sites); its edits rerun the encoder."""
        lay = self.layout_or_none()
        return [lay.po_metadata()] if lay is not None and lay.po_metadata().exists() else []

    def po_counts(self, tile_ids: Any) -> dict[str, int]:
        """Presence-only sites (distinct lon/lat) of the data root and how many lack a tile: the tile artifacts
        (``PatchTiles``, ``RasterTiles``) hold PA surveys only (``tile_ids``; PO ids live in another id space), so
        every PO site is skipped by the pretraining and counted here."""
        from glc.data.layout import detect_layout
        from glc.data.metadata import read_po_metadata

        path = detect_layout(self.local_data_root).po_metadata()
        if not path.exists():
            return {}
        po = read_po_metadata(path, on_bad_rows="skip")
        sites = po.drop_duplicates(["lon", "lat"])
        without = int(len(sites))
        if without:
            log.info("%s: %d presence-only sites have no tile (skipped, counted)", self.key(), without)
        return {
            "po_sites": int(len(sites)),
            "po_sites_without_tile": without,
            "po_bad_rows": int(po.attrs.get("bad_rows", 0)),
        }


def _input_task(task: GlcTask, name: str) -> GlcTask:
    """The feature task (``glc.tasks.features``: PatchTiles, RasterTiles, CubeFeatures) making feature set ``name``."""
    from glc.features.sets import feature_set
    from glc.tasks import features

    fs = feature_set(name)
    cls = getattr(features, fs.artifact, None)
    if not (isinstance(cls, type) and issubclass(cls, features.FeatureTask)):
        raise ValueError(
            f"feature set {name!r} comes from {fs.artifact}, not a tile / cube feature task; "
            "an encoder reads DCT tiles and cubes"
        )
    return cls(data_root=task.data_root, out_root=task.out_root, **dict(fs.params))


def _concrete_shape(artifact_dir: Path, column: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The per-row shape of a tile column: the registry's, with an open leading ``-1`` read from the first row."""
    if shape[:1] != (-1,):
        return tuple(shape)
    import pyarrow.parquet as pq

    files = sorted((artifact_dir / "data").glob("*.parquet"))
    first = pq.read_table(files[0], columns=[column]).column(column)[0].as_py()
    rest = int(__import__("math").prod(shape[1:]))
    return (len(first) // rest, *shape[1:])


class PretrainEncoder(_EncoderTask):
    """``encoders/<name>-<hash>/``: a pretrained encoder (see the module docstring)."""

    def requires(self) -> dict[str, luigi.Task]:
        """The data artifacts."""
        return self.data_tasks()

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the encoder folder."""
        return FlagTarget(self.artifact_path("encoders", self.key()))

    def run(self) -> None:
        """Assemble the sites, pretrain, evaluate, publish."""
        from glc.io import atomic_dir, remove_stale_temps, write_json
        from glc.training.pretrain import pretrain

        remove_stale_temps(self.output().dir.parent)
        data = self.load_data(self.input())
        work = self.output().dir.with_name(self.output().dir.name + ".training")
        work.mkdir(parents=True, exist_ok=True)
        with atomic_dir(self.output().dir) as tmp:
            if self.keep_data:
                data.save(tmp / "pretrain_data.npz")
            summary = pretrain(data, self.cfg, work, tmp)
            summary["config"] = self.cfg
            write_json(tmp / "summary.json", summary, atomic=False)
        log.info(
            "PretrainEncoder %s: %s",
            self.key(),
            {k: v for k, v in summary.items() if k in ("best_monitor", "evaluation", "counts")},
        )


class Embeddings(_EncoderTask):
    """``features/embeddings/<name>-<hash>/``: the encoder's embeddings of every PA survey (see the module
    docstring)."""

    def requires(self) -> dict[str, luigi.Task]:
        """The encoder and its data artifacts."""
        return {"encoder": self.clone(PretrainEncoder), **self.data_tasks()}

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the embeddings folder."""
        return FlagTarget(self.artifact_path("features", "embeddings", self.key()))

    def run(self) -> None:
        """Embed every survey with the published encoder; parquet sorted by surveyId."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        from glc.io import atomic_dir, remove_stale_temps, write_json
        from glc.training.pretrain import ENCODER_FILE, embed, load_encoder

        remove_stale_temps(self.output().dir.parent)
        inputs = self.input()
        data = self.load_data(inputs)
        net, cfg = load_encoder(inputs["encoder"].dir / ENCODER_FILE)
        emb = embed(net, cfg["encoder"]["kind"], data)
        split = np.where(data.role == "test", "test", "train")
        order = np.argsort(data.ids)
        cols: dict[str, Any] = {"surveyId": pa.array(data.ids[order]), "split": pa.array(split[order])}
        for c, v in emb.items():
            cols[c] = pa.array(list(v[order]), type=pa.list_(pa.float32()))
        table = pa.table(cols)
        summary = {
            "artifact": "Embeddings",
            "encoder": self.key(),
            "rows": int(len(data)),
            "columns": {c: {"dim": int(v.shape[1])} for c, v in emb.items()},
            "rows_by_split": {s: int((split == s).sum()) for s in ("train", "test")},
        }
        with atomic_dir(self.output().dir, summary=summary) as tmp:
            (tmp / "data").mkdir()
            pq.write_table(table, tmp / "data" / "part-00000.parquet")
            write_json(tmp / "report.json", summary, atomic=False)
        log.info("Embeddings %s: %s", self.key(), json.dumps(summary))


def experiment_encoders(task: GlcTask) -> dict[str, PretrainEncoder]:
    """The ``PretrainEncoder`` of every embedding feature set an experiment task's model reads, by encoder name."""
    from glc.features.sets import feature_set
    from glc.models.registry import get_model

    cfg = task.cfg  # type: ignore[attr-defined]
    out: dict[str, PretrainEncoder] = {}
    for name in get_model(cfg["model"]["kind"]).features(cfg["model"]):
        fs = feature_set(name)
        if fs.artifact == "Embeddings":
            enc = str(fs.params["encoder"])
            out[enc] = PretrainEncoder(encoder=enc, data_root=task.data_root, out_root=task.out_root)
    return out
