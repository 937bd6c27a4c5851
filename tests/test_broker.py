"""The broker process of the Procfile set: topics created, and a dead embedded broker restarted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from app.broker import admin_client, project_topics
from app.settings import Settings
from app.processes import free_port
from tests.processes import wait_until

pytestmark = pytest.mark.integration


def test_a_dead_embedded_broker_is_restarted_with_its_topics(tmp_path):
    settings = Settings(_env_file=None, broker_port=free_port())
    env = {**os.environ, "BROKER_PORT": str(settings.broker_port), "LOG_LEVEL": "info"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    log_path = tmp_path / "broker.log"
    with open(log_path, "wb") as log_file:
        runner = subprocess.Popen([sys.executable, "-m", "app.broker"], env=env, cwd=tmp_path,
                                  stdout=log_file, stderr=subprocess.STDOUT)
        try:
            def tansu_children():
                return [child for child in psutil.Process(runner.pid).children() if "tansu" in child.name()]

            wait_until(lambda: b"ready at" in log_path.read_bytes() and tansu_children(), 30, "broker ready")
            first = tansu_children()[0]
            first.send_signal(signal.SIGKILL)
            wait_until(lambda: b"restart 1" in log_path.read_bytes(), 30, "the restart")
            wait_until(lambda: tansu_children() and tansu_children()[0].pid != first.pid, 30, "a new broker")
            wait_until(lambda: set(project_topics(settings)) <= set(admin_client(settings.bootstrap_servers)
                                                                     .list_topics(timeout=5).topics), 30, "topics again")
        finally:
            runner.send_signal(signal.SIGTERM)
            runner.wait(timeout=30)
    assert runner.returncode == 0
