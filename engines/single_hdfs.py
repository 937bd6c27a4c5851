"""The project's single-node HDFS (engines/hdfs.py), with its settings.

    python -m engines.single_hdfs              run it in the foreground until Ctrl-C or SIGTERM (`make hdfs`)
    python -m engines.single_hdfs dfs ARGS...  Hadoop's FsShell against it (`bin/hdfs dfs -ls /`)

Settings: HDFS_HOST, HDFS_PORT (RPC), HDFS_HTTP_PORT (WebHDFS), HDFS_DATA_DIR, HDFS_HEAP_MB.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from config.settings import Settings
from engines import jars
from engines.hdfs import HdfsError, HdfsLayout, fs_shell, running_hdfs

REPO = Path(__file__).resolve().parents[1]


def hdfs_layout(settings: Settings, datanodes: int = 1) -> HdfsLayout:
    """The HDFS_* settings as the engine's layout (one DataNode: `make hdfs`); a relative data folder is
    the checkout's."""
    data_dir = settings.hdfs_data_dir if settings.hdfs_data_dir.is_absolute() else REPO / settings.hdfs_data_dir
    return HdfsLayout(settings.hdfs_host, settings.hdfs_port, settings.hdfs_http_port, data_dir, settings.hdfs_heap_mb,
                      datanodes=datanodes)


def serve(layout: HdfsLayout) -> int:
    """The foreground HDFS of `make hdfs`: daemons log to the terminal, Ctrl-C or SIGTERM stops both."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with running_hdfs(layout, log_to_files=False) as cluster:
            print(f"HDFS ready: {cluster.uri} (WebHDFS {cluster.webhdfs_url}), data in {cluster.layout.data_dir}; "
                  "Ctrl-C stops it", flush=True)
            while all(daemon.alive() for daemon in cluster.daemons):
                time.sleep(0.5)
            gone = next(daemon for daemon in cluster.daemons if not daemon.alive())
            print(f"error: the {gone.name} exited with code {gone.popen.returncode}; stopping HDFS", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print("HDFS stopped", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    layout = hdfs_layout(Settings(_env_file=REPO / ".env"))  # the checkout's .env, also when bin/hdfs runs elsewhere
    if argv[:1] == ["dfs"]:
        try:
            return fs_shell(layout, argv[1:])
        except (HdfsError, jars.JarsMissing) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    parser = argparse.ArgumentParser(prog="python -m engines.single_hdfs", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description=__doc__)
    parser.add_argument("command", nargs="?", choices=["serve", "dfs"], default="serve",
                        help="serve (default): run NameNode + DataNode in the foreground; "
                             "dfs ARGS...: Hadoop's FsShell, e.g. `dfs -ls /` (`dfs -help` lists its commands)")
    parser.parse_args(argv)
    try:
        return serve(layout)
    except (HdfsError, jars.JarsMissing) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
