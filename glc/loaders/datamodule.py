"""``SurveyDataModule``: the Lightning data module over a model-input table (``meta.json`` + train/val/test).

It owns every loader decision (reader, shuffling, workers, seeds); the LightningModule never opens a file.
Batches are ``dict[str, torch.Tensor]``: ``surveyId`` int64 [B], the requested scalar columns (float columns as
float32, int columns as int64) [B], the requested array columns in their shapes (``meta.json`` ``columns``: e.g.
``env`` float32 [B, E], ``patch_dct`` float32 [B, 4, 8, 8], ``patch_raw`` uint8 [B, 4, 128, 128]), and ``target``
float32 [B, C] (multi-hot of ``labels``) when ``with_target``.

Epochs and determinism: the training order is a function of ``(seed, epoch, num_workers)`` only (see
:mod:`glc.loaders.readers` for what is shuffled; "petastorm" and "arrow" give identical batches, "memory" permutes
rows globally and so has its own order). The epoch is read lazily, each time the train loader is
iterated, from the attached trainer (the epoch it is about to run, see :meth:`SurveyDataModule._epoch`) or, without
a trainer, from the number of times that loader was iterated before. The loader therefore needs no
``reload_dataloaders_every_n_epochs``, and ``trainer.fit(module, datamodule=dm, ckpt_path=...)`` resumed from an
end-of-epoch checkpoint (``last.ckpt``) reads exactly the orders of the epochs it still runs. A checkpoint taken
mid-epoch (``FitSettings(checkpoint_minutes=...)``) holds the train loader's state, the epoch and the batches of it the
trainer finished (:class:`~glc.loaders.readers.EpochDataLoader` is stateful), so a run resumed from it skips those
batches of that epoch's order and trains on the rest: the same batches as an uninterrupted run.

Workers: with ``num_workers > 0`` the loaders use persistent worker processes (each reads its own shard of row
groups; they learn each epoch through shared memory); :meth:`teardown` (called by Lightning at the end of
fit/predict) stops them. On the 2-core development machine ``num_workers=0`` was fastest (``bench/loader.py``).

Failure: :meth:`setup` scans (and by default decodes and checks) every part file of the splits the stage needs,
so a corrupt or truncated file, a missing column or a wrong list width raises a
:class:`~glc.data.errors.DataError` naming the file (and column) from ``trainer.fit`` before the first step.

Example::

    dm = SurveyDataModule("out/model_inputs", columns=("x", "y", "env"), batch_size=1024, reader="petastorm")
    trainer.fit(module, datamodule=dm)
"""

from __future__ import annotations

import logging
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl

from glc.loaders.readers import (
    DEFAULT_SHUFFLE_BUFFER,
    READER_CHOICES,
    BatchSource,
    EpochDataLoader,
    EpochPlan,
    MemorySource,
    SurveyIterableDataset,
    make_source,
)
from glc.loaders.tables import SPLITS, read_meta, scan_split

log = logging.getLogger(__name__)

# Our IterableDatasets define __len__ and shard rows between DataLoader workers themselves (no duplicates, tested),
# which is exactly what this Lightning warning asks for.
warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined", module=r"pytorch_lightning")

#: Splits each Lightning stage reads.
STAGE_SPLITS: dict[str, tuple[str, ...]] = {"fit": ("train", "val"), "validate": ("val",)}


def _weak_method(method: Callable[[], int | None]) -> Callable[[], int | None]:
    """A callable that calls ``method`` while its object lives (and returns ``None`` after)."""
    ref = weakref.WeakMethod(method)

    def call() -> int | None:
        bound = ref()
        return None if bound is None else bound()

    return call


