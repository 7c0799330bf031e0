"""A Spark standalone cluster (one master, one worker) on 127.0.0.1 for tests, from the pyspark distribution's scripts.

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
    """Start a master and one worker (``cores``, ``memory``) in ``folder``; :meth:`stop` always stops both."""

    def __init__(self, folder: Path, cores: int = 2, memory: str = "3g") -> None:
        import pyspark

        self.home = Path(pyspark.__file__).resolve().parent
        self.folder = folder
        self.port, self.ui, self.worker_ui = free_port(), free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.cores, self.memory = cores, memory
        self.env = {
            **os.environ,
            "SPARK_HOME": str(self.home),
            "SPARK_LOG_DIR": str(folder / "logs"),
            "SPARK_PID_DIR": str(folder / "pids"),
            "SPARK_WORKER_DIR": str(folder / "work"),
            "SPARK_IDENT_STRING": f"glc-test-{os.getpid()}",
            "SPARK_LOCAL_IP": "127.0.0.1",
        }

    def _daemon(self, action: str, cls: str, *args: str) -> None:
        subprocess.run(
            ["bash", str(self.home / "sbin" / "spark-daemon.sh"), action, cls, "1", *args],
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
        self._daemon(
            "start",
            WORKER,
            "--host",
            "127.0.0.1",
            "--webui-port",
            str(self.worker_ui),
            "--cores",
            str(self.cores),
            "--memory",
            self.memory,
            self.url,
        )
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            state = self.state()
            if state and state.get("aliveworkers", 0) >= 1:
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

    def stop(self) -> None:
        """Stop the worker, then the master (errors ignored: teardown must never mask the test's failure)."""
        for cls in (WORKER, MASTER):
            try:
                self._daemon("stop", cls)
            except (subprocess.SubprocessError, OSError):
                pass

    def logs(self) -> str:
        """The daemons' log tails, for failure messages."""
        out = []
        for f in sorted((self.folder / "logs").glob("*.out")):
            out.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(out)
