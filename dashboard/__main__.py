"""Serve the tweetlake dashboard on 127.0.0.1 (the Procfile's `dashboard` process).

The page shows tweets per topic over time (from gold/topic_hourly), trending hashtags, entities
(of the labels in TREND_ENTITY_LABELS) and domains (growth of the newest hour in gold against the
hourly mean of the 24 before it), each counting every tweet or, with the switch, the relevant ones
only, the newest relevant tweets of silver filtered by topic, and the pipeline's health: the
worker's /counters/ (on FAUST_WEB_PORT), rows, files and newest data per zone, quarantine, and the
lag of the worker's consumer group and of the bronze sink's checkpoint. It refreshes itself every
DASHBOARD_REFRESH_SECONDS and loads nothing from the internet. JSON of the same numbers:
/api/topics?range=hour|day|week|all&relevant=0|1, /api/trending?relevant=0|1, /api/tweets?topic=TAG,
/api/health.
"""
from __future__ import annotations

import argparse
import sys

from config.settings import get_settings


def parse_args(argv: list[str] | None, settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dashboard", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=settings.dashboard_port,
                        help=f"port on 127.0.0.1 (default DASHBOARD_PORT: {settings.dashboard_port})")
    parser.add_argument("--lake-root", default=settings.lake_root,
                        help=f"a folder, file:// or hdfs:// URI (default LAKE_ROOT: {settings.lake_root})")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be 1-65535, got {args.port}")
    return args


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    args = parse_args(argv, settings)
    settings = settings.model_copy(update={"lake_root": args.lake_root.rstrip("/") or "/", "dashboard_port": args.port})

    from dashboard.app import create_app  # after --help: Dash and plotly take a second to import

    app = create_app(settings)
    print(f"dashboard: http://127.0.0.1:{args.port}/ (lake {settings.lake_root})", flush=True)
    app.run(host="127.0.0.1", port=args.port, debug=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
