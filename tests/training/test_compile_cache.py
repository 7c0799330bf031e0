"""glc.training.compile_cache: torch.compile's caches written as shards + an index, loaded whole or refused, written
once from inside a fit; and, with Inductor on the CPU, another process with a cold cache loading them hits instead of
compiling."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from glc.training.compile_cache import INDEX, CompileCacheSaver, load_compile_cache, save_compile_cache

BLOB = bytes(range(256)) * 40 + b"tail"  # 10,244 bytes


@pytest.fixture
def fake_compiler(monkeypatch):
    """torch.compiler's save/load replaced: save returns BLOB (or what ``state["blob"]`` says), load records."""
    state: dict = {"blob": BLOB, "loaded": [], "saves": 0}

    def save():
        state["saves"] += 1
        return None if state["blob"] is None else (state["blob"], type("Info", (), {"artifacts": {"inductor": [1, 2]}}))

    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", save)
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", lambda b: state["loaded"].append(b))
    return state


def test_the_blob_travels_in_shards_and_comes_back_whole(tmp_path: Path, fake_compiler) -> None:
    index = save_compile_cache(tmp_path / "a", shard_bytes=4000)
    assert index is not None and index["count"] == 3 and index["bytes"] == len(BLOB)
    assert index["artifacts"] == {"inductor": 2}
    shards = sorted(p.name for p in (tmp_path / "a").glob("compile-cache-*.bin"))
    assert shards == ["compile-cache-000.bin", "compile-cache-001.bin", "compile-cache-002.bin"]
    assert [(tmp_path / "a" / s).stat().st_size for s in shards] == [4000, 4000, 2244]
    # two transfers: the index and a shard in one folder, the other shards in another
    (tmp_path / "b").mkdir()
    for s in shards[1:]:
        shutil.move(tmp_path / "a" / s, tmp_path / "b" / s)
    assert load_compile_cache([tmp_path / "empty", tmp_path / "b", tmp_path / "a"]) == index
    assert fake_compiler["loaded"] == [BLOB]
    # a smaller blob written over it leaves no stale shard behind
    fake_compiler["blob"] = b"small"
    assert save_compile_cache(tmp_path / "b")["count"] == 1
    assert sorted(p.name for p in (tmp_path / "b").glob("compile-cache*")) == ["compile-cache-000.bin", INDEX]


def test_a_missing_or_foreign_shard_is_refused_and_no_cache_is_none(tmp_path: Path, fake_compiler) -> None:
    assert load_compile_cache([tmp_path]) is None  # nothing there: compile from scratch
    save_compile_cache(tmp_path, shard_bytes=4000)
    (tmp_path / "compile-cache-001.bin").write_bytes(b"x" * 4000)  # a shard of another blob
    with pytest.raises(ValueError, match="not the 10244 bytes .* it describes: a shard is from another blob"):
        load_compile_cache([tmp_path])
    (tmp_path / "compile-cache-002.bin").unlink()
    with pytest.raises(FileNotFoundError, match="names 3 shards but compile-cache-002.bin is in none of"):
        load_compile_cache([tmp_path])
    assert fake_compiler["loaded"] == []
    fake_compiler["blob"] = None  # nothing compiled: nothing written, the old index removed only when replacing
    assert save_compile_cache(tmp_path / "none") is None
    assert not (tmp_path / "none").exists()
    with pytest.raises(ValueError, match="shard_bytes = 0"):
        save_compile_cache(tmp_path, shard_bytes=0)


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_the_saver_writes_once_after_the_first_epoch(tmp_path: Path, fake_compiler) -> None:
    seen: list[int] = []

    class Probe(pl.Callback):  # after the saver: what the folder holds at each epoch end
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            seen.append(fake_compiler["saves"])
            assert (tmp_path / "cache" / INDEX).is_file()

    data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
    saver = CompileCacheSaver(tmp_path / "cache", shard_bytes=6000)
    trainer = pl.Trainer(
        max_epochs=3, callbacks=[saver, Probe()], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(_Tiny(), torch.utils.data.DataLoader(data, batch_size=8))
    assert seen == [1, 1, 1] and fake_compiler["saves"] == 1
    assert saver.saved is not None and saver.saved["count"] == 2
    assert json.loads((tmp_path / "cache" / INDEX).read_text())["sha256"] == saver.saved["sha256"]


_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from torch._dynamo.utils import counters
    from glc.training.compile_cache import load_compile_cache, save_compile_cache
    folder, mode = sys.argv[1], sys.argv[2]
    if mode == "load":
        assert load_compile_cache([folder]) is not None
    torch.manual_seed(0)
    net = torch.compile(torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)))
    net(torch.randn(8, 16)).sum().backward()
    if mode == "save":
        save_compile_cache(folder)
    c = counters["inductor"]
    print("COUNTS", c["fxgraph_cache_hit"], c["fxgraph_cache_miss"])
    """
)


NO_CC = shutil.which("cc") is None and shutil.which("gcc") is None


@pytest.mark.skipif(NO_CC, reason="Inductor on a CPU needs a C compiler")
def test_another_process_with_a_cold_cache_hits_instead_of_compiling(tmp_path: Path) -> None:
    def run(mode: str, cache_dir: str) -> tuple[int, int]:
        env = {
            **os.environ,
            "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / cache_dir),
            "PYTHONPATH": str(Path(__file__).parents[2]),
        }
        out = subprocess.run(
            [sys.executable, "-c", _SCRIPT, str(tmp_path / "blob"), mode], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr[-3000:]
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("COUNTS"))
        return int(line.split()[1]), int(line.split()[2])

    hits, misses = run("save", "machine-a")
    assert hits == 0 and misses >= 2  # forward and backward compiled
    assert (tmp_path / "blob" / INDEX).is_file()
    hits, misses = run("load", "machine-b")  # another machine: its Inductor cache is empty
    assert misses == 0 and hits >= 2
