"""``python -m glc``: scoring, submission validation, the synthetic world and its oracle.

Subcommands::

    score --solution SOL.csv --submission SUB.csv       sample-F1 (competition metric) + micro P/R/F1
    validate-submission SUB.csv --test-metadata TEST.csv  exit 1 naming the first problem
    synth --scale {tiny,demo,full} --seed N --out DIR    generate a synthetic GLC24 world
    oracle --world DIR                                   the synthetic world's best achievable sample-F1
    show --experiment NAME                               an experiment's scores and the paths of its outputs
    predict --experiment NAME --points PTS.csv           top species with probabilities at any lon/lat
    map --experiment NAME [--species ID,..] [--richness] species/richness GeoTIFF (EPSG:3035) + PNG previews
    holdout-distances --data-root DIR [--block-km B ..]  km from test / hold-out surveys to the nearest training one
"""

from __future__ import annotations

import argparse
import logging
import os
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
    print(
        f"micro_precision={res['micro_precision']:.6f} "
        f"micro_recall={res['micro_recall']:.6f} micro_f1={res['micro_f1']:.6f}"
    )
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
    from glc.tasks.synth import world_dir_name

    if a.edition == "glc25" and a.flavour not in (None, "glc25"):
        raise UserError(f"--flavour {a.flavour} names a GLC24 distribution; GLC25 has one layout (drop --flavour)")
    flavour = "glc25" if a.edition == "glc25" else (a.flavour or "kaggle")
    if a.po_records is not None and a.add_po_patches:
        raise UserError(
            "--po-records draws the presence-only records of a new world; --add-po-patches renders the patches of an "
            "existing world and draws no records: drop one of them"
        )
    if a.po_records is not None and a.po_records < 1:
        raise UserError(f"--po-records {a.po_records}: expected a positive number of presence-only records")
    out = (
        Path(a.out) if a.out else Path("data/synthetic") / world_dir_name(a.edition, a.scale, a.seed, a.po_records or 0)
    )
    if a.add_po_patches:
        from glc.synth.world import add_po_patches

        try:
            done = add_po_patches(out, a.po_patches or None)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e)) from e
        print(f"{done['po_patches']} presence-only patches rendered into {out} in {done['seconds']:.1f} s")
        return 0
    from glc.synth.scales import scale_with_po_records

    summary = generate_world(
        out,
        scale=scale_with_po_records(a.scale, a.po_records),
        seed=a.seed,
        flavour=flavour,
        po_patch_sites=a.po_patches,
    )
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

    from glc.storage import local_root
    from glc.tasks import Report, Submission

    kw = {"experiment": a.experiment, "data_root": a.data_root, "out_root": a.out_root}
    sub, rep = Submission(**kw), Report(**kw)
    if sub.complete() and rep.complete():  # a URL out-root: the local copies of what this reads
        sub.ensure_local()
        rep.ensure_local()
    if not sub.complete():
        print(
            f"experiment {a.experiment!r} has no submission yet under {a.out_root}; run: make {a.experiment}",
            file=sys.stderr,
        )
        return 1
    report = json.loads((rep.output().dir / "report.json").read_text())
    v = report["validation"]
    print(
        f"validation sample-F1 ({report['config']['model']['kind']}, decoder {report['decoder']}): {v['sample_f1']:.4f}"
    )
    for name, b in report["baselines"].items():
        print(f"  reference {name}: {b['sample_f1']:.4f}")
    truth = local_root(a.data_root) / "_truth" / "GLC24_SOLUTION_FILE.csv"
    if truth.exists():  # a synthetic world: its hidden test labels score the submission as Kaggle would
        from glc.data.metadata import read_species_lists
        from glc.metrics import score_submission

        res = score_submission(read_species_lists(truth), read_species_lists(sub.output().path))
        print(
            f"leaderboard (hidden test labels, {res['n_surveys']} "
            f"surveys): {a.experiment} sample-F1 {res['sample_f1']:.4f}"
        )
    print(f"submission: {Path(sub.output().path).resolve()}")
    print(f"report:     {(rep.output().dir / 'report.md').resolve()}")
    print(f"            {(rep.output().dir / 'report.html').resolve()} ({len(report.get('figures', []))} figures)")
    if report.get("richness_map"):
        print(f"map:        {Path(report['richness_map']).resolve()}")
        print(f"            {(Path(report['richness_map']).parent / 'richness.png').resolve()}")
    return 0


