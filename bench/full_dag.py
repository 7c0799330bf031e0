"""The whole DAG on the full-scale synthetic world: per-task wall time, peak RSS of the process tree, disk, scores.

``python -m bench.full_dag [--edition glc24|glc25] [--data-root data/synthetic/full-seed0] [--out-root out-bench/full]
[--experiments a,b | --budget-hours H]`` (``make bench-full [EDITION=glc25]``) generates the edition's full world if it
is missing (GLC24: 88,987 PA-train + 4,716 PA-test surveys + PO, Kaggle layout; GLC25: ``glc25-full-seed0``, its test
set three times as large and shifted), then runs, one Luigi invocation per step in a child process:

1. the ETL tasks one by one (``SurveyTable``, ``EnvFeatures``, ``CubeFeatures``, ``PatchTiles``, ``RasterTiles`` for
   every raster group where the edition ships rasters, ``Neighbours``: the exact PA neighbour table the graph features
   and GFV read), so each task's wall time and peak memory are its own;
2. ``Submission`` for the goal experiments (:data:`BENCHES`; GLC24: ``frequency``, ``knn``, ``geolocation-asl``:
   neighbours, kNN, the geolocation MLP through Petastorm and Lightning; GLC25: ``frequency``, ``knn``, ``gbm``), then
   every other CPU experiment in ``tasks/`` the edition does not refuse (listed under ``refused``) (cheapest first,
   by their demo-world wall time in ``bench/results/synth_leaderboard.json``; a late fusion after its members) while
   the ``--budget-hours`` last;
   an experiment not started for lack of budget is listed as such, never silently absent.

Each child's console output goes to ``{out-root}/_logs/{step}.log`` as it comes (``tail -f`` it to follow a long step; a
failed step's last lines are also in its row). Each child registers Luigi's ``PROCESSING_TIME`` event, so every task the
step ran (``Neighbours``, ``ModelInputs``, ``TrainModel``, ``Predict``, ``Decoder``, ...) has its own seconds and, where
it has one, its experiment (the table names the other experiments' tasks a step ran, e.g. a late fusion's members). The
parent samples the child's whole process tree (driver + Spark JVM + Python workers + loader workers) every 0.5 s for the
peak RSS and the CPU seconds of the step's processes (sampled, so a lower bound) beside the whole machine's busy CPU
seconds over the same wall time (the difference is what else shared the machine), and measures the out-root's bytes
after each step.
Every submission is scored on the world's hidden test labels as Kaggle would (:func:`bench.leaderboard.score`).
Result: ``bench/results/full_dag.json`` and its table in ``docs/results.md`` (between the ``full-dag`` markers;
``--table`` rewrites it from the last JSON; GLC25: ``full_dag_glc25.json``, ``docs/glc25.md``), both rewritten after
every step, so a run stopped from outside keeps every step it finished; the goal: ETL + neighbours + kNN + geolocation
<= 2 h on 2 cores, peak RSS <= 16 GB. Existing complete artifacts are not rebuilt (Luigi),
so use a fresh ``--out-root`` (``--fresh`` removes it first) for honest times. ``--merge --experiments a,b`` adds
experiments to an existing ``full_dag.json`` later (same data root; the ETL rows are kept: an ETL step whose
artifacts the out-root lacks, e.g. on a fresh machine, is rebuilt first and recorded apart, in ``etl_rebuilds``);
with ``--lazy-etl`` no ETL step runs up front and each experiment builds only what it reads (its row says so).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.leaderboard import update_readme

REPO = Path(__file__).resolve().parents[1]
GOAL_EXPERIMENTS = ("frequency", "knn", "geolocation-asl")
RSS_BUDGET_GB = 16.0
GOAL_HOURS = 2.0
#: The copy of the table in ``docs/results.md`` ("The whole DAG at full scale") sits between these markers.
README_MARKS = ("<!-- full-dag:start -->", "<!-- full-dag:end -->")


@dataclass(frozen=True)
class EditionBench:
    """What the full-DAG benchmark of one edition writes and which experiments make its goal.

    Attributes:
        result: the result file's stem (``bench/results/<result>.json``).
        doc: the document whose table copy it rewrites, between ``marks``.
        marks: the start and end markers of that table.
        goal: the experiments whose Submission (with the ETL) the goal times, in this order.
        leaderboard: the demo-world leaderboard's result stem the other experiments are ordered by (cheapest first).
    """

    result: str
    doc: Path
    marks: tuple[str, str]
    goal: tuple[str, ...]
    leaderboard: str

    @property
    def goal_words(self) -> str:
        return "ETL + Submission for " + ", ".join(self.goal)


#: One row per edition. GLC24's goal (neighbours, kNN, the geolocation MLP in 2 h) dates from the first full run;
#: GLC25's is ETL + kNN + the gbm re-ranker under the same 2 h / 16 GB budget.
BENCHES = {
    "glc24": EditionBench(
        "full_dag", REPO / "docs" / "results.md", README_MARKS, GOAL_EXPERIMENTS, "synth_leaderboard"
    ),
    "glc25": EditionBench(
        "full_dag_glc25",
        REPO / "docs" / "glc25.md",
        ("<!-- full-dag-glc25:start -->", "<!-- full-dag-glc25:end -->"),
        ("frequency", "knn", "gbm"),
        "synth_leaderboard_glc25",
    ),
}


def child_main(step: list[str], timings_path: str) -> int:
    """Run one Luigi step in this process, recording every task's processing seconds to ``timings_path``."""
    import luigi

    from glc.io import write_json

    times: list[dict[str, Any]] = []

    @luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)
    def _record(task: luigi.Task, seconds: float) -> None:
        row = {"task": task.task_family, "id": task.task_id, "seconds": round(float(seconds), 1)}
        if isinstance(getattr(task, "experiment", None), str):  # whose it is: a late fusion's step may run its members'
            row["experiment"] = task.experiment
        times.append(row)

    ok = luigi.run(["--module", "glc.tasks", *step, "--local-scheduler"], detailed_summary=False)
    write_json(Path(timings_path), {"ok": bool(ok), "tasks": times})
    return 0 if ok else 1


