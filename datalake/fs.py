"""The few filesystem calls the `lake` tools need, on a local folder or on HDFS.

The sink reaches HDFS through Spark's Hadoop client; the `lake` command must start in a second
without a JVM, so on `hdfs://` it speaks WebHDFS (REST, through the `hdfs` package) instead.
Paths are absolute POSIX strings on both backends, joined with `posixpath`.
"""
from __future__ import annotations

import io
import os
import posixpath
import shutil
import tempfile
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Protocol
from urllib.parse import urlparse


@dataclass(frozen=True)
class Entry:
    """One directory entry: a file with its size, or a directory (size 0)."""

    path: str
    is_dir: bool
    size: int

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


class LakeFS(Protocol):
    """What the lake tools need from a filesystem. Missing paths raise FileNotFoundError."""

    def list(self, path: str) -> list[Entry]:
        """The entries of directory `path`, sorted by name."""

    def exists(self, path: str) -> bool: ...

    def open(self, path: str) -> BinaryIO:
        """A seekable binary reader (pyarrow reads parquet footers without reading the file)."""

    def create(self, path: str) -> AbstractContextManager[BinaryIO]:
        """A writer for a new file; fails if `path` exists, leaves nothing behind on error."""

    def rename(self, source: str, target: str) -> None:
        """Atomic rename of a file; fails if `target` exists."""

    def delete(self, path: str, recursive: bool = False) -> None:
        """Remove a file (or a directory, if recursive); a missing path is not an error."""

    def mkdirs(self, path: str) -> None: ...


class LocalFS:
    """A local folder."""

    def list(self, path: str) -> list[Entry]:
        with os.scandir(path) as entries:
            found = [Entry(e.path, e.is_dir(), 0 if e.is_dir() else e.stat().st_size) for e in entries]
        return sorted(found, key=lambda entry: entry.name)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def open(self, path: str) -> BinaryIO:
        return open(path, "rb")

    @contextmanager
    def create(self, path: str) -> Iterator[BinaryIO]:
        with open(path, "xb") as stream:
            try:
                yield stream
            except BaseException:
                stream.close()
                os.unlink(path)
                raise

    def rename(self, source: str, target: str) -> None:
        if os.path.exists(target):
            raise FileExistsError(f"cannot rename {source} to {target}: the target exists")
        os.rename(source, target)

    def delete(self, path: str, recursive: bool = False) -> None:
        if recursive and os.path.isdir(path):
            shutil.rmtree(path)
            return
        for doomed in (path, _hadoop_checksum(path)):
            try:
                os.unlink(doomed)
            except FileNotFoundError:
                pass

    def mkdirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)


def _hadoop_checksum(path: str) -> str:
    """The `.NAME.crc` file Hadoop's local filesystem writes next to each file it writes."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.crc")


class WebHdfsFS:
    """HDFS through WebHDFS: the namenode answers metadata calls and redirects reads and writes
    to a datanode, which the `hdfs` client follows."""

    def __init__(self, namenode_url: str, user: str | None):
        from hdfs import InsecureClient

        self.namenode_url = namenode_url
        self._client = InsecureClient(namenode_url, user=user)

    def list(self, path: str) -> list[Entry]:
        with self._errors("list", path):
            statuses = self._client.list(path, status=True)
        entries = [Entry(posixpath.join(path, name), s["type"] == "DIRECTORY", int(s.get("length", 0)))
                   for name, s in statuses]
        return sorted(entries, key=lambda entry: entry.name)

    def exists(self, path: str) -> bool:
        with self._errors("stat", path):
            return self._client.status(path, strict=False) is not None

    def open(self, path: str) -> BinaryIO:
        with self._errors("stat", path):
            status = self._client.status(path)
        return io.BufferedReader(_WebHdfsReader(self, path, int(status["length"])), buffer_size=1 << 20)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        with self._errors("read", path), self._client.read(path, offset=offset, length=length) as reader:
            return reader.read()

    @contextmanager
    def create(self, path: str) -> Iterator[BinaryIO]:
        """Spooled to a local temporary file, uploaded when the block ends without error, so a
        failed write leaves nothing on HDFS and pyarrow gets a seekable file to write."""
        with tempfile.TemporaryFile() as spool:
            yield spool
            spool.flush()
            spool.seek(0)
            with self._errors("create", path):
                self._client.write(path, data=spool, overwrite=False)

    def rename(self, source: str, target: str) -> None:
        if self.exists(target):  # HDFS would move `source` into `target` if it were a directory
            raise FileExistsError(f"cannot rename {source} to {target}: the target exists")
        with self._errors("rename", source):
            self._client.rename(source, target)

    def delete(self, path: str, recursive: bool = False) -> None:
        with self._errors("delete", path):
            self._client.delete(path, recursive=recursive)

    def mkdirs(self, path: str) -> None:
        with self._errors("mkdirs", path):
            self._client.makedirs(path)

    @contextmanager
    def _errors(self, operation: str, path: str) -> Iterator[None]:
        """HdfsError and connection errors as the OSError kinds the local backend raises."""
        from hdfs.util import HdfsError
        from requests import RequestException

        try:
            yield
        except HdfsError as error:
            if error.exception == "FileNotFoundException":
                raise FileNotFoundError(f"{path} does not exist on HDFS") from error
            if error.exception == "FileAlreadyExistsException":
                raise FileExistsError(f"{path} already exists on HDFS") from error
            raise OSError(f"WebHDFS {operation} {path} failed: {error}") from error
        except RequestException as error:
            raise OSError(f"cannot reach WebHDFS at {self.namenode_url} ({operation} {path}): {error}") from error


class _WebHdfsReader(io.RawIOBase):
    """A seekable file over WebHDFS OPEN with offset/length: one request per buffered read."""

    def __init__(self, fs: WebHdfsFS, path: str, size: int):
        self._fs, self._path, self._size, self._position = fs, path, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        length = min(len(buffer), self._size - self._position)
        if length <= 0:
            return 0
        data = self._fs.read_range(self._path, self._position, length)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def lake_fs_for(lake_root: str, namenode_url: str | None, user: str | None,
                http_port: int) -> tuple[LakeFS, str]:
    """The backend for LAKE_ROOT and the root's path on it: `hdfs://` goes through WebHDFS at
    `namenode_url`, by default the root's namenode host on `http_port`; a plain path or `file://`
    URI is local."""
    parsed = urlparse(lake_root)
    if parsed.scheme == "hdfs":
        if not namenode_url and parsed.hostname:
            namenode_url = f"http://{parsed.hostname}:{http_port}"
        if not namenode_url:
            raise ValueError(
                f"LAKE_ROOT {lake_root} names no namenode host: set HDFS_NAMENODE_URL to the namenode's "
                "WebHDFS address (e.g. http://namenode:9870)"
            )
        return WebHdfsFS(namenode_url, user), posixpath.normpath(parsed.path or "/")
    if parsed.scheme == "file":
        return LocalFS(), str(Path(parsed.path).resolve())
    if parsed.scheme == "":
        return LocalFS(), str(Path(lake_root).resolve())
    raise ValueError(f"unsupported lake root {lake_root}: use a local path, file:// or hdfs://")
