"""The supervisor of `make run` and `make cluster` (python -m supervise) on a small Procfile of shell
commands: a process that dies is restarted and counted while the others keep their pids; one that
dies at every start is given up on with its name and the last lines of its log; giving up on an
essential one stops the set with exit status 1 and leaves no process behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from config.settings import Settings
from pipeline.processes import REPO, free_port
from tests.support.processes import supervised, supervised_pid, wait_for

pytestmark = pytest.mark.integration

PROCFILE = """\
steady: echo $$ >> steady.pids; exec sleep 600
crashing: echo "crashing starts"; sleep 0.3; echo "cannot open config: 100% wrong"; exit 3
"""


def start(tmp_path, procfile: str, *args: str) -> tuple[subprocess.Popen, Settings]:
    (tmp_path / "Procfile").write_text(procfile)
    settings = Settings(supervise_metrics_port=free_port(), supervise_dir=tmp_path / "run")
    env = {**os.environ, "SUPERVISE_METRICS_PORT": str(settings.supervise_metrics_port),
           "SUPERVISE_DIR": str(settings.supervise_dir), "SUPERVISE_START_SECONDS": "2",
           "SUPERVISE_START_RETRIES": "2", "SUPERVISE_STOP_SECONDS": "5"}
    run = subprocess.Popen([sys.executable, "-m", "supervise", "--procfile", str(tmp_path / "Procfile"),
                            "--workdir", str(tmp_path), *args],
                           cwd=REPO, env=env, stdout=open(tmp_path / "out.log", "wb"), stderr=subprocess.STDOUT,
                           start_new_session=True)
    return run, settings


def stop(run: subprocess.Popen) -> int:
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGINT)
    try:
        return run.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        raise


def left_behind(tmp_path) -> list[int]:
    """The processes of this run still alive: the supervisor's and the ones the Procfile started."""
    started = [int(pid) for log in tmp_path.glob("*.pids") for pid in log.read_text().split()]
    mine = [p.pid for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    return [pid for pid in started if psutil.pid_exists(pid)] + mine


def test_a_killed_process_is_restarted_and_one_that_dies_at_every_start_is_given_up_on(tmp_path):
    procfile = PROCFILE + "victim: echo $$ >> victim.pids; exec sleep 600\n"
    run, settings = start(tmp_path, procfile, "--infra", "steady")
    try:
        wait_for(lambda: supervised(settings).get("victim", {}).get("state") == "RUNNING", 30, "victim running")
        steady, victim = supervised_pid(settings, "steady", "infra"), supervised_pid(settings, "victim")
        assert steady and victim
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: supervised(settings)["victim"]["state"] == "RUNNING" and supervised_pid(settings, "victim") not in (0, victim),
                   30, "the killed process back")
        wait_for(lambda: supervised(settings)["crashing"]["state"] == "FATAL", 60, "crashing given up on")
        seen = supervised(settings)
        assert seen["victim"]["restarts"] == 1
        assert seen["crashing"]["restarts"] == 2  # the first start and two retries
        assert (seen["steady"]["state"], seen["steady"]["restarts"]) == ("RUNNING", 0)
        assert supervised_pid(settings, "steady", "infra") == steady
        assert run.poll() is None  # a non-essential process given up on stops nothing else
        def notice() -> str:
            output = (tmp_path / "out.log").read_text()
            return output[output.index("gave up on crashing"):] if "gave up on crashing" in output else ""
        # the notice names the process and carries the last lines of its log (the tail of every
        # process's log reaches the same output on its own, so only the text after the notice counts)
        wait_for(lambda: "crashing starts" in notice() and "cannot open config: 100% wrong" in notice(), 20,
                   "the given-up notice with the process's last log lines")
    finally:
        assert stop(run) == 0
    assert not left_behind(tmp_path)


def test_giving_up_on_an_essential_process_stops_the_whole_set(tmp_path):
    run, settings = start(tmp_path, PROCFILE, "--infra", "steady", "--essential", "crashing")
    try:
        assert run.wait(timeout=60) == 1
    finally:
        stop(run)
    assert (tmp_path / "steady.pids").exists() and not left_behind(tmp_path)
    assert (tmp_path / "run" / "given_up").read_text().strip() == "crashing"
