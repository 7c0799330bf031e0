"""Data for the self-supervised encoders: the sites with a tile, their roles, and the batches each objective needs.

:class:`PretrainData` holds, for every survey with a tile (PA train and test; presence-only sites when a tile
artifact has them), its ``surveyId``, **role** (``train``: pretraining anchors/pairs; ``val``: the experiment's
spatial validation hold-out; ``test``: the test surveys — ``val`` and ``test`` are the held-out sites), EPSG:3035
x/y, lon/lat, its DCT tile ``[C, k, k]`` and optional cube series, plus the neighbour table of the triplet
objective. It is built from artifact folders with pandas/pyarrow only (:func:`pretrain_data`), and saved to / loaded
from one ``.npz`` file (:meth:`PretrainData.save`, :meth:`PretrainData.load`) so a GPU machine without Spark can
pretrain from a carried file.

:class:`PretrainDataModule` serves the objective's batches (lookup table :data:`BATCHES`):

* ``triplet``: each epoch samples one triplet per training anchor from the **training** pool (neighbour and
  distant sites are training sites too; :mod:`glc.features.triplets`), seeded by ``(seed, epoch)``; validation is a
  fixed set of ``val_triplets`` triplets whose anchors are held-out sites (neighbour/distant from all sites);
* ``clip``: shuffled ``(tile, lon, lat[, cubes])`` pairs of the training sites; validation: the held-out sites in a
  fixed order (so the CLIP loss is comparable across epochs).

Batches are dicts of tensors; ``tile`` keys hold ``[B, C, k, k]`` float32 planes (``anchor``/``neighbour``/
``distant`` for triplets).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glc.features.neighbours import NeighbourTable
from glc.features.triplets import Triplets, build_pool

log = logging.getLogger(__name__)

__all__ = ["BATCHES", "ROLES", "PretrainData", "PretrainDataModule", "pretrain_data"]

ROLES = ("train", "val", "test")


@dataclass
class PretrainData:
    """Sites with a tile (see the module docstring). Arrays are aligned by row."""

    ids: np.ndarray
    role: np.ndarray
    x: np.ndarray
    y: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    tiles: np.ndarray
    cubes: dict[str, np.ndarray] = field(default_factory=dict)
    table: NeighbourTable | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name in ("role", "x", "y", "lon", "lat", "tiles", *self.cubes):
            arr = self.cubes[name] if name in self.cubes else getattr(self, name)
            if len(arr) != n:
                raise ValueError(f"PretrainData: {name} has {len(arr)} rows, ids has {n}")
        if self.tiles.ndim != 4 or self.tiles.shape[2] != self.tiles.shape[3]:
            raise ValueError(f"PretrainData: tiles must be [n, C, k, k], got {self.tiles.shape}")
        bad = sorted(set(np.unique(self.role)) - set(ROLES))
        if bad:
            raise ValueError(f"PretrainData: unknown role(s) {bad}; roles are {ROLES}")
        finite = np.isfinite(self.tiles.reshape(n, -1)).all(axis=1)
        if not finite.all():
            raise ValueError(
                f"PretrainData: {int((~finite).sum())} tile(s) with non-finite values "
                f"(e.g. survey {int(self.ids[~finite][0])}); rebuild the tile artifact"
            )
        if (self.role == "train").sum() < 2:
            raise ValueError("PretrainData: fewer than 2 training sites with a tile; nothing to pretrain on")

    def __len__(self) -> int:
        return len(self.ids)

    def mask(self, *roles: str) -> np.ndarray:
        """Rows whose role is one of ``roles``."""
        return np.isin(self.role, roles)

    def meta(self) -> dict[str, Any]:
        """Shapes and train-role per-element statistics the encoder builders read (``tile_shape``, ``tile_mean``,
        ``tile_std``, and ``<cube>_shape/_mean/_std``); JSON-able."""
        tr = self.mask("train")
        out: dict[str, Any] = {"n_sites": len(self), "roles": {r: int((self.role == r).sum()) for r in ROLES}}
        for name, arr in (("tile", self.tiles), *self.cubes.items()):
            a = arr[tr].astype(np.float64)
            std = a.std(axis=0)
            std = np.where(std > 1e-6 * np.maximum(1.0, np.abs(a.mean(axis=0))), std, 1.0)
            out[f"{name}_shape"] = list(arr.shape[1:])
            out[f"{name}_mean"] = a.mean(axis=0).astype(np.float32).tolist()
            out[f"{name}_std"] = std.astype(np.float32).tolist()
        return out

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """One compressed ``.npz`` (atomic: temp + rename)."""
        import os

        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "ids": self.ids,
            "role": self.role.astype("U5"),
            "x": self.x,
            "y": self.y,
            "lon": self.lon,
            "lat": self.lat,
            "tiles": self.tiles,
            "counts": np.asarray(json.dumps(self.counts)),
        }
        arrays.update({f"cube__{k}": v for k, v in self.cubes.items()})
        if self.table is not None:
            arrays.update(
                nbr_query=self.table.query_ids,
                nbr_indptr=self.table.indptr,
                nbr_ids=self.table.nbr_ids,
                nbr_dist=self.table.nbr_dist_km,
            )
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PretrainData:
        """Inverse of :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            table = None
            if "nbr_query" in z:
                table = NeighbourTable(z["nbr_query"], z["nbr_indptr"], z["nbr_ids"], z["nbr_dist"])
            cubes = {k.removeprefix("cube__"): z[k] for k in z.files if k.startswith("cube__")}
            return cls(
                z["ids"],
                z["role"].astype(str),
                z["x"],
                z["y"],
                z["lon"],
                z["lat"],
                z["tiles"],
                cubes,
                table,
                json.loads(str(z["counts"])),
            )


