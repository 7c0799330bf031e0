"""The fusion ablation's rows (``bench/fusion_ablation.py``): each is a valid experiment, each adds exactly its own
step to the previous one, the first is the concat baseline, the last is ``tasks/fusion.toml`` itself, and rows that
only change the decoder share one trained model; the table lands in the README between its markers."""

from __future__ import annotations

from pathlib import Path

from bench.fusion_ablation import ROWS, markdown, row_configs
from bench.leaderboard import update_readme
from glc.config import experiment_table, model_key, resolve


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def test_rows_are_cumulative_from_the_concat_baseline_to_the_full_design() -> None:
    full = experiment_table("fusion")
    rows = row_configs(full)
    assert [r[0] for r in rows] == [r[0] for r in ROWS]
    cfgs = [resolve(t, f"row {n}") for n, _, t in rows]
    first, last = cfgs[0], cfgs[-1]
    assert (first["model"]["fusion"], first["model"]["cube_encoder"], first["model"]["graph"]["enabled"]) == (
        "concat",
        "resnet18",
        False,
    )
    assert (first["train"]["mixup_alpha"], first["train"]["kfold"], first["decoder"]["kind"]) == (0.0, 1, "topk")
    assert not first["decoder"]["po_correction"]["enabled"]
    want = resolve(full, "tasks/fusion.toml")
    assert last == want  # the last row is tasks/fusion.toml itself, name included: it reuses what `make fusion` built
    # rows that train the same model share its name (so its folder and training); rows that differ never do
    keys = [model_key(c) for c in cfgs]
    for a, ka in zip(cfgs, keys):
        for b, kb in zip(cfgs, keys):
            assert (a["name"] == b["name"]) == (ka == kb)
    assert keys.count(keys[-1]) == 4  # +kfold, +threshold_topk, +expected_f1, +po_correction: one model, four decodings
    # every row changes something, and only the keys its own overrides name
    for (name, _, over), prev, cur in zip(ROWS[1:], cfgs, cfgs[1:]):
        changed = {k for k, v in _flat(cur).items() if _flat(prev).get(k) != v} - {"name"}
        named = set(_flat(over))
        assert changed, f"row {name} changes nothing"
        assert all(any(k == n or k.startswith(n + ".") for n in named) for k in changed), (name, changed - named)


def test_the_table_lands_between_the_readme_markers(tmp_path: Path) -> None:
    result = {
        "world": "demo-seed0",
        "oracle_test_sample_f1": 0.619,
        "rows": [
            {
                "row": "concat",
                "change": "baseline",
                "test_sample_f1": 0.5,
                "val_sample_f1": 0.52,
                "wall_seconds": 100.0,
                "delta_test": None,
            },
            {
                "row": "+hcam",
                "change": "HCAM",
                "test_sample_f1": 0.49,
                "val_sample_f1": 0.51,
                "wall_seconds": 90.0,
                "delta_test": -0.01,
                "helps": False,
            },
        ],
    }
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- fusion-ablation:start -->\nold\n<!-- fusion-ablation:end -->\nafter\n")
    assert update_readme(
        markdown(result, heading=False),
        readme,
        marks=("<!-- fusion-ablation:start -->", "<!-- fusion-ablation:end -->"),
    )
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("after\n")
    assert "| `+hcam` | HCAM | 0.4900 | -0.0100 (does not help) |" in text
    assert "# Fusion ablation" not in text and "| oracle |" in text
    assert not update_readme("x", readme)  # no leaderboard markers there: untouched, says so
