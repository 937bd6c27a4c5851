"""Serve the tweetlake dashboard on 127.0.0.1 (the Procfile's `dashboard` process).

Tweets per topic, trends, the newest relevant tweets and the pipeline's health, refreshed every
DASHBOARD_REFRESH_SECONDS; the same numbers as JSON: /api/topics, /api/trending, /api/tweets,
/api/health. What each shows: docs/architecture.md, "Dashboard".
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
