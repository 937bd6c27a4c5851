"""Faust agents and sources: ingestion (sources -> raw topic) and filter/normalize (raw -> typed)."""
from agents import ingest, normalize  # noqa: F401  (importing registers them on the app)
