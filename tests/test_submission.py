"""Submission contract: header, one row per test survey, non-empty integer lists; atomic validated writes."""

from __future__ import annotations

import pytest

from glc.submission import SubmissionError, format_submission, validate_submission_text, write_submission

IDS = [642, 1792, 3256]


def test_format_is_sorted_and_round_trips():
    text = format_submission({3256: [5, 1], 642: [7], 1792: [2, 3, 4]})
    assert text == "surveyId,predictions\n642,7\n1792,2 3 4\n3256,5 1\n"
    assert validate_submission_text(text, IDS) == 3


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("id,predictions\n642,1\n", r":1: header must be 'surveyId,predictions'"),
        ("surveyId,predictions\n642,1\n1792,2\n", r"1 test survey\(s\) have no row, e.g. \[3256\]"),
        ("surveyId,predictions\n642,\n1792,2\n3256,3\n", r":2: survey 642 has an empty prediction list"),
        ("surveyId,predictions\n642,1\n642,1\n", r":3: surveyId 642 appears twice \(first on line 2\)"),
        (
            "surveyId,predictions\n642,1.0\n",
            r":2 \(surveyId 642\): predictions '1.0' is not a list of space-separated integers",
        ),
        ("surveyId,predictions\n999,1\n", r":2: surveyId 999 is not a test survey"),
        ("surveyId,predictions\n642,1,2\n", r":2: expected 2 comma-separated fields"),
    ],
)
def test_invalid_submissions_name_the_problem(text, match):
    with pytest.raises(SubmissionError, match=match):
        validate_submission_text(text, IDS)


def test_out_of_vocabulary_ids_rejected_when_asked():
    with pytest.raises(SubmissionError, match=r"species id 11255 is outside 0\.\.11254"):
        validate_submission_text("surveyId,predictions\n642,11255\n", [642], num_classes=11255)


def test_invalid_content_never_reaches_disk(tmp_path):
    p = tmp_path / "submission.csv"
    with pytest.raises(SubmissionError):
        write_submission(p, {642: [1], 1792: []}, [642, 1792])
    assert not p.exists()
    write_submission(p, {642: [1], 1792: [2]}, [642, 1792])
    assert p.read_text() == "surveyId,predictions\n642,1\n1792,2\n"
