"""The test session's HDFS: one real single-node HDFS (engines/hdfs.py) on free ports in a temporary
folder, started once (~8 s) and shared; tests keep apart by writing under a folder of their own."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pipeline.processes import free_port
from config.settings import Settings
from engines.single_hdfs import hdfs_layout
from engines.hdfs import HdfsCluster, running_hdfs


def hdfs_settings(data_dir: Path, **values) -> Settings:
    """Settings for an HDFS of the tests' own: free NameNode ports, data in `data_dir`."""
    values = {"hdfs_port": free_port(), "hdfs_http_port": free_port(), "hdfs_data_dir": data_dir} | values
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def hdfs(tmp_path_factory) -> HdfsCluster:
    with running_hdfs(hdfs_layout(hdfs_settings(tmp_path_factory.mktemp("hdfs")))) as cluster:
        yield cluster


@pytest.fixture
def hdfs_dir(hdfs) -> str:
    """An HDFS folder path no other test uses (not created)."""
    return f"/tests/{uuid.uuid4().hex[:12]}"
