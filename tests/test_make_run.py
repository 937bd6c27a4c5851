"""`make run` as a user starts it (broker, worker, sink, silver, gold and dashboard under its
supervisor, settings from the environment): bronze, silver and gold fill up, the dashboard shows
them, every process listens on the loopback interface only; the worker, the bronze sink and the
silver job SIGKILLed in turn while tweets flow each come back by themselves, every tweet is in
bronze once and in silver once, and the broker and the dashboard never stop."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from agents.sources.synthetic import SyntheticTweets
from config.settings import Settings
from datalake.lake import Lake
from datalake.layout import BRONZE, SILVER
from pipeline.processes import REPO, free_port
from tests.support.kafka_io import produce
from tests.support.processes import bronze_count, bronze_table, supervised, wait_for
from tweets.payloads import tweet_id_of

pytestmark = pytest.mark.integration

def loopback(address: str) -> bool:
    """127.0.0.0/8 or ::1, also as an IPv4-mapped address (how the JVMs' sockets show)."""
    import ipaddress

    ip = ipaddress.ip_address(address)
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def listening(root: psutil.Process) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of `root`'s process tree."""
    found = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    found.append((" ".join(proc.cmdline()[:3])[:80], conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def dashboard_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.load(reply)
    except (OSError, ValueError):
        return {"topics": []}


def version(lake: Path, zone) -> int:
    table = Lake(str(lake), must_exist=False).table(zone)
    return -1 if table is None else table.version()


def process_of(run: psutil.Process, needle: str, name: str = "") -> psutil.Process:
    """The one process of make run's tree whose command line has `needle` (and process name `name`)."""
    found = []
    for process in run.children(recursive=True):
        try:
            if needle in " ".join(process.cmdline()) and (not name or process.name() == name):
                found.append(process)
        except psutil.Error:  # gone, or a zombie its parent has not reaped yet
            pass
    assert len(found) == 1, f"{needle}: {[p.pid for p in found]}"
    return found[0]


def sigkill_and_time_recovery(process: psutil.Process, recovered, what: str) -> float:
    """SIGKILL a process as the OOM killer would; the seconds until `recovered()` says it is back."""
    killed_at = time.monotonic()
    process.kill()
    process.wait(10)
    wait_for(recovered, 240, f"the {what} back after its SIGKILL")
    return round(time.monotonic() - killed_at, 1)


def publish_paced(settings: Settings, messages: list[bytes], per_second: int, done: threading.Event) -> None:
    for start in range(0, len(messages), per_second):
        produce(settings.bootstrap_servers, settings.topic_raw,
                [(tweet_id_of(m).encode(), m) for m in messages[start:start + per_second]])
        time.sleep(1)
    done.set()


@pytest.mark.timeout(900)  # make run's start, three kills and restarts of JVM jobs, and its stop
def test_make_run_fills_the_lake_and_the_dashboard_listens_on_loopback_and_survives_each_process_killed(tmp_path):
    lake = tmp_path / "lake"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAFKA_", "LAKE_", "SUPERVISE_"))}
    env.update(
        BROKER_PORT=str(free_port()), KAFKA_CONTROLLER_PORT=str(free_port()), KAFKA_DATA_DIR=str(tmp_path / "kafka"),
        FAUST_WEB_PORT=str(free_port()), FAUST_DATA_DIR=str(tmp_path / "faust"), LAKE_ROOT=str(lake),
        SYNTHETIC_RATE="25", SINK_TRIGGER_SECONDS="2", SILVER_TRIGGER_SECONDS="2", GOLD_TRIGGER_SECONDS="2",
        SPARK_MASTER="local[2]", DASHBOARD_PORT=str(free_port()), SPARK_METRICS_PORT=str(free_port()),
        SUPERVISE_DIR=str(tmp_path / "run"), SUPERVISE_METRICS_PORT=str(free_port()),
    )
    settings = Settings(broker_port=int(env["BROKER_PORT"]), supervise_metrics_port=int(env["SUPERVISE_METRICS_PORT"]),
                        supervise_dir=tmp_path / "run")
    dashboard = f"http://127.0.0.1:{env['DASHBOARD_PORT']}"
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        run = subprocess.Popen(["make", "run"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    recovery: dict[str, float] = {}
    try:
        wait_for(lambda: bronze_count(lake) > 0, 240, "the first bronze rows under make run")
        wait_for(lambda: bronze_count(lake, "silver") > 0, 240, "the first silver rows under make run")
        wait_for(lambda: bronze_count(lake, "gold/topic_hourly") > 0, 120, "the first gold rows under make run")
        # The dashboard fills up: its chart's numbers are gold's.
        wait_for(lambda: sum(t["tweets"] for t in dashboard_json(f"{dashboard}/api/topics?range=all")["topics"]) > 0,
                   60, "the dashboard to show tweets per topic")
        time.sleep(3)  # the dead-letter query and the Spark UIs are up by now too
        tree = psutil.Process(run.pid)
        sockets = listening(tree)

        # Tweets of our own flow through the raw topic while the worker, the sink and silver die.
        ours = list(SyntheticTweets(seed=2507, off_topic_share=0.0, non_english_share=0.0,
                                    malformed_share=0.0).messages(2400))
        published = threading.Event()
        threading.Thread(target=publish_paced, args=(settings, ours, 30, published), daemon=True).start()
        broker, board = process_of(tree, "engines.broker"), process_of(tree, "-m dashboard")
        kept = {p.pid: p.create_time() for p in (broker, board)}

        worker = process_of(tree, "faust")
        counters = f"http://127.0.0.1:{env['FAUST_WEB_PORT']}/counters/"
        recovery["worker"] = sigkill_and_time_recovery(
            worker, lambda: dashboard_json(counters).get("read", 0) > 0, "Faust worker")
        for zone, job, what in ((BRONZE, "spark_sink/bronze.py", "bronze sink"), (SILVER, "spark_sink/silver.py", "silver job")):
            at_kill = version(lake, zone)
            recovery[job] = sigkill_and_time_recovery(
                process_of(tree, job, "java"), lambda: version(lake, zone) > at_kill + 1, what)

        wait_for(published.is_set, 120, "our tweets published")
        ids = {tweet_id_of(m) for m in ours}
        wait_for(lambda: ids <= set(bronze_table(lake, columns=["tweet_id"])["tweet_id"].to_pylist()), 240,
                   "every tweet of ours in bronze")
        bronze = bronze_table(lake, columns=["tweet_id", "edit_history_tweet_ids"])
        ours_in_bronze = bronze.filter(pc.is_in(bronze["tweet_id"], pa.array(sorted(ids)))).to_pylist()
        roots = {(row["edit_history_tweet_ids"] or [row["tweet_id"]])[0] for row in ours_in_bronze}  # silver's post id
        wait_for(lambda: roots <= set(bronze_table(lake, "silver", ["edit_root_id"])["edit_root_id"].to_pylist()),
                   240, "every post of ours in silver")
        silver = bronze_table(lake, "silver", ["edit_root_id"])
        states = supervised(settings)
        health = dashboard_json(f"{dashboard}/api/health")
        still = {pid: psutil.pid_exists(pid) and psutil.Process(pid).create_time() == t for pid, t in kept.items()}
    finally:
        stopping = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
        try:
            run.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        recovery["stop_all_after_ctrl_c"] = round(time.monotonic() - stopping, 1)
        (Path(REPO) / "tests" / "output").mkdir(exist_ok=True)
        (Path(REPO) / "tests" / "output" / "make_run_restarts.json").write_text(json.dumps(recovery, indent=2) + "\n")
    assert any(port == int(env["FAUST_WEB_PORT"]) for _, _, port in sockets), sockets
    assert any(port == int(env["BROKER_PORT"]) for _, _, port in sockets), sockets
    assert any(port == int(env["DASHBOARD_PORT"]) for _, _, port in sockets), sockets
    elsewhere = [s for s in sockets if not loopback(s[1])]
    assert not elsewhere, f"listening beyond loopback: {elsewhere}\n{log_path.read_text()[-3000:]}"
    # Each tweet once in bronze, each post once in silver, through three kills and restarts.
    assert pc.count_distinct(bronze["tweet_id"]).as_py() == bronze.num_rows
    assert pc.count_distinct(silver["edit_root_id"]).as_py() == silver.num_rows
    assert all(still.values()), f"the broker or the dashboard was restarted: {still}"
    assert {name: (p["state"], p["restarts"]) for name, p in states.items()} == {
        "broker": ("RUNNING", 0), "worker": ("RUNNING", 1), "sink": ("RUNNING", 1), "silver": ("RUNNING", 1),
        "gold": ("RUNNING", 0), "dashboard": ("RUNNING", 0)}
    assert {p["process"]: p["restarts"] for p in health["supervised"]["processes"]}["sink"] == 1
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not leftovers, f"processes left after Ctrl-C: {[p.info['cmdline'][:4] for p in leftovers]}"
