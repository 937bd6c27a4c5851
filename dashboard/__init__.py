"""The dashboard: tweets per topic, trends, the newest relevant tweets and the pipeline's health,
read from the lake's gold and silver zones, the worker's counters and Kafka (`python -m dashboard`)."""
