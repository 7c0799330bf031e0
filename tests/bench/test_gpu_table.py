"""bench.gpu_table (``make gpu-table``) on the tiny world: the fusion's ModelInputs and the test surveys' PO correction
built through Luigi, packed into the ``.npz`` a GPU lease carries (it unpacks into the same table), its ``.json``
naming what ``merge`` reads; a rerun packs nothing again, and a table too large to carry is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import gpu_table
from glc.loaders.pack import read_split, unpack
from glc.loaders.tables import read_meta


def test_the_gpu_table_is_built_packed_and_described(tiny_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpu" / "t.npz"
    s = gpu_table.build_table(tiny_world, tmp_path / "out", Path("tasks/fusion.toml"), [], out, patch_k=4)
    inputs = Path(s["inputs"])
    meta = read_meta(inputs)
    # the table the fusion experiment trains on (as out-bench/full/<world>/model_inputs/... at full scale)
    assert inputs.name == "v10km-f0.2-s0-bioclim_cube+env+gfv+landsat_cube+patch_dct16+plot-k3"
    assert {"bioclim_cube", "env", "gfv", "landsat_cube", "patch_dct16", "plot"} <= set(meta["feature_sets"])
    assert out.is_file() and s["npz_mib"] == round(out.stat().st_size / 2**20, 1) and s["pack"]["surveys"] > 0
    back = unpack(out, tmp_path / "unpacked")
    assert read_meta(back)["splits"] == meta["splits"]
    for split in ("train", "val", "test"):
        a, b = read_split(inputs, split), read_split(back, split)
        assert np.array_equal(a["surveyId"], b["surveyId"])
        # the block cut to --patch-k (float16), zero-padded back
        pa, pb = a["patch_dct16"], b["patch_dct16"]
        assert pb.shape == pa.shape and not pb[..., 4:, :].any() and not pb[..., :, 4:].any()
        np.testing.assert_allclose(pb[..., :4, :4], pa[..., :4, :4], rtol=1e-3, atol=1e-3)
    assert Path(s["truth"]).is_file() and any(Path(s["corrections"]).glob("*.parquet"))
    assert s["merge_args"] == ["--truth", s["truth"], "--corrections", s["corrections"]]
    assert json.loads(out.with_suffix(".json").read_text()) == s
    # the lease script reads merge's arguments from that file
    r = subprocess.run(
        ["bash", "bench/fusion_kfold_lease.sh", "merge-args"],
        env={**os.environ, "NPZ": str(out), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=True,
    )
    assert r.stdout.split() == s["merge_args"]

    stamp = out.stat().st_mtime_ns  # rerun: the tasks are complete and the .npz is newer than its table
    again = gpu_table.build_table(tiny_world, tmp_path / "out", Path("tasks/fusion.toml"), [], out, patch_k=4)
    assert again["pack"] == {"bytes": out.stat().st_size, "reused": True} and out.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match=r"more than the 0.001 MiB a device call carries.*smaller --patch-k"):
        gpu_table.build_table(tiny_world, tmp_path / "out", Path("tasks/fusion.toml"), [], out, max_mib=0.001)
    # other packing settings: packed again, never the .npz of the earlier ones
    third = gpu_table.build_table(tiny_world, tmp_path / "out", Path("tasks/fusion.toml"), [], out, patch_k=3)
    assert "reused" not in third["pack"] and third["pack_args"]["patch_k"] == 3
    assert third["pack"]["packed"]["patch_dct16"] == "3x3 block (float16)"
