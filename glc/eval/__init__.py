"""Evaluation: spatial validation splits (:mod:`glc.eval.split`) and the experiment report (:mod:`glc.eval.report`).

The competition metric itself lives in :mod:`glc.metrics`.
"""

from __future__ import annotations

from glc.eval.split import block_ids, spatial_block_folds, spatial_holdout

__all__ = ["block_ids", "spatial_block_folds", "spatial_holdout"]
