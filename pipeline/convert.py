"""`lake convert`: run the Spark conversion job (spark_sink/convert.py) for the lake and pass on
its summary; the job's log goes to a temporary folder and its tail to stderr if it fails."""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from config.settings import Settings
from pipeline.processes import start_sink
from datalake.layout import LAKE_BUSY

CONVERT_SECONDS = 3600.0


def convert(settings: Settings, progress: Callable[[str], None]) -> int:
    """The job's exit code; its JSON summary is printed as the last stdout line."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tweetlake-convert-") as workdir:
        job = settings.model_copy(update={"spark_metrics_port": 0})
        with start_sink(job, Path(workdir), job="convert", name="convert") as process:
            shown = 0.0
            while process.alive():
                elapsed = time.monotonic() - started
                if elapsed > CONVERT_SECONDS:
                    process.kill()
                    progress(f"lake: error: convert did not finish within {CONVERT_SECONDS:.0f}s")
                    return 1
                if elapsed - shown >= 10:
                    progress(f"convert: running for {elapsed:.0f}s (CONVERT TO DELTA, then silver and gold rebuilt)")
                    shown = elapsed
                time.sleep(1)
            code = process.popen.returncode
            lines = [line for line in process.log_text().splitlines() if line.startswith("{")]
            if code != 0:
                reason = "a running silver or gold job holds the lake: stop `make run` first" if code == LAKE_BUSY else ""
                progress(f"lake: error: convert failed (exit code {code}) {reason}\n{process.log_tail(3000)}")
                return 1
    if not lines:
        progress("lake: error: convert printed no summary")
        return 1
    summary = json.loads(lines[-1]) | {"seconds": round(time.monotonic() - started, 1)}
    print(json.dumps(summary))
    sys.stdout.flush()
    return 0
