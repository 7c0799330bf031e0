"""Presence-only pretraining (``[train.pretrain_po] enabled = true``): the net learns from the PO sites first, then is
fine-tuned on the PA surveys as usual.

GLC24 ships ~5M presence-only occurrences, 40x the PA surveys, but a PO record says only that one species was seen
there, never which were absent. The GLC23-25 entries that used PO well pretrained on it and fine-tuned on PA. Here:

* **Sites and labels.** The ``POSites`` artifact (:func:`glc.etl.po.po_site_labels`) groups the PO records by PO
  ``surveyId``: each site's positives are the species recorded there. Species outside the PA model's classes are
  dropped and counted; a site left without a positive is dropped and counted. ``max_sites`` keeps a seeded sample.
* **Inputs.** A PO site has its location (``x``, ``y``, ``lon``, ``lat``), the environmental rasters' DCT tiles at
  it (``PORasterTiles``, from the full-extent GeoTIFFs) and, where its satellite patch exists, the patch's DCT tiles
  (``POPatchTiles``); :func:`read_po_inputs` gives them the same columns, dtype and shape as the PA rows of the
  ``ModelInputs`` table, and the net standardises them with the same PA-train statistics. glc builds nothing else
  there (time series, env vectors, graph features: Seafile ships PO cubes and env CSVs, which glc does not read
  yet). A net reading any other column is refused with the number of sites lacking it (:func:`check_po_inputs`); a
  site without one of the net's inputs (a patch) is dropped and counted (``sites_without_inputs``). The geolocation
  nets and the tile CNNs (patches, rasters, with or without their location branch) qualify; GLC24's PO patches ship
  only in the organizers' Seafile share.
* **Nets with branches a PO site cannot feed** (the fusion: its time series, env vectors and graph features) learn
  from the PO sites through the branches it can: such a net names them (``po_input_columns``) and returns their
  vector (``po_features(batch) -> [B, po_feature_dim]``); the objective then owns a ``Linear`` PO head on that vector
  (``po.head``, trained with the net, unused when predicting), so the shared branch (the fusion's image backbone)
  learns what the imagery of each species' places looks like while the fusion's own head sees only PA surveys.
* **Loss** (Cole et al., "Spatial Implicit Neural Representations for Global-Scale Species Mapping", ICML 2023,
  the "assume negative" family): every species not recorded at a site is taken as absent there, and the rare
  recorded one is up-weighted (``pos_weight``), i.e. BCE summed over classes with positive weight ``pos_weight``
  (:class:`glc.training.losses.BCELoss`). ``an_full`` adds, per site, one location drawn uniformly in the sites'
  bounding box (EPSG:3035) with every species absent — SINR's background term, which teaches the net that species are
  absent where no one recorded them. ``an_site`` is the site term alone.
  ``multinomial`` is the presence-only multinomial (conditional) likelihood: given that a record was made at a site,
  which species was it? ``-log softmax(logits + b)`` of each recorded species, averaged over the records, where
  ``b`` is one learned offset per species (its detectability and reporting rate). Conditioning on the record
  cancels the sampling effort at the site (how many people looked there), the observer bias that makes
  assume-negative losses learn where people go rather than where species live; the ranking of species at a
  location is what the PA head shares with it.
* **Optimiser and schedule.** AdamW at ``lr`` for ``epochs`` epochs, batches of ``batch_size`` sites, seeded; the
  net trains in place and its weights after the last epoch start the PA fit, which then trains with its own loss,
  learning rate and early stopping (with a joint term, that term starts from the pretrained offsets and PO head).
  ``epochs = 0`` skips this phase; it runs only before a fit from scratch (refused with ``kfold > 1`` or an init
  checkpoint).
* **Joint term** (``aux_weight > 0``): the PO loss stays in the PA fit as an auxiliary term,
  ``loss = PA loss + aux_weight x PO loss`` of a batch of ``batch_size`` PO sites drawn each step (seeded by the
  seed and the global step, so a resumed run draws the same sites). Fine-tuning alone forgets what pretraining
  taught once the PA fit has run long enough; the joint term keeps the PO sites in every step, and in every fold of
  a k-fold fit (folds 2..k start the objective's offsets and PO head from fold 1's, as their nets).
  :class:`POJointModule` is what :func:`glc.training.trainer.build_module` builds then (its ``po.*`` state, the
  species offsets and any PO head, is saved with the net and unused when predicting).

The pretrained weights and a summary (sites, records, dropped species, epochs, loss, final loss, seconds) are written
to ``<work>/po_pretrain/`` atomically; a rerun reuses them. The model summary carries that summary under
``pretrain_po``.

**Resume.** At every pretraining epoch end ``<work>/po_pretrain/checkpoints/last.ckpt`` is rewritten (atomically) with
the net, the objective, the optimiser, the epoch's losses and every random state the next epoch draws from (the site
order's generator, the background draws' generator, torch / numpy / ``random``); a pretraining stopped from outside
(a step timeout, a lost machine: on the real GLC24 PO records one epoch is minutes on a CPU) goes on from its last
finished epoch when run again, and ends with the weights an uninterrupted run would have (tested). The folder is
removed once the pretrained weights are written.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from glc.training.losses import BCELoss
from glc.training.module import MultiLabelModule

log = logging.getLogger(__name__)

__all__ = [
    "LOCATION_COLUMNS",
    "PO_LOSSES",
    "POBatches",
    "POJointModule",
    "POObjective",
    "POPretrainModule",
    "check_po_inputs",
    "po_input_columns",
    "po_net",
    "po_objective",
    "po_site_table",
    "pretrain_on_po",
    "read_po_inputs",
    "read_po_sites",
]

#: Batch columns a PO site provides.
LOCATION_COLUMNS: tuple[str, ...] = ("x", "y", "lon", "lat")
#: ``loss`` -> whether it has the background term (one uniform random location per site, every species absent).
PO_LOSSES: dict[str, bool] = {"an_full": True, "an_site": False, "multinomial": False}
CHECKPOINT, SUMMARY = "po.ckpt", "summary.json"
#: Folder of the epoch-end checkpoint (``last.ckpt``) a stopped pretraining resumes from (module docstring).
RESUME_DIR = "checkpoints"


def po_net(net: nn.Module) -> Callable[[Mapping[str, Tensor]], Tensor]:
    """What the PO objective calls on a PO batch: the net's eager ``po_features`` where it has one (a net with
    branches a PO site cannot feed), else its eager ``forward`` (a compiled net keeps its graphs for the PA fit)."""
    return getattr(net, "po_features", None) or net.forward


def po_input_columns(net: nn.Module) -> tuple[str, ...]:
    """The batch columns the net reads at a PO site: ``po_input_columns`` where it has one, else ``input_columns``.

    Raises:
        TypeError: a net with neither (its PO inputs could not be checked or fed).
    """
    cols = getattr(net, "po_input_columns", None)
    if cols is None:
        cols = getattr(net, "input_columns", None)
    if cols is None:
        raise TypeError(
            f"{type(net).__name__} declares no input_columns: the PO term cannot tell which columns to feed it at the "
            "PO sites; give the net an input_columns property (the batch keys its forward reads)"
        )
    return tuple(cols)


def po_objective(net: nn.Module, po: Mapping[str, Any], num_classes: int) -> POObjective:
    """The :class:`POObjective` of ``[train.pretrain_po]`` ``po`` for ``net``: with a PO head on the net's
    ``po_features`` vector where the net has one (``po_feature_dim``)."""
    dim = getattr(net, "po_feature_dim", None)
    return POObjective(str(po["loss"]), num_classes, float(po["pos_weight"]), None if dim is None else int(dim))


def read_po_sites(folder: str | Path) -> pd.DataFrame:
    """The ``POSites`` artifact's rows (``surveyId, lon, lat, x, y, speciesIds, n_records``)."""
    import pyarrow.parquet as pq

    from glc.io import is_complete

    folder = Path(folder)
    if not is_complete(folder):
        raise FileNotFoundError(f"{folder}: not a complete POSites artifact (no _SUCCESS); run the POSites task")
    return pq.read_table(folder / "data").to_pandas()