def dir_bytes(root: Path) -> int:
    """Bytes of every file under ``root`` (0 when it does not exist)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def step_log(out_root: Path, step: list[str]) -> Path:
    """Where :func:`run_step` writes a step's console output: ``{out_root}/_logs/{step}.log``, named by the step's
    words before its roots (``Submission_experiment_knn``, ``RasterTiles_raster-group_climate``)."""
    words: list[str] = []
    for w in step:
        if w in ("--data-root", "--out-root"):
            break
        words.append(w.lstrip("-"))
    slug = re.sub(r"[^A-Za-z0-9._-]+", "", "_".join(words))
    return out_root / "_logs" / f"{slug or 'step'}.log"


def run_step(step: list[str], env: dict[str, str], out_root: Path, timeout_s: float | None) -> dict[str, Any]:
    """One child Luigi invocation: wall seconds, peak tree RSS (GB), CPU seconds (its own, the machine's), per-task
    seconds, exit code.

    The child's console output (Luigi's and the trainers' progress, Spark's warnings) goes line by line to
    :func:`step_log` as it comes (appended, so a step rerun after a stop keeps the earlier attempt's lines above), so
    a long step can be followed with ``tail -f``; its last lines are the row's ``stderr_tail`` when it fails."""
    import collections

    import psutil

    from bench.synth import _tree_rss

    def busy() -> float:
        c = psutil.cpu_times()
        return c.user + c.nice + c.system + getattr(c, "irq", 0.0) + getattr(c, "softirq", 0.0)

    with tempfile.TemporaryDirectory() as tmp:
        timings = Path(tmp) / "timings.json"
        log = step_log(out_root, step)
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"{log.stem}: follow it with tail -f {log}", flush=True)
        busy0 = busy()
        cpu: dict[tuple[int, float], float] = {}  # (pid, create time) -> last seen user + system seconds
        t0 = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.full_dag", "--child", timings.as_posix(), "--", *step],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        proc = psutil.Process(child.pid)
        peak, timed_out = 0, False
        import threading

        err_lines: collections.deque[str] = collections.deque(maxlen=400)

        def pump() -> None:
            with log.open("a", encoding="utf-8") as f:
                f.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(step)}\n")
                for line in child.stderr or []:
                    err_lines.append(line)
                    f.write(line)
                    f.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        while child.poll() is None:
            peak = max(peak, _tree_rss(proc))
            try:
                members = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                members = []
            for p in members:
                try:
                    with p.oneshot():
                        t = p.cpu_times()
                        cpu[(p.pid, p.create_time())] = t.user + t.system
                except psutil.Error:
                    pass
            if timeout_s is not None and time.perf_counter() - t0 > timeout_s:
                timed_out = True
                for p in [*proc.children(recursive=True), proc]:
                    try:
                        p.kill()
                    except psutil.Error:
                        pass
                child.wait()
                break
            time.sleep(0.5)
        reader.join(timeout=10)
        wall = time.perf_counter() - t0
        busy1 = busy()
        tasks = json.loads(timings.read_text())["tasks"] if timings.exists() else []
    row = {
        "step": " ".join(step),
        "seconds": round(wall, 1),
        "peak_rss_gb": round(peak / 2**30, 2),
        "cpu_seconds": round(sum(cpu.values()), 1),
        "machine_busy_cpu_seconds": round(busy1 - busy0, 1),
        "returncode": child.returncode,
        "tasks": tasks,
        "out_root_gb_after": round(dir_bytes(out_root) / 2**30, 2),
    }
    if timed_out:
        row["timed_out_after_s"] = timeout_s
    if child.returncode != 0:
        row["stderr_tail"] = "".join(err_lines)[-3000:]
    return row


