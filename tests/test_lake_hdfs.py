"""The `lake` command on hdfs:// through WebHDFS, against a fake namenode and datanode on 127.0.0.1
that follow the WebHDFS REST contract (redirects to the datanode for OPEN and CREATE included),
so the `hdfs` package's real client code runs. No real HDFS is involved."""
from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode, urlparse

import pyarrow.parquet as pq
import pytest

from app.settings import Settings
from spark_sink.lake import main
from tests.test_lake_cli import commit, corrupt, dead_letters, small_lake

PREFIX = "/webhdfs/v1"
USER = "tweetlake"


@dataclass
class FakeHdfs:
    """A WebHDFS namenode and datanode serving the folder `root` as the HDFS namespace."""

    root: Path
    calls: list[tuple[str, str, str, str]] = field(default_factory=list)  # (server, method, op, path)

    def local(self, hdfs_path: str) -> Path:
        return self.root / hdfs_path.lstrip("/")

    def status(self, path: Path, suffix: str) -> dict:
        stat = path.stat()
        return {"pathSuffix": suffix, "type": "DIRECTORY" if path.is_dir() else "FILE",
                "length": 0 if path.is_dir() else stat.st_size, "modificationTime": int(stat.st_mtime * 1000),
                "accessTime": 0, "blockSize": 134217728, "owner": USER, "group": "supergroup",
                "permission": "755", "replication": 1}


def handler(fake: FakeHdfs, server: str, datanode_address: list[str]):
    class WebHdfs(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.dispatch("GET")

        def do_PUT(self) -> None:
            self.dispatch("PUT")

        def do_DELETE(self) -> None:
            self.dispatch("DELETE")

        def dispatch(self, method: str) -> None:
            url = urlparse(self.path)
            if not url.path.startswith(PREFIX):
                return self.reply(404, {"RemoteException": {"exception": "IllegalArgumentException", "message": url.path}})
            path = unquote(url.path[len(PREFIX):]) or "/"
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            op = query.get("op", "").upper()
            fake.calls.append((server, method, op, path))
            if query.get("user.name") != USER:
                return self.error(401, "SecurityException", f"user.name is {query.get('user.name')!r}")
            getattr(self, f"{server}_{op.lower()}", self.unsupported)(method, path, query, fake.local(path))

        # --- namenode -----------------------------------------------------------------------

        def namenode_getfilestatus(self, method, path, query, local: Path) -> None:
            if not local.exists():
                return self.missing(path)
            self.reply(200, {"FileStatus": fake.status(local, "")})

        def namenode_liststatus(self, method, path, query, local: Path) -> None:
            if not local.exists():
                return self.missing(path)
            statuses = ([fake.status(child, child.name) for child in sorted(local.iterdir())]
                        if local.is_dir() else [fake.status(local, "")])
            self.reply(200, {"FileStatuses": {"FileStatus": statuses}})

        def namenode_open(self, method, path, query, local: Path) -> None:
            if not local.is_file():
                return self.missing(path)
            self.redirect(path, query)

        def namenode_create(self, method, path, query, local: Path) -> None:
            self.redirect(path, query)

        def namenode_mkdirs(self, method, path, query, local: Path) -> None:
            local.mkdir(parents=True, exist_ok=True)
            self.reply(200, {"boolean": True})

        def namenode_rename(self, method, path, query, local: Path) -> None:
            target = fake.local(query["destination"])
            if target.is_dir():
                target = target / local.name
            moved = local.exists() and not target.exists() and target.parent.is_dir()
            if moved:
                local.rename(target)
            self.reply(200, {"boolean": moved})

        def namenode_delete(self, method, path, query, local: Path) -> None:
            if not local.exists():
                return self.reply(200, {"boolean": False})
            if local.is_dir():
                if any(local.iterdir()) and query.get("recursive") != "true":
                    return self.error(403, "PathIsNotEmptyDirectoryException", f"{path} is non empty")
                shutil.rmtree(local)
            else:
                local.unlink()
            self.reply(200, {"boolean": True})

        # --- datanode -----------------------------------------------------------------------

        def datanode_open(self, method, path, query, local: Path) -> None:
            data = local.read_bytes()
            offset = int(query.get("offset", 0))
            length = int(query["length"]) if "length" in query else len(data)
            self.reply(200, data[offset:offset + length], "application/octet-stream")

        def datanode_create(self, method, path, query, local: Path) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if local.exists() and query.get("overwrite") != "true":
                return self.error(403, "FileAlreadyExistsException", f"{path} for client 127.0.0.1 already exists")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(body)
            self.reply(201, b"", "application/octet-stream")

        # --- replies ------------------------------------------------------------------------

        def redirect(self, path: str, query: dict) -> None:
            location = (f"http://{datanode_address[0]}{PREFIX}{quote(path)}?"
                        + urlencode(query | {"namenoderpcaddress": "namenode:8020"}))
            self.send_response(307)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def missing(self, path: str) -> None:
            self.error(404, "FileNotFoundException", f"File does not exist: {path}")

        def unsupported(self, method, path, query, local) -> None:
            self.error(400, "UnsupportedOperationException", f"{server} does not do {query.get('op')}")

        def error(self, status: int, exception: str, message: str) -> None:
            self.reply(status, {"RemoteException": {"exception": exception, "javaClassName": f"java.io.{exception}",
                                                    "message": message}})

        def reply(self, status: int, body, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return WebHdfs


@pytest.fixture
def hdfs(tmp_path):
    """(fake, settings): a fake namenode + datanode, and settings that point the lake at them."""
    fake = FakeHdfs(tmp_path / "hdfs")
    fake.root.mkdir()
    datanode_address: list[str] = []
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler(fake, name, datanode_address))
               for name in ("namenode", "datanode")]
    datanode_address.append(f"127.0.0.1:{servers[1].server_port}")
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    settings = Settings(_env_file=None, hdfs_namenode_url=f"http://127.0.0.1:{servers[0].server_port}", hdfs_user=USER)
    try:
        yield fake, settings
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


