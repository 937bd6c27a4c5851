"""Faust agents and sources: ingestion (sources -> raw topic) and filter/normalize (raw -> typed).

The agent modules register themselves on the app when imported (see `app.AGENT_MODULES`); the pure
logic (`payloads`, `normalizer`, `relevance`, `sources`) imports no Faust state.
"""
