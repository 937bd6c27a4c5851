"""Typed settings shared by every process (broker runner, Faust worker, Spark sink, tools).

Values come from the environment, then from `.env`; `.env.example` documents each one.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tweets.topics import default_rules_path


def rolling_segment_ms(retention_ms: int) -> int:
    """How often a topic's segment rolls: Kafka deletes or compacts closed segments only, so a
    sixth of the retention keeps a topic near what its retention promises."""
    return max(retention_ms // 6, 10_000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Kafka. Unset bootstrap servers means: start and use the embedded Apache Kafka (KRaft, one
    # node) on BROKER_HOST:BROKER_PORT, its controller on KAFKA_CONTROLLER_PORT, its logs on disk.
    kafka_bootstrap_servers: Optional[str] = None
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    kafka_data_dir: Path = Path(".kafka")
    kafka_heap_mb: int = Field(default=512, ge=128)
    topic_raw: str = "tweets.raw"
    topic_typed: str = "tweets.typed"
    topic_dead_letter: str = "tweets.dead-letter"
    # Deletions from X (stream delete messages, compliance events), keyed by the id they delete:
    # the worker sends them here, the sink logs them in the lake's forgotten log (LAKE/_forgotten).
    topic_compliance: str = "tweets.compliance"
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    # Replicas that must have a record before acks=all producers hear it was written (the topics'
    # min.insync.replicas); unset: the broker's default (1). `make cluster`: 2 of 3.
    topic_min_insync_replicas: Optional[int] = Field(default=None, ge=1)
    topic_retention_ms: int = Field(default=3_600_000, ge=60_000)
    # Retention deletes whole closed segments only: segments roll at least this often (unset: a
    # sixth of the retention) or at this size, so disk stays near what retention promises.
    topic_segment_ms: Optional[int] = Field(default=None, ge=10_000)
    topic_segment_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)

    # Faust worker.
    faust_app_id: str = "tweetlake"
    faust_web_port: int = Field(default=6066, ge=1, le=65535)
    faust_data_dir: Path = Path(".faust")
    log_level: str = "info"
    # Consumer-group timing: a SIGKILLed worker's partitions move after the session timeout
    # (Kafka's group.min.session.timeout.ms is 6 s).
    faust_session_timeout: float = Field(default=10.0, ge=6.0)
    faust_heartbeat_interval: float = Field(default=3.0, gt=0)
    # Raw messages buffered between the fetcher and the normalize agent: 8,192 keeps the worker
    # under 250 MB; 16,384 measured ~15% more tweets/s end to end for ~60 MB more (docs/benchmark-history.md).
    faust_stream_buffer: int = Field(default=8192, ge=1000)
    # Seconds between handing the worker's freed heap back to the OS (glibc only; 0 = never).
    # Without it RSS ratchets up with every backlog: +6 MB a minute in the soak (app/heap.py).
    heap_trim_seconds: float = Field(default=20.0, ge=0)

    # Ingestion.
    # A source registered under this name (agents/sources/base.py): synthetic, x or none built in.
    source: str = "synthetic"
    synthetic_rate: float = Field(default=50.0, gt=0, description="tweets per second")
    synthetic_seed: Optional[int] = Field(default=None, description="unset: a new seed per start")
    synthetic_limit: int = Field(default=0, ge=0, description="stop after this many; 0 = unbounded")

    # X API v2 filtered stream (SOURCE=x). The token is a SecretStr so that no repr or log shows it.
    x_bearer_token: Optional[SecretStr] = None
    x_api_base_url: str = "https://api.twitter.com"
    x_rules_path: Path = Field(default_factory=default_rules_path)
    # The access level sets the rule count, rule length and connections X allows
    # (agents/sources/x_access.py); X_MAX_RULES / X_MAX_RULE_LENGTH override them.
    x_access_level: Literal["pay-per-use", "basic", "pro", "enterprise"] = "pay-per-use"
    x_max_rules: Optional[int] = Field(default=None, ge=1)
    x_max_rule_length: Optional[int] = Field(default=None, ge=1)
    # After a reconnect (or a worker restart) the posts of the gap come from recent search, from
    # this many seconds before the stream was last heard from (agents/sources/x_gap.py).
    x_gap_fill: bool = True
    x_gap_fill_overlap_seconds: float = Field(default=10.0, ge=0)
    # Spend: X bills every post read (pay-per-use, 2026: $0.005). At X_MONTHLY_POST_CAP posts read
    # in a calendar month (UTC) the stream and the gap fill stop until the next month or a higher
    # cap (re-read from .env every X_CAP_CHECK_SECONDS); unset: no cap. X's usage endpoint is read
    # every X_USAGE_POLL_SECONDS (0 = never).
    x_cost_per_post_read: float = Field(default=0.005, ge=0)
    x_monthly_post_cap: Optional[int] = Field(default=None, ge=0)
    x_cap_check_seconds: float = Field(default=60.0, gt=0)
    x_usage_poll_seconds: float = Field(default=900.0, ge=0)

    # Filtering.
    filter: Literal["topics", "none"] = "topics"
    languages: str = "en"
    # Larger raw payloads are rejected as too_large; producers publish only a preview of them
    # (tweets/oversize.py). Capped below Kafka's default 1 MB record limit, where its dead letter
    # (base64, a third larger) must fit too.
    max_payload_bytes: int = Field(default=512_000, ge=1024, le=700_000)
    # A tweet id seen again within this many seconds is a duplicate (Faust table + changelog).
    dedup_window_seconds: float = Field(default=3600.0, gt=0)

    # Lake and Spark sink.
    lake_root: str = "./lake"
    checkpoint_root: Optional[str] = None
    spark_master: str = "local[*]"
    # On a Spark cluster (spark://, yarn, k8s://): cores one job may take (unset: the cluster's
    # default, on standalone all of them, which leaves none for the next job) and each executor's memory.
    spark_cores_max: Optional[int] = Field(default=None, ge=1)
    spark_executor_memory: str = "1g"
    sink_trigger_seconds: float = Field(default=5.0, gt=0)
    # Dead letters are few and not latency-bound: a rarer trigger saves each micro-batch's fixed
    # cost (~0.7 s of CPU, measured) from competing with bronze.
    sink_dead_letter_trigger_seconds: float = Field(default=30.0, gt=0)
    # Maven coordinates for spark-submit --packages (a cluster that resolves them itself), e.g.
    # org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0,io.delta:delta-spark_4.2_2.13:4.4.0; unset:
    # the jars `make jars` fetched.
    sink_spark_packages: Optional[str] = None
    sink_max_offsets_per_trigger: int = Field(default=200_000, ge=1)
    sink_fail_on_data_loss: bool = False
    sink_dedup_window: str = "1 hour"
    # Tasks (and files per hour partition) of each sink micro-batch after the dedup shuffle: match
    # the cores (2 here); raise it on a cluster. A checkpoint keeps the value it started with.
    spark_shuffle_partitions: int = Field(default=2, ge=1)
    # The lake's Delta tables (datalake/layout.py). Files no current version uses (rows a DELETE
    # or MERGE replaced, compacted small files) stay this long for time travel and slow readers,
    # then the jobs' scheduled VACUUM removes them: deleted tweets' text is gone from disk within
    # about this plus LAKE_MAINTENANCE_SECONDS. Keep it above the gold job's lag behind silver.
    lake_retention_hours: float = Field(default=24.0, ge=0)
    # How long each table's _delta_log keeps its commit files (at least LAKE_RETENTION_HOURS: a
    # version cannot be read without its commit); older ones go at the next log checkpoint.
    lake_log_retention_hours: float = Field(default=24.0, gt=0)
    # How often each job VACUUMs its tables.
    lake_maintenance_seconds: float = Field(default=3600.0, gt=0)
    # How often each job OPTIMIZEs its tables: merges the small files its micro-batches wrote, so a
    # partition has at most about this many seconds of micro-batch files plus its merged ones.
    lake_optimize_seconds: float = Field(default=300.0, gt=0)
    # The silver job (spark_sink/silver.py): how often it refines what bronze gained, and at most
    # how many of bronze's files a micro-batch takes (a backlog is refined in bounded steps).
    silver_trigger_seconds: float = Field(default=10.0, gt=0)
    silver_max_files_per_trigger: int = Field(default=200, ge=1)
    # The gold job (spark_sink/gold.py): how often it recomputes the hours silver's change feed
    # shows changed, and at most how many of silver's data and change files a micro-batch takes.
    gold_trigger_seconds: float = Field(default=15.0, gt=0)
    gold_max_files_per_trigger: int = Field(default=50, ge=1)
    # Prometheus metrics of the Spark jobs' micro-batches, on 127.0.0.1 (spark_sink/metrics.py):
    # bronze on this port, silver on +1, gold on +2; 0 = none.
    spark_metrics_port: int = Field(default=6067, ge=0, le=65533)
    # The dashboard (dashboard/): its port on 127.0.0.1 and how often the page refreshes itself.
    dashboard_port: int = Field(default=8050, ge=1, le=65535)
    dashboard_refresh_seconds: float = Field(default=10.0, gt=0)
    # The entity labels the dashboard's trending entities show, comma-separated: the NER model's and
    # the field vocabulary's but numbers, dates and times (CARDINAL, ORDINAL, QUANTITY, PERCENT,
    # MONEY, DATE, TIME), which trend every hour. Gold keeps every label.
    trend_entity_labels: str = ("ML_FRAMEWORK,ML_MODEL,ML_ORG,ML_PERSON,PERSON,NORP,FAC,ORG,GPE,LOC,PRODUCT,EVENT,"
                                "WORK_OF_ART,LAW,LANGUAGE")

    # The supervisor of `make run` and `make cluster` (supervise/): its files (config, one log per
    # process, the control socket), the metrics port of its restart counts on 127.0.0.1, how long a
    # process must stay up for its start to count, the quick failures in a row before it is given
    # up on, and how long a stopping process gets before SIGKILL.
    supervise_dir: Path = Path(".run")
    supervise_metrics_port: int = Field(default=6071, ge=1, le=65535)
    supervise_start_seconds: float = Field(default=30.0, gt=0)
    supervise_start_retries: int = Field(default=5, ge=0)
    supervise_stop_seconds: float = Field(default=15.0, gt=0)

    # The single-node HDFS of `make hdfs` (engines/hdfs.py): NameNode RPC and HTTP (WebHDFS) ports,
    # its data folder, and each daemon's JVM heap.
    hdfs_host: str = "127.0.0.1"
    hdfs_port: int = Field(default=9000, ge=1, le=65535)
    hdfs_http_port: int = Field(default=9870, ge=1, le=65535)
    hdfs_data_dir: Path = Path(".hdfs")
    hdfs_heap_mb: int = Field(default=384, ge=64)
    # Replicas of the files Spark writes to an hdfs:// lake. Unset: 1 on the HDFS of `make hdfs`
    # (one DataNode), the cluster's own default anywhere else.
    hdfs_replication: Optional[int] = Field(default=None, ge=1)

    @field_validator("lake_root")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/") or "/"

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"{self.broker_host}:{self.broker_port}"

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka_bootstrap_servers

    @property
    def segment_ms(self) -> int:
        return self.topic_segment_ms or rolling_segment_ms(self.topic_retention_ms)

    @property
    def language_list(self) -> list[str]:
        return [code.strip() for code in self.languages.split(",") if code.strip()]

    @property
    def trend_entity_label_list(self) -> list[str]:
        return [label.strip() for label in self.trend_entity_labels.split(",") if label.strip()]

    def spark_metrics_port_of(self, job: str) -> int | None:
        """The metrics port of a Spark job (bronze, silver, gold); None when metrics are off."""
        if not self.spark_metrics_port:
            return None
        return self.spark_metrics_port + ("bronze", "silver", "gold").index(job)

    @property
    def lake_replication(self) -> int | None:
        """Replicas to ask for when writing the lake, or None for the filesystem's default."""
        if self.hdfs_replication is not None:
            return self.hdfs_replication
        own_hdfs = f"hdfs://{self.hdfs_host}:{self.hdfs_port}/"
        return 1 if f"{self.lake_root}/".startswith(own_hdfs) else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
