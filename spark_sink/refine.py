"""Silver, then gold, in one Spark application with the available-now trigger: what a backfill
runs after landing bronze (one JVM and session start instead of two, and gold's batch meets a
warm JVM).

    python -m spark_sink.submit refine

Exit codes: 0 done, 3 a running silver or gold job (`make run`) holds the lake (nothing was run:
those jobs refine the new rows themselves).
"""
from __future__ import annotations

import sys

from spark_sink import gold, silver
from spark_sink.lake_job import LakeBusy, run_lake_jobs
from spark_sink.session import job_main
from spark_sink.submit import LAKE_BUSY


def main(argv: list[str] | None = None) -> int:
    return job_main(
        argv, "python -m spark_sink.submit refine",
        "Bring silver up to date with bronze, then gold with silver, under LAKE_ROOT, and exit: the silver and "
        "gold jobs one after the other in one Spark application, each from its own checkpoint.",
        "the default, and the only way this job runs (accepted for symmetry with the other jobs)",
        lambda settings, _available_now: run_lake_jobs([silver.JOB, gold.JOB], settings, available_now=True),
        {LakeBusy: LAKE_BUSY},
    )


if __name__ == "__main__":
    sys.exit(main())
