"""What the fault cases share: a child server process stopped by pid, and a record of what a Luigi build ran."""

from __future__ import annotations

import logging
import os
import signal
import subprocess

import luigi


class ChildServer:
    """A server run as a child process (``self.proc``); :meth:`kill` SIGKILLs it by pid, :meth:`stop` terminates it
    (then kills it after ``stop_timeout_s``). Both reap it, so no test leaves a process behind."""

    proc: subprocess.Popen | None = None
    stop_timeout_s: float = 30

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()


class BuildEvents:
    """Inside the block: the task families that succeeded (``ran``), those that failed with the error (``failed``),
    and those that only uploaded a local copy built by an earlier run (``published_only``, URL out-roots)."""

    def __enter__(self) -> BuildEvents:
        self.ran: list[str] = []
        self.failed: list[tuple[str, BaseException]] = []
        self.published_only: list[str] = []
        events = self

        class Published(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "publishing it" in record.getMessage():
                    events.published_only.append(str(record.args[0]).split("_", 1)[0])

        self._handler = Published()
        self._log = logging.getLogger("glc.tasks.base")
        self._level = self._log.level
        self._log.addHandler(self._handler)
        self._log.setLevel(logging.INFO)
        self._ok = luigi.Task.event_handler(luigi.Event.SUCCESS)(lambda t: self.ran.append(t.task_family))
        self._bad = luigi.Task.event_handler(luigi.Event.FAILURE)(lambda t, e: self.failed.append((t.task_family, e)))
        return self

    def __exit__(self, *exc: object) -> None:
        self._log.removeHandler(self._handler)
        self._log.setLevel(self._level)
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.SUCCESS].discard(self._ok)
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.FAILURE].discard(self._bad)

    @property
    def messages(self) -> list[str]:
        """``"<Error type>: <message>"`` of each failure."""
        return [f"{type(e).__name__}: {e}" for _, e in self.failed]


def build(task: luigi.Task) -> tuple[bool, BuildEvents]:
    """``luigi.build([task])`` with the local scheduler, and what it ran."""
    with BuildEvents() as events:
        ok = luigi.build([task], local_scheduler=True, log_level="WARNING")
    return ok, events