def _read_parquet(folder: Path, columns: list[str]) -> Any:
    import pandas as pd

    return pd.read_parquet(folder, columns=columns)


def pretrain_data(
    surveys_dir: str | Path,
    tiles: Mapping[str, tuple[str | Path, str, tuple[int, ...]]],
    val_ids: np.ndarray,
    neighbours_dir: str | Path | None = None,
    cubes: Mapping[str, tuple[str | Path, str, tuple[int, ...]]] | None = None,
) -> PretrainData:
    """Assemble :class:`PretrainData` from artifact folders (pandas only).

    Args:
        surveys_dir: a ``SurveyTable`` folder (``surveys/`` parquet: surveyId, split, x, y, lon, lat).
        tiles: ``{feature set: (artifact folder, column, (C, k, k))}`` of the DCT tile sets (``data/`` parquet:
            surveyId + the column as a flat float array), stacked along channels in this order (one ``k`` for all).
        val_ids: the training surveys held out for validation (role ``val``).
        neighbours_dir: a ``Neighbours`` folder (``data/`` parquet) for the triplet objective.
        cubes: optional ``{name: (artifact folder, column, shape)}`` series joined per survey.

    Every survey of the survey table must have a tile (a missing one raises naming it: tiles are never zero-filled);
    neighbour-list entries without a tile (e.g. presence-only sites) are counted by the triplet pool.
    """
    surveys = _read_parquet(Path(surveys_dir) / "surveys", ["surveyId", "split", "x", "y", "lon", "lat"]).sort_values(
        "surveyId"
    )
    if not tiles:
        raise ValueError("pretrain_data: name at least one tile feature set")
    if len({tuple(shape[1:]) for _, _, shape in tiles.values()}) != 1:
        raise ValueError(f"pretrain_data: tile sets must share k, got {[tuple(v[2]) for v in tiles.values()]}")
    merged = surveys.reset_index(drop=True)
    n = len(merged)
    planes = []
    for name, (folder, col, shape) in tiles.items():
        t = _read_parquet(Path(folder) / "data", ["surveyId", col]).set_index("surveyId")[col]
        got = t.reindex(merged["surveyId"].to_numpy())
        missing = got.isna().to_numpy()
        if missing.any():
            raise ValueError(
                f"{folder}: {int(missing.sum())} survey(s) have no {name} tile (e.g. surveyId "
                f"{int(merged['surveyId'][missing].iloc[0])}); rebuild the tile artifact (a survey quarantined by "
                "--skip-bad-inputs has no tile and cannot be pretrained on)"
            )
        arr = np.stack(got.to_numpy()).astype(np.float32)
        if arr.shape[1] != int(np.prod(shape)):
            raise ValueError(f"{folder}: column {col!r} holds {arr.shape[1]} values per row, expected {tuple(shape)}")
        planes.append(arr.reshape(n, *shape))
    arr = np.concatenate(planes, axis=1)
    role = np.where(merged["split"].to_numpy() == "test", "test", "train").astype("U5")
    ids = merged["surveyId"].to_numpy(np.int64)
    role[np.isin(ids, np.asarray(val_ids, np.int64)) & (role == "train")] = "val"
    cube_arrays: dict[str, np.ndarray] = {}
    for name, (folder, col, shape) in (cubes or {}).items():
        c = _read_parquet(Path(folder) / "data", ["surveyId", col]).set_index("surveyId")[col]
        got = c.reindex(ids)
        if got.isna().any():
            raise ValueError(
                f"{folder}: survey {int(ids[got.isna().to_numpy()][0])} has no {col!r} row; rebuild the cube artifact"
            )
        cube_arrays[name] = np.stack(got.to_numpy()).astype(np.float32).reshape(n, *shape)
    table = None
    if neighbours_dir is not None:
        table = NeighbourTable.from_pandas(
            _read_parquet(Path(neighbours_dir) / "data", ["surveyId", "nbr_ids", "nbr_dist_km"])
        )
    return PretrainData(
        ids,
        role,
        merged["x"].to_numpy(np.float64),
        merged["y"].to_numpy(np.float64),
        merged["lon"].to_numpy(np.float64),
        merged["lat"].to_numpy(np.float64),
        arr,
        cube_arrays,
        table,
    )


