"""The sink's quarantine of typed records the Tweet schema cannot read, with a real broker and
spark-submit."""
from __future__ import annotations

import orjson
import pytest

from tests.support.kafka_io import produce
from tests.support.processes import bronze_table, start_sink, wait_for
from tests.support.tweets import accepted_rows, clean_tweets

pytestmark = pytest.mark.integration


def test_unreadable_typed_records_go_to_quarantine_beside_bronze(broker_settings, tmp_path):
    """Records on the typed topic that the Tweet schema cannot read are kept with their text and
    Kafka coordinates in quarantine/typed_unreadable; the readable ones land in bronze once."""
    rows = accepted_rows(clean_tweets(300, seed=14))
    readable = [(tweet_id.encode(), orjson.dumps(row)) for tweet_id, row in rows.items()]
    unreadable = [(b"x1", b"not json at all"), (b"x2", b'{"text": "no id or created_at"}'), (None, b"[1, 2")]
    settings = broker_settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
    # One partition, so every record's offset is its place in this list.
    produce(settings.bootstrap_servers, settings.topic_typed,
            ((b"k", value) for _key, value in readable[:100] + unreadable + readable[100:] + readable[:20]))

    with start_sink(settings, tmp_path, "--available-now", sink_max_offsets_per_trigger=120) as sink:
        wait_for(lambda: not sink.alive(), 240, "the available-now sink to finish")
    assert sink.popen.returncode == 0, sink.log_text()[-3000:]

    bronze = bronze_table(tmp_path / "lake")
    assert sorted(bronze.column("tweet_id").to_pylist()) == sorted(rows)
    quarantined = bronze_table(tmp_path / "lake", "quarantine/typed_unreadable").to_pylist()
    assert sorted((row["kafka_offset"], row["value"]) for row in quarantined) == [
        (100 + index, value.decode()) for index, (_key, value) in enumerate(unreadable)
    ]
    assert {row["reason"] for row in quarantined} == {"typed_unreadable"}
    assert len({row["letter_id"] for row in quarantined}) == len(unreadable)  # how forget and replay name them
    assert {row["kafka_topic"] for row in quarantined} == {settings.topic_typed}
