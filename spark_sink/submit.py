"""The Spark jobs' spark-submit command, built in one place for `make run` (the Procfile), the
tests, the backfill and the benchmark.

    python -m spark_sink.submit [bronze|silver|gold|refine] [job args, e.g. --available-now]

bronze (the default): spark_sink/bronze.py, the typed topic into bronze. silver:
spark_sink/silver.py, bronze into silver. gold: spark_sink/gold.py, silver into gold. refine:
spark_sink/refine.py, silver then gold, available-now (the backfill's).

Spark's Kafka source is not in the pyspark wheel: its connector jars (`engines/poms/spark-kafka.xml`,
fetched by `make jars`) go on `--jars`, or SINK_SPARK_PACKAGES hands `--packages` coordinates to
Spark instead (a cluster that resolves them itself).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from app.settings import Settings, get_settings
from engines.jars import JarsMissing, jar_paths

REPO = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
JOBS = {"bronze": REPO / "spark_sink/bronze.py", "silver": REPO / "spark_sink/silver.py",
        "gold": REPO / "spark_sink/gold.py", "refine": REPO / "spark_sink/refine.py"}
# The exit code of a job that runs once per lake (silver, gold) when another one holds the lake.
LAKE_BUSY = 3


def sink_command(settings: Settings, *job_args: str, job: str = "bronze", web_ui: bool = True,
                 driver_java_options: str = "") -> list[str]:
    """spark-submit of a job (JOBS) on SPARK_MASTER, bronze's with the Kafka connector; JarsMissing
    (naming `make jars`) if its jars are not fetched. A local master stays on the loopback interface;
    `web_ui=False` spares tests the UI's start-up and port."""
    command = [str(SPARK_SUBMIT), "--master", settings.spark_master]
    if job == "bronze" and settings.sink_spark_packages:
        command += ["--packages", settings.sink_spark_packages]
    elif job == "bronze":
        command += ["--jars", ",".join(str(path) for path in jar_paths("spark-kafka"))]
    command += ["--conf", "spark.ui.showConsoleProgress=false"]
    if settings.lake_replication is not None:
        command += ["--conf", f"spark.hadoop.dfs.replication={settings.lake_replication}"]
    if not web_ui:
        command += ["--conf", "spark.ui.enabled=false"]
    if settings.spark_master.startswith("local"):
        command += ["--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1"]
    command += [
        "--driver-java-options",
        f"-Dlog4j2.configurationFile={REPO / 'config/log4j2.properties'} {driver_java_options}".strip(),
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
