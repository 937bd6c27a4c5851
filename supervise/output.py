"""The processes' output on the terminal, as honcho showed it: each line of each process's log file
with the time and the process's name in front. supervisord writes the files (rotated, kept after a
restart); this follows them."""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

POLL_SECONDS = 0.25


@dataclass
class Followed:
    name: str
    path: Path
    inode: int | None = None
    offset: int = 0
    partial: bytes = b""


def new_lines(followed: Followed) -> list[str]:
    """The complete lines written since the last look; from the start again after a rotation."""
    try:
        stat = followed.path.stat()
    except FileNotFoundError:
        return []
    if stat.st_ino != followed.inode or stat.st_size < followed.offset:
        followed.inode, followed.offset, followed.partial = stat.st_ino, 0, b""
    if stat.st_size == followed.offset:
        return []
    with followed.path.open("rb") as log:
        log.seek(followed.offset)
        data = log.read()
    followed.offset += len(data)
    *lines, followed.partial = (followed.partial + data).split(b"\n")
    return [line.decode("utf-8", errors="replace") for line in lines]


class Output(threading.Thread):
    """Follows the named log files until stopped, then prints what is left."""

    def __init__(self, logs: dict[str, Path], out: TextIO = sys.stdout):
        super().__init__(name="supervise-output", daemon=True)
        self.followed = [Followed(name, path) for name, path in logs.items()]
        self.width = max(len(name) for name in logs)
        self.out, self.stopping = out, threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(POLL_SECONDS):
            self.show()
        self.show()

    def show(self) -> None:
        stamp = time.strftime("%H:%M:%S")
        for followed in self.followed:
            lines = new_lines(followed)
            if lines:
                self.out.write("".join(f"{stamp} {followed.name:<{self.width}} | {line}\n" for line in lines))
        self.out.flush()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
