"""Three readers of a model-input split behind one interface, and the torch ``IterableDataset`` on top of them.

A reader is a :class:`BatchSource`: given an :class:`EpochPlan` (epoch, seed, shuffle, batch size, and which
worker of how many) it yields batches of numpy columns of at most ``batch_size`` rows; :func:`to_torch_batch`
turns one into the ``dict[str, torch.Tensor]`` of the loader contract (``labels`` -> multi-hot ``target``).

* :class:`PetastormSource` -- ``petastorm.make_batch_reader`` over the split's part files (``file://`` URLs).
* :class:`ArrowSource` -- the same row groups read directly with ``pyarrow.parquet``.
* :class:`MemorySource` -- the whole split decoded once into torch tensors; batches index a permutation.

What is shuffled, exactly (``shuffle=True``; all randomness comes from numpy ``Generator`` objects seeded with
``(seed, epoch)``, never from Petastorm, torch or global state, so an epoch's order depends only on
``(seed, epoch, num_workers)``):

* **Petastorm and Arrow** (identical output, batch for batch): the *part files* are read in the order
  ``default_rng([seed, epoch]).permutation(n_files)``; inside a file its row groups keep their stored order. This
  row-group sequence is dealt round-robin to the loader workers (row group ``i`` of the sequence goes to worker
  ``i % num_workers``). Each worker fills a buffer with whole row groups until it holds ``shuffle_buffer`` rows,
  permutes the buffer's rows with ``default_rng([seed, epoch, 1 + worker])``, emits full batches and keeps the
  remainder (< ``batch_size`` rows) for the next fill; at the end of its row groups it emits the rest, the last
  batch possibly short. Without shuffling the files are read in name order and rows are only re-batched.
  (Files, not row groups, are permuted because Petastorm reads the row groups of one file consecutively; Spark
  writes one row group per part file for tables of this size, so the two coincide in production.)
* **Memory**: all rows are permuted with ``default_rng([seed, epoch])``; worker ``w`` takes positions
  ``w, w + W, ...`` of the permutation and slices them into batches.

Every reader visits each row of the split exactly once per epoch, with any number of workers (``num_workers`` of
the ``DataLoader``; row groups/rows are sharded by ``torch.utils.data.get_worker_info()``). Each worker's last
batch of an epoch may be short, so with W > 1 workers the row-group readers yield between ``ceil(N / B)`` and
``ceil(N / B) + W - 1`` batches depending on the epoch; ``len()`` reports that upper bound (Lightning reads
``len()`` once and would otherwise cut later epochs short; an epoch that ends earlier simply stops). Under DDP
(``torch.distributed``, :mod:`glc.training.ddp`) every DataLoader worker of every rank reads its own shard, the
training loader yields the same number of batches on every rank (``equal_shards``), and ``len()`` is this rank's
exact count in the coming epoch.

Petastorm configuration (measured with ``bench/loader.py``): ``make_batch_reader`` with
``reader_pool_type="thread"``, ``workers_count=1``, ``shuffle_row_groups=False`` (our file order) and, per
DataLoader worker, Petastorm's ``cur_shard``/``shard_count`` (which deal row groups round-robin like ours). More
pool threads did not read faster (Petastorm's collation of list columns holds the GIL), and with one thread its
results queue is FIFO, which keeps the ventilation order and makes the output exact; ``"process"`` pools only
move the decode, and ``"dummy"`` was slower. Parallelism comes from ``DataLoader`` worker processes instead
(persistent, each with its own Petastorm reader). The largest cost was Petastorm's own numpy collation (a
per-row ``np.vstack`` for each list column, ~60 % of its time): by default the Arrow tables Petastorm decoded are
collated with one vectorised reshape instead (:class:`PetastormSource` ``collate``), and Petastorm's batches are
re-batched to exactly ``batch_size`` rows in our shuffle buffer.
Every batch Petastorm returns is identified (first ``surveyId`` and row count) and must be the next row group of
the plan, so a change in Petastorm's ordering raises instead of silently changing the data order. Petastorm
0.13.1's pools can also *end a read early* (a check-then-act race in ``ThreadPool.get_results``; measured: often
on small tables): the short read is detected the same way and the missing row groups are re-read (see
:class:`PetastormSource`), so an epoch never silently loses rows.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import IterableDataset, get_worker_info

from glc.data.errors import DataError
from glc.loaders.tables import Piece, SplitInfo, check_batch, check_list_width, read_piece

log = logging.getLogger(__name__)

# Petastorm 0.13 drives pyarrow's legacy ParquetDataset, which emits FutureWarnings on every read (from its pool
# threads, so a local catch_warnings cannot silence them).
warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\.|$)")

Batch = dict[str, np.ndarray]
#: What a reader yields: numpy columns (row-group readers) or tensors (memory reader).
AnyBatch = dict[str, Any]
#: Names accepted for ``reader``.
READERS: tuple[str, ...] = ("petastorm", "arrow", "memory")
#: Every accepted ``reader``: the three above plus Petastorm with its own (slower) numpy collation.
READER_CHOICES: tuple[str, ...] = (*READERS, "petastorm-public")
#: Default shuffle buffer (rows) of the row-group readers.
DEFAULT_SHUFFLE_BUFFER = 32_768


@dataclass(frozen=True)
class EpochPlan:
    """Which rows one worker reads in one epoch, and how.

    Attributes:
        epoch: the epoch number (the trainer's ``current_epoch``).
        seed: the data module's seed.
        shuffle: permute the order (see the module docstring for what exactly).
        batch_size: rows per batch (the last batch of a worker may be shorter).
        worker: this worker's index among ``num_workers``.
        num_workers: the number of workers sharing the epoch (at least 1).
    """

    epoch: int
    seed: int
    shuffle: bool
    batch_size: int
    worker: int = 0
    num_workers: int = 1


@runtime_checkable
class BatchSource(Protocol):
    """One split, readable batch by batch; the interface the three readers share."""

    info: SplitInfo

    def batches(self, plan: EpochPlan) -> Iterator[AnyBatch]:
        """Yield this worker's batches for the epoch: numpy columns, scalars [B], arrays [B, *shape] (``labels``
        int32 [B, L])."""
        ...

    def worker_rows(self, plan: EpochPlan) -> int:
        """How many rows :meth:`batches` yields for ``plan``."""
        ...

    def max_batches(self, batch_size: int, num_workers: int) -> int:
        """An upper bound (exact where the count does not depend on the epoch) of the batches of one epoch."""
        ...


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------------------------
def file_order(info: SplitInfo, plan: EpochPlan) -> list[Path]:
    """The part files in the order the row-group readers read them in ``plan.epoch``."""
    if not plan.shuffle:
        return list(info.files)
    perm = np.random.default_rng([plan.seed, plan.epoch]).permutation(len(info.files))
    return [info.files[i] for i in perm]


def piece_plan(info: SplitInfo, plan: EpochPlan) -> tuple[list[Path], list[Piece]]:
    """The file order of the epoch and the row groups (in read order) that ``plan.worker`` gets.

    Row groups (empty ones included, so positions match Petastorm's sharding) are dealt round-robin.
    """
    files = file_order(info, plan)
    sequence = [p for f in files for p in info.pieces_of(f)]
    return files, sequence[plan.worker :: plan.num_workers]


def _writable(values: np.ndarray) -> np.ndarray:
    """Arrow hands out read-only numpy views; torch wants writable memory (copy only when needed)."""
    return values if values.flags.writeable else values.copy()


def _arrow_to_numpy(table: pa.Table, info: SplitInfo, writable: bool = True) -> Batch:
    """Decode one row group into numpy columns in their batch dtypes and shapes (:meth:`ColumnSpec.batch_dtype`):
    scalars ``[n]`` float32 / int64, arrays ``[n, *shape]`` float32 / int32 / uint8 (binary columns without a copy
    of their bytes). With ``writable=False`` the columns may be read-only views of Arrow's buffers (for a caller
    that copies them anyway)."""
    own: Callable[[np.ndarray], np.ndarray] = _writable if writable else np.asarray
    out: Batch = {}
    n = table.num_rows
    for name in info.columns:
        col = table.column(name)
        spec = info.specs[name]
        if not spec.is_array:
            out[name] = own(_scalar(name, col.to_numpy()))
        elif spec.dtype == "uint8":
            arr = col.combine_chunks()
            offsets = np.frombuffer(arr.buffers()[1], np.int32, count=n + 1, offset=arr.offset * 4)
            data = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
            out[name] = own(data.reshape(n, *spec.shape))
        else:
            values = col.combine_chunks().flatten().to_numpy(zero_copy_only=False)
            out[name] = own(values.reshape(n, *spec.shape).astype(spec.batch_dtype(), copy=False))
    return out


def _scalar(name: str, values: np.ndarray) -> np.ndarray:
    if name == "surveyId" or np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64, copy=False)
    return values.astype(np.float32, copy=False)


def _take(chunk: Batch, index: np.ndarray | slice) -> Batch:
    return {k: v[index] for k, v in chunk.items()}


def _concat(chunks: Sequence[Batch]) -> Batch:
    if len(chunks) == 1:
        return chunks[0]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def rebatch(
    chunks: Iterator[Batch], batch_size: int, rng: np.random.Generator | None, buffer_rows: int
) -> Iterator[Batch]:
    """Turn a stream of row groups into batches of exactly ``batch_size`` rows (the last may be shorter).

    With ``rng`` the rows are shuffled inside a buffer: whole row groups are added until it holds
    ``buffer_rows`` rows (at least one batch), its rows are permuted with ``rng``, every full batch is emitted
    and the remainder stays for the next fill. Without ``rng`` rows keep their order.
    """
    fill = max(buffer_rows, batch_size) if rng is not None else batch_size
    pending: list[Batch] = []
    count = 0

    def drain(final: bool) -> Iterator[Batch]:
        nonlocal pending, count
        buf = _concat(pending)
        if rng is not None:
            buf = _take(buf, rng.permutation(count))
        stop = count if final else count - count % batch_size
        for start in range(0, stop, batch_size):
            yield _take(buf, slice(start, min(start + batch_size, stop)))
        pending = [] if stop == count else [_take(buf, slice(stop, count))]
        count -= stop

    for chunk in chunks:
        n = len(chunk["surveyId"])
        if n == 0:
            continue
        pending.append(chunk)
        count += n
        if count >= fill:
            yield from drain(final=False)
    if count:
        yield from drain(final=True)


def _diagnose(pieces: Sequence[Piece], info: SplitInfo, err: BaseException) -> DataError:
    """Find which of ``pieces`` cannot be read (Petastorm's own errors do not say) and name its file."""
    for piece in pieces:
        if piece.num_rows == 0:
            continue
        try:
            check_batch(read_piece(piece, info.columns), info, f"{piece.path} (row group {piece.row_group})")
        except DataError as found:
            return found
    return DataError(
        f"Petastorm failed while reading split {info.directory} ({type(err).__name__}: {err}); every row group "
        "of this worker re-read cleanly with pyarrow, so the failure is in the reader, not in a file. "
        "Try reader='arrow' to work around it."
    )


# ---------------------------------------------------------------------------------------------------------------
# The three readers
# ---------------------------------------------------------------------------------------------------------------
def _keep_ids(keep: Sequence[int] | np.ndarray | None) -> np.ndarray | None:
    """Sorted unique int64 surveyIds of a row subset (None = every row)."""
    return None if keep is None else np.unique(np.asarray(keep, dtype=np.int64))


class _RowGroupSource:
    """Common part of the two row-group readers: planning, shuffling, an optional row subset and the row count of a
    shard.

    ``keep`` (surveyIds) restricts the split to those rows (a k-fold view of the training split,
    :mod:`glc.training.kfold`): each row group is filtered as it is read, before the shuffle buffer, so batches are
    still exactly ``batch_size`` rows and the order is a function of ``(seed, epoch, num_workers)``.
    """

    def __init__(
        self,
        info: SplitInfo,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
        keep: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        if shuffle_buffer < 1:
            raise ValueError(f"shuffle_buffer must be >= 1 row, got {shuffle_buffer}.")
        self.info = info
        self.shuffle_buffer = shuffle_buffer
        self.keep = _keep_ids(keep)
        self._kept: dict[tuple[Path, int], int] = {}

    def _rows(self, piece: Piece) -> int:
        """Rows of ``piece`` in the subset (all of them without ``keep``; counted once from its surveyIds)."""
        if self.keep is None or not piece.num_rows:
            return piece.num_rows
        key = (piece.path, piece.row_group)
        if key not in self._kept:
            ids = read_piece(piece, ["surveyId"]).column("surveyId").to_numpy()
            self._kept[key] = int(np.isin(ids, self.keep, assume_unique=True).sum())
        return self._kept[key]

    def worker_rows(self, plan: EpochPlan) -> int:
        return sum(self._rows(p) for p in piece_plan(self.info, plan)[1])

    def max_batches(self, batch_size: int, num_workers: int) -> int:
        rows = [self._rows(p) for p in self.info.pieces]
        busy = min(max(1, num_workers), sum(1 for r in rows if r))
        return math.ceil(sum(rows) / batch_size) + max(0, busy - 1)

    def _row_groups(self, plan: EpochPlan) -> Iterator[Batch]:
        raise NotImplementedError

    def _subset(self, chunks: Iterator[Batch]) -> Iterator[Batch]:
        for chunk in chunks:
            mask = np.isin(chunk["surveyId"], self.keep)
            yield chunk if mask.all() else _take(chunk, np.flatnonzero(mask))

    def batches(self, plan: EpochPlan) -> Iterator[Batch]:
        rng = np.random.default_rng([plan.seed, plan.epoch, 1 + plan.worker]) if plan.shuffle else None
        chunks = self._row_groups(plan)
        return rebatch(chunks if self.keep is None else self._subset(chunks), plan.batch_size, rng, self.shuffle_buffer)


class ArrowSource(_RowGroupSource):
    """Reads row groups with ``pyarrow.parquet.ParquetFile.read_row_group`` (the native reader).

    The next row group is read in a background thread while the current one is re-batched and consumed (pyarrow
    decodes without the GIL), the same one-ahead pipelining Petastorm's pool gives.
    """

    def _read(self, piece: Piece) -> pa.Table:
        table = read_piece(piece, self.info.columns)
        if table.num_rows != piece.num_rows:
            raise DataError(
                f"{piece.path} (row group {piece.row_group}): read {table.num_rows} rows, the footer said "
                f"{piece.num_rows}. The file changed since the data module was set up; set it up again."
            )
        return table

    def _row_groups(self, plan: EpochPlan) -> Iterator[Batch]:
        pieces = [p for p in piece_plan(self.info, plan)[1] if p.num_rows]
        if not pieces:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="glc-arrow-read") as pool:
            pending = pool.submit(self._read, pieces[0])
            for nxt in [*pieces[1:], None]:
                table = pending.result()  # re-raises the reader's DataError naming the file
                if nxt is not None:
                    pending = pool.submit(self._read, nxt)
                yield _arrow_to_numpy(table, self.info)


class PetastormSource(_RowGroupSource):
    """Reads row groups with ``petastorm.make_batch_reader`` (see the module docstring for the configuration).

    Petastorm opens, reads and decodes the row groups (thread pool, in our order, sharded by worker). How its
    decoded row groups become numpy columns is ``collate``:

    * ``"arrow"`` (default): the Arrow table Petastorm decoded is taken from its pool (``Reader._workers_pool
      .get_results()``, Petastorm 0.13's internal) and list columns become matrices with one vectorised reshape.
    * ``"petastorm"``: Petastorm's public iterator, whose ``convert_arrow_table_to_numpy_dict`` builds each list
      column with a per-row ``np.vstack``; the same data (tested), measured ~1.4x slower end to end.

    ``"arrow"`` falls back to the public iterator when the reader has no such pool.

    Each row group Petastorm returns is identified (first ``surveyId`` and row count) and must be the next row
    group of the plan. Petastorm 0.13.1's pools can end a read early: ``ThreadPool.get_results`` checks "all
    workers done" and "ventilator completed" at two different moments, so when the ventilator hands out the last
    row groups in between, the reader stops with rows never returned (the same check-then-act race exists in
    ``DummyPool``). Such a silent short read is detected here and the missing row groups are read by a new
    Petastorm reader over their files (row groups of other shards, or already read, are skipped), at most
    ``max_rereads`` times; each re-read is logged and counted in :attr:`rereads`.

    Args:
        info: the scanned split.
        shuffle_buffer: rows per shuffle buffer.
        collate: ``"arrow"`` or ``"petastorm"`` (see above).
        workers_count: Petastorm pool threads (only 1: see the module docstring).
        results_queue_size: row groups Petastorm may decode ahead.
        max_rereads: re-reads allowed per worker and epoch after Petastorm ended early.
    """

    def __init__(
        self,
        info: SplitInfo,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
        collate: str = "arrow",
        workers_count: int = 1,
        results_queue_size: int = 4,
        max_rereads: int = 20,
        keep: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        super().__init__(info, shuffle_buffer, keep)
        if collate not in ("arrow", "petastorm"):
            raise ValueError(f"PetastormSource: collate={collate!r}, expected 'arrow' or 'petastorm'.")
        if workers_count != 1:
            raise ValueError(
                f"PetastormSource: workers_count={workers_count} is not supported: with more than one pool thread "
                "Petastorm returns row groups in completion order, which breaks the exact epoch order. Use "
                "DataLoader workers (num_workers) for parallelism."
            )
        import petastorm  # noqa: F401 -- imported here, in the parent, so forked DataLoader workers inherit it

        self.collate = collate
        self.workers_count = workers_count
        self.results_queue_size = results_queue_size
        self.max_rereads = max_rereads
        self.rereads = 0  # short reads repaired by this process (for logs and tests)
        self._by_id = {p.first_id: p for p in info.pieces if p.num_rows}

    def _open(self, files: Sequence[Path], shard: tuple[int, int] | None) -> Any:
        from petastorm import make_batch_reader

        return make_batch_reader(
            # not Path.as_uri(): Petastorm does not decode its percent-escapes ('+' -> '%2B' made
            # "model_inputs/...-raster_climate+raster_landcover" unreadable); the plain absolute path reads.
            ["file://" + str(p.resolve()) for p in files],
            schema_fields=[re.escape(c) + "$" for c in self.info.columns],  # exact names (regexes to Petastorm)
            reader_pool_type="thread",
            workers_count=self.workers_count,
            results_queue_size=self.results_queue_size,
            shuffle_row_groups=False,  # our file order, see piece_plan
            shuffle_rows=False,  # rows are shuffled in our buffer
            seed=None,  # a seed would also shuffle Petastorm's sharding
            num_epochs=1,
            cur_shard=shard[0] if shard else None,
            shard_count=shard[1] if shard else None,
        )

    def _next(self, reader: Any) -> pa.Table | dict[str, np.ndarray]:
        """The next decoded row group (raises ``StopIteration`` at the end)."""
        pool = getattr(reader, "_workers_pool", None) if self.collate == "arrow" else None
        if pool is None:
            return next(reader)._asdict()
        from petastorm.workers_pool import EmptyResultError

        try:
            result = pool.get_results()
        except EmptyResultError:
            raise StopIteration from None
        return result if isinstance(result, (pa.Table, dict)) else dict(result._asdict())

    def _identify(self, raw: pa.Table | dict[str, np.ndarray]) -> tuple[Piece | None, str]:
        if isinstance(raw, pa.Table):
            n, first = raw.num_rows, (raw.column("surveyId")[0].as_py() if raw.num_rows else None)
        else:
            n, first = len(raw["surveyId"]), (int(raw["surveyId"][0]) if len(raw["surveyId"]) else None)
        piece = self._by_id.get(first) if first is not None else None
        return (piece if piece is not None and piece.num_rows == n else None), f"{n} rows from surveyId {first}"

    def _row_groups(self, plan: EpochPlan) -> Iterator[Batch]:
        files, pieces = piece_plan(self.info, plan)
        expected = [p for p in pieces if p.num_rows > 0]
        n_sequence = sum(len(self.info.pieces_of(f)) for f in files)
        done = 0
        for attempt in range(self.max_rereads + 1):
            if done == len(expected):
                return
            remaining = expected[done:]
            if attempt == 0 and n_sequence >= plan.num_workers:
                # Petastorm deals row groups round-robin over the same sequence (file order x stored order).
                read_files, shard = files, ((plan.worker, plan.num_workers) if plan.num_workers > 1 else None)
            else:
                read_files, shard = list(dict.fromkeys(p.path for p in remaining)), None
                if attempt:
                    self.rereads += 1
                    log.warning(
                        "Petastorm ended a read of %s after %d of %d row groups (petastorm 0.13.1 pool race); "
                        "re-reading the %d missing row groups from %d file(s)",
                        self.info.directory,
                        done,
                        len(expected),
                        len(remaining),
                        len(read_files),
                    )
            wanted = set(remaining)
            try:
                reader = self._open(read_files, shard)
            except Exception as err:
                raise _diagnose(remaining, self.info, err) from err
            try:
                while done < len(expected):
                    try:
                        raw = self._next(reader)
                    except StopIteration:
                        break
                    except Exception as err:
                        raise _diagnose(expected[done:], self.info, err) from err
                    piece, got = self._identify(raw)
                    if piece is expected[done]:
                        yield self._convert(raw, piece)
                        done += 1
                    elif piece is None or piece in wanted or shard is not None:
                        want = expected[done]
                        raise DataError(
                            f"Petastorm returned a row group ({got}) where {want.path} row group {want.row_group} "
                            f"({want.num_rows} rows from surveyId {want.first_id}) was expected: it no longer reads "
                            "in ventilation order, or the files changed since setup. Set the data module up again, "
                            "or use reader='arrow'."
                        )
                    # else: a row group of another shard, or one already read, in a file being re-read: skip it
            finally:
                reader.stop()
                reader.join()
        if done < len(expected):
            raise DataError(
                f"Petastorm kept ending early: {len(expected) - done} row groups of {self.info.directory} were "
                f"still unread after {self.max_rereads} re-reads. Use reader='arrow'."
            )

    def _convert(self, raw: pa.Table | dict[str, np.ndarray], piece: Piece) -> Batch:
        where = f"{piece.path} (row group {piece.row_group})"
        if isinstance(raw, pa.Table):
            for name in self.info.columns:
                if self.info.specs[name].is_array:
                    check_list_width(raw.column(name), name, self.info.width(name), where)
            return _arrow_to_numpy(raw, self.info)
        out: Batch = {}
        for name in self.info.columns:
            values = raw[name]
            spec = self.info.specs[name]
            if spec.is_array:
                if spec.dtype == "uint8":  # Petastorm hands binary cells out as an object array of bytes
                    values = (
                        np.frombuffer(b"".join(values), np.uint8).reshape(len(values), -1)
                        if len(values)
                        else np.zeros((0, spec.width), np.uint8)
                    )
                values = (
                    np.asarray(values).reshape(len(values), -1)
                    if np.ndim(values) >= 2 or spec.dtype == "uint8"
                    else values
                )
                if values.ndim != 2 or values.shape[1] != spec.width:
                    raise DataError(
                        f"{where}: column {name!r} has shape {values.shape}, expected [{piece.num_rows}, {spec.width}] "
                        "(meta.json)."
                    )
                out[name] = _writable(values.reshape(len(values), *spec.shape).astype(spec.batch_dtype(), copy=False))
            else:
                out[name] = _writable(_scalar(name, values))
        return out


def _decode_split(
    info: SplitInfo, keeps: Sequence[np.ndarray | None], threads: int | None = None
) -> list[dict[str, torch.Tensor]]:
    """The tensors of each row subset of ``keeps`` (sorted unique surveyIds; ``None``: every row), in stored order,
    from one read of the split: row groups are read, checked (:func:`check_batch`) and decoded on ``threads`` threads
    (all cores by default: pyarrow and numpy work outside the GIL), and each subset's rows of a row group land in its
    tensors with one copy."""
    pieces = [p for p in info.pieces if p.num_rows]

    def decode(piece: Piece) -> tuple[Batch, list[np.ndarray | None]]:
        table = read_piece(piece, info.columns)
        check_batch(table, info, f"{piece.path} (row group {piece.row_group})")
        chunk = _arrow_to_numpy(table, info, writable=False)  # views: copied once, into the tensors below
        return chunk, [None if k is None else np.isin(chunk["surveyId"], k) for k in keeps]

    workers = max(1, min(threads or os.cpu_count() or 1, len(pieces)))
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(decode, pieces))
        first = parts[0][0] if parts else {}  # the columns' dtypes and row shapes
        outs: list[tuple[np.ndarray, Batch]] = []
        for j in range(len(keeps)):
            counts = [len(c["surveyId"]) if rows[j] is None else int(rows[j].sum()) for c, rows in parts]
            starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
            outs.append((starts, {k: np.empty((int(starts[-1]), *v.shape[1:]), v.dtype) for k, v in first.items()}))

        def place(i: int) -> None:
            chunk, rows = parts[i]
            for (starts, merged), mask in zip(outs, rows):
                for k, v in chunk.items():
                    dest = merged[k][starts[i] : starts[i + 1]]
                    if mask is None:
                        dest[...] = v
                    else:
                        np.compress(mask, v, axis=0, out=dest)

        list(pool.map(place, range(len(parts))))
    parts.clear()  # the Arrow buffers go now, not when the sources do
    return [{k: torch.from_numpy(v) for k, v in merged.items()} for _, merged in outs]


class MemorySource:
    """The whole split decoded once into torch tensors (features in their batch dtypes, labels int32 [N, L]);
    ``keep`` (surveyIds) keeps only those rows (a k-fold view); :meth:`views` builds several views from one read.

    Row groups are read, checked (:func:`check_batch`) and decoded on ``threads`` threads (all cores by default:
    pyarrow and numpy work outside the GIL), and each lands in the tensors with one copy, in the stored order.
    """

    def __init__(
        self, info: SplitInfo, keep: Sequence[int] | np.ndarray | None = None, threads: int | None = None
    ) -> None:
        self._set(info, _decode_split(info, [_keep_ids(keep)], threads)[0])

    def _set(self, info: SplitInfo, tensors: dict[str, torch.Tensor]) -> None:
        self.info = info
        self.tensors: dict[str, torch.Tensor] = tensors
        self.num_rows = int(tensors["surveyId"].shape[0]) if "surveyId" in tensors else 0

    @classmethod
    def views(
        cls, info: SplitInfo, keeps: Mapping[str, Sequence[int] | np.ndarray], threads: int | None = None
    ) -> dict[str, MemorySource]:
        """A source per named row subset (surveyIds) of the split, from one read of it: the k-fold trainer's training
        and held-out views of the train split (:class:`~glc.loaders.datamodule.SurveyDataModule`). Each holds the
        tensors ``MemorySource(info, keep)`` would, without reading and decoding the split once per view."""
        names = list(keeps)
        out: dict[str, MemorySource] = {}
        for name, tensors in zip(names, _decode_split(info, [_keep_ids(keeps[n]) for n in names], threads)):
            out[name] = cls.__new__(cls)
            out[name]._set(info, tensors)
        return out

    def _positions(self, plan: EpochPlan) -> torch.Tensor:
        n = self.num_rows
        if plan.shuffle:
            order = torch.from_numpy(np.random.default_rng([plan.seed, plan.epoch]).permutation(n))
        else:
            order = torch.arange(n)
        return order[plan.worker :: plan.num_workers]

    def worker_rows(self, plan: EpochPlan) -> int:
        return len(range(plan.worker, self.num_rows, plan.num_workers))

    def max_batches(self, batch_size: int, num_workers: int) -> int:
        w = max(1, num_workers)  # rows are dealt by position: the same count every epoch
        return sum(math.ceil(len(range(i, self.num_rows, w)) / batch_size) for i in range(w))

    def batches(self, plan: EpochPlan) -> Iterator[AnyBatch]:
        positions = self._positions(plan)
        for start in range(0, len(positions), plan.batch_size):
            index = positions[start : start + plan.batch_size]
            yield {k: v.index_select(0, index) for k, v in self.tensors.items()}


def make_source(
    reader: str,
    info: SplitInfo,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    keep: Sequence[int] | np.ndarray | None = None,
) -> BatchSource:
    """Build the reader named ``reader`` over a scanned split (only the rows of the surveyIds ``keep``, if given).

    ``reader`` is one of :data:`READER_CHOICES`: "petastorm", "petastorm-public" (Petastorm with its own per-row
    collation, :class:`PetastormSource` ``collate="petastorm"``), "arrow" or "memory".
    """
    if reader == "petastorm":
        return PetastormSource(info, shuffle_buffer, keep=keep)
    if reader == "petastorm-public":
        return PetastormSource(info, shuffle_buffer, collate="petastorm", keep=keep)
    if reader == "arrow":
        return ArrowSource(info, shuffle_buffer, keep=keep)
    if reader == "memory":
        return MemorySource(info, keep=keep)
    raise ValueError(f"unknown reader {reader!r}; expected one of {list(READER_CHOICES)}.")


# ---------------------------------------------------------------------------------------------------------------
# Torch side
# ---------------------------------------------------------------------------------------------------------------
def multi_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Turn padded class indices [B, L] (pad < 0) into a float32 multi-hot matrix [B, C] with one scatter.

    Raises:
        DataError: if an index is >= ``num_classes``.
    """
    labels = labels.to(torch.int64)
    b = labels.shape[0]
    if labels.numel() and int(labels.max()) >= num_classes:
        raise DataError(
            f"label index {int(labels.max())} >= num_classes {num_classes}; the labels column and meta.json disagree."
        )
    valid = labels >= 0
    flat = (labels + torch.arange(b).unsqueeze(1) * num_classes)[valid]
    target = torch.zeros(b * num_classes, dtype=torch.float32)
    target.scatter_(0, flat, 1.0)
    return target.view(b, num_classes)


def to_torch_batch(batch: dict[str, Any], num_classes: int, with_target: bool) -> dict[str, torch.Tensor]:
    """Numpy (or tensor) columns -> the loader contract: ``labels`` becomes ``target`` [B, C] float32."""
    out = {k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(v)) for k, v in batch.items()}
    labels = out.pop("labels", None)
    if with_target:
        if labels is None:
            raise ValueError("with_target=True but the reader did not load the 'labels' column.")
        out["target"] = multi_hot(labels, num_classes)
    return out


def _world() -> tuple[int, int]:
    """(rank, world size) of ``torch.distributed`` (``(0, 1)`` when it is not initialised)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _shard() -> tuple[int, int]:
    """(shard index, number of shards) of the caller: every DataLoader worker of every DDP rank reads its own shard
    (``worker * world_size + rank`` of ``world_size * workers``; ``(0, 1)`` in one plain process). Row groups are
    dealt round-robin over the shards, so with ranks interleaved every rank has rows as soon as there are as many
    row groups as ranks."""
    rank, world = _world()
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return worker * world + rank, world * workers  # ranks interleaved: each rank gets row groups from the start


class SurveyIterableDataset(IterableDataset):
    """Batches of one split from a :class:`BatchSource`; use with ``DataLoader(batch_size=None)``.

    The epoch is read when iteration starts (:attr:`epoch`, set by :class:`EpochDataLoader`, kept in shared
    memory so persistent workers see it too), so the same dataset object serves every epoch.

    Args:
        source: the reader.
        batch_size: rows per batch.
        shuffle: shuffle (see the module docstring).
        seed: the seed of the epoch orders.
        num_classes: C, the width of ``target``.
        with_target: turn ``labels`` into ``target`` (else no target is produced).
        num_workers: DataLoader workers (only used by ``__len__``).
        equal_shards: under DDP (world size > 1), every shard yields the same number of batches, the smallest
            shard's (DDP's gradient all-reduce needs every rank to take the same number of steps; the few rows
            beyond it in the larger shards are left out of that epoch, and a shuffled epoch leaves out others).
            For the training loader; validation reads every row once (its metrics are synced across ranks).
    """

    def __init__(
        self,
        source: BatchSource,
        batch_size: int,
        shuffle: bool,
        seed: int,
        num_classes: int,
        with_target: bool,
        num_workers: int = 0,
        equal_shards: bool = False,
    ) -> None:
        super().__init__()
        self.source = source
        self.equal_shards = equal_shards
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_classes = num_classes
        self.with_target = with_target
        self.num_workers = num_workers
        # The epoch lives in shared memory so that persistent DataLoader workers (forked once) see each new value.
        # (made outside inference mode: a loader first built inside trainer.validate() is iterated in training too)
        with torch.inference_mode(False):
            self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        """The epoch the next iteration reads (set by :class:`EpochDataLoader` before each ``iter()``)."""
        return int(self._epoch)

    @epoch.setter
    def epoch(self, value: int) -> None:
        if int(self._epoch) != int(value):
            with torch.inference_mode(False):
                self._epoch.fill_(int(value))

    def plan(self, worker: int, num_workers: int) -> EpochPlan:
        """The plan of ``worker`` in the current epoch."""
        return EpochPlan(self.epoch, self.seed, self.shuffle, self.batch_size, worker, num_workers)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        shard, shards = _shard()
        batches: Iterator[AnyBatch] = self.source.batches(self.plan(shard, shards))
        if self.equal_shards and _world()[1] > 1:
            batches = itertools.islice(batches, self.shard_batches(shards))
        for raw in batches:
            yield to_torch_batch(raw, self.num_classes, self.with_target)

    def shard_batches(self, shards: int) -> int:
        """The batches every one of ``shards`` shards yields in this epoch with ``equal_shards`` (the smallest's).

        Raises:
            ValueError: a shard has no rows (more DDP ranks x DataLoader workers than row groups).
        """
        counts = [math.ceil(self.source.worker_rows(self.plan(g, shards)) / self.batch_size) for g in range(shards)]
        if min(counts) == 0:
            empty = counts.index(0)
            raise ValueError(
                f"DDP training: shard {empty} of {shards} (ranks x DataLoader workers) of {self.source.info.directory} "
                f"has no rows (batches per shard: {counts}); write the model inputs with more part files or row groups "
                "(ModelInputs --files-per-split), or use fewer devices or num_workers"
            )
        return min(counts)

    def __len__(self) -> int:
        """Batches of one epoch over all DataLoader workers (an upper bound with several workers, see module); under
        DDP the exact count of this rank in the current epoch (Lightning validates when the last of ``len()``
        training batches is reached, so an overstated length would skip validation)."""
        rank, world = _world()
        if world == 1:
            return self.source.max_batches(self.batch_size, self.num_workers)
        workers = max(1, self.num_workers)
        if self.equal_shards:
            return workers * self.shard_batches(world * workers)
        n = sum(
            math.ceil(self.source.worker_rows(self.plan(w * world + rank, world * workers)) / self.batch_size)
            for w in range(workers)
        )
        if n == 0:
            raise ValueError(
                f"DDP: rank {rank} of {world} has no rows of {self.source.info.directory} (fewer row groups than "
                "ranks); write the model inputs with more part files or row groups (ModelInputs --files-per-split), or "
                "use fewer devices"
            )
        return n


class EpochDataLoader(torch.utils.data.DataLoader):
    """A ``DataLoader`` that tells its :class:`SurveyIterableDataset` the epoch each time iteration starts.

    The epoch comes from ``epoch_fn()`` (the data module returns the epoch the attached trainer is about to run)
    or, when that returns ``None`` (no trainer), from a counter of ``iter()`` calls. Because the epoch is read at
    ``iter()`` time, the loader needs no rebuilding between epochs (no ``reload_dataloaders_every_n_epochs``), and a
    run resumed from an end-of-epoch checkpoint before epoch ``e`` reads epoch ``e``'s order.

    **Mid-epoch resume.** The loader is *stateful* in Lightning's sense (``state_dict`` / ``load_state_dict``, saved
    in every checkpoint under the fit loop's ``combined_loader``): its state is the epoch it reads and how many of
    that epoch's batches the trainer has finished (``progress_fn()``, the fit loop's processed-batch count; without
    it, the batches this loader handed out in the current pass). Loaded from a checkpoint taken inside epoch ``e``
    after ``k`` batches, the next ``iter()`` over epoch ``e`` skips the first ``k`` batches of that epoch's order
    (read and dropped, never trained on) and yields the rest, so a run resumed from a mid-epoch ``last.ckpt`` trains
    on exactly the batches the uninterrupted run would have (tested). A state for another epoch, or one that
    counts the whole epoch (an end-of-epoch checkpoint), skips nothing.
    """

    def __init__(
        self,
        dataset: SurveyIterableDataset,
        epoch_fn: Callable[[], int | None] | None = None,
        progress_fn: Callable[[], int | None] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("batch_size", None)
        super().__init__(dataset, **kwargs)
        self.epoch_fn = epoch_fn
        self.progress_fn = progress_fn
        self.iterations = 0
        self.handed_out = 0  # batches yielded by the current pass
        self._resume_at: tuple[int, int] | None = None  # (epoch, batches to skip) from load_state_dict

    def current_epoch(self) -> int:
        """The epoch the next ``iter()`` will read."""
        epoch = self.epoch_fn() if self.epoch_fn is not None else None
        return self.iterations if epoch is None else int(epoch)

    def __iter__(self) -> Any:
        epoch = self.current_epoch()
        self.dataset.epoch = epoch  # type: ignore[attr-defined]
        self.iterations += 1
        skip = 0
        if self._resume_at is not None:
            at_epoch, done = self._resume_at
            self._resume_at = None  # one pass only
            if at_epoch == epoch and 0 < done < len(self):
                skip = done
        self.handed_out = 0
        return self._counted(super().__iter__(), skip)

    def _counted(self, batches: Iterator[Any], skip: int) -> Iterator[Any]:
        if skip:
            log.info(
                "resuming epoch %d of %s after %d finished batches: skipping them",
                self.dataset.epoch,
                self.dataset.source.info.directory,
                skip,
            )  # type: ignore[attr-defined]
            for _ in itertools.islice(batches, skip):
                pass
            self.handed_out = skip
        for batch in batches:
            self.handed_out += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "batches"}``: the epoch being read and the batches of it the trainer has finished."""
        done = self.progress_fn() if self.progress_fn is not None else None
        return {"epoch": int(self.dataset.epoch), "batches": int(self.handed_out if done is None else done)}  # type: ignore[attr-defined]

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Resume the next pass over ``state_dict["epoch"]`` after ``state_dict["batches"]`` batches."""
        try:
            self._resume_at = (int(state_dict["epoch"]), int(state_dict["batches"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"EpochDataLoader.load_state_dict: expected {{'epoch': int, 'batches': int}} (a checkpoint's train "
                f"loader state), got {state_dict!r}; resume from a checkpoint written by this loader or delete it"
            ) from e

    def __len__(self) -> int:
        """The batches of the epoch the next ``iter()`` reads (the dataset's count can depend on the epoch)."""
        self.dataset.epoch = self.current_epoch()  # type: ignore[attr-defined]
        return super().__len__()

    def shutdown(self) -> None:
        """Stop persistent worker processes now (they are started again by the next ``iter()``).

        Left to the garbage collector, a persistent iterator caught in a reference cycle (a trainer holds its
        loaders, the loaders hold the data module) shuts its workers down from inside ``gc``, where torch waits
        5 s per worker before killing it; :meth:`SurveyDataModule.teardown` calls this instead.
        """
        iterator = getattr(self, "_iterator", None)  # where DataLoader keeps its persistent iterator
        self._iterator = None
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
