"""Reading a finished artifact's ``data/`` table: pandas for any table artifact, a
:class:`glc.features.neighbours.NeighbourTable` for ``Neighbours``. Each refuses an incomplete artifact (no
``_SUCCESS``), naming it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from glc.tasks.base import FlagTarget

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DATA_DIR", "read_neighbour_table", "read_table"]

#: The table's sub-folder in an artifact.
DATA_DIR = "data"


def read_table(flag: FlagTarget, columns: list[str] | None = None) -> pd.DataFrame:
    """Load the ``data/`` parquet of a complete table artifact (neighbours, graph features, corrections) into pandas.

    Raises:
        FileNotFoundError: if the artifact is incomplete (no ``_SUCCESS``).
    """
    import pandas as pd

    from glc.io import is_complete

    if not is_complete(flag.dir):
        raise FileNotFoundError(f"artifact {flag.dir} is incomplete (no _SUCCESS); rerun its task")
    return pd.read_parquet(Path(flag.dir) / DATA_DIR, columns=columns)


def read_neighbour_table(flag: FlagTarget) -> Any:
    """A complete ``Neighbours`` artifact as a :class:`glc.features.neighbours.NeighbourTable` (rows sorted by id)."""
    from glc.features.neighbours import NeighbourTable

    return NeighbourTable.from_pandas(read_table(flag))
