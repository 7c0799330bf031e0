"""The one place that builds the SparkSession, from ``conf/spark-defaults.conf``.

The same ETL code runs on ``local[*]`` (default) and on a cluster: set ``GLC_SPARK_MASTER`` (for example
``spark://host:7077`` or ``yarn``) or edit the conf file. Extra settings: ``GLC_SPARK_CONF="k=v,k=v"``.
Spark needs Java 8, 11 or 17 (``java -version``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def default_conf_file() -> Path | None:
    """``spark-defaults.conf`` of the runtime-configuration folder (:func:`glc.config.conf_dir`), if any."""
    from glc.config import conf_dir

    folder = conf_dir()
    return folder / "spark-defaults.conf" if folder is not None else None


def read_spark_conf(path: str | Path | None = None) -> dict[str, str]:
    """Parse a ``spark-defaults.conf``-style file (``key value`` per line, ``#`` comments)."""
    conf: dict[str, str] = {}
    path = path if path is not None else default_conf_file()
    if path is None:
        return conf
    p = Path(path)
    if not p.exists():
        return conf
    for n, line in enumerate(p.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise ValueError(f"{p}:{n}: expected 'key value', got {line!r}")
        conf[parts[0]] = parts[1].strip()
    return conf


def resolved_spark_conf() -> dict[str, str]:
    """The Spark settings glc will use: the conf file, then ``GLC_SPARK_MASTER`` and ``GLC_SPARK_CONF``."""
    conf = read_spark_conf(os.environ.get("GLC_SPARK_CONF_FILE") or None)
    if os.environ.get("GLC_SPARK_MASTER"):
        conf["spark.master"] = os.environ["GLC_SPARK_MASTER"]
    for item in filter(None, os.environ.get("GLC_SPARK_CONF", "").split(",")):
        if "=" not in item:
            raise ValueError(f"GLC_SPARK_CONF entries must be key=value, got {item!r}")
        k, v = item.split("=", 1)
        conf[k.strip()] = v.strip()
    return conf


def check_java() -> None:
    """Fail early, saying how to fix it, when no Java runtime is available for Spark."""
    java = shutil.which("java") or (
        os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else None
    )
    if not java:
        raise RuntimeError(
            "Spark needs a Java runtime (8, 11 or 17) and none was found on PATH or in JAVA_HOME. "
            "Install one, e.g. `sudo apt-get install -y openjdk-17-jre-headless`, then rerun."
        )
    try:
        subprocess.run([java, "-version"], check=True, capture_output=True, timeout=60)
    except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"`{java} -version` failed ({e}); Spark needs a working Java 8/11/17 runtime") from e


#: Seconds to wait for a standalone master's port before giving up (the whole check stays well under 60 s).
MASTER_CONNECT_TIMEOUT_S = 10.0


def check_master(master: str, timeout: float = MASTER_CONNECT_TIMEOUT_S) -> None:
    """Fail fast, naming the URL, when a standalone master (``spark://host:port[,host:port]``) cannot be reached.

    Without this check Spark keeps retrying an unreachable master for minutes before it gives up. Other masters
    (``local[*]``, ``yarn``, ``k8s://...``) are not checked here.

    Raises:
        RuntimeError: if no ``host:port`` of the URL accepts a TCP connection within ``timeout`` seconds.
    """
    import socket

    if not master.startswith("spark://"):
        return
    errors = []
    for hostport in master[len("spark://") :].split(","):
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise RuntimeError(
                f"Spark master URL {master!r}: expected spark://host:port, got {hostport!r}; fix GLC_SPARK_MASTER"
            )
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return
        except OSError as e:
            errors.append(f"{hostport}: {e.strerror or e}")
    raise RuntimeError(
        f"Spark master {master} is unreachable ({'; '.join(errors)}). Start it (`$SPARK_HOME/sbin/start-master.sh`, "
        "then start-worker.sh), or point GLC_SPARK_MASTER at a running master (unset it for local[*])."
    )


def get_spark(app_name: str | None = None) -> SparkSession:
    """Return the active SparkSession or build one from the resolved conf (one per process)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    check_java()
    conf = resolved_spark_conf()
    check_master(conf.get("spark.master", "local[*]"))
    builder = SparkSession.builder
    for k, v in conf.items():
        builder = builder.config(k, v)
    if app_name:
        builder = builder.appName(app_name)
    # Executors must use the same Python as the driver (the project's venv).
    import sys

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("GLC_SPARK_LOG_LEVEL", "WARN"))
    log.info("SparkSession %s on %s", spark.version, spark.sparkContext.master)
    return spark
