"""Errors raised by the GLC24 readers.

Every reader in :mod:`glc.data` turns a bad input into a :class:`DataError` whose message names the file (and the
row, survey or window when there is one), says what was expected and what was found, and says what to do. A missing
file raises :class:`DataFileNotFoundError`, which is both a :class:`DataError` and a :class:`FileNotFoundError`, so
callers may catch either.
"""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A GLC24 input file exists but its content is not what the format (glc24-format.md) says."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A GLC24 input file is missing."""


def require_file(path: str | Path, what: str) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` if it is an existing file, else raise.

    Args:
        path: the file to check.
        what: a short description of the file for the message (e.g. ``"PA metadata CSV"``).

    Returns:
        The path as a :class:`~pathlib.Path`.

    Raises:
        DataFileNotFoundError: if ``path`` does not exist or is not a regular file.
    """
    p = Path(path)
    if not p.is_file():
        found = "a folder" if p.is_dir() else "nothing"
        raise DataFileNotFoundError(
            f"{what} not found: {p} (found {found} there). Check the data root and its layout "
            "(glc.data.layout.Layout / detect_layout), or regenerate the synthetic world."
        )
    return p
