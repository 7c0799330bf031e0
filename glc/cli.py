"""``python -m glc``: scoring, submission validation, the synthetic world and its oracle.

Subcommands::

    score --solution SOL.csv --submission SUB.csv       sample-F1 (competition metric) + micro P/R/F1
    validate-submission SUB.csv --test-metadata TEST.csv  exit 1 naming the first problem
    synth --scale {tiny,demo,full} --seed N --out DIR    generate a synthetic GLC24 world
    oracle --world DIR                                   the synthetic world's best achievable sample-F1
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

#: Exit code of a user error (bad input file, bad argument): a message, never a traceback.
EXIT_USER_ERROR = 2


class UserError(ValueError):
    """A problem with the command's arguments or input files (exit code 2, message only)."""


def _cmd_score(a: argparse.Namespace) -> int:
    from glc.data.metadata import read_species_lists
    from glc.metrics import score_submission

    if a.solution == "-" and a.submission == "-":
        raise UserError("only one of --solution and --submission can be read from standard input ('-')")
    res = score_submission(read_species_lists(a.solution), read_species_lists(a.submission))
    print(f"sample_f1={res['sample_f1']:.6f}")
    print(f"micro_precision={res['micro_precision']:.6f} micro_recall={res['micro_recall']:.6f} micro_f1={res['micro_f1']:.6f}")
    print(f"n_surveys={res['n_surveys']} n_missing={res['n_missing']} n_extra={res['n_extra']}")
    return 0


def _cmd_validate(a: argparse.Namespace) -> int:
    from glc.data.metadata import read_test_survey_ids
    from glc.submission import SubmissionError, validate_submission_file

    if a.submission == "-" and a.test_metadata == "-":
        raise UserError("only one of the submission and --test-metadata can be read from standard input ('-')")
    test_ids = read_test_survey_ids(a.test_metadata)  # every test survey, even one whose other fields are broken
    try:
        n = validate_submission_file(a.submission, test_ids, a.num_classes)
    except SubmissionError as e:
        print(f"INVALID: {e}", file=sys.stderr)
        return 1
    print(f"OK: {a.submission} has one valid row for each of the {n} test surveys")
    return 0


def _cmd_synth(a: argparse.Namespace) -> int:
    from glc.synth import generate_world

    out = Path(a.out) if a.out else Path("data/synthetic") / f"{a.scale}-seed{a.seed}"
    summary = generate_world(out, scale=a.scale, seed=a.seed, flavour=a.flavour)
    print(f"synthetic world ({a.scale}, seed {a.seed}) written to {out}")
    if isinstance(summary, dict) and "seconds" in summary:
        print(f"generated in {summary['seconds']:.1f} s")
    return 0


def _cmd_oracle(a: argparse.Namespace) -> int:
    from glc.synth.oracle import oracle_sample_f1

    print(f"oracle_sample_f1={oracle_sample_f1(a.world):.6f}")
    return 0


def _cmd_show(a: argparse.Namespace) -> int:
    import json

    from glc.tasks import Report, Submission

    kw = {"experiment": a.experiment, "data_root": a.data_root, "out_root": a.out_root}
    sub, rep = Submission(**kw), Report(**kw)
    if not sub.complete():
        print(f"experiment {a.experiment!r} has no submission yet under {a.out_root}; run: make {a.experiment}", file=sys.stderr)
        return 1
    report = json.loads((rep.output().dir / "report.json").read_text())
    v = report["validation"]
    print(f"validation sample-F1 ({report['config']['model']['kind']}, decoder {report['decoder']}): {v['sample_f1']:.4f}")
    for name, b in report["baselines"].items():
        print(f"  reference {name}: {b['sample_f1']:.4f}")
    print(f"submission: {Path(sub.output().path).resolve()}")
    print(f"report:     {(rep.output().dir / 'report.md').resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="python -m glc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("score", help="score a submission against a solution file")
    s.add_argument("--solution", required=True, help="CSV surveyId,target_species_ids (or a submission-format file); - = stdin")
    s.add_argument("--submission", required=True, help="CSV surveyId,predictions; - = stdin")
    s.set_defaults(func=_cmd_score)

    v = sub.add_parser("validate-submission", help="check a submission file against the test metadata")
    v.add_argument("submission", help="CSV surveyId,predictions; - = stdin")
    v.add_argument("--test-metadata", required=True, help="GLC24_PA_metadata_test.csv; - = stdin")
    v.add_argument("--num-classes", type=int, default=None, help="also require ids < this (e.g. 11255)")
    v.set_defaults(func=_cmd_validate)

    g = sub.add_parser("synth", help="generate a synthetic GLC24 world")
    g.add_argument("--scale", choices=["tiny", "demo", "full"], default="demo")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default=None, help="output folder (default data/synthetic/<scale>-seed<seed>)")
    g.add_argument("--flavour", choices=["kaggle", "seafile"], default="kaggle")
    g.set_defaults(func=_cmd_synth)

    o = sub.add_parser("oracle", help="oracle sample-F1 of a synthetic world")
    o.add_argument("--world", required=True)
    o.set_defaults(func=_cmd_oracle)
    w = sub.add_parser("show", help="print an experiment's validation F1 and the paths of its submission and report")
    w.add_argument("--experiment", default="frequency")
    w.add_argument("--data-root", default="data/synthetic/demo-seed0")
    w.add_argument("--out-root", default="out")
    w.set_defaults(func=_cmd_show)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = build_parser().parse_args(argv)
    from glc.config import ConfigError
    from glc.data.errors import DataError

    try:
        return int(args.func(args) or 0)
    except (UserError, DataError, ConfigError) as e:  # the user's input: say what is wrong, no traceback
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
