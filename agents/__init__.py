"""Faust agents and sources: ingestion (sources -> raw topic) and filter/normalize (raw -> typed).

The agent modules register themselves on the app when imported (`autodiscover` in `app.faust_app`); the pure
logic (`payloads`, `normalizer`, `relevance`, `sources`) imports no Faust state.
"""
