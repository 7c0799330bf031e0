"""Shared stand-ins of the training tests: one torch thread per test, a dict-batch dataset."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class DictData(Dataset):
    def __init__(self, ids: torch.Tensor, x: torch.Tensor, target: torch.Tensor) -> None:
        self.ids, self.x, self.target = ids, x, target

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"surveyId": self.ids[i], "x": self.x[i], "target": self.target[i]}
