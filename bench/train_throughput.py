"""Training throughput of the tile CNN: DCT parquet through Petastorm vs JPEG patches decoded on the fly vs IDCT images.

DS@GT precompute DCT tiles into parquet to make training fast. ``python -m bench.train_throughput``
(``make bench-train-throughput``) measures that claim side by side, in one process, on the same surveys of the demo
world (the training split of its ``ModelInputs`` table, ~8,000 surveys), and writes
``bench/results/train_throughput.json``:

* **Loader samples/s** (one full shuffled epoch, the consumer only counts rows):

  - ``dct_parquet_petastorm``: the ``patch_dct`` planes ``[B, 4, 8, 8]`` of a ``ModelInputs`` table (written by the
    Spark writer from the ``PatchTiles`` artifact; built here if missing) through :class:`glc.loaders.SurveyDataModule`
    with ``reader="petastorm"`` (DataLoader workers: ``--workers``);
  - ``jpeg_decode``: the survey's RGB + NIR JPEGs decoded with Pillow in ``--workers`` DataLoader worker processes
    (:func:`glc.data.patches.read_patch_files`) into ``[B, 4, 128, 128]`` uint8 pixels, batched;
  - ``jpeg_decode_dct``: the same plus the 8x8 DCT of each channel in the workers (what the parquet stores).

* **Training samples/s** (forward + backward + AdamW step of the tile CNN, ``--train-surveys`` surveys per round,
  BCE loss, batch ``--batch-size``, ``--threads`` torch threads):

  - ``dct_parquet_petastorm``: the coefficient CNN (``tasks/tile-cnn.toml``'s body) fed from Petastorm;
  - ``jpeg_decode_dct``: the same coefficient CNN fed by JPEG decode + DCT in the loader workers (same net, only
    the input path differs);
  - ``jpeg_pixels``: an image CNN (the ``tile-cnn-idct`` body: 2x2-pooled conv blocks on 128x128) on the decoded
    pixels — the usual way to train on patches;
  - ``idct_images``: the ``tile-cnn-idct`` net (Petastorm DCT planes -> IDCT to 128x128 inside the net -> the same
    image CNN).

Each configuration runs one untimed warm-up, then ``--rounds`` interleaved rounds (A B C D A B C D ...); the median is
reported, and every rate's ratio to the DCT-parquet rate of the same kind (loader or training). The machine (cores,
load before/after) is recorded. GPU: ``--device cuda`` trains on the GPU (timings comparable only within one run).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


class JpegPatches(torch.utils.data.Dataset):
    """One survey's RGB + NIR JPEGs decoded on access (``[4, 128, 128]`` uint8), optionally their 8x8 DCT planes."""

    def __init__(self, files: list[tuple[str, str]], dct_k: int = 0) -> None:
        self.files = files
        self.dct_k = dct_k

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        from glc.data.patches import read_patch_files

        px = read_patch_files(*self.files[i])
        if self.dct_k:
            from glc.features.dct import dct2

            return torch.from_numpy(dct2(px.astype(np.float32), self.dct_k).astype(np.float32))
        return torch.from_numpy(px)


def _jpeg_loader(
    files: list[tuple[str, str]], batch_size: int, workers: int, dct_k: int, seed: int
) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        JpegPatches(files, dct_k),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=g,
    )


def build_inputs(world: Path, out_root: Path) -> Path:
    """The ``ModelInputs(features=[patch_dct])`` table of the world (built with Luigi if missing)."""
    import luigi

    from glc.tasks import ModelInputs

    task = ModelInputs(data_root=str(world), out_root=str(out_root), features=["patch_dct"])
    if not task.complete():
        res = luigi.build([task], local_scheduler=True, detailed_summary=True, workers=1)
        if not task.complete():
            raise RuntimeError(f"ModelInputs failed:\n{res.summary_text}")
    return task.output().dir


def _nets(meta: dict[str, Any], device: torch.device) -> dict[str, torch.nn.Module]:
    """The coefficient CNN, the IDCT net and the pixel CNN (same body as the IDCT net) for ``meta``'s vocabulary."""
    from glc.config import load_experiment
    from glc.models.parts import ConvBody, FusionNet, Standardize
    from glc.models.tile_cnn import build_tile_cnn

    torch.manual_seed(0)
    coef = build_tile_cnn(load_experiment("tile-cnn")["model"], meta)
    idct_cfg = load_experiment("tile-cnn-idct")["model"]
    idct = build_tile_cnn(idct_cfg, meta)

    class Pixels(torch.nn.Module):
        out_dim = int(idct_cfg["latent"])
        input_columns = ("patch_raw",)

        def __init__(self) -> None:
            super().__init__()
            self.norm = Standardize(np.full((4, 1, 1), 100.0, np.float32), np.full((4, 1, 1), 50.0, np.float32))
            self.body = ConvBody(
                4,
                128,
                idct_cfg["channels"],
                int(idct_cfg["reduce"]),
                int(idct_cfg["latent"]),
                pool=True,
                dropout=float(idct_cfg["dropout"]),
            )

        def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.body(self.norm(batch["patch_raw"].float()))

    pixels = FusionNet({"tile": Pixels()}, int(meta["num_classes"]), float(idct_cfg["dropout"]))
    return {k: v.to(device).train() for k, v in {"coef": coef, "idct": idct, "pixels": pixels}.items()}


def loader_rate(it: Any) -> tuple[float, int]:
    """Rows per second of one pass over ``it``."""
    t0, n = time.perf_counter(), 0
    for b in it:
        n += len(b["surveyId"]) if isinstance(b, dict) else len(b)
    return n / (time.perf_counter() - t0), n