def has_checkpoint(out_root: Path, cfg: dict[str, Any]) -> bool:
    """Whether ``out_root`` holds a ``last.ckpt`` of experiment ``cfg``'s model (``models/{name}-{hash}*``, the folds
    included), i.e. whether a step run now resumes a stopped training instead of starting over."""
    from glc.config import model_key

    return any(any(d.rglob("last.ckpt")) for d in out_root.glob(f"*/models/{cfg['name']}-{model_key(cfg)}*"))


def experiment_order(names: list[str], bench: EditionBench = BENCHES["glc24"]) -> list[str]:
    """Goal experiments first, then the rest by their demo-world DAG wall time (unknown last, by name).

    A late fusion comes after those of its members this run also has (cheap as it is on its own, it would otherwise
    train them inside its own step and their time would be billed to it).
    """
    path = REPO / "bench" / "results" / f"{bench.leaderboard}.json"
    demo = (
        {r["experiment"]: r.get("wall_seconds") for r in json.loads(path.read_text())["experiments"]}
        if path.exists()
        else {}
    )
    goal = [n for n in bench.goal if n in names]
    rest = sorted((n for n in names if n not in goal), key=lambda n: (demo.get(n) is None, demo.get(n) or 0, n))
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:  # a member of this run first: the late fusion reads it
        if name in ordered or name in path:
            return
        for m in members(name):
            if m in names:
                visit(m, (*path, name))
        ordered.append(name)

    for n in goal + rest:
        visit(n, ())
    return ordered


def members(name: str) -> tuple[str, ...]:
    """The experiments whose predictions experiment ``name`` reads (a late fusion's members; none for most kinds)."""
    from glc.config import load_experiment
    from glc.models.registry import get_model

    cfg = load_experiment(name)
    return tuple(get_model(cfg["model"]["kind"]).members(cfg["model"]))


def _step_name(row: dict[str, Any]) -> str:
    """An ETL row's step without its roots (``RasterTiles --raster-group climate``)."""
    return row["step"].split(" --data-root ")[0]


