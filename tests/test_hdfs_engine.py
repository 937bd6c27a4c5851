"""The single-node HDFS of `make hdfs` (engines/hdfs.py): FsShell through bin/hdfs, data kept over a
restart, Spark (Hadoop's client) and deltalake (its own HDFS client) sharing a Delta table on it,
and the errors it gives."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from hdfs import InsecureClient

from engines.single_hdfs import hdfs_layout
from engines import hdfs as engine
from engines.jars import JarsMissing
from tests.support.hdfs_cluster import hdfs_settings

REPO = engine.REPO


def dfs(cluster, *args: str, cwd) -> subprocess.CompletedProcess:
    env = os.environ | {"HDFS_HOST": cluster.layout.host, "HDFS_PORT": str(cluster.layout.port)}
    return subprocess.run([str(REPO / "bin" / "hdfs"), "dfs", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.integration
def test_bin_hdfs_runs_fs_shell_from_any_folder(hdfs, hdfs_dir, tmp_path):
    local = tmp_path / "hello.txt"
    local.write_text("hello hdfs\n")
    assert dfs(hdfs, "-mkdir", "-p", hdfs_dir, cwd=tmp_path).returncode == 0
    put = dfs(hdfs, "-put", "hello.txt", f"{hdfs_dir}/", cwd=tmp_path)
    assert put.returncode == 0, put.stderr

    listing = dfs(hdfs, "-ls", hdfs_dir, cwd="/")
    assert listing.returncode == 0, listing.stderr
    line = listing.stdout.splitlines()[-1].split()
    assert line[1] == "1" and line[4] == "11" and line[-1] == f"{hdfs_dir}/hello.txt"  # one replica, 11 bytes
    assert dfs(hdfs, "-cat", f"{hdfs_dir}/hello.txt", cwd=tmp_path).stdout == "hello hdfs\n"

    missing = dfs(hdfs, "-ls", f"{hdfs_dir}/nothing", cwd=tmp_path)
    assert missing.returncode == 1 and "No such file or directory" in missing.stderr


@pytest.mark.integration
def test_a_restart_keeps_the_data_and_leaves_no_process(tmp_path):
    settings = hdfs_settings(tmp_path / "hdfs")
    with engine.running_hdfs(hdfs_layout(settings)) as cluster:
        InsecureClient(cluster.webhdfs_url).write("/kept/file.txt", data=b"still here")
        daemons = (cluster.namenode, cluster.datanode)
    assert all(not daemon.alive() for daemon in daemons)
    version = (tmp_path / "hdfs" / "name" / "current" / "VERSION").read_text()

    with engine.running_hdfs(hdfs_layout(settings)) as cluster:
        with InsecureClient(cluster.webhdfs_url).read("/kept/file.txt") as reader:
            assert reader.read() == b"still here"
    assert (tmp_path / "hdfs" / "name" / "current" / "VERSION").read_text() == version  # not formatted again


@pytest.mark.integration
def test_spark_and_deltalake_share_a_delta_table_on_it(spark, hdfs, hdfs_dir):
    """Spark (Hadoop's client) writes a Delta table, deltalake (its own HDFS client, no JVM) reads
    it and adds to it, Spark reads both commits."""
    uri = f"{hdfs.uri}{hdfs_dir}/table"
    rows = [(n, f"tweet {n}") for n in range(50)]
    spark.createDataFrame(rows, "id long, text string").repartition(2).write.format("delta").save(uri)

    table = DeltaTable(uri)
    assert sorted(zip(*table.to_pyarrow_table().to_pydict().values())) == rows
    write_deltalake(uri, pa.table({"id": pa.array([50], pa.int64()), "text": ["tweet 50"]}), mode="append")
    assert sorted(tuple(row) for row in spark.read.format("delta").load(uri).collect()) == rows + [(50, "tweet 50")]
    assert DeltaTable(uri).version() == 1


def test_a_port_in_use_is_named(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(engine.HdfsError, match=f"port {port} on 127.0.0.1 for the NameNode RPC .*HDFS_PORT"):
            engine.start(hdfs_layout(hdfs_settings(tmp_path, hdfs_port=port)))


def test_missing_jars_say_make_jars(tmp_path, monkeypatch):
    monkeypatch.setenv("JARS_DIR", str(tmp_path / "no-jars"))
    with pytest.raises(JarsMissing, match="make jars"):
        engine.start(hdfs_layout(hdfs_settings(tmp_path)))


def test_fs_shell_without_a_namenode_says_how_to_start_one(tmp_path):
    settings = hdfs_settings(tmp_path)
    env = os.environ | {"HDFS_PORT": str(settings.hdfs_port)}
    result = subprocess.run([sys.executable, "-m", "engines.single_hdfs", "dfs", "-ls", "/"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "start one with `make hdfs`" in result.stderr


def test_config_listens_on_loopback_only(tmp_path):
    layout = hdfs_layout(hdfs_settings(tmp_path))
    addresses = {key: value for site in layout.properties().values() for key, value in site.items()
                 if key.endswith("address")}
    assert len(addresses) == 5 and all(value.startswith("127.0.0.1:") for value in addresses.values())
