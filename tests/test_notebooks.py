"""The walkthrough notebook runs top to bottom on the tiny synthetic world."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NB = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_executes(tiny_world, tmp_path, monkeypatch):
    monkeypatch.setenv("GLC_WORLD", str(tiny_world))
    monkeypatch.setenv("GLC_OUT", str(tmp_path / "out"))
    nb = nbformat.read(NB, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NB.parent)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "valid rows:" in outputs and "validation sample-F1:" in outputs
    assert "map: EPSG:3035" in outputs and "report figures:" in outputs
    n_figs = int(outputs.split("report figures:")[1].split()[0])
    assert n_figs >= 6
    assert (tmp_path / "out").exists()
