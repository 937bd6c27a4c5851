"""Faust agents and sources: ingestion (sources -> raw topic) and filter/normalize (raw -> typed).

The agent modules register themselves on the app when imported (`autodiscover` in `app.faust_app`);
the pure tweet logic they call lives in `tweets/`.
"""
