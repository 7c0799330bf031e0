"""Kaggle submission files: write (atomically, validated first) and validate.

Format (glc24-format.md §9.1): header ``surveyId,predictions``; one row per PA-test survey; ``predictions`` holds
space-separated integer species ids. glc writes rows sorted by surveyId and ids in decoder order, so the same
scores and seed give a byte-identical file.
"""

from __future__ import annotations

import csv
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


def validate_submission_text(text: str, test_ids: Sequence[int] | np.ndarray, source: str = "<submission>", num_classes: int | None = None) -> int:
    """Check a submission against the test survey ids; return the number of rows.

    Checks, in order: the header, that every row has two fields, integer surveyIds that are test surveys and appear
    once, non-empty space-separated integer species lists (within ``0..num_classes-1`` when given), and that every
    test survey has a row.

    Raises:
        SubmissionError: naming the first problem (line number and what was expected).
    """
    want = {int(i) for i in test_ids}
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != HEADER:
        raise SubmissionError(f"{source}:1: header must be 'surveyId,predictions', found {','.join(header or [])!r}")
    seen: set[int] = set()
    n = 0
    for line_no, row in enumerate(reader, start=2):
        if len(row) != 2:
            raise SubmissionError(f"{source}:{line_no}: expected 2 fields 'surveyId,predictions', found {len(row)}: {row!r}")
        sid_txt, preds = row[0].strip(), row[1].strip()
        if not sid_txt.isdigit():
            raise SubmissionError(f"{source}:{line_no}: surveyId must be a non-negative integer, found {sid_txt!r}")
        sid = int(sid_txt)
        if sid not in want:
            raise SubmissionError(f"{source}:{line_no}: surveyId {sid} is not a test survey of the given test metadata")
        if sid in seen:
            raise SubmissionError(f"{source}:{line_no}: surveyId {sid} appears more than once; write one row per test survey")
        seen.add(sid)
        if not preds:
            raise SubmissionError(f"{source}:{line_no}: survey {sid} has an empty prediction list; predict at least one species")
        for tok in preds.split(" "):
            if not tok.isdigit():
                raise SubmissionError(f"{source}:{line_no}: survey {sid}: species id {tok!r} is not a non-negative integer (ids are space-separated)")
            if num_classes is not None and int(tok) >= num_classes:
                raise SubmissionError(f"{source}:{line_no}: survey {sid}: species id {tok} is outside 0..{num_classes - 1}")
        n += 1
    missing = want - seen
    if missing:
        ex = sorted(missing)[:5]
        raise SubmissionError(f"{source}: {len(missing)} test survey(s) have no row, e.g. {ex}; write exactly one row per test survey")
    return n


def validate_submission_file(path: str | Path, test_ids: Sequence[int] | np.ndarray, num_classes: int | None = None) -> int:
    """:func:`validate_submission_text` on a file."""
    p = Path(path)
    if not p.exists():
        raise SubmissionError(f"submission {p} does not exist")
    return validate_submission_text(p.read_text(), test_ids, str(p), num_classes)


def write_submission(path: str | Path, rows: Mapping[int, Iterable[int]], test_ids: Sequence[int] | np.ndarray, num_classes: int | None = None) -> int:
    """Validate, then write atomically. Nothing appears at ``path`` unless the content is valid."""
    text = format_submission(rows)
    n = validate_submission_text(text, test_ids, str(path), num_classes)
    with atomic_file(path) as fh:
        fh.write(text)
    return n