LAKE = "hdfs://namenode:8020/data/lake"


def run(capsys, settings: Settings, *argv: str, lake_root: str = LAKE) -> tuple[int, str, str]:
    code = main(["--lake-root", lake_root, *argv], settings=settings)
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_and_stats_read_footers_through_webhdfs(hdfs, capsys):
    fake, settings = hdfs
    small_lake(fake.local("/data/lake"), batches=3)
    dead_letters(fake.local("/data/lake"), 2)

    code, out, err = run(capsys, settings, "ls", "bronze")
    assert code == 0, err
    assert out.splitlines()[0].startswith("bronze: 1 partition, 3 files,") and out.splitlines()[0].endswith("30 rows")
    assert out.splitlines()[3].split()[-2:] == ["10", "bronze/dt=2024-05-01/hour=03/part-000000000000-00000.parquet"]

    code, out, err = run(capsys, settings, "stats", "--json")
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert (summary["rows"], summary["files"], summary["quarantine_rows"]) == (30, 3, 2)
    assert summary["min_created_at"] == "2024-05-01T03:00:00Z"
    assert summary["lake_root"] == LAKE

    ops = {(server, op) for server, _, op, _ in fake.calls}
    assert {("namenode", "LISTSTATUS"), ("namenode", "OPEN"), ("datanode", "OPEN")} <= ops


def test_verify_and_show_run_over_webhdfs(hdfs, capsys):
    fake, settings = hdfs
    small_lake(fake.local("/data/lake"), batches=2)
    code, out, _ = run(capsys, settings, "verify")
    assert code == 0 and out.startswith("OK: bronze has 20 rows in 2 files")
    code, out, _ = run(capsys, settings, "show", "--limit", "1", "--where", "topics contains ai")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["2024-05-01", "03:19:00", "user1"]


def test_compaction_over_webhdfs_writes_renames_and_deletes(hdfs, capsys):
    fake, settings = hdfs
    lake = fake.local("/data/lake")
    small_lake(lake, batches=5)
    commit(lake, 0, 1, 2)

    code, out, err = run(capsys, settings, "compact", "--dt", "2024-05-01", "--hour", "03")
    assert code == 0, err
    assert "3 files" in out and "-> 1 file" in out and "2 file(s) of uncommitted batches left alone" in out
    partition = lake / "bronze/dt=2024-05-01/hour=03"
    names = sorted(p.name for p in partition.iterdir())
    assert names[:2] == ["part-000000000003-00000.parquet", "part-000000000004-00000.parquet"]
    assert names[2].startswith("part-c") and len(names) == 3
    assert pq.ParquetFile(partition / names[2]).metadata.num_rows == 30
    assert list((lake / "_compactions/bronze").iterdir()) == []  # journal and lock gone

    calls = {(server, method, op) for server, method, op, _ in fake.calls}
    assert {("namenode", "PUT", "CREATE"), ("datanode", "PUT", "CREATE"), ("namenode", "PUT", "RENAME"),
            ("namenode", "DELETE", "DELETE"), ("namenode", "PUT", "MKDIRS")} <= calls
    assert run(capsys, settings, "verify")[0] == 0


def test_errors_over_webhdfs_are_clear(hdfs, capsys):
    fake, settings = hdfs
    code, _, err = run(capsys, settings, "stats", lake_root="hdfs://namenode:8020/nowhere")
    assert code == 2 and "lake root hdfs://namenode:8020/nowhere does not exist" in err

    small_lake(fake.local("/data/lake"), batches=2)
    corrupt(fake.local("/data/lake/bronze/dt=2024-05-01/hour=03/part-000000000001-00000.parquet"))
    code, _, err = run(capsys, settings, "ls", "bronze")
    assert code == 1
    assert "unreadable parquet file bronze/dt=2024-05-01/hour=03/part-000000000001-00000.parquet" in err

    code, _, err = run(capsys, settings.model_copy(update={"hdfs_namenode_url": None}), "stats")
    assert code == 2 and "set HDFS_NAMENODE_URL" in err

    unreachable = settings.model_copy(update={"hdfs_namenode_url": "http://127.0.0.1:9"})
    code, _, err = run(capsys, unreachable, "stats")
    assert code == 1 and "cannot reach WebHDFS at http://127.0.0.1:9" in err
