"""supervisord's event listener for the Procfile set: counts each process's restarts and serves them
with its state as Prometheus metrics (the dashboard's health panel reads them), and when supervisord gives up on a process
(FATAL) says so with the last lines of its log; an essential one stops the whole set.

It speaks supervisord's listener protocol on stdin/stdout; what it says goes to stderr, its log.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, REGISTRY
from supervisor import childutils

STATES = ("STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN")
RESTARTED_FROM = {"EXITED", "BACKOFF"}
LISTENER = "supervise"  # this listener's own name in supervisord
GIVEN_UP = "given_up"  # a file in the run folder naming the essential process given up on
TAIL_LINES = 20


@dataclass
class Process:
    state: str = "STOPPED"
    restarts: int = 0
    since: float = field(default_factory=time.time)


class ProcessTable:
    """What the listener knows of each process, read by the metrics thread."""

    def __init__(self, names: list[str]):
        self.processes = {name: Process() for name in names}
        self.lock = threading.Lock()

    def change(self, name: str, state: str, from_state: str) -> Process:
        with self.lock:
            process = self.processes.setdefault(name, Process())
            if state == "STARTING" and from_state in RESTARTED_FROM:
                process.restarts += 1
            process.state, process.since = state, time.time()
            return process

    def collect(self):
        restarts = CounterMetricFamily("tweetlake_process_restarts", "Restarts of a supervised process after it exited unasked",
                                       labels=["process"])
        states = GaugeMetricFamily("tweetlake_process_state", "1 for the supervised process's current supervisord state",
                                   labels=["process", "state"])
        since = GaugeMetricFamily("tweetlake_process_state_since_seconds", "When the process entered its state (unix time)",
                                  labels=["process"])
        with self.lock:
            for name, process in self.processes.items():
                restarts.add_metric([name], process.restarts)
                for state in STATES:
                    states.add_metric([name, state], 1.0 if process.state == state else 0.0)
                since.add_metric([name], process.since)
        yield from (restarts, states, since)


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as log:
            return [line.rstrip("\n") for line in deque(log, maxlen=lines)]
    except OSError:
        return []


def say(text: str) -> None:
    sys.stderr.write(f"{text}\n")
    sys.stderr.flush()


class Listener:
    def __init__(self, table: ProcessTable, run_dir: Path, essential: list[str]):
        self.table, self.run_dir, self.essential = table, run_dir, set(essential)
        self.rpc = None

    def supervisor(self):
        if self.rpc is None:
            self.rpc = childutils.getRPCInterface(dict(os.environ)).supervisor
        return self.rpc

    def handle(self, event: str, payload: str) -> None:
        headers = childutils.get_headers(payload.split("\n", 1)[0])
        if not event.startswith("PROCESS_STATE_") or headers["groupname"] == LISTENER:
            return
        name, state = headers["processname"], event.removeprefix("PROCESS_STATE_")
        process = self.table.change(name, state, headers.get("from_state", ""))
        if state == "STARTING" and process.restarts and headers.get("from_state") in RESTARTED_FROM:
            say(f"restarting {name} (restart {process.restarts})")
        elif state == "FATAL":
            self.give_up(name)

    def give_up(self, name: str) -> None:
        log = self.run_dir / "logs" / f"{name}.log"
        lines = "\n".join(f"    {line}" for line in tail(log)) or "    (its log is empty)"
        say(f"gave up on {name}: it exited within SUPERVISE_START_SECONDS at each of its last starts. "
            f"The last lines of {log}:\n{lines}")
        if name in self.essential:
            say(f"{name} is essential to the rest: stopping everything")
            (self.run_dir / GIVEN_UP).write_text(name + "\n")
            try:
                self.supervisor().shutdown()
            except Exception as error:
                say(f"could not ask supervisord to stop: {error}")
        else:
            say(f"the other processes keep running; after fixing the cause: "
                f"supervisorctl -c {self.run_dir / 'supervisord.conf'} start {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m supervise.listener", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--essential", default="", help="comma-separated processes whose loss stops the set")
    parser.add_argument("--processes", default="", help="comma-separated processes, shown before their first event")
    args = parser.parse_args(argv)
    table = ProcessTable([name for name in args.processes.split(",") if name])
    REGISTRY.register(table)
    try:
        start_http_server(args.metrics_port, addr="127.0.0.1")
    except OSError as error:  # restarts are still made and logged; only their metrics are missing
        say(f"no metrics: 127.0.0.1:{args.metrics_port} is taken ({error}); set SUPERVISE_METRICS_PORT")
    listener = Listener(table, args.run_dir, [name for name in args.essential.split(",") if name])
    stdin = sys.stdin.buffer
    while True:
        childutils.listener.ready()
        headers = childutils.get_headers(stdin.readline().decode())
        payload = stdin.read(int(headers["len"])).decode("utf-8", errors="replace")
        try:
            listener.handle(headers["eventname"], payload)
        finally:
            childutils.listener.ok()


if __name__ == "__main__":
    sys.exit(main())