def po_site_table(
    sites: pd.DataFrame, vocab: np.ndarray, max_sites: int = 0, seed: int = 0, input_ids: np.ndarray | None = None
) -> tuple[pd.DataFrame, list[np.ndarray], dict[str, Any]]:
    """The sites usable for pretraining: ``(sites, class columns of each site's species, report)``.

    Species outside ``vocab`` (the PA classes) are dropped, then sites without any species left, then (``input_ids``:
    the sites that have the net's inputs, :func:`read_po_inputs`) sites without inputs; ``max_sites > 0`` keeps a
    seeded sample of the rest. The report counts every drop.

    Raises:
        ValueError: no site has a species among the PA classes.
    """
    vocab = np.asarray(vocab, np.int64)
    lists = [np.asarray(s, np.int64) for s in sites["speciesIds"]]
    flat = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    pos = np.minimum(np.searchsorted(vocab, flat), max(len(vocab) - 1, 0))
    known = vocab[pos] == flat if len(vocab) else np.zeros(len(flat), bool)
    owner = np.repeat(np.arange(len(lists)), [len(a) for a in lists])
    cols = _split(owner, pos, known, len(lists))
    keep = np.array([len(c) > 0 for c in cols], bool)
    with_inputs = (
        np.isin(sites["surveyId"].to_numpy(np.int64), np.asarray(input_ids, np.int64))
        if input_ids is not None
        else np.ones(len(keep), bool)
    )
    idx = np.flatnonzero(keep & with_inputs)
    if max_sites and len(idx) > max_sites:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_sites, replace=False))
    report = {
        "sites_read": len(sites),
        "records_read": int(sites["n_records"].sum()) if "n_records" in sites else len(flat),
        "species_read": int(len(np.unique(flat))),
        "species_outside_pa_classes": int(len(np.unique(flat[~known]))),
        "labels_dropped_outside_pa_classes": int((~known).sum()),
        "sites_without_pa_species": int((~keep).sum()),
        "sites_without_inputs": int((keep & ~with_inputs).sum()),
        "sites_used": len(idx),
        "labels_used": int(sum(len(cols[i]) for i in idx)),
    }
    if not keep.any():
        raise ValueError(
            f"PO pretraining: none of the {len(sites)} PO sites records a species among the {len(vocab)} PA classes; "
            "check that the PO file belongs to the same data root, or disable [train.pretrain_po]"
        )
    if not len(idx):
        raise ValueError(
            f"PO pretraining: none of the {int(keep.sum())} PO sites with a PA species has the net's inputs (the PO "
            "input artifacts hold other site ids); check that they belong to the same data root"
        )
    return sites.iloc[idx].reset_index(drop=True), [cols[i] for i in idx], report


