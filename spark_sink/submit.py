"""spark-submit of the Spark jobs, built in one place for `make run` (the Procfile), the tests, the
backfill and the benchmark: `python -m spark_sink.submit [JOB] [job args, e.g. --available-now]`,
JOB one of JOBS (bronze by default). Why the jars go on --jars or SINK_SPARK_PACKAGES:
docs/architecture.md, "The Spark sink"; a spark:// master: docs/operations.md, "Going to production".
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from config.settings import Settings, get_settings
from engines.jars import JarsMissing, jar_paths

REPO = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
LOG4J = REPO / "config/log4j2.properties"
LOOPBACK = {"127.0.0.1", "localhost"}
JOBS = {"bronze": REPO / "spark_sink/bronze.py", "silver": REPO / "spark_sink/silver.py",
        "gold": REPO / "spark_sink/gold.py", "refine": REPO / "spark_sink/refine.py",
        "convert": REPO / "spark_sink/convert.py"}


def master_hosts(master: str) -> list[str]:
    """The hosts of a spark:// master URL (several for a standby pair: spark://h1:7077,h2:7077)."""
    return [address.rsplit(":", 1)[0] for address in master.removeprefix("spark://").split(",")]


def sink_command(settings: Settings, *job_args: str, job: str = "bronze", web_ui: bool = True,
                 driver_java_options: str = "") -> list[str]:
    """spark-submit of a job (JOBS) on SPARK_MASTER with Delta Lake, bronze's with the Kafka
    connector too; JarsMissing (naming `make jars`) if their jars are not fetched. A local master, or a spark:// one on 127.0.0.1,
    keeps the driver on the loopback interface; `web_ui=False` spares tests the UI's start-up and port."""
    master = settings.spark_master
    command = [str(SPARK_SUBMIT), "--master", master]
    if settings.sink_spark_packages:
        command += ["--packages", settings.sink_spark_packages]
    else:
        engines = ("spark-kafka", "delta") if job == "bronze" else ("delta",)
        command += ["--jars", ",".join(str(path) for engine in engines for path in jar_paths(engine))]
    command += ["--conf", "spark.ui.showConsoleProgress=false"]
    if settings.lake_replication is not None:
        command += ["--conf", f"spark.hadoop.dfs.replication={settings.lake_replication}"]
    if not web_ui:
        command += ["--conf", "spark.ui.enabled=false"]
    if not master.startswith("local"):
        # Uncapped, a job on a standalone cluster takes every core and the next job gets none.
        if settings.spark_cores_max is not None:
            command += ["--conf", f"spark.cores.max={settings.spark_cores_max}"]
        command += ["--conf", f"spark.executor.memory={settings.spark_executor_memory}"]
    if master.startswith("spark://"):
        # Executors start Python workers with the driver's interpreter: this venv's has pyarrow and
        # the project; a python3 from PATH fails with only "Python worker failed to connect back".
        command += ["--conf", f"spark.pyspark.python={sys.executable}",
                    "--conf", f"spark.executor.extraJavaOptions=-Dlog4j2.configurationFile={LOG4J}"]
    if master.startswith("local") or (master.startswith("spark://") and set(master_hosts(master)) <= LOOPBACK):
        command += ["--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1"]
    command += [
        "--driver-java-options",
        f"-Dlog4j2.configurationFile={LOG4J} {driver_java_options}".strip(),
        str(JOBS[job]),
        *job_args,
    ]
    return command


def main(argv: list[str] | None = None) -> int:
    """Replaces this process with spark-submit, so a supervisor's signals (honcho's) reach it."""
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        job = args.pop(0) if args and args[0] in JOBS else "bronze"
        command = sink_command(get_settings(), *args, job=job)
    except JarsMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # Spark starts the job's Python driver with PYSPARK_DRIVER_PYTHON: this venv's, not python3 on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
