"""Run a Procfile's processes under supervisord (`make run`, `make cluster`): each one restarted when
it exits unasked, the others untouched; Ctrl-C stops the pipeline, then the infrastructure.

    python -m supervise --procfile Procfile --infra broker --essential broker
Restarts, giving up, logs, metrics and exit status: docs/operations.md, "Supervision".
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from honcho.environ import parse as parse_env, parse_procfile

from config.settings import get_settings
from supervise.config import Policy, matches, supervisord_conf
from supervise.listener import GIVEN_UP, LISTENER
from supervise.output import Output

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m supervise", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--procfile", type=Path, default=REPO / "Procfile", help="the processes (default: Procfile)")
    parser.add_argument("--env", type=Path, help="a file of KEY=VALUE lines the processes get (as honcho's -e)")
    parser.add_argument("--workdir", type=Path, default=REPO, help="where the processes run (default: the checkout)")
    parser.add_argument("--infra", default="", help="comma-separated names or globs started as infrastructure: "
                        "stopped after the rest")
    parser.add_argument("--essential", default="", help="comma-separated names or globs: giving up on one stops everything")
    parser.add_argument("--dir", type=Path, help="config, logs and control socket (default: SUPERVISE_DIR)")
    return parser.parse_args(argv)


def listed(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.env:  # before the settings are read: the file's values are the set's settings
        for key, value in parse_env(args.env.read_text()).items():
            os.environ[key] = value
    settings = get_settings()
    run_dir = (args.dir or settings.supervise_dir).resolve()
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    (run_dir / GIVEN_UP).unlink(missing_ok=True)
    processes = dict(parse_procfile(args.procfile.read_text()).processes)
    names = list(processes)
    policy = Policy(settings.supervise_start_seconds, settings.supervise_start_retries, settings.supervise_stop_seconds)
    essential = [name for name in names if matches(name, listed(args.essential))]
    conf = run_dir / "supervisord.conf"
    conf.write_text(supervisord_conf(processes, run_dir=run_dir, workdir=args.workdir.resolve(), policy=policy,
                                     infra=listed(args.infra), essential=essential,
                                     metrics_port=settings.supervise_metrics_port))
    print(f"supervise: {len(names)} processes from {args.procfile} ({', '.join(names)}); logs in {run_dir / 'logs'}, "
          f"restarts on http://127.0.0.1:{settings.supervise_metrics_port}/metrics", flush=True)
    logs = {name: run_dir / "logs" / f"{name}.log" for name in [*names, LISTENER]}
    for log in logs.values():  # a new run's output starts here; the last run's lines are in .1
        if log.exists() and log.stat().st_size:
            log.replace(log.with_name(log.name + ".1"))
    output = Output(logs)
    output.start()
    supervisord = subprocess.Popen([str(Path(sys.executable).parent / "supervisord"), "-c", str(conf)])
    def forward(signum, _frame):  # Ctrl-C reaches both of us; supervisord stops the set in order
        supervisord.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    supervisord.wait()
    output.stop()
    given_up = run_dir / GIVEN_UP
    if given_up.exists():
        print(f"supervise: stopped because {given_up.read_text().strip()} could not be kept running", file=sys.stderr)
        return 1
    return 0 if supervisord.returncode in (0, -signal.SIGINT, -signal.SIGTERM) else supervisord.returncode


if __name__ == "__main__":
    sys.exit(main())
