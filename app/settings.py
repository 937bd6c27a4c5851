"""Typed settings shared by every process (broker runner, Faust worker, Spark sink, tools).

Values come from the environment, then from `.env`; `.env.example` documents each one.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.relevance import default_rules_path


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Kafka. Unset bootstrap servers means: start and use the embedded Tansu broker.
    kafka_bootstrap_servers: Optional[str] = None
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(default=9092, ge=1, le=65535)
    topic_raw: str = "tweets.raw"
    topic_typed: str = "tweets.typed"
    topic_dead_letter: str = "tweets.dead-letter"
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    topic_retention_ms: int = Field(default=3_600_000, ge=60_000)

    # Faust worker.
    faust_app_id: str = "tweetlake"
    faust_web_port: int = Field(default=6066, ge=1, le=65535)
    faust_data_dir: Path = Path(".faust")
    log_level: str = "info"
    # Consumer-group timing. Unset: 2 s / 0.5 s on the embedded broker (Tansu holds each JoinGroup
    # for half the session timeout), 10 s / 3 s on Kafka (which rejects sessions under 6 s).
    faust_session_timeout: Optional[float] = Field(default=None, gt=0)
    faust_heartbeat_interval: Optional[float] = Field(default=None, gt=0)
    # Raw messages buffered between the fetcher and the normalize agent: 8,192 keeps the worker
    # under 250 MB; 16,384 measured ~15% more tweets/s end to end for ~60 MB more (BENCHMARKS.md).
    faust_stream_buffer: int = Field(default=8192, ge=1000)
    # Seconds between handing the worker's freed heap back to the OS (glibc only; 0 = never).
    # Without it RSS ratchets up with every backlog: +6 MB a minute in the soak (app/heap.py).
    heap_trim_seconds: float = Field(default=20.0, ge=0)

    # Ingestion.
    source: Literal["synthetic", "x", "none"] = "synthetic"
    synthetic_rate: float = Field(default=50.0, gt=0, description="tweets per second")
    synthetic_seed: Optional[int] = Field(default=None, description="unset: a new seed per start")
    synthetic_limit: int = Field(default=0, ge=0, description="stop after this many; 0 = unbounded")

    # X API v2 filtered stream (SOURCE=x). The token is a SecretStr so that no repr or log shows it.
    x_bearer_token: Optional[SecretStr] = None
    x_api_base_url: str = "https://api.twitter.com"
    x_rules_path: Path = Field(default_factory=default_rules_path)
    x_max_rules: int = Field(default=25, ge=1, description="rules X allows the project: 25 Basic, 1000 Pro")

    # Filtering.
    filter: Literal["topics", "none"] = "topics"
    languages: str = "en"
    max_payload_bytes: int = Field(default=512_000, ge=1024)
    # A tweet id seen again within this many seconds is a duplicate (Faust table + changelog).
    dedup_window_seconds: float = Field(default=3600.0, gt=0)

    # Lake and Spark sink.
    lake_root: str = "./lake"
    checkpoint_root: Optional[str] = None
    spark_master: str = "local[*]"
    sink_trigger_seconds: float = Field(default=5.0, gt=0)
    # Dead letters are few and not latency-bound: a rarer trigger saves each micro-batch's fixed
    # cost (~0.7 s of CPU, measured) from competing with bronze.
    sink_dead_letter_trigger_seconds: float = Field(default=30.0, gt=0)
    sink_kafka_source: Literal["auto", "kafka", "python"] = "auto"
    sink_max_offsets_per_trigger: int = Field(default=200_000, ge=1)
    sink_fail_on_data_loss: bool = False
    sink_dedup_window: str = "1 hour"
    # Tasks (and files per hour partition) of each sink micro-batch after the dedup shuffle: match
    # the cores (2 here); raise it on a cluster. A checkpoint keeps the value it started with.
    spark_shuffle_partitions: int = Field(default=2, ge=1)
    # WebHDFS for the `lake` command when LAKE_ROOT is hdfs:// (the sink uses Spark's Hadoop client).
    hdfs_namenode_url: Optional[str] = None
    hdfs_user: Optional[str] = None

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
    def group_session_timeout(self) -> float:
        if self.faust_session_timeout is not None:
            return self.faust_session_timeout
        return 2.0 if self.embedded_broker else 10.0

    @property
    def group_heartbeat_interval(self) -> float:
        if self.faust_heartbeat_interval is not None:
            return self.faust_heartbeat_interval
        return 0.5 if self.embedded_broker else 3.0

    @property
    def language_list(self) -> list[str]:
        return [code.strip() for code in self.languages.split(",") if code.strip()]

    @property
    def checkpoint_location(self) -> str:
        return self.checkpoint_root or f"{self.lake_root}/_checkpoints"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
