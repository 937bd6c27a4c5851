"""Silver, then gold, in one Spark application with the available-now trigger: what a backfill
and `lake forget` run after changing bronze or silver (one JVM and session start instead of two,
and gold's batch meets a warm JVM); then, if asked, VACUUM of some tables (`lake forget`'s purge:
only Spark's VACUUM also removes the change data files silver's feed keeps).

    python -m spark_sink.submit refine [--vacuum ZONE ...]

Exit codes: 0 done, 3 a running silver or gold job (`make run`) holds the lake (nothing was run:
those jobs refine the new rows themselves).
"""
from __future__ import annotations

import sys

from datalake.layout import ZONES, zone
from spark_sink import gold, silver
from spark_sink.lake_job import LakeBusy, run_lake_jobs
from spark_sink.session import job_main
from datalake.layout import LAKE_BUSY


def arguments(parser) -> None:
    parser.add_argument("--vacuum", nargs="+", default=[], choices=[z.path for z in ZONES], metavar="ZONE",
                        help="VACUUM these tables afterwards, with LAKE_RETENTION_HOURS")


def main(argv: list[str] | None = None) -> int:
    return job_main(
        argv, "python -m spark_sink.submit refine",
        "Bring silver up to date with bronze, then gold with silver, under LAKE_ROOT, and exit: the silver and "
        "gold jobs one after the other in one Spark application, each from its own checkpoint.",
        "the default, and the only way this job runs (accepted for symmetry with the other jobs)",
        lambda settings, args: run_lake_jobs([silver.JOB, gold.JOB], settings, available_now=True,
                                             vacuum=tuple(zone(path) for path in args.vacuum)),
        {LakeBusy: LAKE_BUSY}, arguments,
    )


if __name__ == "__main__":
    sys.exit(main())
