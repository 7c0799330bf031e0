"""The report's text for people: counts as sentences, the decoder's settings as a table, never a Python repr."""

from __future__ import annotations

from glc.eval.report import decoder_settings, rejected_rows, survey_counts


def test_survey_counts_read_as_a_sentence() -> None:
    d = {
        "surveys": {"test": 1661, "train": 10000},
        "n_train_fit": 8001,
        "n_validation": 1999,
        "mean_species_per_validation_survey": 17.46,
    }
    assert survey_counts(d) == (
        "10,000 train and 1,661 test surveys; fitted on 8,001, validated on 1,999 "
        "(mean 17.5 species per validation survey)"
    )


def test_rejected_rows_name_the_split_the_reasons_and_examples() -> None:
    bad = {
        "empty_species_rows": 29,
        "surveys_without_species": 2,
        "test_rows": {"bad_rows": 0, "by_reason": {}, "examples": [], "total_rows": 1661},
        "train_rows": {
            "bad_rows": 3,
            "by_reason": {"lon not numeric": 2, "too many fields": 1},
            "examples": ["line 12: lon not numeric"],
            "total_rows": 173704,
        },
    }
    assert rejected_rows(bad) == [
        "test metadata: 0 of 1,661 rows rejected",
        "train metadata: 3 of 173,704 rows rejected (2 lon not numeric, 1 too many fields); "
        "e.g. line 12: lon not numeric",
        "train rows with an empty speciesId: 29 (dropped and counted; 2 surveys had no species left and were dropped)",
    ]
    assert rejected_rows(5) == ["rejected metadata rows: 5"]


def test_decoder_settings_are_named_and_rounded() -> None:
    rows = dict(
        decoder_settings(
            {
                "a": 1.0,
                "b": -1.0,
                "f1": 0.5081036812042488,
                "k_max": 100,
                "kind": "expected_f1",
                "method": "approx",
                "name": "expected_f1",
                "new_field": 3,
            }
        )
    )
    assert rows["decoder"] == "expected_f1" and "name" not in rows
    assert rows["validation sample-F1 (all validation surveys)"] == "0.5081"
    assert rows["largest set"] == "100" and rows["new field"] == "3"