# ------------------------------------------------------------------------------------------------ batches
def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


class _Batches:
    """An iterable of batch dicts, rebuilt at every ``iter()`` (a new epoch) from ``make(epoch)``."""

    def __init__(self, make: Any, epoch_of: Any) -> None:
        self.make = make
        self.epoch_of = epoch_of
        self._len: int | None = None

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        batches = self.make(int(self.epoch_of()))
        self._len = len(batches)
        return iter(batches)

    def __len__(self) -> int:
        if self._len is None:
            self._len = len(self.make(int(self.epoch_of())))
        return self._len


class PretrainDataModule:
    """Training and validation batches of one objective (a LightningDataModule-like object with
    ``train_dataloader``/``val_dataloader``; the tensors live in memory, the sites are small).

    Args:
        data: the sites.
        objective: a key of :data:`BATCHES`.
        batch_size: rows per batch.
        seed: base seed (epoch ``e`` samples with ``(seed, e)``).
        distant_km: triplet objective: the distant cutoff.
        val_triplets: triplet objective: held-out triplets.
        cube_columns: clip objective: cube series to include.

    ``counts`` (reported in the encoder summary): ``all_*`` are the pool of every site (``all_neighbour_without_tile``:
    neighbour-list entries with no tile, e.g. presence-only sites — resampled); ``train_*`` the training pool, where
    a held-out neighbour also counts as "without tile" (training triplets never use held-out sites).
    """

    def __init__(
        self,
        data: PretrainData,
        objective: str,
        batch_size: int,
        seed: int,
        distant_km: float = 300.0,
        val_triplets: int = 4096,
        cube_columns: tuple[str, ...] = (),
    ) -> None:
        if objective not in BATCHES:
            raise KeyError(f"objective {objective!r} has no batches; known: {sorted(BATCHES)}")
        self.data = data
        self.objective = objective
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.distant_km = float(distant_km)
        self.val_triplets = int(val_triplets)
        self.cube_columns = tuple(cube_columns)
        self.epoch = 0
        self.tiles = _tensor(data.tiles)
        self.counts: dict[str, int] = dict(data.counts)
        self._val: list[dict[str, torch.Tensor]] | None = None
        if objective == "triplet":
            if data.table is None:
                raise ValueError("the triplet objective needs a neighbour table (PretrainData.table)")
            train = data.mask("train")
            self.pool_all = build_pool(data.ids, (data.x, data.y), data.table)
            self.pool_train = build_pool(data.ids[train], (data.x[train], data.y[train]), data.table)
            self.train_rows = np.flatnonzero(train)  # pool_train index -> data row
            self.counts.update({f"all_{k}": v for k, v in self.pool_all.counts.items()})
            self.counts.update({f"train_{k}": v for k, v in self.pool_train.counts.items()})
            if self.counts["all_neighbour_without_tile"]:
                log.info(
                    "triplets: %d neighbour-list entries have no tile (counted, resampled among the others)",
                    self.counts["all_neighbour_without_tile"],
                )

    # Lightning hooks (the module reads these through the trainer)
    def set_epoch(self, epoch: int) -> None:
        """Called by the module at each training epoch start."""
        self.epoch = int(epoch)

    def train_dataloader(self) -> _Batches:
        """This epoch's training batches."""
        return _Batches(lambda e: BATCHES[self.objective][0](self, e), lambda: self.epoch)

    def val_batches(self) -> list[dict[str, torch.Tensor]]:
        """The fixed validation batches (built once)."""
        if self._val is None:
            self._val = BATCHES[self.objective][1](self)
        return self._val

    def val_dataloader(self) -> _Batches:
        """The fixed validation batches as one loader."""
        return _Batches(lambda e: self.val_batches(), lambda: 0)

    def state_dict(self) -> dict[str, Any]:
        """Nothing to resume beyond the epoch (the trainer's)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """See :meth:`state_dict`."""

    # ------------------------------------------------------------------ helpers
    def rng(self, epoch: int, slot: int = 0) -> np.random.Generator:
        """The generator of ``(seed, epoch, slot)``."""
        return np.random.default_rng([self.seed, int(epoch), int(slot)])

    def triplet_batches(
        self, t: Triplets, rows: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> list[dict[str, torch.Tensor]]:
        """Batches of ``anchor``/``neighbour``/``distant`` planes for data rows ``rows``."""
        out = []
        for s in range(0, len(t), self.batch_size):
            sl = slice(s, s + self.batch_size)
            out.append({k: self.tiles[_tensor(r[sl])] for k, r in zip(("anchor", "neighbour", "distant"), rows)})
        return out

    def pair_batches(self, rows: np.ndarray) -> list[dict[str, torch.Tensor]]:
        """Batches of ``tile``, ``lon``, ``lat`` (+ cubes) for data rows ``rows``."""
        d = self.data
        out = []
        for s in range(0, len(rows), self.batch_size):
            r = rows[s : s + self.batch_size]
            if len(r) < 2:  # a contrastive batch needs a negative; the last single row is dropped (counted)
                self.counts["pairs_dropped_last_batch"] = self.counts.get("pairs_dropped_last_batch", 0) + len(r)
                continue
            b = {"tile": self.tiles[_tensor(r)], "lon": _tensor(d.lon[r]), "lat": _tensor(d.lat[r])}
            b.update({c: _tensor(d.cubes[c][r]) for c in self.cube_columns})
            out.append(b)
        return out


def _triplet_train(dm: PretrainDataModule, epoch: int) -> list[dict[str, torch.Tensor]]:
    rng = dm.rng(epoch)
    pool = dm.pool_train
    anchors = rng.permutation(len(pool))
    t = pool.sample(anchors, rng, dm.distant_km)
    m = dm.train_rows
    return dm.triplet_batches(t, (m[t.anchor], m[t.neighbour], m[t.distant]))


def _triplet_val(dm: PretrainDataModule) -> list[dict[str, torch.Tensor]]:
    rng = np.random.default_rng([dm.seed, 10_007])
    held = np.flatnonzero(dm.data.mask("val", "test"))
    if not len(held):
        raise ValueError("no held-out site (roles val/test) for the triplet validation")
    anchors = rng.choice(held, size=dm.val_triplets, replace=len(held) < dm.val_triplets)
    t = dm.pool_all.sample(anchors, rng, dm.distant_km)
    dm.counts["val_triplets"] = len(t)
    return dm.triplet_batches(t, (t.anchor, t.neighbour, t.distant))


def _clip_train(dm: PretrainDataModule, epoch: int) -> list[dict[str, torch.Tensor]]:
    rows = np.flatnonzero(dm.data.mask("train"))
    return dm.pair_batches(dm.rng(epoch).permutation(rows))


def _clip_val(dm: PretrainDataModule) -> list[dict[str, torch.Tensor]]:
    rows = np.flatnonzero(dm.data.mask("val", "test"))
    return dm.pair_batches(np.random.default_rng([dm.seed, 10_009]).permutation(rows))


#: objective -> (training batches of an epoch, fixed validation batches).
BATCHES: dict[str, tuple[Any, Any]] = {
    "triplet": (_triplet_train, _triplet_val),
    "clip": (_clip_train, _clip_val),
}
