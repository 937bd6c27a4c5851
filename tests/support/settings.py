"""Settings no other test shares (its own topics, Faust app id and ports)."""
from __future__ import annotations

import uuid
from pathlib import Path

from config.settings import Settings
from pipeline.processes import free_port


def isolated_settings(**values) -> Settings:
    """Settings no other test shares: topics, Faust app id (group, changelogs), web port; no Spark metrics ports."""
    suffix = uuid.uuid4().hex[:8]
    values.setdefault("spark_metrics_port", 0)  # a test that reads the Spark jobs' metrics picks a port
    return Settings(
        _env_file=None,
        topic_raw=f"tweets.raw.{suffix}",
        topic_typed=f"tweets.typed.{suffix}",
        topic_dead_letter=f"tweets.dead-letter.{suffix}",
        topic_compliance=f"tweets.compliance.{suffix}",
        faust_app_id=f"tweetlake-{suffix}",
        faust_web_port=free_port(),
        **values,
    )


def embedded_broker_settings(data_dir: Path) -> Settings:
    return isolated_settings(broker_port=free_port(), kafka_controller_port=free_port(), kafka_data_dir=data_dir)
