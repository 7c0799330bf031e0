"""Luigi conventions shared by every glc task.

* One task per output artifact, named after it; ``output()`` returns one target.
* Directory artifacts complete through ``_SUCCESS`` (written last by :func:`glc.io.atomic_dir`); the flag file is
  the task's only output, so a half-written directory is never "done".
* Output paths derive from significant parameters only: ``{out_root}/{dataset}/<artifact>/...`` where ``dataset``
  names the data root (its folder name + a short hash of its absolute path).
* ``data_root`` and ``out_root`` are normalised to absolute paths (URLs such as ``gs://...`` are kept as given) and
  both are significant: a central ``luigid`` identifies tasks by their id, so two runs into different out-roots (or
  the same relative path from two working directories) must never be taken for one task, while two processes on
  the same roots share each task (the scheduler hands it to one worker; the other waits for it).
* Raw inputs are ``ExternalTask`` s, except the default synthetic world, which :class:`glc.tasks.synth.SyntheticWorld`
  generates when missing (so ``luigi --module glc.tasks Submission --local-scheduler`` works on a fresh machine).
* ``run()`` is thin glue over functions in ``glc/`` that tests call directly.
* **Input fingerprints**: a task is complete only when its output exists *and* the fingerprint it was built from
  still holds. The fingerprint combines the task's raw inputs (:meth:`GlcTask.raw_inputs`: metadata CSVs by size,
  mtime and content hash; folders of JPEGs / cubes and GeoTIFFs by size and mtime, see
  :mod:`glc.data.fingerprint`) with its dependencies' fingerprints, and is written beside the output after a
  successful run (``_INPUTS`` in a directory artifact, ``.<name>.inputs`` beside a file). Editing a CSV therefore
  reruns the survey table and everything downstream of it; touching a raster reruns that raster group's tiles
  and what uses them; untouched inputs rebuild nothing. Artifacts written before fingerprints existed are rebuilt
  once.
* Before a task that must run starts, its out-root is checked to be writable (a read-only out-root fails at
  scheduling, before any work).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any

import luigi

from glc.io import SUCCESS

log = logging.getLogger(__name__)

#: The fingerprint file of a directory artifact (beside ``_SUCCESS``).
STAMP = "_INPUTS"
_checked_roots: set[str] = set()
_checked_schedulers: set[str] = set()


def central_scheduler_url() -> str | None:
    """The central scheduler's URL when this process runs from Luigi's command line without ``--local-scheduler``
    (``--scheduler-url``, else ``http://{--scheduler-host}:{--scheduler-port}``); None otherwise (``luigi.build``
    callers hold their scheduler themselves)."""
    from luigi.cmdline_parser import CmdlineParser
    from luigi.interface import core

    if CmdlineParser.get_instance() is None:
        return None
    c = core()
    if c.local_scheduler:
        return None
    return (c.scheduler_url or f"http://{c.scheduler_host}:{c.scheduler_port}").rstrip("/")


def check_scheduler(url: str, timeout_s: float = 10.0) -> None:
    """Prove the Luigi scheduler at ``url`` answers an HTTP request within ``timeout_s``.

    Luigi itself retries a dead scheduler for minutes (``[core] rpc-retry-*``) and then dies in a framework
    traceback; this check fails in seconds with what to do instead.

    Raises:
        SystemExit: naming the URL, when nothing answers there (exits the Luigi process: no task has started).
    """
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/", timeout=timeout_s):  # a GET: no worker is registered by the check
            pass
    except urllib.error.HTTPError:
        return  # something answered: a scheduler of another version is still a scheduler
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise SystemExit(
            f"glc: cannot reach the Luigi scheduler at {url} ({reason}; waited at most {timeout_s:.0f} s). Start it "
            f"(`luigid --port <port> --logdir <dir>`; see docs/configuration.md), pass the right --scheduler-host/"
            f"--scheduler-port or --scheduler-url, or run on this machine alone with --local-scheduler."
        ) from None


def normalize_root(value: str | Path) -> str:
    """An absolute local path (``~`` expanded, symlinks resolved), or a URL (``scheme://...``) unchanged but for a
    trailing slash."""
    text = str(value)
    if "://" in text:
        head, rest = text.split("://", 1)
        return f"{head}://{rest.rstrip('/')}"
    return os.path.realpath(os.path.expanduser(text))  # symlinks resolved, as dataset_key does


class RootParameter(luigi.Parameter):
    """A data or output root: normalised by :func:`normalize_root`, so equal roots give equal task ids."""

    def normalize(self, x: Any) -> Any:
        """See :func:`normalize_root` (``None`` stays ``None``)."""
        return None if x is None else normalize_root(x)


class paths(luigi.Config):
    """``[paths]`` section of ``conf/luigi.cfg``: where data comes from and where artifacts go."""

    data_root = luigi.Parameter(
        default="data/synthetic/demo-seed0", description="GLC24 data root (Kaggle or Seafile layout)"
    )
    out_root = luigi.Parameter(default="out", description="root folder of every artifact")


class GlcTask(luigi.Task):
    """Base of every glc task: carries the data root and the output root.

    Both default to the ``[paths]`` section of ``conf/luigi.cfg`` (read when the task is created, so the task id
    and the execution summary show the resolved value, never ``None``).
    """

    data_root = RootParameter(
        default=paths.data_root._default,
        config_path={"section": "paths", "name": "data_root"},
        description="GLC24 data root; default: [paths] data_root",
    )
    out_root = RootParameter(
        default=paths.out_root._default,
        config_path={"section": "paths", "name": "out_root"},
        description="artifact root; default: [paths] out_root",
    )

    @property
    def dataset_key(self) -> str:
        """Short name of the data root used in artifact paths."""
        return dataset_key(self.data_root)

    @property
    def local_out_root(self) -> Path:
        """Where artifacts are built: the out-root, or for a URL out-root its local copy (:mod:`glc.storage`)."""
        from glc.storage import is_url, local_copy

        return local_copy(self.out_root, "out") if is_url(self.out_root) else Path(self.out_root)

    @property
    def local_data_root(self) -> str:
        """The data root the readers open: the data root, or for a URL its local mirror (:func:`glc.storage.mirror`,
        made by :class:`glc.tasks.raw.MirrorData`)."""
        from glc.storage import is_url, local_copy

        return str(local_copy(self.data_root, "data")) if is_url(self.data_root) else str(self.data_root)

    def artifact_path(self, *parts: str) -> Path:
        """``{out_root}/{dataset}/{parts...}`` (in the local copy of a URL out-root)."""
        return self.local_out_root / self.dataset_key / Path(*parts)

    def remote_of(self, local: str | Path) -> str:
        """The URL of a path of the local copy of a URL out-root."""
        from glc.storage import join

        return join(self.out_root, Path(local).resolve().relative_to(self.local_out_root.resolve()).as_posix())

    def raw_data(self) -> luigi.Task:
        """The task that provides the raw data root."""
        from glc.storage import is_url
        from glc.tasks.synth import raw_data_task

        if is_url(self.data_root):
            from glc.tasks.raw import MirrorData

            return MirrorData(data_root=self.data_root, mirror_dir=self.local_data_root)
        return raw_data_task(self.data_root)

    # -- input fingerprints -----------------------------------------------------------------------------------
    def raw_inputs(self) -> list[Path]:
        """Raw files / folders of the data root this task reads directly (none by default)."""
        return []

    def layout_or_none(self) -> Any:
        """The data root's layout, or None while it does not exist yet (e.g. a synthetic world not generated)."""
        from glc.data.layout import LayoutError, detect_layout

        try:
            return detect_layout(self.local_data_root)
        except (LayoutError, FileNotFoundError, ValueError):
            return None

    def edition_or_none(self) -> Any:
        """The data root's edition: its layout's, or for a synthetic world not generated yet the one its name says;
        None while unknown (a URL not mirrored yet)."""
        from glc.data.layout import EDITIONS
        from glc.tasks.synth import synthetic_edition

        layout = self.layout_or_none()
        if layout is not None:
            return layout.edition
        name = synthetic_edition(self.local_data_root)
        return EDITIONS[name] if name else None

    def input_fingerprint(self) -> str:
        """Hash of this task's raw inputs and of its GlcTask dependencies' fingerprints (see the module docstring)."""
        from glc.data.fingerprint import combine, path_fingerprint

        deps = [t.input_fingerprint() for t in luigi.task.flatten(self.requires()) if isinstance(t, GlcTask)]
        raws = [(self._raw_key(p), path_fingerprint(p)) for p in self.raw_inputs()]
        return combine([type(self).__name__, raws, sorted(deps)])

    def _raw_key(self, path: Path) -> str:
        """How a raw input is named in the fingerprint: its path, or for a URL data root its path inside the mirror
        (the mirror's location differs between machines; its files keep the remote objects' times)."""
        from glc.storage import is_url

        if is_url(self.data_root):
            return os.path.relpath(path, self.local_data_root)
        return str(path)

    def stamp_paths(self) -> list[Path]:
        """Where the fingerprint of each output is kept."""
        out = []
        for target in luigi.task.flatten(self.output()):
            if isinstance(target, FlagTarget):
                out.append(target.dir / STAMP)
            else:
                p = Path(target.path)
                out.append(p.with_name(f".{p.name}.inputs"))
        return out

    def complete(self) -> bool:
        """Outputs exist and were built from the inputs as they are now (their fingerprint matches).

        The first call in a process run from Luigi's command line with a central scheduler first proves the
        scheduler answers (:func:`check_scheduler`): Luigi asks every task ``complete()`` before its first call to it.
        """
        url = central_scheduler_url()
        if url is not None and url not in _checked_schedulers:
            check_scheduler(url)
            _checked_schedulers.add(url)
        from glc.storage import is_url, read_text, remote_exists

        remote = is_url(self.out_root)
        outputs = luigi.task.flatten(self.output())
        if not outputs or not all(remote_exists(self.remote_of(t.path)) if remote else t.exists() for t in outputs):
            root = self.out_root if remote else str(Path(self.out_root).resolve())
            if root not in _checked_roots:
                from glc.io import check_writable
                from glc.storage import check_writable_url

                check_writable_url(root) if remote else check_writable(root)
                _checked_roots.add(root)
            return False
        fp = self.input_fingerprint()
        for stamp in self.stamp_paths():
            try:
                text = read_text(self.remote_of(stamp)) if remote else stamp.read_text()
            except FileNotFoundError:
                text = None
            if text is None or text.strip() != fp:
                return False
        return True

    def local_copy_complete(self) -> bool:
        """With a URL out-root: every output's local copy exists (a directory with its ``_SUCCESS``) and carries the
        current input fingerprint, i.e. it was built here and only its upload is missing."""
        fp = self.input_fingerprint()
        for target, stamp in zip(luigi.task.flatten(self.output()), self.stamp_paths()):
            if not Path(target.path).exists() or not stamp.is_file() or stamp.read_text().strip() != fp:
                return False
        return True

    def fetch_inputs(self) -> None:
        """Download the artifacts of the GlcTask dependencies that live under a URL out-root and are absent or stale
        in the local copy (another machine built them)."""
        for dep in luigi.task.flatten(self.requires()):
            if isinstance(dep, GlcTask):
                dep.ensure_local()

    def ensure_local(self) -> None:
        """With a URL out-root: make the local copy of each output match the remote one (same fingerprint), downloading
        it under a lock (two worker processes needing one input download it once; a matching copy is never
        replaced under a reader). Nothing to do for a local out-root."""
        from glc.storage import fetch, is_url, local_lock, read_text

        if not is_url(self.out_root):
            return
        for target, stamp in zip(luigi.task.flatten(self.output()), self.stamp_paths()):
            local = target.dir if isinstance(target, FlagTarget) else Path(target.path)
            with local_lock(local):
                remote_stamp = read_text(self.remote_of(stamp))
                local_stamp = stamp.read_text() if stamp.is_file() else None
                if Path(target.path).exists() and local_stamp == remote_stamp:
                    continue
                if isinstance(target, FlagTarget):
                    fetch(self.remote_of(target.dir), target.dir)
                else:
                    fetch(self.remote_of(target.path), local)
                    fetch(self.remote_of(stamp), stamp)

    def publish_outputs(self) -> None:
        """Upload this task's finished outputs (and their fingerprints) to a URL out-root, completion markers last:
        a directory's remote ``_SUCCESS``; a file's fingerprint (removed first, so a half-replaced file never has
        a matching one)."""
        from glc.storage import filesystem, publish

        for target, stamp in zip(luigi.task.flatten(self.output()), self.stamp_paths()):
            if isinstance(target, FlagTarget):
                publish(target.dir, self.remote_of(target.dir))
            else:
                fs, remote_stamp = filesystem(self.remote_of(stamp))
                if fs.exists(remote_stamp):
                    fs.rm(remote_stamp)
                publish(Path(target.path), self.remote_of(target.path))
                publish(stamp, self.remote_of(stamp))

    def write_stamps(self) -> None:
        """Record the current input fingerprint beside every output (called after a successful ``run``)."""
        from glc.io import atomic_file

        fp = self.input_fingerprint()
        for stamp in self.stamp_paths():
            with atomic_file(stamp) as fh:
                fh.write(fp + "\n")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every subclass's ``run`` writes the input stamps when it returns normally."""
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is not None and not getattr(run, "_glc_stamped", False):

            @functools.wraps(run)
            def stamped_run(self: GlcTask, *args: Any, **kw: Any) -> Any:
                from glc.storage import is_url

                remote = is_url(self.out_root)
                if remote and self.local_copy_complete():
                    # built here by an earlier run whose upload failed: upload it now instead of building it again
                    log.info("%s: the local copy is complete and current; publishing it", self.task_id)
                    self.publish_outputs()
                    return None
                if remote:
                    self.fetch_inputs()
                result = run(self, *args, **kw)
                self.write_stamps()
                if remote:
                    self.publish_outputs()
                return result

            stamped_run._glc_stamped = True  # type: ignore[attr-defined]
            cls.run = stamped_run  # type: ignore[method-assign]


def dataset_key(data_root: str | Path) -> str:
    """``<folder name>-<8 hex of the absolute path>`` (of the URL for a URL data root), stable across runs."""
    from glc.storage import is_url

    if is_url(data_root):
        url = str(data_root).rstrip("/")
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", url.rsplit("/", 1)[-1]) or "root"
        return f"{name}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"
    p = Path(data_root).expanduser().resolve()
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", p.name) or "root"
    return f"{name}-{hashlib.sha256(str(p).encode()).hexdigest()[:8]}"


class FlagTarget(luigi.LocalTarget):
    """The ``_SUCCESS`` flag of a directory artifact; ``.dir`` is the artifact folder."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        super().__init__(str(self.dir / SUCCESS))


class ExperimentTask(GlcTask):
    """A task of one named experiment (``tasks/<experiment>.toml``)."""

    experiment = luigi.Parameter(default="frequency", description="experiment name in tasks/ or a path to a .toml")

    @property
    def cfg(self) -> dict[str, Any]:
        """The resolved, checked experiment config (defaults + the file; unknown keys and bad values raise)."""
        if not hasattr(self, "_cfg"):
            from glc.config import load_experiment

            self._cfg = load_experiment(self.experiment, self.edition_or_none())
        return self._cfg

    def exp_path(self, *parts: str) -> Path:
        """``{out}/{dataset}/experiments/{name}-{hash}/{parts}``."""
        from glc.config import config_hash

        return self.artifact_path("experiments", f"{self.cfg['name']}-{config_hash(self.cfg)}", *parts)
