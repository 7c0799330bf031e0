"""Kaggle submission files: write (atomically, validated first) and validate.

Format (glc24-format.md §9.1): header ``surveyId,predictions``; one row per PA-test survey; ``predictions`` holds
space-separated integer species ids. glc writes rows sorted by surveyId and ids in decoder order, so the same
scores and seed give a byte-identical file.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from glc.io import atomic_file

HEADER = ("surveyId", "predictions")


class SubmissionError(ValueError):
    """A submission file breaks the Kaggle contract."""


def format_submission(rows: Mapping[int, Iterable[int]]) -> str:
    """Render ``{surveyId: species ids}`` as submission CSV text (rows sorted by surveyId)."""
    buf = io.StringIO()
    buf.write(",".join(HEADER) + "\n")
    for sid in sorted(rows):
        ids = [int(i) for i in rows[sid]]
        buf.write(f"{int(sid)},{' '.join(map(str, ids))}\n")
    return buf.getvalue()


def validate_submission_text(
    text: str, test_ids: Sequence[int] | np.ndarray, source: str = "<submission>", num_classes: int | None = None
) -> int:
    """Check a submission against the test survey ids; return the number of rows.

    Parsed with the one species-list parser (:func:`glc.data.metadata.parse_species_lists`: BOM, whitespace, blank
    lines and repeated surveyIds handled exactly as when scoring), then checked in order: the header is
    ``surveyId,predictions``, every surveyId is a test survey, every prediction list is non-empty (within
    ``0..num_classes-1`` when given), and every test survey has a row.

    Raises:
        SubmissionError: naming the first problem (line number and what was expected).
    """
    from glc.data.errors import DataError
    from glc.data.metadata import parse_species_lists

    want = {int(i) for i in test_ids}
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    if tuple(h.strip() for h in first.strip().split(",")) != HEADER:
        raise SubmissionError(f"{source}:1: header must be 'surveyId,predictions', found {first.strip()!r}")
    try:
        parsed = parse_species_lists(text, source, column="predictions")
    except DataError as e:
        raise SubmissionError(str(e)) from None
    for sid, ids in parsed.lists.items():
        line = parsed.lines[sid]
        if sid not in want:
            raise SubmissionError(f"{source}:{line}: surveyId {sid} is not a test survey of the given test metadata")
        if len(ids) == 0:
            raise SubmissionError(
                f"{source}:{line}: survey {sid} has an empty prediction list; predict at least one species"
            )
        if (ids < 0).any() or (num_classes is not None and (ids >= num_classes).any()):
            bad = int(ids[(ids < 0) | (ids >= (num_classes or np.iinfo(np.int64).max))][0])
            raise SubmissionError(
                f"{source}:{line}: survey {sid}: species id {bad} is outside 0..{(num_classes or 0) - 1}"
            )
    missing = want - set(parsed.lists)
    if missing:
        ex = sorted(missing)[:5]
        raise SubmissionError(
            f"{source}: {len(missing)} test survey(s) have no row, e.g. {ex}; write exactly one row per test survey"
        )
    return len(parsed.lists)


def validate_submission_file(
    path: str | Path, test_ids: Sequence[int] | np.ndarray, num_classes: int | None = None
) -> int:
    """:func:`validate_submission_text` on a file (any readable path, ``-`` = standard input)."""
    from glc.data.errors import DataError
    from glc.data.metadata import read_text_source

    try:
        text = read_text_source(path, "submission")
    except DataError as e:
        raise SubmissionError(str(e)) from None
    return validate_submission_text(text, test_ids, str(path), num_classes)


def write_submission(
    path: str | Path,
    rows: Mapping[int, Iterable[int]],
    test_ids: Sequence[int] | np.ndarray,
    num_classes: int | None = None,
) -> int:
    """Validate, then write atomically. Nothing appears at ``path`` unless the content is valid."""
    text = format_submission(rows)
    n = validate_submission_text(text, test_ids, str(path), num_classes)
    with atomic_file(path) as fh:
        fh.write(text)
    return n
