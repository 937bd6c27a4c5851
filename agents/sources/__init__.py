"""Where raw tweets come from: the synthetic generator (default, no credentials), the live X API v2
filtered stream (`x_stream`, rules from `x_rules`), and archives for backfills."""
