"""Supervision of the Procfile sets of `make run` and `make cluster` with supervisord: restarts,
their counts as metrics, and giving up on a process that keeps failing (docs/operations.md, "Supervision")."""
