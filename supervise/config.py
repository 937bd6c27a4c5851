"""The supervisord configuration of a Procfile set: one program per Procfile line, restarted when it
exits unasked, in two groups (infrastructure started first and stopped last, the pipeline stopped
before it), each process's output in its own log file, and the event listener that counts restarts,
serves them as metrics and says which process was given up on.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from supervise.listener import LISTENER

INFRA_GROUP = "infra"
PIPELINE_GROUP = "pipeline"
LOG_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Policy:
    """How processes are restarted and stopped (the SUPERVISE_* settings)."""

    start_seconds: float
    start_retries: int
    stop_seconds: float


def matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _value(text: str) -> str:
    """supervisord expands %(name)s in values: a literal % is written %%."""
    return text.replace("%", "%%")


def program(name: str, command: str, policy: Policy, log_dir: Path, workdir: Path) -> str:
    """A Procfile line as a supervisord program: run by sh like honcho runs it, its whole process group
    signalled on stop (spark-submit's JVM and Python workers, faust's children), restarted when it
    exits unasked (whatever its exit code: every line is meant to run until stopped); a start that dies within start_seconds is retried start_retries times with
    supervisord's backoff (1, 2, 3 ... s), then the process is FATAL: given up on."""
    return f"""
[program:{name}]
command=/bin/sh -c {_value(shlex.quote(command))}
directory={_value(str(workdir))}
autostart=true
autorestart=true
startsecs={max(1, round(policy.start_seconds))}
startretries={policy.start_retries}
stopsignal=TERM
stopwaitsecs={max(1, round(policy.stop_seconds))}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={_value(str(log_dir / f"{name}.log"))}
stdout_logfile_maxbytes={LOG_BYTES}
stdout_logfile_backups=2
"""


def supervisord_conf(processes: dict[str, str], *, run_dir: Path, workdir: Path, policy: Policy,
                     infra: list[str], essential: list[str], metrics_port: int) -> str:
    """The whole configuration: supervisord in the foreground, its control socket in run_dir (a
    unix socket, nothing listens on the network), the programs and the listener."""
    log_dir = run_dir / "logs"
    socket = control_socket(run_dir)
    infra_names = [name for name in processes if matches(name, infra)]
    pipeline_names = [name for name in processes if name not in infra_names]
    listener = " ".join(shlex.quote(part) for part in [
        sys.executable, "-m", "supervise.listener", "--metrics-port", str(metrics_port),
        "--run-dir", str(run_dir), "--essential", ",".join(essential), "--processes", ",".join(processes)])
    user = "\nuser=root" if os.geteuid() == 0 else ""  # says it means to run as root (else supervisord warns)
    sections = [f"""[supervisord]
nodaemon=true
logfile={_value(str(run_dir / "supervisord.log"))}
logfile_maxbytes={LOG_BYTES}
pidfile={_value(str(run_dir / "supervisord.pid"))}{user}
childlogdir={_value(str(log_dir))}
directory={_value(str(workdir))}
loglevel=info

[unix_http_server]
file={_value(str(socket))}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{_value(str(socket))}

[eventlistener:{LISTENER}]
command={_value(listener)}
directory={_value(str(workdir))}
events=PROCESS_STATE
buffer_size=100
autorestart=true
stdout_logfile=NONE
stderr_logfile={_value(str(log_dir / f"{LISTENER}.log"))}
stderr_logfile_maxbytes={LOG_BYTES}
"""]
    for group, names, priority in ((INFRA_GROUP, infra_names, 100), (PIPELINE_GROUP, pipeline_names, 200)):
        if names:
            sections.append(f"\n[group:{group}]\nprograms={','.join(names)}\npriority={priority}\n")
            sections.extend(program(name, processes[name], policy, log_dir, workdir) for name in names)
    return "".join(sections)


def control_socket(run_dir: Path) -> Path:
    """supervisord's socket: in run_dir, or under /tmp when that path is too long for a unix socket."""
    path = run_dir.resolve() / "supervisor.sock"
    if len(str(path)) < 100:
        return path
    return Path("/tmp") / f"tweetlake-supervise-{hashlib.sha1(str(path).encode()).hexdigest()[:12]}.sock"
