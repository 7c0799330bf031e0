"""Spark session set-up: the conf file, environment overrides, and a fast clear error for an unreachable master."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from glc.spark import check_master, read_spark_conf, resolved_spark_conf
from tests.spark_cluster import free_port as _free_port


def test_unreachable_master_fails_fast_naming_the_url() -> None:
    url = f"spark://127.0.0.1:{_free_port()}"  # nothing listens there
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match=rf"Spark master {url} is unreachable .*start-master\.sh"):
        check_master(url)
    assert time.perf_counter() - t0 < 60


def test_reachable_master_and_other_masters_pass() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        check_master(f"spark://127.0.0.1:{_free_port()},127.0.0.1:{port}")  # one live host of an HA list is enough
    for master in ("local[*]", "local[2]", "yarn", "k8s://https://example:443"):
        check_master(master)
    with pytest.raises(RuntimeError, match="expected spark://host:port"):
        check_master("spark://nohost")


def test_conf_file_and_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "spark-defaults.conf"
    conf.write_text("# comment\nspark.master  local[2]\nspark.sql.shuffle.partitions 4\n")
    assert read_spark_conf(conf) == {"spark.master": "local[2]", "spark.sql.shuffle.partitions": "4"}
    monkeypatch.setenv("GLC_SPARK_CONF_FILE", str(conf))
    monkeypatch.setenv("GLC_SPARK_MASTER", "spark://10.0.0.1:7077")
    monkeypatch.setenv("GLC_SPARK_CONF", "spark.sql.shuffle.partitions=16,spark.ui.enabled=true")
    assert resolved_spark_conf() == {
        "spark.master": "spark://10.0.0.1:7077",
        "spark.sql.shuffle.partitions": "16",
        "spark.ui.enabled": "true",
    }
    conf.write_text("spark.master\n")
    with pytest.raises(ValueError, match=r"spark-defaults.conf:1: expected 'key value'"):
        read_spark_conf(conf)