def _split(owner: np.ndarray, pos: np.ndarray, known: np.ndarray, n: int) -> list[np.ndarray]:
    """The kept class columns of each of the ``n`` sites (``owner``: the site of each label, ascending)."""
    cut = np.searchsorted(owner[known], np.arange(n + 1))
    kept = pos[known]
    return [kept[cut[i] : cut[i + 1]] for i in range(n)]


def read_po_inputs(
    folders: Mapping[str, str | Path], meta: Mapping[str, Any]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The PO sites' input columns: ``(sorted site ids, {column: array [n_sites, *shape]})``.

    ``folders``: feature set name -> its PO artifact (``POPatchTiles``, ``PORasterTiles``: ``data/`` parquet with
    ``surveyId`` and the set's source columns). Each column gets the batch shape and dtype of the ``ModelInputs``
    table (``meta``), so a PO batch is what the net gets from the PA loader. Sites missing from any artifact are left
    out. Memory: the rows of every site, once (a climate raster tile is ~5 KB a site, a patch_dct tile 1 KB).

    Raises:
        FileNotFoundError: an artifact is incomplete.
    """
    import pyarrow.parquet as pq

    from glc.features.sets import feature_set
    from glc.io import is_complete
    from glc.loaders.tables import column_shape, column_specs

    specs = column_specs(meta)
    ids: np.ndarray | None = None
    frames: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for name, folder in sorted(folders.items()):
        folder = Path(folder)
        if not is_complete(folder):
            raise FileNotFoundError(f"{folder}: not a complete PO input artifact of {name!r} (no _SUCCESS)")
        cols = feature_set(name).columns
        table = pq.read_table(folder / "data", columns=["surveyId", *(c.artifact_column for c in cols)])
        sid = table.column("surveyId").to_numpy().astype(np.int64)
        order = np.argsort(sid, kind="stable")
        values = {}
        for c in cols:
            flat = table.column(c.artifact_column).combine_chunks().flatten()
            arr = flat.to_numpy(zero_copy_only=False).reshape(len(sid), *column_shape(meta, c.name))
            values[c.name] = arr[order].astype(specs[c.name].batch_dtype(), copy=False)
        frames[name] = (sid[order], values)
        ids = sid[order] if ids is None else np.intersect1d(ids, sid)
    out: dict[str, np.ndarray] = {}
    ids = np.zeros(0, np.int64) if ids is None else ids
    for sid, values in frames.values():
        rows = np.searchsorted(sid, ids)
        out.update({c: v[rows] for c, v in values.items()})
    return ids, out


class POBatches:
    """PO site batches: ``batch(idx, rng)`` -> the net's location columns of sites ``idx`` (and their ``inputs``
    columns: :func:`read_po_inputs`), their multi-hot target and (``background``) as many uniform random locations
    in the sites' bounding box, drawn with ``rng``.

    As a DataLoader ``collate_fn`` (pretraining) it draws the background from its own seeded generator, in batch
    order; the joint term draws each step's sites and background from ``(seed, global step)`` (:meth:`draw`).
    """

    def __init__(
        self,
        sites: pd.DataFrame,
        cols: list[np.ndarray],
        C: int,
        background: bool,
        seed: int,
        inputs: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        self.xy = {c: sites[c].to_numpy(np.float32) for c in LOCATION_COLUMNS}
        self.rows, self.inputs = np.zeros(0, np.int64), {}
        if inputs is not None and inputs[1]:
            if background:
                raise ValueError(
                    f"[train.pretrain_po] loss an_full draws random background locations, which have no "
                    f'{sorted(inputs[1])}: use loss = "multinomial" or "an_site" with a net that reads them'
                )
            ids = np.asarray(inputs[0], np.int64)
            want = sites["surveyId"].to_numpy(np.int64)
            rows = np.minimum(np.searchsorted(ids, want), max(len(ids) - 1, 0))
            if not len(ids) or (ids[rows] != want).any():
                raise ValueError("POBatches: a site has no row in the PO inputs; drop it first (po_site_table)")
            self.rows, self.inputs = rows, dict(inputs[1])  # indexed per batch: no second copy of the tiles
        self.cols, self.C, self.background, self.seed = cols, C, background, int(seed)
        x, y = sites["x"].to_numpy(np.float64), sites["y"].to_numpy(np.float64)
        self.box = (x.min(), x.max(), y.min(), y.max())
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.cols)

    def __call__(self, idx: list[int]) -> dict[str, Tensor]:
        return self.batch(np.asarray(idx, np.int64), self.rng)

    def draw(self, step: int, size: int) -> dict[str, Tensor]:
        """The batch of training step ``step``: ``size`` sites drawn with replacement, from ``(seed, step)`` only."""
        rng = np.random.default_rng([self.seed, int(step)])
        return self.batch(rng.integers(0, len(self), int(size)), rng)

    def batch(self, i: np.ndarray, rng: np.random.Generator) -> dict[str, Tensor]:
        """Sites ``i`` (module docstring)."""
        from glc.geo import to_lonlat

        out = {c: torch.from_numpy(v[i]) for c, v in self.xy.items()}
        out.update({c: torch.from_numpy(v[self.rows[i]]) for c, v in self.inputs.items()})
        target = torch.zeros(len(i), self.C)
        rows = np.repeat(np.arange(len(i)), [len(self.cols[j]) for j in i])
        target[torch.from_numpy(rows), torch.from_numpy(np.concatenate([self.cols[j] for j in i]))] = 1.0
        out["target"] = target
        if self.background:
            x0, x1, y0, y1 = self.box
            bx, by = rng.uniform(x0, x1, len(i)), rng.uniform(y0, y1, len(i))
            lon, lat = to_lonlat(bx, by)
            for c, v in zip(LOCATION_COLUMNS, (bx, by, lon, lat)):
                out[f"bg_{c}"] = torch.from_numpy(np.asarray(v, np.float32))
        return out


class POObjective(nn.Module):
    """The presence-only loss of a batch of :class:`POBatches` (``loss``: a key of :data:`PO_LOSSES`; module
    docstring): ``objective(net, batch) -> scalar``. ``multinomial`` owns the per-species offsets ``b``. The net gets
    every input column of the batch (the location, and the patch / raster tiles where the net reads them).
    ``feature_dim``: the net gives a feature vector of this width (:func:`po_net`: ``po_features``), and the
    objective's own ``Linear`` head (``head``) turns it into the species logits."""

    def __init__(self, loss: str, num_classes: int, pos_weight: float, feature_dim: int | None = None) -> None:
        super().__init__()
        if loss not in PO_LOSSES:
            raise ValueError(f"[train.pretrain_po] loss = {loss!r}: expected one of {tuple(PO_LOSSES)}")
        self.kind, self.background = loss, PO_LOSSES[loss]
        self.site_loss, self.bg_loss = BCELoss(pos_weight=float(pos_weight)), BCELoss()
        self.offset = nn.Parameter(torch.zeros(int(num_classes))) if loss == "multinomial" else None
        self.head = nn.Linear(int(feature_dim), int(num_classes)) if feature_dim else None

    def forward(self, net: Callable[[Mapping[str, Tensor]], Tensor], batch: Mapping[str, Tensor]) -> Tensor:
        """Site term (+ background term), or the multinomial likelihood of the records; ``net`` maps a batch of
        input columns to logits (a net, or its eager ``forward`` where a compiled one must keep its shapes)."""
        logits = self._logits(net, {c: v for c, v in batch.items() if c != "target" and not c.startswith("bg_")})
        target = batch["target"].to(logits.dtype)
        if self.offset is not None:
            logp = torch.log_softmax(logits + self.offset, dim=1)
            return -(logp * target).sum() / target.sum().clamp_min(1.0)
        loss = self.site_loss(logits, target)
        if self.background:
            bg = self._logits(net, {c: batch[f"bg_{c}"] for c in LOCATION_COLUMNS})
            loss = loss + self.bg_loss(bg, torch.zeros_like(bg))
        return loss

    def _logits(self, net: Callable[[Mapping[str, Tensor]], Tensor], batch: Mapping[str, Tensor]) -> Tensor:
        out = net(batch)
        return out if self.head is None else self.head(out)


class POPretrainModule(pl.LightningModule):
    """The net and the PO loss (:class:`POObjective`); logs ``po/loss`` and keeps each epoch's mean."""

    def __init__(
        self,
        net: nn.Module,
        objective: POObjective,
        lr: float,
        loader_generator: torch.Generator | None = None,
        batches: POBatches | None = None,
    ) -> None:
        super().__init__()
        self.net, self.objective, self.lr = net, objective, float(lr)
        self.epoch_losses: list[float] = []
        self._sum: Tensor | float = 0.0  # on the training device: no host sync per step
        self._n = 0
        # the generators the next epoch draws from (the site order, the background draws): saved with every
        # checkpoint and restored on resume, with the global ones, so a resumed run repeats the uninterrupted one
        self._generator, self._batches = loader_generator, batches
        self.seconds_before = 0.0  # seconds of earlier, stopped attempts (from the checkpoint resumed)
        self.resumed_after_epochs = 0
        self._t0 = time.time()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add the epochs' losses, the seconds so far and every random state the next epoch draws from."""
        kind, keys, pos, has_gauss, gauss = np.random.get_state()  # as tensors and numbers: loadable weights-only
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": [str(kind), torch.from_numpy(np.asarray(keys, np.int64)), int(pos), int(has_gauss), float(gauss)],
            "random": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        if self._generator is not None:
            state["loader"] = self._generator.get_state()
        if self._batches is not None:
            state["batches"] = self._batches.rng.bit_generator.state
        checkpoint["po_pretrain"] = {
            "epoch_losses": list(self.epoch_losses),
            "seconds": self.seconds(),
            "rng": state,
        }

    def seconds(self) -> float:
        """Seconds of pretraining so far: this attempt's and the stopped attempts' it resumed."""
        return self.seconds_before + time.time() - self._t0

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore what :meth:`on_save_checkpoint` added."""
        saved = checkpoint.get("po_pretrain")
        if saved is None:
            raise ValueError(
                "the checkpoint to resume the PO pretraining from holds no PO pretraining state; delete the "
                f"pretraining's {RESUME_DIR}/ folder to start it over"
            )
        self.epoch_losses = list(saved["epoch_losses"])
        self.resumed_after_epochs = len(self.epoch_losses)
        self.seconds_before, self._t0 = float(saved["seconds"]), time.time()
        state = saved["rng"]
        torch.set_rng_state(state["torch"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        random.setstate(state["random"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        if self._generator is not None and "loader" in state:
            self._generator.set_state(state["loader"])
        if self._batches is not None and "batches" in state:
            self._batches.rng.bit_generator.state = state["batches"]

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        """The PO loss of one batch of sites."""
        loss = self.objective(po_net(self.net), batch)  # eager: a compiled net keeps its graphs for the PA fit
        self.log("po/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        self._sum = self._sum + loss.detach() * len(batch["target"])
        self._n += len(batch["target"])
        return loss

    def on_train_epoch_end(self) -> None:
        """Keep the epoch's mean loss."""
        self.epoch_losses.append(float(self._sum) / max(self._n, 1))
        self._sum, self._n = 0.0, 0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW over the net (and the objective's offsets)."""
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


class POJointModule(MultiLabelModule):
    """:class:`~glc.training.module.MultiLabelModule` whose training loss adds ``aux_weight`` x the PO loss of a
    batch of PO sites each step (module docstring, "Joint term"). Built by ``build_module`` from the config (with
    or without sites: predicting needs none); :meth:`attach` gives it the sites before a fit.

    Args:
        objective: the PO loss (:class:`POObjective`); its offsets are trained with the net.
        aux_weight: weight of the PO term (> 0).
        po_batch_size: PO sites per step.
        **kwargs: :class:`~glc.training.module.MultiLabelModule`'s arguments.
    """

    def __init__(self, *args: Any, objective: POObjective, aux_weight: float, po_batch_size: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if not float(aux_weight) > 0:
            raise ValueError(f"[train.pretrain_po] aux_weight = {aux_weight!r}: the joint term needs a weight > 0")
        self.po = objective
        self.aux_weight, self.po_batch_size = float(aux_weight), int(po_batch_size)
        self.sites: POBatches | None = None

    def attach(self, sites: POBatches | None) -> None:
        """The PO sites the joint term draws from (``None`` releases them: the fit is over)."""
        self.sites = sites

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        """PA loss + ``aux_weight`` x PO loss; logs ``train/po_loss``."""
        if self.sites is None:
            raise RuntimeError(
                "POJointModule: no PO sites attached; train through glc.training.trainer.train_model(po_sites=...)"
            )
        loss = super().training_step(batch, batch_idx)
        po_batch = {k: v.to(self.device) for k, v in self.sites.draw(self.global_step, self.po_batch_size).items()}
        po_batch = self._net_input(po_batch)  # channels_last / dynamic batch, as the PA batches
        eager = getattr(self.net, "po_features", None) is not None or self._eager(po_batch)
        po = self.po(po_net(self.net) if eager else self.net, po_batch)  # PO features, or another batch size: eagerly
        self.log("train/po_loss", po, on_step=False, on_epoch=True, batch_size=self.po_batch_size)
        return loss + self.aux_weight * po


def check_po_inputs(net: nn.Module, kind: str, n_sites: int, provided: tuple[str, ...] = ()) -> None:
    """Refuse a net that reads a column a PO site does not have (naming the columns and the number of sites).

    ``provided``: the columns of the PO input artifacts (:func:`read_po_inputs`) besides the location.
    """
    reads = po_input_columns(net)
    if getattr(net, "po_features", None) is not None and not reads:
        raise ValueError(
            f"PO pretraining: model.kind={kind!r} has no branch a PO site can feed (its PO-capable branch, e.g. the "
            "fusion's image, is off); turn it on or disable [train.pretrain_po]"
        )
    have = (*LOCATION_COLUMNS, *provided)
    lacking = [c for c in reads if c not in have]
    if lacking:
        raw = (
            " (POPatchTiles makes the PO patches' DCT tiles only: read the patch as patch_dct / patch_dct16, e.g. "
            'model.image = "dct16")'
            if "patch_raw" in lacking
            else ""
        )
        raise ValueError(
            f"PO pretraining: model.kind={kind!r} reads {lacking}, which none of the {n_sites} PO "
            f"sites has (a PO site has only {list(have)}; a net reading patch or raster tiles, e.g. patch_dct or "
            f"raster_climate, gets them there){raw}; drop those inputs (e.g. model.extras) or disable "
            "[train.pretrain_po]"
        )


def _po_table(
    net: nn.Module,
    sites_dir: str | Path,
    cfg: Mapping[str, Any],
    meta: Mapping[str, Any],
    inputs: Mapping[str, str | Path] | None,
) -> tuple[pd.DataFrame, list[np.ndarray], dict[str, Any], tuple[np.ndarray, dict[str, np.ndarray]] | None]:
    """The usable sites, their class columns, the report and the input columns the net reads at them."""
    po = cfg["train"]["pretrain_po"]
    sites = read_po_sites(sites_dir)
    reads = set(po_input_columns(net))
    table = read_po_inputs(inputs, meta) if inputs else None
    provided = tuple(table[1]) if table is not None else ()
    check_po_inputs(net, cfg["model"]["kind"], len(sites), provided)
    used_inputs = None
    if table is not None and reads & set(provided):
        used_inputs = (table[0], {c: v for c, v in table[1].items() if c in reads})
    used, cols, report = po_site_table(
        sites,
        np.asarray(meta["vocab"]),
        int(po["max_sites"]),
        int(cfg["seed"]),
        input_ids=used_inputs[0] if used_inputs is not None else None,
    )
    report["inputs"] = sorted(reads)
    report["input_sets"] = sorted(inputs or {}) if used_inputs is not None else []
    return used, cols, report, used_inputs


def joint_sites(
    net: nn.Module,
    sites_dir: str | Path,
    cfg: Mapping[str, Any],
    meta: Mapping[str, Any],
    inputs: Mapping[str, str | Path] | None = None,
) -> tuple[POBatches, dict[str, Any]]:
    """The :class:`POBatches` of the joint term and the sites report (:func:`po_site_table`); ``inputs``: feature
    set -> PO input artifact (:func:`read_po_inputs`) for nets that read more than the location."""
    po = cfg["train"]["pretrain_po"]
    used, cols, report, table = _po_table(net, sites_dir, cfg, meta, inputs)
    seed = int(cfg["seed"])
    return POBatches(used, cols, int(meta["num_classes"]), PO_LOSSES[str(po["loss"])], seed + 109, table), report


def pretrain_on_po(
    net: nn.Module,
    sites_dir: str | Path,
    cfg: Mapping[str, Any],
    meta: Mapping[str, Any],
    out_dir: str | Path,
    accelerator: tuple[str, Any] = ("cpu", True),
    progress: bool = True,
    inputs: Mapping[str, str | Path] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Pretrain ``net`` in place on the PO sites of ``sites_dir`` (module docstring); ``(checkpoint, summary)``.

    The checkpoint holds ``{"state_dict": {"net.<key>": tensor, "po.<key>": tensor}}`` (the net, and the objective's
    offsets / PO head, which a joint term goes on with). A complete
    earlier run in ``out_dir`` (checkpoint and summary) is reused without training.

    Raises:
        ValueError: the net reads a column a PO site does not have, or no usable site.
    """
    from glc.io import atomic_file, write_json
    from glc.training.checkpoint import AtomicCheckpointIO, last_checkpoint

    out = Path(out_dir)
    ckpt, summ = out / CHECKPOINT, out / SUMMARY
    if ckpt.exists() and summ.exists():
        log.info("PO pretraining: reusing %s", ckpt)
        return ckpt, {**json.loads(summ.read_text()), "reused": True}
    po = cfg["train"]["pretrain_po"]
    seed = int(cfg["seed"])
    used, cols, report, table = _po_table(net, sites_dir, cfg, meta, inputs)
    background = PO_LOSSES[str(po["loss"])]
    C = int(meta["num_classes"])
    pl.seed_everything(seed + 101, workers=True, verbose=False)
    generator = torch.Generator().manual_seed(seed + 107)
    batches = POBatches(used, cols, C, background, seed + 103, table)
    loader = torch.utils.data.DataLoader(
        range(len(used)),  # the site indices; the collate function builds the batch
        batch_size=int(po["batch_size"]),
        shuffle=True,
        collate_fn=batches,
        generator=generator,
    )
    module = POPretrainModule(net, po_objective(net, po, C), float(po["lr"]), generator, batches)
    resume_dir = out / RESUME_DIR
    last = resume_dir / "last.ckpt"
    acc, deterministic = accelerator  # (Lightning accelerator, deterministic flag), as the PA fit uses
    trainer = pl.Trainer(
        max_epochs=int(po["epochs"]),
        accelerator=acc,
        devices=1,
        deterministic=deterministic,
        logger=False,
        callbacks=[last_checkpoint(resume_dir)],
        plugins=[AtomicCheckpointIO()],
        default_root_dir=out,
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(50, len(loader))),
    )
    resume = last if last.is_file() else None
    if resume is not None:
        log.info("PO pretraining: resuming from %s", last)
    net.train()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        trainer.fit(module, train_dataloaders=loader, ckpt_path=resume)
    if trainer.interrupted:
        raise RuntimeError(
            f"PO pretraining was interrupted after {len(module.epoch_losses)} of {po['epochs']} epochs; run again "
            f"to resume from {last}"
        )
    summary = {
        **report,
        "epochs": int(po["epochs"]),
        "loss": str(po["loss"]),
        "pos_weight": float(po["pos_weight"]),
        "lr": float(po["lr"]),
        "batch_size": int(po["batch_size"]),
        "epoch_loss": [round(v, 5) for v in module.epoch_losses],
        "seconds": round(module.seconds(), 2),
    }
    if resume is not None:
        summary["resumed_after_epochs"] = module.resumed_after_epochs  # a stopped attempt's finished epochs
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(ckpt, "wb") as f:
        state = {f"net.{k}": v.detach().cpu() for k, v in net.state_dict().items()}
        state.update({f"po.{k}": v.detach().cpu() for k, v in module.objective.state_dict().items()})
        torch.save({"state_dict": state}, f)
    write_json(summ, summary)
    shutil.rmtree(resume_dir, ignore_errors=True)  # the weights are written: nothing left to resume
    log.info(
        "PO pretraining: %d sites, %d epochs (%s), loss %.4f -> %.4f, %.1f s",
        report["sites_used"],
        summary["epochs"],
        summary["loss"],
        module.epoch_losses[0],
        module.epoch_losses[-1],
        summary["seconds"],
    )
    return ckpt, summary
