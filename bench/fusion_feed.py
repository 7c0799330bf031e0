"""Which patch source feeds the fusion's image branch faster: raw pixels or the full DCT block inverted (IDCT)?

``python -m bench.fusion_feed`` (``make bench-fusion-feed``) builds, on the tiny synthetic world (480 surveys; the
rate is per survey), three ``ModelInputs`` tables holding the Sentinel-2 patch as

* ``raw``: the uint8 pixels (``patch_raw``, 64 KiB per survey),
* ``dct128``: the full 128x128 DCT per channel (``patch_dct128``, lossless, 256 KiB per survey),
* ``dct16``: the 16x16 block (``patch_dct16``, 4 KiB, low-pass: the lossy reference),

and times, for each, the loader (``SurveyDataModule``, Petastorm and the native pyarrow reader) plus the image
branch's ``prepare`` (raw: scale + resize 128 -> 224; DCT: the inverse ``D^T c D`` straight to 224 px, standardised)
on this machine's CPU, interleaved over ``--rounds`` rounds of ``--passes`` epochs each (medians). Also reported:
bytes per survey on disk and the PSNR of each source's 128 px image against the raw pixels (the DCT paths are exact
up to float rounding when k = 128). Writes ``bench/results/fusion_feed.json``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCES = {"raw": "patch_raw", "dct128": "patch_dct128", "dct16": "patch_dct16"}


def _table(world: Path, out_root: Path, feature: str) -> Path:
    import luigi

    from glc.tasks import ModelInputs

    task = ModelInputs(data_root=str(world), out_root=str(out_root), features=[feature])
    if not task.complete():
        res = luigi.build([task], local_scheduler=True, workers=1, detailed_summary=True)
        if not task.complete():
            raise RuntimeError(f"ModelInputs({feature}) failed: {res.summary_text}")
    return task.output().dir


def _bytes_per_survey(root: Path) -> float:
    files = [p for s in ("train", "val", "test") for p in (root / s).glob("*.parquet")]
    import json

    n = sum(json.loads((root / "meta.json").read_text())["splits"].values())
    return sum(p.stat().st_size for p in files) / n


def _branch(root: Path, source: str, size: int):
    from glc.loaders.tables import column_shape, column_stats, read_meta
    from glc.models.fusion import ImageBranch

    meta = read_meta(root)
    col = SOURCES[source]
    return ImageBranch(
        col,
        source,
        column_shape(meta, col),
        column_stats(meta, col),
        "resnet18",
        "",
        size,
        augment=False,
        latent=0,
        dropout=0.0,
    ).eval()


def time_feed(root: Path, source: str, reader: str, passes: int, size: int = 224, batch: int = 64) -> float:
    """Samples/s of ``passes`` epochs of loader + ``prepare`` (training order, no backbone)."""
    import torch

    from glc.loaders.datamodule import SurveyDataModule

    col = SOURCES[source]
    dm = SurveyDataModule(root, columns=(col,), batch_size=batch, reader=reader, with_target=False)
    branch = _branch(root, source, size)
    loader = dm.loader("train", shuffle=True, with_target=False)
    n = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for _ in range(passes):
            for b in loader:
                img = branch.prepare(b)
                n += img.shape[0]
    dm.teardown()
    return n / (time.perf_counter() - t0)


def psnr(root: Path, raw_root: Path, source: str) -> float | None:
    """PSNR (dB, peak 255) of the source's 128 px image against the raw pixels, over the test split."""
    import torch

    from glc.features.dct import dct_matrix
    from glc.loaders.datamodule import SurveyDataModule

    if source == "raw":
        return None
    col = SOURCES[source]
    a = next(
        iter(
            SurveyDataModule(root, columns=(col,), batch_size=10_000, reader="arrow", with_target=False).loader(
                "test", with_target=False
            )
        )
    )
    r = next(
        iter(
            SurveyDataModule(
                raw_root, columns=("patch_raw",), batch_size=10_000, reader="arrow", with_target=False
            ).loader("test", with_target=False)
        )
    )
    order_a, order_r = np.argsort(a["surveyId"].numpy()), np.argsort(r["surveyId"].numpy())
    k = a[col].shape[-1]
    D = torch.as_tensor(dct_matrix(128, k, np.float64))
    img = torch.einsum("uh,bcuv,vw->bchw", D, a[col].double(), D).numpy()[order_a]
    ref = r["patch_raw"].double().numpy()[order_r]
    mse = float(np.mean((img - ref) ** 2))
    return round(10 * np.log10(255.0**2 / max(mse, 1e-12)), 2)


def main(argv: list[str] | None = None) -> int:
    """Build the three tables, time them interleaved, write the JSON."""
    from bench.common import write_result
    from glc.synth import generate_world

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, default=REPO / "data" / "synthetic" / "tiny-seed0")
    ap.add_argument("--out-root", type=Path, default=REPO / "out-bench" / "fusion-feed")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--passes", type=int, default=3)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not (a.world / "_SUCCESS").exists():
        generate_world(a.world, scale="tiny", seed=0)
    roots = {s: _table(a.world, a.out_root, f) for s, f in SOURCES.items()}
    rates: dict[str, list[float]] = {f"{s}/{r}": [] for s in SOURCES for r in ("petastorm", "arrow")}
    for i in range(a.rounds):
        for key in rates:
            s, r = key.split("/")
            rates[key].append(time_feed(roots[s], s, r, a.passes))
        print(f"round {i + 1}/{a.rounds}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()), flush=True)
    res: dict[str, Any] = {}
    for s in SOURCES:
        res[s] = {
            "feature_set": SOURCES[s],
            "bytes_per_survey_on_disk": round(_bytes_per_survey(roots[s]), 1),
            "psnr_vs_raw_db": psnr(roots[s], roots["raw"], s),
            **{f"samples_per_s_{r}": round(statistics.median(rates[f"{s}/{r}"]), 1) for r in ("petastorm", "arrow")},
        }
    for r in ("petastorm", "arrow"):
        res[f"ratio_raw_over_dct128_{r}"] = round(
            res["raw"][f"samples_per_s_{r}"] / res["dct128"][f"samples_per_s_{r}"], 3
        )
    path = write_result(
        "fusion_feed",
        res,
        {
            "protocol": (
                f"loader + ImageBranch.prepare to 224 px, batch 64, CPU; medians of {a.rounds} "
                f"interleaved rounds of {a.passes} epochs over the tiny world's train split"
            )
        },
    )
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
