"""Where raw tweets come from: the synthetic generator (default, no credentials) and, later, the
live X API v2 filtered stream."""