def _foreign_tasks(row: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The tasks of other experiments a step ran (a late fusion's members), by experiment."""
    out: dict[str, list[dict[str, Any]]] = {}
    for t in row.get("tasks", []):
        if t.get("experiment") not in (None, row.get("experiment")):
            out.setdefault(t["experiment"], []).append(t)
    return out


def _task_list(tasks: list[dict[str, Any]]) -> str:
    return f"{sum(t['seconds'] for t in tasks):.0f} s: {', '.join(dict.fromkeys(t['task'] for t in tasks))}"


def _peaks(row: dict[str, Any]) -> list[float]:
    """The peak RSS of each attempt of a step: its own and those of the earlier attempts a step timeout killed."""
    return [row["peak_rss_gb"], *(e["peak_rss_gb"] for e in row.get("earlier_attempts", []) if "peak_rss_gb" in e)]


RanElsewhere = dict[str, list[tuple[str, list[dict[str, Any]]]]]  # experiment -> [(the step's experiment, its tasks)]


def _wall(row: dict[str, Any], ran_elsewhere: RanElsewhere) -> str:
    """A step's wall time, with the attempts a step timeout killed before the one that finished, the other
    experiments' tasks it ran and its own tasks that another experiment's step ran (``ran_elsewhere``)."""
    text = f"{row['seconds']:.0f} s"
    if row.get("lazy_etl"):
        text += " (with the ETL artifacts it reads, built in this step: `--lazy-etl`)"
    if row.get("timed_out_after_s") is not None:
        text += " (a later `--merge` on the same out-root resumes from its last checkpoint)"
    earlier = row.get("earlier_attempts", [])
    if earlier:
        resumed = row.get("checkpoint_at_start", True)
        how = "resumed" if resumed else "not resumed: its checkpoint was not in the out-root, this attempt started over"
        # an earlier attempt after the first that found no checkpoint lost the attempts before it (a fresh machine)
        lost = [i + 1 for i, e in enumerate(earlier) if i > 0 and e.get("checkpoint_at_start") is False]
        if lost:
            which = ", ".join(str(i) for i in lost)
            also = "" if resumed else " also"
            how += (
                f"; attempt {which} of {len(earlier) + 1}{also} started over, its checkpoint not in the out-root"
                if len(lost) == 1
                else (
                    f"; attempts {which} of {len(earlier) + 1}{also} "
                    "started over, their checkpoints not in the out-root"
                )
            )
        text += (
            f" (+{sum(e['seconds'] for e in earlier):.0f} s in {len(earlier)} earlier attempt(s) "
            f"killed by the step timeout, {how})"
        )
    elif row.get("checkpoint_at_start") and "returncode" in row:
        # a checkpoint no attempt recorded here left (a run stopped from outside this tool, or an earlier complete fit)
        text += " (a `last.ckpt` was in the out-root when it started: the time of the run that left it is not in this)"
    for name, tasks in _foreign_tasks(row).items():
        text += f" (incl. {_task_list(tasks)} of `{name}`)"
    for owner, tasks in ran_elsewhere.get(row.get("experiment", ""), []):
        text += f" (+{_task_list(tasks)} run earlier in `{owner}`'s step)"
    if row.get("recovered_from"):
        text += f" (figures transcribed, not written by this tool: {row['recovered_from']})"
    return text


def _outcome_kind(row: dict[str, Any]) -> str:
    """How an experiment row ended: ``not_run``, ``scored``, ``timed_out`` (its step timeout stopped it; a later
    ``--merge`` resumes from its last checkpoint) or ``failed``. The table and the console summary both read it."""
    if "not_run" in row:
        return "not_run"
    if row.get("returncode") == 0 and "test_sample_f1" in row:
        return "scored"
    return "timed_out" if row.get("timed_out_after_s") is not None else "failed"


def outcome(row: dict[str, Any]) -> str:
    """One experiment row's outcome in words for the console summary: its score and wall time (all attempts), why it
    did not run, that the step timeout stopped it (resumable) or that it failed."""
    kind = _outcome_kind(row)
    if kind == "not_run":
        return f"not run: {row['not_run']}"
    if kind == "scored":
        total = row.get("seconds_all_attempts", row["seconds"])
        attempts = len(row.get("earlier_attempts", [])) + 1
        return f"test sample-F1 {row['test_sample_f1']:.4f}, {total} s" + (
            f" over {attempts} attempts" if attempts > 1 else ""
        )
    if kind == "timed_out":
        return (
            f"stopped by the step timeout after {row['seconds']} s (a later --merge on the same out-root resumes "
            "from its last checkpoint)"
        )
    return f"FAILED (exit {row.get('returncode')})"


def render_table(res: dict[str, Any]) -> str:
    """The README's markdown table of a ``full_dag.json`` ``results`` object: one line per ETL step and experiment.

    Experiments that did not run say why (budget, no GPU); a failed one says so with its exit code, so the table can
    never show a missing experiment as if it were fine.
    """
    lines = ["| step | wall | peak RSS (tree) | own CPU s / machine busy CPU s |", "|---|---|---|---|"]

    ran_elsewhere: RanElsewhere = {}
    for r in res.get("experiments", []):
        for name, tasks in _foreign_tasks(r).items():
            ran_elsewhere.setdefault(name, []).append((r["experiment"], tasks))

    def cells(r: dict[str, Any]) -> str:
        # a resumed step's figures are the finishing attempt's; the peak is the highest of all attempts (an earlier one
        # killed by the step timeout may have held more) and the earlier attempts' CPU seconds are added beside
        earlier = r.get("earlier_attempts", [])
        peak = f"{r['peak_rss_gb']:.2f} GB"
        if max(_peaks(r)) > r["peak_rss_gb"]:
            peak = f"{max(_peaks(r)):.2f} GB (in an earlier attempt; this one {r['peak_rss_gb']:.2f} GB)"
        cpu = f"{r['cpu_seconds']:.0f} / {r['machine_busy_cpu_seconds']:.0f}" if "cpu_seconds" in r else "not recorded"
        if any("cpu_seconds" in e for e in earlier):
            cpu += (
                f" (+{sum(e.get('cpu_seconds', 0.0) for e in earlier):.0f} / "
                f"{sum(e.get('machine_busy_cpu_seconds', 0.0) for e in earlier):.0f} earlier)"
            )
        return f"{_wall(r, ran_elsewhere)} | {peak} | {cpu} |"

    for r in res.get("etl", []):
        name = _step_name(r)
        status = "" if r["returncode"] == 0 else f" FAILED (exit {r['returncode']})"
        lines.append(f"| {name}{status} | {cells(r)}")
    for r in res.get("etl_rebuilds", []):  # not the ETL's figures: a later run's out-root lacked these artifacts
        status = "" if r["returncode"] == 0 else f" FAILED (exit {r['returncode']})"
        lines.append(
            f"| {_step_name(r)}{status}, rebuilt by run {r['invocation']} (its out-root lacked it) | {cells(r)}"
        )
    for r in sorted(res.get("experiments", []), key=lambda r: not r.get("goal")):  # the goal's experiments first
        name, kind = f"`{r['experiment']}`", _outcome_kind(r)
        if kind == "not_run":
            lines.append(f"| {name} | not run: {r['not_run'].split(' (')[0]} | | |")
        elif kind == "scored":
            lines.append(f"| {name} Submission, test sample-F1 **{r['test_sample_f1']:.3f}** | {cells(r)}")
        elif kind == "timed_out":
            lines.append(f"| {name} Submission, stopped by the step timeout | {cells(r)}")
        else:
            lines.append(f"| {name} Submission FAILED (exit {r['returncode']}) | {cells(r)}")
    if res.get("oracle_test_sample_f1") is not None:
        lines.append(
            f"| *oracle (true probabilities, expected-F1): test sample-F1 {res['oracle_test_sample_f1']:.3f}* | | | |"
        )
    return "\n".join(lines) + "\n"


def assemble(
    old: dict[str, Any],
    etl: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    *,
    merge: bool,
    etl_ok: bool,
    data_root: str,
    n_surveys: int | None,
    seconds: float,
    out_root_gb: float,
    rebuilds: Sequence[dict[str, Any]] = (),
    bench: EditionBench = BENCHES["glc24"],
) -> dict[str, Any]:
    """The ``results`` object of ``full_dag.json`` from the ETL rows and the experiment rows so far.

    With ``merge`` the earlier run's (``old``) experiment rows stay except those ``rows`` replace, and a row whose
    earlier run a step timeout stopped carries that attempt in ``earlier_attempts`` (its time counts too; the row's
    ``checkpoint_at_start`` says whether ``last.ckpt`` was there to resume from, and each earlier attempt keeps its
    own). ``rebuilds``: ETL steps this run had to redo because its out-root lacked their artifacts (a fresh machine),
    kept apart in ``etl_rebuilds`` (after the earlier runs' ones) so neither the ETL rows, the goal nor an
    experiment's step is billed for them. Pure (nothing given is changed), so it is called after every step: a partial
    result is a complete, valid file.
    ``seconds``: the wall time of every invocation so far; ``out_root_gb``: the out-root's size now (with ``merge``
    the result keeps the earlier runs' figure when that is larger).
    """
    rows = [dict(r) for r in rows]
    etl_rebuilds = [*(old.get("etl_rebuilds", []) if merge else []), *(dict(r) for r in rebuilds)]
    experiments = rows
    if merge:
        before = {r["experiment"]: r for r in old.get("experiments", [])}
        for r in rows:
            prev = before.get(r["experiment"], {})
            if "returncode" in r and prev.get("timed_out_after_s") is not None:
                r["earlier_attempts"] = [
                    *prev.get("earlier_attempts", []),
                    {
                        k: prev[k]
                        for k in (
                            "seconds",
                            "cpu_seconds",
                            "machine_busy_cpu_seconds",
                            "peak_rss_gb",
                            "timed_out_after_s",
                            "tasks",
                            "checkpoint_at_start",
                        )
                        if k in prev
                    },
                ]
        replaced = {r["experiment"] for r in rows}
        experiments = [dict(r) for r in old.get("experiments", []) if r["experiment"] not in replaced] + rows
    for r in experiments:
        if "returncode" in r:
            r["seconds_all_attempts"] = round(
                r["seconds"] + sum(e["seconds"] for e in r.get("earlier_attempts", [])), 1
            )
    ran = [r for r in experiments if "returncode" in r]
    goal_rows = [r for r in ran if r["goal"]]
    goal_seconds = sum(r["seconds"] for r in etl) + sum(r["seconds_all_attempts"] for r in goal_rows)
    goal_peak = max([r["peak_rss_gb"] for r in etl] + [p for r in goal_rows for p in _peaks(r)] or [0.0])
    goal_done = etl_ok and {r["experiment"] for r in goal_rows if r["returncode"] == 0} == set(bench.goal)
    return {
        "data_root": data_root,
        "surveys": n_surveys,
        "etl": list(etl),
        "etl_rebuilds": etl_rebuilds,
        "experiments": experiments,
        "etl_seconds": round(sum(r["seconds"] for r in etl), 1),
        "goal": {
            "steps": bench.goal_words,
            "seconds": round(goal_seconds, 1),
            "hours": round(goal_seconds / 3600, 3),
            "limit_hours": GOAL_HOURS,
            "peak_rss_gb": goal_peak,
            "limit_rss_gb": RSS_BUDGET_GB,
            "met": bool(goal_done and goal_seconds <= GOAL_HOURS * 3600 and goal_peak <= RSS_BUDGET_GB),
        },
        "total_seconds": round(seconds, 1),
        "invocations": int(old.get("invocations", 1)) + 1 if merge else 1,
        "max_peak_rss_gb": max(
            [r["peak_rss_gb"] for r in etl + etl_rebuilds] + [p for r in ran for p in _peaks(r)] or [0.0]
        ),
        # the largest out-root any run of this file measured: a fresh machine's holds only what its run rebuilt
        "out_root_gb": max(out_root_gb, float(old.get("out_root_gb", 0.0)) if merge else 0.0),
        "all_ok": etl_ok and all(r["returncode"] == 0 for r in ran),
    }


def report_row(row: dict[str, Any]) -> bool:
    """Print a finished step's row (one JSON line on stdout); a failed step's error tail goes to stderr, so a run's
    console says why it failed, not only ``FAILED (exit 1)``. Returns whether the step succeeded."""
    print(json.dumps({k: v for k, v in row.items() if k not in ("stderr_tail", "tasks")}), flush=True)
    ok = row.get("returncode") == 0
    if not ok:
        how = "was stopped by the step timeout" if row.get("timed_out_after_s") is not None else "failed"
        print(
            f"{_step_name(row)} {how} (exit {row.get('returncode')}); the end of its log:\n"
            f"{row.get('stderr_tail', '')}",
            file=sys.stderr,
            flush=True,
        )
    return ok


def _update_readme(table: str, bench: EditionBench = BENCHES["glc24"]) -> bool:
    """Rewrite the docs' copy of the table; say so on stderr when its markers are missing."""
    if update_readme(table, bench.doc, marks=bench.marks):
        return True
    doc = bench.doc.relative_to(REPO)
    print(f"{doc} has no {bench.marks[0]} ... {bench.marks[1]} markers: its table was not updated", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    """Run the full DAG and write ``bench/results/full_dag.json``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return child_main(argv[3:], argv[1])

    from bench.common import write_result
    from bench.leaderboard import _gpu, pick_experiments, score
    from glc.config import load_experiment
    from glc.data.layout import EDITIONS, RASTER_GROUPS
    from glc.features.sets import EditionError
    from glc.tasks.synth import world_dir_name

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--edition",
        choices=sorted(BENCHES),
        default="glc24",
        help="which edition's full world (default data root data/synthetic/<edition's full world>)",
    )
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument(
        "--out-root", type=Path, default=None, help="default out-bench/full (GLC24), out-bench/full-<edition>"
    )
    ap.add_argument("--experiments", default="", help="comma-separated experiments (default: every CPU one in tasks/)")
    ap.add_argument(
        "--budget-hours",
        type=float,
        default=None,
        help="start no further experiment after this many hours (the goal experiments always run)",
    )
    ap.add_argument("--step-timeout-hours", type=float, default=None, help="kill a step that runs longer (recorded)")
    ap.add_argument("--fresh", action="store_true", help="remove the output root first (every time measured)")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="add these experiments to the existing full_dag.json (same data root; its ETL rows and other "
        "experiments kept; ETL steps whose artifacts --out-root lacks are rebuilt first, recorded apart)",
    )
    ap.add_argument(
        "--etl-only", action="store_true", help="run the ETL steps (with --merge: those missing) and no experiment"
    )
    ap.add_argument(
        "--lazy-etl",
        action="store_true",
        help="with --merge: run no ETL step up front; each experiment's DAG builds only the artifacts it reads that "
        "--out-root lacks, and its row's seconds include them (for a few cheap experiments on a fresh machine)",
    )
    ap.add_argument(
        "--table",
        action="store_true",
        help="run nothing: print the table of the last full_dag.json and rewrite the README's copy of it",
    )
    a = ap.parse_args(argv)
    bench, edition = BENCHES[a.edition], EDITIONS[a.edition]
    glc24 = a.edition == "glc24"
    a.data_root = a.data_root or REPO / "data" / "synthetic" / world_dir_name(a.edition, "full", 0)
    a.out_root = a.out_root or REPO / "out-bench" / ("full" if glc24 else f"full-{a.edition}")
    result_path = REPO / "bench" / "results" / f"{bench.result}.json"
    if a.table:
        table = render_table(json.loads(result_path.read_text())["results"])
        print(table, end="")
        return 0 if _update_readme(table, bench) else 1
    if a.merge and a.fresh:
        raise SystemExit("--merge keeps the artifacts of the earlier run: do not combine it with --fresh")
    if a.lazy_etl and not (a.merge and a.experiments):
        raise SystemExit("--lazy-etl adds experiments to an earlier run: give it with --merge and --experiments")
    old: dict[str, Any] = {}
    if a.merge:
        path = result_path
        if not path.exists():
            raise SystemExit(f"--merge: {path} does not exist; run without --merge first")
        old = json.loads(path.read_text())["results"]
        here = str(a.data_root.relative_to(REPO) if a.data_root.is_relative_to(REPO) else a.data_root)
        if old.get("data_root") != here:
            raise SystemExit(f"--merge: {path} is of data root {old.get('data_root')!r}, not {here!r}")
    names = [] if a.etl_only else pick_experiments(a.experiments, "--experiments")
    refused: dict[str, str] = {}
    for name in names:  # an experiment that reads data this edition does not ship is listed, never run
        try:
            load_experiment(name, edition)
        except EditionError as e:
            refused[name] = str(e)
    if refused and a.experiments:
        raise SystemExit(
            f"--experiments: refused on {a.edition}: " + "; ".join(f"{n}: {e}" for n, e in refused.items())
        )
    names = [n for n in names if n not in refused]
    if not (a.data_root / "_SUCCESS").exists():
        from glc.synth import generate_world

        print(f"generating the full synthetic {a.edition} world at {a.data_root} (~15 min)", flush=True)
        generate_world(a.data_root, scale="full", seed=0, flavour="kaggle" if glc24 else a.edition)
    if a.fresh and a.out_root.exists():
        shutil.rmtree(a.out_root)
    from glc.synth.oracle import oracle_sample_f1

    # the world's ceiling: expected-F1 decoding of the true probabilities, against the same hidden labels
    oracle = old.get("oracle_test_sample_f1") or round(oracle_sample_f1(a.data_root), 4)
    env = {
        **os.environ,
        "LUIGI_CONFIG_PATH": str(REPO / "conf" / "luigi.cfg"),
        "PYTHONHASHSEED": "0",
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
        "WANDB_SILENT": "true",
    }
    common = ["--data-root", str(a.data_root), "--out-root", str(a.out_root)]
    timeout = a.step_timeout_hours * 3600 if a.step_timeout_hours else None
    t_start = time.perf_counter()
    etl, experiments, rebuilds = list(old.get("etl", [])), [], []
    etl_ok = False  # until every ETL step has succeeded
    invocation = int(old.get("invocations", 1)) + 1 if a.merge else 1

    def save() -> tuple[dict[str, Any], Path]:
        """Write ``full_dag.json`` (and the README's table) from the rows so far: after every step, so a run stopped
        from outside keeps every step it finished."""
        n_surveys = None
        for p in a.out_root.glob("*/surveys/_SUCCESS"):
            n_surveys = json.loads(p.read_text()).get("surveys")
        res = assemble(
            old,
            etl,
            experiments,
            merge=a.merge,
            etl_ok=etl_ok,
            n_surveys=n_surveys,
            data_root=str(a.data_root.relative_to(REPO) if a.data_root.is_relative_to(REPO) else a.data_root),
            seconds=float(old.get("total_seconds", 0.0)) + time.perf_counter() - t_start,
            out_root_gb=round(dir_bytes(a.out_root) / 2**30, 2),
            rebuilds=rebuilds,
            bench=bench,
        )
        res["oracle_test_sample_f1"] = oracle
        if not glc24:
            res = {"edition": a.edition, **res, "refused": refused}
        path = write_result(bench.result, res)
        _update_readme(render_table(res), bench)
        from bench.pages import update_readme_table

        update_readme_table()  # the README's best-per-family table reads full_dag.json
        return res, path

    steps = (
        [["SurveyTable"], ["EnvFeatures"], ["CubeFeatures"], ["PatchTiles"]]
        + (
            [["RasterTiles", "--raster-group", g] for g in sorted(RASTER_GROUPS)]
            if "rasters" in edition.provides
            else []
        )
        + [["Neighbours"]]
    )
    done = {_step_name(r) for r in etl if r.get("returncode") == 0}  # with --merge: the steps the earlier runs measured
    for s in [] if a.lazy_etl else steps:
        r = run_step([*s, *common], env, a.out_root, timeout)
        if " ".join(s) not in done:
            etl.append(r)
        elif r["tasks"] or r["returncode"] != 0:  # measured before, but this out-root lacked it (a fresh machine)
            rebuilds.append({**r, "invocation": invocation})
        else:  # measured before and still complete here: Luigi ran nothing
            continue
        save()
        if not report_row(r):
            break
    etl_ok = all(r["returncode"] == 0 for r in etl + rebuilds) and {" ".join(s) for s in steps} <= {
        _step_name(r) for r in etl if r["returncode"] == 0
    }
    for name in experiment_order(names, bench) if etl_ok and not a.etl_only else []:
        cfg = load_experiment(name, edition)
        row: dict[str, Any] = {"experiment": name, "model": cfg["model"]["kind"], "goal": name in bench.goal}
        elapsed_h = (time.perf_counter() - t_start) / 3600
        if cfg["train"]["accelerator"] in ("gpu", "cuda") and not _gpu():
            row["not_run"] = "its [train] accelerator needs a GPU; this machine has none"
        elif name not in bench.goal and a.budget_hours is not None and elapsed_h > a.budget_hours:
            row["not_run"] = f"--budget-hours {a.budget_hours} spent ({elapsed_h:.2f} h elapsed) before it could start"
        if "not_run" in row:
            experiments.append(row)
            print(f"{name}: not run ({row['not_run']})", flush=True)
            continue
        row["checkpoint_at_start"] = has_checkpoint(a.out_root, cfg)
        if a.lazy_etl:
            row["lazy_etl"] = "its seconds include building the ETL artifacts it reads (--lazy-etl)"
        r = run_step(["Submission", "--experiment", name, *common], env, a.out_root, timeout)
        row.update(r)
        if r["returncode"] == 0:
            row.update(
                {k: v for k, v in score(name, a.data_root, a.out_root).items() if k not in ("experiment", "model")}
            )
        experiments.append(row)
        save()
        report_row(row)
    res, path = save()
    print(
        f"goal {res['goal']['hours']} h (limit {GOAL_HOURS} h), peak RSS {res['max_peak_rss_gb']} GB, disk "
        f"{res['out_root_gb']} GB, all ok: {res['all_ok']}; wrote {path}",
        flush=True,
    )
    for r in res["experiments"]:
        print(f"  {r['experiment']}: {outcome(r)}", flush=True)
    return 0 if res["all_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
