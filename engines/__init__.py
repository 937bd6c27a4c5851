"""The real engines the project starts on one machine: Apache Kafka (KRaft) and a single-node HDFS,
from jars fetched off Maven Central by `python -m engines.jars` (pinned in `engines/poms/`)."""