def train_rate(net: torch.nn.Module, batches: Any, key: str, n_classes: int, limit: int, device: torch.device) -> float:
    """Samples per second of forward + backward + AdamW over the first ``limit`` samples of ``batches``."""
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    n, t0 = 0, time.perf_counter()
    for b in batches:
        x = b[key] if isinstance(b, dict) else b
        bs = len(x)
        target = (torch.rand(bs, n_classes, device=device) < 0.01).float()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net({key: x.to(device, non_blocking=True)}), target)
        loss.backward()
        opt.step()
        n += bs
        if n >= limit:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    from bench.common import write_result
    from glc.data.layout import detect_layout
    from glc.loaders.datamodule import SurveyDataModule
    from glc.loaders.tables import read_meta
    from glc.synth import generate_world

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, default=REPO / "data" / "synthetic" / "demo-seed0")
    ap.add_argument("--out-root", type=Path, default=REPO / "out-bench" / "train_throughput")
    ap.add_argument(
        "--inputs", type=Path, default=None, help="an existing ModelInputs folder with patch_dct (skips Spark)"
    )
    ap.add_argument("--train-surveys", type=int, default=1024, help="samples per training round")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = cores)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--name", default="train_throughput", help="result file stem")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(a.threads or (os.cpu_count() or 1))
    device = torch.device(a.device)
    load_before = os.getloadavg()
    if not (a.world / "_SUCCESS").exists():
        generate_world(a.world, scale="demo", seed=0)
    root = a.inputs or build_inputs(a.world, a.out_root)
    meta = read_meta(root)
    # the same surveys for every path: the train split of the model-input table (the JPEG paths read those surveys)
    dm = SurveyDataModule(
        root, columns=("patch_dct",), batch_size=a.batch_size, reader="petastorm", num_workers=a.workers, seed=0
    )
    dm.setup("fit")
    train_ids = np.sort(
        np.concatenate([b["surveyId"].numpy() for b in dm.loader("train", shuffle=False, with_target=False)])
    )
    n = len(train_ids)
    lay = detect_layout(a.world)
    files = [
        (str(lay.patch_path("train", int(s), "rgb")), str(lay.patch_path("train", int(s), "nir"))) for s in train_ids
    ]
    petastorm = dm.loader("train", shuffle=True, with_target=False)
    jpeg = _jpeg_loader(files, a.batch_size, a.workers, 0, 0)
    jpeg_dct = _jpeg_loader(files, a.batch_size, a.workers, 8, 0)

    nets = _nets(meta, device)
    C = int(meta["num_classes"])
    loader_cfgs = {
        "dct_parquet_petastorm": lambda: petastorm,
        "jpeg_decode": lambda: jpeg,
        "jpeg_decode_dct": lambda: jpeg_dct,
    }
    train_cfgs = {
        "dct_parquet_petastorm": lambda: train_rate(nets["coef"], petastorm, "patch_dct", C, a.train_surveys, device),
        "jpeg_decode_dct": lambda: train_rate(
            nets["coef"], ({"patch_dct": b} for b in jpeg_dct), "patch_dct", C, a.train_surveys, device
        ),
        "jpeg_pixels": lambda: train_rate(
            nets["pixels"], ({"patch_raw": b} for b in jpeg), "patch_raw", C, a.train_surveys, device
        ),
        "idct_images": lambda: train_rate(nets["idct"], petastorm, "patch_dct", C, a.train_surveys, device),
    }
    loader_runs: dict[str, list[float]] = {k: [] for k in loader_cfgs}
    train_runs: dict[str, list[float]] = {k: [] for k in train_cfgs}
    for r in range(a.rounds + 1):  # round 0: warm-up (workers start, caches fill), not counted
        for k, make in loader_cfgs.items():
            rate, rows = loader_rate(make())
            if rows != n:
                raise RuntimeError(f"loader {k} delivered {rows} rows, expected {n}")
            if r:
                loader_runs[k].append(rate)
        for k, fn in train_cfgs.items():
            rate = fn()
            if r:
                train_runs[k].append(rate)
        print(
            f"round {r}{' (warm-up)' if not r else ''}: loader "
            f"{ ({k: round(v[-1]) for k, v in loader_runs.items() if v}) }; train "
            f"{ ({k: round(v[-1], 1) for k, v in train_runs.items() if v}) }",
            flush=True,
        )
    dm.teardown()
    loader = {k: statistics.median(v) for k, v in loader_runs.items()}
    train = {k: statistics.median(v) for k, v in train_runs.items()}
    results = {
        "surveys": n,
        "train_samples_per_round": a.train_surveys,
        "batch_size": a.batch_size,
        "workers": a.workers,
        "rounds": a.rounds,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "loader_samples_per_s": {k: round(v, 1) for k, v in loader.items()},
        "train_samples_per_s": {k: round(v, 2) for k, v in train.items()},
        "loader_ratio_vs_dct_parquet": {k: round(v / loader["dct_parquet_petastorm"], 3) for k, v in loader.items()},
        "train_ratio_vs_dct_parquet": {k: round(v / train["dct_parquet_petastorm"], 4) for k, v in train.items()},
        "train_ratio_idct_vs_jpeg_pixels": round(train["idct_images"] / train["jpeg_pixels"], 3),
        "runs": {"loader": loader_runs, "train": train_runs},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "parameters": {k: int(sum(p.numel() for p in v.parameters())) for k, v in nets.items()},
    }
    path = write_result(a.name, results)
    print(f"wrote {path}")
    print("loader samples/s:", results["loader_samples_per_s"], "ratios:", results["loader_ratio_vs_dct_parquet"])
    print("train samples/s:", results["train_samples_per_s"], "ratios:", results["train_ratio_vs_dct_parquet"])
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
