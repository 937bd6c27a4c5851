"""`make run` as a user starts it (broker, worker, sink, silver, gold and dashboard under honcho,
settings from the environment): bronze, silver and gold fill up, the dashboard shows them, and every
process listens on the loopback interface only."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import psutil
import pytest

from pipeline.processes import REPO, free_port
from processes import bronze_count, wait_until

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


def test_make_run_fills_bronze_silver_gold_and_the_dashboard_and_listens_on_loopback_only(tmp_path):
    lake = tmp_path / "lake"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAFKA_", "LAKE_"))}
    env.update(
        BROKER_PORT=str(free_port()), KAFKA_CONTROLLER_PORT=str(free_port()), KAFKA_DATA_DIR=str(tmp_path / "kafka"),
        FAUST_WEB_PORT=str(free_port()), FAUST_DATA_DIR=str(tmp_path / "faust"), LAKE_ROOT=str(lake),
        SYNTHETIC_RATE="25", SINK_TRIGGER_SECONDS="2", SILVER_TRIGGER_SECONDS="2", GOLD_TRIGGER_SECONDS="2",
        SPARK_MASTER="local[2]", DASHBOARD_PORT=str(free_port()), SPARK_METRICS_PORT=str(free_port()),
    )
    dashboard = f"http://127.0.0.1:{env['DASHBOARD_PORT']}"
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        run = subprocess.Popen(["make", "run"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: bronze_count(lake) > 0, 240, "the first bronze rows under make run")
        wait_until(lambda: bronze_count(lake, "silver") > 0, 240, "the first silver rows under make run")
        wait_until(lambda: bronze_count(lake, "gold/topic_hourly") > 0, 120, "the first gold rows under make run")
        # The dashboard fills up: its chart's numbers are gold's.
        wait_until(lambda: sum(t["tweets"] for t in dashboard_json(f"{dashboard}/api/topics?range=all")["topics"]) > 0,
                   60, "the dashboard to show tweets per topic")
        time.sleep(3)  # the dead-letter query and the Spark UIs are up by now too
        sockets = listening(psutil.Process(run.pid))
    finally:
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
        try:
            run.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert not loopback("0.0.0.0") and not loopback("::") and loopback("::ffff:127.0.0.1")
    assert any(port == int(env["FAUST_WEB_PORT"]) for _, _, port in sockets), sockets
    assert any(port == int(env["BROKER_PORT"]) for _, _, port in sockets), sockets
    assert any(port == int(env["DASHBOARD_PORT"]) for _, _, port in sockets), sockets
    elsewhere = [s for s in sockets if not loopback(s[1])]
    assert not elsewhere, f"listening beyond loopback: {elsewhere}\n{log_path.read_text()[-3000:]}"
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not leftovers, f"processes left after Ctrl-C: {[p.info['cmdline'][:4] for p in leftovers]}"
