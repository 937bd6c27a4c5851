# tweetlake: every command a user or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Kafka, Spark's Kafka connector, Delta Lake and Hadoop jars (engines/poms/), fetched by Maven into JARS_DIR.
JARS_STAMP := $(VENV)/.jars-$(shell cat engines/poms/*.xml | sha256sum | cut -c1-12)
export PYSPARK_PYTHON := $(abspath $(BIN)/python)
export PYSPARK_DRIVER_PYTHON := $(abspath $(BIN)/python)
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: help venv jars chromium hdfs run cluster test test-fast backfill lake-stats bench bench-soak bench-cluster clean

help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e . --config-settings editable_mode=compat
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install requirements.txt

$(JARS_STAMP): $(STAMP) engines/poms/*.xml
	$(BIN)/python -m engines.jars
	rm -f $(VENV)/.jars-* && touch $(JARS_STAMP)

jars: $(JARS_STAMP) ## fetch the pinned Kafka, Spark-Kafka, Delta Lake and Hadoop jars from Maven Central (cached)

hdfs: $(STAMP) $(JARS_STAMP) ## single-node HDFS on 127.0.0.1 (RPC :9000, WebHDFS :9870, data in .hdfs/; Ctrl-C stops)
	$(BIN)/python -m engines.single_hdfs

run: $(STAMP) $(JARS_STAMP) ## run Kafka, the Faust worker, the bronze/silver/gold Spark jobs and the dashboard (:8050) on the embedded default, each restarted when it dies (Ctrl-C stops)
	$(BIN)/python -m supervise --procfile Procfile --infra broker --essential broker

cluster: $(STAMP) $(JARS_STAMP) ## the pipeline on a local multi-node cluster: 3 Kafka brokers (:9092-9094), HDFS NameNode (:9000/:9870) + 3 DataNodes, Spark master (:7077, UI :8080) + 2 workers, 2 Faust workers, each restarted when it dies (Ctrl-C stops; CLUSTER_DIR=.cluster keeps its data and layout)
	$(BIN)/python -m engines.local_cluster --data-dir $(or $(CLUSTER_DIR),.cluster) up

chromium: ## Debian's chromium for the dashboard's browser test (apt-get install, if missing)
	command -v chromium >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; }

test: $(STAMP) $(JARS_STAMP) chromium ## run the whole test suite (what .ci/run calls)
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## run the tests that start no process
	$(BIN)/python -m pytest -m "not integration"

# Checked before anything is built, so a forgotten FILES fails at once.
ifneq ($(filter backfill,$(MAKECMDGOALS)),)
ifeq ($(strip $(FILES)),)
$(error make backfill needs FILES, e.g. make backfill FILES="archive/*.jsonl.gz" FILTER=none)
endif
endif
backfill: $(STAMP) $(JARS_STAMP) ## ingest archive files like the live stream: make backfill FILES="a.jsonl b.gz" [FILTER=none]
	$(BIN)/python -m pipeline.backfill $(FILES) $(if $(FILTER),--filter $(FILTER))

lake-stats: $(STAMP) ## summary of the lake's Delta tables (bronze rows, files, time range, quarantine, silver, gold) as JSON
	$(BIN)/lake stats --json

bench: $(STAMP) $(JARS_STAMP) ## benchmarks of every stage, ~3.5 min (BENCH_QUICK=1: ~1.5 min); bench/results/latest.json
	timeout --signal=TERM --kill-after=60 1500 $(BIN)/python -m bench.run $(if $(filter 1 true yes,$(BENCH_QUICK)),--quick,--no-quick)

bench-soak: $(STAMP) $(JARS_STAMP) ## broker + worker + sink at 500 tweets/s for 30 min, 5-min retention, memory and disk sampled; bench/results/soak.json
	timeout --signal=TERM --kill-after=60 2700 $(BIN)/python -m bench.run --stages soak --output bench/results/soak.json

bench-cluster: $(STAMP) $(JARS_STAMP) ## e2e tweets/s and latency on make cluster's deployment (free ports) against the single one, both at 200 tweets/s; bench/results/cluster.json
	timeout --signal=TERM --kill-after=60 1800 $(BIN)/python -m bench.run --stages e2e,cluster --e2e-rate 200 --output bench/results/cluster.json

clean: ## remove the local lake, checkpoints, Faust state, the embedded Kafka's and HDFS's data and `make cluster`'s
	rm -rf lake .faust .kafka .hdfs .cluster .spark .run
