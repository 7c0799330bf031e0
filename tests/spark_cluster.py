"""A Spark standalone cluster (a master, one or more workers) on 127.0.0.1 for tests, from pyspark's own scripts.

The pip distribution of pyspark ships ``sbin/spark-daemon.sh`` (what ``start-master.sh`` / ``start-worker.sh`` of the
full distribution call) and ``bin/spark-class``, but not the two wrappers; :class:`StandaloneCluster` calls
``spark-daemon.sh start|stop org.apache.spark.deploy.{master.Master,worker.Worker} 1 ...`` exactly as they do, with
free ports, and logs, pid files and the worker's scratch folder under a temporary folder (never inside the venv).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


def free_port() -> int:
    """A TCP port nothing listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StandaloneCluster:
    """Start a master and ``workers`` workers (``cores``, ``memory`` each) in ``folder``; :meth:`stop` always stops
    them all; :meth:`kill_worker` SIGKILLs one worker with its executor (by pid), as a lost machine."""

    def __init__(self, folder: Path, cores: int = 2, memory: str = "3g", workers: int = 1) -> None:
        import pyspark

        self.home = Path(pyspark.__file__).resolve().parent
        self.folder = folder
        self.port, self.ui, self.worker_ui = free_port(), free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.cores, self.memory, self.workers = cores, memory, workers
        self.worker_uis = [self.worker_ui] + [free_port() for _ in range(workers - 1)]
        self.env = {
            **os.environ,
            "SPARK_HOME": str(self.home),
            "SPARK_LOG_DIR": str(folder / "logs"),
            "SPARK_PID_DIR": str(folder / "pids"),
            "SPARK_WORKER_DIR": str(folder / "work"),
            "SPARK_IDENT_STRING": f"glc-test-{os.getpid()}",
            "SPARK_LOCAL_IP": "127.0.0.1",
        }

    def _daemon(self, action: str, cls: str, *args: str, instance: int = 1) -> None:
        subprocess.run(
            ["bash", str(self.home / "sbin" / "spark-daemon.sh"), action, cls, str(instance), *args],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, timeout: float = 120.0) -> str:
        """Start both daemons and wait until the worker has registered; returns the master URL."""
        for d in ("logs", "pids", "work"):
            (self.folder / d).mkdir(parents=True, exist_ok=True)
        self._daemon("start", MASTER, "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui))
        for i in range(1, self.workers + 1):
            self._daemon(
                "start",
                WORKER,
                "--host",
                "127.0.0.1",
                "--webui-port",
                str(self.worker_uis[i - 1]),
                "--cores",
                str(self.cores),
                "--memory",
                self.memory,
                self.url,
                instance=i,
            )
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            state = self.state()
            if state and state.get("aliveworkers", 0) >= self.workers:
                return self.url
            time.sleep(1)
        raise RuntimeError(
            f"standalone worker did not register with {self.url} within {timeout} s; see {self.folder / 'logs'}"
        )

    def state(self) -> dict[str, Any] | None:
        """The master's JSON status page, or ``None`` while it is not up."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui}/json/", timeout=5) as r:
                return json.load(r)
        except OSError:
            return None

    def worker_pid(self, instance: int) -> int | None:
        """The pid of worker ``instance`` (1-based) from its pid file, or None."""
        f = self.folder / "pids" / f"spark-{self.env['SPARK_IDENT_STRING']}-{WORKER}-{instance}.pid"
        return int(f.read_text().strip()) if f.is_file() else None

    def executor_instance(self, executor_id: str) -> int | None:
        """The worker instance whose process tree runs executor ``executor_id`` (``--executor-id`` of its JVM)."""
        import psutil

        for i in range(1, self.workers + 1):
            pid = self.worker_pid(i)
            if pid is None or not psutil.pid_exists(pid):
                continue
            for child in psutil.Process(pid).children(recursive=True):
                try:
                    cmd = child.cmdline()
                except psutil.Error:
                    continue
                if "--executor-id" in cmd and cmd[cmd.index("--executor-id") + 1] == str(executor_id):
                    return i
        return None

    def kill_worker(self, instance: int) -> list[int]:
        """SIGKILL worker ``instance`` and every process under it (its executor, its Python workers); returns pids."""
        import psutil

        pid = self.worker_pid(instance)
        if pid is None:
            raise RuntimeError(f"worker {instance}: no pid file under {self.folder / 'pids'}")
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=30)
        return [p.pid for p in procs]

    def stop(self) -> None:
        """Stop the workers, then the master (errors ignored: teardown must never mask the test's failure); any
        process left under a worker's or the master's pid is killed."""
        import psutil

        pids = [self.worker_pid(i) for i in range(1, self.workers + 1)]
        for i in range(1, self.workers + 1):
            try:
                self._daemon("stop", WORKER, instance=i)
            except (subprocess.SubprocessError, OSError):
                pass
        try:
            self._daemon("stop", MASTER)
        except (subprocess.SubprocessError, OSError):
            pass
        for pid in pids:
            if pid is not None and psutil.pid_exists(pid):
                for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
                    try:
                        p.kill()
                    except psutil.Error:
                        pass

    def logs(self) -> str:
        """The daemons' log tails, for failure messages."""
        out = []
        for f in sorted((self.folder / "logs").glob("*.out")):
            out.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(out)
