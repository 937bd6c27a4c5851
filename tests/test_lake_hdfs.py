"""The `lake` command on hdfs:// through WebHDFS, against the session's real single-node HDFS
(tests/hdfs_cluster.py): the lake is built in a local folder with the local tests' helpers,
uploaded through WebHDFS, and every request the `hdfs` client sends is recorded, so the tests see
the namenode redirect reads and writes to the datanode."""
from __future__ import annotations

import io
import json
from urllib.parse import parse_qs, unquote, urlparse

import pyarrow.parquet as pq
import pytest
import requests
from hdfs import InsecureClient

from app.settings import Settings
from datalake.cli import main
from datalake.fs import lake_fs_for
from test_lake_cli import commit, corrupt, dead_letters, small_lake

PREFIX = "/webhdfs/v1"
USER = "tweetlake"


@pytest.fixture
def calls(hdfs, monkeypatch) -> list[tuple[str, str, str, str]]:
    """(server, method, op, path) of each WebHDFS request, redirects included; server is
    "namenode" for the NameNode's HTTP port and "datanode" for any other."""
    recorded: list[tuple[str, str, str, str]] = []
    send = requests.Session.send

    def recording_send(session, request, **kwargs):
        url = urlparse(request.url)
        if url.path.startswith(PREFIX):
            server = "namenode" if url.port == hdfs.layout.http_port else "datanode"
            op = parse_qs(url.query).get("op", [""])[0].upper()
            recorded.append((server, request.method, op, unquote(url.path[len(PREFIX):])))
        return send(session, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", recording_send)
    return recorded


@pytest.fixture
def settings(hdfs) -> Settings:
    """Settings of a `lake` user of this HDFS: no HDFS_NAMENODE_URL, so the URL comes from LAKE_ROOT."""
    return Settings(_env_file=None, hdfs_http_port=hdfs.layout.http_port, hdfs_user=USER)


@pytest.fixture
def client(hdfs) -> InsecureClient:
    return InsecureClient(hdfs.webhdfs_url, user=USER)


@pytest.fixture
def local_lake(tmp_path):
    return tmp_path / "lake"


def upload(client: InsecureClient, local_lake, hdfs_dir: str, hdfs) -> str:
    """The local lake copied to `hdfs_dir`/lake; its hdfs:// URI."""
    client.makedirs(hdfs_dir)
    client.upload(f"{hdfs_dir}/lake", str(local_lake))
    return f"{hdfs.uri}{hdfs_dir}/lake"


def run(capsys, settings: Settings, lake_root: str, *argv: str) -> tuple[int, str, str]:
    code = main(["--lake-root", lake_root, *argv], settings=settings)
    out, err = capsys.readouterr()
    return code, out, err


def test_namenode_url_defaults_to_the_lake_roots_host():
    fs, path = lake_fs_for("hdfs://namenode.example:8020/data/lake", None, None, 9871)
    assert (fs.namenode_url, path) == ("http://namenode.example:9871", "/data/lake")
    fs, _ = lake_fs_for("hdfs://namenode.example:8020/data/lake", "http://elsewhere:50070", None, 9871)
    assert fs.namenode_url == "http://elsewhere:50070"


@pytest.mark.integration
def test_ls_and_stats_read_footers_through_webhdfs(hdfs, hdfs_dir, client, settings, local_lake, calls, capsys):
    small_lake(local_lake, batches=3)
    dead_letters(local_lake, 2)
    lake = upload(client, local_lake, hdfs_dir, hdfs)
    calls.clear()

    code, out, err = run(capsys, settings, lake, "ls", "bronze")
    assert code == 0, err
    assert out.splitlines()[0].startswith("bronze: 1 partition, 3 files,") and out.splitlines()[0].endswith("30 rows")
    assert out.splitlines()[3].split()[-2:] == ["10", "bronze/dt=2024-05-01/hour=03/part-000000000000-00000.parquet"]

    code, out, err = run(capsys, settings, lake, "stats", "--json")
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert (summary["rows"], summary["files"], summary["quarantine_rows"]) == (30, 3, 2)
    assert summary["min_created_at"] == "2024-05-01T03:00:00Z"
    assert summary["lake_root"] == lake

    ops = {(server, op) for server, _, op, _ in calls}
    assert {("namenode", "LISTSTATUS"), ("namenode", "OPEN"), ("datanode", "OPEN")} <= ops


@pytest.mark.integration
def test_verify_and_show_run_over_webhdfs(hdfs, hdfs_dir, client, settings, local_lake, capsys):
    small_lake(local_lake, batches=2)
    lake = upload(client, local_lake, hdfs_dir, hdfs)
    code, out, _ = run(capsys, settings, lake, "verify")
    assert code == 0 and out.startswith("OK: bronze has 20 rows in 2 files")
    code, out, _ = run(capsys, settings, lake, "show", "--limit", "1", "--where", "topics contains ai")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["2024-05-01", "03:19:00", "user1"]


@pytest.mark.integration
def test_compaction_over_webhdfs_writes_renames_and_deletes(hdfs, hdfs_dir, client, settings, local_lake, calls,
                                                            capsys):
    small_lake(local_lake, batches=5)
    commit(local_lake, 0, 1, 2)
    lake = upload(client, local_lake, hdfs_dir, hdfs)
    calls.clear()

    code, out, err = run(capsys, settings, lake, "compact", "--dt", "2024-05-01", "--hour", "03")
    assert code == 0, err
    assert "3 files" in out and "-> 1 file" in out and "2 file(s) of uncommitted batches left alone" in out
    partition = f"{hdfs_dir}/lake/bronze/dt=2024-05-01/hour=03"
    names = sorted(client.list(partition))
    assert names[:2] == ["part-000000000003-00000.parquet", "part-000000000004-00000.parquet"]
    assert names[2].startswith("part-c") and len(names) == 3
    with client.read(f"{partition}/{names[2]}") as reader:
        assert pq.ParquetFile(io.BytesIO(reader.read())).metadata.num_rows == 30
    assert client.status(f"{partition}/{names[2]}")["owner"] == USER  # HDFS_USER reaches the namenode
    assert client.list(f"{hdfs_dir}/lake/_compactions/bronze") == []  # journal and lock gone

    made = {(server, method, op) for server, method, op, _ in calls}
    assert {("namenode", "PUT", "CREATE"), ("datanode", "PUT", "CREATE"), ("namenode", "PUT", "RENAME"),
            ("namenode", "DELETE", "DELETE"), ("namenode", "PUT", "MKDIRS")} <= made
    assert run(capsys, settings, lake, "verify")[0] == 0


@pytest.mark.integration
def test_errors_over_webhdfs_are_clear(hdfs, hdfs_dir, client, settings, local_lake, capsys):
    nowhere = f"{hdfs.uri}{hdfs_dir}/nowhere"
    code, _, err = run(capsys, settings, nowhere, "stats")
    assert code == 2 and f"lake root {nowhere} does not exist" in err

    small_lake(local_lake, batches=2)
    corrupt(local_lake / "bronze/dt=2024-05-01/hour=03/part-000000000001-00000.parquet")
    lake = upload(client, local_lake, hdfs_dir, hdfs)
    code, _, err = run(capsys, settings, lake, "ls", "bronze")
    assert code == 1
    assert "unreadable parquet file bronze/dt=2024-05-01/hour=03/part-000000000001-00000.parquet" in err

    code, _, err = run(capsys, settings, f"hdfs:///{hdfs_dir.lstrip('/')}/lake", "stats")  # no host
    assert code == 2 and "set HDFS_NAMENODE_URL" in err

    unreachable = settings.model_copy(update={"hdfs_namenode_url": "http://127.0.0.1:9"})
    code, _, err = run(capsys, unreachable, lake, "stats")
    assert code == 1 and "cannot reach WebHDFS at http://127.0.0.1:9" in err