def _species_ids(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError as e:
        raise UserError(
            f"--species {text!r}: expected comma-separated integer species ids, e.g. --species 1234,5678"
        ) from e


def _bbox(text: str | None) -> list[float]:
    if not text:
        return []
    try:
        vals = [float(t) for t in text.split(",")]
    except ValueError as e:
        raise UserError(f"--bbox {text!r}: expected west,south,east,north in degrees, e.g. --bbox -10,35,30,60") from e
    if len(vals) != 4:
        raise UserError(f"--bbox {text!r}: expected 4 numbers west,south,east,north, got {len(vals)}")
    return vals


def _cmd_predict(a: argparse.Namespace) -> int:
    from glc.predict.points import read_points, write_point_predictions
    from glc.tasks.maps import build_point_model

    try:
        points = read_points(a.points)
    except ValueError as e:
        raise UserError(str(e)) from e
    try:
        model = build_point_model(a.experiment, a.data_root, a.out_root)
    except ValueError as e:  # PointInputError and config errors: the user's choice of experiment
        raise UserError(str(e)) from e
    frame = model.frame(points)
    scores = model.scores(frame, top=max(int(a.top), 1))
    out = Path(a.out) if a.out else Path(a.points).with_name(Path(a.points).stem + f"-{a.experiment}-predictions.csv")
    if a.points == "-" and not a.out:
        raise UserError("--out is required when the points come from standard input")
    table = write_point_predictions(out, frame, scores, int(a.top))
    counts = table["status"].value_counts().to_dict()
    print(f"{len(table)} point(s): " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    bad = table[table["status"] != "ok"]
    for _, r in bad.head(20).iterrows():
        print(
            f"  point id={r['id']} lon={r['lon']:.5f} lat={r['lat']:.5f}: {r['status']} (not scored)", file=sys.stderr
        )
    if len(bad) > 20:
        print(f"  ... and {len(bad) - 20} more not scored (see the status column)", file=sys.stderr)
    print(f"predictions: {out.resolve()}")
    return 1 if a.strict and len(bad) else 0


def _cmd_map(a: argparse.Namespace) -> int:
    import json

    import luigi

    from glc.predict.points import check_point_capable
    from glc.tasks.maps import SpeciesMap

    species = _species_ids(a.species)
    if not species and not a.richness:
        raise UserError("give --species ID[,ID...] and/or --richness")
    task = SpeciesMap(
        experiment=a.experiment,
        data_root=a.data_root,
        out_root=a.out_root,
        species=species,
        richness=bool(a.richness),
        resolution_km=float(a.resolution_km),
        bbox=_bbox(a.bbox),
        crs=a.crs,
    )
    try:
        check_point_capable(task.cfg)
        from glc.data.extent import data_extent
        from glc.predict.maps import map_grid

        map_grid(
            data_extent(task.local_data_root), task.bbox or None, task.resolution_km, task.crs
        )  # bad bbox/res: fail fast
        if species:
            from glc.tasks.maps import build_point_model

            build_point_model(a.experiment, a.data_root, a.out_root).species_positions(species)
    except KeyError as e:  # an unknown species id
        raise UserError(str(e.args[0]) if e.args else str(e)) from e
    except ValueError as e:
        raise UserError(str(e)) from e
    ok = luigi.build([task], local_scheduler=True, log_level="WARNING")
    if not ok or not task.complete():
        print(f"error: the map of {a.experiment!r} was not written; see the log above", file=sys.stderr)
        return 1
    summary = json.loads((task.output().dir / "map.json").read_text())
    print(
        f"map: {summary['path']} ({summary['width']} x {summary['height']} cells of {summary['resolution_km']:g} km, "
        f"{summary['crs']}; {summary['land']} land cells; bands {summary['bands']})"
    )
    for png in summary["previews"]:
        print(f"preview: {png}")
    return 0


def _cmd_encoder(a: argparse.Namespace) -> int:
    """Pretrain (if needed) and embed with one encoder of tasks/encoders/; print its evaluation and paths."""
    import json

    import luigi

    from glc.tasks.pretrain import Embeddings

    task = Embeddings(encoder=a.encoder, data_root=a.data_root, out_root=a.out_root)
    ok = luigi.build([task], local_scheduler=True, log_level="WARNING")
    if not ok or not task.complete():
        print(f"error: encoder {a.encoder!r} was not pretrained / embedded; see the log above", file=sys.stderr)
        return 1
    enc_dir = task.requires()["encoder"].output().dir
    s = json.loads((enc_dir / "summary.json").read_text())
    ev = s["evaluation"]
    print(
        f"encoder {task.key()} ({s['kind']}, objective {s['objective']}): {s['sites']} sites, "
        f"best {s['monitor']} = {s.get('best_monitor')}, {s.get('epochs_to_best', 0)} epochs to best, "
        f"{s.get('train_samples_per_s', 0)} samples/s on {s['device']}"
    )
    if "heldout_triplet_acc" in ev:
        print(f"  held-out triplet accuracy {ev['heldout_triplet_acc']:.4f} on {ev['heldout_triplets']} triplets")
    if "trained" in ev:
        t, r = ev["trained"], ev["random"]
        print(
            f"  retrieval over {ev['grid_points']:,} grid locations, {t['n']} test images: "
            f"median {t['median_km']:.1f} km, "
            f"p90 {t['p90_km']:.1f} km (random embeddings: median {r['median_km']:.1f} km, p90 {r['p90_km']:.1f} km; "
            f"ratio {ev['median_ratio']:.3f})"
        )
        print(f"  heatmap: {enc_dir / ev['heatmap']}")
    skipped = {k: v for k, v in s["counts"].items() if v}
    if skipped:
        print(f"  counted: {skipped}")
    print(f"encoder: {enc_dir / 'encoder.pt'}")
    print(f"embeddings: {task.output().dir / 'data'}")
    return 0


def _cmd_holdout_distances(a: argparse.Namespace) -> int:
    from glc.data.layout import LayoutError, detect_layout
    from glc.data.metadata import read_pa_metadata, survey_table
    from glc.eval.split import holdout_distances
    from glc.geo import to_laea

    try:
        layout = detect_layout(a.data_root)
    except LayoutError as e:
        raise UserError(str(e)) from e
    frames = {
        split: read_pa_metadata(layout.pa_metadata(split), split, on_bad_rows="skip") for split in ("train", "test")
    }
    for split, df in frames.items():
        if df.attrs.get("bad_rows"):
            first = "; ".join(f"line {line}: {why}" for line, why in df.attrs["bad_row_reasons"][:3])
            print(f"skipped {df.attrs['bad_rows']} bad row(s) of {layout.pa_metadata(split)}, first: {first}")
    train, test = survey_table(frames["train"]), survey_table(frames["test"])
    x, y = to_laea(train["lon"].to_numpy(), train["lat"].to_numpy())
    qx, qy = to_laea(test["lon"].to_numpy(), test["lat"].to_numpy())
    try:
        scheme = a.scheme or layout.edition.validation_scheme
        table = holdout_distances(x, y, qx, qy, tuple(a.block_km), a.val_fraction, a.seed, scheme=scheme)
    except ValueError as e:
        raise UserError(str(e)) from e
    print(
        f"km from each survey to the nearest training survey ({len(train)} training, {len(test)} test surveys of "
        f"{layout.root}); hold-out rows: [validation] scheme = {scheme!r}, block_km = B, "
        f"val_fraction = {a.val_fraction:g}, seed {a.seed}"
    )
    print(table.to_string(na_rep="-"))
    ratio = table["median_ratio"].drop("test")
    if ratio.notna().any():
        print(f"closest median to the test surveys': {ratio.sub(1.0).abs().idxmin()}")
    return 0


def _add_roots(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default="data/synthetic/demo-seed0", help="GLC24 data root (default: the demo world)")
    p.add_argument("--out-root", default="out", help="root folder of the artifacts (default out)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(
        prog="python -m glc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--tasks-dir",
        default=None,
        metavar="DIR",
        help="folder of the experiment files (default: $GLC_TASKS_DIR, else ./tasks, else the checkout's tasks/)",
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("score", help="score a submission against a solution file")
    s.add_argument(
        "--solution", required=True, help="CSV surveyId,target_species_ids (or a submission-format file); - = stdin"
    )
    s.add_argument("--submission", required=True, help="CSV surveyId,predictions; - = stdin")
    s.set_defaults(func=_cmd_score)

    v = sub.add_parser("validate-submission", help="check a submission file against the test metadata")
    v.add_argument("submission", help="CSV surveyId,predictions; - = stdin")
    v.add_argument("--test-metadata", required=True, help="GLC24_PA_metadata_test.csv; - = stdin")
    v.add_argument("--num-classes", type=int, default=None, help="also require ids < this (e.g. 11255)")
    v.set_defaults(func=_cmd_validate)

    g = sub.add_parser("synth", help="generate a synthetic GLC24 or GLC25 world")
    g.add_argument(
        "--edition",
        choices=["glc24", "glc25"],
        default="glc24",
        help="glc24 (default) or glc25: GeoTIFF patches, EnvironmentalValues CSVs, no rasters, shifted test set",
    )
    g.add_argument("--scale", choices=["tiny", "demo", "full"], default="demo")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--out",
        default=None,
        help="output folder (default data/synthetic/<scale>-seed<seed>, glc25-<scale>-seed<seed> for GLC25)",
    )
    g.add_argument("--flavour", choices=["kaggle", "seafile"], default=None, help="GLC24 distribution (default kaggle)")
    g.add_argument(
        "--po-patches",
        type=int,
        default=0,
        metavar="N",
        help="also render RGB+NIR patches for the first N presence-only surveys (the PO ETL path; default 0)",
    )
    g.add_argument(
        "--po-records",
        type=int,
        default=None,
        metavar="N",
        help="about N presence-only records instead of the scale's (demo 30,000: 0.18 per PA presence; GLC24 has about "
        "3); default folder data/synthetic/<scale>-seed<seed>-po<N>",
    )
    g.add_argument(
        "--add-po-patches",
        action="store_true",
        help="render the presence-only patches of the existing world at --out (or the default path; the first "
        "--po-patches N surveys, all when N is 0) and leave its other files untouched (image nets' PO term)",
    )
    g.set_defaults(func=_cmd_synth)

    o = sub.add_parser("oracle", help="oracle sample-F1 of a synthetic world")
    o.add_argument("--world", required=True)
    o.set_defaults(func=_cmd_oracle)
    w = sub.add_parser("show", help="print an experiment's validation F1 and the paths of its submission and report")
    w.add_argument("--experiment", default="knn")
    _add_roots(w)
    w.set_defaults(func=_cmd_show)

    hd = sub.add_parser(
        "holdout-distances",
        help="km from the test surveys and from each block size's validation hold-out to the nearest training survey",
    )
    hd.add_argument("--data-root", default="data/synthetic/demo-seed0", help="data root (default: the demo world)")
    hd.add_argument("--block-km", type=float, nargs="+", default=[10.0, 25.0, 50.0, 100.0], help="block sizes (km)")
    hd.add_argument("--val-fraction", type=float, default=0.2, help="fraction held out, as [validation] val_fraction")
    hd.add_argument("--seed", type=int, default=0, help="seed of the block order, as the experiment's seed")
    hd.add_argument(
        "--scheme",
        choices=("blocks", "test_like"),
        default=None,
        help="hold-out scheme, as [validation] scheme (default: the edition's: blocks on GLC24, test_like on GLC25)",
    )
    hd.set_defaults(func=_cmd_holdout_distances)

    en = sub.add_parser(
        "encoder", help="pretrain + embed with a self-supervised encoder (tasks/encoders/); print its evaluation"
    )
    en.add_argument("--encoder", default="satclip", help="encoder name in tasks/encoders/ or a .toml path")
    _add_roots(en)
    en.set_defaults(func=_cmd_encoder)

    pr = sub.add_parser("predict", help="top species with probabilities at any lon/lat (location models)")
    pr.add_argument("--experiment", required=True, help="experiment name in tasks/ or a .toml path")
    pr.add_argument(
        "--points", required=True, help="CSV (or parquet) with lon,lat and optionally id,year,region,country; - = stdin"
    )
    pr.add_argument(
        "--out", default=None, help="output CSV or .parquet (default <points>-<experiment>-predictions.csv)"
    )
    pr.add_argument("--top", type=int, default=30, help="species per point (default 30)")
    pr.add_argument("--strict", action="store_true", help="exit 1 when any point is at sea or outside the data extent")
    _add_roots(pr)
    pr.set_defaults(func=_cmd_predict)

    m = sub.add_parser("map", help="species / richness GeoTIFF of an experiment (+ PNG previews)")
    m.add_argument("--experiment", required=True, help="experiment name in tasks/ or a .toml path")
    m.add_argument("--species", default=None, help="comma-separated species ids, one band each")
    m.add_argument("--richness", action="store_true", help="add a richness band (sum of every species' probability)")
    m.add_argument(
        "--bbox",
        default=None,
        help=(
            "west,south,east,north in degrees (default: the data extent); "
            "write --bbox=-10,35,30,60 when it starts with a minus"
        ),
    )
    m.add_argument("--resolution-km", type=float, default=25.0, help="cell size in km (default 25)")
    m.add_argument("--crs", default="EPSG:3035", help="projected CRS of the map (default EPSG:3035)")
    _add_roots(m)
    m.set_defaults(func=_cmd_map)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    args = build_parser().parse_args(argv)
    if args.tasks_dir:  # every experiment lookup (and Luigi tasks started from here) reads the variable
        os.environ["GLC_TASKS_DIR"] = args.tasks_dir
    from glc.config import ConfigError
    from glc.data.errors import DataError

    try:
        return int(args.func(args) or 0)
    except (UserError, DataError, ConfigError) as e:  # the user's input: say what is wrong, no traceback
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
