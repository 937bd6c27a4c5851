"""The Dash app: the page, its callbacks, and the JSON endpoints on the same Flask server.

Everything the browser loads comes from this server (Dash's own scripts, served locally, and
assets/): no CDN, no remote font, so the dashboard works offline.
"""
from __future__ import annotations

from pathlib import Path

from dash import Dash
from flask import jsonify, request

from config.settings import Settings
from datalake.errors import LakeError
from dashboard.page import layout, register_callbacks
from dashboard.views import UnknownRange, Views

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_TWEETS = 20
MAX_TWEETS = 200


def create_app(settings: Settings) -> Dash:
    views = Views(settings)
    app = Dash(__name__, title="tweetlake", assets_folder=str(ASSETS), serve_locally=True,
               external_stylesheets=[], external_scripts=[], update_title=None)
    app.layout = layout(views, settings.dashboard_refresh_seconds)
    register_callbacks(app, views)
    add_api(app, views)
    return app


def add_api(app: Dash, views: Views) -> None:
    """GET /api/topics?range=hour|day|week|all, /api/trending?limit=N (both with relevant=1: relevant
    tweets only), /api/tweets?topic=TAG&limit=N and /api/health (docs/architecture.md, "Dashboard"): 400 for a
    bad parameter, 503 while the lake cannot be read."""
    server = app.server
    server.json.sort_keys = False

    def answer(view):
        try:
            return jsonify(view())
        except (UnknownRange, ValueError) as error:
            return jsonify({"error": str(error)}), 400
        except (LakeError, OSError) as error:
            return jsonify({"error": f"lake not readable: {error}"}), 503

    @server.get("/api/topics")
    def api_topics():
        return answer(lambda: views.topics(request.args.get("range", "day"), relevant=flag("relevant")))

    @server.get("/api/trending")
    def api_trending():
        return answer(lambda: views.trending(limit=bounded_int("limit", 10, 1, 1000), relevant=flag("relevant")))

    @server.get("/api/tweets")
    def api_tweets():
        return answer(lambda: views.tweets(request.args.get("topic"), bounded_int("limit", DEFAULT_TWEETS, 1, MAX_TWEETS)))

    @server.get("/api/health")
    def api_health():
        return answer(views.health)


def flag(name: str) -> bool:
    """A 0/1 query parameter, 0 when absent."""
    text = request.args.get(name, "0")
    if text not in ("0", "1"):
        raise ValueError(f"{name} must be 0 or 1, got {text!r}")
    return text == "1"


def bounded_int(name: str, default: int, low: int, high: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {text!r}")
    return int(text)