class SurveyDataModule(pl.LightningDataModule):
    """Loaders over ``root/{train,val,test}`` with a choice of reader.

    Args:
        root: the model-input table root (``meta.json`` + split folders).
        columns: columns to load besides ``surveyId`` (any column of the table's ``meta.json`` but ``labels``,
            which becomes ``target``; checked at :meth:`setup`).
        batch_size: rows per batch (each worker's last batch of an epoch may be shorter).
        reader: ``"petastorm"`` (Petastorm ``make_batch_reader``), ``"arrow"`` (pyarrow row groups) or
            ``"memory"`` (the split decoded once into tensors); ``"petastorm-public"`` is Petastorm with its own
            numpy collation (public API only, slower; same batches).
        num_workers: ``DataLoader`` worker processes (row groups / rows are sharded between them, no duplicates;
            persistent: forked once per loader, they learn each new epoch through shared memory).
        seed: seed of the epoch orders.
        shuffle: shuffle the training loader.
        with_target: produce ``target`` from ``labels`` (train/val loaders and :meth:`loader`).
        verify: at setup, decode and check every requested column of every row group (one extra read of the
            split; the ``"memory"`` reader checks them as it loads them, at setup too, whatever ``verify``); with
            ``False`` only footers, schemas and ``surveyId`` are checked.
        shuffle_buffer: rows per shuffle buffer of the row-group readers.
        predict_split: the split :meth:`predict_dataloader` reads.
        subsets: optional views: a split name -> ``(stored split, surveyIds)``; that split then reads only those rows
            of the stored split (the k-fold trainer's fold ``f``: ``{"train": ("train", ids outside f), "val":
            ("train", ids in f)}``). Every row of the view must exist in the stored split (checked at setup).
        pin_memory: the loaders put each batch in page-locked memory, so it is copied to the GPU asynchronously
            (``[train] pin_memory``; without a GPU there is nothing to pin for).

    Raises:
        ValueError: for an unknown reader, column or split, or a non-positive batch size / negative worker count.
    """

    def __init__(
        self,
        root: str | Path,
        columns: Sequence[str] = ("x", "y", "lon", "lat"),
        batch_size: int = 256,
        reader: str = "petastorm",
        num_workers: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        with_target: bool = True,
        verify: bool = True,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
        predict_split: str = "test",
        subsets: Mapping[str, tuple[str, Sequence[int]]] | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if reader not in READER_CHOICES:
            raise ValueError(f"SurveyDataModule: reader={reader!r} is not one of {list(READER_CHOICES)}.")
        if isinstance(columns, str) or "labels" in columns:
            raise ValueError(
                f"SurveyDataModule: columns={columns!r} must be a sequence of column names without 'labels' "
                "(labels become `target` with with_target=True)."
            )
        if batch_size < 1:
            raise ValueError(f"SurveyDataModule: batch_size must be >= 1, got {batch_size}.")
        if num_workers < 0:
            raise ValueError(f"SurveyDataModule: num_workers must be >= 0, got {num_workers}.")
        if predict_split not in SPLITS:
            raise ValueError(f"SurveyDataModule: predict_split={predict_split!r} is not one of {list(SPLITS)}.")
        self.root = Path(root)
        self.columns = tuple(c for c in dict.fromkeys(columns) if c != "surveyId")
        self.batch_size = batch_size
        self.reader = reader
        self.num_workers = num_workers
        self.seed = seed
        self.shuffle = shuffle
        self.with_target = with_target
        self.verify = verify
        self.shuffle_buffer = shuffle_buffer
        self.predict_split = predict_split
        self.pin_memory = bool(pin_memory)
        self.subsets = {k: (str(v[0]), np.unique(np.asarray(v[1], np.int64))) for k, v in (subsets or {}).items()}
        bad = [f"{k} -> {v[0]}" for k, v in self.subsets.items() if k not in SPLITS or v[0] not in SPLITS]
        if bad:
            raise ValueError(
                f"SurveyDataModule: subsets {bad} must map a split of "
                f"{list(SPLITS)} to a stored split of {list(SPLITS)}."
            )
        self._meta: dict[str, Any] | None = None
        self._sources: dict[tuple[str, bool], BatchSource] = {}
        self._loaders: dict[tuple[str, bool, bool], EpochDataLoader] = {}

    # -- metadata ---------------------------------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        """The table's ``meta.json`` (read once)."""
        if self._meta is None:
            self._meta = read_meta(self.root)
        return self._meta

    @property
    def num_classes(self) -> int:
        """C, the number of species columns of ``target``."""
        return int(self.meta["num_classes"])

    # -- setup ------------------------------------------------------------------------------------------------
    def _load_columns(self, with_target: bool) -> tuple[str, ...]:
        return ("surveyId", *self.columns, *(("labels",) if with_target else ()))

    def source(self, split: str, with_target: bool | None = None) -> BatchSource:
        """The reader of ``split`` (scanned, and checked when ``verify``, on first use)."""
        if split not in SPLITS:
            raise ValueError(f"SurveyDataModule: split={split!r} is not one of {list(SPLITS)}.")
        wt = self.with_target if with_target is None else with_target
        key = (split, wt)
        if key not in self._sources:
            stored, keep = self.subsets.get(split, (split, None))
            # the memory reader decodes and checks every row group here anyway: a verifying scan would read it twice
            verify = self.verify and self.reader != "memory"
            info = scan_split(self.root / stored, self.meta, self._load_columns(wt), verify=verify)
            # the memory reader's views of one stored split (a k-fold fold's train and held-out rows) come from one
            # read of it: the views not built yet are built now, each row group decoded once for all of them
            siblings = [s for s, (st, _) in self.subsets.items() if st == stored and (s, wt) not in self._sources]
            if self.reader == "memory" and keep is not None and len(siblings) > 1:
                views = MemorySource.views(info, {s: self.subsets[s][1] for s in siblings})
                for s, src in views.items():
                    self._add_source(s, wt, src, info)
            else:
                self._add_source(split, wt, make_source(self.reader, info, self.shuffle_buffer, keep=keep), info)
        return self._sources[key]

    def _add_source(self, split: str, wt: bool, src: BatchSource, info: Any) -> None:
        """Check that a view holds every surveyId it names, log the reader and keep it as ``split``'s source."""
        stored, keep = self.subsets.get(split, (split, None))
        if keep is not None:
            n = src.worker_rows(EpochPlan(0, self.seed, False, self.batch_size))
            if n != len(keep):
                raise ValueError(
                    f"SurveyDataModule: the {split!r} view names {len(keep)} surveyIds but {n} of them are "
                    f"rows of {self.root / stored}; build the view from that split's surveyIds."
                )
        self._sources[(split, wt)] = src
        log.info(
            "%s: %s reader over %d rows in %d files%s",
            split,
            self.reader,
            info.num_rows,
            len(info.files),
            "" if keep is None else f" ({len(keep)} of them: a view of {stored!r})",
        )

    def setup(self, stage: str | None = None) -> None:
        """Scan and check the splits ``stage`` reads ("fit": train + val; "predict": ``predict_split``)."""
        known = [c for c in self.meta["columns"] if c != "labels"]
        unknown = [c for c in self.columns if c not in known]
        if unknown:
            raise ValueError(
                f"SurveyDataModule: column(s) {unknown} are not in {self.root / 'meta.json'} (columns: {known}); build "
                "the model inputs with the feature sets that provide them (ModelInputs features=[...]) or drop them."
            )
        if stage == "predict":
            self.source(self.predict_split, with_target=False)
            return
        for split in STAGE_SPLITS.get(stage or "fit", ()):  # other stages: their loaders scan on first use
            self.source(split)

    # -- loaders ----------------------------------------------------------------------------------------------
    def _epoch(self) -> int | None:
        """The epoch the trainer is about to run (``None`` without a trainer).

        This is the number Lightning itself hands to samplers (``set_epoch``): ``fit_loop.epoch_progress.current
        .processed``. It equals ``trainer.current_epoch`` at every epoch start, and it is already right when a run
        resumes from an end-of-epoch checkpoint, where Lightning creates the train iterator before it bumps
        ``current_epoch``.
        """
        trainer = self.trainer
        if trainer is None:
            return None
        try:
            return int(trainer.fit_loop.epoch_progress.current.processed)
        except AttributeError:  # not a full Trainer (or another loop layout): its current_epoch
            return int(trainer.current_epoch)

    def _batches_done(self) -> int | None:
        """The training batches of the current epoch the trainer has finished (``None`` without a trainer): what a
        checkpoint written now records as the train loader's position (Lightning calls ``state_dict`` then)."""
        trainer = self.trainer
        if trainer is None:
            return None
        try:
            return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        except AttributeError:  # not a full Trainer: the loader counts what it handed out
            return None

    def loader(
        self, split: str, shuffle: bool = False, with_target: bool | None = None, equal_shards: bool = False
    ) -> EpochDataLoader:
        """A loader over any split; with ``shuffle`` its order follows the epoch (see the module docstring).

        Args:
            split: "train", "val" or "test".
            shuffle: shuffle (deterministic in ``seed`` and the epoch).
            with_target: override the module's ``with_target`` for this loader.
            equal_shards: under DDP every rank yields the same number of batches (the training loader; see
                :class:`~glc.loaders.readers.SurveyIterableDataset`).

        Returns:
            An :class:`~glc.loaders.readers.EpochDataLoader` (``batch_size=None``: batches come from the reader).
        """
        wt = self.with_target if with_target is None else with_target
        key = (split, shuffle, wt, equal_shards)
        if key not in self._loaders:
            dataset = SurveyIterableDataset(
                self.source(split, wt),
                self.batch_size,
                shuffle,
                self.seed,
                self.num_classes,
                wt,
                self.num_workers,
                equal_shards=equal_shards,
            )
            self._loaders[key] = EpochDataLoader(
                dataset,
                epoch_fn=_weak_method(self._epoch),  # no loader -> data module reference cycle
                progress_fn=_weak_method(self._batches_done),
                num_workers=self.num_workers,
                batch_size=None,
                persistent_workers=self.num_workers > 0,
                pin_memory=self.pin_memory,
            )
        return self._loaders[key]

    def teardown(self, stage: str | None = None) -> None:
        """Stop the loaders' persistent worker processes (Lightning calls this at the end of fit/predict)."""
        for loader in self._loaders.values():
            loader.shutdown()

    def train_dataloader(self) -> EpochDataLoader:
        """The training split, shuffled when ``shuffle`` (a new deterministic order every epoch)."""
        return self.loader("train", shuffle=self.shuffle, equal_shards=True)

    def val_dataloader(self) -> EpochDataLoader:
        """The validation split (spatial blocks), in stored order."""
        return self.loader("val")

    def predict_dataloader(self) -> EpochDataLoader:
        """``predict_split`` in stored order, without ``target`` (test rows have no labels)."""
        return self.loader(self.predict_split, with_target=False)

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints so a resumed run can check it reads the same data the same way."""
        return {"seed": self.seed, "reader": self.reader, "batch_size": self.batch_size, "root": str(self.root)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Warn when a checkpoint was written with another seed or batch size (the order will differ)."""
        for key in ("seed", "batch_size", "reader"):
            if key in state_dict and state_dict[key] != getattr(self, key):
                log.warning(
                    "resuming with %s=%r but the checkpoint was written with %s=%r: the data order differs",
                    key,
                    getattr(self, key),
                    key,
                    state_dict[key],
                )
