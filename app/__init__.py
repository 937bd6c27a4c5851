"""tweetlake's Faust app: `faust -A app worker` finds `app` here and the agents it runs."""
from app.faust_app import app

import agents  # noqa: E402,F401  (registers the agents on the app)

__all__ = ["app"]
